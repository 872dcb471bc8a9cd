"""Checkpoints: `save_pretrained` weights plus optimizer, scheduler and loop state, written atomically.

RNG streams are re-seeded from (seed, step, rank) at every step, so the loop
state (the step) restores them exactly and a resumed run reproduces an
uninterrupted one bit for bit on CPU.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from ptlab.atomic import atomic_dir, write_json

STATE = "trainer_state.json"


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.name.startswith("step-") and (p / STATE).is_file()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(output_dir: Path) -> Path | None:
    dirs = checkpoint_dirs(output_dir)
    return dirs[-1] if dirs else None


def save_checkpoint(output_dir: Path, step: int, model, tokenizer, optimizer, scheduler, state: dict, keep: int) -> Path:
    target = Path(output_dir) / "checkpoints" / f"step-{step:07d}"
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        write_json(tmp / STATE, {**state, "step": step})
    for old in checkpoint_dirs(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load_state(ckpt: Path) -> dict:
    return json.loads((Path(ckpt) / STATE).read_text())


def load_optimizer_and_scheduler(ckpt: Path, optimizer, scheduler) -> None:
    optimizer.load_state_dict(torch.load(Path(ckpt) / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(Path(ckpt) / "scheduler.pt", weights_only=False))
