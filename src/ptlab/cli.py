"""The `ptlab` command: one Typer app; each area registers its own commands.

An area adds its module to `COMMAND_MODULES`; the module exposes
`register(app: typer.Typer)`. User errors (`PtlabError`), usage errors and failed file
operations (`OSError`: disk full, permission denied, ...) print one line and exit 2.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys

import typer

from ptlab.errors import PtlabError

try:  # typer >= 0.22 carries its own copy of click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer on click
    from click import exceptions as click_exceptions

COMMAND_MODULES = [
    "ptlab.models.cli",
    "ptlab.data.cli",
    "ptlab.train.cli",
    "ptlab.synth.cli",
    "ptlab.retrieval.cli",
    "ptlab.studies.cli",
    "ptlab.evaluate.cli",
    "ptlab.studies.budget.advise",
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


def one_line(message: str) -> str:
    """A message as a single line (an embedded library message may span several)."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def os_error_line(e: OSError) -> str:
    """`<path>: <what went wrong>` for a failed file operation (disk full, permission, not a directory, ...)."""
    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
    what = e.strerror or os.strerror(e.errno)
    if e.errno == errno.ENOSPC:
        what += "; free some space and run again"
    return f"{where}: {what}" if where else what


def usage_error_line(e: click_exceptions.UsageError) -> str:
    """A command-line usage error (unknown option, bad option value) as one line naming the command."""
    names, ctx = [], e.ctx
    while ctx is not None and ctx.parent is not None:  # the root is `ptlab`, however it was started
        names.insert(0, ctx.info_name)
        ctx = ctx.parent
    return f"{' '.join(['ptlab', *names])}: {one_line(e.format_message())}"


def _run_app() -> int:
    """Run the app without click's standalone handling; the exit code it asks for."""
    try:
        rv = app(standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as e:  # help was shown
        return e.exit_code
    except click_exceptions.UsageError as e:
        raise PtlabError(usage_error_line(e)) from None
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    return rv if isinstance(rv, int) else 0


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        code = _run_app()
    except PtlabError as e:
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        if e.errno is None:
            raise
        print(f"error: {one_line(os_error_line(e))}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code)  # as click's standalone mode does, also on success


if __name__ == "__main__":
    main()
