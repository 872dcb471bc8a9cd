"""Synthetic tasks for post-training experiments: `math`, `instruct`, `docqa`.

`get_task(name)` returns a `Task` with `generate(n, seed, split, spurious, **knobs)`
and `verify(example_or_gold, response)`; `make_rows` turns examples into TRL
rows (sft / paired / unpaired). Spurious features live in a per-task registry
(`features(task)`, `register_feature(task, Feature(...))`).
"""

from __future__ import annotations

from ptlab.errors import ConfigError
from ptlab.tasks import spurious
from ptlab.tasks.base import SPLITS, Example, Task
from ptlab.tasks.spurious import (
    ARTIFACTS,
    DISTRIBUTIONAL_NARROWNESS,
    FEATURE_AMBIGUITY,
    Feature,
    SpuriousSpec,
    features,
    register_feature,
)

_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    _TASKS[task.name] = task
    return task


def available_tasks() -> dict[str, str]:
    return {name: task.description for name, task in _TASKS.items()}


def get_task(name: str) -> Task:
    if name not in _TASKS:
        raise ConfigError(f"task: unknown task {name!r}; choose from {', '.join(sorted(_TASKS))}")
    return _TASKS[name]


from ptlab.tasks.docqa import DocQATask  # noqa: E402
from ptlab.tasks.instruct import InstructTask  # noqa: E402
from ptlab.tasks.math import MathTask  # noqa: E402

for _cls in (MathTask, InstructTask, DocQATask):
    register_task(_cls())

from ptlab.tasks.rows import FORMATS, make_rows  # noqa: E402

__all__ = [
    "ARTIFACTS", "DISTRIBUTIONAL_NARROWNESS", "FEATURE_AMBIGUITY", "FORMATS", "SPLITS", "Example", "Feature",
    "SpuriousSpec", "Task", "available_tasks", "features", "get_task", "make_rows", "register_feature",
    "register_task", "spurious",
]
