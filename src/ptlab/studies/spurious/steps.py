"""Running one spurious-study cell: data → train → eval, each step skipped when its output exists.

Runs in the study's main process (sequential executor) or in a worker
(processes, Ray); everything it needs is in the `CellPlan`. Outputs are written
atomically, so a killed worker leaves either a finished step or nothing — except
training, which leaves checkpoints that the next run resumes from.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ptlab.atomic import write_text
from ptlab.studies.grid.steps import prepare_worker, run_eval, run_train
from ptlab.studies.spurious.cells import CellPlan


def ensure_rows(path: Path, args: dict) -> None:
    """Build rows with `make_rows(**args)` into a JSONL file unless it is already there."""
    if path.is_file():
        return
    from ptlab.tasks import SpuriousSpec, make_rows

    a = dict(args)
    rows = make_rows(a.pop("task"), a.pop("fmt"), n=a.pop("n"), seed=a.pop("seed"),
                     spurious=SpuriousSpec(**a.pop("spurious")), split=a.pop("split"), **a.pop("knobs"))
    write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def build_data(plan: CellPlan) -> None:
    if plan.data is not None:
        ensure_rows(plan.data.path, plan.train_data)
    for split, step in plan.eval_files.items():
        ensure_rows(step.path, plan.eval_data[split])


def run_cell(plan: CellPlan, events=None) -> dict:
    """Run (or finish) one cell; returns what the store records. `events(cell_id, phase)` reports progress."""
    prepare_worker(plan.threads)
    note = (lambda phase: events(plan.cell.cell_id, phase)) if events else (lambda phase: None)
    t0, cpu0 = time.perf_counter(), time.process_time()
    build_data(plan)
    note("data")
    t1 = time.perf_counter()
    checkpoint = run_train(plan)
    note("train")
    t2 = time.perf_counter()
    result = run_eval(plan, checkpoint)
    note("eval")
    t3 = time.perf_counter()
    train_metrics = json.loads((plan.train.path / "result.json").read_text()).get("metrics", {}) if plan.train else {}
    metrics = dict(result.metrics)
    metrics["time/wall_s"] = round(t3 - t0, 3)  # CPU seconds: what the cell would take alone on `threads` cores
    metrics["time/cpu_s"] = round(time.process_time() - cpu0, 3)
    for k in ("loss", "rewards/accuracies", "rewards/margins", "kl"):
        if isinstance(train_metrics.get(k), (int, float)):
            metrics[f"train/{k}"] = train_metrics[k]
    examples = []
    for r in result.records:
        base = {"id": r["id"], "shortcut_agrees": r["shortcut_agrees"]}
        if r["split"] != "pairs":
            examples.append({**base, "split": r["split"], "correct": r["correct"]})
        for key in ("rank", "reward"):  # held-out pairs: one outcome per ranking view
            if r["split"] == "pairs" and key in r:
                examples.append({**base, "split": f"pairs_{key}", "correct": r[key]})
    return {"cell": plan.cell.as_dict(), "config_hash": plan.config_hash, "metrics": metrics, "examples": examples,
            "timings": {"data_s": round(t1 - t0, 3), "train_s": round(t2 - t1, 3), "eval_s": round(t3 - t2, 3),
                        "cpu_s": round(time.process_time() - cpu0, 3)}}
