"""`ptlab synth CONFIG`: seeds -> strategy -> teacher -> a dataset directory with its accounting.

The directory holds `data.jsonl` (TRL `prompt`/`completion` rows with
provenance columns) and `synth.json` (the config as run, the strategy's
statistics and the teacher's exact accounting). Neither ever holds an API key:
the config only names the environment variable.

Every run is a ledger run (`ptlab.synth.ledger`), so its budget is a promise
across kills and restarts: the run id is a fingerprint of what makes it this
run — the output path, the teacher's identity (backend, model, server,
generation settings; not timeouts or concurrency), the strategy and the seeds
— unless `budget.run_id` names one. A run that finishes is marked complete; a
run that fails (all or most calls failed: `RunFailed`) writes no dataset and
stays open, its spending still counted when it is run again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ptlab.atomic import atomic_dir, check_replaceable, write_json
from ptlab.config import Strict
from ptlab.errors import ConfigError
from ptlab.fingerprint import fingerprint
from ptlab.synth.cache import normal_server
from ptlab.synth.config import BudgetConfig, TeacherConfig
from ptlab.synth.secrets import redact_url
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


def read_seed_file(cfg: SeedsConfig) -> list[Seed]:
    """Seeds from a JSONL file; every line is checked (file:line in the error) before any teacher is built."""
    from ptlab.data.io import iter_jsonl

    if not cfg.path or not Path(cfg.path).is_file():
        raise ConfigError(f"seeds.path: seed file not found: {cfg.path}")
    seeds = []
    for line, row in iter_jsonl(cfg.path):
        question = row.get("prompt") or row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise ConfigError(f"{cfg.path}:{line}: expected a text 'prompt' or 'question' field")
        answer = row.get("answer")
        if answer is not None and not isinstance(answer, (str, int, float)):
            raise ConfigError(f"{cfg.path}:{line}: 'answer' must be text or a number")
        seeds.append(Seed(str(row.get("id", line)), question, None if answer is None else str(answer)))
    return seeds[: cfg.n]


def load_seeds(cfg: SeedsConfig, teacher) -> list[Seed]:
    inner = getattr(teacher, "inner", teacher)
    if cfg.source == "simulated":
        if not hasattr(inner, "seeds"):
            raise ConfigError("seeds.source: 'simulated' needs teacher.backend: simulated")
        return [Seed(e.id, e.prompt, e.answer) for e in inner.seeds(cfg.n, cfg.seed)]
    if cfg.source == "jsonl":
        return read_seed_file(cfg)
    from ptlab.tasks import get_task

    examples = get_task(cfg.task).generate(cfg.n, seed=cfg.seed, split="train", **cfg.knobs)
    if hasattr(inner, "learn"):
        inner.learn(examples)
    return [Seed(e.id, e.prompt, e.answer) for e in examples]


def public_config(cfg: SynthConfig) -> dict:
    """The config as written to synth.json: never a URL's user:password.

    Validation already refuses such a base_url (see `ptlab.synth.secrets`); this
    masks it again for a config built around validation (`model_construct`).
    """
    data = cfg.model_dump()
    data["teacher"]["base_url"] = redact_url(data["teacher"]["base_url"])
    return data


# Teacher settings that change how calls are made, not what a call answers: not part of a run's identity.
OPERATIONAL = ("api_key_env", "api_key_required", "concurrency", "timeout_s", "max_retries", "backoff_s",
               "backoff_max_s", "batch_size", "device", "cache", "cache_path")


def run_id(cfg: SynthConfig) -> str:
    """The ledger's name for this run: the same output, teacher, strategy and seeds are the same run."""
    teacher = {k: v for k, v in cfg.teacher.model_dump().items() if k not in OPERATIONAL}
    teacher["base_url"] = normal_server(cfg.teacher.base_url) if cfg.teacher.backend == "openai" else None
    output = str(Path(cfg.output).expanduser().resolve())
    return "synth-" + fingerprint(output, teacher, cfg.strategy.model_dump(), cfg.seeds.model_dump())


def run_synth(cfg: SynthConfig) -> tuple[Path, SynthResult]:
    from ptlab.synth import make_teacher

    check_replaceable(Path(cfg.output))  # before any teacher call is paid
    budget = cfg.budget
    if budget.max_queries is None and cfg.strategy.queries is not None:
        budget = budget.model_copy(update={"max_queries": cfg.strategy.queries})
    if budget.run_id is None:
        budget = budget.model_copy(update={"run_id": run_id(cfg)})
    # A bad seed file stops the run before the teacher (and its reply cache) exists.
    file_seeds = read_seed_file(cfg.seeds) if cfg.seeds.source == "jsonl" else None
    with make_teacher(cfg.teacher, budget=budget) as teacher:  # its cache closed here, not at GC time
        seeds = file_seeds if file_seeds is not None else load_seeds(cfg.seeds, teacher)
        task = None
        if cfg.seeds.source != "jsonl" or cfg.strategy.verify == "gold":
            from ptlab.tasks import get_task

            task = get_task(cfg.seeds.task)
        result = run_strategy(teacher, seeds, cfg.strategy, task=task)
        out = Path(cfg.output)
        with atomic_dir(out) as tmp:
            with open(tmp / "data.jsonl", "w") as f:
                f.writelines(json.dumps(row) + "\n" for row in result.rows)
            write_json(tmp / "synth.json", {"config": public_config(cfg), "stats": result.stats})
        teacher.complete_run()
    return out, result
