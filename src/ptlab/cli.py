"""The `ptlab` command: one Typer app; each area registers its own commands.

An area adds its module to `COMMAND_MODULES`; the module exposes
`register(app: typer.Typer)`. User errors (`PtlabError`) print one line and exit 2.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from ptlab.errors import PtlabError

COMMAND_MODULES = [
    "ptlab.models.cli",
    "ptlab.data.cli",
    "ptlab.train.cli",
    "ptlab.synth.cli",
    "ptlab.retrieval.cli",
    "ptlab.studies.cli",
    "ptlab.evaluate.cli",
    "ptlab.report.cli",
    "ptlab.advise",
]

app = typer.Typer(
    name="ptlab",
    help="A laboratory for LLM post-training data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        app()
    except PtlabError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
