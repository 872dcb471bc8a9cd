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
from ptlab.studies.spurious.config import stages as arm_stages
from ptlab.tasks.corpus import PRETRAIN_PROMPTS
from ptlab.tasks.spurious import FEATURE_AMBIGUITY

CELL_VERSION = "spurious-cell/3"  # /3: tuned arms, equal exposure, validation split, pipelines, pair diagnostics


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


@dataclass(frozen=True)
class TuneCell(Cell):
    """A cell of the tuning sweep: one arm at one point of its grid, at the tuning condition."""

    point: str = ""  # "lr=0.0003,beta=0.1"

    @property
    def cell_id(self) -> str:
        return f"{self.task}.{self.algorithm}.{self.point}.s{self.seed}"


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
class Stage:
    """One training run of an arm: `sft+dpo` has two (SFT from the base, then DPO from that SFT model)."""

    objective: str
    key: str  # whose hyper-parameters it uses: the objective, or the pipeline (`sft+dpo`) for its last stage
    data_args: dict  # ensure_rows arguments of its training rows
    data: Step
    train: Step
    config: dict  # the training config
    curve: Step | None  # the validation rows in this stage's format (learning curves), or None

    @property
    def train_config(self) -> dict:  # what `grid.steps.run_train` reads
        return self.config

    @property
    def model_dir(self) -> str:
        return self.config["model"]


@dataclass(frozen=True)
class CellPlan:
    """Everything a worker needs to run one cell (picklable, plain data)."""

    cell: Cell
    config_hash: str
    model_dir: str
    eval_data: dict  # split -> ensure_rows arguments (+ `exclude_file`: the base's pretraining prompt keys)
    eval_files: dict  # split -> Step (JSONL)
    ref_pairs: Step  # the reference model's log-probs of the held-out pairs (.npy)
    eval: Step  # evaluation output dir
    eval_settings: dict
    n_pairs: int
    max_length: int
    threads: int
    stages: tuple = ()  # Stage, in training order; () for the `base` cells, which do not train
    validation: tuple = ()  # (ensure_rows arguments, Step, the evaluation rows it excludes) of the validation rows
    diagnostics: dict | None = None  # the last stage's pair-diagnostics settings (preference stages), or None
    pairs_split: str = "eval_break"  # likelihood preference on breaking pairs: the correct response vs the shortcut's
    wave: int = 0  # cells run in waves: a pipeline after the SFT cell whose model it starts from

    @property
    def train(self) -> Step | None:
        return self.stages[-1].train if self.stages else None

    @property
    def data(self) -> Step | None:
        return self.stages[-1].data if self.stages else None

    @property
    def train_config(self) -> dict | None:
        return self.stages[-1].config if self.stages else None

    @property
    def train_data(self) -> dict | None:
        return self.stages[-1].data_args if self.stages else None

    @property
    def reference_dir(self) -> str:
        """The model the last stage started from: the base, or a pipeline's SFT model (its DPO reference)."""
        return self.stages[-1].config["model"] if self.stages else self.model_dir


def _spec(cell: Cell) -> dict:
    return {"feature": cell.feature, "artifact": cell.artifact, "rate": cell.rate}


def eval_steps(cfg: StudyConfig, task: str, artifact: str, feature: str, root: Path, model_dir: str) -> tuple[dict, dict]:
    """(split -> ensure_rows arguments, split -> Step) of a (task, artifact, feature)'s evaluation rows: the same
    items at every rate (rate 0 in the spec, which evaluation ignores), none of them a pretraining prompt."""
    from ptlab.tasks.base import TASKS_VERSION

    knobs = cfg.data.knobs.get(task, {})
    mkey, exclude_file = model_key(model_dir), pretrain_exclusion(model_dir)
    probe = Cell(task, artifact, feature, 0.0, BASE, 0)
    eval_data, eval_files = {}, {}
    for split in eval_splits(probe):
        args = dict(task=task, fmt="paired", n=cfg.data.n_eval, seed=cfg.data.eval_seed,
                    spurious={**_spec(probe), "rate": 0.0}, split=split, knobs=knobs, habit_share=cfg.data.habit_share,
                    exclude_file=exclude_file)
        fp = fingerprint(CELL_VERSION, TASKS_VERSION, {**args, "exclude_file": None}, mkey if exclude_file else None)
        eval_data[split] = args
        eval_files[split] = Step(fp, root / "data" / f"{fp}.jsonl")
    return eval_data, eval_files


