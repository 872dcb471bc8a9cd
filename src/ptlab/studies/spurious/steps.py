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
    """Every row file a cell reads, in dependency order: evaluation first (validation excludes it), then validation
    (training excludes both), its learning-curve formats, then each training stage's rows."""
    if plan.validation:
        args, step, excluded = plan.validation
        for eval_args, eval_step in excluded:
            ensure_rows(eval_step.path, eval_args)
        ensure_rows(step.path, args)
    for split, step in plan.eval_files.items():
        ensure_rows(step.path, plan.eval_data[split])
    for stage in plan.stages:
        if stage.curve is not None and not stage.curve.path.is_file():
            from ptlab.tasks.rows import reformat

            rows = reformat(read_rows(plan.validation[1].path), stage.data_args["fmt"])
            write_text(stage.curve.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        ensure_rows(stage.data.path, stage.data_args)


def train_stages(plan: CellPlan) -> Path:
    """Train each stage of the cell in order (each skipped when finished, resumed when interrupted); the last
    stage's final model, with its per-pair diagnostics (preference stages) beside it."""
    checkpoint = Path(plan.model_dir)
    for stage in plan.stages:
        checkpoint = run_train(stage)
    if plan.diagnostics is not None:
        ensure_diagnostics(plan, checkpoint)
    return checkpoint


PAIRS_FILE = "pair_diagnostics.jsonl"


def ensure_diagnostics(plan: CellPlan, checkpoint: Path) -> None:
    """Per-pair diagnostics of the last stage's training pairs (policy vs the model it started from), once."""
    out = plan.train.path / PAIRS_FILE
    if out.is_file():
        return
    from ptlab.evaluate.pair_diagnostics import pair_diagnostics
    from ptlab.models import load
    from ptlab.studies.grid.steps import eval_placement
    from ptlab.tasks.rows import pairs_of

    rows = pairs_of(read_rows(plan.data.path))[: plan.diagnostics["pairs"]]
    policy, tokenizer = load(str(checkpoint), **eval_placement())
    reference, _ = load(plan.reference_dir, **eval_placement())
    diags = pair_diagnostics(policy, reference, tokenizer, rows, beta=plan.diagnostics["beta"],
                             max_length=plan.max_length, keep=("id", "has_feature", "shortcut_agrees", "error"))
    write_text(out, "".join(json.dumps(d, sort_keys=True) + "\n" for d in diags))


def training_metrics(plan: CellPlan) -> dict:
    """The last stage's learning curve and convergence flag, its exposure, and its pair diagnostics' summary."""
    from ptlab.train.convergence import convergence_metrics

    if plan.train is None:
        return {}
    log = plan.train.path / "metrics.jsonl"
    history = read_rows(log) if log.is_file() else []
    cfg = plan.train_config
    out = convergence_metrics(history, points=len([h for h in history if "eval/loss" in h]) or 4)
    rows = read_rows(plan.data.path)
    prompts = len({r["id"] for r in rows})
    steps = history[-1]["step"] if history else 0
    out.update({"exposure/steps": steps, "exposure/prompts": prompts, "exposure/rows": len(rows),
                "exposure/rows_per_step": cfg["batch_size"], "exposure/stages": len(plan.stages),
                "exposure/prompt_passes": sum(_passes(s) for s in plan.stages), "train/lr": cfg["lr"]})
    if "beta" in cfg["params"]:
        out["train/beta"] = cfg["params"]["beta"]
    pairs = plan.train.path / PAIRS_FILE
    if pairs.is_file():
        from ptlab.evaluate.pair_diagnostics import grouped_summary

        out.update({f"diag/{k}": v for k, v in grouped_summary(read_rows(pairs)).items()})
    return out


def _passes(stage) -> float:
    """How many times a stage's training showed each prompt: steps × prompts a step / prompts."""
    log = stage.train.path / "metrics.jsonl"
    history = read_rows(log) if log.is_file() else []
    if not history:
        return 0.0
    rows = read_rows(stage.data.path)
    per_prompt = 2 if stage.data_args["fmt"] == "unpaired" else 1
    return history[-1]["step"] * stage.config["batch_size"] / per_prompt / max(1, len({r["id"] for r in rows}))


def run_cell(plan: CellPlan, events=None) -> dict:
    """Run (or finish) one cell; returns what the store records. `events(cell_id, phase)` reports progress."""
    prepare_worker(plan.threads)
    note = (lambda phase: events(plan.cell.cell_id, phase)) if events else (lambda phase: None)
    t0, cpu0 = time.perf_counter(), time.process_time()
    build_data(plan)
    note("data")
    t1 = time.perf_counter()
    checkpoint = train_stages(plan)
    note("train")
    t2 = time.perf_counter()
    result = run_eval(plan, checkpoint)
    note("eval")
    t3 = time.perf_counter()
    train_metrics = json.loads((plan.train.path / "result.json").read_text()).get("metrics", {}) if plan.train else {}
    metrics = dict(result.metrics)
    metrics.update(data_metrics(read_rows(plan.data.path) if plan.data else None,
                                {split: read_rows(step.path) for split, step in plan.eval_files.items()},
                                next(iter(plan.eval_data.values()))["n"],
                                read_rows(plan.validation[1].path) if plan.validation else ()))
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
    metrics.update(training_metrics(plan))
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
