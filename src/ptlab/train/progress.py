"""Progress bars with ETA (rich) on a terminal; one plain line per logged step elsewhere."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

KEYS = ("loss", "rewards/margins", "rewards/accuracies", "kl", "mean_token_accuracy", "eval/loss")


def format_record(record: dict) -> str:
    parts = [f"step {record['step']}"]
    parts += [f"{k}={record[k]:.4g}" for k in KEYS if k in record]
    return "  ".join(parts)


class TrainProgress:
    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.live = enabled and self.console.is_terminal
        self.progress = None
        if self.live:
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=self.console,
            )
            self.progress.start()

    def add_task(self, name: str, total: int, completed: int = 0):
        if self.progress is None:
            return None
        return self.progress.add_task(name, total=total, completed=completed, info="")

    def advance(self, task, n: int = 1, loss: float | None = None) -> None:
        if self.progress is not None and task is not None:
            self.progress.update(task, advance=n, info="" if loss is None else f"loss {loss:.4f}")

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        if self.progress is not None:
            self.progress.console.print(format_record(record))
        else:
            print(format_record(record), file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
