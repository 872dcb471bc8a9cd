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
from ptlab.errors import PtlabError
from ptlab.fingerprint import fingerprint
from ptlab.paths import cache_dir
from ptlab.retrieval.collections import ensure_collection
from ptlab.retrieval.encoders import encode_queries, load_encoder, resolve_encoder, set_threads
from ptlab.retrieval.evaluate import document_embeddings
from ptlab.retrieval.expansion import build_backend, expand, expanded, knowledge_table, metered, request_for
from ptlab.retrieval.index import DenseIndex
from ptlab.retrieval.latency import measure
from ptlab.retrieval.train import train_info, train_teacher
from ptlab.studies.softqe.cells import COLLECTIONS, DOMAINS, SHARED, STUDY_VERSION, TRAIN_SET, SoftQEPlan, alpha_key
from ptlab.studies.softqe.config import SoftQEConfig
from ptlab.train.progress import TrainProgress

LATENCY = "latency.json"


def log(message: str) -> None:
    print(f"[softqe] {message}", file=sys.stderr, flush=True)


def teacher_key(cfg: SoftQEConfig, squad_dir: Path, teacher_ids: list[str], dev_ids: list[str], expansion: dict
                ) -> str:
    return fingerprint(STUDY_VERSION, resolve_encoder(cfg.encoder), squad_dir.name, teacher_ids, dev_ids, expansion,
                       cfg.teacher.model_dump())


