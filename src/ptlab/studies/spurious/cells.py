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
from ptlab.tasks.corpus import PRETRAIN_PROMPTS
from ptlab.tasks.spurious import FEATURE_AMBIGUITY

CELL_VERSION = "spurious-cell/2"  # /2: twins, rate-free evaluation, deduplicated data  # bump when what a step produces changes


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
    """Every cell of the grid, and the controls (Feature Ambiguity at rates 0 and 1), ordered so cells that share
    data run close together."""
    a = cfg.axes
    cells = [
        Cell(task, artifact, cfg.features[task][artifact], float(rate), alg, seed)
        for task, artifact, rate, seed, alg in itertools.product(a.task, a.artifact, a.rate, a.seed, a.algorithm)
    ]
    if FEATURE_AMBIGUITY in a.artifact and cfg.controls.algorithms:
        control_algs = [BASE, *cfg.controls.algorithms] if BASE in a.algorithm else cfg.controls.algorithms
        cells += [Cell(task, FEATURE_AMBIGUITY, cfg.features[task][FEATURE_AMBIGUITY], float(rate), alg, seed)
                  for task, rate, seed, alg in itertools.product(a.task, cfg.controls.rates, a.seed, control_algs)
                  if float(rate) not in a.rate]
    return cells


def eval_splits(cell: Cell) -> list[str]:
    """Feature Ambiguity: the twins (agree, conflict, and absent where the cue can be); Narrowness: inside, outside."""
    from ptlab.tasks import features

    if cell.artifact == FEATURE_AMBIGUITY and features(cell.task)[cell.feature].absent:
        return ["eval_id", "eval_break", "eval_neutral"]
    return ["eval_id", "eval_break"]


def pretrain_exclusion(model_dir: str) -> str | None:
    """The base's file of pretraining prompt keys (ptlab-built bases keep one), or None."""
    path = Path(model_dir) / PRETRAIN_PROMPTS
    return str(path) if path.is_file() else None


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
    eval_data: dict  # split -> make_rows arguments (+ `exclude_file`: the base's pretraining prompt keys)
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
    pairs_split: str = "eval_break"  # likelihood preference on breaking pairs: the correct response vs the shortcut's


def _spec(cell: Cell) -> dict:
    return {"feature": cell.feature, "artifact": cell.artifact, "rate": cell.rate}


def plan_cell(cfg: StudyConfig, cell: Cell, root: Path, model_dir: str) -> CellPlan:
    from ptlab.evaluate.run import MAX_NEW_TOKENS
    from ptlab.tasks.base import TASKS_VERSION

    knobs = cfg.data.knobs.get(cell.task, {})
    mkey = model_key(model_dir)
    exclude_file = pretrain_exclusion(model_dir)
    eval_data, eval_files = {}, {}
    for split in eval_splits(cell):  # the same items at every rate: rate 0 in the spec, which evaluation ignores
        args = dict(task=cell.task, fmt="paired", n=cfg.data.n_eval, seed=cfg.data.eval_seed,
                    spurious={**_spec(cell), "rate": 0.0}, split=split, knobs=knobs, habit_share=cfg.data.habit_share,
                    exclude_file=exclude_file)
        fp = fingerprint(CELL_VERSION, TASKS_VERSION, {**args, "exclude_file": None}, mkey if exclude_file else None)
        eval_data[split] = args
        eval_files[split] = Step(fp, root / "data" / f"{fp}.jsonl")
    ref_fp = fingerprint(CELL_VERSION, mkey, eval_files["eval_break"].fingerprint, cfg.data.n_pairs, cfg.train.max_length)
    t = cfg.train
    if cell.algorithm == BASE:
        train_data = data = train = train_config = None
        train_fp = fingerprint(CELL_VERSION, BASE, mkey)
    else:
        train_data, data, train, train_config = _plan_training(cfg, cell, root, model_dir, mkey, knobs, eval_files)
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


def _plan_training(cfg: StudyConfig, cell: Cell, root: Path, model_dir: str, mkey: str, knobs: dict,
                    eval_files: dict):
    """(train rows' make_rows arguments, their Step, the training Step, the training config) of a post-training cell.

    Training never holds an evaluation prompt (any twin's): `exclude_files` are the evaluation rows."""
    from ptlab.tasks.base import TASKS_VERSION

    train_data = dict(task=cell.task, fmt=data_format(cell.algorithm), n=cfg.data.n_train, seed=cell.seed,
                      spurious=_spec(cell), split="train", knobs=knobs, habit_share=cfg.data.habit_share,
                      exclude_files=sorted(str(f.path) for f in eval_files.values()))
    sampled_by = None
    if cfg.data.rejected == "on_policy" and train_data["fmt"] != "sft":  # SFT never sees a rejected response
        from ptlab.models import resolve

        op = cfg.data.on_policy
        sampled_by = str(resolve(op.model)) if op.model else model_dir
        train_data["on_policy"] = {**op.model_dump(exclude={"model"}), "model_dir": sampled_by}
    data_fp = fingerprint(CELL_VERSION, TASKS_VERSION, {**train_data, "exclude_files": sorted(
        f.fingerprint for f in eval_files.values())}, {**train_data.get("on_policy", {}), "model_dir": None},
        sampled_by and model_key(sampled_by))
    t = cfg.train
    train_config = {
        "model": model_dir, "objective": cell.algorithm, "params": t.params.get(cell.algorithm, {}),
        "data": {"path": str(root / "data" / f"{data_fp}.jsonl")}, "seed": cell.seed, "batch_size": t.batch_size,
        "max_steps": t.max_steps, "epochs": t.epochs, "lr": t.lr_by_algorithm.get(cell.algorithm, t.lr),
        "warmup_ratio": t.warmup_ratio, "max_length": t.max_length, "save_every": t.save_every, "retention": t.retention,
        "log_every": 10, "precision": t.precision, "lora": t.lora.model_dump() if t.lora else None,
    }
    train_fp = fingerprint(CELL_VERSION, data_fp, mkey,
                           {k: v for k, v in train_config.items() if k not in ("data", "save_every", "model", "retention")}, cfg.threads)
    train_config["output_dir"] = str(root / "train" / train_fp)
    return train_data, Step(data_fp, root / "data" / f"{data_fp}.jsonl"), Step(train_fp, root / "train" / train_fp), \
        train_config
