"""Executors: run cell plans sequentially, in local processes, or on Ray — same results whichever.

Each executor yields `(plan, result)` as cells finish; the study's main process
stores results, so only one process writes the database. Every cell sets its
own torch thread count (`threads`), which is what makes results independent of
the executor. Progress events `(cell_id, phase)` reach the caller's callback.
`runner(plan, events)` runs one cell: the study's picklable, module-level function.

Worker processes exit with their parent (`ptlab.lifeline`): a study killed with
SIGKILL leaves no process behind to write into its directory.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterator

from ptlab.errors import ConfigError, PtlabError

Events = Callable[[str, str], None]


class WorkerDied(PtlabError):
    """A worker process ended without returning its cell's result."""


def sequential(plans: list[Any], workers: int, events: Events, runner, **_) -> Iterator[tuple[Any, dict]]:
    for plan in plans:
        events(plan.cell.cell_id, "start")
        yield plan, runner(plan, events)


class _QueueEvents:
    """Picklable event sink for worker processes."""

    def __init__(self, q):
        self.q = q

    def __call__(self, cell_id: str, phase: str) -> None:
        self.q.put((cell_id, phase))


def _drain(q, events: Events, stop: threading.Event) -> None:
    while not stop.is_set() or not q.empty():
        try:
            events(*q.get(timeout=0.2))
        except queue.Empty:
            continue
        except (EOFError, OSError):
            return


def _result(fut, plan: Any) -> dict:
    """A finished cell's result; a worker that died (killed, out of memory) is one clear error."""
    try:
        return fut.result()
    except BrokenProcessPool:
        raise WorkerDied(f"cell {plan.cell.cell_id}: its worker process died unexpectedly (killed, or out of "
                         "memory?); finished cells are stored, so the same command resumes the study") from None


def processes(plans: list[Any], workers: int, events: Events, runner, **_) -> Iterator[tuple[Any, dict]]:
    from ptlab.lifeline import exit_with_parent, start_manager

    ctx = mp.get_context("spawn")
    with start_manager(ctx) as manager:  # its server process, like the workers, exits with this one
        q = manager.Queue()
        stop = threading.Event()
        pump = threading.Thread(target=_drain, args=(q, events, stop), daemon=True)
        pump.start()
        sink = _QueueEvents(q)
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=exit_with_parent) as pool:
                pending = {}
                todo = list(plans)
                while todo or pending:
                    while todo and len(pending) < workers:  # submit lazily so start events mean "running"
                        plan = todo.pop(0)
                        events(plan.cell.cell_id, "start")
                        pending[pool.submit(runner, plan, sink)] = plan
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        plan = pending.pop(fut)
                        yield plan, _result(fut, plan)
        finally:
            stop.set()
            pump.join(timeout=2)


def ray_executor(plans: list[Any], workers: int, events: Events, address: str | None = None,
                 threads: int = 1, runner=None, **_) -> Iterator[tuple[Any, dict]]:
    try:
        import ray
    except ImportError:
        raise ConfigError("executor: 'ray' needs the ray package (pip install ray); or use executor=processes") from None
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=None if address else workers * threads, include_dashboard=False,
                 log_to_driver=False)
    remote = ray.remote(num_cpus=threads)(runner)
    pending = {}
    todo = list(plans)
    while todo or pending:
        while todo and len(pending) < workers:
            plan = todo.pop(0)
            events(plan.cell.cell_id, "start")
            pending[remote.remote(plan)] = plan
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            plan = pending.pop(ref)
            result = ray.get(ref)
            for phase in ("data", "train", "eval"):
                events(plan.cell.cell_id, phase)
            yield plan, result


EXECUTORS = {"sequential": sequential, "processes": processes, "ray": ray_executor}