def student_keys(cfg: SoftQEConfig, teacher: str, train_ids: list[str], dev_ids: list[str]) -> dict[float, str]:
    """One cache key per alpha. A student's key depends on its own alpha only, so a list's
    alpha = 0.5 student is the scalar alpha = 0.5 student, and adding an alpha trains only that one."""
    return {a: fingerprint(teacher, train_ids, dev_ids, cfg.max_seq_length, cfg.student.with_alpha(a).model_dump())
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
    cols = {key: ensure_collection(key, getattr(cfg, key)) for key in COLLECTIONS}  # key -> (folder, collection)
    squad = cols["squad"][1]
    steps.done("collections", t0)

    train_ids = list(squad.qrels["train"])[: cfg.train_queries]
    teacher_ids = train_ids[: cfg.teacher_queries]
    dev_ids = list(squad.qrels.get("dev", {}))
    t0 = time.perf_counter()
    # every query a system or a model sees expanded: the train and dev queries, and every collection's test split
    sets = {TRAIN_SET: {q: squad.queries[q] for q in train_ids}, "SQuAD dev": {q: squad.queries[q] for q in dev_ids},
            **{f"{COLLECTIONS[k]} test": col.split_queries("test") for k, (_, col) in cols.items()}}
    pseudo, accounting = _expansions(cfg, sets, [col for _, col in cols.values()])
    steps.done("expansions", t0)
    expansion = {"backend": accounting["backend"], "model": accounting["model"],
                 "spec": cfg.expansion.model_dump(exclude={"budget", "batch_size"})}

    plus = {q: expanded(squad.queries[q], pseudo[q]) for q in [*train_ids, *dev_ids]}
    positive = {q: next(iter(squad.qrels[split][q])) for split in ("train", "dev") for q in squad.qrels.get(split, {})}
    models_dir = cache_dir("retrieval/models")
    t_key = teacher_key(cfg, cols["squad"][0], teacher_ids, dev_ids, expansion)
    teacher_dir = models_dir / f"teacher-{t_key}"
    student_dirs = {a: models_dir / f"softqe-{key}" for a, key in student_keys(cfg, t_key, train_ids, dev_ids).items()}
    indexes = {p.cell.parts()[1] for p in todo}  # the document encoders the cells to run search with
    t0 = time.perf_counter()
    if "teacher" in indexes and not (teacher_dir / "modules.json").is_file():
        log(f"training the teacher on {len(teacher_ids)} (q+, passage) pairs, {len(dev_ids)} held out")
        pairs = {q: (plus[q], squad.doc_text(positive[q])) for q in [*teacher_ids, *dev_ids]}
        train_teacher(cfg.encoder, [pairs[q] for q in teacher_ids], cfg.teacher, teacher_dir,
                      dev_pairs=[pairs[q] for q in dev_ids] or None)
    steps.done("teacher", t0)

    doc_encode_s, base_squad = _encode_indexes(cfg, cols, sorted(indexes), teacher_dir, steps)

    inputs = None
    missing = [p.cell.alpha for p in todo if p.cell.is_student
               and not (student_dirs[p.cell.alpha] / "modules.json").is_file()]
    if missing:
        t0 = time.perf_counter()
        inputs = _student_inputs(cfg, root, t_key, teacher_dir, squad, train_ids, dev_ids, plus, positive)
        steps.done("student inputs (teacher index + targets)", t0)

    t0 = time.perf_counter()
    leaks = _leak_checks(cfg, cols, train_ids, pseudo)
    steps.done("leak check", t0)
    if cfg.latency.enabled:
        t0 = time.perf_counter()
        _latency(cfg, root, cols["squad"][0], squad, base_squad)
        steps.done("latency", t0)
    write_json(root / SHARED, {
        "collections": {key: {"label": COLLECTIONS[key], "domain": DOMAINS[key], "dir": str(col_dir),
                              "split": "test", "queries": list(col.qrels["test"]), "documents": len(col.corpus),
                              "document_encode_s": doc_encode_s[key]}
                        for key, (col_dir, col) in cols.items()},
        "pseudo": {q: pseudo[q] for _, col in cols.values() for q in col.qrels["test"]},
        "train_ids": train_ids, "dev_ids": dev_ids, "teacher_queries": len(teacher_ids),
        "teacher_dir": str(teacher_dir), "teacher_training": train_info(teacher_dir),
        "students": {alpha_key(a): str(d) for a, d in student_dirs.items()},
        "student_inputs": str(inputs) if inputs else None,
        "expansion": {**expansion, "accounting": accounting,
                      "examples": [{"query": squad.queries[q], "pseudo_document": pseudo[q]} for q in train_ids[:3]]},
        "leak": leaks,
        "timings_s": steps.timings, "load_average": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count(),
    })


def _expansions(cfg: SoftQEConfig, sets: dict[str, dict[str, str]], collections: list) -> tuple[dict, dict]:
    """Pseudo-documents of every query in `sets` (label -> {query id: text}), through the expansion cache, with a
    progress bar; returns (query id -> pseudo-document, the accounting: backend, model, calls paid and cached,
    tokens, and seconds per set). A query id that two sets give different texts is refused."""
    texts: dict[str, str] = {}
    for label, queries in sets.items():
        for q, text in queries.items():
            if texts.setdefault(q, text) != text:
                raise PtlabError(f"query id {q!r} names two different queries ({label} and another set)")
    bar = TrainProgress()
    pseudo, seconds = {}, {}
    with metered(cfg.expansion, build_backend(cfg.expansion, collections)) as llm:  # cache closed on leaving
        for label, queries in sets.items():
            todo = {q: t for q, t in queries.items() if q not in pseudo}
            if not todo:
                continue
            task, t0 = bar.add_task(f"expanding {label}", len(todo)), time.perf_counter()
            pseudo.update(expand(llm, todo, cfg.expansion, progress=_progress(bar, task, label)))
            seconds[label] = round(time.perf_counter() - t0, 2)
        bar.stop()
        accounting = {"backend": llm.backend, "model": llm.model, **llm.report(), "seconds": seconds}
    return pseudo, accounting


def _progress(bar: TrainProgress, task, label: str):
    """`expand`'s progress callback: the bar on a terminal, one line per batch elsewhere."""
    seen = [0]

    def update(done: int, total: int) -> None:
        bar.advance(task, done - seen[0])
        seen[0] = done
        if bar.progress is None:
            log(f"expanding {label}: {done}/{total}")

    return update


def _leak_checks(cfg: SoftQEConfig, cols: dict, train_ids: list[str], pseudo: dict[str, str]) -> dict:
    """How much of each pseudo-document is copied from its query's relevant passage(s), against random
    passages (`ptlab.retrieval.leak`): for the study's expansions and, as the reference that leaks by
    construction, the oracle's; on the SQuAD train queries (what the teacher distils) and every test split."""
    from ptlab.retrieval.leak import leak_check
    from ptlab.retrieval.simulated import SimulatedExpander

    squad = cols["squad"][1]
    groups = {TRAIN_SET: (squad, "train", train_ids),
              **{COLLECTIONS[k]: (col, "test", list(col.qrels["test"])) for k, (_, col) in cols.items()}}
    oracle = SimulatedExpander(knowledge_table([col for _, col in cols.values()], cfg.expansion.prompt),
                               cfg.expansion.oracle)
    out = {}
    for label, (col, split, qids) in groups.items():
        queries = {q: col.queries[q] for q in qids}
        gold = {q: [col.doc_text(d) for d in col.qrels[split][q]] for q in qids}
        corpus = {d: col.doc_text(d) for d in col.corpus}
        written = {q: r.text for q, r in zip(qids, oracle.generate([request_for(queries[q], cfg.expansion)
                                                                       for q in qids]))}
        sources = {"oracle (upper bound)": written} if cfg.expansion.is_oracle else {
            "study": {q: pseudo[q] for q in qids}, "oracle (upper bound)": written}
        out[label] = {name: leak_check(exp, queries, gold, corpus, seed=cfg.eval.seed).as_dict()
                      for name, exp in sources.items()}
    return out


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
                    dev_ids: list[str], plus: dict[str, str], positive: dict[str, str]) -> Path:
    """doc(p+) and teacher(q+) for every train and dev query, from the frozen teacher: the students' training
    inputs and their held-out learning curve's.

    The student's document route is the frozen teacher, so doc(p+) are rows of the teacher's SQuAD
    index (cached, reused by the evaluation); targets are teacher(q+). Computed once for all alphas.
    """
    path = root / "student_inputs" / f"{fingerprint(t_key, train_ids, dev_ids, cfg.max_seq_length)}.npz"
    if path.is_file():
        return path
    teacher = load_encoder(str(teacher_dir), cfg.max_seq_length)
    docs, _ = document_embeddings(teacher, teacher_dir.name, squad, "squad")
    row = {d: i for i, d in enumerate(squad.corpus)}
    arrays = {}
    for split, ids in (("", train_ids), ("dev_", dev_ids)):
        if ids:
            arrays[f"{split}positives"] = docs[[row[positive[q]] for q in ids]]
            arrays[f"{split}targets"] = encode_queries(teacher, [plus[q] for q in ids])
    write_file(path, lambda f: np.savez(f, **arrays))
    return path


def _latency(cfg: SoftQEConfig, root: Path, squad_dir: Path, squad, base_squad) -> None:
    """Per-query latency with and without the LLM (`latency.json`), measured once per study directory
    (wall-clock numbers of one machine at one moment: re-measuring would only add noise to a re-run)."""
    key = fingerprint(cfg.latency.model_dump(), cfg.encoder, cfg.max_seq_length, squad_dir.name, cfg.eval.k,
                      cfg.expansion.prompt)
    path = root / LATENCY
    if path.is_file() and json.loads(path.read_text()).get("key") == key:
        return
    if base_squad is None:  # no base cell ran this time: load the base index for the probe
        model = load_encoder(cfg.encoder, cfg.max_seq_length)
        docs, _ = document_embeddings(model, resolve_encoder(cfg.encoder), squad, squad_dir.name)
        base_squad = (model, DenseIndex(list(squad.corpus), docs))
    log(f"timing {cfg.latency.n_queries} queries with and without {cfg.latency.llm} writing a pseudo-document")
    result = measure(cfg.latency, base_squad[0], base_squad[1], [squad.queries[q] for q in squad.qrels["test"]],
                     cfg.eval.k, cfg.expansion.prompt)
    write_json(path, {"key": key, **result})
