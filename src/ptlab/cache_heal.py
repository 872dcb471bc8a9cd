"""Caches that heal: a corrupt cache file is reported in one line and rebuilt, never trusted and never fatal.

A cache is only an optimisation, so a damaged one (a kill mid-write on a
filesystem without atomic rename, a full disk, a copied-over file) must cost a
recomputation and one warning, not a traceback on every later run and not a
silently wrong result. Cache files are written with `ptlab.atomic.write_file`,
so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path


def warn_corrupt(path: str | Path, why: str) -> None:
    """The one line a healed cache costs: which file, what was wrong, and that it is being recomputed."""
    print(f"warning: {path}: corrupt cache ({why}); recomputing", file=sys.stderr, flush=True)


def aside_name(path: Path, stamp: str | None = None) -> Path:
    """`<name>.corrupt-<timestamp>` beside `path`: where a file we may not delete is moved out of the way."""
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    return path.with_name(f"{path.name}.corrupt-{stamp}")


def move_aside(path: Path, suffixes: tuple[str, ...] = ()) -> Path:
    """Rename `path` (and `path + s` for each suffix that exists) to `<name>.corrupt-<timestamp>[s]`.

    Renaming instead of deleting keeps whatever the file holds for the user to
    inspect or salvage; the suffixes carry companion files (SQLite's `-wal`),
    which must not be left behind to be replayed into a fresh file of the same name.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = aside_name(path, stamp)
    n = 1
    while target.exists():  # two heals within a second: never overwrite an earlier copy
        n += 1
        target = aside_name(path, f"{stamp}-{n}")
    for suffix in (*suffixes, ""):  # the main file last: while it is in place, its companions belong to it
        with contextlib.suppress(FileNotFoundError):  # absent, or another process moved it first
            os.replace(Path(f"{path}{suffix}"), Path(f"{target}{suffix}"))
    return target
