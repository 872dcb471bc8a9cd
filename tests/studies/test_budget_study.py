"""The budget study end to end on `tiny-test`: files, rows, accounting, report, resume, `ptlab advise`."""

import json
import shutil

import pytest

from ptlab.studies.budget.study import STUDY as BUDGET
from ptlab.studies.grid.run import run_grid
from ptlab.studies.grid.store import ResultStore

from .budget_helpers import budget_config


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("budget") / "s"
    # its own reply cache: the accounting below counts what this study alone paid
    run = run_grid(BUDGET, budget_config(out, teacher={"cache_path": str(out.parent / "replies.sqlite")}), quiet=True)
    return out, run


def test_study_writes_cells_rows_and_exact_teacher_accounting(study):
    out, run = study
    assert run.cells == run.ran == 1 + 1 + 3 * 3 and run.skipped == 0
    assert {"study.json", "results.sqlite", "results.csv", "runs.jsonl", "synth", "train", "eval", "data"} <= {
        p.name for p in out.iterdir()}
    df = ResultStore(out / "results.sqlite", create=False).results()
    m = df.pivot_table(index="cell_id", columns="metric", values="value", aggfunc="first")
    assert (m["eval_id/n"] == 8).all() and m["eval_id/accuracy"].between(0, 1).all()
    aa = m.loc["math.default.S4.Q16.answer_augmentation.epochs.s0"]  # 16 generated rows + the 4 seeds' own
    assert aa["synth/rows"] == 20 and aa["synth/generated_rows"] == 16
    assert aa["synth/queries_used"] == 16 and aa["teacher/paid"] + aa["teacher/cached"] == 16
    # nested budgets pay each distinct request once: Q = 4, 16 and 48 of one seed set pay 48 replies in all
    aa_cells = [c for c in m.index if ".answer_augmentation." in c]
    assert sum(m.loc[aa_cells, "teacher/paid"]) == 48 and sum(m.loc[aa_cells, "teacher/cached"]) == 4 + 16
    nq = m.loc["math.default.S4.Q48.new_question.epochs.s0"]
    assert nq["synth/queries_used"] <= 48 and nq["teacher/paid"] + nq["teacher/cached"] == nq["synth/queries_used"]
    assert nq["synth/generated_rows"] <= 48 // 3 and nq["synth/rows"] == nq["synth/generated_rows"] + 4
    qr = m.loc["math.default.S4.Q4.question_rephrase.epochs.s0"]
    assert qr["synth/generated_rows"] == 2 and qr["teacher/requests"] == 4
    assert m.loc["math.S4.seeds_only.epochs.s0", "synth/rows"] == 4
    assert m.loc["math.S4.seeds_only.epochs.s0", "teacher/requests"] == 0
    strategies = [c for c in m.index if ".Q" in c]
    assert sum(m.loc[strategies, "teacher/paid"]) == run.summary["teacher"]["paid"]
    assert run.summary["teacher"]["paid"] + run.summary["teacher"]["cached"] == run.summary["teacher"]["requests"]
    ex = ResultStore(out / "results.sqlite", create=False).examples()
    assert ex.groupby("cell_id")["example_id"].apply(tuple).nunique() == 1  # the same eval examples everywhere
    rows = [json.loads(line) for line in next((out / "synth").glob("*/data.jsonl")).read_text().splitlines()]
    assert all({"prompt", "completion", "strategy", "seed_id"} <= set(r) for r in rows)


