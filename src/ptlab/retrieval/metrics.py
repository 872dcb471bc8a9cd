"""Retrieval metrics from ir-measures, per query, so systems can be compared pairwise.

Every judged query gets a value (0 when the run retrieved nothing relevant or
nothing at all), which keeps the per-query vectors of two systems aligned.
"""

from __future__ import annotations

import ir_measures
import numpy as np

from ptlab.retrieval.beir import Qrels
from ptlab.retrieval.index import Run

DEFAULT_MEASURES = ("nDCG@10", "RR@10", "R@100")


def per_query(qrels: Qrels, run: Run, measures=DEFAULT_MEASURES) -> dict[str, dict[str, float]]:
    """{measure name: {query id: value}} over every query in `qrels`."""
    parsed = [ir_measures.parse_measure(m) for m in measures]
    out = {str(m): {qid: 0.0 for qid in qrels} for m in parsed}
    run = {qid: docs for qid, docs in run.items() if qid in qrels and docs}
    for metric in ir_measures.iter_calc(parsed, qrels, run):
        if metric.query_id in qrels:
            out[str(metric.measure)][metric.query_id] = float(metric.value)
    return out


def vectors(values: dict[str, dict[str, float]], query_ids: list[str]) -> dict[str, np.ndarray]:
    """Per-measure arrays in a fixed query order (for paired statistics)."""
    return {m: np.array([v[q] for q in query_ids], dtype=np.float64) for m, v in values.items()}
