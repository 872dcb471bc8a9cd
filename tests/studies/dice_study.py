"""The smallest study: how often a fair die shows its top face, over die sizes and seeds.

It is the README's walkthrough of a new study (one module with a `Study`
subclass, one registry line) and the engine tests' subject: cells are cheap,
deterministic, write a verified step output, and can be told to sleep (to be
killed mid-run) or to die.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from ptlab.atomic import atomic_dir
from ptlab.config import Strict
from ptlab.fingerprint import fingerprint
from ptlab.report.document import Document
from ptlab.studies.study import Study


class DiceAxes(Strict):
    sides: list[int] = Field(default_factory=lambda: [2, 6])
    seed: list[int] = Field(default_factory=lambda: [0, 1])


class DiceConfig(Strict):
    study: Literal["dice"] = "dice"
    output_dir: str = "runs/study-dice"
    axes: DiceAxes = Field(default_factory=DiceAxes)
    rolls: int = Field(200, gt=0)
    sleep_s: float = Field(0.0, ge=0, description="each cell waits this long (tests kill a study mid-run)")
    executor: Literal["sequential", "processes", "ray"] = "sequential"
    workers: int = Field(1, gt=0)
    threads: int = Field(1, gt=0)
    ray_address: str | None = None

    def fixed(self) -> dict:
        return self.model_dump(mode="json", exclude={"axes", "output_dir", "executor", "workers", "ray_address",
                                                     "sleep_s"})


@dataclass(frozen=True)
class DiceCell:
    sides: int
    seed: int

    @property
    def cell_id(self) -> str:
        return f"d{self.sides}.s{self.seed}"

    def as_dict(self) -> dict:
        return {"cell_id": self.cell_id, **asdict(self)}


@dataclass(frozen=True)
class DicePlan:
    cell: DiceCell
    config_hash: str
    out: Path
    rolls: int
    sleep_s: float


def _digest(rolls: list[int]) -> str:
    return hashlib.sha256(json.dumps(rolls).encode()).hexdigest()


def read_rolls(out: Path) -> list[int] | None:
    """The cell's verified step output, or None when it is missing or does not match its recorded hash."""
    try:
        record = json.loads((out / "rolls.json").read_text())
        rolls = record["rolls"]
        return rolls if len(rolls) == record["n"] and _digest(rolls) == record["sha256"] else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def roll(plan: DicePlan, events=None) -> dict:
    """Run one cell: roll the die (cached in its step directory), then report the share of top faces."""
    note = (lambda phase: events(plan.cell.cell_id, phase)) if events else (lambda phase: None)
    t0 = time.perf_counter()
    rolls = read_rolls(plan.out)
    if rolls is None:
        time.sleep(plan.sleep_s)
        rng = random.Random(f"{plan.cell.seed}|{plan.cell.sides}")
        rolls = [rng.randint(1, plan.cell.sides) for _ in range(plan.rolls)]
        with atomic_dir(plan.out) as tmp:
            (tmp / "rolls.json").write_text(json.dumps({"rolls": rolls, "n": len(rolls), "sha256": _digest(rolls)}))
    if os.environ.get("DICE_DIE_ON") == plan.cell.cell_id:
        os._exit(9)  # its worker is killed between the step and the store (the OOM killer, say)
    note("data")
    note("train")
    top = [r == plan.cell.sides for r in rolls]
    note("eval")
    return {"cell": plan.cell.as_dict(), "config_hash": plan.config_hash,
            "metrics": {"top/share": sum(top) / len(top), "top/expected": 1 / plan.cell.sides},
            "examples": [{"id": str(i), "split": "rolls", "correct": t} for i, t in enumerate(top)],
            "timings": {"data_s": round(time.perf_counter() - t0, 3), "train_s": 0.0, "eval_s": 0.0}}


class DiceStudy(Study):
    name = "dice"
    help = "How often a fair die shows its top face (the smallest study: an example and the engine's test)."
    config_model = DiceConfig
    quick = {"output_dir": "runs/study-dice-quick", "axes": {"seed": [0]}}
    study_format = "ptlab-study-dice/1"
    cell_version = "dice-cell/1"
    axes = ("sides", "seed")
    runner = staticmethod(roll)

    def plan(self, cfg: DiceConfig, root: Path) -> list[DicePlan]:
        plans = []
        for sides in cfg.axes.sides:
            for seed in cfg.axes.seed:
                cell = DiceCell(sides, seed)
                fp = fingerprint(self.cell_version, cell.as_dict(), cfg.rolls)
                plans.append(DicePlan(cell, fp, root / "rolls" / fp, cfg.rolls, cfg.sleep_s))
        return plans

    def is_done(self, plan: DicePlan, root: Path) -> bool:
        return read_rolls(plan.out) is not None

    def progress_line(self, cell_id: str, result: dict) -> str:
        return f"{cell_id}: top face {result['metrics']['top/share']:.3f}"

    def write_report(self, root: Path, out: Path | None = None) -> Path:
        from ptlab.studies.grid.store import ResultStore

        res = ResultStore(root / "results.sqlite", create=False).results()
        table = res.pivot_table(index=["sides", "seed"], columns="metric", values="value").reset_index()
        doc = Document("Dice study")
        doc.table(table)
        out = Path(out) if out else root / "report"
        doc.write(out)
        return out / "report.md"


STUDY = DiceStudy()
