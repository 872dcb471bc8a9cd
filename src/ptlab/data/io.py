"""Read training rows from JSONL, JSON, Parquet or a saved `datasets` directory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from ptlab.errors import DataError


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; bad JSON or a non-object names the file and line."""
    with Path(path).open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: invalid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
            yield n, row


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
        return [row for _, row in iter_jsonl(path)]
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
