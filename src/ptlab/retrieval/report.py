"""The SoftQE study's report: results.json, report.md (tables with intervals) and figure.png."""

from __future__ import annotations

from pathlib import Path

from ptlab.atomic import make_dir, write_file, write_json, write_text
from ptlab.retrieval.evaluate import CollectionResult


def _fmt(iv, scale: float = 100.0) -> str:
    return f"{iv.mean * scale:.1f} [{iv.low * scale:.1f}, {iv.high * scale:.1f}]"


def results_dict(results: dict[str, CollectionResult]) -> dict:
    out = {}
    for label, res in results.items():
        out[label] = {
            "queries": res.n_queries,
            "documents": res.n_docs,
            "document_encode_s": res.doc_encode_s,
            "systems": {
                name: {
                    "metrics": {m: {"mean": iv.mean, "low": iv.low, "high": iv.high} for m, iv in sr.means.items()},
                    "encode_s": sr.encode_s,
                    "search_s": sr.search_s,
                    "queries_per_s": sr.queries_per_s,
                }
                for name, sr in res.systems.items()
            },
            "comparisons": {
                pair: {m: {"diff": c.diff.mean, "low": c.diff.low, "high": c.diff.high, "p_value": c.p_value}
                       for m, c in per.items()}
                for pair, per in res.comparisons.items()
            },
        }
    return out


def _training(training: dict | None) -> list[str]:
    if not training:
        return []
    rows = [("teacher (q+, p+)", training.get("teacher"))]
    rows += [(f"SoftQE α={a}", info) for a, info in training.get("students", {}).items()]
    lines = [(f"Training data: {training['train_queries']} SQuAD train queries for the students, "
              f"the first {training['teacher_queries']} of them for the teacher."), "",
             "| model | rows | epochs | batch | lr | steps | mean train loss | train s |", "|---|---|---|---|---|---|---|---|"]
    for name, info in rows:
        if not info:
            lines.append(f"| {name} | (trained before train_info.json existed) | | | | | | |")
            continue
        lines.append(f"| {name} | {info.get('rows', info.get('pairs'))} | {info['epochs']:g} | {info['batch_size']} | "
                     f"{info['learning_rate']:g} | {info['steps']} | {info['train_loss']:.3f} | {info['seconds']:.0f} |")
    return lines + [""]


def markdown(results: dict[str, CollectionResult], summary: dict) -> str:
    exp = summary["expansion"]
    lines = [
        "# SoftQE study",
        "",
        "Query encoders compared on the same queries; metrics in points (x100) with 95% bootstrap intervals.",
        f"Expansion source: `{exp['backend']}:{exp['model']}`"
        + (" -- a simulated oracle LLM (see ptlab.retrieval.simulated), not a real LLM." if exp["backend"].startswith("simulated") else "."),
        "",
        ("SoftQE α=a: the query encoder starts from the teacher and learns raw queries with "
         "a·MSE(student(q), teacher(q+)) + (1−a)·contrastive(student(q), doc(p+)); documents stay the teacher's. "
         "α=0 is the same training without distillation (the fair baseline); α=1 is distillation only."),
        "",
    ]
    lines += _training(summary.get("training"))
    for label, res in results.items():
        measures = list(next(iter(res.systems.values())).means)
        lines += [f"## {label}: {res.n_queries} queries, {res.n_docs} documents", ""]
        lines += ["| system | LLM at query time | " + " | ".join(measures) + " | queries/s |",
                  "|---|---|" + "---|" * len(measures) + "---|"]
        for name, sr in res.systems.items():
            llm = "yes" if "+" in name else "no"
            lines.append(f"| {name} | {llm} | " + " | ".join(_fmt(sr.means[m]) for m in measures) + f" | {sr.queries_per_s:.0f} |")
        lines += ["", "Paired differences (a - b, points, 95% paired-bootstrap interval; paired t-test p):", ""]
        lines += ["| a vs b | " + " | ".join(measures) + " |", "|---|" + "---|" * len(measures)]
        for pair, per in res.comparisons.items():
            cells = [f"{per[m].diff.mean * 100:+.1f} [{per[m].diff.low * 100:+.1f}, {per[m].diff.high * 100:+.1f}] p={per[m].p_value:.3g}"
                     for m in measures]
            lines.append(f"| {pair} | " + " | ".join(cells) + " |")
        lines.append("")
    lat = summary.get("latency")
    if lat:
        lines += [
            "## Latency per query (batch 1, median wall clock)",
            "",
            "| path | ms/query |",
            "|---|---|",
            f"| encode + search (base, SoftQE: no LLM) | {lat['without_llm_ms']:.1f} |",
            f"| LLM writes {lat['llm_new_tokens']} tokens ({lat['llm']}) | {lat['llm_generate_ms']:.0f} |",
            f"| LLM + encode expanded query + search | {lat['with_llm_ms']:.0f} |",
            "",
            f"Measured with {lat['n_queries']} queries; 1-minute load average {lat.get('load_average', 'n/a')} "
            f"on {lat.get('cpu_count', '?')} CPUs (a busy shared machine inflates these).",
            "",
            f"Example real {lat['llm']} pseudo-document for \"{lat['example']['query']}\": "
            f"\"{lat['example']['pseudo_document'][:300]}\"",
            "",
        ]
    lines += ["## Timings (s)", "", " ".join(f"{k}={v}" for k, v in summary["timings_s"].items()), "",
              (f"Wall clock with {summary.get('config', {}).get('threads', '?')} threads; 1-minute load average at "
               f"the end {summary.get('load_average', 'n/a')} on {summary.get('cpu_count', '?')} CPUs (other work on "
               "the machine inflates these). Cached steps show ~0."), "",
              "![figure](figure.png)", ""]
    return "\n".join(lines)


def figure(results: dict[str, CollectionResult], path: Path, measure: str = "nDCG@10") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = max(5.5, 0.75 * max(len(r.systems) for r in results.values()))
    fig, axes = plt.subplots(1, len(results), figsize=(width * len(results), 4), squeeze=False)
    for ax, (label, res) in zip(axes[0], results.items()):
        names = list(res.systems)
        ivs = [res.systems[n].means[measure] for n in names]
        means = [iv.mean * 100 for iv in ivs]
        err = [[(iv.mean - iv.low) * 100 for iv in ivs], [(iv.high - iv.mean) * 100 for iv in ivs]]
        fixed = {"base": "#999999", "base + LLM exp.": "#e3a33b", "teacher (q+)": "#5b8bd0", "teacher (q)": "#9bb7e0"}
        greens = plt.get_cmap("Greens")
        students = [n for n in names if n not in fixed]
        colors = [fixed.get(n) or greens(0.45 + 0.5 * students.index(n) / max(1, len(students) - 1)) for n in names]
        ax.bar(range(len(names)), means, yerr=err, capsize=4, color=colors)
        ax.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
        ax.set_title(f"{label} (n={res.n_queries})", fontsize=10)
        ax.set_ylabel(f"{measure} (x100, 95% CI)")
        lo = min(iv.low for iv in ivs) * 100
        ax.set_ylim(max(0.0, lo - 10), min(100.0, max(iv.high for iv in ivs) * 100 + 5))
    fig.tight_layout()
    write_file(path, lambda f: fig.savefig(f, dpi=120, format="png"))
    plt.close(fig)


def write_report(out: Path, results: dict[str, CollectionResult], summary: dict) -> None:
    make_dir(out, "report folder")
    figure(results, out / "figure.png")
    write_json(out / "results.json", {**summary, "results": results_dict(results)})
    write_text(out / "report.md", markdown(results, summary))
