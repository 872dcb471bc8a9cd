"""The SoftQE study's report: report.md, report.html, figure.png, learning_curves.png, table.md, results.json.

It opens with what the study can conclude: the **findings** (each distilled
SoftQE student against the base encoder, and against the same training
without distillation, in, near and out of domain, on the first measure; p
Holm-adjusted within the measure's family: every comparison on that measure
across collections; a verdict that weighs the interval against the expected
gain), the **design checks** (the same queries for every system, train/test
disjoint, every query expanded, a real LLM or the oracle upper bound, the leak
check, the α = 0 ablation, training and its convergence, training seeds, power;
"not run" where the study records nothing to check), and the headline figure
(every system, every collection). Then the details: the setup, the expansions
(what was paid, examples, the leak table), the training of each encoder with
its learning curve, one table per collection (every measure in points with 95%
bootstrap intervals, queries/s) with its paired differences (raw and
Holm-adjusted p), latency with and without the LLM at query time, timings.
`table.md` (the first measure, every system, every collection) is what
`ptlab study` / `ptlab report` print.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ptlab.atomic import write_json, write_text
from ptlab.report.document import Document, _md_table
from ptlab.report.verdicts import NOT_TESTED, Check, Effect, Finding, fmt_mde, fmt_p
from ptlab.retrieval.evaluate import CollectionResult
from ptlab.studies.softqe.analysis import SoftQEResults, load
from ptlab.studies.softqe.cells import COLLECTIONS, DOMAINS, student_name
from ptlab.studies.softqe.diagnostics import convergence_check, curves_figure, leak_check, leak_table
from ptlab.studies.softqe.figures import systems_figure

ALPHA_TEXT = ("SoftQE α=a: the query encoder starts from the teacher and learns raw queries with "
              "a·MSE(student(q), teacher(q+)) + (1−a)·contrastive(student(q), doc(p+)); documents stay the teacher's. "
              "α=0 is the same training without distillation (the fair baseline); α=1 is distillation only.")

# The gains the claims expect (first measure, as a fraction: 0.01 = 1 point), by domain.
# Out-of-domain: +2.83 nDCG@10 points on average over five BEIR tasks, SoftQE's own number (Pimpalkhute et al.,
# "SoftQE: Learned Representations of Queries Expanded by LLMs", ECIR 2024, arXiv 2402.12663; ../shared/REFERENCES.md).
# In-domain: the paper reports only "marginal" gains on MS MARCO, no number to carry over, so a declared smallest
# effect of interest: 1 point, below which a query encoder swap is not worth it.
# Near domain (HotpotQA: Wikipedia QA again) is one of BEIR's tasks, so the paper's BEIR average applies to it too.
EXPECTED_GAIN = {"in": 0.01, "near": 0.0283, "out": 0.0283}
EXPECTED_SOURCE = {"in": "smallest effect of interest", "near": "the paper's out-of-domain (BEIR) gain",
                   "out": "the paper's out-of-domain gain"}
DOMAIN = {label: DOMAINS[key] for key, label in COLLECTIONS.items()}
DOMAIN_NAMES = {"in": "in-domain", "near": "near-domain", "out": "out-of-domain"}
ALPHA = 0.05
POWER = 0.8


def _fmt(iv, scale: float = 100.0) -> str:
    return f"{iv.mean * scale:.1f} [{iv.low * scale:.1f}, {iv.high * scale:.1f}]"


def _points(v: float) -> str:
    return f"{v * 100:+.1f}"


def _llm(name: str) -> str:
    return "yes" if "+" in name else "no"


def _domain(label: str) -> str:
    return DOMAIN.get(label, "out" if "out-of-domain" in label else "near" if "near" in label else "in")


def comparisons_frame(results: dict[str, CollectionResult]) -> pd.DataFrame:
    """Every paired comparison on every measure: one row per (collection, a vs b, measure), with `p_adj` Holm-adjusted
    within the measure's family (every comparison on that measure, across collections)."""
    from ptlab.evaluate.multiple import adjust_families

    rows = [{"collection": label, "pair": pair, "a": pair.split(" vs ")[0], "b": pair.split(" vs ", 1)[1],
             "measure": m, "diff": c.diff.mean, "lo": c.diff.low, "hi": c.diff.high, "p": c.p_value}
            for label, res in results.items() for pair, per in res.comparisons.items() for m, c in per.items()]
    df = pd.DataFrame(rows, columns=["collection", "pair", "a", "b", "measure", "diff", "lo", "hi", "p"])
    if df.empty:
        return df.assign(p_adj=pd.Series(dtype=float))
    return adjust_families(df, ["measure"], p_col="p", out_col="p_adj")


