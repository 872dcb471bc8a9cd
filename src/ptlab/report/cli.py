"""`ptlab report <study-dir>`: tables, figures and a self-contained HTML report of a study."""

from __future__ import annotations

from typing import Optional

import typer


def _writer(root):
    """The report writer for the kind of study in `root`, read from its manifest's format."""
    from ptlab.errors import PtlabError
    from ptlab.studies.manifest import load_manifest_file

    try:
        kind = str(load_manifest_file(root / "study.json").get("format", ""))
    except (OSError, PtlabError):
        kind = ""  # the spurious writer names what is missing or unreadable
    if kind.startswith("ptlab-study-budget"):
        from ptlab.report.budget import write_report
    else:
        from ptlab.report.spurious import write_report
    return write_report


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        study_dir: str = typer.Argument(..., help="a study's output directory (holds study.json, results.sqlite)"),
        out: Optional[str] = typer.Option(None, "--out", "-o", help="report folder (default: <study-dir>/report)"),
        export: Optional[str] = typer.Option(None, help="also export the results table to this .csv / .parquet"),
    ) -> None:
        """Write report.md, report.html (figures embedded) and PNGs for a study directory (spurious or budget)."""
        from pathlib import Path

        from ptlab.atomic import check_replaceable

        if out:
            check_replaceable(Path(out), "--out")
        if export and Path(export).suffix not in (".csv", ".parquet"):
            from ptlab.errors import ConfigError

            raise ConfigError(f"--export: unsupported format {Path(export).suffix!r} for {export}; use .csv or .parquet")
        path = _writer(Path(study_dir))(Path(study_dir), out)
        print((path.parent / "table.md").read_text())
        print(f"report: {path}  ({path.with_suffix('.html')})")
        if export:
            from ptlab.store import ResultStore

            print(f"exported: {ResultStore(Path(study_dir) / 'results.sqlite', create=False).export(export)}")
