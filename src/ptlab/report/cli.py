"""`ptlab report <study-dir>`: tables, figures and a self-contained HTML report of a study."""

from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        study_dir: str = typer.Argument(..., help="a study's output directory (holds study.json, results.sqlite)"),
        out: Optional[str] = typer.Option(None, "--out", "-o", help="report folder (default: <study-dir>/report)"),
        export: Optional[str] = typer.Option(None, help="also export the results table to this .csv / .parquet"),
    ) -> None:
        """Write report.md, report.html (figures embedded) and PNGs for a study directory."""
        from pathlib import Path

        from ptlab.report.spurious import write_report

        path = write_report(Path(study_dir), out)
        print((path.parent / "table.md").read_text())
        print(f"report: {path}  ({path.with_suffix('.html')})")
        if export:
            from ptlab.store import ResultStore

            print(f"exported: {ResultStore(Path(study_dir) / 'results.sqlite', create=False).export(export)}")
