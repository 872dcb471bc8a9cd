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
from ptlab.studies.grid.steps import prepare_worker, read_rows, run_eval, run_train
from ptlab.studies.spurious.cells import CellPlan
from ptlab.studies.spurious.design import data_metrics


def excluded_prompts(args: dict) -> set[int]:
    """Prompt keys a data step must not produce: the base's pretraining prompts (`exclude_file`) for evaluation,
    the evaluation prompts (`exclude_files`, every twin) for training."""
    import numpy as np

    from ptlab.tasks.base import prompt_key

    keys: set[int] = set()
    if args.get("exclude_file"):
        keys.update(int(k) for k in np.load(args["exclude_file"], allow_pickle=False))
    for path in args.get("exclude_files") or ():
        keys.update(prompt_key(r["prompt"]) for r in read_rows(Path(path)))
    return keys


def ensure_rows(path: Path, args: dict) -> None:
    """Build the rows `args` describe (a task's examples, with the base's own mistakes as rejected responses under
    `on_policy`) into a JSONL file unless it is already there."""
    if path.is_file():
        return
    from ptlab.tasks import SpuriousSpec, get_task
    from ptlab.tasks.rows import to_rows

    extra = {} if args.get("habit_share") is None else {"habit_share": args["habit_share"]}
    examples = get_task(args["task"]).generate(args["n"], seed=args["seed"], split=args["split"],
                                               spurious=SpuriousSpec(**args["spurious"]),
                                               exclude=excluded_prompts(args), **extra, **args["knobs"])
    if args.get("on_policy"):
        examples = on_policy_examples(path, args, examples)
    write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in to_rows(examples, args["fmt"])))


def on_policy_examples(path: Path, args: dict, examples: list) -> list:
    """The examples with the base's own verified-wrong samples as rejected responses; the yield and cost go beside
    the rows (`<rows>.on_policy.json`), written before them so finished rows always have their stats."""
    from ptlab.atomic import write_json
    from ptlab.data.on_policy import on_policy_rejected

    op = dict(args["on_policy"])
    examples, stats = on_policy_rejected(op.pop("model_dir"), args["task"], examples, seed=args["seed"], **op)
    write_json(on_policy_stats(path), stats)
    return examples


def on_policy_stats(path: Path) -> Path:
    return Path(path).with_suffix(".on_policy.json")


def build_data(plan: CellPlan) -> None:
    for split, step in plan.eval_files.items():  # first: training excludes every evaluation prompt
        ensure_rows(step.path, plan.eval_data[split])
    if plan.data is not None:
        ensure_rows(plan.data.path, plan.train_data)


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
    metrics.update(data_metrics(read_rows(plan.data.path) if plan.data else None,
                                {split: read_rows(step.path) for split, step in plan.eval_files.items()},
                                plan.eval_data["eval_id"]["n"]))
    stats = on_policy_stats(plan.data.path) if plan.data else None
    if stats is not None and stats.is_file():
        s = json.loads(stats.read_text())
        metrics.update({"data/on_policy_yield": s["yield"], "data/on_policy_seconds": s["seconds"],
                        "data/on_policy_samples": s["samples_drawn"]})
    metrics["time/wall_s"] = round(t3 - t0, 3)  # CPU seconds: what the cell would take alone on `threads` cores
    metrics["time/cpu_s"] = round(time.process_time() - cpu0, 3)
    for k in ("loss", "rewards/accuracies", "rewards/margins", "kl"):
        if isinstance(train_metrics.get(k), (int, float)):
            metrics[f"train/{k}"] = train_metrics[k]
    examples = []
    for r in result.records:
        base = {"id": r["id"], "shortcut_agrees": r["shortcut_agrees"]}
        if r["split"] != "pairs":
            examples.append({**base, "split": r["split"], "correct": r["correct"], "value": r.get("value")})
        for key in ("rank", "reward"):  # breaking pairs: one outcome per ranking view, its margin as the value
            if r["split"] == "pairs" and key in r:
                examples.append({**base, "split": f"pairs_{key}", "correct": r[key], "value": r.get(f"{key}_margin")})
    return {"cell": plan.cell.as_dict(), "config_hash": plan.config_hash, "metrics": metrics, "examples": examples,
            "timings": {"data_s": round(t1 - t0, 3), "train_s": round(t2 - t1, 3), "eval_s": round(t3 - t2, 3),
                        "cpu_s": round(time.process_time() - cpu0, 3)}}