def _claimed(comps: pd.DataFrame, measure: str) -> pd.DataFrame:
    """The comparisons the findings read: each distilled student (α > 0; every student when none is) vs base and
    vs its no-distillation reference, on `measure`."""
    c = comps[comps["measure"] == measure]
    students = c["a"].str.startswith("SoftQE α=")
    distilled = students & (c["a"] != student_name(0.0))
    return c[distilled] if distilled.any() else c[students & (c["b"] == "base")]


def findings(results: dict[str, CollectionResult], comps: pd.DataFrame | None = None) -> list[Finding]:
    """One finding per claimed comparison: the student's gain over the base encoder (and over the same training
    without distillation), in- and out-of-domain, on the first measure.

    The verdict (`ptlab.evaluate.power.verdict`) reads the Holm-adjusted p and weighs the interval against
    `EXPECTED_GAIN` of the collection's domain; the se comes from the 95% paired-bootstrap interval,
    (hi − lo) / (2·1.96), since a comparison stores only (diff, lo, hi) and p."""
    from ptlab.evaluate.power import mde
    from ptlab.evaluate.power import verdict as power_verdict

    comps = comparisons_frame(results) if comps is None else comps
    measure = first_measure(results)
    claimed = _claimed(comps, measure)
    if claimed.empty:
        return [Finding(f"A SoftQE student beats the base encoder ({measure})", NOT_TESTED,
                        detail="no SoftQE student was evaluated")]
    out = []
    for r in claimed.itertuples():
        domain = _domain(r.collection)
        expected = EXPECTED_GAIN[domain]
        effect = Effect.from_interval(r.diff, r.lo, r.hi)
        v = power_verdict(effect, r.p_adj, expected, alpha=ALPHA, power=POWER, direction=+1)
        m = mde(effect.se, alpha=ALPHA, power=POWER)
        what = "the base encoder" if r.b == "base" else f"{r.b} (the same training without distillation)" \
            if r.b == student_name(0.0) else f"{r.b} (where it started)"
        out.append(Finding(f"{r.a} beats {what} on {r.collection}, {measure}", v, f"{_points(r.diff)} points",
                           f"[{_points(r.lo)}, {_points(r.hi)}]", fmt_p(r.p), fmt_p(r.p_adj),
                           f"expected {expected * 100:+.3g} point{'' if expected == 0.01 else 's'} ({EXPECTED_SOURCE[domain]}); "
                           f"{fmt_mde(m)}"))
    return out


FINDINGS_NOTE = (
    "Effect: a − b in points (x100) on the same queries, 95% paired-bootstrap interval, paired t-test p, "
    "Holm-adjusted within the measure's family (every comparison on it, every collection). "
    "**supported** / **contradicted**: Holm p < 0.05 with the gain in / against the claimed direction; otherwise "
    "**no effect (adequately powered)** when the study could detect the expected gain at 80% power, else "
    "**inconclusive (underpowered)**. Expected gains: +2.83 nDCG@10 points out of domain and near domain (the SoftQE "
    "paper, average over five BEIR tasks); +1 point in domain, a declared smallest effect of interest (the paper reports only "
    "marginal in-domain gains).")


