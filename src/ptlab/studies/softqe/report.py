"""The SoftQE study's report: report.md, report.html, figure.png, table.md and results.json.

Sections: findings (each distilled student against the same training without
distillation, and against the base encoder), the training of each encoder,
one table per collection (every measure in points with 95% bootstrap
intervals, queries/s) with its paired differences, latency with and without
the LLM at query time, timings, and the figure. `table.md` (the first measure,
every system, both collections) is what `ptlab study` / `ptlab report` print.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ptlab.atomic import write_json, write_text
from ptlab.report.document import Document, _md_table
from ptlab.retrieval.evaluate import CollectionResult
from ptlab.studies.softqe.analysis import SoftQEResults, load
from ptlab.studies.softqe.cells import COLLECTIONS
from ptlab.studies.softqe.figures import systems_figure

ALPHA_TEXT = ("SoftQE α=a: the query encoder starts from the teacher and learns raw queries with "
              "a·MSE(student(q), teacher(q+)) + (1−a)·contrastive(student(q), doc(p+)); documents stay the teacher's. "
              "α=0 is the same training without distillation (the fair baseline); α=1 is distillation only.")


def _fmt(iv, scale: float = 100.0) -> str:
    return f"{iv.mean * scale:.1f} [{iv.low * scale:.1f}, {iv.high * scale:.1f}]"


def _diff(c) -> str:
    return f"{c.diff.mean * 100:+.1f} [{c.diff.low * 100:+.1f}, {c.diff.high * 100:+.1f}] p={c.p_value:.3g}"


def _llm(name: str) -> str:
    return "yes" if "+" in name else "no"


def results_dict(results: dict[str, CollectionResult]) -> dict:
    return {label: {
        "queries": res.n_queries, "documents": res.n_docs, "document_encode_s": res.doc_encode_s,
        "systems": {name: {"metrics": {m: {"mean": iv.mean, "low": iv.low, "high": iv.high} for m, iv in sr.means.items()},
                           "encode_s": sr.encode_s, "search_s": sr.search_s, "queries_per_s": sr.queries_per_s}
                    for name, sr in res.systems.items()},
        "comparisons": {pair: {m: {"diff": c.diff.mean, "low": c.diff.low, "high": c.diff.high, "p_value": c.p_value}
                               for m, c in per.items()}
                        for pair, per in res.comparisons.items()},
    } for label, res in results.items()}


def headline_table(results: dict[str, CollectionResult]) -> pd.DataFrame:
    """Every system's first measure on every collection, in points with its interval."""
    measure = first_measure(results)
    names = list(dict.fromkeys(n for res in results.values() for n in res.systems))
    rows = {"system": names, "LLM at query time": [_llm(n) for n in names]}
    for label, res in results.items():
        rows[f"{label} {measure}"] = [_fmt(res.systems[n].means[measure]) if n in res.systems else "–" for n in names]
    return pd.DataFrame(rows)


def first_measure(results: dict[str, CollectionResult]) -> str:
    return next(iter(next(iter(next(iter(results.values())).systems.values())).means))


def findings(results: dict[str, CollectionResult]) -> pd.DataFrame:
    """Each paired comparison on the first measure, read at p < 0.05: better, worse, or no detectable difference."""
    rows = []
    for label, res in results.items():
        for pair, per in res.comparisons.items():
            measure, c = next(iter(per.items()))
            verdict = ("no detectable difference" if c.p_value >= 0.05
                       else "better" if c.diff.mean > 0 else "worse")
            rows.append({"collection": label, "a vs b": pair, f"{measure} a − b (points)": _diff(c), "a is": verdict})
    return pd.DataFrame(rows)


def training_table(training: dict) -> pd.DataFrame:
    rows = [("teacher (q+, p+)", training.get("teacher"))]
    rows += [(f"SoftQE α={a}", info) for a, info in training.get("students", {}).items()]
    out = []
    for name, info in rows:
        if not info:
            out.append({"model": name, "rows": "(no train_info.json: trained elsewhere)"})
            continue
        out.append({"model": name, "rows": str(info.get("rows", info.get("pairs"))), "epochs": f"{info['epochs']:g}",
                    "batch": str(info["batch_size"]), "lr": f"{info['learning_rate']:g}", "steps": str(info["steps"]),
                    "mean train loss": f"{info['train_loss']:.3f}", "train s": f"{info['seconds']:.0f}"})
    return pd.DataFrame(out).fillna("")


