"""An exclusive lock on an output directory: two ptlab runs never write into the same one.

Two runs sharing an `output_dir` (a study started twice, a `ptlab train` run again
while the first still trains) would interleave checkpoints, logs and results that
each believes are its own. `hold_dir_lock` takes `fcntl.flock(LOCK_EX | LOCK_NB)` on
`<directory>/.ptlab.lock` for as long as the run lasts; a second run fails at once
with one line naming the directory and the holder (pid, command line, start time).

Why flock: the kernel drops the lock when the holder's file descriptor closes,
which includes any death — SIGKILL, out-of-memory — so a lock file left by a
killed run never blocks the next one; its content is only a note for humans.

Inheritance. A flock belongs to the open file description, which `fork()` shares:
a child forked while the lock is held would keep it after the parent dies. So the
descriptor is opened `O_CLOEXEC` (closed by `exec`, hence in `spawn`/`forkserver`
children and subprocesses), and an `os.register_at_fork` hook closes it in every
forked child (fork-context pools, DataLoader workers). Closing — never `LOCK_UN`,
which would unlock the parent too — only drops the child's reference.

A run that fails before writing anything leaves nothing behind: on release, what
acquiring created (the lock file, the `.ptlab` marker, missing parent directories)
is removed again when the holder added nothing to the directory. A holder's pid,
host, command line and start time are written into the lock file once it is held,
for the message a second run prints.

Lock a directory that is written in place: one replaced wholesale by a rename
(`atomic_dir`) would leave the lock on the old inode.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ptlab.atomic import MARKER, mark
from ptlab.errors import ConfigError

LOCK_FILE = ".ptlab.lock"

# Locks this process holds, by fd; forked children close these fds (see the module docstring).
_HELD: dict[int, "DirLock"] = {}


def _close_in_forked_child() -> None:
    for fd, lock in list(_HELD.items()):
        try:
            os.close(fd)
        except OSError:
            pass
        lock._fd = None
    _HELD.clear()


os.register_at_fork(after_in_child=_close_in_forked_child)


def _missing_dirs(directory: Path) -> list[Path]:
    """`directory` and its ancestors that do not exist yet, outermost first."""
    missing = []
    for d in [directory, *directory.parents]:
        if d.exists():
            break
        missing.append(d)
    return missing[::-1]


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _command() -> str:
    """This process's command line, `ptlab ...` however ptlab was started (script or `python -m ptlab`)."""
    argv = list(sys.argv) or [sys.executable]
    head = Path(argv[0])
    if head.name == "ptlab" or (head.name == "__main__.py" and head.parent.name == "ptlab"):
        argv[0] = "ptlab"
    return " ".join(argv)


def _since(started: float) -> str:
    """`14:02:11` today, `2026-12-01 14:02:11` on another day (local time)."""
    when = dt.datetime.fromtimestamp(started)
    return when.strftime("%H:%M:%S" if when.date() == dt.date.today() else "%Y-%m-%d %H:%M:%S")


def lock_files_only(directory: Path) -> bool:
    """Whether `directory` holds nothing but what taking its lock writes (the lock file, the `.ptlab` marker).

    What a run killed right after taking the lock leaves: to a caller checking whether a
    directory is empty, such a directory is.
    """
    return all(p.name in (LOCK_FILE, MARKER) for p in Path(directory).iterdir())


