"""The teacher ledger: what a run has spent, on disk, across every attempt (invocation) of the run.

Why: a `Budget` in memory forgets at exit. A `ptlab synth` killed and restarted
with ``budget.max_queries: 100`` paid 184 replies in total, because the
restart's budget started from zero while the cache served the first attempt's
replies for free. The ledger records each charge the moment it is made, and a
run's `Budget` starts from what the ledger says the run already spent, so kill +
restart never pays past the budget.

A run is named by a `run_id` the caller chooses (`ptlab synth` derives one from
the output path, the teacher, the strategy and the seeds). Its spending is kept
per *generation*: when a run finishes it is marked complete, and a later fresh
run under the same id starts a new generation from zero (it pays nothing
anyway: the cache holds every reply). An unfinished run resumes its generation.

What a row counts: in the default mode, a paid reply (one query, its reported
tokens). In strict mode every attempt is written as ``sent`` (one query and
its token bound) *before* it goes out, and becomes ``charged`` at its end
(its reported usage if it got a reply; its bound if it failed in a way a
provider may bill) or is dropped (one a provider does not bill). A ``sent``
row left by a killed attempt counts, at its bound: the provider may have
served it. Hence strict mode keeps the promise against the provider's own
count; the default mode against the replies this client received (a reply
in flight at a kill, like one that timed out, was never received).

One process drives a run at a time (the `runs` row names it): a second live
process on the same host opening the same run is refused, since two in-memory budgets seeded
from one ledger could together pass the limit (within one process, the teacher
opened last takes the run over: close the earlier one first). Processes that
share a ledger file but drive different runs (a study's cells) are the normal
case.

Use::

    ledger = Ledger()                                  # <PTLAB_HOME>/teacher/ledger.sqlite
    run = ledger.open_run("cell-3f2a", owners.me())    # spent so far: run.spent_queries, run.spent_tokens
    row = run.sent(key, bound); run.charge(row, key, tokens); run.complete()

Callers normally give `make_teacher` a `BudgetConfig` with `run_id` (and, to
move the file, `ledger_path`) and call `teacher.complete_run()` when the run's
result is safely written.

Storage heals like the reply cache (`store`): a damaged file is moved aside,
never deleted, with a warning that the spending it held no longer counts.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

from ptlab.paths import cache_dir
from ptlab.synth.errors import BudgetError
from ptlab.synth.owners import Owner, alive
from ptlab.synth.store import HealingStore, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    started REAL NOT NULL,
    completed REAL,
    driver TEXT,
    driver_pid INTEGER,
    driver_host TEXT,
    driver_started REAL,
    PRIMARY KEY (run_id, generation)
);
CREATE TABLE IF NOT EXISTS spending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    queries INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS spending_by_run ON spending (run_id, generation)
"""
RUN_COLUMNS = ("run_id", "generation", "started", "completed", "driver", "driver_pid", "driver_host",
               "driver_started")
SPENDING_COLUMNS = ("id", "run_id", "generation", "key", "state", "queries", "tokens", "at")


def default_ledger_path() -> Path:
    return cache_dir("teacher") / "ledger.sqlite"


