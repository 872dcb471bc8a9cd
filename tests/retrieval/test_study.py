"""The SoftQE study through the one engine (`run_grid`) at a tiny size: one stored cell per system,
per-query values in the store, the report from the store alone, a re-run that recomputes nothing,
an added alpha that trains only its student, and (slow) the command line with the latency probe."""

import json
from pathlib import Path

import pytest

from ptlab.studies.grid.run import run_grid
from ptlab.studies.grid.store import ResultStore
from ptlab.studies.softqe.cells import NOT_A_STUDENT, systems
from ptlab.studies.softqe.config import SoftQEConfig
from ptlab.studies.softqe.study import STUDY

LABELS = ("SQuAD (in-domain)", "HotpotQA (near domain)", "BFCL tools (out-of-domain)")
TINY = ["squad.max_articles=1", "squad.n_test=12", "squad.n_dev=4", "hotpotqa.n_queries=6", "tools.n_queries=8",
        "tools.max_documents=40", "expansion.source=oracle", "train_queries=32",
        "teacher_queries=16", "teacher.batch_size=8", "teacher.max_seq_length=64", "teacher.epochs=1",
        "student.epochs=1", "student.patience=null", "student.batch_size=8", "latency.enabled=false"]


def tiny_config(out, *overrides) -> SoftQEConfig:
    from ptlab.config import load_config

    return load_config(SoftQEConfig, None, [*TINY, f"output_dir={out}", "student.alpha=[0, 0.5]", *overrides])


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("softqe") / "s"
    cfg = tiny_config(out)
    return out, cfg, run_grid(STUDY, cfg, quiet=True)


def test_one_stored_cell_per_system_with_per_query_values(study):
    out, _, run = study
    assert run.cells == run.ran == 6 and run.skipped == 0
    assert {"study.json", "results.sqlite", "results.csv", "runs.jsonl", "shared.json", "runs"} <= {
        p.name for p in out.iterdir()}
    store = ResultStore(out / "results.sqlite", create=False)
    assert store.axes == ("system", "alpha")
    df = store.results()
    cells = df.drop_duplicates("cell_id").set_index("system")["alpha"]
    assert sorted(cells.index) == sorted(systems([0.0, 0.5]))
    assert cells["SoftQE α=0.5"] == 0.5 and cells["SoftQE α=0"] == 0.0 and cells["base"] == NOT_A_STUDENT
    m = df.pivot_table(index="system", columns="metric", values="value", aggfunc="first")
    for key, n in (("squad", 12), ("hotpotqa", 6), ("tools", 8)):
        assert (m[f"{key}/queries"] == n).all() and m[f"{key}/nDCG@10"].between(0, 1).all()
    assert m.loc["SoftQE α=0.5", "train/steps"] == 4 and m["train/steps"].isna().sum() == 4  # 32 rows / 8, 1 epoch
    ex = store.examples()
    per_cell = ex.groupby("cell_id").size()
    assert (per_cell == 3 * (12 + 6 + 8)).all()  # every query, every measure, every collection
    assert set(ex["split"]) == {f"{k}/{m}" for k in ("squad", "hotpotqa", "tools")
                                for m in ("nDCG@10", "RR@10", "R@100")}
    assert ((ex["value"] > 0) == ex["correct"].astype(bool)).all()
    assert len(list((out / "runs").glob("*.trec"))) == 3 * 6


def test_report_from_the_store(study, ptlab):
    out, _, _ = study
    res = ptlab("report", str(out))  # `ptlab report` finds the study by its manifest
    assert res.returncode == 0, res.stderr
    assert "| SoftQE α=0.5 | no |" in res.stdout  # the headline table
    folder = out / "report"
    assert {"report.md", "report.html", "figure.png", "table.md", "results.json"} <= {p.name for p in folder.iterdir()}
    assert (folder / "figure.png").stat().st_size > 10_000
    text = (folder / "report.md").read_text()
    assert all(label in text for label in LABELS) and "p (Holm)" in text
    assert text.index("## Findings") < text.index("## Design checks") < text.index("figure.png")
    results = json.loads((folder / "results.json").read_text())["results"]
    for label in LABELS:
        got = results[label]["systems"]
        assert sorted(got) == sorted(systems([0.0, 0.5]))
        for s in got.values():
            ndcg = s["metrics"]["nDCG@10"]
            assert 0.0 <= ndcg["low"] <= ndcg["mean"] <= ndcg["high"] <= 1.0
        assert {"SoftQE α=0.5 vs base", "SoftQE α=0.5 vs SoftQE α=0"} <= set(results[label]["comparisons"])
    stored = ResultStore(out / "results.sqlite", create=False).results()
    mean = stored[(stored["system"] == "teacher (q)") & (stored["metric"] == "squad/nDCG@10")]["value"].item()
    assert results["SQuAD (in-domain)"]["systems"]["teacher (q)"]["metrics"]["nDCG@10"]["mean"] == pytest.approx(mean)


