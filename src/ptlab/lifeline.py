"""Worker processes die with their parent.

When a study's main process is killed (SIGKILL, out-of-memory), nothing tells its
workers: a `spawn` worker keeps training a cell nobody will record, holding cores,
memory and GPU, and a `multiprocessing.Manager` server waits for clients that never
come. Call `exit_with_parent()` first thing in a worker (`ProcessPoolExecutor(
initializer=exit_with_parent)`, a Ray task, a Manager's server via `start_manager`)
and it ends when its parent does:

1. Linux: `prctl(PR_SET_PDEATHSIG, SIGKILL)` — the kernel kills the worker the
   moment its parent exits. Caveat: the signal fires when the parent *thread* that
   created the worker exits, so create pools (and submit to `spawn` pools, which
   start workers on demand) from a thread that outlives them, e.g. the main thread.
2. The parent may have died before prctl took effect; that is checked right after.
3. Everywhere, and for parents prctl does not watch (a `forkserver` worker's parent
   is the fork server, not the process that asked for it): a daemon thread checks
   every `poll_s` seconds and calls `os._exit(1)` once the parent is gone. `os._exit`
   skips cleanup on purpose: nobody is left to receive the results.

"The parent is gone" means any of: this process was re-parented (`os.getppid()`
changed); multiprocessing's pipe from the process that started it reached EOF
(`multiprocessing.parent_process()`, the most direct sign and immune to pid reuse);
the `parent_pid` passed in no longer runs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
from pathlib import Path

PR_SET_PDEATHSIG = 1

_watch: dict = {}  # what this process watches: {"pid": os.getpid(), "ppid": ..., "parent_pid": ...}


def _running(pid: int) -> bool:
    """Whether `pid` runs (a zombie — dead, not yet reaped — does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _gone(ppid: int, parent_pid: int | None) -> bool:
    if os.getppid() != ppid:
        return True
    parent = multiprocessing.parent_process()
    if parent is not None and not parent.is_alive():
        return True
    return parent_pid is not None and parent_pid != ppid and not _running(parent_pid)


def parent_alive(parent_pid: int | None = None) -> bool:
    """Whether the process that started this one still runs.

    Checked: multiprocessing's pipe from its parent (in a multiprocessing child); whether this
    process was re-parented since `exit_with_parent` ran; `parent_pid`, else the one
    `exit_with_parent` was given. With none of these to go on, the answer is True.
    """
    mine = _watch if _watch.get("pid") == os.getpid() else {}
    parent = multiprocessing.parent_process()
    if parent is not None and not parent.is_alive():
        return False
    if mine and os.getppid() != mine["ppid"]:
        return False
    pid = parent_pid if parent_pid is not None else mine.get("parent_pid")
    return pid is None or _running(pid)


def _set_pdeathsig(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send `sig` when the parent exits; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _poll(ppid: int, parent_pid: int | None, poll_s: float) -> None:
    tick = threading.Event()
    while not tick.wait(poll_s):
        if _gone(ppid, parent_pid):
            os._exit(1)


def exit_with_parent(parent_pid: int | None = None, poll_s: float = 0.5) -> None:
    """Make this process end when its parent does; call it first thing in a worker.

    `parent_pid`: the parent's pid as the parent saw it (`initargs=(os.getpid(),)`); needed
    only outside multiprocessing (which keeps its own record of the parent). Idempotent.
    """
    if _watch.get("pid") == os.getpid():
        return
    _set_pdeathsig()
    ppid = os.getppid()  # after prctl: a parent that dies from now on is caught by the kernel
    mp_parent = multiprocessing.parent_process()
    if parent_pid is None and mp_parent is None:
        parent_pid = ppid
    if parent_pid is not None and parent_pid != ppid and not _running(parent_pid):
        os._exit(1)  # it died before the kernel was watching: re-parented already
    if mp_parent is not None and not mp_parent.is_alive():
        os._exit(1)
    _watch.update(pid=os.getpid(), ppid=ppid, parent_pid=parent_pid)
    threading.Thread(target=_poll, args=(ppid, parent_pid, poll_s), name="ptlab-lifeline", daemon=True).start()


def start_manager(ctx=None):
    """A started `SyncManager` whose server process runs `exit_with_parent` (a plain
    `ctx.Manager()` server outlives a SIGKILLed parent). Use it as `ctx.Manager()` is used:
    `with start_manager(ctx) as manager: q = manager.Queue()`.
    """
    from multiprocessing.managers import SyncManager

    manager = SyncManager(ctx=ctx or multiprocessing.get_context())
    manager.start(initializer=exit_with_parent, initargs=(os.getpid(),))
    return manager
