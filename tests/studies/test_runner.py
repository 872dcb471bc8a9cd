"""The study runner: cells, caching, re-runs, the results database and exports."""

import json

import pandas as pd
import pytest

from ptlab.errors import ConfigError
from ptlab.studies.grid.run import run_grid
from ptlab.studies.grid.store import ResultStore, StoreError
from ptlab.studies.spurious.cells import expand
from ptlab.studies.spurious.config import check_config
from ptlab.studies.spurious.study import STUDY

from .conftest import tiny_config


def test_expand_orders_cells_and_names_them(tmp_path):
    cfg = tiny_config(tmp_path / "x", **{"axes.algorithm": ["sft", "dpo"], "axes.seed": [0, 1]})
    cells = expand(cfg)
    assert len(cells) == 2 * 2 * 2
    assert cells[0].cell_id == "math.feature_ambiguity.altogether_cue.r0.1.sft.s0"
    assert len({c.cell_id for c in cells}) == len(cells)


def test_controls_are_fa_cells_at_rates_0_and_1(tmp_path):
    """Controls: Feature Ambiguity only, rates 0 (negative) and 1 (positive), for the control algorithms and the
    base (its evaluation shared with every rate); Distributional Narrowness gets none."""
    cfg = tiny_config(tmp_path / "x", **{"axes.artifact": ["feature_ambiguity", "distributional_narrowness"],
                                         "axes.algorithm": ["base", "sft", "dpo"], "controls.algorithms": ["sft"]})
    cells = expand(cfg)
    controls = [c for c in cells if c.rate in (0.0, 1.0)]
    assert {(c.artifact, c.rate, c.algorithm) for c in controls} == {
        ("feature_ambiguity", r, a) for r in (0.0, 1.0) for a in ("base", "sft")}
    assert len(cells) == 2 * 2 * 3 + len(controls)
    plans = {c.cell_id: STUDY.plan_cell(cfg, c, tmp_path, str(tmp_path)) for c in cells}
    # every rate of a feature is evaluated on the same items: controls included
    fa = [p for p in plans.values() if p.cell.artifact == "feature_ambiguity"]
    assert len({tuple(sorted(f.fingerprint for f in p.eval_files.values())) for p in fa}) == 1
    assert set(fa[0].eval_files) == {"eval_id", "eval_break", "eval_neutral"}
    # the training data of each rate differs, and never holds an evaluation prompt's file out of its fingerprint
    train = {p.cell.rate: p.data.fingerprint for p in fa if p.cell.algorithm == "sft"}
    assert len(set(train.values())) == 4
    with pytest.raises(ConfigError, match="controls.rates: 0.5 is not a control"):
        check_config(tiny_config(tmp_path / "y", **{"controls.rates": [0.5]}))
    with pytest.raises(ConfigError, match="controls.algorithms: unknown algorithm 'ppo'"):
        check_config(tiny_config(tmp_path / "y", **{"controls.algorithms": ["ppo"]}))


def test_study_runs_every_cell_and_stores_metrics(tiny_study):
    out, run = tiny_study
    assert (run.cells, run.ran, run.skipped) == (2, 2, 0)
    store = ResultStore(out / "results.sqlite", create=False)
    df = store.results()
    assert set(df["cell_id"]) == {"math.feature_ambiguity.altogether_cue.r0.1.sft.s0",
                                  "math.feature_ambiguity.altogether_cue.r0.9.sft.s0"}
    acc = df[df["metric"] == "eval_break/accuracy"]
    assert len(acc) == 2 and acc["value"].between(0, 1).all()
    assert (df[df["metric"] == "eval_id/n"]["value"] == 8).all()
    row = df.iloc[0]
    assert row["seed"] == 0 and len(row["config_hash"]) == 16 and row["train_s"] >= 0
    assert "torch" in json.loads(row["versions"])
    ex = store.examples()
    assert len(ex[ex["split"] == "eval_break"]) == 2 * 8 and len(ex[ex["split"] == "pairs_rank"]) == 2 * 4
    # the shortcut-breaking examples are the same for both rates (paired comparisons)
    ids = ex[ex["split"] == "eval_break"].groupby("cell_id")["example_id"].apply(sorted).tolist()
    assert ids[0] == ids[1]
    assert pd.read_csv(out / "results.csv").shape[0] == len(df)
    manifest = json.loads((out / "study.json").read_text())
    assert len(manifest["cells"]) == 2 and manifest["format"].startswith("ptlab-study-spurious/")


