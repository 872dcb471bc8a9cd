"""Safe writes: a reader never sees half a result, and ptlab never replaces what it did not make.

Every directory ptlab writes through `atomic_dir` carries a marker file
(`.ptlab`), so a later run can tell its own outputs from a user's files: it may
replace an empty directory or one of its own, and refuses anything else (a
user's directory, a regular file, a path under a regular file) with one line,
before any work (`check_replaceable`). Outputs written before the marker
existed are recognised by the files ptlab always writes into them.

Files and directories get the permissions the user's umask gives (temporary
names from `tempfile` would otherwise leave them 0600/0700), and their bytes are
fsynced before the rename that makes them count as written.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from ptlab.errors import ConfigError

MARKER = ".ptlab"
# Files that only a ptlab output holds: dataset cards, synth records, model / training / eval records, studies.
LEGACY_MARKERS = ("card.json", "synth.json", "ptlab_model.json", "train_info.json", "trainer_state.json",
                  "metrics.json", "result.json", "study.json", ".ptlab.lock")


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    """The process umask (read once: reading it means setting it, which is not thread-safe)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normal_mode(path: Path, is_dir: bool) -> None:
    """Give `path` the mode a plain `open`/`mkdir` would: 0666/0777 less the umask."""
    os.chmod(path, (0o777 if is_dir else 0o666) & ~_umask())


def _marked(path: Path) -> bool:
    return (path / MARKER).is_file() or any((path / name).is_file() for name in LEGACY_MARKERS)


def made_by_ptlab(path: Path) -> bool:
    """Marked as ptlab's, or directly inside a directory that is (a study's `report/`, a run's `final/`)."""
    path = Path(path)
    return _marked(path) or _marked(path.parent)


def _file_on_the_way(path: Path) -> Path | None:
    """The first ancestor of `path` that exists and is not a directory (writing under it must fail)."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def check_writable_under(path: Path, what: str = "output path") -> None:
    """ConfigError if a regular file sits where a parent directory of `path` must be."""
    blocker = _file_on_the_way(Path(path))
    if blocker is not None:
        raise ConfigError(f"{what} {path}: {blocker} is a file, not a directory")


def check_replaceable(path: Path, what: str = "output path") -> None:
    """ConfigError unless ptlab may write a directory at `path`: absent, empty, or made by ptlab."""
    path = Path(path)
    check_writable_under(path, what)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise ConfigError(f"{what} {path}: exists and is not a directory; ptlab replaces only directories it made "
                          "— choose another path")
    if path.is_dir() and any(path.iterdir()) and not made_by_ptlab(path):
        raise ConfigError(f"{what} {path}: a directory ptlab did not make (no {MARKER} marker) and not empty; "
                          "ptlab will not replace it — choose another path or empty it yourself")


def mark(path: Path) -> None:
    """Record that ptlab made the directory `path` (so a later run may replace it)."""
    marker = Path(path) / MARKER
    if not marker.exists():
        marker.write_text(json.dumps({"made_by": "ptlab"}) + "\n")
        normal_mode(marker, is_dir=False)


def make_dir(path: Path, what: str = "output path") -> Path:
    """Create (or reuse) a directory ptlab writes into piece by piece; refuse a user's directory."""
    path = Path(path)
    check_replaceable(path, what)
    path.mkdir(parents=True, exist_ok=True)
    mark(path)
    return path


def settle_tree(root: Path) -> None:
    """Give every file and folder under `root` the umask's permissions and fsync it.

    Libraries write through temporary files of their own (safetensors leaves 0600); and a
    rename must never count as written before its bytes are on disk.
    """
    for dirpath, dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            normal_mode(Path(path), is_dir=False)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for name in dirs:
            normal_mode(Path(dirpath) / name, is_dir=True)
        fsync_dir(Path(dirpath))


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the data files were synced
    finally:
        os.close(fd)


@contextmanager
def atomic_dir(target: Path, what: str = "output path") -> Iterator[Path]:
    """Yield a temporary directory beside `target`; rename it into place on success.

    `target` may be replaced only if it is absent, empty or made by ptlab (see
    `check_replaceable`); the check runs before the caller writes anything.
    """
    target = Path(target)
    check_replaceable(target, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    normal_mode(tmp, is_dir=True)
    try:
        yield tmp
        mark(tmp)
        settle_tree(tmp)
        check_replaceable(target, what)  # a user may have put something there meanwhile
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_file(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(f)` on a uniquely named temporary file beside `path`, fsync it, rename it over `path`.

    A reader (or a crash) sees the old file or the whole new one, never half of one; concurrent
    writers never share a temporary name; the file gets the umask's permissions.
    """
    path = Path(path)
    check_writable_under(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise ConfigError(f"output file {path}: is a directory")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        normal_mode(Path(tmp), is_dir=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    write_file(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
