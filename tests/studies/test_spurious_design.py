"""The spurious study's design checks: built data measured per cell, on-policy rejected responses, the base's card."""

import json

import pandas as pd
import pytest

from ptlab.studies.spurious.cells import expand
from ptlab.studies.spurious.design import check_table, data_metrics, eval_size_table, unseen_features
from ptlab.studies.spurious.steps import build_data
from ptlab.studies.spurious.study import STUDY

from .conftest import tiny_config


def _metrics_frame(cfg, root):
    """The `data/...` metrics every post-training cell would store, as the results table holds them."""
    from ptlab.studies.grid.steps import read_rows

    rows, cells = [], []
    for cell in expand(cfg):
        plan = STUDY.plan_cell(cfg, cell, root, str(root))
        build_data(plan)
        m = data_metrics(read_rows(plan.data.path), {s: read_rows(f.path) for s, f in plan.eval_files.items()},
                         cfg.data.n_eval)
        rows += [{"cell_id": cell.cell_id, **cell.as_dict(), "metric": k, "value": v} for k, v in m.items()]
        cells.append(cell.as_dict())
    return pd.DataFrame(rows), pd.DataFrame(cells)


def test_check_table_passes_on_built_data_and_flags_a_moving_marginal(tmp_path):
    cfg = tiny_config(tmp_path / "s", **{"axes.artifact": ["feature_ambiguity", "distributional_narrowness"],
                                         "data.n_train": 600, "data.n_eval": 40})
    results, cells = _metrics_frame(cfg, tmp_path)
    table = check_table(results, cells).set_index("artifact")
    assert bool(table.loc["feature_ambiguity", "ok"]) and bool(table.loc["distributional_narrowness", "ok"])
    agree = [float(v) for v in table.loc["feature_ambiguity", "agreement by rate"].split(", ")]
    assert agree[0] < 0.45 < 0.85 < agree[1]  # 0.1 + 0.9 * 1/4 and 0.9 + 0.1 * 1/4
    assert table.loc["distributional_narrowness", "inside share by rate"] == "0.10, 0.90"
    # a marginal that moves with the rate fails the check
    moved = results.copy()
    sel = (moved["metric"] == "data/label=+") & (moved["rate"] == 0.9)
    moved.loc[sel, "value"] += 0.3
    assert not bool(check_table(moved, cells).set_index("artifact").loc["feature_ambiguity", "ok"])
    sizes = eval_size_table(results, cells)
    assert set(sizes["split"]) == {"eval_id", "eval_break", "eval_neutral"} and (sizes["n"] == 40).all()


def test_training_rows_never_hold_an_evaluation_prompt(tmp_path):
    from ptlab.studies.grid.steps import read_rows

    cfg = tiny_config(tmp_path / "s", **{"axes.task": ["instruct"], "data.n_train": 800, "data.n_eval": 60,
                                         "features": {"instruct": {"feature_ambiguity": "urgent_cue"}}})
    plan = STUDY.plan_cell(cfg, expand(cfg)[-1], tmp_path, str(tmp_path))  # rate 0.9
    build_data(plan)
    evals = {r["prompt"] for f in plan.eval_files.values() for r in read_rows(f.path)}
    train = [r["prompt"] for r in read_rows(plan.data.path)]
    assert len(train) == 800 and not evals & set(train)
    assert len(evals) == 3 * 60  # three twins an item, every prompt distinct


def test_on_policy_rejected_responses_are_sampled_verified_and_costed(tmp_path):
    from ptlab.models import resolve
    from ptlab.studies.grid.steps import read_rows
    from ptlab.studies.spurious.steps import on_policy_stats

    model = str(resolve("tiny-test"))
    authored = tiny_config(tmp_path / "a", **{"axes.algorithm": ["dpo"], "data.n_train": 24, "axes.rate": [0.9]})
    sampled = tiny_config(tmp_path / "b", **{"axes.algorithm": ["dpo"], "data.n_train": 24, "axes.rate": [0.9],
                                             "data.rejected": "on_policy", "data.on_policy": {"samples": 2}})
    pa = STUDY.plan_cell(authored, expand(authored)[0], tmp_path / "a", model)
    pb = STUDY.plan_cell(sampled, expand(sampled)[0], tmp_path / "b", model)
    assert pa.data.fingerprint != pb.data.fingerprint and pa.train_data.get("on_policy") is None
    build_data(pb)
    rows = read_rows(pb.data.path)
    stats = json.loads(on_policy_stats(pb.data.path).read_text())
    sources = [json.loads(r["meta"])["rejected_source"] for r in rows]
    assert stats["examples"] == 24 and stats["on_policy"] == sources.count("on_policy") > 0
    assert stats["samples_drawn"] >= stats["on_policy"] and stats["seconds"] > 0
    from ptlab.tasks import get_task

    math = get_task("math")
    for r, src in zip(rows, sources):
        if src == "on_policy":
            assert r["error"] == "on_policy" and not math.verify(r["answer"], r["rejected"])["correct"]
    # SFT never sees a rejected response: no sampling for it
    sft = tiny_config(tmp_path / "c", **{"axes.algorithm": ["sft"], "data.rejected": "on_policy"})
    assert STUDY.plan_cell(sft, expand(sft)[0], tmp_path / "c", model).train_data.get("on_policy") is None


def test_a_feature_the_base_never_met_gets_a_warning(tmp_path, capsys):
    card = {"features_seen": {"math": ["altogether_cue"]}, "feature_twins": {}}
    assert unseen_features(card, [("math", "altogether_cue"), ("math", "verbosity")]) == [("math", "verbosity")]
    assert unseen_features(None, [("math", "verbosity")]) == []  # no ptlab card: nothing known, nothing said
    model = tmp_path / "base"
    model.mkdir()
    (model / "model_card.json").write_text(json.dumps({"name": "tiny", **card}))
    cfg = tiny_config(tmp_path / "s", **{"features": {"math": {"feature_ambiguity": "verbosity"}}})
    root = tmp_path / "s"
    root.mkdir()
    plans = [STUDY.plan_cell(cfg, c, root, str(model)) for c in expand(cfg)]
    STUDY.prepare(cfg, root, plans)
    err = capsys.readouterr().err
    assert "never met feature 'verbosity' of math" in err
    assert json.loads((root / "base_features.json").read_text())["features_seen"] == card["features_seen"]


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_controls_train_on_their_definition(tmp_path, rate):
    """Rate 1: every training cue names the behaviour; rate 0: agreement at chance (1/4 operations)."""
    from ptlab.studies.grid.steps import read_rows
    from ptlab.studies.spurious.cells import Cell

    cfg = tiny_config(tmp_path / "s", **{"data.n_train": 800})
    plan = STUDY.plan_cell(cfg, Cell("math", "feature_ambiguity", "altogether_cue", rate, "sft", 0), tmp_path,
                           str(tmp_path))
    build_data(plan)
    agree = sum(r["shortcut_agrees"] for r in read_rows(plan.data.path)) / 800
    assert agree == 1.0 if rate == 1.0 else 0.19 < agree < 0.31
