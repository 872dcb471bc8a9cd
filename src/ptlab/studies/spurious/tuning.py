"""Tuning each arm on a validation split before the study runs: a sweep of cached cells, then a choice.

Per task and arm, every point of the arm's declared grid (`tuning.grid`: learning
rate, and the objective's own parameters such as DPO's β) trains at one tuning
condition and is scored by greedy accuracy on the task's validation split — rows
drawn like the tuning condition's training data and disjoint from every
evaluation split and every training set (see `cells.validation_step`). The most
accurate point wins (ties: the smaller learning rate, then the earlier point of
the grid). Pipelines (`sft+dpo`) are tuned in a second round: their preference
stage's grid from the SFT model the first round chose. The sweep is a study of
its own in `<output_dir>/tuning/` (its own lock, store and resumption); the
choice is written to `<output_dir>/tuning.json`, which planning reads.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pandas as pd

from ptlab.studies.grid.model_grid import ModelGridStudy
from ptlab.studies.spurious.cells import CELL_VERSION, TuneCell, plan_cell
from ptlab.studies.spurious.config import PIPELINES, StudyConfig, grid_points, trained_objectives
from ptlab.studies.spurious.steps import build_data, run_cell

SELECTION = "tuning.json"
SWEEP_DIR = "tuning"
METRIC = "validation/accuracy"


def point_name(point: dict) -> str:
    return ",".join([f"lr={point['lr']:g}", *(f"{k}={v:g}" for k, v in sorted(point["params"].items()))])


def sweep(cfg: StudyConfig, round_: int, chosen: dict) -> list[tuple[TuneCell, dict]]:
    """(cell, hyper-parameters by stage key) of one round: 1, the plain objectives; 2, the pipelines' last stage."""
    t = cfg.tuning
    trained = trained_objectives(cfg)
    if round_ == 1:
        arms = [(alg, alg, t.grid[alg]) for alg in trained]
    else:
        arms = [(p, p, t.grid[p.split("+")[-1]]) for p in PIPELINES if p in cfg.axes.algorithm]
    out = []
    for task in cfg.axes.task:
        feature = cfg.features[task][t.artifact]
        for alg, key, grid in arms:
            for point in grid_points(grid):
                cell = TuneCell(task, t.artifact, feature, t.rate, alg, t.seed, point_name(point))
                hp = {key: point}
                if round_ == 2:
                    hp["sft"] = chosen[task]["sft"]
                out.append((cell, hp))
    return out


class TuningSweep(ModelGridStudy):
    """One round of the sweep, run by the study engine like any study (cached, locked, resumable)."""

    name = "spurious-tuning"
    help = "The spurious study's validation sweep (run by `ptlab study spurious`)."
    config_model = StudyConfig
    quick: dict = {}
    study_format = "ptlab-spurious-tuning/1"
    cell_version = CELL_VERSION
    axes = ("task", "artifact", "feature", "rate", "algorithm", "seed", "point")
    runner = staticmethod(run_cell)

    def __init__(self, main_root: Path, round_: int, chosen: dict):
        self.main_root, self.round, self.chosen = main_root, round_, chosen

    def check(self, cfg) -> None:
        """Checked as the study's own config before the sweep starts."""

    def plan(self, cfg, root: Path) -> list:
        from ptlab.models import resolve

        model_dir = str(resolve(cfg.model))
        # data, training and evaluation steps live in the study's directory, shared with its cells
        return [plan_cell(cfg, cell, self.main_root, model_dir, hp=hp) for cell, hp in sweep(cfg, self.round,
                                                                                              self.chosen)]

    def prepare(self, cfg, root: Path, todo: list) -> None:
        for plan in todo:
            build_data(plan)

    def progress_line(self, cell_id: str, result: dict) -> str:
        return f"tuning {cell_id}: validation {result['metrics'].get(METRIC, float('nan')):.3f}"

    def write_report(self, root: Path, out: Path | None = None) -> Path:
        from ptlab.report.document import Document

        doc = Document("Validation sweep")
        doc.table(sweep_table(Path(root)))
        out = Path(out) if out else Path(root) / "report"
        doc.write(out)
        return out / "report.md"


def tune(cfg: StudyConfig, root: Path, quiet: bool = False) -> dict:
    """Run the sweep (what is cached is not rerun), choose, and write `tuning.json`; returns the choice."""
    from ptlab.atomic import write_json
    from ptlab.studies.grid.run import run_grid

    chosen: dict = {}
    sub = cfg.model_copy(update={"output_dir": str(root / SWEEP_DIR)})
    for round_ in (1, 2):
        if not sweep(cfg, round_, chosen):
            continue
        run_grid(TuningSweep(root, round_, chosen), sub, quiet=quiet)
        for task, arms in choose(sweep_table(root / SWEEP_DIR)).items():
            chosen.setdefault(task, {}).update(arms)
    write_json(root / SELECTION, chosen)
    return chosen


def sweep_table(sweep_root: Path) -> pd.DataFrame:
    """One row per sweep cell: task, arm, point, lr, params, validation accuracy, final loss, still improving."""
    from ptlab.studies.grid.store import ResultStore

    db = Path(sweep_root) / "results.sqlite"
    if not db.is_file():
        return pd.DataFrame()
    res = ResultStore(db, create=False).results()
    wide = res.pivot_table(index=["cell_id", "task", "algorithm", "point"], columns="metric", values="value",
                           aggfunc="first").reset_index()
    rows = []
    for r in wide.to_dict("records"):
        parts = dict(kv.split("=") for kv in r["point"].split(","))
        rows.append({"task": r["task"], "arm": r["algorithm"], "point": r["point"], "lr": float(parts.pop("lr")),
                     "params": {k: float(v) for k, v in parts.items()}, "validation": r.get(METRIC),
                     "final_loss": r.get("train/loss"), "still_improving": bool(r.get("train/still_improving", 0))})
    return pd.DataFrame(rows).sort_values(["task", "arm", "lr", "point"], kind="stable").reset_index(drop=True)


def choose(table: pd.DataFrame) -> dict:
    """task -> arm -> {"lr", "params", "validation"}: the most accurate point (ties: smaller lr, then grid order)."""
    out: dict = {}
    if table.empty:
        return out
    for (task, arm), g in table.groupby(["task", "arm"], sort=True):
        best = g.sort_values(["validation", "lr"], ascending=[False, True], kind="stable").iloc[0]
        out.setdefault(task, {})[arm] = {"lr": float(best["lr"]), "params": dict(best["params"]),
                                         "validation": float(best["validation"]), "point": best["point"]}
    return out


def selection(root: Path) -> dict:
    """The choice `tune` wrote ({} when the study has not tuned yet); read once per version of the file, not once per
    planned cell."""
    path = Path(root) / SELECTION
    return _read_selection(path, path.stat().st_mtime_ns) if path.is_file() else {}


@functools.lru_cache(maxsize=8)
def _read_selection(path: Path, mtime_ns: int) -> dict:
    return json.loads(path.read_text())
