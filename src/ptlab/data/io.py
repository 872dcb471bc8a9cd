"""Read training rows from JSONL, JSON, Parquet or a saved `datasets` directory."""

from __future__ import annotations

import json
from pathlib import Path

from ptlab.errors import DataError


def load_rows(path: str | Path) -> list[dict]:
    """All rows of a dataset file as dicts; errors name the file (and line for JSONL)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if path.is_dir():
        from datasets import load_from_disk

        try:
            ds = load_from_disk(str(path))
        except Exception as e:  # noqa: BLE001 - datasets raises several types
            raise DataError(f"{path}: not a saved datasets directory ({e})") from None
        if hasattr(ds, "keys"):  # DatasetDict: take the train split
            if "train" not in ds:
                raise DataError(f"{path}: DatasetDict has no 'train' split (has {list(ds)})")
            ds = ds["train"]
        return ds.to_list()
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        with path.open() as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{n}: invalid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
                rows.append(row)
        return rows
    if suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of objects")
        return data
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raise DataError(f"{path}: unsupported data format {suffix!r}; use .jsonl, .json, .parquet or a datasets directory")
