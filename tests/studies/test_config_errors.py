"""Bad studies fail before any work, with one line naming the field; results dirs are protected."""

import json
import subprocess
import sys

import pytest

from ptlab.errors import ConfigError
from ptlab.studies.cli import load_study_config
from ptlab.studies.grid.run import check_output_dir, run_grid
from ptlab.studies.spurious.study import STUDY

from .conftest import tiny_config


@pytest.mark.parametrize("key, value, message", [
    ("axes.task", ["math", "poetry"], "axes.task: unknown task 'poetry'"),
    ("axes.artifact", ["feature_ambiguity", "leakage"], "axes.artifact: unknown artifact 'leakage'"),
    ("axes.algorithm", ["sft", "ppo"], "axes.algorithm: unknown algorithm 'ppo'; choose from base, sft"),
    ("axes.rate", [0.1, 1.5], "axes.rate: 1.5 is outside [0, 1]"),
    ("axes.seed", [], "axes.seed: empty"),
    ("axes.rate", [0.1, 0.1], "axes.rate: repeated"),
    ("features.math.feature_ambiguity", "small_numbers", "features.math.feature_ambiguity"),
    ("features.math.feature_ambiguity", "nope", "not a feature of task 'math'"),
    ("train.params.sft", {"beta": 3}, "train.params.sft"),
])
def test_bad_axis_values_fail_before_any_work(tmp_path, key, value, message):
    out = tmp_path / "s"
    cfg = tiny_config(out, **{key: value})
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")) as e:
        run_grid(STUDY, cfg, quiet=True)
    assert "\n" not in str(e.value)
    assert not out.exists()


def test_unknown_field_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match="axes.temperature: unknown field"):
        load_study_config("spurious", None, [f"output_dir={tmp_path}", "axes.temperature=[1]"])


def test_results_dir_from_an_incompatible_version_is_refused(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "study.json").write_text(json.dumps({"format": "ptlab-study-spurious/0"}))
    with pytest.raises(ConfigError, match="incompatible"):
        check_output_dir(STUDY, tiny_config(out))
    assert sorted(p.name for p in out.iterdir()) == ["study.json"]


def test_non_study_dir_is_refused(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a ptlab study directory"):
        check_output_dir(STUDY, tiny_config(out))


def test_changed_fixed_settings_are_refused_naming_them(tiny_study):
    out, _ = tiny_study
    with pytest.raises(ConfigError, match=r"different fixed settings \(train.max_steps\)"):
        check_output_dir(STUDY, tiny_config(out, **{"train.max_steps": 3}))


def test_quick_and_overrides(tmp_path):
    cfg = load_study_config("spurious", None, ["workers=3", "axes.task=[math]"], quick=True)
    assert cfg.axes.seed == [0] and cfg.workers == 3 and cfg.axes.task == ["math"]
    assert cfg.data.n_train < 256 and "sft+dpo" not in cfg.axes.algorithm and len(cfg.tuning.grid["sft"]["lr"]) == 2
    yaml = tmp_path / "s.yaml"
    yaml.write_text("model: tiny-test\naxes: {seed: [4]}\n")
    cfg = load_study_config("spurious", str(yaml), [], quick=True)
    assert cfg.axes.seed == [4] and cfg.model == "tiny-test"


def test_shipped_configs_are_valid():
    from pathlib import Path

    from ptlab.studies.spurious.config import check_config

    root = Path(__file__).resolve().parents[2] / "configs"
    full = load_study_config("spurious", str(root / "study-spurious.yaml"), [])
    quick = load_study_config("spurious", str(root / "study-spurious-quick.yaml"), [])
    for cfg in (full, quick):
        check_config(cfg)
    assert len(full.axes.seed) == 5 and len(quick.axes.seed) == 1
    assert full.axes.algorithm == ["base", "sft", "dpo", "kto", "sft+dpo", "sft+kto"]
    # the shipped files are the built-in defaults and --quick, written out
    assert full.model_dump() == load_study_config("spurious", None, []).model_dump()
    assert quick.model_dump() == load_study_config("spurious", None, [], quick=True).model_dump()


def test_cli_bad_study_is_one_line_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ptlab", "study", "spurious", f"output_dir={tmp_path / 's'}",
                        "axes.algorithm=[sft,ppo]"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: axes.algorithm: unknown algorithm 'ppo'")
    assert r.stderr.strip().count("\n") == 0
