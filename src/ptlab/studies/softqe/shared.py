"""The SoftQE study's shared steps, run once in the main process before any cell (`Study.prepare`).

Collections, pseudo-documents, the teacher, the students' inputs, the document
embeddings the cells search and the latency probe are each needed by several
cells; computing them here, once, keeps workers from repeating (or racing on)
them. Every step is cached by a fingerprint of what decides it, in ptlab's
cache (collections, expansions, models, embeddings) or in the study directory
(the students' inputs, `latency.json`), so a re-run does only what is missing.
What the cells need is written to `shared.json`; a re-run with nothing to do
skips all of this.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ptlab.atomic import write_file, write_json
from ptlab.fingerprint import fingerprint
from ptlab.paths import cache_dir
from ptlab.retrieval.collections import ensure_collection
from ptlab.retrieval.encoders import encode_queries, load_encoder, resolve_encoder, set_threads
from ptlab.retrieval.evaluate import document_embeddings
from ptlab.retrieval.expansion import build_backend, expand, expanded, metered
from ptlab.retrieval.index import DenseIndex
from ptlab.retrieval.latency import measure
from ptlab.retrieval.train import train_info, train_teacher
from ptlab.studies.softqe.cells import COLLECTIONS, SHARED, STUDY_VERSION, SoftQEPlan, alpha_key
from ptlab.studies.softqe.config import SoftQEConfig

LATENCY = "latency.json"


def log(message: str) -> None:
    print(f"[softqe] {message}", file=sys.stderr, flush=True)


def teacher_key(cfg: SoftQEConfig, squad_dir: Path, teacher_ids: list[str], expansion: dict) -> str:
    return fingerprint(STUDY_VERSION, resolve_encoder(cfg.encoder), squad_dir.name, teacher_ids, expansion,
                       cfg.teacher.model_dump())


def student_keys(cfg: SoftQEConfig, teacher: str, train_ids: list[str]) -> dict[float, str]:
    """One cache key per alpha. A student's key depends on its own alpha only, so a list's
    alpha = 0.5 student is the scalar alpha = 0.5 student, and adding an alpha trains only that one."""
    return {a: fingerprint(teacher, train_ids, cfg.max_seq_length, cfg.student.with_alpha(a).model_dump())
            for a in cfg.student.alphas}


class _Steps:
    """Wall seconds of each shared step this invocation ran (cached ones show ~0), in the order they ran."""

    def __init__(self):
        self.timings: list[tuple[str, float]] = []  # a list: shared.json is written with sorted keys

    def done(self, name: str, t0: float) -> None:
        self.timings.append((name, round(time.perf_counter() - t0, 2)))


def prepare_shared(cfg: SoftQEConfig, root: Path, todo: list[SoftQEPlan]) -> None:
    """Run the shared steps the cells in `todo` need, then write `shared.json` for them."""
    if not todo:
        return  # everything is stored: nothing to prepare
    set_threads(cfg.threads)
    steps, t0 = _Steps(), time.perf_counter()
    squad_dir, squad = ensure_collection("squad", cfg.squad)
    hp_dir, hotpot = ensure_collection("hotpotqa", cfg.hotpotqa)
    steps.done("collections", t0)

    train_ids = list(squad.qrels["train"])[: cfg.train_queries]
    teacher_ids = train_ids[: cfg.teacher_queries]
    t0 = time.perf_counter()
    pseudo = {}  # every query a system or a model sees expanded: the train queries and both test splits
    with metered(cfg.expansion, build_backend(cfg.expansion, [squad, hotpot])) as llm:  # cache closed on leaving
        for queries in ({q: squad.queries[q] for q in train_ids}, squad.split_queries("test"),
                        hotpot.split_queries("test")):
            pseudo.update(expand(llm, queries, cfg.expansion))
    steps.done("expansions", t0)
    expansion = {"backend": llm.backend, "model": llm.model,
                 "spec": cfg.expansion.model_dump(exclude={"budget", "batch_size"})}

    plus = {q: expanded(squad.queries[q], pseudo[q]) for q in train_ids}
    positive = {q: next(iter(squad.qrels["train"][q])) for q in train_ids}
    models_dir = cache_dir("retrieval/models")
    t_key = teacher_key(cfg, squad_dir, teacher_ids, expansion)
    teacher_dir = models_dir / f"teacher-{t_key}"
    student_dirs = {a: models_dir / f"softqe-{key}" for a, key in student_keys(cfg, t_key, train_ids).items()}
    indexes = {p.cell.parts()[1] for p in todo}  # the document encoders the cells to run search with
    t0 = time.perf_counter()
    if "teacher" in indexes and not (teacher_dir / "modules.json").is_file():
        log(f"training the teacher on {len(teacher_ids)} (q+, passage) pairs")
        train_teacher(cfg.encoder, [(plus[q], squad.doc_text(positive[q])) for q in teacher_ids], cfg.teacher,
                      teacher_dir)
    steps.done("teacher", t0)

    cols = {"squad": (squad_dir, squad), "hotpotqa": (hp_dir, hotpot)}
    doc_encode_s, base_squad = _encode_indexes(cfg, cols, sorted(indexes), teacher_dir, steps)

    inputs = None
    missing = [p.cell.alpha for p in todo if p.cell.is_student
               and not (student_dirs[p.cell.alpha] / "modules.json").is_file()]
    if missing:
        t0 = time.perf_counter()
        inputs = _student_inputs(cfg, root, t_key, teacher_dir, squad, train_ids, plus, positive)
        steps.done("student inputs (teacher index + targets)", t0)

    if cfg.latency.enabled:
        t0 = time.perf_counter()
        _latency(cfg, root, squad_dir, squad, base_squad)
        steps.done("latency", t0)
    write_json(root / SHARED, {
        "collections": {key: {"label": COLLECTIONS[key], "dir": str(col_dir), "split": "test",
                              "queries": list(col.qrels["test"]), "documents": len(col.corpus),
                              "document_encode_s": doc_encode_s[key]}
                        for key, (col_dir, col) in cols.items()},
        "pseudo": {q: pseudo[q] for col in (squad, hotpot) for q in col.qrels["test"]},
        "train_ids": train_ids, "teacher_queries": len(teacher_ids),
        "teacher_dir": str(teacher_dir), "teacher_training": train_info(teacher_dir),
        "students": {alpha_key(a): str(d) for a, d in student_dirs.items()},
        "student_inputs": str(inputs) if inputs else None,
        "expansion": {**expansion, "accounting": llm.report(),
                      "examples": [{"query": squad.queries[q], "pseudo_document": pseudo[q]} for q in train_ids[:3]]},
        "timings_s": steps.timings, "load_average": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count(),
    })


def _encode_indexes(cfg: SoftQEConfig, cols: dict, kinds: list[str], teacher_dir: Path, steps: _Steps):
    """Document embeddings of every collection under each encoder the cells search with (cached in ptlab's
    embedding cache), so cells and workers only load them; returns (seconds spent per collection and encoder,
    the base encoder and its SQuAD index for the latency probe, or None)."""
    encoders = {"base": (resolve_encoder(cfg.encoder), cfg.encoder), "teacher": (teacher_dir.name, str(teacher_dir))}
    seconds: dict[str, dict[str, float]] = {key: {} for key in cols}
    base_squad = None
    for kind in kinds:
        t0 = time.perf_counter()
        model_key, name = encoders[kind]
        model = load_encoder(name, cfg.max_seq_length)
        for key, (col_dir, col) in cols.items():
            docs, seconds[key][kind] = document_embeddings(model, model_key, col, col_dir.name)
            if kind == "base" and key == "squad":
                base_squad = (model, DenseIndex(list(col.corpus), docs))
        steps.done(f"{kind} index", t0)
    return seconds, base_squad


def _student_inputs(cfg: SoftQEConfig, root: Path, t_key: str, teacher_dir: Path, squad, train_ids: list[str],
                    plus: dict[str, str], positive: dict[str, str]) -> Path:
    """doc(p+) and teacher(q+) for every train query, from the frozen teacher: the students' training inputs.

    The student's document route is the frozen teacher, so doc(p+) are rows of the teacher's SQuAD
    index (cached, reused by the evaluation); targets are teacher(q+). Computed once for all alphas.
    """
    path = root / "student_inputs" / f"{fingerprint(t_key, train_ids, cfg.max_seq_length)}.npz"
    if path.is_file():
        return path
    teacher = load_encoder(str(teacher_dir), cfg.max_seq_length)
    docs, _ = document_embeddings(teacher, teacher_dir.name, squad, "squad")
    row = {d: i for i, d in enumerate(squad.corpus)}
    positives = docs[[row[positive[q]] for q in train_ids]]
    targets = encode_queries(teacher, [plus[q] for q in train_ids])
    write_file(path, lambda f: np.savez(f, positives=positives, targets=targets))
    return path


def _latency(cfg: SoftQEConfig, root: Path, squad_dir: Path, squad, base_squad) -> None:
    """Per-query latency with and without the LLM (`latency.json`), measured once per study directory
    (wall-clock numbers of one machine at one moment: re-measuring would only add noise to a re-run)."""
    key = fingerprint(cfg.latency.model_dump(), cfg.encoder, cfg.max_seq_length, squad_dir.name, cfg.eval.k)
    path = root / LATENCY
    if path.is_file() and json.loads(path.read_text()).get("key") == key:
        return
    if base_squad is None:  # no base cell ran this time: load the base index for the probe
        model = load_encoder(cfg.encoder, cfg.max_seq_length)
        docs, _ = document_embeddings(model, resolve_encoder(cfg.encoder), squad, squad_dir.name)
        base_squad = (model, DenseIndex(list(squad.corpus), docs))
    log(f"timing {cfg.latency.n_queries} queries with and without {cfg.latency.llm} writing a pseudo-document")
    result = measure(cfg.latency, base_squad[0], base_squad[1], [squad.queries[q] for q in squad.qrels["test"]],
                     cfg.eval.k)
    write_json(path, {"key": key, **result})
