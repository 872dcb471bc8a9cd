"""`ptlab study NAME [CONFIG] [key=value ...] [--quick]` and `ptlab report DIR`, for every registered study.

One convention for all studies: the config file is optional, `key=value`
overrides follow it (or stand alone), `--quick` applies the study's quick
defaults first, the results go to the config's `output_dir`, and the report is
written at the end (`--no-report` to skip it; `ptlab report DIR` re-renders it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ptlab.studies.registry import STUDIES


def load_study_config(name: str, config: Optional[str], overrides: list[str], quick: bool = False):
    """A study's validated config from its quick defaults, the YAML file and the overrides."""
    from ptlab.studies.grid.config import load_grid_config
    from ptlab.studies.registry import get_study

    study = get_study(name)
    return load_grid_config(study.config_model, name, config, overrides, study.quick if quick else None)


def run_study_command(name: str, config: Optional[str], overrides: list[str], quick: bool, report: bool,
                      quiet: bool) -> None:
    from ptlab.studies.grid.run import run_grid
    from ptlab.studies.registry import get_study

    study = get_study(name)
    cfg = load_study_config(name, config, overrides, quick)
    run = run_grid(study, cfg, quiet=quiet)
    print(f"study: {run.ran} cells run, {run.skipped} already finished, {run.wall_s:.0f} s -> {run.root}")
    teacher = run.summary.get("teacher")
    if teacher:
        print(f"teacher this run: {teacher.get('requests', 0)} requests, {teacher.get('paid', 0)} paid, "
              f"{teacher.get('cached', 0)} cached")
    if report:
        out = study.write_report(run.root)
        print(study.headline(out))
        print(f"report: {out}  ({out.with_suffix('.html')})")


def _add(group: typer.Typer, name: str, help_text: str) -> None:
    def command(
        config: Optional[str] = typer.Argument(None, help=f"study YAML (see configs/study-{name}.yaml)"),
        overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides, e.g. axes.seed=[0,1] workers=4"),
        quick: bool = typer.Option(False, "--quick", help="the study's quick variant: minutes on a laptop CPU"),
        report: bool = typer.Option(True, "--report/--no-report", help="write report.md / report.html at the end"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress output"),
    ) -> None:
        run_study_command(name, config, list(overrides or []), quick, report, quiet)

    command.__doc__ = help_text
    group.command(name)(command)


def register(app: typer.Typer) -> None:
    study = typer.Typer(help="Run a study: a grid of cached cells (data -> train -> evaluate), then its report.",
                        no_args_is_help=True)
    app.add_typer(study, name="study")
    for name, (_, help_text) in STUDIES.items():
        _add(study, name, help_text)

    @app.command("report")
    def report_cmd(
        study_dir: str = typer.Argument(..., help="a study's output directory (holds study.json, results.sqlite)"),
        out: Optional[str] = typer.Option(None, "--out", "-o", help="report folder (default: <study-dir>/report)"),
        export: Optional[str] = typer.Option(None, help="also export the results table to this .csv / .parquet"),
    ) -> None:
        """(Re)write a study's report: report.md, report.html (figures embedded), PNGs, tables."""
        from ptlab.atomic import check_replaceable
        from ptlab.errors import ConfigError
        from ptlab.studies.registry import study_of_dir

        if out:
            check_replaceable(Path(out), "--out")
        if export and Path(export).suffix not in (".csv", ".parquet"):
            raise ConfigError(f"--export: unsupported format {Path(export).suffix!r} for {export}; use .csv or .parquet")
        study = study_of_dir(Path(study_dir))
        path = study.write_report(Path(study_dir), Path(out) if out else None)
        print(study.headline(path))
        print(f"report: {path}  ({path.with_suffix('.html')})")
        if export:
            from ptlab.studies.grid.run import DB
            from ptlab.studies.grid.store import ResultStore

            print(f"exported: {ResultStore(Path(study_dir) / DB, create=False).export(export)}")