def test_report_has_curves_table_and_crossover(study, ptlab):
    out, _ = study
    done = ptlab("report", str(out))  # `ptlab report` knows a budget study by its manifest
    assert done.returncode == 0, done.stderr
    md = out / "report" / "report.md"
    files = {p.name for p in md.parent.iterdir()}
    assert {"report.md", "report.html", "curves.png", "difference.png", "table.md", "conditions.csv",
            "crossover.json"} <= files
    text = md.read_text()
    assert "Does ptlab's study reproduce" in text and "|S| = 4:" in text
    assert text.index("## Findings") < text.index("## Design checks") < text.index("curves.png")
    summary = json.loads((md.parent / "crossover.json").read_text())
    assert summary["crossovers"][0]["status"] in ("crossover", "always", "none")
    assert summary["crossovers"][0]["ratios"] == [1.0, 4.0, 12.0]
    assert summary["findings"][0]["claim"].startswith("|S| = 4: new_question overtakes")
    assert summary["findings"][0]["verdict"] in summary["verdict"]
    assert "Reproduced" in text or "Same direction" in text or "Not reproduced" in text or "Partly" in text
    assert "Sensitivity" in text and ("corresponds to" in summary["paper_regime"] or "No regime" in summary["paper_regime"])


def test_rerun_after_deleting_one_eval_output_reevaluates_only_that_cell_and_pays_nothing(tmp_path):
    out = tmp_path / "s"
    cfg = budget_config(out, axes={"budget": [4, 16]})
    first = run_grid(BUDGET, cfg, quiet=True)
    assert first.summary["teacher"]["paid"] > 0
    before = ResultStore(out / "results.sqlite", create=False).results().set_index(["cell_id", "metric"])["value"]
    target = "math.default.S4.Q16.new_question.epochs.s0"
    manifest = json.loads((out / "study.json").read_text())
    assert target in {c["cell_id"] for c in manifest["cells"]}
    plan = next(p for p in BUDGET.plan(cfg, out.resolve()) if p.cell.cell_id == target)
    shutil.rmtree(plan.eval.path)
    synth_mtime = (plan.synth.path / "data.jsonl").stat().st_mtime
    again = run_grid(BUDGET, cfg, quiet=True)
    assert again.ran_ids == [target] and again.skipped == again.cells - 1
    assert again.summary["teacher"]["paid"] == 0 and again.summary["teacher"]["requests"] == 0  # no teacher call paid twice
    assert (plan.synth.path / "data.jsonl").stat().st_mtime == synth_mtime
    after = ResultStore(out / "results.sqlite", create=False).results().set_index(["cell_id", "metric"])["value"]
    keep = ~after.index.get_level_values("metric").str.startswith("time/")
    assert after[keep].sort_index().equals(before[before.index.isin(after[keep].index)].sort_index())
    log = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert log[-1]["ran"] == [target] and log[-1]["teacher"]["paid"] == 0
    assert run_grid(BUDGET, cfg, quiet=True).ran == 0


def test_nested_budgets_in_parallel_workers_pay_each_distinct_request_once(tmp_path):
    """Two worker processes run cells whose answer-augmentation requests nest (Q = 4 within 16 within 48):
    whichever runs first pays, the other is served from the cache or waits for the payer; 48 paid in all. Under
    both exposure rules, whose cells share their data: it is made once, never by two workers at a time."""
    out = tmp_path / "s"
    cfg = budget_config(out, executor="processes", workers=2, references=False,
                        axes={"strategy": ["answer_augmentation"], "exposure": ["epochs", "steps"]},
                        train={"steps": 2}, teacher={"cache_path": str(tmp_path / "replies.sqlite")})
    run = run_grid(BUDGET, cfg, quiet=True)
    assert run.ran == 6
    m = ResultStore(out / "results.sqlite", create=False).results().pivot_table(
        index="cell_id", columns="metric", values="value", aggfunc="first")
    assert list(m["synth/queries_used"].sort_values()) == [4, 4, 16, 16, 48, 48]
    epochs, steps = (m[m.index.str.contains(f".{rule}.")] for rule in ("epochs", "steps"))
    assert epochs["teacher/paid"].sum() == run.summary["teacher"]["paid"] == 48
    assert (m["teacher/paid"] + m["teacher/cached"] == m["synth/queries_used"]).all()
    # each data step is made once; a cell of the other rule reads it (and its accounting) as it was made
    assert len(list((out / "synth").iterdir())) == 3
    assert list(steps["teacher/paid"]) == list(epochs["teacher/paid"])


