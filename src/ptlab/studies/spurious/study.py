"""`ptlab study spurious`: robustness to spurious correlations, SFT vs DPO vs KTO (and the base).

The grid is task × artifact × rate × algorithm × seed; a cell builds its data,
trains (or not, for `base`), and evaluates greedily on the in-distribution and
shortcut-breaking splits. The results directory holds `study.json`,
`results.sqlite`, and the cached steps `data/`, `train/`, `eval/`, `refpairs/`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ptlab.studies.grid.model_grid import ModelGridStudy
from ptlab.studies.spurious.cells import CELL_VERSION, CellPlan, expand, plan_cell
from ptlab.studies.spurious.config import StudyConfig, check_config
from ptlab.studies.spurious.steps import build_data, run_cell

# `--quick`: 1 seed and less data; applied before the config file and the overrides.
QUICK = {
    "output_dir": "runs/study-spurious-quick",
    "axes": {"seed": [0]},
    "data": {"n_train": 320, "n_eval": 80, "n_pairs": 32},
    "train": {"max_steps": 20},
}


class SpuriousStudy(ModelGridStudy):
    name = "spurious"
    help = "Robustness to spurious correlations: SFT vs DPO vs KTO over tasks x artifacts x rates x seeds."
    config_model = StudyConfig
    quick = QUICK
    study_format = "ptlab-study-spurious/2"  # /2: the results store keeps the study's own axes
    cell_version = CELL_VERSION
    axes = ("task", "artifact", "feature", "rate", "algorithm", "seed")
    runner = staticmethod(run_cell)
    check_config = staticmethod(check_config)
    expand = staticmethod(expand)
    plan_cell = staticmethod(plan_cell)

    def prepare(self, cfg: StudyConfig, root: Path, todo: list[CellPlan]) -> None:
        """Record what the base met in pretraining (and warn about a cue it never met), then build the data."""
        from ptlab.atomic import write_json
        from ptlab.studies.spurious.design import BASE_FILE, base_features, unseen_features
        from ptlab.tasks import FEATURE_AMBIGUITY

        if todo:
            card = base_features(todo[0].model_dir)
            if card is not None:
                write_json(root / BASE_FILE, card)
            wanted = sorted({(p.cell.task, p.cell.feature) for p in todo if p.cell.artifact == FEATURE_AMBIGUITY})
            for task, feature in unseen_features(card, wanted):
                print(f"warning: {cfg.model}: the base never met feature {feature!r} of {task} in pretraining, so its "
                      "cue is new to it and reliance measures novelty as well as the shortcut", file=sys.stderr)
        for plan in todo:  # data is cheap and shared: build it once, here, before any worker starts
            build_data(plan)

    def progress_line(self, cell_id: str, result: dict) -> str:
        m = result["metrics"]
        return (f"{cell_id}: eval_id {m.get('eval_id/accuracy', float('nan')):.3f}  "
                f"eval_break {m.get('eval_break/accuracy', float('nan')):.3f}  "
                f"({result['timings']['train_s']:.0f}s train, {result['timings']['eval_s']:.0f}s eval)")

    def write_report(self, root: Path, out: Path | None = None) -> Path:
        from ptlab.studies.spurious.report import write_report

        return write_report(root, out)


STUDY = SpuriousStudy()
