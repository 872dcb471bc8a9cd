"""`ptlab train CONFIG [key=value ...] [--resume]`."""

from __future__ import annotations

import os

import typer


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        config: str = typer.Argument(..., help="training YAML"),
        overrides: list[str] | None = typer.Argument(None, help="key=value overrides, e.g. lr=1e-3 params.beta=0.2"),
        resume: bool = typer.Option(False, "--resume", help="continue from the latest checkpoint in output_dir"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress output"),
    ) -> None:
        """Post-train a model (SFT, DPO family, KTO, SimPO, ORPO, CPO) and print its final metrics."""
        from rich.console import Console
        from rich.table import Table

        from ptlab.config import load_config
        from ptlab.train.config import TrainConfig
        from ptlab.train.loop import train

        cfg = load_config(TrainConfig, config, overrides)
        result = train(cfg, resume=resume, quiet=quiet)
        if int(os.environ.get("RANK", "0")) != 0:  # under accelerate launch, only rank 0 prints
            return
        table = Table("metric", "value", title=f"{cfg.objective} on {cfg.model}: {result.steps} steps, {result.wall_s:.1f}s")
        for k, v in result.metrics.items():
            table.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
        Console().print(table)
        print(f"checkpoint: {result.checkpoint}")
