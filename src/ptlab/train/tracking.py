"""Metrics: (sum, count) accumulation across micro-batches and processes, and the JSONL log."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import torch

from ptlab.atomic import write_text


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


class MetricAccumulator:
    """Adds (sum, count) pairs; `reduce` sums them over processes and returns means."""

    def __init__(self):
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, float] = defaultdict(float)

    def add(self, metrics: dict) -> None:
        for name, (s, c) in metrics.items():
            self.sums[name] += float(s)
            self.counts[name] += float(c)

    def add_value(self, name: str, value: float, count: float = 1.0) -> None:
        self.sums[name] += value * count
        self.counts[name] += count

    def reduce(self, accelerator=None) -> dict[str, float]:
        names = sorted(self.sums)
        if not names:
            return {}
        if accelerator is not None and accelerator.num_processes > 1:
            t = torch.tensor([[self.sums[n] for n in names], [self.counts[n] for n in names]],
                             dtype=torch.float64, device=accelerator.device)
            t = accelerator.reduce(t, reduction="sum").cpu()
            sums, counts = t[0].tolist(), t[1].tolist()
        else:
            sums, counts = [self.sums[n] for n in names], [self.counts[n] for n in names]
        out = {n: s / c for n, s, c in zip(names, sums, counts) if c > 0}
        if "rewards/chosen" in out and "rewards/rejected" in out and "rewards/margins" not in out:
            out["rewards/margins"] = out["rewards/chosen"] - out["rewards/rejected"]
        return out


def _parsed(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


class JsonlLog:
    """`metrics.jsonl`: one JSON record a line, appended as training goes.

    On resume, lines logged after the checkpoint are dropped, and so is a line a
    kill tore in half (said in one line), so the log reads as one clean run.
    """

    def __init__(self, path: Path, truncate_after_step: int | None = None, warn=None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_after_step is not None and self.path.exists():
            lines = [line for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines()
                     if line.strip()]
            records = [_parsed(line) for line in lines]
            torn = sum(r is None for r in records)
            if torn:
                (warn or _stderr)(f"warning: {self.path}: dropped {torn} torn line(s) left by an interrupted run")
            keep = [line for line, r in zip(lines, records) if r is not None and r.get("step", 0) <= truncate_after_step]
            write_text(self.path, "".join(k + "\n" for k in keep))
        elif truncate_after_step is None and self.path.exists():
            self.path.unlink()

    def write(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        records = (_parsed(line) for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines())
        return [r for r in records if r is not None]
