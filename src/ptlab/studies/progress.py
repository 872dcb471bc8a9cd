"""Study progress: a bar for the grid (cells, ETA) and one per running cell (data → train → eval)."""

from __future__ import annotations

import sys
import threading

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

PHASES = ("data", "train", "eval")


class StudyProgress:
    def __init__(self, total: int, done: int, enabled: bool = True):
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.lock = threading.Lock()
        self.cells: dict[str, object] = {}
        self.progress = None
        self.total, self.done = total, done
        if enabled and self.console.is_terminal:
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                     TextColumn("{task.fields[info]}"), console=self.console)
            self.progress.start()
            self.study = self.progress.add_task("study", total=total, completed=done, info="")
        elif enabled:
            print(f"study: {total} cells, {done} already finished, {total - done} to run", file=sys.stderr, flush=True)

    def event(self, cell_id: str, phase: str) -> None:
        with self.lock:
            if self.progress is None:
                return
            if phase == "start":
                self.cells[cell_id] = self.progress.add_task(f"  {cell_id}", total=len(PHASES), info="data")
            elif cell_id in self.cells and phase in PHASES:
                i = PHASES.index(phase)
                nxt = PHASES[i + 1] if i + 1 < len(PHASES) else "done"
                self.progress.update(self.cells[cell_id], completed=i + 1, info=nxt)

    def line(self, cell_id: str, result: dict) -> str:
        """What is printed when a cell finishes (a study overrides it to show its own metrics)."""
        m = result["metrics"]
        return (f"{cell_id}: eval_id {m.get('eval_id/accuracy', float('nan')):.3f}  "
                f"eval_break {m.get('eval_break/accuracy', float('nan')):.3f}  "
                f"({result['timings']['train_s']:.0f}s train, {result['timings']['eval_s']:.0f}s eval)")

    def finished(self, cell_id: str, result: dict) -> None:
        line = self.line(cell_id, result)
        with self.lock:
            self.done += 1
            if self.progress is not None:
                task = self.cells.pop(cell_id, None)
                if task is not None:
                    self.progress.remove_task(task)
                self.progress.update(self.study, advance=1)
                self.progress.console.print(line)
            elif self.enabled:
                print(f"[{self.done}/{self.total}] {line}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
