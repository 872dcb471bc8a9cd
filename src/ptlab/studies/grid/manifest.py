"""A study's results directory and its manifest (`study.json`), checked before any work.

Every study writes the same manifest shape (format, cell version, the hash of
its fixed settings, its cells) and refuses, before computing anything, a
directory that holds something else: files that are not a study, a study of
another kind or ptlab version, or the same study with different fixed settings.
"""

from __future__ import annotations

import json
from pathlib import Path

from ptlab.errors import ConfigError
from ptlab.fingerprint import fingerprint

MANIFEST = "study.json"


def changed_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    out = []
    for k in sorted(set(a) | set(b)):
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out += changed_keys(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            out.append(f"{prefix}{k}")
    return out


def load_manifest_file(path: Path) -> dict:
    """The JSON object in a `study.json`; a ConfigError naming the file when it is not one."""
    from ptlab.config import read_text

    try:
        data = json.loads(read_text(path, "study manifest"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}: unreadable study manifest (invalid JSON: {e.msg}); "
                          "restore it or choose another output_dir") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells", []), list):
        raise ConfigError(f"{path}: unreadable study manifest (expected an object with a 'cells' list); "
                          "restore it or choose another output_dir")
    return data


def read_manifest(root: Path, study_format: str, cell_version: str) -> dict | None:
    """The manifest at `root`, None when there is none; ConfigError if it is unreadable or of another study."""
    manifest = Path(root) / MANIFEST
    if not manifest.is_file():
        return None
    old = load_manifest_file(manifest)
    if old.get("format") != study_format or old.get("cell_version") != cell_version:
        kind = study_format.split("/")[0].removeprefix("ptlab-study-")
        raise ConfigError(f"output_dir {root}: not a {kind} study of this ptlab, or made by an incompatible one "
                          f"({old.get('format')}, {old.get('cell_version')}; this one writes {study_format}, "
                          f"{cell_version}); choose another output_dir")
    return old


def _check_dir_path(root: Path) -> None:
    """`root` and every existing folder above it are folders (not files), so the study can create it."""
    for path in (root, *root.parents):
        if path.exists():
            if not path.is_dir():
                what = "is a file" if path == root else f"is under {path}, which is a file"
                raise ConfigError(f"output_dir {root}: {what}; choose a directory")
            return


def check_results_dir(root: Path, study_format: str, cell_version: str, fixed: dict,
                      any_finished: bool = True) -> dict | None:
    """The existing manifest if `root` holds a compatible study with these fixed settings; else a ConfigError.

    A study that stored no cell yet (it failed, or was stopped, before finishing one) does not hold its
    directory against a corrected config: its fixed settings may change.
    """
    _check_dir_path(root)
    old = read_manifest(root, study_format, cell_version)
    if old is None:
        from ptlab.locks import lock_files_only

        if root.is_dir() and any(root.iterdir()) and not lock_files_only(root):
            raise ConfigError(f"output_dir {root}: not empty and not a ptlab study directory (no {MANIFEST}); "
                              "choose another output_dir")
        return None
    if not any_finished:
        return None
    if old.get("fixed_hash") != fingerprint(fixed):
        changed = ", ".join(changed_keys(old.get("fixed", {}), fixed)) or "?"
        raise ConfigError(f"output_dir {root}: holds a study with different fixed settings ({changed}); "
                          "finished cells are never overwritten — choose another output_dir")
    return old


def refuse_stale_cells(root: Path, finished: dict[str, str], planned: dict[str, str]) -> None:
    """ConfigError if a stored cell (id -> config hash) was computed from other inputs than this run plans."""
    stale = [cid for cid, h in planned.items() if finished.get(cid, h) != h]
    if stale:
        raise ConfigError(f"output_dir {root}: cell {stale[0]} (+{len(stale) - 1} more) was computed from different "
                          "inputs (another model build or ptlab version); finished cells are never overwritten — "
                          "choose another output_dir")


def write_manifest(root: Path, study, cfg, plans: list, old: dict | None) -> None:
    """`study.json`: format, fixed settings and their hash, the config as run, and every cell planned so far."""
    import time

    from ptlab.atomic import write_json
    from ptlab.studies.grid.store import package_versions

    cells = {c["cell_id"]: c for c in (old or {}).get("cells", []) if isinstance(c, dict)}
    cells.update({p.cell.cell_id: {**p.cell.as_dict(), "config_hash": p.config_hash} for p in plans})
    write_json(root / MANIFEST, {
        "format": study.study_format, "study": study.name, "cell_version": study.cell_version,
        "axes": list(study.axes), "fixed_hash": fingerprint(cfg.fixed()), "fixed": cfg.fixed(),
        "config": cfg.model_dump(mode="json"), "cells": list(cells.values()), "versions": package_versions(),
        "updated_at": time.time(),
    })


def cell_ids(manifest: dict) -> list[str]:
    return [c["cell_id"] for c in manifest.get("cells", []) if isinstance(c, dict) and "cell_id" in c]