def _collection(doc: Document, res: CollectionResult) -> None:
    measures = list(next(iter(res.systems.values())).means)
    doc.heading(f"{res.collection}: {res.n_queries} queries, {res.n_docs} documents")
    doc.table(pd.DataFrame([{"system": name, "LLM at query time": _llm(name),
                             **{m: _fmt(sr.means[m]) for m in measures}, "queries/s": f"{sr.queries_per_s:.0f}"}
                            for name, sr in res.systems.items()]))
    if res.comparisons:
        doc.text("Paired differences (a - b, points, 95% paired-bootstrap interval; paired t-test p):")
        doc.table(pd.DataFrame([{"a vs b": pair, **{m: _diff(per[m]) for m in measures}}
                                for pair, per in res.comparisons.items()]))


def _latency(doc: Document, lat: dict) -> None:
    doc.heading("Latency per query (batch 1, median wall clock)")
    doc.table(pd.DataFrame({"path": ["encode + search (base, SoftQE: no LLM)",
                                     f"LLM writes {lat['llm_new_tokens']} tokens ({lat['llm']})",
                                     "LLM + encode expanded query + search"],
                            "ms/query": [f"{lat['without_llm_ms']:.1f}", f"{lat['llm_generate_ms']:.0f}",
                                         f"{lat['with_llm_ms']:.0f}"]}))
    doc.text(f"Measured with {lat['n_queries']} queries; 1-minute load average {lat.get('load_average', 'n/a')} "
             f"on {lat.get('cpu_count', '?')} CPUs (a busy shared machine inflates these).")
    doc.text(f"Example real {lat['llm']} pseudo-document for \"{lat['example']['query']}\": "
             f"\"{lat['example']['pseudo_document'][:300]}\"")


def build_document(r: SoftQEResults) -> Document:
    doc = Document("SoftQE study")
    exp = r.shared.get("expansion", {})
    simulated = str(exp.get("backend", "")).startswith("simulated")
    doc.text("Query encoders compared on the same queries; metrics in points (x100) with 95% bootstrap intervals. "
             f"Expansion source: `{exp.get('backend', '?')}:{exp.get('model', '?')}`"
             + (" -- a simulated oracle LLM (see ptlab.retrieval.simulated), not a real LLM." if simulated else "."))
    doc.text(ALPHA_TEXT)
    found = findings(r.results)
    if not found.empty:
        doc.heading("Findings")
        doc.text("Each student against the base encoder and against the same training without distillation "
                 "(α=0; teacher (q) when α=0 was not run), read at p < 0.05 on the first measure.")
        doc.table(found)
    t = r.training
    doc.heading("Training")
    doc.text(f"Training data: {t['train_queries']} SQuAD train queries for the students, "
             f"the first {t['teacher_queries']} of them for the teacher.")
    doc.table(training_table(t))
    for res in r.results.values():
        _collection(doc, res)
    if r.latency:
        _latency(doc, r.latency)
    doc.heading("Timings (s)")
    cfg = r.manifest.get("config", {})
    doc.text("Shared steps (the last run that needed them): "
             + " ".join(f"{k}={v}" for k, v in r.shared.get("timings_s", [])))
    doc.text(f"Wall clock with {cfg.get('threads', '?')} threads; 1-minute load average "
             f"{r.shared.get('load_average', 'n/a')} on {r.shared.get('cpu_count', '?')} CPUs (other work on the "
             "machine inflates these). Cached steps show ~0; each cell's train and evaluation seconds are in "
             "results.csv.")
    doc.image("figure.png", systems_figure(r.results), "nDCG@10 per system, 95% bootstrap intervals")
    return doc


def summary(r: SoftQEResults) -> dict:
    """results.json: the config, the shared steps' record and every number of the report."""
    s = r.shared
    return {"config": r.manifest.get("config", {}), "expansion": s.get("expansion", {}),
            "models": {"teacher": s.get("teacher_dir"), "students": s.get("students", {})},
            "training": r.training, "latency": r.latency, "timings_s": dict(s.get("timings_s", [])),
            "collections": {label: {"dir": s.get("collections", {}).get(key, {}).get("dir"),
                                    "queries": res.n_queries, "documents": res.n_docs}
                            for key, label in COLLECTIONS.items() for res in [r.results[label]]},
            "load_average": s.get("load_average"), "cpu_count": s.get("cpu_count"),
            "results": results_dict(r.results)}


def write_report(root: str | Path, out: str | Path | None = None) -> Path:
    """Write the report into `out` (default `<root>/report`); return report.md's path."""
    r = load(Path(root))
    out = Path(out) if out else Path(root) / "report"
    build_document(r).write(out)
    write_text(out / "table.md", _md_table(headline_table(r.results)) + "\n")
    write_json(out / "results.json", summary(r))
    return out / "report.md"
