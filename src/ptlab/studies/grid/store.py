"""The results database: one SQLite file per study directory.

Tables:
- `results`: a row per (cell, metric) with the cell's axes under the study's own
  names (a spurious study's task/artifact/rate/…, a budget study's
  seed_size/budget/strategy/…), config hash, package versions and timings —
  what the report and exports read;
- `examples`: per-example outcomes (cell, split, example id, correct,
  shortcut_agrees, and a real-valued `value` where the outcome is a score) —
  what paired tests and bootstrap intervals need;
- `meta`: the store's format and the study's axes, so a directory from an
  incompatible version is refused with one line.

A finished cell is never overwritten: `add_cell` refuses a cell id that is already stored.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from ptlab.errors import PtlabError

STORE_FORMAT = "ptlab-results/2"  # /2: each study's own axes as columns, declared in `meta`
_FIXED = ("cell_id", "metric", "value", "config_hash", "versions", "data_s", "train_s", "eval_s", "finished_at")
_AXIS = re.compile(r"[a-z][a-z0-9_]{0,40}")

META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
EXAMPLES = """
CREATE TABLE IF NOT EXISTS examples (
    cell_id TEXT NOT NULL, split TEXT NOT NULL, example_id TEXT NOT NULL, correct INTEGER NOT NULL,
    shortcut_agrees INTEGER NOT NULL, value REAL, PRIMARY KEY (cell_id, split, example_id)
)
"""


def results_schema(axes: tuple[str, ...]) -> str:
    """The `results` table: a row per (cell, metric), with one column per axis of the study."""
    for name in axes:
        if not _AXIS.fullmatch(name) or name in _FIXED:
            raise ValueError(f"store: {name!r} cannot be an axis column")
    columns = ", ".join(f"{a}" for a in axes)
    return (f"CREATE TABLE IF NOT EXISTS results (cell_id TEXT NOT NULL, {columns}, metric TEXT NOT NULL, value REAL, "
            "config_hash TEXT NOT NULL, versions TEXT, data_s REAL, train_s REAL, eval_s REAL, finished_at REAL, "
            "PRIMARY KEY (cell_id, metric))")


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
    """A study's results. `axes` (the study's axis names, in order) are needed to create a database;
    an existing one declares its own in `meta`, and a different declaration is refused."""

    @_db_errors
    def __init__(self, path: str | Path, axes: tuple[str, ...] | list[str] | None = None, create: bool = True):
        self.path = Path(path)
        if not create or self.path.is_file():
            if not self.path.is_file():
                raise StoreError(f"no results database at {self.path}")
            found, stored_axes = self._stored_meta()
            self._check_format(found)
            self.axes = tuple(stored_axes)
            if axes is not None and tuple(axes) != self.axes:
                raise StoreError(f"{self.path}: holds a study with axes {list(self.axes)}, not {list(axes)}; "
                                 "use a new output_dir")
            return
        if axes is None:
            raise StoreError(f"{self.path}: a new results database needs the study's axes")
        self.axes = tuple(axes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute(META)
            db.execute(results_schema(self.axes))
            db.execute(EXAMPLES)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (STORE_FORMAT,))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('axes', ?)", (json.dumps(list(self.axes)),))

    def _stored_meta(self) -> tuple[str | None, list[str]]:
        """The format record and axes of an existing database, read without writing anything."""
        with closing(sqlite3.connect(self.path, timeout=60)) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "meta" not in tables:
                return None, []
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        try:
            axes = json.loads(meta.get("axes", "[]"))
        except json.JSONDecodeError:
            axes = []
        return meta.get("format"), axes

    def _check_format(self, found: str | None) -> None:
        if found is None:
            raise StoreError(f"{self.path}: not a ptlab results database (no format record); use a new output_dir")
        if found != STORE_FORMAT:
            raise StoreError(f"{self.path}: results database format {found!r}, this ptlab reads {STORE_FORMAT!r} "
                             "(each study's own axes as columns); re-run the study into a new output_dir")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)  # transactions are explicit
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
        """Store one finished cell: all metrics and examples in one write transaction, taken before the
        already-stored check, so two writers can never both store the same cell."""
        versions_json = json.dumps(versions or package_versions(), sort_keys=True)
        missing = [a for a in self.axes if a not in cell]
        if missing:
            raise StoreError(f"cell {cell.get('cell_id')}: no value for axis {missing[0]!r}")
        axes = tuple(cell[a] for a in self.axes)
        now = time.time()
        marks = ",".join("?" * (len(self.axes) + len(_FIXED)))
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                if db.execute("SELECT 1 FROM results WHERE cell_id = ? LIMIT 1", (cell["cell_id"],)).fetchone():
                    raise StoreError(f"cell {cell['cell_id']} is already stored in {self.path}; "
                                     "finished cells are never overwritten")
                db.executemany(
                    f"INSERT INTO results VALUES ({marks})",
                    [(cell["cell_id"], *axes, k, None if v is None else float(v), config_hash, versions_json,
                      timings.get("data_s"), timings.get("train_s"), timings.get("eval_s"), now)
                     for k, v in sorted(metrics.items())],
                )
                db.executemany(
                    "INSERT INTO examples VALUES (?,?,?,?,?,?)",
                    [(cell["cell_id"], e["split"], e["id"], int(bool(e["correct"])),
                      int(bool(e.get("shortcut_agrees", False))), e.get("value")) for e in examples],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    @_db_errors
    def forget(self, cell_id: str) -> None:
        """Drop a stored cell (its step output failed verification or was deleted: it is recomputed)."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM results WHERE cell_id = ?", (cell_id,))
            db.execute("DELETE FROM examples WHERE cell_id = ?", (cell_id,))
            db.execute("COMMIT")

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
