"""The spurious-correlation study's config: axes (expanded into cells) and fixed settings.

    axes:     task × artifact × rate × algorithm × seed — the grid
    features: which registered feature realises each artifact on each task
    data / train / eval: fixed settings shared by every cell

`check_config` validates every axis value against the registries (tasks,
artifacts, features, objectives) so a bad study fails before any work starts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt

from ptlab.config import Strict
from ptlab.data.on_policy import OnPolicySettings
from ptlab.errors import ConfigError
from ptlab.train.config import LoraSettings

BASE = "base"  # the algorithm-axis value for no post-training: the base model, evaluated on the same splits


PIPELINES = ("sft+dpo", "sft+kto")  # the usual pipeline: preference training from the SFT model (reference = it)


def algorithms() -> list[str]:
    """What the algorithm axis accepts: `base`, every registered post-training objective, and the SFT → preference
    pipelines (`sft+dpo`: DPO from the SFT model of the same cell, with that model as the reference)."""
    from ptlab.train.objectives import OBJECTIVES

    return [BASE, *OBJECTIVES, *PIPELINES]


def stages(algorithm: str) -> list[str]:
    """The objectives an arm trains with, in order (`sft+dpo` → ["sft", "dpo"])."""
    return algorithm.split("+")



DEFAULT_FEATURES = {
    "math": {"feature_ambiguity": "altogether_cue", "distributional_narrowness": "add_sub_only"},
    "instruct": {"feature_ambiguity": "urgent_cue", "distributional_narrowness": "lexical_only"},
    "docqa": {"feature_ambiguity": "lexical_overlap", "distributional_narrowness": "founding_only"},
}


class Axes(Strict):
    task: list[str] = Field(default_factory=lambda: ["math", "instruct", "docqa"])
    artifact: list[str] = Field(default_factory=lambda: ["feature_ambiguity", "distributional_narrowness"])
    rate: list[float] = Field(default_factory=lambda: [0.1, 0.9])
    algorithm: list[str] = Field(default_factory=lambda: ["base", "sft", "dpo", "kto", "sft+dpo", "sft+kto"])
    seed: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], description="training seeds (seed i: the same "
                            "training plans for every arm and rate); 5 put seed variance in the intervals with 4 df")


class DataSettings(Strict):
    n_train: int = Field(256, gt=0, description="training examples per cell (KTO sees each as 2 rows)")
    n_eval: int = Field(120, gt=0, description="examples per evaluation split")
    n_pairs: int = Field(64, ge=0, description="held-out breaking pairs (the correct response vs the shortcut's) for "
                         "the likelihood preference")
    habit_share: float = Field(0.25, ge=0, le=1, description="share of rejected responses (outside a shortcut) that "
                               "are the base's habitual mistake rather than another realistic one")
    rejected: Literal["authored", "on_policy"] = Field(
        "authored", description="preference data's rejected responses: the generator's mistakes, or the base's own "
        "verified-wrong samples (`on_policy`)")
    on_policy: OnPolicySettings = Field(default_factory=OnPolicySettings)
    eval_seed: int = Field(1000, description="evaluation examples are the same for every seed and algorithm")
    knobs: dict[str, dict[str, Any]] = Field(default_factory=dict, description="difficulty knobs per task")


class TrainSettings(Strict):
    exposure: Literal["epochs", "steps"] = Field(
        "epochs", description="epochs: every arm makes `epochs` passes over its prompts with `batch_size` prompts a "
        "step (KTO's two rows a prompt make its row batch twice as large), so arms see the same prompts the same "
        "number of times in the same number of steps; steps: every arm takes `max_steps` steps of `batch_size` rows "
        "(KTO then sees each prompt half as often; the report states it)")
    batch_size: int = Field(16, gt=0, description="prompts a step (rows a step under exposure: steps)")
    max_steps: int | None = Field(None, gt=0, description="with exposure: steps, the steps every arm takes")
    epochs: float = Field(2.0, gt=0)
    lr: float = Field(5e-4, gt=0, description="used where tuning is off (tuning.enabled: false)")
    lr_by_algorithm: dict[str, PositiveFloat] = Field(default_factory=dict, description="per objective, where tuning "
                                                      "is off")
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    max_length: int = Field(384, gt=1)
    params: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"dpo": {"beta": 0.1}, "kto": {"beta": 0.1}})
    diagnostic_pairs: int = Field(128, ge=0, description="per-pair diagnostics of each preference run on its first "
                                  "N training pairs (the rows are in random order; 0: none)")
    curve_points: int = Field(4, ge=0, description="learning curves: the objective's loss on the validation split "
                              "at this many evenly spaced points of training (0: none)")
    save_every: int = Field(8, ge=0, description="checkpoint every N steps so an interrupted cell resumes")
    retention: Literal["final", "checkpoints"] = Field(
        "final", description="what a finished cell keeps: its final weights only, or also its last checkpoints")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 where a GPU supports it, else fp32")
    lora: LoraSettings | None = Field(None, description="train LoRA adapters instead of every weight (large bases)")


class Controls(Strict):
    """Feature Ambiguity cells at rate 0 (negative control: the cue is independent of the behaviour, so reliance
    must come out null) and rate 1 (positive control: perfectly predictive, no counterexamples, so reliance must
    come out clearly positive; if it does not, the design cannot detect reliance at this scale)."""

    rates: list[float] = Field(default_factory=lambda: [0.0, 1.0])
    algorithms: list[str] = Field(default_factory=lambda: ["sft"], description="which algorithms run the controls")


class Tuning(Strict):
    """Each arm's learning rate (and β of DPO/KTO) chosen from a declared grid by accuracy on a validation split:
    drawn like the training data of the tuning condition, disjoint from every evaluation split and from every
    training set. Tuned once per task and objective, at one condition (`artifact`, `rate`, `seed`), so the
    hyper-parameters do not move with the rate or the artifact the study varies. A pipeline's preference stage
    (`sft+dpo`) is tuned from the tuned SFT model. `enabled: false` uses `train.lr` / `lr_by_algorithm` / `params`
    as given (and the report says the values were fixed, not tuned)."""

    enabled: bool = True
    grid: dict[str, dict[str, list[PositiveFloat]]] = Field(default_factory=lambda: {
        "sft": {"lr": [1e-4, 3e-4, 1e-3]},
        "dpo": {"lr": [1e-4, 3e-4, 1e-3], "beta": [0.1, 0.5]},
        "kto": {"lr": [1e-4, 3e-4, 1e-3], "beta": [0.1, 0.5]},
    }, description="per objective: `lr` and the objective's own parameters (e.g. `beta`), every combination tried")
    artifact: str = "feature_ambiguity"
    rate: float = Field(0.5, ge=0, le=1)
    seed: int = 0
    n_validation: int = Field(120, gt=0)
    validation_seed: int = 2000


class EvalSettings(Strict):
    batch_size: int = Field(64, gt=0)
    max_new_tokens: dict[str, PositiveInt] = Field(default_factory=dict, description="per task; defaults are tight per task")
    do_sample: bool = False
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)


class StudyConfig(Strict):
    study: Literal["spurious"] = "spurious"
    model: str = "tiny"
    output_dir: str = "runs/study-spurious"
    axes: Axes = Field(default_factory=Axes)
    features: dict[str, dict[str, str]] = Field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_FEATURES.items()})
    data: DataSettings = Field(default_factory=DataSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    controls: Controls = Field(default_factory=Controls)
    tuning: Tuning = Field(default_factory=Tuning)
    executor: Literal["sequential", "processes", "ray"] = "processes"
    workers: int = Field(2, gt=0, description="cells run at once (processes / ray)")
    threads: int = Field(1, gt=0, description="torch threads per cell, whatever the executor (same results)")
    ray_address: str | None = None

    def fixed(self) -> dict:
        """Everything but the axes and how it is executed: what must match to reuse a results directory."""
        return self.model_dump(mode="json", exclude={"axes", "output_dir", "executor", "workers", "ray_address"})


def check_config(cfg: StudyConfig) -> None:
    """Raise ConfigError (one line, naming the field) for anything that would fail mid-study."""
    from ptlab.tasks import ARTIFACTS, SpuriousSpec, get_task
    from ptlab.tasks import spurious as sp
    from ptlab.train.objectives import OBJECTIVES

    for name, values in cfg.axes.model_dump().items():
        if not values:
            raise ConfigError(f"axes.{name}: empty, so the grid has no cells; give at least one value")
        if len(set(values)) != len(values):
            raise ConfigError(f"axes.{name}: repeated values {values}")
    for task in cfg.axes.task:
        try:
            get_task(task)
        except ConfigError as e:
            raise ConfigError(f"axes.{e}") from None
    for artifact in cfg.axes.artifact:
        if artifact not in ARTIFACTS:
            raise ConfigError(f"axes.artifact: unknown artifact {artifact!r}; choose from {', '.join(ARTIFACTS)}")
    for rate in cfg.axes.rate:
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"axes.rate: {rate} is outside [0, 1]")
    for alg in cfg.axes.algorithm:
        if alg not in algorithms():
            raise ConfigError(f"axes.algorithm: unknown algorithm {alg!r}; choose from {', '.join(algorithms())}")
    for alg in cfg.controls.algorithms:
        if alg not in OBJECTIVES:
            raise ConfigError(f"controls.algorithms: unknown algorithm {alg!r}; choose from {', '.join(OBJECTIVES)}")
    for rate in cfg.controls.rates:
        if rate not in (0.0, 1.0):
            raise ConfigError(f"controls.rates: {rate} is not a control; the controls are 0.0 (negative) and 1.0 (positive)")
    for section, keys in (("train.params", cfg.train.params), ("train.lr_by_algorithm", cfg.train.lr_by_algorithm)):
        for key in keys:
            if key not in OBJECTIVES:
                raise ConfigError(f"{section}: unknown algorithm {key!r}; choose from {', '.join(OBJECTIVES)}")
    for key in list(cfg.data.knobs) + list(cfg.features) + list(cfg.eval.max_new_tokens):
        try:
            get_task(key)
        except ConfigError as e:
            raise ConfigError(f"data.knobs / features / eval.max_new_tokens: {e}") from None
    for task, by_artifact in cfg.features.items():
        for artifact in by_artifact:
            if artifact not in ARTIFACTS:
                raise ConfigError(f"features.{task}.{artifact}: unknown artifact; choose from {', '.join(ARTIFACTS)}")
    for task, knobs in cfg.data.knobs.items():
        try:
            get_task(task).knobs(**knobs)
        except ConfigError as e:
            raise ConfigError(f"data.knobs.{task}: {e}") from None
    for task in cfg.axes.task:
        knobs = get_task(task).knobs(**cfg.data.knobs.get(task, {}))
        for artifact in cfg.axes.artifact:
            name = cfg.features.get(task, {}).get(artifact)
            if name is None:
                raise ConfigError(f"features.{task}.{artifact}: no feature given for this cell of the grid")
            try:
                sp.resolve(task, SpuriousSpec(name, artifact, 0.5), knobs)
            except ConfigError as e:
                raise ConfigError(f"features.{task}.{artifact}: {e}") from None
    from ptlab.config import validate

    trained = trained_objectives(cfg)
    for alg in dict.fromkeys([*trained, *cfg.train.params]):
        validate(OBJECTIVES[alg].params, cfg.train.params.get(alg, {}), source=f"train.params.{alg}")
    if cfg.train.exposure == "steps" and cfg.train.max_steps is None:
        raise ConfigError("train.max_steps: exposure 'steps' trains every arm for max_steps steps; give max_steps")
    _check_tuning(cfg, trained)


def trained_objectives(cfg: StudyConfig) -> list[str]:
    """Every objective some cell trains with (pipelines' stages and the controls' algorithms included)."""
    algs = [a for a in cfg.axes.algorithm if a != BASE] + list(cfg.controls.algorithms)
    return list(dict.fromkeys(s for a in algs for s in stages(a)))


def _check_tuning(cfg: StudyConfig, trained: list[str]) -> None:
    from ptlab.config import validate
    from ptlab.tasks import ARTIFACTS
    from ptlab.train.objectives import OBJECTIVES

    t = cfg.tuning
    if not t.enabled:
        return
    if t.artifact not in ARTIFACTS:
        raise ConfigError(f"tuning.artifact: unknown artifact {t.artifact!r}; choose from {', '.join(ARTIFACTS)}")
    for task in cfg.axes.task:
        if t.artifact not in cfg.features.get(task, {}):
            raise ConfigError(f"features.{task}.{t.artifact}: tuning runs at this artifact; give its feature")
    for alg, grid in t.grid.items():
        if alg not in OBJECTIVES:
            raise ConfigError(f"tuning.grid: unknown objective {alg!r}; choose from {', '.join(OBJECTIVES)}")
        if not grid.get("lr"):
            raise ConfigError(f"tuning.grid.{alg}.lr: give at least one learning rate")
        for key, values in grid.items():
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"tuning.grid.{alg}.{key}: give distinct values")
        for point in grid_points(grid):
            validate(OBJECTIVES[alg].params, {**cfg.train.params.get(alg, {}), **point["params"]},
                     source=f"tuning.grid.{alg}")
    missing = [alg for alg in trained if alg not in t.grid]
    if missing:
        raise ConfigError(f"tuning.grid: no grid for {missing[0]!r}, which the study trains; give one, or set "
                          "tuning.enabled: false and fix its learning rate in train.lr_by_algorithm")


def grid_points(grid: dict[str, list[float]]) -> list[dict]:
    """Every combination of a tuning grid, as {"lr": ..., "params": {...}} in a fixed order."""
    import itertools

    keys = sorted(grid)
    return [{"lr": dict(zip(keys, combo))["lr"], "params": {k: v for k, v in zip(keys, combo) if k != "lr"}}
            for combo in itertools.product(*(grid[k] for k in keys))]
