"""`ptlab study spurious`: robustness to spurious correlations, SFT vs DPO vs KTO (and the base).

The grid is task × artifact × rate × algorithm × seed; a cell builds its data,
trains (or not, for `base`), and evaluates greedily on the in-distribution and
shortcut-breaking splits. The results directory holds `study.json`,
`results.sqlite`, and the cached steps `data/`, `train/`, `eval/`, `refpairs/`.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from ptlab.studies.grid.model_grid import ModelGridStudy
from ptlab.studies.spurious.cells import CELL_VERSION, CellPlan, expand, plan_cell
from ptlab.studies.spurious.config import StudyConfig, check_config
from ptlab.studies.spurious.steps import build_data, run_cell

# `--quick`: 1 seed, no pipelines, less data, a 2-point sweep; applied before the config file and the overrides.
QUICK = {
    "output_dir": "runs/study-spurious-quick",
    "axes": {"seed": [0], "algorithm": ["base", "sft", "dpo", "kto"]},
    "data": {"n_train": 192, "n_eval": 80, "n_pairs": 32},
    "tuning": {"grid": {"sft": {"lr": [3e-4, 1e-3]}, "dpo": {"lr": [1e-4, 3e-4], "beta": [0.1]},
                        "kto": {"lr": [1e-4, 3e-4], "beta": [0.1]}}, "n_validation": 80},
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

    def tune(self, cfg: StudyConfig, root: Path, quiet: bool = False) -> None:
        """Each arm's learning rate (and β) from a validation sweep (`tuning.py`), unless the config fixes them.

        The directory becomes this study's (its manifest, under its lock) before the sweep starts, so a run killed
        mid-sweep resumes; a bad model fails first, before the directory is touched."""
        if not cfg.tuning.enabled:
            return
        from ptlab.locks import hold_dir_lock
        from ptlab.models import resolve
        from ptlab.studies.grid import manifest
        from ptlab.studies.spurious.tuning import tune

        resolve(cfg.model)
        with hold_dir_lock(root, "output_dir"):
            path = root / manifest.MANIFEST
            manifest.write_manifest(root, self, cfg, [], manifest.load_manifest_file(path) if path.is_file() else None)
            tune(cfg, root, quiet)

    def plan(self, cfg: StudyConfig, root: Path) -> list[CellPlan]:
        """The cells' plans; a pipeline whose SFT stage no plain SFT cell trains waits for the first pipeline that
        does (two pipelines never train one SFT model at once)."""
        plans = super().plan(cfg, root)
        produced = {p.train.fingerprint for p in plans if p.wave == 0 and p.train is not None}
        seen: dict[str, int] = {}
        out = []
        for p in plans:
            if len(p.stages) > 1:
                first = p.stages[0].train.fingerprint
                wave = 1 if first in produced else 1 + seen.get(first, 0)
                seen[first] = seen.get(first, 0) + 1
                p = dataclasses.replace(p, wave=wave)
            out.append(p)
        return out

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
