"""A durable reply cache: one row per teacher call, committed as it arrives (SQLite/WAL, see `store`).

A restarted run therefore re-pays only the calls that were in flight at a kill.
The cache is only an optimisation, so a damaged file costs one warning and
re-paid calls (`store.HealingStore`); a single row whose JSON columns do not
parse is a miss, and the next reply overwrites it.

The key is a hash of (backend, model, server, request fields incl. sampling
params and sample_index). Why the server: two servers may serve different
weights under one model name (a fine-tune deployed as "default", a local vLLM
and a hosted API both saying "llama-3"); without it the second server was
silently served the first one's replies. The server is the base URL in a
normal form (`normal_server`), never with credentials or a query, and is
stored in each row's `meta` for inspection. The request itself is stored
beside the key; API keys are never part of a key or a row.

Schema history: v2 keys (`KEY_VERSION`) added the server; the table layout is
unchanged, so a v1 file opens as it is and its rows simply never match.
The same file holds the in-flight claims that let processes sharing the cache
pay for a request once (`ptlab.synth.claims`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from ptlab.cache_heal import warn_corrupt
from ptlab.fingerprint import fingerprint
from ptlab.paths import cache_dir
from ptlab.synth.claims import CLAIM_COLUMNS, CLAIM_SCHEMA
from ptlab.synth.store import HealingStore, is_corruption  # noqa: F401 - is_corruption: part of this API
from ptlab.synth.teachers.base import ChatReply, ChatRequest

KEY_VERSION = "teacher-reply-v2"

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
DEFAULT_PORTS = {"http": 80, "https": 443}


def normal_server(url: str | None) -> str:
    """A server's identity: scheme and host lower-cased, default port, credentials, query, fragment and
    trailing slashes dropped. ``HTTP://u:p@Host:80/v1/?x=1`` -> ``http://host/v1``; "" for no server."""
    if not url:
        return ""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None or port == DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def cache_key(backend: str, model: str, request: ChatRequest, server: str = "") -> str:
    """`server`: the backend's `normal_server(base_url)` ("" for a local model)."""
    return fingerprint(KEY_VERSION, backend, model, server, request.key_fields(), length=32)


def default_cache_path() -> Path:
    return cache_dir("teacher") / "replies.sqlite"


class ReplyCache(HealingStore):
    """Thread-safe get/put of `ChatReply` by key. Only successful replies are stored."""

    SCHEMA = _SCHEMA + ";" + CLAIM_SCHEMA
    TABLES = {"replies": COLUMNS, "inflight": CLAIM_COLUMNS}

    def __init__(self, path: str | Path | None = None):
        self._bad_rows_reported = False
        super().__init__(Path(path) if path else default_cache_path())

    def get(self, key: str) -> ChatReply | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, ChatReply]:
        keys = list(dict.fromkeys(keys))
        rows = self.use(lambda db: _select(db, keys), lambda db: [])
        out: dict[str, ChatReply] = {}
        for row in rows:
            reply = _reply(row[1:])
            if reply is None:
                self._report_bad_row()
            else:
                out[row[0]] = reply
        return out

    def put(self, key: str, backend: str, model: str, request: ChatRequest, reply: ChatReply,
            server: str = "") -> None:
        """Commit one reply now (autocommit), so it survives a kill of this process."""
        meta = {k: v for k, v in reply.meta.items() if k in ("finish_reason",)}
        if server:
            meta["server"] = server
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

        self.use(insert, insert)  # after a heal, into the fresh cache

    def __len__(self) -> int:
        return self.use(lambda db: db.execute("SELECT COUNT(*) FROM replies").fetchone()[0], lambda db: 0)

    def _report_bad_row(self) -> None:
        """Once per cache: unreadable rows are misses (recomputed and overwritten), not errors."""
        if not self._bad_rows_reported:
            self._bad_rows_reported = True
            warn_corrupt(self.path, "a row whose JSON does not parse")


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
