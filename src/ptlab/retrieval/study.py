"""`ptlab study softqe`: base, base + LLM expansion, teacher and SoftQE student,
in-domain (SQuAD) and out-of-domain (HotpotQA), with latency and a report.

Every expensive step is cached by a fingerprint of what decides it
(collections, expansions, trained encoders, document embeddings), so a re-run
with the same config only re-scores; a changed knob redoes only what depends on it.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pydantic import Field

from ptlab.config import Strict
from ptlab.fingerprint import fingerprint
from ptlab.paths import cache_dir
from ptlab.retrieval.beir import Collection
from ptlab.retrieval.collections import HotpotSpec, SquadSpec, ensure_collection
from ptlab.retrieval.encoders import encode_queries, load_encoder, resolve_encoder
from ptlab.retrieval.evaluate import CollectionResult, compare, document_embeddings, run_system, save_run
from ptlab.retrieval.expansion import ExpansionSpec, build_backend, expand, expanded, metered
from ptlab.retrieval.index import DenseIndex
from ptlab.retrieval.latency import LatencySpec, measure
from ptlab.retrieval.train import StudentSpec, TrainSpec, train_student, train_teacher

STUDY_VERSION = "v1"
SYSTEMS = ("base", "base + LLM exp.", "teacher (q+)", "teacher (q)", "SoftQE (q)")
COMPARISONS = [
    ("SoftQE (q)", "base"),
    ("SoftQE (q)", "teacher (q)"),
    ("SoftQE (q)", "base + LLM exp."),
    ("teacher (q+)", "SoftQE (q)"),
]


class EvalSpec(Strict):
    k: int = Field(100, ge=10, description="documents retrieved per query")
    measures: list[str] = ["nDCG@10", "RR@10", "R@100"]
    seed: int = 0


class SoftQEConfig(Strict):
    encoder: str = Field("all-minilm-l6-v2", description="base sentence-transformers encoder")
    max_seq_length: int = Field(256, ge=16, description="truncation when encoding documents for the index")
    squad: SquadSpec = SquadSpec()
    hotpotqa: HotpotSpec = HotpotSpec()
    train_queries: int | None = Field(384, ge=8, description="SQuAD train queries used (None: all)")
    expansion: ExpansionSpec = ExpansionSpec()
    teacher: TrainSpec = TrainSpec()
    student: StudentSpec = StudentSpec()
    eval: EvalSpec = EvalSpec()
    latency: LatencySpec = LatencySpec()
    threads: int = Field(2, ge=1, description="torch / FAISS CPU threads")


def quick(cfg: SoftQEConfig) -> SoftQEConfig:
    """A few-minute variant of `cfg`: small splits, few train queries, one short latency probe."""
    data = cfg.model_dump()
    data["squad"].update(n_test=150, n_dev=50, max_articles=6)
    data["hotpotqa"].update(n_queries=60)
    data["train_queries"] = 192
    data["latency"].update(n_queries=2, max_new_tokens=32)
    return SoftQEConfig.model_validate(data)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def set_threads(n: int) -> None:
    import faiss
    import torch

    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass
class Prepared:
    """Everything the evaluation needs: collections, pseudo-documents and the trained encoders."""

    squad: Collection
    squad_dir: Path
    hotpot: Collection
    hotpot_dir: Path
    train_ids: list[str]
    pseudo: dict[str, str]
    expansion: dict
    teacher_dir: Path
    student_dir: Path


def _timer(timings: dict, log: Callable[[str], None]):
    def step(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 2)
        log(f"[softqe] {name}: {timings[name]:.1f}s")

    return step


def prepare(cfg: SoftQEConfig, log: Callable[[str], None] = print, timings: dict | None = None) -> Prepared:
    """Build the collections, expand queries, train teacher and student (each step cached)."""
    set_threads(cfg.threads)
    step = _timer(timings if timings is not None else {}, log)
    t0 = time.perf_counter()
    squad_dir, squad = ensure_collection("squad", cfg.squad)
    hp_dir, hotpot = ensure_collection("hotpotqa", cfg.hotpotqa)
    step("collections", t0)

    train_ids = list(squad.qrels["train"])[: cfg.train_queries]
    t0 = time.perf_counter()
    llm = metered(cfg.expansion, build_backend(cfg.expansion, [squad, hotpot]))
    pseudo = expand(llm, {q: squad.queries[q] for q in train_ids}, cfg.expansion)
    pseudo.update(expand(llm, squad.split_queries("test"), cfg.expansion))
    pseudo.update(expand(llm, hotpot.split_queries("test"), cfg.expansion))
    step("expansions", t0)
    expansion = {"backend": llm.backend, "model": llm.model, "spec": cfg.expansion.model_dump(exclude={"budget", "batch_size"})}

    positives = [squad.doc_text(next(iter(squad.qrels["train"][q]))) for q in train_ids]
    plus = [expanded(squad.queries[q], pseudo[q]) for q in train_ids]
    models_dir = cache_dir("retrieval/models")
    teacher_key = fingerprint(STUDY_VERSION, resolve_encoder(cfg.encoder), squad_dir.name, train_ids, expansion,
                              cfg.teacher.model_dump())
    teacher_dir = models_dir / f"teacher-{teacher_key}"
    t0 = time.perf_counter()
    if not (teacher_dir / "modules.json").is_file():
        log(f"[softqe] training the teacher on {len(plus)} (q+, passage) pairs")
        train_teacher(cfg.encoder, list(zip(plus, positives)), cfg.teacher, teacher_dir)
    step("teacher", t0)

    student_dir = models_dir / f"softqe-{fingerprint(teacher_key, cfg.student.model_dump())}"
    t0 = time.perf_counter()
    if not (student_dir / "modules.json").is_file():
        log(f"[softqe] training the SoftQE student on {len(train_ids)} raw queries (alpha={cfg.student.alpha})")
        targets = encode_queries(load_encoder(str(teacher_dir), cfg.max_seq_length), plus)
        train_student(teacher_dir, [squad.queries[q] for q in train_ids], positives, targets, cfg.student, student_dir)
    step("student", t0)
    prepared = Prepared(squad, squad_dir, hotpot, hp_dir, train_ids, pseudo, expansion, teacher_dir, student_dir)
    prepared.expansion["accounting"] = llm.report()
    return prepared


def run_study(cfg: SoftQEConfig, out: Path, log: Callable[[str], None] = print) -> dict:
    """Run the whole study; write results.json, runs/ and the report under `out`; return the summary."""
    from ptlab.retrieval.report import write_report

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    step = _timer(timings, log)
    p = prepare(cfg, log, timings)
    squad, pseudo = p.squad, p.pseudo
    teacher_dir, student_dir, train_ids = p.teacher_dir, p.student_dir, p.train_ids
    test_sets = {"SQuAD (in-domain)": (p.squad, p.squad_dir, "test"), "HotpotQA (out-of-domain)": (p.hotpot, p.hotpot_dir, "test")}
    base_key = resolve_encoder(cfg.encoder)
    teacher = load_encoder(str(teacher_dir), cfg.max_seq_length)
    student = load_encoder(str(student_dir), cfg.max_seq_length)
    base = load_encoder(cfg.encoder, cfg.max_seq_length)

    results: dict[str, CollectionResult] = {}
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    latency_index = None
    for label, (col, col_dir, split) in test_sets.items():
        t0 = time.perf_counter()
        qids = list(col.qrels[split])
        raw = [col.queries[q] for q in qids]
        exp = [expanded(col.queries[q], pseudo[q]) for q in qids]
        res = CollectionResult(label, len(qids), len(col.corpus))
        base_docs, res.doc_encode_s["base"] = document_embeddings(base, base_key, col, col_dir.name)
        teacher_docs, res.doc_encode_s["teacher"] = document_embeddings(teacher, teacher_dir.name, col, col_dir.name)
        doc_ids = list(col.corpus)
        base_index, teacher_index = DenseIndex(doc_ids, base_docs), DenseIndex(doc_ids, teacher_docs)
        latency_index = latency_index or base_index
        plan = [("base", base, base_index, raw), ("base + LLM exp.", base, base_index, exp),
                ("teacher (q+)", teacher, teacher_index, exp), ("teacher (q)", teacher, teacher_index, raw),
                ("SoftQE (q)", student, teacher_index, raw)]
        for name, model, index, texts in plan:
            sr, run = run_system(name, model, index, qids, texts, col.qrels[split], cfg.eval.k, cfg.eval.measures,
                                 cfg.eval.seed)
            res.systems[name] = sr
            save_run(run, runs_dir / f"{slug(label)}__{slug(name)}.trec")
        compare(res, COMPARISONS, cfg.eval.seed)
        results[label] = res
        step(f"evaluate {label}", t0)

    latency = None
    if cfg.latency.enabled:
        t0 = time.perf_counter()
        latency = measure(cfg.latency, base, latency_index, [squad.queries[q] for q in squad.qrels["test"]], cfg.eval.k)
        step("latency", t0)
    timings["total"] = round(time.perf_counter() - t_start, 2)
    summary = {
        "config": cfg.model_dump(),
        "expansion": {**p.expansion,
                      "examples": [{"query": squad.queries[q], "pseudo_document": pseudo[q]} for q in train_ids[:3]]},
        "models": {"teacher": str(teacher_dir), "student": str(student_dir)},
        "collections": {k: {"dir": str(v[1]), "queries": results[k].n_queries, "documents": results[k].n_docs}
                        for k, v in test_sets.items()},
        "latency": latency,
        "timings_s": timings,
    }
    write_report(out, results, summary)
    return summary
