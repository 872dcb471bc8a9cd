"""`ptlab study softqe`: base, base + LLM expansion, teacher and SoftQE students,
in-domain (SQuAD) and out-of-domain (HotpotQA), with latency and a report.

`student.alpha` may be a list: each value trains its own student from the same
teacher on the same raw queries (alpha = 0 is the contrastive-only baseline, the
paper's ablation), and the report compares each with the base encoder and with
the alpha = 0 student.

Every expensive step is cached by a fingerprint of what decides it
(collections, expansions, trained encoders, document embeddings), so a re-run
with the same config only re-scores; a changed knob redoes only what depends on
it (adding an alpha trains only that student).
"""

from __future__ import annotations

import json
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

STUDY_VERSION = "v2"  # v2: students learn from precomputed doc(p+) (the teacher index's vectors)
FIXED_SYSTEMS = ("base", "base + LLM exp.", "teacher (q+)", "teacher (q)")


def student_name(alpha: float) -> str:
    return f"SoftQE α={alpha:g}"


def systems(alphas: list[float]) -> list[str]:
    """The report's systems, in order: the four fixed ones, then one SoftQE student per alpha."""
    return [*FIXED_SYSTEMS, *(student_name(a) for a in alphas)]


def comparisons(alphas: list[float]) -> list[tuple[str, str]]:
    """Paired comparisons: every student vs base, then every distilled student vs the alpha = 0 student
    (the same training without distillation) -- or vs its starting point, teacher (q), when 0 is not run."""
    ref = student_name(0.0) if 0.0 in alphas else "teacher (q)"
    pairs = [(student_name(a), "base") for a in alphas]
    pairs += [(student_name(a), ref) for a in alphas if student_name(a) != ref]
    return pairs


class EvalSpec(Strict):
    k: int = Field(100, ge=10, description="documents retrieved per query")
    measures: list[str] = ["nDCG@10", "RR@10", "R@100"]
    seed: int = 0


class SoftQEConfig(Strict):
    encoder: str = Field("all-minilm-l6-v2", description="base sentence-transformers encoder")
    max_seq_length: int = Field(256, ge=16, description="truncation when encoding documents for the index")
    squad: SquadSpec = SquadSpec()
    hotpotqa: HotpotSpec = HotpotSpec()
    train_queries: int | None = Field(2400, ge=8, description="SQuAD train queries the students learn from (None: all)")
    teacher_queries: int | None = Field(
        512, ge=8, description="the first N train queries also train the teacher (its passages are encoded every "
        "step, so it costs ~10x a student step); None: all train queries")
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
    data["train_queries"] = 640
    data["teacher_queries"] = 128
    data["latency"].update(n_queries=2, max_new_tokens=32)
    return SoftQEConfig.model_validate(data)


def slug(text: str) -> str:
    """A file-name form of a system name; distinct names stay distinct ("teacher (q+)" vs "teacher (q)")."""
    text = text.lower().replace("+", " plus ").replace("α", " alpha ")
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


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
    teacher_ids: list[str]
    pseudo: dict[str, str]
    expansion: dict
    teacher_dir: Path
    student_dirs: dict[float, Path]  # alpha -> model directory, in config order


def _timer(timings: dict, log: Callable[[str], None]):
    def step(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 2)
        log(f"[softqe] {name}: {timings[name]:.1f}s")

    return step


def teacher_key(cfg: SoftQEConfig, squad_dir: Path, teacher_ids: list[str], expansion: dict) -> str:
    return fingerprint(STUDY_VERSION, resolve_encoder(cfg.encoder), squad_dir.name, teacher_ids, expansion,
                       cfg.teacher.model_dump())


def student_keys(cfg: SoftQEConfig, teacher: str, train_ids: list[str]) -> dict[float, str]:
    """One cache key per alpha. A student's key depends on its own alpha only, so a list's
    alpha = 0.5 student is the scalar alpha = 0.5 student, and adding an alpha trains only that one."""
    return {a: fingerprint(teacher, train_ids, cfg.max_seq_length, cfg.student.with_alpha(a).model_dump())
            for a in cfg.student.alphas}


