"""`ptlab study budget`: seed-set size × teacher budget × strategy, run end to end.

A cell is synth → train → eval: the strategy spends at most Q teacher replies
(`ptlab.synth`), the student is trained by SFT on the rows, and evaluated on
the same held-out examples as every other cell. The results directory holds
`study.json`, `results.sqlite` (axes task, seed_size, budget, strategy, seed,
ratio), `runs.jsonl` (one line per invocation: cells run, teacher calls paid /
cached), and the cached steps `synth/`, `train/`, `eval/`, `data/`. Delete a
cell's `eval/<fp>` and the next run re-evaluates that cell alone (its synthetic
data and training are reused, so no teacher call is paid again).
"""

from __future__ import annotations

import json
from pathlib import Path

from ptlab.studies.budget.cells import CELL_VERSION, BudgetPlan, expand, plan_cell
from ptlab.studies.budget.config import BudgetStudyConfig, check_config
from ptlab.studies.budget.steps import ACCOUNT_KEYS, ensure_eval_rows, run_budget_cell
from ptlab.studies.grid.model_grid import ModelGridStudy

# `--quick`: one seed, a smaller grid and evaluation; applied before the config file and the overrides.
QUICK = {
    "output_dir": "runs/study-budget-quick",
    "axes": {"seed_size": [25], "budget": [25, 100, 400, 1600], "seed": [0], "exposure": ["epochs", "steps"]},
    "data": {"n_eval": 100},
    # the math template family `tiny` never read: the student learns the task from the seeds and the teacher
    "seeds": {"knobs": {"wording": "alternate"}},
    "teacher": {"backend": "simulated", "model": "math", "task_knobs": {"wording": "alternate"}},
}


class BudgetStudy(ModelGridStudy):
    name = "budget"
    help = "Synthetic data under a budget: answer augmentation vs question rephrase vs new question over |S| x Q."
    config_model = BudgetStudyConfig
    quick = QUICK
    study_format = "ptlab-study-budget/3"  # /3: regime and exposure axes
    cell_version = CELL_VERSION
    axes = ("task", "regime", "exposure", "seed_size", "budget", "strategy", "seed", "ratio")
    runner = staticmethod(run_budget_cell)
    check_config = staticmethod(check_config)
    expand = staticmethod(expand)
    plan_cell = staticmethod(plan_cell)

    def prepare(self, cfg: BudgetStudyConfig, root: Path, todo: list[BudgetPlan]) -> None:
        for plan in todo[:1]:  # one held-out split for every cell: build it here, before any worker starts
            for step in plan.eval_files.values():
                ensure_eval_rows(step.path, plan.eval_data)

    def progress_line(self, cell_id: str, result: dict) -> str:
        m = result["metrics"]
        acc = next((v for k, v in m.items() if k.endswith("/accuracy")), float("nan"))
        return (f"{cell_id}: accuracy {acc:.3f}  rows {m.get('synth/rows', 0):.0f}  "
                f"paid {result['run_teacher']['paid']}  ({result['timings']['train_s']:.0f}s train, "
                f"{result['timings']['eval_s']:.0f}s eval)")

    def summarise(self, results: list[dict]) -> dict:
        """The teacher calls this invocation paid, cached and failed, summed over its cells."""
        return {"teacher": {k: sum(r["run_teacher"][k] for r in results) for k in ACCOUNT_KEYS}}

    def write_report(self, root: Path, out: Path | None = None) -> Path:
        from ptlab.studies.budget.report import write_report

        return write_report(root, out)

    def headline(self, report: Path) -> str:
        text = super().headline(report)
        summary = report.parent / "crossover.json"
        if summary.is_file():
            text += "\n" + json.loads(summary.read_text())["verdict"]
        return text


STUDY = BudgetStudy()
