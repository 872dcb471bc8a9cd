"""`ptlab study softqe`: base, base + LLM expansion, teacher and SoftQE students,
in-domain (SQuAD), near domain (HotpotQA) and out of domain (BFCL tool retrieval), with a leak check of the
expansions, learning curves, latency and a report.

`student.alpha` may be a list: each value trains its own student from the same
teacher on the same raw queries (alpha = 0 is the contrastive-only baseline, the
paper's ablation), and the report compares each with the base encoder and with
the alpha = 0 student.

One cell per system (`ptlab.studies.softqe.cells`); the expensive steps several
cells share — collections, expansions, the teacher, document embeddings, the
latency probe — run once in `prepare` (`ptlab.studies.softqe.shared`), each
cached by a fingerprint of what decides it; a cell trains its student if it is
one (cached too) and evaluates its system on every collection
(`ptlab.studies.softqe.steps`). So a re-run recomputes nothing, and adding an
alpha to a finished study directory trains and evaluates only that student.
The results directory holds `study.json`, `results.sqlite`, `shared.json`,
`latency.json`, the students' inputs and one TREC run per cell and collection.
"""

from __future__ import annotations

from pathlib import Path

from ptlab.studies.softqe.cells import CELL_VERSION, SoftQEPlan, expand, plan_cell
from ptlab.studies.softqe.config import QUICK, SoftQEConfig
from ptlab.studies.softqe.steps import run_softqe_cell
from ptlab.studies.study import Study


class SoftQEStudy(Study):
    name = "softqe"
    help = "SoftQE: a query encoder distilled toward LLM-expanded queries; in- and out-of-domain retrieval."
    config_model = SoftQEConfig
    quick = QUICK
    study_format = "ptlab-study-softqe/1"
    cell_version = CELL_VERSION
    axes = ("system", "alpha")  # alpha = -1 for the systems that are no SoftQE student
    runner = staticmethod(run_softqe_cell)

    def check(self, cfg: SoftQEConfig) -> None:
        """An unknown encoder or measure fails here, before any collection is built or any model trained."""
        import ir_measures

        from ptlab.errors import ConfigError
        from ptlab.retrieval.encoders import resolve_encoder

        resolve_encoder(cfg.encoder)
        if not cfg.eval.measures:
            raise ConfigError("eval.measures: give at least one measure, e.g. [nDCG@10]")
        for m in cfg.eval.measures:
            try:
                ir_measures.parse_measure(m)
            except Exception:  # ir-measures raises NameError, ValueError, ... for what it cannot parse
                raise ConfigError(f"eval.measures: {m!r} is not an ir-measures measure (e.g. nDCG@10, RR@10, R@100)") \
                    from None

    def plan(self, cfg: SoftQEConfig, root: Path) -> list[SoftQEPlan]:
        return [plan_cell(cfg, cell, root) for cell in expand(cfg)]

    def prepare(self, cfg: SoftQEConfig, root: Path, todo: list[SoftQEPlan]) -> None:
        from ptlab.studies.softqe.shared import prepare_shared

        prepare_shared(cfg, root, todo)

    def is_done(self, plan: SoftQEPlan, root: Path) -> bool:
        """A stored cell whose TREC runs were deleted is evaluated again (its models stay cached)."""
        from ptlab.studies.softqe.cells import COLLECTIONS

        return all(plan.run_file(key).is_file() for key in COLLECTIONS)

    def progress_line(self, cell_id: str, result: dict) -> str:
        from ptlab.studies.softqe.cells import COLLECTIONS

        m, t = result["metrics"], result["timings"]
        scores = "  ".join(f"{label.split(' (')[0]} {m.get(f'{key}/nDCG@10', float('nan')):.3f}"
                           for key, label in COLLECTIONS.items())
        return f"{cell_id}: nDCG@10 {scores}  ({t['train_s']:.0f}s train, {t['eval_s']:.0f}s eval)"

    def write_report(self, root: Path, out: Path | None = None) -> Path:
        from ptlab.studies.softqe.report import write_report

        return write_report(root, out)


STUDY = SoftQEStudy()