def validation_step(cfg: StudyConfig, task: str, root: Path, model_dir: str) -> tuple[dict, Step, tuple]:
    """The task's validation rows: drawn like the training data of the tuning condition, disjoint from every
    evaluation split of the task (every artifact's) and from the base's pretraining prompts. (arguments, Step, the
    evaluation rows it excludes as (arguments, Step) pairs, built before it)."""
    from ptlab.tasks.base import TASKS_VERSION

    t = cfg.tuning
    deps = []
    for a in dict.fromkeys([*cfg.axes.artifact, t.artifact]):
        data, files = eval_steps(cfg, task, a, cfg.features[task][a], root, model_dir)
        deps += [(data[split], files[split]) for split in files]
    evals = [f for _, f in deps]
    exclude_file = pretrain_exclusion(model_dir)
    args = dict(task=task, fmt="paired", n=t.n_validation, seed=t.validation_seed,
                spurious={"feature": cfg.features[task][t.artifact], "artifact": t.artifact, "rate": t.rate},
                split="train", knobs=cfg.data.knobs.get(task, {}), habit_share=cfg.data.habit_share,
                exclude_file=exclude_file, exclude_files=sorted(str(f.path) for f in evals))
    fp = fingerprint(CELL_VERSION, TASKS_VERSION, {**args, "exclude_file": None,
                                                   "exclude_files": sorted(f.fingerprint for f in evals)},
                     model_key(model_dir) if exclude_file else None)
    return args, Step(fp, root / "data" / f"{fp}.jsonl"), tuple(deps)


def curve_step(validation: Step, fmt: str) -> Step:
    """The validation rows in a training format (what a learning curve evaluates the objective on)."""
    return Step(f"{validation.fingerprint}.{fmt}", validation.path.with_suffix(f".{fmt}.jsonl"))


def hyper_parameters(cfg: StudyConfig, root: Path, task: str, key: str) -> dict:
    """{"lr", "params"} of an arm's stage: tuned on validation (`tuning.json`), or fixed by the config."""
    from ptlab.studies.spurious.tuning import selection

    if cfg.tuning.enabled:
        chosen = selection(root).get(task, {}).get(key)
        if chosen is None:
            from ptlab.errors import ConfigError

            raise ConfigError(f"tuning: no tuned hyper-parameters for {task}/{key} in {root}; run the study (it tunes "
                              "first) or set tuning.enabled: false")
        return {"lr": chosen["lr"], "params": {**cfg.train.params.get(key.split("+")[-1], {}), **chosen["params"]}}
    objective = key.split("+")[-1]
    return {"lr": cfg.train.lr_by_algorithm.get(objective, cfg.train.lr), "params": cfg.train.params.get(objective, {})}


def plan_cell(cfg: StudyConfig, cell: Cell, root: Path, model_dir: str, hp: dict | None = None) -> CellPlan:
    """A cell's plan. `hp` (stage key -> {"lr", "params"}) overrides the study's values: the tuning sweep's cells."""
    from ptlab.evaluate.run import MAX_NEW_TOKENS

    mkey = model_key(model_dir)
    eval_data, eval_files = eval_steps(cfg, cell.task, cell.artifact, cell.feature, root, model_dir)
    v_args, v_step, v_deps = validation_step(cfg, cell.task, root, model_dir)
    tuning = isinstance(cell, TuneCell)
    if tuning:  # the sweep is scored on the validation split alone
        eval_data, eval_files = {"validation": v_args}, {"validation": v_step}
    plan_stages: list[Stage] = []
    if cell.algorithm != BASE:
        exclude = sorted([*eval_files.values(), v_step], key=lambda f: f.fingerprint)
        names = arm_stages(cell.algorithm)
        for i, objective in enumerate(names):
            key = cell.algorithm if i and i == len(names) - 1 else objective
            values = (hp or {}).get(key) or hyper_parameters(cfg, root, cell.task, key)
            start = plan_stages[-1] if plan_stages else None
            plan_stages.append(_plan_stage(cfg, cell, objective, key, values, root, model_dir, start, exclude, v_step))
    train_fp = plan_stages[-1].train.fingerprint if plan_stages else fingerprint(CELL_VERSION, BASE, mkey)
    reference_fp = plan_stages[-2].train.fingerprint if len(plan_stages) > 1 else mkey  # a pipeline's: its SFT model
    n_pairs = 0 if tuning else cfg.data.n_pairs
    pairs_file = eval_files.get("eval_break")
    ref_fp = fingerprint(CELL_VERSION, reference_fp, pairs_file.fingerprint if pairs_file else None, n_pairs,
                         cfg.train.max_length)
    e = cfg.eval
    eval_settings = {"max_new_tokens": e.max_new_tokens.get(cell.task, MAX_NEW_TOKENS.get(cell.task, 64)),
                     "batch_size": e.batch_size, "do_sample": e.do_sample, "temperature": e.temperature,
                     "top_p": e.top_p, "seed": cell.seed}
    if not plan_stages and not e.do_sample:  # greedy decoding of the untrained base is the same for every seed: share it
        eval_settings["seed"] = 0
    eval_fp = fingerprint(CELL_VERSION, train_fp, {s: f.fingerprint for s, f in eval_files.items()}, ref_fp,
                          eval_settings, n_pairs)
    last = plan_stages[-1] if plan_stages else None
    diagnostics = None
    if last is not None and data_format(last.objective) != "sft" and not tuning and cfg.train.diagnostic_pairs:
        diagnostics = {"beta": float(last.config["params"].get("beta", 0.1)), "pairs": cfg.train.diagnostic_pairs}
    return CellPlan(
        cell=cell, config_hash=fingerprint(*(s.data.fingerprint for s in plan_stages), train_fp, eval_fp),
        model_dir=model_dir, eval_data=eval_data, eval_files=eval_files,
        ref_pairs=Step(ref_fp, root / "refpairs" / f"{ref_fp}.npy"), eval=Step(eval_fp, root / "eval" / eval_fp),
        eval_settings=eval_settings, n_pairs=n_pairs, max_length=cfg.train.max_length, threads=cfg.threads,
        stages=tuple(plan_stages), validation=(v_args, v_step, v_deps), diagnostics=diagnostics,
        wave=1 if len(plan_stages) > 1 else 0,
    )


