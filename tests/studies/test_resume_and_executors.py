"""Slow checks: a study killed mid-cell resumes to the same results; executors agree."""

import signal
import subprocess
import sys
import time

import pytest
import yaml

from ptlab.studies.grid.run import run_grid
from ptlab.studies.grid.store import ResultStore
from ptlab.studies.spurious.study import STUDY

from .conftest import TINY, tiny_config

pytestmark = pytest.mark.slow


def _metrics(root):
    df = ResultStore(root / "results.sqlite", create=False).results()
    df = df[~df["metric"].str.startswith("time/")]  # timings differ run to run; everything else must not
    return df.set_index(["cell_id", "metric"])["value"].sort_index()


def test_killed_study_resumes_mid_cell_to_the_same_results(tmp_path):
    from ptlab.train.checkpoint import latest_checkpoint

    changes = {"axes": {**TINY["axes"], "rate": [0.9], "algorithm": ["dpo"]},
               "train": {"exposure": "steps", "max_steps": 40, "batch_size": 8, "save_every": 5}}
    cfg_path = tmp_path / "study.yaml"
    killed = tmp_path / "killed"
    cfg_path.write_text(yaml.safe_dump({**TINY, **changes, "output_dir": str(killed)}))
    proc = subprocess.Popen([sys.executable, "-m", "ptlab", "study", "spurious", str(cfg_path), "--no-report",
                             "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    ckpt = None
    while time.time() < deadline and proc.poll() is None:
        runs = list((killed / "train").glob("*")) if (killed / "train").is_dir() else []
        ckpt = next((latest_checkpoint(r) for r in runs if latest_checkpoint(r) is not None), None)
        if ckpt is not None:
            break
        time.sleep(0.2)
    assert ckpt is not None and proc.poll() is None, "the study finished or failed before a checkpoint was written"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (ckpt.parent.parent / "final").exists()
    assert ResultStore(killed / "results.sqlite").results().empty  # the interrupted cell is not stored

    resumed = run_grid(STUDY, tiny_config(killed, **{"axes.rate": [0.9], "axes.algorithm": ["dpo"], "train.max_steps": 40,
                                               "train.batch_size": 8, "train.save_every": 5}), quiet=True)
    assert resumed.ran == 1
    fresh = tmp_path / "fresh"
    run_grid(STUDY, tiny_config(fresh, **{"axes.rate": [0.9], "axes.algorithm": ["dpo"], "train.max_steps": 40,
                                    "train.batch_size": 8, "train.save_every": 5}), quiet=True)
    a, b = _metrics(killed), _metrics(fresh)
    assert a.index.equals(b.index)
    assert (a.fillna(-1) == b.fillna(-1)).all(), (a - b)[a != b]


def test_sequential_and_processes_give_the_same_results(tmp_path):
    seq = run_grid(STUDY, tiny_config(tmp_path / "seq", **{"axes.algorithm": ["sft", "kto"]}), quiet=True)
    par = run_grid(STUDY, tiny_config(tmp_path / "par", executor="processes", workers=2,
                                **{"axes.algorithm": ["sft", "kto"]}), quiet=True)
    assert seq.ran == par.ran == 4
    a, b = _metrics(tmp_path / "seq"), _metrics(tmp_path / "par")
    assert a.index.equals(b.index)
    assert (a.fillna(-1) == b.fillna(-1)).all()