def prepare(cfg: SoftQEConfig, log: Callable[[str], None] = print, timings: dict | None = None) -> Prepared:
    """Build the collections, expand queries, train the teacher and the students (each step cached)."""
    set_threads(cfg.threads)
    step = _timer(timings if timings is not None else {}, log)
    t0 = time.perf_counter()
    squad_dir, squad = ensure_collection("squad", cfg.squad)
    hp_dir, hotpot = ensure_collection("hotpotqa", cfg.hotpotqa)
    step("collections", t0)

    train_ids = list(squad.qrels["train"])[: cfg.train_queries]
    teacher_ids = train_ids[: cfg.teacher_queries]
    t0 = time.perf_counter()
    llm = metered(cfg.expansion, build_backend(cfg.expansion, [squad, hotpot]))
    pseudo = expand(llm, {q: squad.queries[q] for q in train_ids}, cfg.expansion)
    pseudo.update(expand(llm, squad.split_queries("test"), cfg.expansion))
    pseudo.update(expand(llm, hotpot.split_queries("test"), cfg.expansion))
    step("expansions", t0)
    expansion = {"backend": llm.backend, "model": llm.model, "spec": cfg.expansion.model_dump(exclude={"budget", "batch_size"})}

    plus = {q: expanded(squad.queries[q], pseudo[q]) for q in train_ids}
    positive = {q: next(iter(squad.qrels["train"][q])) for q in train_ids}
    models_dir = cache_dir("retrieval/models")
    t_key = teacher_key(cfg, squad_dir, teacher_ids, expansion)
    teacher_dir = models_dir / f"teacher-{t_key}"
    t0 = time.perf_counter()
    if not (teacher_dir / "modules.json").is_file():
        log(f"[softqe] training the teacher on {len(teacher_ids)} (q+, passage) pairs")
        train_teacher(cfg.encoder, [(plus[q], squad.doc_text(positive[q])) for q in teacher_ids], cfg.teacher,
                      teacher_dir)
    step("teacher", t0)

    student_dirs = {a: models_dir / f"softqe-{key}" for a, key in student_keys(cfg, t_key, train_ids).items()}
    missing = [a for a, d in student_dirs.items() if not (d / "modules.json").is_file()]
    if missing:
        # The student's document route is the frozen teacher: doc(p+) are rows of the teacher's
        # SQuAD index (computed once, cached, reused by the evaluation); targets are teacher(q+).
        t0 = time.perf_counter()
        teacher = load_encoder(str(teacher_dir), cfg.max_seq_length)
        docs, _ = document_embeddings(teacher, teacher_dir.name, squad, squad_dir.name)
        row = {d: i for i, d in enumerate(squad.corpus)}
        positives = docs[[row[positive[q]] for q in train_ids]]
        targets = encode_queries(teacher, [plus[q] for q in train_ids])
        step("student inputs (teacher index + targets)", t0)
        queries = [squad.queries[q] for q in train_ids]
        for a in missing:
            t0 = time.perf_counter()
            log(f"[softqe] training the SoftQE student alpha={a:g} on {len(train_ids)} raw queries")
            train_student(teacher_dir, queries, targets, positives, cfg.student.with_alpha(a), student_dirs[a])
            step(f"student α={a:g}", t0)
    prepared = Prepared(squad, squad_dir, hotpot, hp_dir, train_ids, teacher_ids, pseudo, expansion, teacher_dir,
                        student_dirs)
    prepared.expansion["accounting"] = llm.report()
    return prepared


def train_info(model_dir: Path) -> dict | None:
    path = model_dir / "train_info.json"
    return json.loads(path.read_text()) if path.is_file() else None


def run_study(cfg: SoftQEConfig, out: Path, log: Callable[[str], None] = print) -> dict:
    """Run the whole study; write results.json, runs/ and the report under `out`; return the summary."""
    from ptlab.retrieval.report import write_report

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    step = _timer(timings, log)
    p = prepare(cfg, log, timings)
    squad, pseudo = p.squad, p.pseudo
    test_sets = {"SQuAD (in-domain)": (p.squad, p.squad_dir, "test"), "HotpotQA (out-of-domain)": (p.hotpot, p.hotpot_dir, "test")}
    base_key = resolve_encoder(cfg.encoder)
    teacher = load_encoder(str(p.teacher_dir), cfg.max_seq_length)
    students = {a: load_encoder(str(d), cfg.max_seq_length) for a, d in p.student_dirs.items()}
    base = load_encoder(cfg.encoder, cfg.max_seq_length)
    alphas = list(p.student_dirs)

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
        teacher_docs, res.doc_encode_s["teacher"] = document_embeddings(teacher, p.teacher_dir.name, col, col_dir.name)
        doc_ids = list(col.corpus)
        base_index, teacher_index = DenseIndex(doc_ids, base_docs), DenseIndex(doc_ids, teacher_docs)
        latency_index = latency_index or base_index
        plan = [("base", base, base_index, raw), ("base + LLM exp.", base, base_index, exp),
                ("teacher (q+)", teacher, teacher_index, exp), ("teacher (q)", teacher, teacher_index, raw)]
        plan += [(student_name(a), students[a], teacher_index, raw) for a in alphas]
        for name, model, index, texts in plan:
            sr, run = run_system(name, model, index, qids, texts, col.qrels[split], cfg.eval.k, cfg.eval.measures,
                                 cfg.eval.seed)
            res.systems[name] = sr
            save_run(run, runs_dir / f"{slug(label)}__{slug(name)}.trec")
        compare(res, comparisons(alphas), cfg.eval.seed)
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
                      "examples": [{"query": squad.queries[q], "pseudo_document": pseudo[q]} for q in p.train_ids[:3]]},
        "models": {"teacher": str(p.teacher_dir), "students": {f"{a:g}": str(d) for a, d in p.student_dirs.items()}},
        "training": {"teacher": train_info(p.teacher_dir),
                     "students": {f"{a:g}": train_info(d) for a, d in p.student_dirs.items()},
                     "train_queries": len(p.train_ids), "teacher_queries": len(p.teacher_ids)},
        "collections": {k: {"dir": str(v[1]), "queries": results[k].n_queries, "documents": results[k].n_docs}
                        for k, v in test_sets.items()},
        "latency": latency,
        "load_average": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "timings_s": timings,
    }
    write_report(out, results, summary)
    return summary
