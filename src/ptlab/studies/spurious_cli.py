"""`ptlab study spurious [CONFIG] [--quick] [key=value ...]`."""

from __future__ import annotations

from typing import Optional

import typer

# `--quick`: 1 seed and less data; applied before the config file and the overrides.
QUICK = {
    "output_dir": "runs/study-spurious-quick",
    "axes": {"seed": [0]},
    "data": {"n_train": 320, "n_eval": 100, "n_pairs": 32},
    "train": {"max_steps": 24},
}


def load_study_config(config: Optional[str], overrides: list[str], quick: bool = False):
    from ptlab.studies.loading import load_grid_config
    from ptlab.studies.spurious_config import StudyConfig

    return load_grid_config(StudyConfig, "spurious", config, overrides, QUICK if quick else None)


def add_study_commands(study: typer.Typer) -> None:
    @study.command("spurious")
    def spurious(
        config: Optional[str] = typer.Argument(None, help="study YAML (see configs/study-spurious.yaml)"),
        overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides, e.g. axes.seed=[0,1] workers=4"),
        quick: bool = typer.Option(False, "--quick", help="1 seed, less data: a few minutes on a laptop CPU"),
        report: bool = typer.Option(True, "--report/--no-report", help="write report.md / report.html at the end"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress output"),
    ) -> None:
        """Robustness to spurious correlations: SFT vs DPO vs KTO over tasks x artifacts x rates x seeds."""
        from ptlab.studies.spurious import run_study

        cfg = load_study_config(config, overrides or [], quick)
        run = run_study(cfg, quiet=quiet)
        print(f"study: {run.ran} cells run, {run.skipped} already finished, {run.wall_s:.0f} s -> {run.root}")
        if report:
            from ptlab.report.spurious import write_report

            out = write_report(run.root)
            print((out.parent / "table.md").read_text() if (out.parent / "table.md").is_file() else "")
            print(f"report: {out}  ({out.with_suffix('.html')})")
