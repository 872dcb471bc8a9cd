"""The CLI and the study config: one-line errors with exit code 2, the example config validates,
and `ptlab.retrieval` is a library again (its commands work on any BEIR folder; it never imports a study)."""

import json
from pathlib import Path

import pytest

from ptlab.config import load_config
from ptlab.errors import ConfigError
from ptlab.studies.softqe.config import SoftQEConfig

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_is_the_default_and_quick_is_smaller():
    from ptlab.studies.cli import load_study_config

    cfg = load_config(SoftQEConfig, ROOT / "configs" / "softqe.yaml")
    assert cfg == SoftQEConfig()
    q = load_study_config("softqe", None, [], quick=True)
    assert q.train_queries < cfg.train_queries and q.squad.n_test < cfg.squad.n_test
    assert q.hotpotqa.n_queries < cfg.hotpotqa.n_queries and q.squad.max_articles is not None
    assert q.output_dir == "runs/study-softqe-quick" and cfg.output_dir == "runs/study-softqe"
    # the command line wins over --quick, as for every study
    assert load_study_config("softqe", None, ["train_queries=100"], quick=True).train_queries == 100


def test_fixed_settings_leave_out_the_alphas_and_how_it_runs():
    a = SoftQEConfig()
    b = load_config(SoftQEConfig, None, ["student.alpha=[0.25]", "executor=processes", "workers=3", "output_dir=x"])
    assert a.fixed() == b.fixed() and "alpha" not in a.fixed()["student"]
    assert load_config(SoftQEConfig, None, ["student.epochs=1"]).fixed() != a.fixed()


def test_retrieval_imports_no_study():
    """Not even lazily, inside a function: `ptlab.retrieval` is a library the studies build on."""
    import ast

    found = []
    for path in sorted((ROOT / "src" / "ptlab" / "retrieval").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.name}: {n}" for n in names if n.startswith("ptlab.studies")]
    assert found == []


def test_bad_override_is_one_line():
    with pytest.raises(ConfigError, match=r"student.alpha: each alpha must be between 0 and 1, got 1.5") as err:
        load_config(SoftQEConfig, None, ["student.alpha=1.5"])
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="expansion.source"):
        load_config(SoftQEConfig, None, ["expansion.source=gpt"])


def test_retrieval_commands_are_the_library_ones(ptlab):
    res = ptlab("retrieval", "--help")
    assert res.returncode == 0
    assert {"build", "check", "expand", "evaluate"} <= set(res.stdout.split()) and " train " not in res.stdout


def test_cli_expands_the_queries_of_any_beir_folder(tmp_path, ptlab, tiny_collection):
    from ptlab.retrieval.beir import save_beir

    folder = save_beir(tiny_collection, tmp_path / "beir")
    res = ptlab("retrieval", "expand", str(folder), "source=oracle", "oracle.know_rate=1", "--show", "2")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("  -> ") == 2 and "'paid': 96" in res.stdout
    res = ptlab("retrieval", "expand", str(folder), "source=oracle", "oracle.know_rate=1")
    assert "'paid': 0" in res.stdout and "'cached': 96" in res.stdout
    res = ptlab("retrieval", "expand", str(folder), "source=gpt")
    assert res.returncode == 2 and "source" in res.stderr
    res = ptlab("retrieval", "expand", str(folder), "source=simulated")  # the old name, with its replacement
    assert res.returncode == 2 and "'oracle'" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = ptlab("retrieval", "expand", str(folder), "prompt=Expand this")  # no {query} slot
    assert res.returncode == 2 and "{query}" in res.stderr


def test_cli_check_reports_bad_beir_file_and_exits_2(tmp_path, ptlab):
    folder = tmp_path / "bad"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "x"}) + "\n")
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "y"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\n")
    res = ptlab("retrieval", "check", str(folder))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"error: {folder}/qrels/test.tsv:2: unknown document id 'd2'"]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    res = ptlab("retrieval", "check", str(folder))
    assert res.returncode == 0 and "ok: 1 documents, 1 queries" in res.stdout


def test_cli_builds_collection_and_rejects_unknown_study_key(ptlab):
    res = ptlab("retrieval", "build", "hotpotqa", "n_queries=20")
    assert res.returncode == 0, res.stderr
    folder = Path(res.stdout.splitlines()[0])
    assert (folder / "qrels" / "test.tsv").is_file() and "test: 20 queries" in res.stdout
    res = ptlab("study", "softqe", "studnet.alpha=0.3")
    assert res.returncode == 2 and res.stderr.strip() == "error: config: studnet: unknown field"


@pytest.mark.parametrize("override, needle", [("eval.measures=[nDCG@10, foo]", "eval.measures: 'foo' is not an ir-measures"),
                                              ("eval.measures=[]", "eval.measures: give at least one measure"),
                                              ("encoder=/nowhere", "encoder '/nowhere'")])
def test_study_refuses_what_would_fail_mid_study_before_any_work(tmp_path, ptlab, override, needle):
    out = tmp_path / "out"
    res = ptlab("study", "softqe", override, f"output_dir={out}")
    assert res.returncode == 2 and needle in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not out.exists()
