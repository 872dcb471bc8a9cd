import pytest

from ptlab.config import validate
from ptlab.studies.spurious.config import StudyConfig

TINY = {
    "model": "tiny-test",
    "executor": "sequential",
    "axes": {"task": ["math"], "artifact": ["feature_ambiguity"], "rate": [0.1, 0.9], "algorithm": ["sft"], "seed": [0]},
    "data": {"n_train": 32, "n_eval": 8, "n_pairs": 4},
    "train": {"exposure": "steps", "max_steps": 2, "batch_size": 16, "save_every": 1, "curve_points": 2},
    "tuning": {"enabled": False},  # the sweep has its own tests (tests/studies/test_tuning.py)
    "eval": {"max_new_tokens": {"math": 4}},
    "controls": {"algorithms": []},  # the controls' wiring has its own tests (test_controls_are_fa_cells_at_rates_0_and_1)
}


def tiny_config(out, **changes) -> StudyConfig:
    import copy

    data = copy.deepcopy(TINY)
    for key, value in changes.items():
        node = data
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    data["output_dir"] = str(out)
    return validate(StudyConfig, data)


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """One finished 2-cell study (tiny-test, a few steps), shared by the fast tests."""
    from ptlab.studies.grid.run import run_grid
    from ptlab.studies.spurious.study import STUDY

    out = tmp_path_factory.mktemp("study") / "s"
    run = run_grid(STUDY, tiny_config(out), quiet=True)
    return out, run
