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


class ResultStore:
    def __init__(self, path: str | Path, create: bool = True):
        self.path = Path(path)
        if not self.path.is_file() and not create:
            raise StoreError(f"no results database at {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('format', ?)", (STORE_FORMAT,))
            elif row[0] != STORE_FORMAT:
                raise StoreError(f"{self.path}: results database format {row[0]!r}, this ptlab reads {STORE_FORMAT!r}; "
                                 "use a new output_dir")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def finished(self) -> dict[str, str]:
        """cell id → config hash of every stored cell."""
        with closing(self._connect()) as db:
            return dict(db.execute("SELECT DISTINCT cell_id, config_hash FROM results").fetchall())

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

    def results(self):
        """All result rows as a pandas DataFrame."""
        import pandas as pd

        with closing(self._connect()) as db:
            return pd.read_sql_query("SELECT * FROM results ORDER BY cell_id, metric", db)

    def examples(self):
        import pandas as pd

        with closing(self._connect()) as db:
            return pd.read_sql_query("SELECT * FROM examples ORDER BY cell_id, split, example_id", db)

    def export(self, path: str | Path) -> Path:
        """Write the results table to CSV or Parquet (by suffix)."""
        from ptlab.atomic import write_text

        path = Path(path)
        df = self.results()
        if path.suffix == ".csv":
            write_text(path, df.to_csv(index=False))
        elif path.suffix == ".parquet":
            tmp = path.with_name(f".{path.name}.tmp")
            df.to_parquet(tmp, index=False)
            tmp.replace(path)
        else:
            raise StoreError(f"export: unsupported format {path.suffix!r} for {path}; use .csv or .parquet")
        return path
