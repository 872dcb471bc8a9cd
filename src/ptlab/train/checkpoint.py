"""Checkpoints: `save_pretrained` weights plus optimizer, scheduler and loop state, written atomically.

RNG streams are re-seeded from (seed, step, rank) at every step, so the loop
state (the step) restores them exactly and a resumed run reproduces an
uninterrupted one bit for bit on CPU.

Checkpoints are data, never code: optimizer and scheduler states are loaded
with `torch.load(weights_only=True)`, which refuses any pickled object that is
not a tensor or a plain container. Each checkpoint records the size and SHA-256
of its files, so a torn or tampered checkpoint is detected on resume and the
previous intact one is used instead (said in one line).

A run is finished when both `final/` and `result.json` exist (`finished_run`): the
loop writes `result.json` first and renames `final/` into place last, so a kill
between the two leaves a run that resumes, never one that looks done without its
metrics. `retention: final` then deletes `checkpoints/` (`drop_checkpoints`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import torch

from ptlab.atomic import atomic_dir, write_json
from ptlab.errors import ConfigError

STATE = "trainer_state.json"
RESULT = "result.json"
FINAL = "final"
_CHUNK = 1 << 20
_TRASH = ".checkpoints.deleting-"


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.name.startswith("step-") and p.name[5:].isdigit() and (p / STATE).is_file()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _inventory(ckpt: Path) -> dict[str, list]:
    """{relative file name: [size, sha256]} for every file of a checkpoint but its state file."""
    files = sorted(p for p in Path(ckpt).rglob("*") if p.is_file() and p.name != STATE)
    return {str(p.relative_to(ckpt)): [p.stat().st_size, _digest(p)] for p in files}


def save_checkpoint(output_dir: Path, step: int, model, tokenizer, optimizer, scheduler, state: dict, keep: int) -> Path:
    target = Path(output_dir) / "checkpoints" / f"step-{step:07d}"
    with atomic_dir(target, "checkpoint") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        write_json(tmp / STATE, {**state, "step": step, "files": _inventory(tmp)})
    for old in checkpoint_dirs(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load_state(ckpt: Path) -> dict:
    return json.loads((Path(ckpt) / STATE).read_text())


def _safe_load(path: Path):
    """A torch file of tensors and plain containers; anything else is refused, never executed."""
    return torch.load(path, weights_only=True, map_location="cpu")


def verify_checkpoint(ckpt: Path) -> str | None:
    """None if `ckpt` is intact, else why not (one phrase)."""
    ckpt = Path(ckpt)
    try:
        state = load_state(ckpt)
        step = int(state["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"unreadable {STATE}"
    if ckpt.name != f"step-{step:07d}":
        return f"{STATE} says step {step}"
    files = state.get("files")
    if isinstance(files, dict):  # written by this ptlab: every byte is checked
        for name, expected in files.items():
            path = ckpt / name
            if not path.is_file():
                return f"{name} is missing"
            if [path.stat().st_size, _digest(path)] != list(expected):
                return f"{name} does not match its recorded checksum"
        return None
    for name in ("optimizer.pt", "scheduler.pt"):  # an older checkpoint: it must at least load as data
        try:
            _safe_load(ckpt / name)
        except Exception as e:  # noqa: BLE001 - any failure means: not usable
            return f"{name} cannot be loaded as plain tensors ({type(e).__name__})"
    return None


def latest_checkpoint(output_dir: Path, warn=None) -> Path | None:
    """The newest intact checkpoint; newer broken ones are reported through `warn` and skipped."""
    warn = warn or (lambda line: print(line, file=sys.stderr))
    dirs = checkpoint_dirs(output_dir)
    for ckpt in reversed(dirs):
        why = verify_checkpoint(ckpt)
        if why is None:
            return ckpt
        warn(f"warning: {ckpt}: {why}; resuming from an earlier checkpoint")
    if dirs:
        raise ConfigError(f"--resume: no intact checkpoint under {Path(output_dir) / 'checkpoints'}; "
                          "start a new run in another output_dir")
    return None


def load_optimizer_and_scheduler(ckpt: Path, optimizer, scheduler) -> None:
    for name, target in (("optimizer.pt", optimizer), ("scheduler.pt", scheduler)):
        try:
            state = _safe_load(Path(ckpt) / name)
        except Exception as e:  # noqa: BLE001 - pickle.UnpicklingError, RuntimeError, EOFError, ...
            raise ConfigError(f"{Path(ckpt) / name}: not a plain tensor file, refused to load "
                              f"({type(e).__name__})") from None
        target.load_state_dict(state)


def finished_run(output_dir: Path) -> Path | None:
    """`output_dir/final` if the run there finished — `final/` and a readable `result.json` — else None.

    What a study step should test instead of `final/` alone: a run killed after writing
    `result.json` but before `final/` was renamed into place is unfinished (and resumes).
    """
    out = Path(output_dir)
    final = out / FINAL
    if not final.is_dir():
        return None
    try:
        result = json.loads((out / RESULT).read_text())
    except (OSError, ValueError):
        return None
    return final if isinstance(result, dict) and "metrics" in result else None


def drop_checkpoints(output_dir: Path) -> int:
    """Delete `output_dir/checkpoints` of a finished run (retention: final); the bytes freed.

    The directory is first renamed out of the way, so it disappears at once: a kill midway
    leaves a hidden `.checkpoints.deleting-*` (removed by the next call) rather than a
    half-deleted checkpoint that resume would have to skip.
    """
    out = Path(output_dir)
    if finished_run(out) is None:
        raise ValueError(f"{out}: not a finished run; its checkpoints are what resume needs")
    freed = sum(_remove(trash) for trash in out.glob(f"{_TRASH}*"))  # left by a kill during an earlier call
    root = out / "checkpoints"
    if root.is_dir():
        trash = out / f"{_TRASH}{os.getpid()}"
        os.replace(root, trash)
        freed += _remove(trash)
    return freed


def _remove(tree: Path) -> int:
    size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    shutil.rmtree(tree, ignore_errors=True)
    return size
