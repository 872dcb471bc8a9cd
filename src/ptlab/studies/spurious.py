"""`ptlab study spurious`: the spurious-correlation grid, run end to end.

    check config → check the results directory → expand cells → build data
    → run the cells still missing (any executor) → store each as it finishes

The results directory holds `study.json` (format, fixed settings, cell ids),
`results.sqlite` (see `ptlab.store`), and the cached steps: `data/`, `train/`,
`eval/`, `refpairs/`. A re-run with the same fixed settings does only what is
missing (more seeds or values on an axis are fine); different fixed settings
or a directory from an incompatible version are refused before any work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ptlab.atomic import write_json
from ptlab.fingerprint import fingerprint
from ptlab.store import ResultStore, package_versions
from ptlab.studies import manifest
from ptlab.studies.cells import CELL_VERSION, CellPlan, expand, plan_cell
from ptlab.studies.progress import StudyProgress
from ptlab.studies.spurious_config import StudyConfig, check_config

STUDY_FORMAT = "ptlab-study-spurious/1"
MANIFEST = manifest.MANIFEST
DB = "results.sqlite"


@dataclass
class StudyRun:
    root: Path
    cells: int
    ran: int
    skipped: int
    wall_s: float


def check_results_dir(root: Path, cfg: StudyConfig) -> dict | None:
    """The existing manifest if `root` holds a compatible study; a ConfigError if it holds anything else."""
    return manifest.check_results_dir(root, STUDY_FORMAT, CELL_VERSION, cfg.fixed())


def prepare(cfg: StudyConfig) -> tuple[Path, list[CellPlan]]:
    """Validate everything and plan every cell; no work is done and nothing is written."""
    from ptlab.studies.loading import plan_study

    check_config(cfg)
    return plan_study(cfg, STUDY_FORMAT, CELL_VERSION, expand, plan_cell, DB)


def write_manifest(root: Path, cfg: StudyConfig, plans: list[CellPlan], old: dict | None) -> None:
    ids = list(dict.fromkeys([*(old or {}).get("cells", []), *(p.cell.cell_id for p in plans)]))
    write_json(root / MANIFEST, {
        "format": STUDY_FORMAT, "cell_version": CELL_VERSION, "fixed_hash": fingerprint(cfg.fixed()),
        "fixed": cfg.fixed(), "config": cfg.model_dump(mode="json"), "cells": ids, "versions": package_versions(),
        "updated_at": time.time(),
    })


def run_study(cfg: StudyConfig, quiet: bool = False) -> StudyRun:
    from ptlab.studies.executors import EXECUTORS
    from ptlab.studies.steps import build_data

    t0 = time.perf_counter()
    root, plans = prepare(cfg)
    old = check_results_dir(root, cfg)
    root.mkdir(parents=True, exist_ok=True)
    store = ResultStore(root / DB)
    finished = store.finished()
    manifest.refuse_stale_cells(root, finished, {p.cell.cell_id: p.config_hash for p in plans})
    todo = [p for p in plans if p.cell.cell_id not in finished]
    write_manifest(root, cfg, plans, old)
    for plan in todo:  # data is cheap and shared: build it once, here, before any worker starts
        build_data(plan)
    progress = StudyProgress(len(plans), len(plans) - len(todo), enabled=not quiet)
    try:
        run = EXECUTORS[cfg.executor](todo, cfg.workers, progress.event, address=cfg.ray_address, threads=cfg.threads)
        for plan, result in run:
            store.add_cell(result["cell"], result["config_hash"], result["metrics"], result["examples"],
                           result["timings"])
            progress.finished(plan.cell.cell_id, result)
    finally:
        progress.stop()
    store.export(root / "results.csv")
    return StudyRun(root, len(plans), len(todo), len(plans) - len(todo), time.perf_counter() - t0)
