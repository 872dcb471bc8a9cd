"""`ptlab synth CONFIG`: seeds -> strategy -> teacher -> a dataset directory with its accounting.

The directory holds `data.jsonl` (TRL `prompt`/`completion` rows with
provenance columns) and `synth.json` (the config as run, the strategy's
statistics and the teacher's exact accounting). Neither ever holds an API key:
the config only names the environment variable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ptlab.atomic import atomic_dir, write_json
from ptlab.config import Strict
from ptlab.errors import ConfigError
from ptlab.synth.config import BudgetConfig, TeacherConfig
from ptlab.synth.strategies import Seed, StrategyConfig, SynthResult, run_strategy


class SeedsConfig(Strict):
    task: str = "math"
    n: int = Field(100, ge=1, description="|S|, the seed-set size")
    seed: int = 0
    source: Literal["task", "simulated", "jsonl"] = Field(
        "task", description="task: the task generator; simulated: the simulated teacher's own seeds; jsonl: path"
    )
    path: str | None = Field(None, description="jsonl: rows with 'prompt' (or 'question'), optional 'answer', 'id'")
    knobs: dict[str, Any] = Field(default_factory=dict)


class SynthConfig(Strict):
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    seeds: SeedsConfig = Field(default_factory=SeedsConfig)
    output: str = "synth-out"


def load_seeds(cfg: SeedsConfig, teacher) -> list[Seed]:
    inner = getattr(teacher, "inner", teacher)
    if cfg.source == "simulated":
        if not hasattr(inner, "seeds"):
            raise ConfigError("seeds.source: 'simulated' needs teacher.backend: simulated")
        return [Seed(e.id, e.prompt, e.answer) for e in inner.seeds(cfg.n, cfg.seed)]
    if cfg.source == "jsonl":
        if not cfg.path or not Path(cfg.path).is_file():
            raise ConfigError(f"seeds.path: seed file not found: {cfg.path}")
        seeds = []
        for i, line in enumerate(Path(cfg.path).read_text().splitlines()):
            if not line.strip():
                continue
            row = json.loads(line)
            question = row.get("prompt") or row.get("question")
            if not question:
                raise ConfigError(f"{cfg.path}:{i + 1}: expected a 'prompt' or 'question' field")
            seeds.append(Seed(str(row.get("id", i)), question, row.get("answer")))
        return seeds[: cfg.n]
    from ptlab.tasks import get_task

    examples = get_task(cfg.task).generate(cfg.n, seed=cfg.seed, split="train", **cfg.knobs)
    if hasattr(inner, "learn"):
        inner.learn(examples)
    return [Seed(e.id, e.prompt, e.answer) for e in examples]


def run_synth(cfg: SynthConfig) -> tuple[Path, SynthResult]:
    from ptlab.synth import make_teacher

    budget = cfg.budget
    if budget.max_queries is None and cfg.strategy.queries is not None:
        budget = BudgetConfig(max_queries=cfg.strategy.queries, max_tokens=budget.max_tokens)
    teacher = make_teacher(cfg.teacher, budget=budget)
    seeds = load_seeds(cfg.seeds, teacher)
    task = None
    if cfg.seeds.source != "jsonl" or cfg.strategy.verify == "gold":
        from ptlab.tasks import get_task

        task = get_task(cfg.seeds.task)
    result = run_strategy(teacher, seeds, cfg.strategy, task=task)
    out = Path(cfg.output)
    with atomic_dir(out) as tmp:
        with open(tmp / "data.jsonl", "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in result.rows)
        write_json(tmp / "synth.json", {"config": cfg.model_dump(), "stats": result.stats})
    return out, result