def test_a_real_teachers_replies_come_from_the_durable_cache_on_rerun(tmp_path, monkeypatch):
    monkeypatch.setenv("PTLAB_HOME", str(tmp_path / "home"))
    out = tmp_path / "s"
    cfg = budget_config(out, references=False, teacher={"backend": "hf", "model": "tiny-test"},
                        seeds={"source": "task"}, synth={"max_tokens": 8},
                        axes={"seed_size": [2], "budget": [4], "strategy": ["answer_augmentation"]})
    first = run_grid(BUDGET, cfg, quiet=True)
    assert first.summary["teacher"]["paid"] == 4 and first.summary["teacher"]["cached"] == 0
    for step in ("synth", "eval"):  # lose the cell's data and evaluation: the teacher is asked again
        shutil.rmtree(out / step)
    again = run_grid(BUDGET, cfg, quiet=True)
    assert again.ran == 1
    assert again.summary["teacher"]["requests"] == 4 and again.summary["teacher"]["cached"] == 4 and again.summary["teacher"]["paid"] == 0


def test_advise_from_results_and_from_defaults(study, ptlab):
    from ptlab.studies.budget.advise import DEFAULT_CROSSOVER, advise

    out, _ = study
    low = advise(100, 100)
    assert low.strategy == "answer_augmentation" and low.source == "default" and low.crossover == DEFAULT_CROSSOVER
    assert advise(10, 10 * int(DEFAULT_CROSSOVER)).strategy == "new_question"
    assert advise(10, 1000, weak_teacher=True).strategy == "question_rephrase"
    measured = advise(4, 400, results=out)
    assert measured.source == str(out) and "measured at |S| = 4" in measured.reason
    # the crossover is only as good as the conditions it was measured in: the advice names them
    assert "SIMULATED teacher, regime 'default' (" in measured.reason and "answer_paths=4" in measured.reason
    assert "trained by the epochs rule; bootstrap 95% interval of the crossover [" in measured.reason
    assert measured.strategy in ("answer_augmentation", "new_question")
    done = ptlab("advise", "--seed-size", "50", "--budget", "5000", "--results", str(out))
    assert done.returncode == 0, done.stderr
    bad = ptlab("advise", "--seed-size", "50", "--budget", "5000", "--results", str(out), "--regime", "harsh")
    assert bad.returncode == 2 and bad.stderr == "error: --regime: 'harsh' was not measured in this study " \
        "(measured: default)\n"
    assert done.stdout.startswith("recommended: ") and "(the measured size nearest to 50)" in done.stdout


@pytest.mark.parametrize("args, needle", [
    (["--seed-size", "0", "--budget", "10"], "--seed-size"),
    (["--seed-size", "5", "--budget", "0"], "--budget"),
    (["--seed-size", "5", "--budget", "10", "--results", "/nonexistent/budget-study"], "not found"),
    (["--seed-size", "5", "--budget", "10", "--regime", "harsh"], "--regime"),
])
def test_advise_bad_input_is_one_line_and_exit_2(ptlab, args, needle):
    done = ptlab("advise", *args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and needle in done.stderr and done.stderr.startswith("error: ")


def test_advise_refuses_a_directory_that_is_not_a_budget_study(tmp_path, ptlab):
    (tmp_path / "study.json").write_text(json.dumps({"format": "ptlab-study-spurious/1"}))
    done = ptlab("advise", "--seed-size", "5", "--budget", "10", "--results", str(tmp_path))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "not a budget study" in done.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    done = ptlab("advise", "--seed-size", "5", "--budget", "10", "--results", str(empty))
    assert done.returncode == 2 and "no study.json" in done.stderr


def test_study_cli_quick_overrides_and_bad_override(tmp_path, ptlab):
    done = ptlab("study", "budget", "--quick", f"output_dir={tmp_path / 'q'}",
                     "axes.budget=[0]")
    assert done.returncode == 2 and done.stderr.startswith("error: axes.budget") and done.stderr.count("\n") == 1
