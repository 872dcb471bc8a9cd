"""A durable reply cache: SQLite in WAL mode, one row per teacher call, written as it arrives.

Why SQLite/WAL: a commit per reply is cheap (no fsync per commit with
``synchronous=NORMAL``), readers never block the writer, and a committed row
survives the process being killed (``kill -9``): only a power loss can drop
the last few commits. A restarted run therefore re-pays only the calls that
were in flight at the kill.

The key is a hash of (backend, model, request fields incl. sampling params and
sample_index); the request itself is stored beside it for inspection. API keys
are never part of a key or a row.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

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
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def get(self, key: str) -> ChatReply | None:
        with self._lock:
            row = self._db.execute(
                "SELECT text, prompt_tokens, completion_tokens, meta FROM replies WHERE key = ?", (key,)
            ).fetchone()
        return _reply(row) if row else None

    def get_many(self, keys: Iterable[str]) -> dict[str, ChatReply]:
        keys = list(dict.fromkeys(keys))
        out: dict[str, ChatReply] = {}
        with self._lock:
            for start in range(0, len(keys), 500):  # SQLite caps bound parameters
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, text, prompt_tokens, completion_tokens, meta FROM replies WHERE key IN ({marks})",
                    chunk,
                ).fetchall()
                for row in rows:
                    out[row[0]] = _reply(row[1:])
        return out

    def put(self, key: str, backend: str, model: str, request: ChatRequest, reply: ChatReply) -> None:
        """Commit one reply now (autocommit), so it survives a kill of this process."""
        meta = {k: v for k, v in reply.meta.items() if k in ("finish_reason",)}
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    backend,
                    model,
                    json.dumps(request.key_fields(), sort_keys=True),
                    reply.text,
                    reply.prompt_tokens,
                    reply.completion_tokens,
                    json.dumps(meta, sort_keys=True),
                    time.time(),
                ),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _reply(row) -> ChatReply:
    text, prompt_tokens, completion_tokens, meta = row
    meta = json.loads(meta)
    meta.update(attempts=0, cost=0)
    return ChatReply(text, prompt_tokens, completion_tokens, cached=True, meta=meta)
