"""Study progress: a bar for the grid (cells, ETA) and one per running cell (data → train → eval)."""

from __future__ import annotations

import sys
import threading
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

PHASES = ("data", "train", "eval")


class StudyProgress:
    """The same progress display for every study: cells done / total, the running cells, elapsed and ETA.

    On a terminal a rich bar (and one line per running cell); elsewhere (logs, CI) one plain line per
    finished cell with the same numbers. `line(cell_id, result)` is the study's own summary of a cell.
    """

    def __init__(self, total: int, done: int, line=None, enabled: bool = True):
        self.enabled = enabled
        self._line = line
        self.t0 = time.monotonic()
        self.started = done
        self.running: list[str] = []
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
            if phase == "start" and cell_id not in self.running:
                self.running.append(cell_id)
            if self.progress is None:
                return
            if phase == "start":
                self.cells[cell_id] = self.progress.add_task(f"  {cell_id}", total=len(PHASES), info="data")
            elif cell_id in self.cells and phase in PHASES:
                i = PHASES.index(phase)
                nxt = PHASES[i + 1] if i + 1 < len(PHASES) else "done"
                self.progress.update(self.cells[cell_id], completed=i + 1, info=nxt)

    def line(self, cell_id: str, result: dict) -> str:
        """What is printed when a cell finishes: the study's own summary of it."""
        return self._line(cell_id, result) if self._line else f"{cell_id}: done"

    def status(self) -> str:
        """`[done/total] elapsed, eta, running: ...` from the cells this invocation finished so far."""
        elapsed = time.monotonic() - self.t0
        ran = self.done - self.started
        left = self.total - self.done
        eta = f"eta {_clock(elapsed / ran * left)}" if ran and left else ("eta ?" if left else "done")
        running = f", running: {', '.join(self.running[:3])}" + (" …" if len(self.running) > 3 else "") \
            if self.running else ""
        return f"[{self.done}/{self.total}] {_clock(elapsed)} elapsed, {eta}{running}"

    def finished(self, cell_id: str, result: dict) -> None:
        line = self.line(cell_id, result)
        with self.lock:
            self.done += 1
            if cell_id in self.running:
                self.running.remove(cell_id)
            if self.progress is not None:
                task = self.cells.pop(cell_id, None)
                if task is not None:
                    self.progress.remove_task(task)
                self.progress.update(self.study, advance=1)
                self.progress.console.print(line)
            elif self.enabled:
                print(f"{self.status()}  {line}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
