"""The CLI and the study config: one-line errors with exit code 2, the example config validates."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ptlab.config import load_config
from ptlab.errors import ConfigError
from ptlab.retrieval.study import SoftQEConfig, quick

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ptlab(capsys, monkeypatch):
    """Run `ptlab ARGS` in-process through the real entry point; return (exit code, stdout, stderr)."""
    from ptlab.cli import main

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["ptlab", *args])
        with pytest.raises(SystemExit) as exit_:
            main()
        out = capsys.readouterr()
        return SimpleNamespace(returncode=exit_.value.code or 0, stdout=out.out, stderr=out.err)

    return run


def test_example_config_is_the_default_and_quick_is_smaller():
    cfg = load_config(SoftQEConfig, ROOT / "configs" / "softqe.yaml")
    assert cfg == SoftQEConfig()
    q = quick(cfg)
    assert q.train_queries < cfg.train_queries and q.squad.n_test < cfg.squad.n_test
    assert q.hotpotqa.n_queries < cfg.hotpotqa.n_queries and q.squad.max_articles is not None


def test_bad_override_is_one_line():
    with pytest.raises(ConfigError, match=r"student.alpha: each alpha must be between 0 and 1, got 1.5") as err:
        load_config(SoftQEConfig, None, ["student.alpha=1.5"])
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="expansion.source"):
        load_config(SoftQEConfig, None, ["expansion.source=gpt"])


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
