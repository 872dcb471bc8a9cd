"""Resume that heals and checkpoints that are data: torn logs, corrupt or crafted checkpoints, moved runs,
output directories ptlab did not make, and the permissions of what it writes."""

import hashlib
import json
import os
import pickle
import shutil
import stat

import pytest
import torch
from safetensors.torch import load_file

from ptlab.errors import ConfigError
from ptlab.train.checkpoint import checkpoint_dirs, latest_checkpoint, load_optimizer_and_scheduler
from ptlab.train.loop import train
from tests.train.test_loop import config


def same_weights(a, b) -> bool:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One uninterrupted run with checkpoints at steps 4 and 6 of 8 (the reference), plus its config."""
    tmp = tmp_path_factory.mktemp("finished")
    cfg = config(tmp, max_steps=8, save_every=2, output_dir=str(tmp / "full"))
    return cfg, train(cfg, quiet=True)


def partial_copy(finished, dest):
    """A copy of the finished run as a kill after step 6 leaves it: checkpoints and log, no final model."""
    cfg, res = finished
    shutil.copytree(res.output_dir, dest, ignore=shutil.ignore_patterns("final", "result.json"))
    return {**cfg, "output_dir": str(dest)}


class Boom:
    """A pickle that runs a command when unpickled by anything but a weights-only loader."""

    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def test_torn_log_line_and_corrupt_newest_checkpoint_fall_back(finished, tmp_path, capsys):
    cfg = partial_copy(finished, tmp_path / "run")
    run = tmp_path / "run"
    assert [p.name for p in checkpoint_dirs(run)] == ["step-0000004", "step-0000006"]
    newest = run / "checkpoints" / "step-0000006" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # torn by a crash
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 8, "loss": 0.')  # a line cut by the kill
    res = train(cfg, resume=True, quiet=True)
    err = capsys.readouterr().err
    assert "step-0000006: model.safetensors does not match its recorded checksum" in err
    assert "dropped 1 torn line(s)" in err
    assert same_weights(finished[1].checkpoint, res.checkpoint)
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8]


def test_resume_of_a_moved_run_directory(finished, tmp_path):
    partial_copy(finished, tmp_path / "before")
    shutil.move(tmp_path / "before", tmp_path / "after")
    res = train({**finished[0], "output_dir": str(tmp_path / "after")}, resume=True, quiet=True)
    assert same_weights(finished[1].checkpoint, res.checkpoint)


def test_crafted_optimizer_state_is_refused_not_run(finished, tmp_path):
    sentinel = tmp_path / "pwned"
    cfg = partial_copy(finished, tmp_path / "run")
    ckpts = checkpoint_dirs(tmp_path / "run")
    for ckpt in ckpts:  # the attacker also rewrites the recorded checksums so verification passes
        (ckpt / "optimizer.pt").write_bytes(pickle.dumps(Boom(sentinel)))
        state = json.loads((ckpt / "trainer_state.json").read_text())
        good = ckpt / "optimizer.pt"
        state["files"]["optimizer.pt"] = [good.stat().st_size, hashlib.sha256(good.read_bytes()).hexdigest()]
        (ckpt / "trainer_state.json").write_text(json.dumps(state))
    with pytest.raises(ConfigError, match=r"optimizer\.pt: not a plain tensor file, refused to load"):
        train(cfg, resume=True, quiet=True)
    assert not sentinel.exists()
    with pytest.raises(ConfigError, match="refused to load"):
        load_optimizer_and_scheduler(ckpts[-1], torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1), None)
    assert not sentinel.exists()


def test_crafted_legacy_checkpoint_is_skipped_without_running(finished, tmp_path, capsys):
    """A checkpoint without recorded checksums (older ptlab) must still load as plain tensors, or is skipped."""
    sentinel = tmp_path / "pwned"
    partial_copy(finished, tmp_path / "run")
    newest = checkpoint_dirs(tmp_path / "run")[-1]
    state = json.loads((newest / "trainer_state.json").read_text())
    state.pop("files")
    (newest / "trainer_state.json").write_text(json.dumps(state))
    (newest / "scheduler.pt").write_bytes(pickle.dumps(Boom(sentinel)))
    assert latest_checkpoint(tmp_path / "run").name == "step-0000004"
    assert "scheduler.pt cannot be loaded as plain tensors" in capsys.readouterr().err
    assert not sentinel.exists()


def test_no_intact_checkpoint_is_one_clear_error(finished, tmp_path):
    cfg = partial_copy(finished, tmp_path / "run")
    for ckpt in checkpoint_dirs(tmp_path / "run"):
        (ckpt / "optimizer.pt").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="no intact checkpoint"):
        train(cfg, resume=True, quiet=True)


def test_resume_uses_the_thread_count_the_run_was_written_with(finished, tmp_path):
    """CPU float sums depend on the thread count; the checkpoint records it so a resumed run is bit-identical."""
    cfg = partial_copy(finished, tmp_path / "run")
    before = torch.get_num_threads()
    state = json.loads((checkpoint_dirs(tmp_path / "run")[-1] / "trainer_state.json").read_text())
    assert state["torch_threads"] == before
    torch.set_num_threads(1 if before > 1 else 2)
    try:
        res = train(cfg, resume=True, quiet=True)
    finally:
        torch.set_num_threads(before)
    assert same_weights(finished[1].checkpoint, res.checkpoint)


@pytest.mark.parametrize("what", ["user_dir", "file", "under_file"])
def test_output_dir_ptlab_did_not_make_is_refused_before_any_work(tmp_path, what):
    target = tmp_path / "mine"
    if what == "user_dir":
        target.mkdir()
        (target / "notes.txt").write_text("my notes")
        (target / "metrics.jsonl").write_text("my metrics\n")
    elif what == "file":
        target.write_text("my file")
    else:
        target.write_text("my file")
        target = target / "run"
    cfg = config(tmp_path, max_steps=2, output_dir=str(target))
    snapshot = lambda: sorted((p, p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file())  # noqa: E731
    before = snapshot()
    with pytest.raises(ConfigError, match="output_dir .*mine"):
        train(cfg, quiet=True)
    assert snapshot() == before


def test_outputs_have_the_umask_permissions(finished):
    res = finished[1]
    umask = os.umask(0o022)
    os.umask(umask)
    for path in [res.output_dir, res.checkpoint, *checkpoint_dirs(res.output_dir)]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o777 & ~umask, path
    for path in [res.checkpoint / "model.safetensors", res.output_dir / "result.json", res.output_dir / "config.yaml"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
