"""The budget study's grid: cells, references, fingerprints shared and kept apart, config errors."""

import pytest

from ptlab.errors import ConfigError
from ptlab.studies.budget.cells import expand, plan_cell
from ptlab.studies.budget.config import check_config
from ptlab.studies.budget.study import STUDY as BUDGET

from .budget_helpers import budget_config


def test_grid_expands_sizes_budgets_strategies_seeds_and_references(tmp_path):
    cfg = budget_config(tmp_path, axes={"seed_size": [4, 8], "budget": [4, 16], "seed": [0, 1]})
    cells = expand(cfg)
    ids = [c.cell_id for c in cells]
    assert len(ids) == len(set(ids)) == 1 + 2 * 2 * (1 + 3 * 2)
    assert ids[0] == "math.base"
    assert "math.default.S8.Q16.new_question.epochs.s1" in ids and "math.S4.seeds_only.epochs.s0" in ids
    c = next(c for c in cells if c.cell_id == "math.default.S8.Q16.new_question.epochs.s1")
    assert c.ratio == 2.0
    row = c.as_dict()  # what the store keeps: the budget study's own axes, under their own names
    assert {k: row[k] for k in BUDGET.axes} == {"task": "math", "regime": "default", "exposure": "epochs",
                                                 "seed_size": 8, "budget": 16, "strategy": "new_question", "seed": 1,
                                                 "ratio": 2.0}
    assert len(expand(budget_config(tmp_path, references=False))) == 3 * 3


def test_regimes_and_exposure_rules_multiply_the_strategy_cells_and_share_what_does_not_depend_on_them(tmp_path):
    cfg = budget_config(tmp_path, regimes={"default": {}, "one_path": {"answer_paths": 1}},
                        axes={"regime": ["default", "one_path"], "exposure": ["epochs", "steps"]},
                        train={"steps": 7})
    check_config(cfg)
    plans = {p.cell.cell_id: p for p in (plan_cell(cfg, c, tmp_path, "/m") for c in expand(cfg))}
    # base once; seeds_only per exposure (no teacher: every regime shares it); strategies per regime x exposure
    assert len(plans) == 1 + 2 + 2 * 2 * 3 * 3
    ep = plans["math.default.S4.Q16.answer_augmentation.epochs.s0"]
    st = plans["math.default.S4.Q16.answer_augmentation.steps.s0"]
    other = plans["math.one_path.S4.Q16.answer_augmentation.epochs.s0"]
    assert ep.synth.fingerprint == st.synth.fingerprint  # both rules train on the very same rows
    # ... made once: cells sharing a data step never run at the same time (a worker each would make it twice,
    # and the second would be refused the cell's teacher-ledger run, which the first drives)
    shared = {}
    for p in plans.values():
        if p.synth is not None:
            shared.setdefault(p.synth.fingerprint, []).append(p.wave)
    assert all(len(set(waves)) == len(waves) for waves in shared.values())
    assert ep.train.fingerprint != st.train.fingerprint
    assert st.train_config["max_steps"] == 7 and ep.train_config["max_steps"] is None
    assert other.synth.fingerprint != ep.synth.fingerprint  # the regime changes the teacher, hence the data
    assert other.synth_args["teacher"]["simulator"]["answer_paths"] == 1
    assert ep.synth_args["teacher"]["simulator"] == cfg.teacher.model_dump(mode="json")["simulator"]
    refs = [p for k, p in plans.items() if "seeds_only" in k]
    assert len({p.synth.fingerprint for p in refs}) == 1 and len({p.train.fingerprint for p in refs}) == 2