def design_checks(r: SoftQEResults, comps: pd.DataFrame) -> list[Check]:
    """What the study records, checked; "not run" where it records nothing to check."""
    from ptlab.evaluate.power import mde

    shared, checks = r.shared, []
    sizes = ", ".join(f"{label} {res.n_queries}" for label, res in r.results.items())
    checks.append(Check("Same queries for every system", True, f"every system scored on every query of its "
                        f"collection ({sizes}); the analysis refuses a system with a missing query"))
    train = set(shared.get("train_ids", []))
    test = set(shared.get("collections", {}).get("squad", {}).get("queries", []))
    if train and test:
        both = train & test
        checks.append(Check("Student training queries disjoint from the SQuAD test queries", not both,
                            f"{len(train)} train, {len(test)} test query ids"
                            + (f"; {len(both)} shared" if both else ", none shared")))
    else:
        checks.append(Check("Student training queries disjoint from the SQuAD test queries", None,
                            "query ids not recorded (shared.json)"))
    pseudo = shared.get("pseudo")
    if pseudo is not None:
        tests = [q for c in shared.get("collections", {}).values() for q in c.get("queries", [])]
        empty = [q for q in tests if not str(pseudo.get(q, "")).strip()]
        checks.append(Check("Every test query has a pseudo-document", not empty,
                            f"{len(tests) - len(empty)} of {len(tests)} expanded"))
    else:
        checks.append(Check("Every test query has a pseudo-document", None, "expansions not recorded"))
    exp = shared.get("expansion", {})
    backend = str(exp.get("backend", ""))
    if backend:
        oracle = _is_oracle(backend)
        checks.append(Check("Expansions from a real LLM (the paper's setting)", not oracle,
                            f"`{backend}:{exp.get('model', '?')}`"
                            + (": the oracle, an upper bound that copies the gold evidence; the numbers say how well "
                               "SoftQE distils an expansion of that quality, not what a real LLM gives" if oracle
                               else "")))
    else:
        checks.append(Check("Expansions from a real LLM (the paper's setting)", None, "expansion source not recorded"))
    checks.append(leak_check(shared.get("leak"), f"`{backend}:{exp.get('model', '?')}`"))
    has_ablation = 0.0 in r.alphas
    checks.append(Check("No-distillation ablation (α = 0) run", has_ablation,
                        "each distilled student is compared with α = 0" if has_ablation
                        else "no α = 0 student: distilled students are compared with teacher (q) instead"))
    trained = {"teacher": r.training.get("teacher"),
               **{student_name(float(a)): info for a, info in r.training.get("students", {}).items()}}
    recorded = {k: v for k, v in trained.items() if v}
    if recorded:
        bad = [k for k, v in recorded.items()
               if not (v.get("steps", 0) > 0 and math.isfinite(float(v.get("train_loss", float("nan")))))]
        checks.append(Check("Training finished (steps > 0, finite loss)", not bad,
                            f"{len(recorded)} of {len(trained)} encoders recorded"
                            + (f"; failed: {', '.join(bad)}" if bad else "")))
    else:
        checks.append(Check("Training finished (steps > 0, finite loss)", None, "no training record"))
    checks.append(convergence_check(r.records))
    checks.append(Check("Training-seed variance in the intervals", False,
                        "1 training seed per encoder (teacher.seed, student.seed): intervals and tests resample "
                        "queries with the trained encoders held fixed"))
    measure = first_measure(r.results)
    checks.append(_positive_control(backend, comps, measure))
    claimed = _claimed(comps, measure) if not comps.empty else comps
    name = "Power: the claimed comparisons detect the expected gains (80% power, α = 0.05)"
    if claimed.empty:
        checks.append(Check(name, None, "no claimed comparison"))
    else:
        parts, ok = [], True
        for domain, label in DOMAIN_NAMES.items():
            mine = claimed[claimed["collection"].map(_domain) == domain]
            if mine.empty:
                continue
            expected = EXPECTED_GAIN[domain]
            mdes = [mde(Effect.from_interval(c.diff, c.lo, c.hi).se, alpha=ALPHA, power=POWER)
                    for c in mine.itertuples()]
            finite = [m for m in mdes if math.isfinite(m)]
            powered = sum(m <= expected for m in finite)
            ok = ok and powered == len(mdes)
            spread = (f"MDE {min(finite) * 100:.1f}–{max(finite) * 100:.1f} points" if len(finite) > 1 else
                      fmt_mde(finite[0]) if finite else fmt_mde(float("nan")))
            parts.append(f"{label}: {spread} vs {expected * 100:.3g} expected ({powered} of {len(mdes)} "
                         "comparisons powered)")
        checks.append(Check(name, ok, "; ".join(parts)))
    return checks