def test_rerun_does_nothing_and_more_seeds_run_only_the_new_cells(tiny_study, tmp_path):
    out, _ = tiny_study
    before = ResultStore(out / "results.sqlite").results()
    again = run_grid(STUDY, tiny_config(out), quiet=True)
    assert (again.ran, again.skipped) == (0, 2)
    after = ResultStore(out / "results.sqlite").results()
    pd.testing.assert_frame_equal(before, after)


def test_export_parquet_and_refuses_to_overwrite_a_cell(tiny_study, tmp_path):
    out, _ = tiny_study
    store = ResultStore(out / "results.sqlite")
    path = store.export(tmp_path / "r.parquet")
    assert pd.read_parquet(path).shape == store.results().shape
    with pytest.raises(StoreError, match="unsupported format"):
        store.export(tmp_path / "r.xlsx")
    cell = store.results().iloc[0]
    with pytest.raises(StoreError, match="never overwritten"):
        store.add_cell({k: cell[k] for k in ("cell_id", "task", "artifact", "feature", "rate", "algorithm", "seed")},
                       "x", {"m": 1.0}, [], {})


def test_incompatible_store_format_is_refused(tmp_path):
    import sqlite3

    db = tmp_path / "results.sqlite"
    ResultStore(db, STUDY.axes)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE meta SET value = 'ptlab-results/0' WHERE key = 'format'")
    with pytest.raises(StoreError, match="format 'ptlab-results/0'.*re-run the study into a new output_dir"):
        ResultStore(db)


def test_cells_computed_from_other_inputs_are_refused(tiny_study, monkeypatch):
    import ptlab.studies.spurious.cells as cells
    from ptlab.errors import ConfigError

    out, _ = tiny_study
    monkeypatch.setattr(cells, "CELL_VERSION", "spurious-cell/other")
    with pytest.raises(ConfigError, match="computed from different inputs"):
        run_grid(STUDY, tiny_config(out), quiet=True)


def test_base_cells_evaluate_the_untrained_model_once_for_all_seeds(tmp_path):
    cfg = tiny_config(tmp_path / "b", **{"axes.algorithm": ["base", "sft"], "axes.rate": [0.9], "axes.seed": [0, 1]})
    base = [p for p in STUDY.plan(cfg, (tmp_path / "b").resolve()) if p.cell.algorithm == "base"]
    assert len(base) == 2 and all(p.train is None and p.data is None and p.train_config is None for p in base)
    assert base[0].eval.path == base[1].eval.path  # greedy decoding of one model: one evaluation, shared
    run = run_grid(STUDY, cfg, quiet=True)
    assert (run.cells, run.ran) == (4, 4)
    assert len(list((tmp_path / "b" / "train").iterdir())) == 2  # only the sft cells trained
    assert len(list((tmp_path / "b" / "eval").iterdir())) == 3
    store = ResultStore(tmp_path / "b" / "results.sqlite", create=False)
    df = store.results().pivot_table(index="cell_id", columns="metric", values="value")
    b0, b1 = (df.loc[f"math.feature_ambiguity.altogether_cue.r0.9.base.s{s}"] for s in (0, 1))
    assert b0["eval_id/accuracy"] == b1["eval_id/accuracy"] and b0["eval_break/accuracy"] == b1["eval_break/accuracy"]
    ex = store.examples()
    base_ex = ex[ex["cell_id"].str.contains(".base.")]
    assert set(base_ex["split"]) == {"eval_id", "eval_break", "eval_neutral", "pairs_rank"}  # no reward: π/π_base is 1
    assert "pairs_reward" in set(ex[ex["cell_id"].str.contains(".sft.")]["split"])
