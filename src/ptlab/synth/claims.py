"""In-flight claims: processes that share a reply cache pay for each distinct request once.

Why: the cache only dedups what has *arrived*. Two workers that start the same
request at the same moment (cells of a study with nested budgets, run in
parallel) both miss the cache and both pay. So before a request is sent its
cache key is claimed in a table in the cache's own file; a process that finds
a live claim does not send, it waits for the reply to appear in the cache and
serves it as a hit. Claims live beside the replies because only a process that
shares the cache can be served the waited-for reply.

A claim is held only while its request is being sent (never while waiting for
budget or for another claim), so waiting can never form a cycle. The holder
writes the reply to the cache *before* it releases the claim, and a new holder
looks in the cache again after claiming, so a request is never paid twice
because of a race between the two.

A claim is taken over when its holder is dead (pid and process start time, see
`owners`), when the holder failed and released it, or when it is older than
`CLAIM_STALE_S` (a holder on another host, or a hung one): a generous timeout,
far beyond a request's retries, since taking over a live claim pays twice.
"""

from __future__ import annotations

import sqlite3
import time

from ptlab.synth.owners import Owner, alive

CLAIM_STALE_S = 1800.0

CLAIM_SCHEMA = """
CREATE TABLE IF NOT EXISTS inflight (
    key TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started REAL NOT NULL,
    claimed REAL NOT NULL
)
"""
CLAIM_COLUMNS = ("key", "token", "pid", "host", "started", "claimed")


class Claims:
    """Claim / release cache keys in `store` (a `ReplyCache`) for `owner`."""

    def __init__(self, store, owner: Owner, stale_s: float = CLAIM_STALE_S):
        self.store = store
        self.owner = owner
        self.stale_s = stale_s

    def claim(self, key: str) -> bool:
        """True: we hold it now and may pay; False: a live holder is paying for it.

        One statement when the key is free (the common case); a held key is read and, when
        takeable, taken by compare-and-swap on the holder's token (two takers: one wins).
        """
        o = self.owner
        mine = (key, o.token, o.pid, o.host, o.started, time.time())

        def take(db: sqlite3.Connection) -> bool:
            if db.execute("INSERT INTO inflight VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
                          mine).rowcount == 1:
                return True
            row = db.execute("SELECT token, pid, host, started, claimed FROM inflight WHERE key = ?", (key,)).fetchone()
            if row is None:  # released in between: try once more
                return db.execute("INSERT INTO inflight VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
                                  mine).rowcount == 1
            if not self._takeable(row):
                return False
            return db.execute("UPDATE inflight SET token = ?, pid = ?, host = ?, started = ?, claimed = ? "
                              "WHERE key = ? AND token = ?", (*mine[1:], key, row[0])).rowcount == 1

        return self.store.use(take, take)

    def held_by_other(self, key: str) -> bool:
        """A live holder other than us is paying for `key` right now."""
        row = self.store.use(lambda db: db.execute(
            "SELECT token, pid, host, started, claimed FROM inflight WHERE key = ?", (key,)).fetchone(), lambda db: None)
        return row is not None and not self._takeable(row)

    def release(self, key: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM inflight WHERE key = ? AND token = ?", (key, self.owner.token))

        self.store.use(delete, lambda db: None)

    def _takeable(self, row) -> bool:
        token, pid, host, started, claimed = row
        if token == self.owner.token:
            return True
        if time.time() - claimed > self.stale_s:
            return True
        return alive(pid, host, started) is False
