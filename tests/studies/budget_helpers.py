"""Shared by the budget-study tests: a tiny config and a one-shot in-process `ptlab` runner."""

from __future__ import annotations

import copy

from ptlab.config import validate
from ptlab.studies.budget.config import BudgetStudyConfig

TINY_BUDGET = {
    "model": "tiny-test",
    "executor": "sequential",
    "axes": {"seed_size": [4], "budget": [4, 16, 48], "seed": [0], "exposure": ["epochs"]},
    "data": {"n_eval": 8},
    "train": {"batch_size": 8, "epochs": 1},
    "eval": {"max_new_tokens": 4},
}


def budget_config(out, **sections) -> BudgetStudyConfig:
    data = copy.deepcopy(TINY_BUDGET)
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    data["output_dir"] = str(out)
    return validate(BudgetStudyConfig, data)
