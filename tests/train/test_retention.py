"""What a finished run keeps, and when it counts as finished: result.json before final/, retention: final."""

import json
from contextlib import contextmanager

import pytest

from ptlab.models import load
from ptlab.train.checkpoint import checkpoint_dirs, drop_checkpoints, finished_run
from ptlab.train.loop import train
from tests.train.test_loop import config


def tree_bytes(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_retention_final_keeps_only_the_final_model(tmp_path, capsys):
    keep = train(config(tmp_path, max_steps=6, save_every=2, output_dir=str(tmp_path / "keep")), quiet=True)
    slim = train(config(tmp_path, max_steps=6, save_every=2, output_dir=str(tmp_path / "slim"), retention="final"),
                 quiet=True)
    assert [p.name for p in checkpoint_dirs(keep.output_dir)] == ["step-0000002", "step-0000004"]
    assert sorted(p.name for p in slim.output_dir.iterdir()) == [".ptlab", ".ptlab.lock", "config.yaml", "final",
                                                                 "metrics.jsonl", "result.json"]
    assert finished_run(slim.output_dir) == slim.checkpoint
    model, _ = load(str(slim.checkpoint))
    assert sum(p.numel() for p in model.parameters()) > 0
    result = lambda r: json.loads((r.output_dir / "result.json").read_text())  # noqa: E731
    # retention is not part of the numbers: same hash (resume accepts either), same final weights
    assert result(keep)["config_hash"] == result(slim)["config_hash"]
    assert (keep.checkpoint / "model.safetensors").read_bytes() == (slim.checkpoint / "model.safetensors").read_bytes()
    saved = tree_bytes(keep.output_dir) - tree_bytes(slim.output_dir)
    assert abs(saved - tree_bytes(keep.output_dir / "checkpoints")) < 100  # config.yaml, timings in the log
    with capsys.disabled():
        print(f"\nretention: final saved {saved:,} of {tree_bytes(keep.output_dir):,} bytes (tiny-test, 2 checkpoints)")


def test_a_kill_between_result_and_final_leaves_an_unfinished_run(tmp_path, monkeypatch):
    cfg = config(tmp_path, max_steps=2)
    run = tmp_path / "run"

    @contextmanager
    def killed(target, what="output path"):
        assert (run / "result.json").is_file(), "final/ is being written before result.json"
        raise KeyboardInterrupt  # the kill, after result.json and before final/ is renamed into place
        yield

    monkeypatch.setattr("ptlab.train.loop.atomic_dir", killed)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, quiet=True)
    assert (run / "result.json").is_file() and not (run / "final").exists()
    assert finished_run(run) is None
    monkeypatch.undo()
    res = train(cfg, quiet=True)  # an unfinished run without checkpoints simply runs again
    assert finished_run(run) == res.checkpoint == run / "final"


def test_finished_run_needs_final_and_a_readable_result(tmp_path):
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    assert finished_run(run) is None  # final/ alone (an older ptlab killed after renaming it)
    (run / "result.json").write_text('{"metrics": {"loss": 0.')  # torn
    assert finished_run(run) is None
    (run / "result.json").write_text('{"metrics": {}, "steps": 2}')
    assert finished_run(run) == run / "final"
    (run / "checkpoints" / "step-0000002").mkdir(parents=True)
    (run / "checkpoints" / "step-0000002" / "optimizer.pt").write_bytes(b"x" * 10)
    (run / ".checkpoints.deleting-1").mkdir()  # left by a kill during an earlier deletion
    (run / ".checkpoints.deleting-1" / "scheduler.pt").write_bytes(b"y" * 5)
    assert drop_checkpoints(run) == 15
    assert sorted(p.name for p in run.iterdir()) == ["final", "result.json"]


def test_drop_checkpoints_refuses_an_unfinished_run(tmp_path):
    (tmp_path / "checkpoints" / "step-0000002").mkdir(parents=True)
    with pytest.raises(ValueError, match="not a finished run"):
        drop_checkpoints(tmp_path)
    assert (tmp_path / "checkpoints" / "step-0000002").is_dir()
