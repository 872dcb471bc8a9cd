"""`ptlab models list | build`."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer) -> None:
    models = typer.Typer(help="The model registry: list and build models.", no_args_is_help=True)
    app.add_typer(models, name="models")

    @models.command("list")
    def list_models() -> None:
        """Show registered models and whether each is built."""
        from ptlab.models.registry import available
        from ptlab.paths import cache_dir

        built = {p.name.rsplit("-", 1)[0] for p in cache_dir("models").iterdir() if (p / "config.json").is_file()}
        table = Table("name", "built", "description")
        for name, desc in available().items():
            table.add_row(name, "yes" if name in built else "", desc)
        Console().print(table)

    @models.command("build")
    def build(name: str) -> None:
        """Build (or convert) a registered model into ptlab's cache and print its directory."""
        from ptlab.models.registry import resolve

        print(resolve(name))