def test_fingerprints_share_eval_data_and_separate_everything_else(tmp_path):
    cfg = budget_config(tmp_path, axes={"seed_size": [4, 8], "budget": [4, 16], "seed": [0, 1]})
    plans = {p.cell.cell_id: p for p in (plan_cell(cfg, c, tmp_path, "/m") for c in expand(cfg))}
    evals = {p.eval_files["eval_id"].path for p in plans.values()}
    assert len(evals) == 1  # one held-out split for every cell
    for kind in ("synth", "train", "eval"):
        steps = [getattr(p, kind) for p in plans.values() if getattr(p, kind) is not None]
        assert len({s.fingerprint for s in steps}) == len(steps), kind
    again = {p.cell.cell_id: p for p in (plan_cell(cfg, c, tmp_path, "/m") for c in expand(cfg))}
    assert all(again[k].config_hash == p.config_hash for k, p in plans.items())
    # transport-only teacher settings do not change the data; the error rate does
    a = plans["math.default.S4.Q16.answer_augmentation.epochs.s0"]
    quiet = budget_config(tmp_path, axes={"seed_size": [4]}, teacher={"backend": "simulated", "model": "math",
                                                                       "concurrency": 3, "cache": False})
    b = next(plan_cell(quiet, c, tmp_path, "/m") for c in expand(quiet) if c.cell_id == a.cell.cell_id)
    assert b.synth.fingerprint == a.synth.fingerprint
    noisy = budget_config(tmp_path, teacher={"backend": "simulated", "model": "math", "simulator": {"answer_error": 0.3}})
    c = next(plan_cell(noisy, c, tmp_path, "/m") for c in expand(noisy) if c.cell_id == a.cell.cell_id)
    assert c.synth.fingerprint != a.synth.fingerprint
    seeds_only = [p for k, p in plans.items() if "seeds_only" in k]
    assert all(p.synth_args["strategy"] is None for p in seeds_only)
    assert plans["math.base"].train is None and plans["math.base"].synth is None


@pytest.mark.parametrize("change, field", [
    ({"axes": {"budget": [0, 4]}}, "axes.budget"),
    ({"axes": {"strategy": ["more_answers"]}}, "axes.strategy"),
    ({"axes": {"seed": []}}, "axes.seed"),
    ({"synth": {"queries": 5}}, "synth.queries"),
    ({"synth": {"temperatur": 0.5}}, "synth"),
    ({"teacher": {"backend": "simulated", "model": "docqa"}}, "teacher.model"),
    ({"teacher": {"backend": "hf", "model": "tiny-test"}}, "seeds.source"),
    ({"axes": {"regime": ["default", "harsh"]}}, "axes.regime"),
    ({"regimes": {"default": {"answer_paths": 0}}}, "regimes.default"),
    ({"regimes": {"default": {"answer_pahts": 2}}}, "regimes.default"),
    ({"teacher": {"backend": "hf", "model": "tiny-test"}, "seeds": {"source": "task"},
      "regimes": {"default": {"answer_paths": 2}}}, "regimes.default"),
    ({"axes": {"exposure": ["epochs", "tokens"]}}, "config: axes.exposure.1: Input should be 'epochs' or 'steps'"),
])
def test_bad_configs_fail_before_any_work_with_the_field_named(tmp_path, change, field):
    with pytest.raises(ConfigError) as e:
        check_config(budget_config(tmp_path, **change))
    assert str(e.value).startswith(field) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["study-budget", "study-budget-quick", "study-budget-sensitivity",
                                  "study-budget-real-teacher"])
def test_shipped_configs_are_valid_studies(name):
    from pathlib import Path

    from ptlab.config import load_config
    from ptlab.studies.budget.config import BudgetStudyConfig

    cfg = load_config(BudgetStudyConfig, Path(__file__).parents[2] / "configs" / f"{name}.yaml")
    check_config(cfg)
    if cfg.teacher.backend == "simulated":  # the student meets a wording it never read, from seeds and teacher alike
        assert cfg.seeds.knobs == cfg.teacher.task_knobs == {"wording": "alternate"}
    assert cfg.data.include_seeds


def test_quick_config_file_is_what_dash_dash_quick_runs():
    from pathlib import Path

    from ptlab.config import load_config, validate
    from ptlab.studies.budget.config import BudgetStudyConfig

    from_file = load_config(BudgetStudyConfig, Path(__file__).parents[2] / "configs" / "study-budget-quick.yaml")
    quick = validate(BudgetStudyConfig, BUDGET.quick)
    assert from_file.fixed() == quick.fixed() and from_file.axes == quick.axes
    assert from_file.output_dir == quick.output_dir


def test_another_regime_extends_a_study_like_another_axis_value(tmp_path):
    one = budget_config(tmp_path, regimes={"default": {}})
    two = budget_config(tmp_path, regimes={"default": {}, "one_path": {"answer_paths": 1}},
                        axes={"regime": ["default", "one_path"]})
    assert one.fixed() == two.fixed()  # the results directory of `one` is reused; its cells are not re-run
    plans = lambda cfg: {p.cell.cell_id: p.config_hash for p in (plan_cell(cfg, c, tmp_path, "/m") for c in expand(cfg))}  # noqa: E731
    a, b = plans(one), plans(two)
    assert set(a) < set(b) and all(b[k] == h for k, h in a.items())
