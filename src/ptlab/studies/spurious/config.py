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


def algorithms() -> list[str]:
    """What the algorithm axis accepts: `base` and every registered post-training objective."""
    from ptlab.train.objectives import OBJECTIVES

    return [BASE, *OBJECTIVES]



DEFAULT_FEATURES = {
    "math": {"feature_ambiguity": "altogether_cue", "distributional_narrowness": "add_sub_only"},
    "instruct": {"feature_ambiguity": "urgent_cue", "distributional_narrowness": "lexical_only"},
    "docqa": {"feature_ambiguity": "lexical_overlap", "distributional_narrowness": "founding_only"},
}


class Axes(Strict):
    task: list[str] = Field(default_factory=lambda: ["math", "instruct", "docqa"])
    artifact: list[str] = Field(default_factory=lambda: ["feature_ambiguity", "distributional_narrowness"])
    rate: list[float] = Field(default_factory=lambda: [0.1, 0.9])
    algorithm: list[str] = Field(default_factory=lambda: ["base", "sft", "dpo", "kto"])
    seed: list[int] = Field(default_factory=lambda: [0, 1, 2])


class DataSettings(Strict):
    n_train: int = Field(384, gt=0, description="training examples per cell (KTO sees each as 2 rows)")
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
    batch_size: int = Field(16, gt=0)
    max_steps: int | None = Field(32, gt=0)
    epochs: float = Field(1.0, gt=0)
    lr: float = Field(5e-4, gt=0)
    lr_by_algorithm: dict[str, PositiveFloat] = Field(default_factory=lambda: {"dpo": 1e-4, "kto": 1e-4})
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    max_length: int = Field(384, gt=1)
    params: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"dpo": {"beta": 0.1}, "kto": {"beta": 0.1}})
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
    for alg in dict.fromkeys([*(a for a in cfg.axes.algorithm if a in OBJECTIVES), *cfg.train.params]):
        from ptlab.config import validate

        validate(OBJECTIVES[alg].params, cfg.train.params.get(alg, {}), source=f"train.params.{alg}")
