"""The budget study's config: axes (regime × exposure × seed-set size × budget × strategy × seed) and fixed settings.

    axes:     |S| × Q × strategy × seed — the grid (plus reference cells: the base
              model, and SFT on the seed set alone, Q = 0) — in every simulator
              regime (`axes.regime`, named in `regimes`) and under every exposure
              rule (`axes.exposure`: a fixed number of epochs, or equal optimizer steps)
    teacher:  any `ptlab.synth` teacher (simulated by default; hf / openai work the same)
    regimes:  name → overrides of `teacher.simulator` (the simulated teacher's declared
              assumptions), so a sensitivity study varies them like any other axis
    seeds / synth / data / train / eval: fixed settings shared by every cell

`check_config` validates everything against the registries (task, strategies,
teacher, strategy settings) so a bad study fails before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ptlab.config import Strict
from ptlab.errors import ConfigError
from ptlab.synth.config import TeacherConfig
from ptlab.synth.strategies import STRATEGIES

# What the cells of one seed-set size are trained on when no teacher is asked (Q = 0).
REFERENCES = ("seeds_only", "base")


class BudgetAxes(Strict):
    seed_size: list[int] = Field(default_factory=lambda: [25, 100], description="|S|")
    budget: list[int] = Field(default_factory=lambda: [25, 50, 100, 200, 400, 800, 1600], description="Q")
    strategy: list[str] = Field(default_factory=lambda: list(STRATEGIES))
    seed: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], description="seed-set draw and training seed; "
                            "5 give the seed variance in every interval 4 degrees of freedom")
    regime: list[str] = Field(default_factory=lambda: ["default"], description="simulator regimes (names in "
                              "`regimes`): the simulated teacher's assumptions, varied one at a time")
    exposure: list[Literal["epochs", "steps"]] = Field(
        default_factory=lambda: ["epochs", "steps"], description="epochs: train.epochs passes over each cell's rows (the "
        "paper's rule); steps: train.steps optimizer steps for every cell (equal compute)")


class SeedSource(Strict):
    source: Literal["simulated", "task", "jsonl"] = Field(
        "simulated", description="simulated: the simulated teacher's own questions (it can rephrase them); "
        "task: the task generator (a simulated teacher can answer but not reword them); jsonl: `path`")
    path: str | None = None
    knobs: dict[str, Any] = Field(default_factory=dict, description="the task's difficulty knobs (seeds and eval)")


class BudgetData(Strict):
    n_eval: int = Field(200, gt=0, description="held-out examples, the same for every cell")
    eval_seed: int = 1000
    eval_split: Literal["eval_id"] = "eval_id"
    include_seeds: bool = Field(True, description="every strategy's training rows include the seed set's own "
                                "solutions (the seeds_only rows) besides what the teacher generated")


class BudgetTrain(Strict):
    epochs: float = Field(3.0, gt=0, description="exposure epochs: passes over each cell's rows (the paper: 3)")
    steps: int = Field(200, gt=0, description="exposure steps: optimizer steps of every cell, whatever its rows")
    batch_size: int = Field(16, gt=0)
    lr: float = Field(5e-4, gt=0)
    warmup_ratio: float = Field(0.03, ge=0, le=1)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    max_length: int = Field(384, gt=1)
    save_every: int = Field(0, ge=0, description="checkpoint every N steps (0: only at the end)")
    retention: Literal["final", "checkpoints"] = Field(
        "final", description="what a finished cell keeps: its final weights only, or also its last checkpoints")


class BudgetEval(Strict):
    batch_size: int = Field(64, gt=0)
    max_new_tokens: int | None = Field(48, gt=0, description="room for the longest solution path a teacher writes "
                                       "(the task's tight default, 32 for math, cuts some of them off)")


class BudgetStudyConfig(Strict):
    study: Literal["budget"] = "budget"
    model: str = "tiny"
    task: str = "math"
    output_dir: str = "runs/study-budget"
    axes: BudgetAxes = Field(default_factory=BudgetAxes)
    references: bool = Field(True, description="also run the base model and SFT on the seeds alone (Q = 0)")
    teacher: TeacherConfig = Field(default_factory=lambda: TeacherConfig(backend="simulated", model="math"))
    regimes: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"default": {}}, description="name → overrides of teacher.simulator (simulated "
        "teacher only); `axes.regime` picks which run")
    seeds: SeedSource = Field(default_factory=SeedSource)
    synth: dict[str, Any] = Field(default_factory=dict, description="ptlab.synth StrategyConfig settings "
                                  "(temperature, check, verify, ...) except strategy / queries / rounds")
    data: BudgetData = Field(default_factory=BudgetData)
    train: BudgetTrain = Field(default_factory=BudgetTrain)
    eval: BudgetEval = Field(default_factory=BudgetEval)
    executor: Literal["sequential", "processes", "ray"] = "processes"
    workers: int = Field(2, gt=0)
    threads: int = Field(1, gt=0, description="torch threads per cell, whatever the executor (same results)")
    ray_address: str | None = None

    def fixed(self) -> dict:
        """Everything but the axes and how it is executed: what must match to reuse a results directory.

        The regimes are the `regime` axis's values: defining another one, like adding an axis value, extends the
        study (a regime's overrides are part of its cells' data fingerprints, so an edited regime re-runs)."""
        fixed = self.model_dump(mode="json", exclude={"axes", "output_dir", "executor", "workers", "ray_address",
                                                      "regimes"})
        try:  # spelled-out defaults and omitted ones are the same settings
            fixed["synth"] = self.strategy_config("answer_augmentation", 1).model_dump(
                mode="json", exclude={"strategy", "queries", "rounds"})
        except Exception:  # noqa: BLE001 - invalid settings: check_config names the field
            pass
        return fixed

    def teacher_for(self, regime: str) -> dict:
        """The teacher config (a plain dict) of one regime: `teacher` with the regime's simulator overrides."""
        teacher = self.teacher.model_dump(mode="json")
        overrides = self.regimes.get(regime, {})
        if overrides:
            teacher["simulator"] = {**teacher.get("simulator", {}), **overrides}
        return teacher

    def strategy_config(self, strategy: str, queries: int):
        from ptlab.synth.strategies import StrategyConfig

        return StrategyConfig(**{**self.synth, "strategy": strategy, "queries": queries})


