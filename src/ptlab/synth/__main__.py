"""`python -m ptlab.synth serve|synth ...`: the synth commands without loading every area's CLI.

The same commands as `ptlab serve` / `ptlab synth`; starting in about a second
instead of importing the training stack, which matters for servers started by
scripts and for subprocess tests.
"""

import sys

import typer

from ptlab.errors import PtlabError
from ptlab.synth.cli import register

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True)
register(app)


def main() -> None:
    try:
        app()
    except PtlabError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
