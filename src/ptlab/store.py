"""The results database: one SQLite file per study directory.

Tables:
- `results`: a row per (cell, metric) with the cell's axes, config hash, seed,
  package versions and timings — what the report and exports read;
- `examples`: per-example outcomes (cell, split, example id, correct,
  shortcut_agrees) — what paired tests and bootstrap intervals need;
- `meta`: the store's format, so a directory from an incompatible version is refused.

A finished cell is never overwritten: `add_cell` refuses a cell id that is already stored.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from ptlab.errors import PtlabError

STORE_FORMAT = "ptlab-results/1"
CELL_COLUMNS = ("cell_id", "task", "artifact", "feature", "rate", "algorithm", "seed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    cell_id TEXT NOT NULL, task TEXT, artifact TEXT, feature TEXT, rate REAL, algorithm TEXT, seed INTEGER,
    metric TEXT NOT NULL, value REAL,
    config_hash TEXT NOT NULL, versions TEXT, data_s REAL, train_s REAL, eval_s REAL, finished_at REAL,
    PRIMARY KEY (cell_id, metric)
);
CREATE TABLE IF NOT EXISTS examples (
    cell_id TEXT NOT NULL, split TEXT NOT NULL, example_id TEXT NOT NULL, correct INTEGER NOT NULL,
    shortcut_agrees INTEGER NOT NULL, PRIMARY KEY (cell_id, split, example_id)
);
"""


class StoreError(PtlabError):
    """The results database is missing, incompatible, or would be overwritten."""


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("ptlab", "torch", "transformers", "accelerate", "numpy", "scipy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def _db_errors(method):
    """A corrupt or foreign database file becomes a StoreError naming it, whichever call meets it first."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as e:
            cause = e if isinstance(e, sqlite3.DatabaseError) else e.__cause__  # pandas wraps sqlite's error
            if isinstance(cause, sqlite3.OperationalError):  # disk full, locked, I/O error: the file may be fine
                raise StoreError(f"{self.path}: cannot use the results database ({cause})") from None
            if isinstance(cause, sqlite3.DatabaseError):
                raise StoreError(f"{self.path}: not a readable ptlab results database ({cause}); "
                                 "restore it or use a new output_dir") from None
            raise

    return wrapper


class ResultStore:
    @_db_errors
    def __init__(self, path: str | Path, create: bool = True):
        self.path = Path(path)
        if not create:
            if not self.path.is_file():
                raise StoreError(f"no results database at {self.path}")
            self._check_format(self._stored_format())
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.executescript(SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('format', ?)", (STORE_FORMAT,))
            else:
                self._check_format(row[0])

    def _stored_format(self) -> str | None:
        """The format record of an existing database, read without writing anything."""
        with closing(sqlite3.connect(self.path, timeout=60)) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "meta" not in tables:
                return None
            row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        return row[0] if row else None

    def _check_format(self, found: str | None) -> None:
        if found is None:
            raise StoreError(f"{self.path}: not a ptlab results database (no format record); use a new output_dir")
        if found != STORE_FORMAT:
            raise StoreError(f"{self.path}: results database format {found!r}, this ptlab reads {STORE_FORMAT!r}; "
                             "use a new output_dir")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    @_db_errors
    def finished(self) -> dict[str, str]:
        """cell id → config hash of every stored cell."""
        with closing(self._connect()) as db:
            return dict(db.execute("SELECT DISTINCT cell_id, config_hash FROM results").fetchall())

    @_db_errors
    def add_cell(self, cell: dict, config_hash: str, metrics: dict, examples: list[dict], timings: dict,
                 versions: dict | None = None) -> None:
        """Store one finished cell (all metrics and examples in one transaction)."""
        versions_json = json.dumps(versions or package_versions(), sort_keys=True)
        axes = tuple(cell[c] for c in CELL_COLUMNS)
        now = time.time()
        with closing(self._connect()) as db, db:
            if db.execute("SELECT 1 FROM results WHERE cell_id = ? LIMIT 1", (cell["cell_id"],)).fetchone():
                raise StoreError(f"cell {cell['cell_id']} is already stored in {self.path}; finished cells are never overwritten")
            db.executemany(
                "INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(*axes, k, None if v is None else float(v), config_hash, versions_json, timings.get("data_s"),
                  timings.get("train_s"), timings.get("eval_s"), now) for k, v in sorted(metrics.items())],
            )
            db.executemany(
                "INSERT INTO examples VALUES (?,?,?,?,?)",
                [(cell["cell_id"], e["split"], e["id"], int(bool(e["correct"])), int(bool(e["shortcut_agrees"])))
                 for e in examples],
            )

    @_db_errors
    def results(self):
        """All result rows as a pandas DataFrame."""
        import pandas as pd

        with closing(self._connect()) as db:
            return pd.read_sql_query("SELECT * FROM results ORDER BY cell_id, metric", db)

    @_db_errors
    def examples(self):
        import pandas as pd

        with closing(self._connect()) as db:
            return pd.read_sql_query("SELECT * FROM examples ORDER BY cell_id, split, example_id", db)

    def export(self, path: str | Path) -> Path:
        """Write the results table to CSV or Parquet (by suffix)."""
        from ptlab.atomic import write_file, write_text

        path = Path(path)
        df = self.results()
        if path.suffix == ".csv":
            write_text(path, df.to_csv(index=False))
        elif path.suffix == ".parquet":
            write_file(path, lambda f: df.to_parquet(f, index=False))
        else:
            raise StoreError(f"export: unsupported format {path.suffix!r} for {path}; use .csv or .parquet")
        return path
