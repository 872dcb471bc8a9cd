"""A durable reply cache: SQLite in WAL mode, one row per teacher call, written as it arrives.

Why SQLite/WAL: a commit per reply is cheap (no fsync per commit with
``synchronous=NORMAL``), readers never block the writer, and a committed row
survives the process being killed (``kill -9``): only a power loss can drop
the last few commits. A restarted run therefore re-pays only the calls that
were in flight at the kill.

The key is a hash of (backend, model, request fields incl. sampling params and
sample_index); the request itself is stored beside it for inspection. API keys
are never part of a key or a row.

Why it heals: the cache is only an optimisation, so a damaged file (not a
database at all, truncated, malformed pages, a foreign schema) must cost one
warning and re-paid calls, not a traceback on every later run. On open the
header, the schema and ``PRAGMA quick_check`` are checked; a corruption error
on later use is caught too. Either way the file (with its ``-wal``/``-shm``)
is renamed to ``<name>.corrupt-<timestamp>`` (never deleted: it may be the
user's only copy of paid replies) and a fresh cache starts. A single row whose
JSON columns do not parse is a miss, and the next reply overwrites it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ptlab.cache_heal import move_aside, warn_corrupt
from ptlab.fingerprint import fingerprint
from ptlab.paths import cache_dir
from ptlab.synth.teachers.base import ChatReply, ChatRequest

KEY_VERSION = "teacher-reply-v1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    meta TEXT NOT NULL,
    created REAL NOT NULL
)
"""


COLUMNS = ("key", "backend", "model", "request", "text", "prompt_tokens", "completion_tokens", "meta", "created")
SQLITE_MAGIC = b"SQLite format 3\x00"
_CORRUPTION_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB (primary codes)
QUICK_CHECK_MAX_BYTES = 1 << 30  # ~1 s per GiB read; above this, damage is caught on use instead


class CorruptCache(Exception):
    """The cache file cannot be trusted; `str(e)` says why, in a few words."""


def cache_key(backend: str, model: str, request: ChatRequest) -> str:
    return fingerprint(KEY_VERSION, backend, model, request.key_fields(), length=32)


def default_cache_path() -> Path:
    return cache_dir("teacher") / "replies.sqlite"


class ReplyCache:
    """Thread-safe get/put of `ChatReply` by key. Only successful replies are stored."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._bad_rows_reported = False
        self._db = self._open()

    # ---- opening and healing ---------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        """A checked connection; a corrupt file is moved aside and replaced by a fresh cache."""
        self._inode = _inode(self.path)
        try:
            return self._connect(check=True)
        except CorruptCache as e:
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
                _check_database(db, self.path.stat().st_size)
            db.execute(_SCHEMA)
        except BaseException:
            db.close()
            raise
        self._inode = _inode(self.path)
        return db

    def _heal(self, why: str) -> None:
        """Warn, move the file and its WAL aside (a stale WAL must not replay into the fresh file).

        Only the file that was found corrupt: if another process healed it first
        (a different file now has the name), its fresh cache is left alone.
        """
        warn_corrupt(self.path, why)
        if _inode(self.path) == self._inode:
            move_aside(self.path, suffixes=("-wal", "-shm"))

    def _use(self, op: Callable[[sqlite3.Connection], Any], on_heal: Callable[[sqlite3.Connection], Any]) -> Any:
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

    # ---- public API ------------------------------------------------------------------------
    def get(self, key: str) -> ChatReply | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, ChatReply]:
        keys = list(dict.fromkeys(keys))
        rows = self._use(lambda db: _select(db, keys), lambda db: [])
        out: dict[str, ChatReply] = {}
        for row in rows:
            reply = _reply(row[1:])
            if reply is None:
                self._report_bad_row()
            else:
                out[row[0]] = reply
        return out

    def put(self, key: str, backend: str, model: str, request: ChatRequest, reply: ChatReply) -> None:
        """Commit one reply now (autocommit), so it survives a kill of this process."""
        meta = {k: v for k, v in reply.meta.items() if k in ("finish_reason",)}
        values = (
            key,
            backend,
            model,
            json.dumps(request.key_fields(), sort_keys=True),
            reply.text,
            reply.prompt_tokens,
            reply.completion_tokens,
            json.dumps(meta, sort_keys=True),
            time.time(),
        )

        def insert(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values)

        self._use(insert, insert)  # after a heal, into the fresh cache

    def __len__(self) -> int:
        return self._use(lambda db: db.execute("SELECT COUNT(*) FROM replies").fetchone()[0], lambda db: 0)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _report_bad_row(self) -> None:
        """Once per cache: unreadable rows are misses (recomputed and overwritten), not errors."""
        if not self._bad_rows_reported:
            self._bad_rows_reported = True
            warn_corrupt(self.path, "a row whose JSON does not parse")


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
        raise CorruptCache("not an SQLite database")


def _check_database(db: sqlite3.Connection, size: int) -> None:
    """`quick_check` (every page's structure, no index cross-check: fast) and the table's columns."""
    if size <= QUICK_CHECK_MAX_BYTES:
        result = db.execute("PRAGMA quick_check").fetchall()
        if result != [("ok",)]:
            raise CorruptCache(f"quick_check: {str(result[0][0])[:100]}")
    columns = tuple(row[1] for row in db.execute("PRAGMA table_info(replies)").fetchall())
    if columns and columns != COLUMNS:
        raise CorruptCache("unexpected table layout")


def _select(db: sqlite3.Connection, keys: list[str]) -> list[tuple]:
    rows: list[tuple] = []
    for start in range(0, len(keys), 500):  # SQLite caps bound parameters
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows += db.execute(
            f"SELECT key, text, prompt_tokens, completion_tokens, meta FROM replies WHERE key IN ({marks})", chunk
        ).fetchall()
    return rows


def _reply(row) -> ChatReply | None:
    """The cached reply, or None (a miss) if the row was damaged."""
    text, prompt_tokens, completion_tokens, meta = row
    try:
        meta = json.loads(meta)
        meta.update(attempts=0, cost=0)
        if not isinstance(text, str):
            raise TypeError("text")
        return ChatReply(text, int(prompt_tokens), int(completion_tokens), cached=True, meta=meta)
    except (TypeError, ValueError, AttributeError):
        return None
