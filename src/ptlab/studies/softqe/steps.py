"""Running one SoftQE cell: (train the student) → evaluate the system in-domain and out-of-domain.

Runs in the study's main process (sequential executor) or in a worker
(processes, Ray); the shared steps' outputs come from `shared.json` (written by
`prepare`), and the document indexes from ptlab's embedding cache, so a cell
only loads them. A student's training is cached in ptlab's model cache by its
own fingerprint, like the teacher's. The result holds, per collection, each
measure's mean, the search timings, and every query's value of every measure
(split `<collection>/<measure>`), from which the report draws its intervals
and paired tests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ptlab.atomic import write_json
from ptlab.errors import PtlabError
from ptlab.studies.softqe.cells import SoftQEPlan, alpha_key, training_record

# retrieval's heavier modules (ir-measures, scipy, faiss, sentence-transformers) are imported where a cell runs,
# so that importing the study (`ptlab report`, the registry) stays light

TRAIN_KEYS = ("rows", "epochs", "batch_size", "learning_rate", "steps", "train_loss", "seconds")


def read_shared(plan: SoftQEPlan) -> dict:
    if not plan.shared.is_file():
        raise PtlabError(f"{plan.shared}: missing; the study's shared steps (prepare) did not run")
    return json.loads(plan.shared.read_text())


def _quiet_libraries() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def ensure_student(plan: SoftQEPlan, shared: dict, squad) -> Path:
    """The student's model folder, trained first if it is not in the cache."""
    from ptlab.retrieval.train import StudentSpec, train_student

    out = Path(shared["students"][alpha_key(plan.cell.alpha)])
    if (out / "modules.json").is_file():
        return out
    if not shared.get("student_inputs"):
        raise PtlabError(f"cell {plan.cell.cell_id}: no student inputs were prepared for {out}; run the study again")
    inputs = np.load(shared["student_inputs"], allow_pickle=False)
    queries = [squad.queries[q] for q in shared["train_ids"]]
    dev_ids = shared.get("dev_ids") or []
    dev = ([squad.queries[q] for q in dev_ids], inputs["dev_targets"], inputs["dev_positives"]) if dev_ids else None
    train_student(Path(shared["teacher_dir"]), queries, inputs["targets"], inputs["positives"],
                  StudentSpec.model_validate(plan.student), out, dev=dev)
    return out


def evaluate(plan: SoftQEPlan, shared: dict, key: str, col, query_model, index_model, index_key: str
             ) -> tuple[dict[str, float], list[dict]]:
    """This cell's system on one collection: metrics `<key>/<measure>` and per-query examples; saves the run."""
    from ptlab.retrieval.evaluate import document_embeddings, run_system, save_run
    from ptlab.retrieval.expansion import expanded
    from ptlab.retrieval.index import DenseIndex

    c = shared["collections"][key]
    qids, text = c["queries"], plan.cell.parts()[2]  # the collection's query order: intervals resample in it
    texts = [col.queries[q] if text == "raw" else expanded(col.queries[q], shared["pseudo"][q]) for q in qids]
    docs, _ = document_embeddings(index_model, index_key, col, Path(c["dir"]).name)  # cached by prepare
    ev = plan.eval
    sr, run = run_system(plan.cell.system, query_model, DenseIndex(list(col.corpus), docs), qids, texts,
                         col.qrels[c["split"]], ev["k"], ev["measures"], ev["seed"])
    path = plan.run_file(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_run(run, path)
    metrics = {f"{key}/{m}": iv.mean for m, iv in sr.means.items()}
    metrics.update({f"{key}/encode_s": sr.encode_s, f"{key}/search_s": sr.search_s,
                    f"{key}/queries_per_s": sr.queries_per_s, f"{key}/queries": float(len(qids)),
                    f"{key}/documents": float(len(col.corpus))})
    examples = [{"id": q, "split": f"{key}/{m}", "correct": bool(v > 0), "shortcut_agrees": False, "value": float(v)}
                for m, vec in sr.per_query.items() for q, v in zip(qids, vec)]
    return metrics, examples


def run_softqe_cell(plan: SoftQEPlan, events=None) -> dict:
    """Run one cell; returns what the store records. `events(cell_id, phase)` reports progress."""
    from ptlab.retrieval.beir import load_beir
    from ptlab.retrieval.encoders import load_encoder, resolve_encoder, set_threads
    from ptlab.retrieval.train import train_info

    set_threads(plan.threads)
    _quiet_libraries()
    note = (lambda phase: events(plan.cell.cell_id, phase)) if events else (lambda phase: None)
    t0 = time.perf_counter()
    shared = read_shared(plan)
    cols = {key: load_beir(Path(c["dir"])) for key, c in shared["collections"].items()}
    note("data")
    t1 = time.perf_counter()
    metrics: dict[str, float] = {}
    folders = {"base": plan.encoder, "teacher": shared["teacher_dir"]}
    if plan.cell.is_student:
        folders["student"] = str(ensure_student(plan, shared, cols["squad"]))
        info = train_info(Path(folders["student"])) or {}
        write_json(training_record(plan.root, plan.cell.system), info)
        metrics.update({f"train/{k}": float(info[k]) for k in TRAIN_KEYS if isinstance(info.get(k), (int, float))})
    note("train")
    t2 = time.perf_counter()
    query_kind, index_kind, _ = plan.cell.parts()
    query_model = load_encoder(folders[query_kind], plan.max_seq_length)
    index_model = query_model if index_kind == query_kind else load_encoder(folders[index_kind], plan.max_seq_length)
    index_key = resolve_encoder(plan.encoder) if index_kind == "base" else Path(shared["teacher_dir"]).name
    examples = []
    for key, col in cols.items():
        m, ex = evaluate(plan, shared, key, col, query_model, index_model, index_key)
        metrics.update(m)
        examples += ex
    note("eval")
    t3 = time.perf_counter()
    return {"cell": plan.cell.as_dict(), "config_hash": plan.config_hash, "metrics": metrics, "examples": examples,
            "timings": {"data_s": round(t1 - t0, 3), "train_s": round(t2 - t1, 3), "eval_s": round(t3 - t2, 3)}}
