"""Read training rows from JSONL, JSON, Parquet or a saved `datasets` directory.

Rows and lines are numbered from 1, as editors show them: `file:line` for a
line of a text file, `file: row N` for the N-th row of a dataset.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from ptlab.errors import DataError, PtlabError


def _decode(raw: bytes, path: str | Path, n: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}:{n}: not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})") from None


def read_utf8(path: str | Path, what: str = "", error: type[PtlabError] = DataError) -> str:
    """A text file's contents; invalid UTF-8 is an `error` naming the file and line (and `what` the file is)."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        subject = f"{what} is " if what else ""
        raise error(f"{path}:{line}: {subject}not valid UTF-8 (byte {raw[e.start]:#04x})") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; bad JSON or a non-object names the file and line."""
    with Path(path).open("rb") as f:
        for n, raw in enumerate(f, 1):
            line = _decode(raw, path, n)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: invalid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
            yield n, row


def _read_json(path: Path) -> list[dict]:
    try:
        data = json.loads(read_utf8(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
    for i, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise DataError(f"{path}: row {i}: expected a JSON object, got {type(row).__name__}")
    return data


def _read_parquet(path: Path) -> list[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except (pa.ArrowException, ValueError) as e:
        raise DataError(f"{path}: not a readable Parquet file ({e})") from None


def _read_datasets_dir(path: Path) -> list[dict]:
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


def load_rows(path: str | Path) -> list[dict]:
    """All rows of a dataset file as dicts; errors name the file (and line for JSONL)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if path.is_dir():
        return _read_datasets_dir(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return [row for _, row in iter_jsonl(path)]
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    raise DataError(f"{path}: unsupported data format {suffix!r}; use .jsonl, .json, .parquet or a datasets directory")
