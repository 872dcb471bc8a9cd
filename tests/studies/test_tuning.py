"""The comparison protocol: arms tuned on a validation split that no evaluation or training prompt is in, equal
exposure, the SFT → preference pipelines, learning curves and per-pair diagnostics in every preference cell."""

import json

import pandas as pd
import pytest

from ptlab.studies.grid.steps import read_rows
from ptlab.studies.spurious.tuning import SELECTION, SWEEP_DIR, choose, sweep_table
from tests.studies.conftest import tiny_config


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A tuned study: math FA at 0.1 / 0.9, sft and dpo and the pipeline, a 2-point lr grid each."""
    from ptlab.studies.grid.run import run_grid
    from ptlab.studies.spurious.study import STUDY

    out = tmp_path_factory.mktemp("tuned") / "s"
    cfg = tiny_config(out, **{
        "axes.algorithm": ["sft", "dpo", "sft+dpo"], "train": {"exposure": "epochs", "epochs": 1.0, "batch_size": 16,
                                                              "save_every": 0, "curve_points": 2},
        "data.n_train": 32, "tuning": {"enabled": True, "n_validation": 12, "grid": {
            "sft": {"lr": [1e-4, 1e-3]}, "dpo": {"lr": [1e-4, 1e-3], "beta": [0.1]}}}})
    run_grid(STUDY, cfg, quiet=True)
    return out, cfg, STUDY.plan(cfg, out)


def test_tuning_never_touches_an_evaluation_split(tuned):
    from ptlab.studies.grid.store import ResultStore
    from ptlab.tasks.base import prompt_key

    out, cfg, plans = tuned
    sweep = ResultStore(out / SWEEP_DIR / "results.sqlite", create=False)
    assert set(sweep.examples()["split"]) == {"validation"}  # the sweep is scored on validation alone
    validation = {prompt_key(r["prompt"]) for r in read_rows(plans[0].validation[1].path)}
    assert len(validation) == 12
    for plan in plans:
        for step in plan.eval_files.values():
            assert not validation & {prompt_key(r["prompt"]) for r in read_rows(step.path)}
        for stage in plan.stages:
            assert not validation & {prompt_key(r["prompt"]) for r in read_rows(stage.data.path)}


def test_each_arm_trains_with_what_validation_chose(tuned):
    out, cfg, plans = tuned
    table = sweep_table(out / SWEEP_DIR)
    assert sorted(table["arm"].unique()) == ["dpo", "sft", "sft+dpo"] and len(table) == 6
    chosen = json.loads((out / SELECTION).read_text())["math"]
    for arm, g in table.groupby("arm"):
        best = g.sort_values(["validation", "lr"], ascending=[False, True]).iloc[0]
        assert chosen[arm]["lr"] == best["lr"] and chosen[arm]["validation"] == best["validation"]
    for plan in plans:
        if plan.cell.algorithm == "sft+dpo":
            assert [s.config["lr"] for s in plan.stages] == [chosen["sft"]["lr"], chosen["sft+dpo"]["lr"]]
        else:
            assert plan.train_config["lr"] == chosen[plan.cell.algorithm]["lr"]


def test_choice_prefers_accuracy_then_the_smaller_learning_rate():
    table = pd.DataFrame([
        {"task": "t", "arm": "sft", "point": "lr=0.001", "lr": 1e-3, "params": {}, "validation": 0.5},
        {"task": "t", "arm": "sft", "point": "lr=0.0001", "lr": 1e-4, "params": {}, "validation": 0.5},
        {"task": "t", "arm": "dpo", "point": "lr=0.001,beta=0.5", "lr": 1e-3, "params": {"beta": 0.5}, "validation": 0.7},
        {"task": "t", "arm": "dpo", "point": "lr=0.0001,beta=0.1", "lr": 1e-4, "params": {"beta": 0.1}, "validation": 0.6},
    ])
    got = choose(table)["t"]
    assert got["sft"]["lr"] == 1e-4 and got["dpo"] == {"lr": 1e-3, "params": {"beta": 0.5}, "validation": 0.7,
                                                       "point": "lr=0.001,beta=0.5"}


def test_the_pipeline_starts_from_the_sft_cell_and_runs_after_it(tuned):
    out, cfg, plans = tuned
    by = {(p.cell.algorithm, p.cell.rate): p for p in plans}
    for rate in (0.1, 0.9):
        sft, pipe = by[("sft", rate)], by[("sft+dpo", rate)]
        assert pipe.stages[0].train == sft.train and pipe.wave == 1 and sft.wave == 0
        assert pipe.train_config["model"] == str(sft.train.path / "final") == pipe.reference_dir
        assert pipe.ref_pairs != by[("dpo", rate)].ref_pairs  # its implicit reward is against the SFT model


def test_arms_see_the_same_prompts_equally_often(tuned):
    from ptlab.studies.spurious.report import load_study

    out, cfg, plans = tuned
    _, cells, _, results = load_study(out, with_results=True)
    wide = results.pivot_table(index="cell_id", columns="metric", values="value").join(
        cells.set_index("cell_id")["algorithm"])
    steps = wide.groupby("algorithm")["exposure/steps"].unique()
    assert steps["sft"].tolist() == steps["dpo"].tolist() == [2]  # 32 prompts, 16 a step, one epoch
    passes = wide.groupby("algorithm")["exposure/prompt_passes"].first()
    assert passes["sft"] == passes["dpo"] == 1.0 and passes["sft+dpo"] == 2.0  # the pipeline: SFT, then DPO


def test_kto_batches_two_rows_a_prompt_under_equal_epochs(tmp_path):
    from ptlab.studies.spurious.cells import exposure

    cfg = tiny_config(tmp_path, **{"train": {"exposure": "epochs", "epochs": 2.0, "batch_size": 16}})
    assert exposure(cfg, "unpaired")["batch_size"] == 2 * exposure(cfg, "paired")["batch_size"] == 32
    assert exposure(cfg, "sft")["_steps"] == exposure(cfg, "unpaired")["_steps"] == 4  # 32 prompts × 2 / 16
    steps = tiny_config(tmp_path, **{"train": {"exposure": "steps", "max_steps": 3, "batch_size": 16}})
    assert exposure(steps, "unpaired") == {"batch_size": 16, "epochs": 2.0, "max_steps": 3}


def test_every_preference_cell_has_learning_curves_and_pair_diagnostics(tuned):
    out, cfg, plans = tuned
    for plan in plans:
        diag = plan.train.path / "pair_diagnostics.jsonl"
        if plan.cell.algorithm == "sft":
            assert not diag.exists()
            continue
        rows = read_rows(diag)
        assert len(rows) == len(read_rows(plan.data.path)) and {"d_chosen", "ranked_ideal", "ln_ches"} <= set(rows[0])
        history = read_rows(plan.train.path / "metrics.jsonl")
        assert [h["step"] for h in history if "eval/loss" in h] == [1, 2]  # curve_points: 2, over 2 steps


def test_a_rerun_reuses_the_sweep_and_every_cell(tuned):
    from ptlab.studies.grid.run import run_grid
    from ptlab.studies.spurious.study import STUDY

    out, cfg, plans = tuned
    before = (out / SELECTION).read_text()
    sweep_log = (out / SWEEP_DIR / "runs.jsonl").read_text().splitlines()
    run = run_grid(STUDY, cfg, quiet=True)
    assert run.ran == 0 and (out / SELECTION).read_text() == before
    after = (out / SWEEP_DIR / "runs.jsonl").read_text().splitlines()
    assert [json.loads(line)["ran"] for line in after[len(sweep_log):]] == [[], []]  # both rounds: nothing to run


def test_pair_diagnostics_are_stored_by_the_pairs_attributes(tuned):
    from ptlab.studies.spurious.protocol import diagnostics_table, wide_metrics
    from ptlab.studies.spurious.report import load_study

    out, cfg, plans = tuned
    _, cells, _, results = load_study(out, with_results=True)
    w = wide_metrics(results, cells).set_index("algorithm")
    for alg in ("dpo", "sft+dpo"):
        r = w.loc[alg].iloc[0]
        assert r["diag/all/n"] == 32 == r["diag/edit_small/n"] + r["diag/edit_large/n"]
        assert r["diag/chosen_longer/n"] + r["diag/chosen_not_longer/n"] == 32
        assert 0 <= r["diag/all/idealised_ranking_accuracy"] <= 1
    table = diagnostics_table(results, cells)
    assert set(table["arm"]) == {"dpo", "sft+dpo"} and "idealised" in table and "chosen ↓ share" in table


def test_a_study_killed_during_its_sweep_resumes(tmp_path, monkeypatch):
    """Measured: a study killed mid-sweep had written data/ and tuning/ but no study.json, so the same command then
    refused the directory as not a study's. The directory is the study's before the sweep starts."""
    import ptlab.studies.grid.run as engine
    from ptlab.studies.spurious.study import STUDY

    real = engine.run_grid
    out = tmp_path / "s"
    cfg = tiny_config(out, **{"train": {"exposure": "epochs", "epochs": 1.0, "batch_size": 16, "save_every": 0},
                              "tuning": {"enabled": True, "n_validation": 8, "grid": {"sft": {"lr": [1e-4, 1e-3]}}}})

    def killed(study, sweep_cfg, quiet=False):  # the sweep has built some rows when the kill comes
        (out / "data").mkdir(parents=True, exist_ok=True)
        (out / "data" / "partial.jsonl").write_text("")
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "run_grid", killed)
    with pytest.raises(KeyboardInterrupt):
        real(STUDY, cfg, quiet=True)
    monkeypatch.setattr(engine, "run_grid", real)
    run = real(STUDY, cfg, quiet=True)
    assert run.ran == 2 and json.loads((out / SELECTION).read_text())["math"]["sft"]["lr"] in (1e-4, 1e-3)