POSITIVE_CONTROL = "Positive control: students distilling oracle expansions beat α = 0"


def _positive_control(backend: str, comps: pd.DataFrame, measure: str) -> Check:
    """Can the design show a distillation gain where there is one to distil? Only an oracle run answers it: a
    distilled student must beat α = 0 (Holm p < 0.05) on some collection. An LLM run points to its control."""
    if not _is_oracle(backend):
        return Check(POSITIVE_CONTROL, None, "not run here: run the same config with expansion.source=oracle; "
                     "without a passing control a null distillation result cannot be told from a design that "
                     "cannot show one")
    ref = student_name(0.0)
    mine = comps[(comps["measure"] == measure) & (comps["b"] == ref)] if not comps.empty else comps
    if mine.empty:
        return Check(POSITIVE_CONTROL, None, "no α = 0 student to compare with")
    wins = mine[(mine["p_adj"] < ALPHA) & (mine["diff"] > 0)]
    best = mine.loc[mine["diff"].idxmax()]
    return Check(POSITIVE_CONTROL, not wins.empty,
                 f"{len(wins)} of {len(mine)} distilled-vs-α=0 comparisons significant; largest "
                 f"{_points(best['diff'])} [{_points(best['lo'])}, {_points(best['hi'])}] ({best['pair']}, "
                 f"{best['collection']})")


def results_dict(results: dict[str, CollectionResult], comps: pd.DataFrame | None = None) -> dict:
    adj = {} if comps is None or comps.empty else {
        (r.collection, r.pair, r.measure): r.p_adj for r in comps.itertuples()}
    return {label: {
        "queries": res.n_queries, "documents": res.n_docs, "document_encode_s": res.doc_encode_s,
        "systems": {name: {"metrics": {m: {"mean": iv.mean, "low": iv.low, "high": iv.high} for m, iv in sr.means.items()},
                           "encode_s": sr.encode_s, "search_s": sr.search_s, "queries_per_s": sr.queries_per_s}
                    for name, sr in res.systems.items()},
        "comparisons": {pair: {m: {"diff": c.diff.mean, "low": c.diff.low, "high": c.diff.high, "p_value": c.p_value,
                                   "p_holm": _nan_none(adj.get((label, pair, m)))}
                               for m, c in per.items()}
                        for pair, per in res.comparisons.items()},
    } for label, res in results.items()}


