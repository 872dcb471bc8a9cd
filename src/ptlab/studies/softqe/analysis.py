"""From a SoftQE study directory to per-collection results: means, intervals, paired tests, training.

Everything statistical is recomputed here from the per-query values in the
results store, with the bootstrap seed of the study's config, so the report
can be rewritten (or re-analysed) without a model. The vectors are laid out in
each collection's own query order (recorded in `shared.json`) — the order the
bootstrap resamples in — which keeps intervals identical to the ones computed
at evaluation time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ptlab.errors import PtlabError
from ptlab.retrieval.evaluate import CollectionResult, SystemResult, compare
from ptlab.retrieval.stats import mean_ci
from ptlab.studies.grid.manifest import cell_ids, load_manifest_file
from ptlab.studies.grid.store import ResultStore
from ptlab.studies.softqe.cells import (
    COLLECTIONS,
    NOT_A_STUDENT,
    SHARED,
    comparisons,
    student_name,
    systems,
    training_record,
)
from ptlab.studies.softqe.shared import LATENCY
from ptlab.studies.softqe.steps import TRAIN_KEYS


@dataclass
class SoftQEResults:
    manifest: dict
    shared: dict
    latency: dict | None
    alphas: list[float]  # the stored students, in config order
    results: dict[str, CollectionResult]  # report label -> result
    training: dict
    # encoder -> its training record (learning curve included), teacher first
    records: dict[str, dict | None] = field(default_factory=dict)
    # report label -> {query subset: mask in the collection's query order}
    subsets: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def load(root: Path) -> SoftQEResults:
    root = Path(root)
    if not (root / "study.json").is_file():
        raise PtlabError(f"{root}: not a study directory (no study.json)")
    manifest = load_manifest_file(root / "study.json")
    if not (root / "results.sqlite").is_file():
        raise PtlabError(f"{root}: no results.sqlite yet — run the study first")
    store = ResultStore(root / "results.sqlite", create=False)
    rows = store.results()
    rows = rows[rows["cell_id"].isin(cell_ids(manifest))]
    if rows.empty:
        raise PtlabError(f"{root}: no finished cells to report")
    shared = _json(root / SHARED) or {}
    metrics = rows.pivot_table(index="system", columns="metric", values="value", aggfunc="first")
    stored = set(rows["system"])
    configured = manifest.get("config", {}).get("student", {}).get("alpha", [])
    configured = [float(a) for a in (configured if isinstance(configured, list) else [configured])]
    found = sorted(float(a) for a in rows["alpha"].unique() if float(a) != NOT_A_STUDENT)
    alphas = [a for a in dict.fromkeys([*configured, *found]) if student_name(a) in stored]
    names = [n for n in systems(alphas) if n in stored]
    examples = store.examples()
    examples = examples[examples["cell_id"].isin(rows["cell_id"].unique())]
    seed = int(manifest.get("config", {}).get("eval", {}).get("seed", 0))
    system_of = dict(zip(rows["cell_id"], rows["system"]))
    examples = examples.assign(system=examples["cell_id"].map(system_of))
    measures = _measures(manifest.get("config", {}).get("eval", {}).get("measures", []), examples)
    results = {COLLECTIONS[key]: _collection(key, shared["collections"][key], names, measures, metrics, examples,
                                             seed, alphas)
               for key in COLLECTIONS if key in shared.get("collections", {})}
    training = {"teacher": shared.get("teacher_training"), "train_queries": len(shared.get("train_ids", [])),
                "teacher_queries": shared.get("teacher_queries"),
                "students": {f"{a:g}": _train_info(metrics, student_name(a)) for a in alphas}}
    records = {"teacher": shared.get("teacher_training"),
               **{student_name(a): _json(training_record(root, student_name(a))) for a in alphas}}
    subsets = {COLLECTIONS[key]: _subsets(c) for key, c in shared.get("collections", {}).items()}
    return SoftQEResults(manifest, shared, _json(root / LATENCY), alphas, results, training, records,
                         {label: masks for label, masks in subsets.items() if masks})


def _subsets(collection: dict) -> dict[str, np.ndarray]:
    """Query subsets worth reporting apart (BFCL: user-written vs written from the documentation), as masks in the
    collection's query order; {} when the collection has none or its folder is gone."""
    from ptlab.retrieval.beir import load_beir
    from ptlab.retrieval.toolret import query_origin

    folder = Path(collection.get("dir", ""))
    if not (folder / "queries.jsonl").is_file():
        return {}
    meta = load_beir(folder, [collection.get("split", "test")]).query_meta
    origin = [query_origin(meta.get(q, {})) for q in collection.get("queries", [])]
    names = sorted({o for o in origin if o})
    return {n: np.array([o == n for o in origin]) for n in names} if len(names) > 1 else {}


def _train_info(metrics: pd.DataFrame, name: str) -> dict | None:
    info = {k: metrics.loc[name, f"train/{k}"] for k in TRAIN_KEYS if f"train/{k}" in metrics.columns}
    info = {k: v for k, v in info.items() if pd.notna(v)}
    if "steps" not in info:
        return None
    return {**info, "rows": int(info.get("rows", 0)), "steps": int(info["steps"]),
            "batch_size": int(info.get("batch_size", 0))}


def _measures(configured: list[str], examples: pd.DataFrame) -> list[str]:
    """The stored measures, in the config's order (the first is the headline's)."""
    import ir_measures

    stored = {s.split("/", 1)[1] for s in examples["split"]}
    named = [str(ir_measures.parse_measure(m)) for m in configured]
    return [m for m in named if m in stored] + sorted(stored - set(named))


def _collection(key: str, shared: dict, names: list[str], measures: list[str], metrics: pd.DataFrame,
                examples: pd.DataFrame, seed: int, alphas: list[float]) -> CollectionResult:
    """One collection's systems (per-query vectors, bootstrap means) and their paired comparisons."""
    ex = examples[examples["split"].str.startswith(f"{key}/")]
    order = shared.get("queries") or sorted(ex["example_id"].unique())
    res = CollectionResult(COLLECTIONS[key], len(order), int(_metric(metrics, names, f"{key}/documents")),
                           doc_encode_s=dict(shared.get("document_encode_s", {})))
    for name in names:
        mine = ex[ex["system"] == name]
        vec = {}
        for m in measures:
            values = mine[mine["split"] == f"{key}/{m}"].set_index("example_id")["value"].reindex(order)
            if values.isna().any():
                raise PtlabError(f"{COLLECTIONS[key]}: system {name!r} has no stored value of {m} for "
                                 f"{int(values.isna().sum())} of its {len(order)} queries")
            vec[m] = values.to_numpy(dtype=np.float64)
        res.systems[name] = SystemResult(name, vec, {m: mean_ci(v, seed=seed) for m, v in vec.items()},
                                         float(metrics.loc[name, f"{key}/encode_s"]),
                                         float(metrics.loc[name, f"{key}/search_s"]), len(order))
    compare(res, comparisons(alphas), seed)
    return res


def _metric(metrics: pd.DataFrame, names: list[str], column: str) -> float:
    return float(metrics.loc[names[0], column]) if column in metrics.columns and names else 0.0
