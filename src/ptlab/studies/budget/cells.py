"""The budget study's cells and their cached steps: synth → train → eval.

A cell is (task, regime, exposure, |S|, Q, strategy, seed); the reference cells
are `seeds_only` (SFT on the seed set's own solutions, Q = 0) per exposure, |S|
and seed (no teacher is asked, so they serve every regime: regime "-"), and one
`base` cell (the untrained model; regime and exposure "-"). The synthetic data
of a cell depends on its regime, never on its exposure rule, so both rules
train on the very same rows. Each step has a fingerprint of its inputs and a
directory keyed by it (the same idea as `ptlab.studies.spurious.cells`), so a re-run, a
resumed run or a grid with more values does only what is missing:

    synth/<fp>/  data.jsonl + synth.json (strategy stats, teacher accounting)
    train/<fp>/  the SFT run (ptlab.train)
    eval/<fp>/   metrics.json + examples.jsonl (ptlab.evaluate)
    data/eval-<fp>.jsonl  the held-out split, one file for every cell

The plan carries the attributes `ptlab.studies.grid.steps.run_train` / `run_eval`
read (train, train_config, eval, eval_files, eval_settings, n_pairs, model_dir),
so those steps are reused as they are.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from ptlab.fingerprint import fingerprint
from ptlab.studies.budget.config import BudgetStudyConfig
from ptlab.studies.grid.steps import Step, model_key

CELL_VERSION = "budget-cell/2"  # bump when what a step produces changes
SHARED = "-"  # the regime (and, for the base, the exposure) of a cell that does not depend on it
# Teacher settings that change how replies are fetched or stored, never what they are.
_TRANSPORT = {"cache", "cache_path", "concurrency", "timeout_s", "max_retries", "backoff_s", "backoff_max_s",
              "api_key_env", "api_key_required", "batch_size", "device"}


@dataclass(frozen=True)
class BudgetCell:
    task: str
    seed_size: int  # |S|; 0 for the base model
    budget: int  # Q; 0 for the reference cells
    strategy: str  # a synth strategy, "seeds_only" or "base"
    seed: int
    regime: str = "default"  # a name in the config's `regimes`; SHARED for the reference cells
    exposure: str = "epochs"  # "epochs" | "steps"; SHARED for the base

    @property
    def cell_id(self) -> str:
        if self.strategy == "base":
            return f"{self.task}.base"
        if self.strategy == "seeds_only":
            return f"{self.task}.S{self.seed_size}.seeds_only.{self.exposure}.s{self.seed}"
        return f"{self.task}.{self.regime}.S{self.seed_size}.Q{self.budget}.{self.strategy}.{self.exposure}.s{self.seed}"

    @property
    def ratio(self) -> float:
        return self.budget / self.seed_size if self.seed_size else 0.0

    def as_dict(self) -> dict:
        return {"cell_id": self.cell_id, "task": self.task, "regime": self.regime, "exposure": self.exposure,
                "seed_size": self.seed_size, "budget": self.budget, "strategy": self.strategy, "seed": self.seed,
                "ratio": self.ratio}


def expand(cfg: BudgetStudyConfig) -> list[BudgetCell]:
    """Every cell, grouped by (seed, |S|, regime) so cells sharing a seed set and a teacher run close together."""
    a = cfg.axes
    cells = [BudgetCell(cfg.task, 0, 0, "base", 0, SHARED, SHARED)] if cfg.references else []
    for seed, size in itertools.product(a.seed, a.seed_size):
        if cfg.references:
            cells += [BudgetCell(cfg.task, size, 0, "seeds_only", seed, SHARED, e) for e in a.exposure]
        for regime in a.regime:
            cells += [BudgetCell(cfg.task, size, q, s, seed, regime, e)
                      for s, q, e in itertools.product(a.strategy, a.budget, a.exposure)]
    return cells


@dataclass(frozen=True)
class BudgetPlan:
    """Everything a worker needs to run one cell (picklable, plain data)."""

    cell: BudgetCell
    config_hash: str
    model_dir: str
    synth: Step | None  # None: the base cell
    synth_args: dict  # teacher / seeds / strategy settings of the synth step
    train: Step | None
    train_config: dict | None
    eval: Step
    eval_files: dict  # {"eval_id": Step}
    eval_data: dict  # arguments of the held-out split
    eval_settings: dict
    threads: int
    root: str
    n_pairs: int = 0  # no ranking of held-out pairs in this study (what run_eval reads)
    # Cells of one seed set under different exposure rules share their synth step: they run in different waves
    # (one per rule), so two workers never make the same data (nor drive the same teacher-ledger run) at once.
    wave: int = 0


def eval_step(cfg: BudgetStudyConfig, root: Path) -> tuple[Step, dict]:
    from ptlab.tasks.base import TASKS_VERSION

    args = {"task": cfg.task, "n": cfg.data.n_eval, "seed": cfg.data.eval_seed, "split": cfg.data.eval_split,
            "knobs": cfg.seeds.knobs}
    fp = fingerprint(CELL_VERSION, TASKS_VERSION, args)
    return Step(fp, root / "data" / f"eval-{fp}.jsonl"), args


def _seeds_identity(cfg: BudgetStudyConfig) -> dict:
    seeds = cfg.seeds.model_dump()
    if cfg.seeds.source == "jsonl" and cfg.seeds.path and Path(cfg.seeds.path).is_file():
        seeds["content"] = fingerprint(Path(cfg.seeds.path).read_text())
    return seeds


def plan_cell(cfg: BudgetStudyConfig, cell: BudgetCell, root: Path, model_dir: str) -> BudgetPlan:
    from ptlab.evaluate.run import MAX_NEW_TOKENS
    from ptlab.tasks.base import TASKS_VERSION

    mkey = model_key(model_dir)
    ev_file, ev_args = eval_step(cfg, root)
    settings = {"max_new_tokens": cfg.eval.max_new_tokens or MAX_NEW_TOKENS.get(cfg.task, 64),
                "batch_size": cfg.eval.batch_size, "do_sample": False, "seed": 0}
    synth = train = train_config = None
    synth_args: dict = {}
    if cell.strategy != "base":
        teacher = cfg.teacher_for(cfg.axes.regime[0] if cell.regime == SHARED else cell.regime)
        synth_args = {"task": cell.task, "n": cell.seed_size, "seed": cell.seed, "seeds": cfg.seeds.model_dump(),
                      "teacher": teacher, "strategy": None, "include_seeds": cfg.data.include_seeds,
                      "eval_path": str(ev_file.path)}
        identity = {**synth_args, "seeds": _seeds_identity(cfg), "eval_path": ev_file.fingerprint,
                    "teacher": {k: v for k, v in teacher.items() if k not in _TRANSPORT}}
        if cell.strategy != "seeds_only":
            synth_args["strategy"] = identity["strategy"] = cfg.strategy_config(cell.strategy, cell.budget).model_dump()
        else:
            identity.pop("teacher")  # the seed set alone: no teacher is asked
            identity.pop("include_seeds")
        synth_fp = fingerprint(CELL_VERSION, TASKS_VERSION, identity)
        synth = Step(synth_fp, root / "synth" / synth_fp)
        t = cfg.train
        train_config = {"model": model_dir, "objective": "sft", "params": {},
                        "data": {"path": str(synth.path / "data.jsonl")}, "seed": cell.seed,
                        "batch_size": t.batch_size, "epochs": t.epochs,
                        "max_steps": t.steps if cell.exposure == "steps" else None, "lr": t.lr,
                        "warmup_ratio": t.warmup_ratio, "scheduler": t.scheduler, "max_length": t.max_length,
                        "save_every": t.save_every, "retention": t.retention, "log_every": 10, "precision": "fp32"}
        train_fp = fingerprint(CELL_VERSION, synth_fp, mkey,
                               {k: v for k, v in train_config.items() if k not in ("data", "save_every", "model", "retention")},
                               cfg.threads)
        train_config["output_dir"] = str(root / "train" / train_fp)
        train = Step(train_fp, root / "train" / train_fp)
    eval_fp = fingerprint(CELL_VERSION, train.fingerprint if train else mkey, ev_file.fingerprint, settings)
    return BudgetPlan(
        cell=cell, config_hash=fingerprint(synth.fingerprint if synth else None, eval_fp), model_dir=model_dir,
        synth=synth, synth_args=synth_args, train=train, train_config=train_config,
        eval=Step(eval_fp, root / "eval" / eval_fp), eval_files={cfg.data.eval_split: ev_file}, eval_data=ev_args,
        eval_settings=settings, threads=cfg.threads, root=str(root),
        wave=cfg.axes.exposure.index(cell.exposure) if cell.exposure in cfg.axes.exposure else 0,
    )
