"""`ptlab study budget [CONFIG] [--quick] [key=value ...]` and `ptlab study budget-report DIR`."""

from __future__ import annotations

from pathlib import Path

import typer

# `--quick`: one seed, a smaller grid and evaluation; applied before the config file and the overrides.
QUICK = {
    "output_dir": "runs/study-budget-quick",
    "axes": {"seed_size": [25], "budget": [25, 100, 400, 1600], "seed": [0]},
    "data": {"n_eval": 100},
}


def load_budget_config(config: str | None, overrides: list[str], quick: bool = False):
    from ptlab.studies.budget_config import BudgetStudyConfig
    from ptlab.studies.loading import load_grid_config

    return load_grid_config(BudgetStudyConfig, "budget", config, overrides, QUICK if quick else None)


def _print_report(root: Path) -> None:
    from ptlab.report.budget import write_report

    out = write_report(root)
    print((out.parent / "table.md").read_text())
    summary = (out.parent / "crossover.json")
    if summary.is_file():
        import json

        print(json.loads(summary.read_text())["verdict"])
    print(f"report: {out}  ({out.with_suffix('.html')})")


def add_study_commands(study: typer.Typer) -> None:
    @study.command("budget")
    def budget(
        config: str | None = typer.Argument(None, help="study YAML (see configs/study-budget.yaml)"),
        overrides: list[str] | None = typer.Argument(None, help="key=value overrides, e.g. axes.seed=[0,1]"),
        quick: bool = typer.Option(False, "--quick", help="1 seed, a small grid: a few minutes on a laptop CPU"),
        report: bool = typer.Option(True, "--report/--no-report", help="write the report at the end"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress output"),
    ) -> None:
        """Synthetic data under a budget: answer augmentation vs question rephrase vs new question over |S| x Q."""
        from ptlab.studies.budget import run_budget_study

        cfg = load_budget_config(config, overrides or [], quick)
        run = run_budget_study(cfg, quiet=quiet)
        t = run.teacher
        print(f"study: {run.ran} cells run, {run.skipped} already finished, {run.wall_s:.0f} s -> {run.root}")
        print(f"teacher this run: {t['requests']} requests, {t['paid']} paid, {t['cached']} cached")
        if report:
            _print_report(run.root)

    @study.command("budget-report")
    def budget_report(study_dir: str = typer.Argument(..., help="a budget study's output directory")) -> None:
        """(Re)write a budget study's report (report.md, report.html, PNGs, crossover.json)."""
        _print_report(Path(study_dir))
