"""`ptlab study <name>`: one Typer group that every study adds its command to.

A study module exposes `add_study_commands(study: typer.Typer)`; list it in
`STUDY_MODULES` (one line) and its commands appear under `ptlab study`.
"""

from __future__ import annotations

import importlib

import typer

STUDY_MODULES = [
    "ptlab.retrieval.cli",
    "ptlab.studies.spurious_cli",
    "ptlab.studies.budget_cli",
]


def register(app: typer.Typer) -> None:
    study = typer.Typer(help="Run a study: a grid of build-data -> train -> evaluate cells, and its report.",
                        no_args_is_help=True)
    app.add_typer(study, name="study")
    for name in STUDY_MODULES:
        importlib.import_module(name).add_study_commands(study)
