"""Who holds a claim or drives a run, and whether that process is still alive.

A row written by another process names it by pid, host and the process's start
time: a pid alone is reused by the system (a `kill -9`'d worker's pid may
belong to an unrelated process minutes later), a start time is not. Liveness
can only be checked on the same host; elsewhere the caller falls back to the
age of the row.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Owner:
    pid: int
    host: str
    started: float  # the process's start time (seconds since the epoch), 0.0 when unknown
    token: str  # tells apart holders within one process


def process_start(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return 0.0


_HOST = socket.gethostname()
_STARTED: dict[int, float] = {}  # by pid: a forked child looks itself up again


def me() -> Owner:
    """This process, with a token of its own for each call (two holders in one process differ)."""
    pid = os.getpid()
    if pid not in _STARTED:
        _STARTED[pid] = process_start(pid)
    return Owner(pid, _HOST, _STARTED[pid], uuid.uuid4().hex)


def alive(pid: int, host: str, started: float) -> bool | None:
    """True/False for a process on this host; None when it runs elsewhere (unknowable here)."""
    if host != _HOST:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped by its parent
            return False
        now = proc.create_time()
    except psutil.NoSuchProcess:
        return False
    except (psutil.Error, OSError):
        return True  # exists, but we may not look at it
    return started == 0.0 or abs(now - started) < 1.0