def read_holder(directory: Path) -> dict | None:
    """What the lock file of `directory` says about its (last) holder; None if absent or unreadable.

    The content is only a note: whether the lock is held is the kernel's answer, not the file's.
    """
    try:
        info = json.loads((Path(directory) / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("pid"), int) else None


def _current_holder(directory: Path, wait_s: float = 1.0) -> dict | None:
    """The holder's note, waiting briefly for a holder that has the lock but has not written it yet."""
    host = socket.gethostname()
    deadline = time.monotonic() + wait_s
    while True:
        info = read_holder(directory)
        # a note left by a dead holder (same host) is stale: the new holder is about to overwrite it
        if info is not None and (info.get("host") != host or _alive(info["pid"])):
            return info
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def _in_use_line(directory: Path, what: str, info: dict | None) -> str:
    if info is None:
        who = "holder unknown"
    else:
        who = f"pid {info['pid']}"
        if info.get("host") and info["host"] != socket.gethostname():
            who += f" on {info['host']}"
        if info.get("command"):
            who += f", {info['command']!r}"
        if isinstance(info.get("started"), (int, float)):
            who += f", since {_since(info['started'])}"
    return (f"{directory}: in use by another ptlab run ({who}); "
            f"wait for it to finish or choose another {what}")


class DirLock:
    """`fcntl.flock` on `<directory>/.ptlab.lock`; `acquire()` raises ConfigError when another run holds it.

    Not re-entrant: a second `DirLock` on the same directory in the same process is refused
    too (flock locks belong to open files, not processes), which is what one run per
    directory means.
    """

    def __init__(self, directory: Path, what: str = "output_dir"):
        self.directory = Path(directory)
        self.what = what
        self._fd: int | None = None
        self._owner: int | None = None
        self._made: list[Path] = []  # directories acquire() created, outermost first
        self._new: set[str] = set()  # files acquire() created
        self._names: set[str] = set()  # what the directory held once locked

    @property
    def path(self) -> Path:
        return self.directory / LOCK_FILE

    @property
    def held(self) -> bool:
        return self._fd is not None and self._owner == os.getpid()

    def acquire(self) -> "DirLock":
        if self.held:
            return self
        # callers have checked that ptlab may write here (`check_replaceable`)
        while True:
            made = _missing_dirs(self.directory)
            self.directory.mkdir(parents=True, exist_ok=True)
            new = {name for name in (LOCK_FILE, MARKER) if not (self.directory / name).exists()}
            # the marker before the lock file: a directory that holds a lock file is always recognisably
            # ptlab's (to a kill's aftermath, and to the other ranks' output-dir checks meanwhile)
            try:
                mark(self.directory)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            except FileNotFoundError:  # the directory was just removed by a holder tidying up: again
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise ConfigError(_in_use_line(self.directory, self.what, _current_holder(self.directory))) from None
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, self.path):
                break
            os.close(fd)  # locked a file its holder unlinked as it released: lock the one now at the path
        self._fd, self._owner, self._made, self._new = fd, os.getpid(), made, new
        self._names = set(os.listdir(self.directory))
        _HELD[fd] = self
        try:
            self._write_note()
        except BaseException:
            self.release()
            raise
        return self

    def _write_note(self) -> None:
        note = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
                "started": time.time(), "started_iso": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                "what": self.what}
        data = (json.dumps(note, sort_keys=True) + "\n").encode()
        os.pwrite(self._fd, data, 0)  # overwrite in place, then cut: a reader never sees an empty file
        os.ftruncate(self._fd, len(data))

    def release(self) -> None:
        """Unlock and close; a no-op when not held (or in a forked child, which holds nothing).

        A run that added nothing (it failed before its first output) leaves nothing either: the
        lock file, the marker and the directories this lock created are removed, while still locked.
        """
        fd, self._fd = self._fd, None
        if fd is None or self._owner != os.getpid():
            return
        _HELD.pop(fd, None)
        try:
            if not self._tidy_away():
                os.ftruncate(fd, 0)  # the note described this holder; the next one writes its own
        except OSError:
            pass
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _tidy_away(self) -> bool:
        """Remove what acquiring created if the holder added nothing; whether the lock file is gone."""
        if set(os.listdir(self.directory)) != self._names:
            return False
        for name in sorted(self._new, reverse=True):  # the lock file first: a kill next leaves a marked dir
            (self.directory / name).unlink(missing_ok=True)
        for d in reversed(self._made):
            try:
                d.rmdir()
            except OSError:
                break
        return LOCK_FILE in self._new

    def __enter__(self) -> "DirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@contextmanager
def hold_dir_lock(directory: Path, what: str = "output_dir") -> Iterator[DirLock]:
    """Hold the exclusive lock on `directory` (created if absent) for the `with` block.

    Raises ConfigError — one line naming the directory and the holding process — when
    another run holds it. `what` names the setting to change in that line (`output_dir`).
    """
    lock = DirLock(directory, what).acquire()
    try:
        yield lock
    finally:
        lock.release()
