"""The shape every study shares: a config, quick overrides, cells, cached steps, analysis, a report.

A study is a frozen description of an experiment grid (HELM's RunSpec idea):
it says what its config is, how the config expands into cells, what a cell's
plan holds (every input its steps need, picklable, keyed by fingerprints), how
one cell runs (`runner`, a module-level function so any executor can ship it to
a worker), and how its results become a report. The one engine
(`ptlab.studies.grid.run`) does the rest for every study: the output-directory
rules, the lock, the manifest, the results store, executors, progress,
resumption. A new study is one folder with a `Study` subclass and one line in
`ptlab.studies.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from pydantic import BaseModel


@dataclass
class GridRun:
    """What one invocation of a study did."""

    root: Path
    cells: int
    ran: int
    skipped: int
    wall_s: float
    summary: dict = field(default_factory=dict)  # the study's own totals (e.g. teacher calls paid)
    ran_ids: list[str] = field(default_factory=list)


class Study(ABC):
    """One kind of study. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]  # `ptlab study NAME`
    help: ClassVar[str]  # one line for `ptlab study --help`
    config_model: ClassVar[type[BaseModel]]  # pydantic, `extra="forbid"`; has output_dir, executor, workers, threads
    quick: ClassVar[dict]  # `--quick` overrides, applied before the config file and the command line
    study_format: ClassVar[str]  # written to study.json; another format in a directory is refused
    cell_version: ClassVar[str]  # bump when what a cell's steps produce changes
    axes: ClassVar[tuple[str, ...]]  # the results store's axis columns, in order (keys of `cell.as_dict()`)
    runner: ClassVar[Callable[..., dict]]  # runner(plan, events) -> {"cell", "config_hash", "metrics", ...}

    # ---- config and cells -------------------------------------------------------------------
    def check(self, cfg) -> None:
        """Validate the config against registries (tasks, objectives, ...) before any work; ConfigError if bad."""

    def tune(self, cfg, root: Path, quiet: bool = False) -> None:
        """Settle what the cells' plans depend on before planning (a validation sweep's choices); runs after the
        output directory is checked. A study that writes here makes the directory its own first (manifest, under
        the directory's lock), so a run killed at this stage resumes."""

    @abstractmethod
    def plan(self, cfg, root: Path) -> list[Any]:
        """Expand the config into cells and plan each (`plan.cell.cell_id`, `plan.config_hash`, optional `plan.wave`:
        cells run in waves, each after the ones before it); writes nothing."""

    def prepare(self, cfg, root: Path, todo: list) -> None:
        """Shared steps the main process runs once, before any worker starts (data, collections, ...)."""

    def is_done(self, plan, root: Path) -> bool:
        """Whether a stored cell's outputs are still there and intact; if not, it is recomputed."""
        return True

    # ---- while running -----------------------------------------------------------------------
    def progress_line(self, cell_id: str, result: dict) -> str:
        """What is printed when a cell finishes."""
        return f"{cell_id}: done ({result.get('timings', {}).get('wall_s', 0):.0f}s)"

    def summarise(self, results: list[dict]) -> dict:
        """Totals over the cells this invocation ran (written to runs.jsonl and printed)."""
        return {}

    # ---- after running -----------------------------------------------------------------------
    @abstractmethod
    def write_report(self, root: Path, out: Path | None = None) -> Path:
        """Analyse the stored results and write the report; returns the path of report.md."""

    def headline(self, report: Path) -> str:
        """What `ptlab study` / `ptlab report` print after writing the report (a table, a verdict)."""
        table = report.parent / "table.md"
        return table.read_text() if table.is_file() else ""
