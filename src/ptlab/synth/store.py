"""A small SQLite file in WAL mode that heals: the storage under the reply cache and the ledger.

Why SQLite/WAL: a commit per row is cheap (no fsync per commit with
``synchronous=NORMAL``), readers never block the writer, several processes can
share one file, and a committed row survives the process being killed
(``kill -9``): only a power loss can drop the last few commits.

Why it heals: a damaged file (not a database at all, truncated, malformed
pages, a foreign schema) must cost one warning, not a traceback on every later
run. On open the header, the tables' columns and ``PRAGMA quick_check`` are
checked; a corruption error on later use is caught too. Either way the file
(with its ``-wal``/``-shm``) is renamed to ``<name>.corrupt-<timestamp>``
(never deleted: it may be the user's only copy of what it holds) and a fresh
file starts. Nothing is ever unpickled: rows are plain columns and JSON.

A table that is missing is created (a file written by an older ptlab gains the
newer tables), but a table whose columns differ is a foreign schema.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ptlab.cache_heal import move_aside, warn_corrupt

SQLITE_MAGIC = b"SQLite format 3\x00"
_CORRUPTION_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB (primary codes)
QUICK_CHECK_MAX_BYTES = 1 << 30  # ~1 s per GiB read; above this, damage is caught on use instead


class CorruptStore(Exception):
    """The file cannot be trusted; `str(e)` says why, in a few words."""


class HealingStore:
    """One connection, used under a lock. Subclasses set `SCHEMA` (statements) and `TABLES` (expected columns)."""

    SCHEMA: str = ""
    TABLES: dict[str, tuple[str, ...]] = {}

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = self._open()

    def warn(self, why: str) -> None:
        """The one line a heal costs: a cache's (what it held is recomputed); a store whose loss means more, such
        as the ledger's spending, says so in its own."""
        warn_corrupt(self.path, why)

    # ---- opening and healing ---------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        """A checked connection; a corrupt file is moved aside and replaced by a fresh one."""
        self._inode = _inode(self.path)
        try:
            return self._connect(check=True)
        except CorruptStore as e:
            why = str(e)
        except sqlite3.DatabaseError as e:
            if not is_corruption(e):
                raise
            why = str(e)
        self._heal(why)
        return self._connect(check=False)

    def _connect(self, check: bool) -> sqlite3.Connection:
        existed = self.path.is_file() and self.path.stat().st_size > 0
        if check and existed:
            _check_header(self.path)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            if check and existed:
                self._check_database(db, self.path.stat().st_size)
            for statement in self.SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
        except BaseException:
            db.close()
            raise
        self._inode = _inode(self.path)
        return db

    def _check_database(self, db: sqlite3.Connection, size: int) -> None:
        """`quick_check` (every page's structure, no index cross-check: fast) and each known table's columns."""
        if size <= QUICK_CHECK_MAX_BYTES:
            result = db.execute("PRAGMA quick_check").fetchall()
            if result != [("ok",)]:
                raise CorruptStore(f"quick_check: {str(result[0][0])[:100]}")
        for table, expected in self.TABLES.items():
            columns = tuple(row[1] for row in db.execute(f"PRAGMA table_info({table})").fetchall())
            if columns and columns != expected:
                raise CorruptStore("unexpected table layout")

    def _heal(self, why: str) -> None:
        """Warn, move the file and its WAL aside (a stale WAL must not replay into the fresh file).

        Only the file that was found corrupt: if another process healed it first
        (a different file now has the name), its fresh file is left alone.
        """
        self.warn(why)
        if _inode(self.path) == self._inode:
            move_aside(self.path, suffixes=("-wal", "-shm"))

    def use(self, op: Callable[[sqlite3.Connection], Any], on_heal: Callable[[sqlite3.Connection], Any]) -> Any:
        """`op(db)` under the lock; on a corruption error, heal and return `on_heal(fresh db)` instead."""
        with self._lock:
            try:
                return op(self._db)
            except sqlite3.DatabaseError as e:
                if not is_corruption(e):
                    raise
                self._db.close()
                self._heal(str(e))
                self._db = self._connect(check=False)
                return on_heal(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def transaction(db: sqlite3.Connection, body: Callable[[sqlite3.Connection], Any]) -> Any:
    """`body(db)` inside ``BEGIN IMMEDIATE`` … ``COMMIT``: atomic against every other process on the file."""
    db.execute("BEGIN IMMEDIATE")
    try:
        out = body(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return out


def is_corruption(e: sqlite3.DatabaseError) -> bool:
    """SQLITE_CORRUPT / SQLITE_NOTADB: the file is damaged. Not 'database is locked' or a full disk."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _CORRUPTION_CODES
    return type(e) is sqlite3.DatabaseError


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _check_header(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if head != SQLITE_MAGIC:
        raise CorruptStore("not an SQLite database")
