"""`ptlab data build CONFIG [key=value ...] --out DIR`."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    data = typer.Typer(help="Build datasets from the task suite (or real data).", no_args_is_help=True)
    app.add_typer(data, name="data")

    @data.command("build")
    def build(
        config: Path = typer.Argument(..., help="a data config YAML (see configs/data-*.yaml)"),
        overrides: list[str] | None = typer.Argument(None, help="key=value overrides, e.g. spurious.rate=0.1"),
        out: Path | None = typer.Option(None, "--out", help="output directory (default: ptlab's data cache)"),
    ) -> None:
        """Build SFT / preference / unpaired splits and a dataset card; print the directory."""
        import json

        from ptlab.data.build import build_dataset, load_data_config

        cfg = load_data_config(config, overrides or [])
        path = build_dataset(cfg, out=out)
        card = json.loads((path / "card.json").read_text())
        for split, s in card["splits"].items():
            typer.echo(f"{split}: {s['examples']} examples, realised spurious rate {s['realised_spurious_rate']}",
                       err=True)
        typer.echo(str(path))
