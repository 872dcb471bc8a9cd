"""`ptlab models list | build | package`."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer) -> None:
    models = typer.Typer(help="The model registry: list, build and package models.", no_args_is_help=True)
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

    @models.command("package")
    def package_model(
        name: str,
        from_cache: bool = typer.Option(False, "--from-cache",
                                        help="package the cache entry for the current key if there is one "
                                             "(default: a fresh build in a temporary directory)"),
    ) -> None:
        """Write a build of a tiny model into the package (src/ptlab/models/packaged/NAME-KEY/, with a SHA-256
        manifest) so that installs copy it instead of building; older packaged builds of NAME are removed."""
        from ptlab.models.packaged_builds import package

        print(package(name, from_cache=from_cache))
