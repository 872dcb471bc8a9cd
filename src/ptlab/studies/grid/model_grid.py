"""The shared part of the studies whose cells post-train a model and evaluate it on task splits.

Spurious and budget cells both expand a config into cells, plan each against
the resolved base model (built once, here, not in every worker), and count as
done when their evaluation output is intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, ClassVar

from ptlab.studies.grid.steps import eval_output_ok
from ptlab.studies.study import Study


class ModelGridStudy(Study):
    """A `Study` given three pure functions: `check_config(cfg)`, `expand(cfg)`, `plan_cell(cfg, cell, root, model_dir)`."""

    check_config: ClassVar[Callable]
    expand: ClassVar[Callable]
    plan_cell: ClassVar[Callable]

    def check(self, cfg) -> None:
        self.check_config(cfg)

    def plan(self, cfg, root: Path) -> list:
        from ptlab.models import resolve

        cells = self.expand(cfg)
        model_dir = str(resolve(cfg.model)) if cells else ""  # builds `tiny` once here, not in every worker
        return [self.plan_cell(cfg, c, root, model_dir) for c in cells]

    def is_done(self, plan, root: Path) -> bool:
        return eval_output_ok(plan.eval.path)