def check_config(cfg: BudgetStudyConfig) -> None:
    """Raise ConfigError (one line, naming the field) for anything that would fail mid-study."""
    from ptlab.config import validate
    from ptlab.synth.strategies import StrategyConfig
    from ptlab.tasks import get_task

    for name, values in cfg.axes.model_dump().items():
        if not values:
            raise ConfigError(f"axes.{name}: empty, so the grid has no cells; give at least one value")
        if len(set(values)) != len(values):
            raise ConfigError(f"axes.{name}: repeated values {values}")
    for name in ("seed_size", "budget"):
        bad = [v for v in getattr(cfg.axes, name) if v < 1]
        if bad:
            raise ConfigError(f"axes.{name}: every value must be >= 1 (got {bad[0]})")
    check_regimes(cfg)
    for s in cfg.axes.strategy:
        if s not in STRATEGIES:
            raise ConfigError(f"axes.strategy: unknown strategy {s!r}; choose from {', '.join(STRATEGIES)}")
    try:
        task = get_task(cfg.task)
        task.knobs(**cfg.seeds.knobs)
    except ConfigError as e:
        raise ConfigError(f"task / seeds.knobs: {e}") from None
    for key in ("strategy", "queries", "rounds"):
        if key in cfg.synth:
            raise ConfigError(f"synth.{key}: set by the grid (axes.strategy, axes.budget); remove it")
    validate(StrategyConfig, {**cfg.synth, "queries": 1}, source="synth")
    t = cfg.teacher
    if t.backend == "simulated":
        sim_task = t.model if t.model != "default" else "math"
        if sim_task != cfg.task:
            raise ConfigError(f"teacher.model: a simulated teacher simulates a task; expected {cfg.task!r} "
                              f"(the study's task), got {t.model!r}")
        if t.task_knobs != cfg.seeds.knobs:
            raise ConfigError("teacher.task_knobs: must equal seeds.knobs, or the teacher's questions come from "
                              "another distribution than the seeds and the evaluation")
    elif cfg.seeds.source == "simulated":
        raise ConfigError(f"seeds.source: 'simulated' needs teacher.backend: simulated (got {t.backend!r}); "
                          "use seeds.source: task or jsonl")
    if cfg.seeds.source == "jsonl" and not cfg.seeds.path:
        raise ConfigError("seeds.path: seeds.source jsonl needs a path")
    if cfg.seeds.source == "jsonl":
        check_seed_file(cfg.seeds.path, need_completion=cfg.references or cfg.data.include_seeds)


def check_regimes(cfg: BudgetStudyConfig) -> None:
    """Every regime named on the axis exists, overrides only the simulated teacher, and makes a valid teacher."""
    from ptlab.config import validate

    for name in cfg.axes.regime:
        if name not in cfg.regimes:
            raise ConfigError(f"axes.regime: {name!r} is not defined under `regimes` (defined: "
                              f"{', '.join(sorted(cfg.regimes)) or 'none'})")
        if cfg.regimes[name] and cfg.teacher.backend != "simulated":
            raise ConfigError(f"regimes.{name}: overrides the simulated teacher's assumptions, but teacher.backend "
                              f"is {cfg.teacher.backend!r}; leave the regime empty ({{}}) for a real teacher")
        validate(TeacherConfig, cfg.teacher_for(name), source=f"regimes.{name}")


def _seed_text(row: dict, field: str, where: str) -> None:
    if not isinstance(row[field], str) or not row[field].strip():
        raise ConfigError(f"{where}: {field!r} must be a non-empty string (got {row[field]!r})")


def check_seed_file(path: str, need_completion: bool) -> None:
    """Every row of a JSONL seed file: a 'prompt' (or 'question'), optional 'answer'; a 'completion' for the
    seeds_only reference. Read here, before any work, so a bad line fails with its number."""
    from ptlab.data.io import iter_jsonl

    if not Path(path).is_file():
        raise ConfigError(f"seeds.path: seed file not found: {path}")
    n = 0
    for line, row in iter_jsonl(path):
        where = f"{path}:{line}"
        question = "prompt" if row.get("prompt") is not None else "question"
        if row.get(question) is None:
            raise ConfigError(f"{where}: expected a 'prompt' or 'question' field")
        _seed_text(row, question, where)
        answer = row.get("answer")
        if answer is not None and (isinstance(answer, bool) or not isinstance(answer, (str, int, float))):
            raise ConfigError(f"{where}: 'answer' must be a string or a number (got {answer!r})")
        if need_completion:
            if row.get("completion") is None:
                raise ConfigError(f"{where}: the seed rows (references: true or data.include_seeds: true) need a "
                                  "'completion'")
            _seed_text(row, "completion", where)
        n += 1
    if n == 0:
        raise ConfigError(f"seeds.path: {path}: no seed rows")