def test_training_is_recorded_with_held_out_learning_curves(study, tmp_path):
    from ptlab.studies.softqe.report import write_report

    out, _, _ = study
    shared = json.loads((out / "shared.json").read_text())
    assert len(shared["dev_ids"]) == 4 and not set(shared["dev_ids"]) & set(shared["train_ids"])
    teacher = shared["teacher_training"]
    for name in ("softqe-alpha-0", "softqe-alpha-0-5"):
        rec = json.loads((out / "training" / f"{name}.json").read_text())
        assert rec["rows"] == 32 and rec["dev_rows"] == 4 and rec["steps"] == 4  # patience off: the whole epoch
        assert [p["step"] for p in rec["curve"]] == [0, 1, 2, 3, 4]  # before training, then every step
        assert rec["best_dev_loss"] == min(p["dev_loss"] for p in rec["curve"][1:])
    assert teacher["pairs"] == 16 and teacher["dev_rows"] == 4 and teacher["curve"][0]["step"] == 0
    text = write_report(out, tmp_path / "report").read_text()
    assert (tmp_path / "report" / "learning_curves.png").stat().st_size > 5_000
    training = text.split("## Training")[1].split("##")[0]
    assert "| kept step | dev loss | converged |" in training and "| SoftQE α=0.5 | 32 | 1 of 1 |" in training


def test_leak_check_flags_the_oracle(study):
    """The tiny study expands with the oracle, which copies the gold evidence: the leak check must say so."""
    out, _, _ = study
    leak = json.loads((out / "shared.json").read_text())["leak"]
    assert set(leak) == {"SQuAD train", *LABELS}
    squad = leak["SQuAD (in-domain)"]
    assert set(squad) == {"oracle (upper bound)"}  # the study's own expansions are the oracle's
    rep = squad["oracle (upper bound)"]
    assert rep["leaks"] and rep["by_n"]["3"]["gold"] > 0.2 > rep["by_n"]["3"]["random"]
    assert rep["n_queries"] == 12
    from ptlab.studies.softqe.analysis import load
    from ptlab.studies.softqe.diagnostics import LEAK_CHECK
    from ptlab.studies.softqe.report import comparisons_frame, design_checks

    r = load(out)
    check = next(c for c in design_checks(r, comparisons_frame(r.results)) if c.name == LEAK_CHECK)
    assert check.passed is False and "oracle" in check.detail


def test_rerun_recomputes_nothing(study):
    out, cfg, _ = study
    shared = (out / "shared.json").stat().st_mtime_ns
    before = ResultStore(out / "results.sqlite", create=False).results()
    again = run_grid(STUDY, cfg, quiet=True)
    assert again.ran == 0 and again.skipped == again.cells == 6
    assert (out / "shared.json").stat().st_mtime_ns == shared  # the shared steps did not run either
    assert json.loads((out / "runs.jsonl").read_text().splitlines()[-1])["ran"] == []
    assert ResultStore(out / "results.sqlite", create=False).results().equals(before)


def test_deleted_run_reevaluates_only_that_cell(study):
    out, cfg, _ = study
    (out / "runs" / "squad__teacher-q.trec").unlink()
    again = run_grid(STUDY, cfg, quiet=True)
    assert again.ran_ids == ["teacher-q"]


def test_an_added_alpha_trains_and_evaluates_only_its_student(study):
    out, _, _ = study
    teacher = Path(json.loads((out / "shared.json").read_text())["teacher_dir"]) / "modules.json"
    mtime = teacher.stat().st_mtime_ns
    again = run_grid(STUDY, tiny_config(out, "student.alpha=[0, 0.5, 1]"), quiet=True)
    assert again.ran_ids == ["softqe-alpha-1"]
    assert teacher.stat().st_mtime_ns == mtime  # the teacher came from the cache
    m = ResultStore(out / "results.sqlite", create=False).results()
    assert m[m["system"] == "SoftQE α=1"]["alpha"].unique().tolist() == [1.0]


@pytest.mark.slow
def test_cli_runs_the_default_llm_expansions_with_latency_and_pays_each_once(tmp_path, ptlab):
    """The default expansion source (SmolLM2 writing pseudo-documents), end to end through the command line:
    every expanded query is paid once, a re-run anywhere reads them from the expansion cache."""
    llm = [o for o in TINY[:-1] if o != "expansion.source=oracle"] + ["expansion.max_tokens=8", "student.alpha=0.5",
                                                                      "latency.n_queries=1", "latency.max_new_tokens=8"]
    out = tmp_path / "cli"
    res = ptlab("study", "softqe", *llm, f"output_dir={out}", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "5 cells run" in res.stdout and "| SoftQE α=0.5 | no |" in res.stdout
    shared = json.loads((out / "shared.json").read_text())
    acc = shared["expansion"]["accounting"]
    assert shared["expansion"]["backend"] == "hf" and shared["expansion"]["model"] == "smollm2-135m"
    assert acc["requests"] == acc["paid"] == 32 + 4 + 12 + 6 + 8 and acc["failed"] == 0  # train, dev, three tests
    assert set(shared["leak"]["SQuAD train"]) == {"study", "oracle (upper bound)"}
    lat = json.loads((out / "latency.json").read_text())
    assert lat["with_llm_ms"] > lat["without_llm_ms"] > 0
    text = (out / "report" / "report.md").read_text()
    assert "## Latency per query" in text and "## Expansions" in text and "62 pseudo-documents needed" in text
    res = ptlab("study", "softqe", *llm, f"output_dir={out}", "--quiet")
    assert "0 cells run, 5 already finished" in res.stdout
    res = ptlab("study", "softqe", *llm, f"output_dir={tmp_path / 'again'}", "--quiet")
    assert res.returncode == 0, res.stderr
    acc = json.loads((tmp_path / "again" / "shared.json").read_text())["expansion"]["accounting"]
    assert acc["paid"] == 0 and acc["cached"] == 62