class Ledger(HealingStore):
    """A ledger file; `open_run` gives the handle a teacher writes its charges through."""

    SCHEMA = _SCHEMA
    TABLES = {"runs": RUN_COLUMNS, "spending": SPENDING_COLUMNS}

    def __init__(self, path: str | Path | None = None):
        super().__init__(Path(path) if path else default_ledger_path())

    def warn(self, why: str) -> None:
        print(f"warning: {self.path}: corrupt teacher ledger ({why}); moved aside, a fresh ledger starts "
              "(spending recorded in the old one no longer counts)", file=sys.stderr, flush=True)

    def open_run(self, run_id: str, owner: Owner) -> LedgerRun:
        """Drive `run_id`'s open generation (a new one after a completed run); raise if another live process does."""

        def body(db: sqlite3.Connection) -> tuple[int, int, int]:
            row = db.execute(
                "SELECT generation, completed, driver, driver_pid, driver_host, driver_started FROM runs "
                "WHERE run_id = ? ORDER BY generation DESC LIMIT 1", (run_id,)).fetchone()
            if row is None or row[1] is not None:
                generation = 1 if row is None else row[0] + 1
                db.execute("INSERT INTO runs VALUES (?, ?, ?, NULL, NULL, NULL, NULL, NULL)",
                           (run_id, generation, time.time()))
            else:
                generation, _, driver, pid, host, started = row
                if driver is not None and pid != owner.pid and alive(pid, host, started):
                    raise BudgetError(
                        f"teacher ledger {self.path}: run {run_id} is being run by process {pid}; one process "
                        "at a time drives a run (give concurrent runs their own budget.run_id)")
            db.execute("UPDATE runs SET driver = ?, driver_pid = ?, driver_host = ?, driver_started = ? "
                       "WHERE run_id = ? AND generation = ?",
                       (owner.token, owner.pid, owner.host, owner.started, run_id, generation))
            queries, tokens = db.execute(
                "SELECT COALESCE(SUM(queries), 0), COALESCE(SUM(tokens), 0) FROM spending "
                "WHERE run_id = ? AND generation = ?", (run_id, generation)).fetchone()
            return generation, int(queries), int(tokens)

        generation, queries, tokens = self.use(lambda db: transaction(db, body), lambda db: transaction(db, body))
        return LedgerRun(self, run_id, generation, owner, queries, tokens)

    def spent(self, run_id: str, generation: int | None = None) -> tuple[int, int]:
        """(queries, tokens) the run's generation (default: its latest) has spent."""

        def read(db: sqlite3.Connection) -> tuple[int, int]:
            gen = generation
            if gen is None:
                row = db.execute("SELECT MAX(generation) FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                gen = row[0] if row and row[0] is not None else 0
            q, t = db.execute("SELECT COALESCE(SUM(queries), 0), COALESCE(SUM(tokens), 0) FROM spending "
                              "WHERE run_id = ? AND generation = ?", (run_id, gen)).fetchone()
            return int(q), int(t)

        return self.use(read, lambda db: (0, 0))


class LedgerRun:
    """One run's generation as driven by this process. `spent_*`: what earlier attempts had spent at open."""

    def __init__(self, ledger: Ledger, run_id: str, generation: int, owner: Owner, queries: int, tokens: int):
        self.ledger = ledger
        self.run_id = run_id
        self.generation = generation
        self.owner = owner
        self.spent_queries = queries
        self.spent_tokens = tokens

    def _insert(self, key: str, state: str, tokens: int) -> int:
        values = (self.run_id, self.generation, key, state, 1, tokens, time.time())

        def insert(db: sqlite3.Connection) -> int:
            cur = db.execute("INSERT INTO spending (run_id, generation, key, state, queries, tokens, at) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)", values)
            return int(cur.lastrowid)

        return self.ledger.use(insert, insert)

    def sent(self, key: str, tokens: int) -> int:
        """Record an attempt before it is sent (strict mode); its row id."""
        return self._insert(key, "sent", tokens)

    def charge(self, row: int | None, key: str, tokens: int) -> None:
        """Charge one query and `tokens`: the `sent` row becomes `charged`, or (no row) a new `charged` row."""
        if row is None:
            self._insert(key, "charged", tokens)
            return

        def update(db: sqlite3.Connection) -> None:
            db.execute("UPDATE spending SET state = 'charged', tokens = ?, at = ? WHERE id = ?",
                       (tokens, time.time(), row))

        self.ledger.use(update, lambda db: self._insert(key, "charged", tokens))

    def drop(self, row: int | None) -> None:
        """An attempt that turned out not billable (never reached the model): it costs nothing."""
        if row is not None:
            self.ledger.use(lambda db: db.execute("DELETE FROM spending WHERE id = ?", (row,)), lambda db: None)

    def complete(self) -> None:
        """The run finished: a later run under the same id starts a new generation."""
        self._set_done(completed=True)

    def release(self) -> None:
        """This process stops driving the run (its spending stays)."""
        self._set_done(completed=False)

    def _set_done(self, completed: bool) -> None:
        sql = ("UPDATE runs SET driver = NULL, driver_pid = NULL, driver_host = NULL, driver_started = NULL"
               + (", completed = ?" if completed else "") + " WHERE run_id = ? AND generation = ? AND driver = ?")
        args = ((time.time(),) if completed else ()) + (self.run_id, self.generation, self.owner.token)
        self.ledger.use(lambda db: db.execute(sql, args), lambda db: None)