def exposure(cfg: StudyConfig, fmt: str) -> dict:
    """The batch (rows), epochs and steps of one training stage: equal prompts a step and passes over the prompts for
    every arm under `exposure: epochs` (unpaired data holds two rows a prompt); `max_steps` of `batch_size` rows
    under `exposure: steps`."""
    import math

    t = cfg.train
    if t.exposure == "steps":
        return {"batch_size": t.batch_size, "epochs": t.epochs, "max_steps": t.max_steps}
    rows_per_prompt = 2 if fmt == "unpaired" else 1
    steps = math.ceil(t.epochs * math.ceil(cfg.data.n_train / t.batch_size))
    return {"batch_size": t.batch_size * rows_per_prompt, "epochs": t.epochs, "max_steps": None, "_steps": steps}


def _plan_stage(cfg: StudyConfig, cell: Cell, objective: str, key: str, values: dict, root: Path, model_dir: str,
                start: Stage | None, exclude: list[Step], validation: Step) -> Stage:
    """One training stage: its rows (the cell's examples in the objective's format; never an evaluation or
    validation prompt), and its run, from the base or from the previous stage's final model."""
    from ptlab.tasks.base import TASKS_VERSION

    knobs = cfg.data.knobs.get(cell.task, {})
    fmt = data_format(objective)
    data_args = dict(task=cell.task, fmt=fmt, n=cfg.data.n_train, seed=cell.seed, spurious=_spec(cell), split="train",
                     knobs=knobs, habit_share=cfg.data.habit_share, exclude_files=[str(f.path) for f in exclude])
    sampled_by = None
    if cfg.data.rejected == "on_policy" and fmt != "sft":  # SFT never sees a rejected response
        from ptlab.models import resolve

        op = cfg.data.on_policy
        sampled_by = str(resolve(op.model)) if op.model else model_dir
        data_args["on_policy"] = {**op.model_dump(exclude={"model"}), "model_dir": sampled_by}
    data_fp = fingerprint(CELL_VERSION, TASKS_VERSION, {**data_args, "exclude_files": [f.fingerprint for f in exclude]},
                          {**data_args.get("on_policy", {}), "model_dir": None}, sampled_by and model_key(sampled_by))
    t = cfg.train
    shape = exposure(cfg, fmt)
    steps = shape.pop("_steps", None) or shape["max_steps"]
    curve = curve_step(validation, fmt) if t.curve_points else None
    train_config = {
        "model": str(start.train.path / "final") if start else model_dir, "objective": objective,
        "params": values["params"], "data": {"path": str(root / "data" / f"{data_fp}.jsonl")}, "seed": cell.seed,
        **shape, "lr": values["lr"], "warmup_ratio": t.warmup_ratio, "max_length": t.max_length,
        "save_every": t.save_every, "retention": t.retention, "log_every": 1, "precision": t.precision,
        "lora": t.lora.model_dump() if t.lora else None,
        "eval_data": {"path": str(curve.path)} if curve else None,
        "eval_every": max(1, steps // t.curve_points) if curve else 0,
    }
    origin = start.train.fingerprint if start else model_key(model_dir)
    train_fp = fingerprint(CELL_VERSION, data_fp, origin, {k: v for k, v in train_config.items() if k not in (
        "data", "save_every", "model", "retention", "eval_data")}, curve.fingerprint if curve else None, cfg.threads)
    train_config["output_dir"] = str(root / "train" / train_fp)
    return Stage(objective, key, data_args, Step(data_fp, root / "data" / f"{data_fp}.jsonl"),
                 Step(train_fp, root / "train" / train_fp), train_config, curve)
