"""Running one budget-study cell: synth → train → eval, each step skipped when its output exists.

The synth step asks the teacher (through `ptlab.synth`: reply cache, budget,
accounting) for at most Q replies with one strategy, and (`data.include_seeds`)
adds the seed set's own solutions, which every strategy starts from. Rows whose
question is a held-out question are dropped and counted (`eval_overlap_removed`):
a student must never meet a test question in training, whoever wrote it. Train
and eval are the spurious study's steps (`ptlab.studies.spurious.steps.run_train` / `run_eval`). A cell
whose strategy produced no rows (Q smaller than one row's cost) is evaluated as
the base model. Outputs are written atomically; a killed worker leaves a
finished step or nothing (training leaves checkpoints that the next run resumes).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ptlab.atomic import atomic_dir, write_json, write_text
from ptlab.data.io import iter_jsonl
from ptlab.studies.budget.cells import BudgetPlan
from ptlab.studies.grid.steps import prepare_worker, run_eval, run_train

# Accounting keys summed over a run (what `ptlab study budget` reports it paid).
ACCOUNT_KEYS = ("requests", "paid", "cached", "awaited", "deduplicated", "failed", "skipped", "charged_failures",
                "prompt_tokens", "completion_tokens")


def ensure_eval_rows(path: Path, args: dict) -> None:
    """The held-out split as TRL SFT rows (with `answer`, `id`), built once for every cell."""
    if path.is_file():
        return
    from ptlab.tasks import make_rows

    a = dict(args)
    rows = make_rows(a.pop("task"), "sft", n=a.pop("n"), seed=a.pop("seed"), split=a.pop("split"), **a.pop("knobs"))
    write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def _seed_rows(args: dict, teacher) -> list[dict]:
    """The seed set with its own solutions (the `seeds_only` reference): no teacher query."""
    from ptlab.errors import ConfigError

    s = args["seeds"]
    if s["source"] == "simulated":
        examples = teacher.inner.seeds(args["n"], args["seed"])
    elif s["source"] == "task":
        from ptlab.tasks import get_task

        examples = get_task(args["task"]).generate(args["n"], seed=args["seed"], split="train", **s["knobs"])
    else:
        rows = [row for _, row in iter_jsonl(s["path"])][: args["n"]]
        if any(not r.get("completion") for r in rows):
            raise ConfigError(f"seeds.path: {s['path']}: the seed rows need a 'completion' in every row")
        return [{"prompt": r.get("prompt") or r["question"], "completion": r["completion"], "strategy": "seed",
                 "seed_id": str(r.get("id", i)), "cost": 0} for i, r in enumerate(rows)]
    return [{"prompt": e.prompt, "completion": e.chosen, "strategy": "seed", "seed_id": e.id, "cost": 0}
            for e in examples]


def _norm(text: str) -> str:
    return " ".join(text.split())


def drop_held_out(rows: list[dict], eval_path: str) -> tuple[list[dict], int]:
    """`rows` without those whose prompt is a held-out question, and how many were dropped."""
    held = {_norm(row["prompt"]) for _, row in iter_jsonl(eval_path)}
    kept = [r for r in rows if _norm(r["prompt"]) not in held]
    return kept, len(rows) - len(kept)


def run_synth(plan: BudgetPlan) -> tuple[dict, dict]:
    """(the step's record, what this call paid); the record holds rows' count, stats and teacher accounting.

    Each cell's spending is a run of its own in the durable teacher ledger (run id: the step's fingerprint),
    so a killed and restarted cell never pays past its Q; every cell shares the reply cache and its in-flight
    claims, so cells with nested budgets pay each distinct request once, whatever the executor."""
    out = plan.synth.path
    if (out / "synth.json").is_file():
        return json.loads((out / "synth.json").read_text()), dict.fromkeys(ACCOUNT_KEYS, 0)
    from ptlab.synth import BudgetConfig, make_teacher

    args = plan.synth_args
    strategy = args["strategy"]
    budget = (BudgetConfig(max_queries=strategy["queries"], run_id=f"budget-{plan.synth.fingerprint}")
              if strategy else None)
    # the shared durable cache, where the backend allows; closed on leaving, not at GC time
    with make_teacher(args["teacher"], budget=budget) as teacher:
        rows, stats = _synth_rows(args, teacher)
        rows, stats["eval_overlap_removed"] = drop_held_out(rows, args["eval_path"])
        account = {k: teacher.accounting.as_dict()[k] for k in ACCOUNT_KEYS}
        record = {"stats": stats, "teacher": teacher.report(), "rows": len(rows),
                  "unique_prompts": len({_norm(r["prompt"]) for r in rows}),
                  "unique_pairs": len({(_norm(r["prompt"]), _norm(r["completion"])) for r in rows})}
        with atomic_dir(out) as tmp:
            write_text(tmp / "data.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
            write_json(tmp / "synth.json", record)
        if strategy:
            teacher.complete_run()  # the data is safely written: this cell's run is over
    return record, account


def _synth_rows(args: dict, teacher) -> tuple[list[dict], dict]:
    """The cell's training rows and the strategy's statistics: the seed rows alone (seeds_only), or what the
    strategy generated under Q, after the seed rows where `include_seeds`."""
    from ptlab.synth.run import SeedsConfig, load_seeds
    from ptlab.synth.strategies import StrategyConfig, run_strategy
    from ptlab.tasks import get_task

    strategy = args["strategy"]
    if strategy is None:
        rows = _seed_rows(args, teacher)
        return rows, {"strategy": "seeds_only", "seeds": args["n"], "rows": len(rows), "queries_used": 0,
                      "queries_paid": 0, "generated_rows": 0}
    seeds = load_seeds(SeedsConfig(task=args["task"], n=args["n"], seed=args["seed"], **args["seeds"]), teacher)
    result = run_strategy(teacher, seeds, StrategyConfig(**strategy), task=get_task(args["task"]))
    rows, stats = result.rows, {k: v for k, v in result.stats.items() if k != "teacher"}
    stats["generated_rows"] = len(rows)
    if args.get("include_seeds"):
        rows = _seed_rows(args, teacher) + rows
    return rows, stats


def _eval_overlap(plan: BudgetPlan) -> int:
    """Training rows whose question is one of the held-out questions, as trained on (0 unless the filter failed)."""
    rows = [row for _, row in iter_jsonl(plan.synth.path / "data.jsonl")]
    return len(rows) - len(drop_held_out(rows, next(iter(plan.eval_files.values())).path)[0])


def _synth_metrics(record: dict) -> dict:
    """The step's numbers as metrics; `synth/rows` counts what is trained on (seed rows included)."""
    m = {f"synth/{k}": v for k, v in record["stats"].items()
         if isinstance(v, (int, float)) and not isinstance(v, bool)}
    m.update({"synth/rows": record["rows"], "synth/unique_prompts": record["unique_prompts"],
              "synth/unique_pairs": record.get("unique_pairs", record["rows"])})
    for k in ACCOUNT_KEYS:
        m[f"teacher/{k}"] = record["teacher"].get(k, 0)
    return m


