"""Expanding a study into cells, and planning each cell's cached steps.

A cell is one point of the grid: (task, artifact, rate, algorithm, seed). Its
plan names three steps — data, train, eval — each with a fingerprint of its
inputs and a directory under the study keyed by that fingerprint, so two
cells that share a step (the evaluation data of a cell's algorithms and
seeds) share its output, and a re-run finds what already exists.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path

from ptlab.fingerprint import fingerprint
from ptlab.studies.grid.steps import Step, model_key
from ptlab.studies.spurious.config import BASE, StudyConfig

CELL_VERSION = "spurious-cell/1"  # bump when what a step produces changes


@dataclass(frozen=True)
class Cell:
    task: str
    artifact: str
    feature: str
    rate: float
    algorithm: str
    seed: int

    @property
    def cell_id(self) -> str:
        return f"{self.task}.{self.artifact}.{self.feature}.r{self.rate:g}.{self.algorithm}.s{self.seed}"

    def as_dict(self) -> dict:
        return {"cell_id": self.cell_id, **asdict(self)}


def expand(cfg: StudyConfig) -> list[Cell]:
    """Every cell of the grid, ordered so cells that share data run close together."""
    a = cfg.axes
    return [
        Cell(task, artifact, cfg.features[task][artifact], float(rate), alg, seed)
        for task, artifact, rate, seed, alg in itertools.product(a.task, a.artifact, a.rate, a.seed, a.algorithm)
    ]


def data_format(algorithm: str) -> str:
    from ptlab.train.objectives import OBJECTIVES

    return OBJECTIVES[algorithm].format


@dataclass(frozen=True)
class CellPlan:
    """Everything a worker needs to run one cell (picklable, plain data)."""

    cell: Cell
    config_hash: str
    model_dir: str
    train_data: dict | None  # make_rows arguments; None for the `base` cells, which do not train
    eval_data: dict  # split -> make_rows arguments
    data: Step | None  # train rows (JSONL)
    eval_files: dict  # split -> Step (JSONL)
    ref_pairs: Step  # base-model log-probs of the held-out pairs (.npy)
    train: Step | None  # training output_dir
    eval: Step  # evaluation output dir
    train_config: dict | None
    eval_settings: dict
    n_pairs: int
    max_length: int
    threads: int


def _spec(cell: Cell) -> dict:
    return {"feature": cell.feature, "artifact": cell.artifact, "rate": cell.rate}


def plan_cell(cfg: StudyConfig, cell: Cell, root: Path, model_dir: str) -> CellPlan:
    from ptlab.evaluate.run import MAX_NEW_TOKENS
    from ptlab.tasks.base import TASKS_VERSION

    knobs = cfg.data.knobs.get(cell.task, {})
    eval_data, eval_files = {}, {}
    for split in ("eval_id", "eval_break"):
        args = dict(task=cell.task, fmt="paired", n=cfg.data.n_eval, seed=cfg.data.eval_seed, spurious=_spec(cell),
                    split=split, knobs=knobs)
        fp = fingerprint(CELL_VERSION, TASKS_VERSION, args)
        eval_data[split] = args
        eval_files[split] = Step(fp, root / "data" / f"{fp}.jsonl")
    mkey = model_key(model_dir)
    ref_fp = fingerprint(CELL_VERSION, mkey, eval_files["eval_id"].fingerprint, cfg.data.n_pairs, cfg.train.max_length)
    t = cfg.train
    if cell.algorithm == BASE:
        train_data = data = train = train_config = None
        train_fp = fingerprint(CELL_VERSION, BASE, mkey)
    else:
        train_data, data, train, train_config = _plan_training(cfg, cell, root, model_dir, mkey, knobs)
        train_fp = train.fingerprint
    e = cfg.eval
    eval_settings = {"max_new_tokens": e.max_new_tokens.get(cell.task, MAX_NEW_TOKENS.get(cell.task, 64)),
                     "batch_size": e.batch_size, "do_sample": e.do_sample, "temperature": e.temperature,
                     "top_p": e.top_p, "seed": cell.seed}
    if train is None and not e.do_sample:  # greedy decoding of the untrained base is the same for every seed: share it
        eval_settings["seed"] = 0
    eval_fp = fingerprint(CELL_VERSION, train_fp, {s: f.fingerprint for s, f in eval_files.items()}, ref_fp,
                          eval_settings, cfg.data.n_pairs)
    return CellPlan(
        cell=cell, config_hash=fingerprint(data.fingerprint if data else None, train_fp, eval_fp), model_dir=model_dir,
        train_data=train_data, eval_data=eval_data, data=data, eval_files=eval_files,
        ref_pairs=Step(ref_fp, root / "refpairs" / f"{ref_fp}.npy"), train=train,
        eval=Step(eval_fp, root / "eval" / eval_fp), train_config=train_config, eval_settings=eval_settings,
        n_pairs=cfg.data.n_pairs, max_length=t.max_length, threads=cfg.threads,
    )


def _plan_training(cfg: StudyConfig, cell: Cell, root: Path, model_dir: str, model_key: str, knobs: dict):
    """(train rows' make_rows arguments, their Step, the training Step, the training config) of a post-training cell."""
    from ptlab.tasks.base import TASKS_VERSION

    train_data = dict(task=cell.task, fmt=data_format(cell.algorithm), n=cfg.data.n_train, seed=cell.seed,
                      spurious=_spec(cell), split="train", knobs=knobs)
    data_fp = fingerprint(CELL_VERSION, TASKS_VERSION, train_data)
    t = cfg.train
    train_config = {
        "model": model_dir, "objective": cell.algorithm, "params": t.params.get(cell.algorithm, {}),
        "data": {"path": str(root / "data" / f"{data_fp}.jsonl")}, "seed": cell.seed, "batch_size": t.batch_size,
        "max_steps": t.max_steps, "epochs": t.epochs, "lr": t.lr_by_algorithm.get(cell.algorithm, t.lr),
        "warmup_ratio": t.warmup_ratio, "max_length": t.max_length, "save_every": t.save_every, "retention": t.retention,
        "log_every": 10, "precision": "fp32",
    }
    train_fp = fingerprint(CELL_VERSION, data_fp, model_key,
                           {k: v for k, v in train_config.items() if k not in ("data", "save_every", "model", "retention")}, cfg.threads)
    train_config["output_dir"] = str(root / "train" / train_fp)
    return train_data, Step(data_fp, root / "data" / f"{data_fp}.jsonl"), Step(train_fp, root / "train" / train_fp), \
        train_config
