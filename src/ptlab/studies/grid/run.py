"""The one run loop of every study: check → plan → lock → store → run what is missing → export.

    check the config and the output directory (before any work)
    → plan every cell (fingerprinted steps; nothing written)
    → take the directory's lock (a second run on it exits with one line)
    → read the store: finished cells whose outputs are intact are skipped, others recomputed
    → write the manifest, run the study's shared steps, run the cells on the executor
    → store each cell as it finishes (one writer: this process), log the invocation, export

Killing it (SIGKILL included) loses only the cells in flight: workers exit with
their parent, finished cells are stored, and the same command resumes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ptlab.errors import ConfigError
from ptlab.studies.grid import manifest
from ptlab.studies.grid.executors import EXECUTORS
from ptlab.studies.grid.progress import StudyProgress
from ptlab.studies.grid.store import ResultStore
from ptlab.studies.study import GridRun, Study

DB = "results.sqlite"
RUNS_LOG = "runs.jsonl"


def check_output_dir(study: Study, cfg) -> tuple[Path, dict | None]:
    """(results root, its manifest or None); a ConfigError before any work if the directory is not this study's."""
    root = Path(cfg.output_dir).resolve()
    db = root / DB
    finished = ResultStore(db, study.axes, create=False).finished() if db.is_file() else {}
    old = manifest.check_results_dir(root, study.study_format, study.cell_version, cfg.fixed(), bool(finished))
    return root, old


def run_grid(study: Study, cfg, quiet: bool = False) -> GridRun:
    from ptlab.locks import hold_dir_lock

    t0 = time.perf_counter()
    study.check(cfg)
    root, old = check_output_dir(study, cfg)
    study.tune(cfg, root, quiet)  # choices the cells' plans depend on (e.g. hyper-parameters from a validation sweep)
    plans = study.plan(cfg, root)
    if not plans:
        raise ConfigError("axes: the grid has no cells")
    with hold_dir_lock(root, "output_dir"):
        store = ResultStore(root / DB, study.axes)
        finished = store.finished()  # read under the lock: what another run stored before is final
        manifest.refuse_stale_cells(root, finished, {p.cell.cell_id: p.config_hash for p in plans})
        todo = []
        for plan in plans:
            cid = plan.cell.cell_id
            if cid in finished and study.is_done(plan, root):
                continue
            if cid in finished:
                store.forget(cid)  # its outputs are gone or failed verification: recompute, never trust
            todo.append(plan)
        manifest.write_manifest(root, study, cfg, plans, old)
        study.prepare(cfg, root, todo)
        progress = StudyProgress(len(plans), len(plans) - len(todo), line=study.progress_line, enabled=not quiet)
        results: list[dict] = []
        try:
            for wave in sorted({getattr(p, "wave", 0) for p in todo}):  # a wave starts from what earlier ones trained
                run = EXECUTORS[cfg.executor]([p for p in todo if getattr(p, "wave", 0) == wave], cfg.workers,
                                              progress.event, address=cfg.ray_address, threads=cfg.threads,
                                              runner=study.runner)
                for plan, result in run:
                    store.add_cell(result["cell"], result["config_hash"], result["metrics"], result["examples"],
                                   result["timings"])
                    results.append(result)
                    progress.finished(plan.cell.cell_id, result)
        finally:
            progress.stop()
            summary = study.summarise(results)
            _log_invocation(root, len(plans), [r["cell"]["cell_id"] for r in results], summary)
        store.export(root / "results.csv")
    ran = [r["cell"]["cell_id"] for r in results]
    return GridRun(root, len(plans), len(todo), len(plans) - len(todo), time.perf_counter() - t0, summary, ran)


def _log_invocation(root: Path, cells: int, ran: list[str], summary: dict) -> None:
    """One line per invocation in runs.jsonl: which cells it ran and the study's totals (teacher calls paid...)."""
    with open(root / RUNS_LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps({"finished_at": time.time(), "cells": cells, "ran": ran, **summary}) + "\n")