def run_budget_cell(plan: BudgetPlan, events=None) -> dict:
    """Run (or finish) one cell; returns what the store records plus `run_teacher` (what this call paid)."""
    prepare_worker(plan.threads)
    note = (lambda phase: events(plan.cell.cell_id, phase)) if events else (lambda phase: None)
    t0, cpu0 = time.perf_counter(), time.process_time()
    for step in plan.eval_files.values():
        ensure_eval_rows(step.path, plan.eval_data)
    cell = plan.cell
    metrics: dict = {}
    paid = dict.fromkeys(ACCOUNT_KEYS, 0)
    checkpoint = Path(plan.model_dir)
    if plan.synth is not None:
        record, paid = run_synth(plan)
        metrics.update(_synth_metrics(record))
        metrics["synth/eval_overlap"] = _eval_overlap(plan)
    note("data")
    t1 = time.perf_counter()
    if plan.train is not None and metrics.get("synth/rows", 0) > 0:
        checkpoint = run_train(plan)
        train = json.loads((plan.train.path / "result.json").read_text())
        for k in ("loss", "steps", "global_step"):
            v = train.get("metrics", {}).get(k, train.get(k))
            if isinstance(v, (int, float)):
                metrics[f"train/{k}"] = v
    note("train")
    t2 = time.perf_counter()
    result = run_eval(plan, checkpoint)
    note("eval")
    t3 = time.perf_counter()
    for k, v in result.metrics.items():
        if k.split("/", 1)[-1] in ("accuracy", "accuracy_lo", "accuracy_hi", "n"):
            metrics[k] = v
    metrics["time/wall_s"] = round(t3 - t0, 3)
    metrics["time/cpu_s"] = round(time.process_time() - cpu0, 3)
    examples = [{"id": r["id"], "split": r["split"], "correct": r["correct"], "shortcut_agrees": True}
                for r in result.records if r["split"] != "pairs"]
    return {"cell": cell.as_dict(), "config_hash": plan.config_hash, "metrics": metrics, "examples": examples,
            "timings": {"data_s": round(t1 - t0, 3), "train_s": round(t2 - t1, 3), "eval_s": round(t3 - t2, 3)},
            "run_teacher": paid}
