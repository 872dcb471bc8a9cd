"""Running one cell: data → train → eval, each step skipped when its output exists.

Runs in the study's main process (sequential executor) or in a worker
(processes, Ray); everything it needs is in the `CellPlan`. Outputs are written
atomically, so a killed worker leaves either a finished step or nothing — except
training, which leaves checkpoints that the next run resumes from.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from ptlab.atomic import write_file, write_text
from ptlab.studies.cells import CellPlan


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


def _read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def run_train(plan: CellPlan) -> Path:
    """Train unless `final/` exists; resume from the latest checkpoint of an interrupted run. `base` cells: the base."""
    from ptlab.train.checkpoint import latest_checkpoint
    from ptlab.train.loop import train

    if plan.train is None:
        return Path(plan.model_dir)
    out = plan.train.path
    if (out / "final").is_dir():
        return out / "final"
    resume = out.is_dir() and latest_checkpoint(out) is not None
    if out.is_dir() and not resume:
        shutil.rmtree(out)  # killed before its first checkpoint: nothing to keep
    return train(plan.train_config, resume=resume, quiet=True).checkpoint


def reference_pair_logps(plan: CellPlan, pairs: list[dict]) -> np.ndarray:
    """The base model's log-probs of the held-out pairs, computed once per study and cached."""
    path = plan.ref_pairs.path
    if path.is_file():
        return np.load(path, allow_pickle=False)
    from ptlab.evaluate.ranking import pair_logps
    from ptlab.models import load

    model, tokenizer = load(plan.model_dir)
    arr = pair_logps(model, tokenizer, pairs, plan.max_length)
    write_file(path, lambda f: np.save(f, arr, allow_pickle=False))
    return arr


def run_eval(plan: CellPlan, checkpoint: Path, progress=None):
    from ptlab.atomic import atomic_dir
    from ptlab.evaluate.generate import GenerationSettings
    from ptlab.evaluate.run import EvalResult, evaluate_model
    from ptlab.models import load

    if (plan.eval.path / "metrics.json").is_file():
        return EvalResult.load(plan.eval.path)
    splits = {split: _read_rows(step.path) for split, step in plan.eval_files.items()}
    pairs = splits["eval_id"][: plan.n_pairs]
    # the implicit reward log π/π_base of the base itself is 0: only trained models get the reward view
    ref = reference_pair_logps(plan, pairs) if pairs and plan.train is not None else None
    model, tokenizer = load(str(checkpoint))
    result = evaluate_model(model, tokenizer, plan.cell.task, splits, GenerationSettings(**plan.eval_settings),
                            pairs=pairs or None, ref_logps=ref, progress=progress)
    with atomic_dir(plan.eval.path) as tmp:
        result.save(tmp)
    return result


def prepare_worker(threads: int) -> None:
    """What every cell sets first, in whichever process runs it: its torch threads, and quiet libraries."""
    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


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
