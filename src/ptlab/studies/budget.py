"""`ptlab study budget`: seed-set size × teacher budget × strategy, run end to end.

    check config → check the results directory → expand cells → build the held-out split
    → run the cells still missing (any executor) → store each as it finishes

The results directory holds `study.json` (format, fixed settings, cells),
`results.sqlite` (`ptlab.store`; see `BudgetCell.store_row` for the columns),
`runs.jsonl` (one line per invocation: cells run, teacher calls paid / cached),
and the cached steps `synth/`, `train/`, `eval/`, `data/`. A cell counts as
finished when it is stored *and* its evaluation output exists: delete a cell's
`eval/<fp>` and the next run re-evaluates that cell alone (its synthetic data
and training are reused, so no teacher call is paid again).
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from ptlab.atomic import write_json
from ptlab.fingerprint import fingerprint
from ptlab.store import ResultStore, package_versions
from ptlab.studies import manifest
from ptlab.studies.budget_cells import CELL_VERSION, BudgetPlan, expand, plan_cell
from ptlab.studies.budget_config import BudgetStudyConfig, check_config
from ptlab.studies.budget_steps import ACCOUNT_KEYS, ensure_eval_rows
from ptlab.studies.progress import StudyProgress

STUDY_FORMAT = "ptlab-study-budget/1"
MANIFEST = manifest.MANIFEST
DB = "results.sqlite"


@dataclass
class BudgetRun:
    root: Path
    cells: int
    ran: int
    skipped: int
    wall_s: float
    teacher: dict = field(default_factory=dict)  # accounting summed over the synth steps this run executed
    ran_ids: list[str] = field(default_factory=list)


def read_manifest(root: Path) -> dict | None:
    """The manifest of a budget study at `root`, None when there is none; ConfigError for anything else."""
    return manifest.read_manifest(root, STUDY_FORMAT, CELL_VERSION)


def check_results_dir(root: Path, cfg: BudgetStudyConfig) -> dict | None:
    return manifest.check_results_dir(root, STUDY_FORMAT, CELL_VERSION, cfg.fixed())


def prepare(cfg: BudgetStudyConfig) -> tuple[Path, list[BudgetPlan]]:
    """Validate everything and plan every cell; no work is done and nothing is written."""
    from ptlab.studies.loading import plan_study

    check_config(cfg)
    return plan_study(cfg, STUDY_FORMAT, CELL_VERSION, expand, plan_cell, DB)


def _forget(db: Path, cell_id: str) -> None:
    """Drop a stored cell whose evaluation output was deleted, so its re-evaluation can be stored."""
    with closing(sqlite3.connect(db, timeout=60)) as con, con:
        con.execute("DELETE FROM results WHERE cell_id = ?", (cell_id,))
        con.execute("DELETE FROM examples WHERE cell_id = ?", (cell_id,))


def write_manifest(root: Path, cfg: BudgetStudyConfig, plans: list[BudgetPlan], old: dict | None) -> None:
    cells = {c["cell_id"]: c for c in (old or {}).get("cells", [])}
    cells.update({p.cell.cell_id: {**p.cell.as_dict(), "config_hash": p.config_hash} for p in plans})
    write_json(root / MANIFEST, {
        "format": STUDY_FORMAT, "cell_version": CELL_VERSION, "fixed_hash": fingerprint(cfg.fixed()),
        "fixed": cfg.fixed(), "config": cfg.model_dump(mode="json"), "cells": list(cells.values()),
        "versions": package_versions(), "updated_at": time.time(),
    })


class _Progress(StudyProgress):
    def line(self, cell_id: str, result: dict) -> str:
        m = result["metrics"]
        acc = next((v for k, v in m.items() if k.endswith("/accuracy")), float("nan"))
        return (f"{cell_id}: accuracy {acc:.3f}  rows {m.get('synth/rows', 0):.0f}  "
                f"paid {result['run_teacher']['paid']}  ({result['timings']['train_s']:.0f}s train, "
                f"{result['timings']['eval_s']:.0f}s eval)")


def run_budget_study(cfg: BudgetStudyConfig, quiet: bool = False) -> BudgetRun:
    from ptlab.studies.budget_steps import run_budget_cell
    from ptlab.studies.executors import EXECUTORS

    t0 = time.perf_counter()
    root, plans = prepare(cfg)
    old = check_results_dir(root, cfg)
    root.mkdir(parents=True, exist_ok=True)
    store = ResultStore(root / DB)
    finished = store.finished()
    manifest.refuse_stale_cells(root, finished, {p.cell.cell_id: p.config_hash for p in plans})
    todo = []
    for p in plans:
        done = p.cell.cell_id in finished and (p.eval.path / "metrics.json").is_file()
        if p.cell.cell_id in finished and not done:
            _forget(root / DB, p.cell.cell_id)
        if not done:
            todo.append(p)
    write_manifest(root, cfg, plans, old)
    for plan in todo[:1]:  # one held-out split for every cell: build it here, before any worker starts
        for step in plan.eval_files.values():
            ensure_eval_rows(step.path, plan.eval_data)
    progress = _Progress(len(plans), len(plans) - len(todo), enabled=not quiet)
    paid = dict.fromkeys(ACCOUNT_KEYS, 0)
    ran = []
    try:
        run = EXECUTORS[cfg.executor](todo, cfg.workers, progress.event, address=cfg.ray_address,
                                      threads=cfg.threads, runner=run_budget_cell)
        for plan, result in run:
            store.add_cell(result["cell"], result["config_hash"], result["metrics"], result["examples"],
                           result["timings"])
            for k in ACCOUNT_KEYS:
                paid[k] += result["run_teacher"][k]
            ran.append(plan.cell.cell_id)
            progress.finished(plan.cell.cell_id, result)
    finally:
        progress.stop()
        with open(root / "runs.jsonl", "a") as f:
            f.write(json.dumps({"finished_at": time.time(), "cells": len(plans), "ran": ran, "teacher": paid}) + "\n")
    store.export(root / "results.csv")
    return BudgetRun(root, len(plans), len(todo), len(plans) - len(todo), time.perf_counter() - t0, paid, ran)