def _nan_none(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


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


def training_table(training: dict, records: dict | None = None) -> pd.DataFrame:
    """One row per encoder: data, the epoch cap and what was run, and -- with a held-out dev split -- the kept
    checkpoint's step and dev loss and whether the run converged. `records` (the full training records) win over
    the store's scalars in `training`."""
    records = records or {}
    rows = [("teacher (q+, p+)", records.get("teacher") or training.get("teacher"))]
    rows += [(f"SoftQE α={a}", records.get(f"SoftQE α={a}") or info) for a, info in training.get("students", {}).items()]
    out = []
    for name, info in rows:
        if not info:
            out.append({"model": name, "rows": "(no train_info.json: trained elsewhere)"})
            continue
        row = {"model": name, "rows": str(info.get("rows", info.get("pairs"))), "epochs": f"{info['epochs']:g}",
               "batch": str(info["batch_size"]), "lr": f"{info['learning_rate']:g}", "steps": str(info["steps"]),
               "mean train loss": f"{info['train_loss']:.3f}", "train s": f"{info['seconds']:.0f}"}
        if info.get("curve"):
            row.update({"epochs": f"{info['epochs_run']:.2g} of {info['epochs']:g}", "kept step": str(info["best_step"]),
                        "dev loss": f"{info['best_dev_loss']:.4f}", "converged": "yes" if info["converged"] else "no"})
        out.append(row)
    return pd.DataFrame(out).fillna("")


def _collection(doc: Document, res: CollectionResult, comps: pd.DataFrame) -> None:
    measures = list(next(iter(res.systems.values())).means)
    doc.heading(f"{res.collection}: {res.n_queries} queries, {res.n_docs} documents")
    doc.table(pd.DataFrame([{"system": name, "LLM at query time": _llm(name),
                             **{m: _fmt(sr.means[m]) for m in measures}, "queries/s": f"{sr.queries_per_s:.0f}"}
                            for name, sr in res.systems.items()]))
    mine = comps[comps["collection"] == res.collection] if not comps.empty else comps
    if not mine.empty:
        doc.text("Paired differences (a − b, points, 95% paired-bootstrap interval; paired t-test p, raw and "
                 "Holm-adjusted within the measure's family across collections):")
        doc.table(pd.DataFrame({"a vs b": mine["pair"], "measure": mine["measure"],
                                "a − b (points)": mine["diff"].map(_points),
                                "95% interval": [f"[{_points(lo)}, {_points(hi)}]" for lo, hi in zip(mine["lo"],
                                                                                                      mine["hi"])],
                                "p (raw)": mine["p"].map(fmt_p), "p (Holm)": mine["p_adj"].map(fmt_p)}))


def _subsets(doc: Document, res: CollectionResult, masks: dict, seed: int) -> None:
    """The first measure on each query subset: every system's mean, and every comparison's paired difference."""
    from ptlab.retrieval.stats import mean_ci, paired

    measure = next(iter(next(iter(res.systems.values())).means))
    doc.text(f"{measure} by who wrote the query (points, 95% bootstrap intervals):")
    doc.table(pd.DataFrame([{"system": name, **{f"{sub} (n={int(m.sum())})": _fmt(mean_ci(sr.per_query[measure][m],
                                                                                         seed=seed))
                                                 for sub, m in masks.items()}}
                            for name, sr in res.systems.items()]))
    rows = []
    for pair in res.comparisons:
        a, b = pair.split(" vs ", 1)
        va, vb = res.systems[a].per_query[measure], res.systems[b].per_query[measure]
        row = {"a vs b": pair}
        for sub, m in masks.items():
            d = paired(va[m], vb[m], seed=seed)
            row[f"{sub}: a − b [95% CI]"] = f"{_points(d.diff.mean)} [{_points(d.diff.low)}, {_points(d.diff.high)}]"
        rows.append(row)
    if rows:
        doc.table(pd.DataFrame(rows))


def _is_oracle(backend: str) -> bool:
    return str(backend).startswith("simulated")


def _expansions(doc: Document, exp: dict, leak: dict | None) -> None:
    """What the expansion step paid and how long it took, examples, and the leak check's table."""
    doc.heading("Expansions")
    acc = exp.get("accounting") or {}
    if acc:
        per_set = ", ".join(f"{k} {v:.0f} s" for k, v in acc.get("seconds", {}).items())
        doc.text(f"{acc.get('requests', '?')} pseudo-documents needed: {acc.get('paid', '?')} written by the "
                 f"LLM in this run, {acc.get('cached', '?')} from the expansion cache"
                 + (f" (this run's expansion time per query set: {per_set})" if per_set and acc.get("paid") else "")
                 + ".")
    for ex in exp.get("examples", [])[:2]:
        doc.text(f"Example: \"{ex['query']}\" → \"{ex['pseudo_document'][:300]}\"")
    if leak:
        doc.text("Leak check: share of each pseudo-document's n-grams (n-grams in the query left out) found in its "
                 "query's relevant passage(s), against random passages of the same corpus; a source leaks when the "
                 "gold − random 3-gram overlap's 95% interval lies above 10 points (ptlab.retrieval.leak). The "
                 "oracle is the reference that copies by construction.")
        doc.table(leak_table(leak, f"LLM (`{exp.get('backend', '?')}:{exp.get('model', '?')}`)"))


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


def _figure_measure(results: dict[str, CollectionResult]) -> str:
    measures = next(iter(next(iter(results.values())).systems.values())).means
    return "nDCG@10" if "nDCG@10" in measures else first_measure(results)


def build_document(r: SoftQEResults, comps: pd.DataFrame | None = None) -> Document:
    """Findings, design checks and the systems figure first; then setup, training, per-collection tables,
    latency and timings."""
    comps = comparisons_frame(r.results) if comps is None else comps
    doc = Document("SoftQE study")
    doc.findings(findings(r.results, comps), note=FINDINGS_NOTE)
    doc.checks(design_checks(r, comps))
    measure = _figure_measure(r.results)
    doc.heading("Every system, in-domain and out-of-domain")
    doc.image("figure.png", systems_figure(r.results, measure), f"{measure} per system, 95% bootstrap intervals "
              "(dotted line: the base encoder)")
    doc.heading("Setup")
    exp = r.shared.get("expansion", {})
    doc.text("Query encoders compared on the same queries; metrics in points (x100) with 95% bootstrap intervals. "
             f"Expansion source: `{exp.get('backend', '?')}:{exp.get('model', '?')}`"
             + (" -- the oracle UPPER BOUND (the gold passage's evidence with words dropped; "
                "ptlab.retrieval.simulated), not an LLM." if _is_oracle(exp.get("backend", "")) else "."))
    doc.text(ALPHA_TEXT)
    _expansions(doc, exp, r.shared.get("leak"))
    t = r.training
    doc.heading("Training")
    dev = len(r.shared.get("dev_ids") or [])
    doc.text(f"Training data: {t['train_queries']} SQuAD train queries for the students, "
             f"the first {t['teacher_queries']} of them for the teacher"
             + (f"; {dev} SQuAD dev queries held out: every encoder's dev loss is measured along the way and the "
                "checkpoint with the lowest is the one kept (early stopping ends a run that stops improving)."
                if dev else "; no dev split: each encoder trained for its full epochs."))
    doc.table(training_table(t, r.records))
    curves = curves_figure(r.records)
    if curves:
        doc.image("learning_curves.png", curves, "Held-out SQuAD dev loss (solid) and training loss (dotted) per "
                  "step; the dashed line marks the kept checkpoint (lowest dev loss)")
    for label, res in r.results.items():
        _collection(doc, res, comps)
        if label in r.subsets:
            _subsets(doc, res, r.subsets[label], int(r.manifest.get("config", {}).get("eval", {}).get("seed", 0)))
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
    return doc


def summary(r: SoftQEResults, comps: pd.DataFrame | None = None) -> dict:
    """results.json: the config, the shared steps' record, the findings and checks, and every number of the report."""
    comps = comparisons_frame(r.results) if comps is None else comps
    s = r.shared
    return {"config": r.manifest.get("config", {}), "expansion": s.get("expansion", {}),
            "models": {"teacher": s.get("teacher_dir"), "students": s.get("students", {})},
            "findings": [asdict(f) for f in findings(r.results, comps)],
            "checks": [asdict(c) for c in design_checks(r, comps)],
            "expected_gain": EXPECTED_GAIN,
            "training": r.training, "latency": r.latency, "timings_s": dict(s.get("timings_s", [])),
            "collections": {label: {"dir": s.get("collections", {}).get(key, {}).get("dir"),
                                    "queries": res.n_queries, "documents": res.n_docs}
                            for key, label in COLLECTIONS.items() if label in r.results
                            for res in [r.results[label]]},
            "load_average": s.get("load_average"), "cpu_count": s.get("cpu_count"),
            "results": results_dict(r.results, comps)}


def write_report(root: str | Path, out: str | Path | None = None) -> Path:
    """Write the report into `out` (default `<root>/report`); return report.md's path."""
    r = load(Path(root))
    out = Path(out) if out else Path(root) / "report"
    comps = comparisons_frame(r.results)
    build_document(r, comps).write(out)
    write_text(out / "table.md", _md_table(headline_table(r.results)) + "\n")
    write_json(out / "results.json", summary(r, comps))
    return out / "report.md"
