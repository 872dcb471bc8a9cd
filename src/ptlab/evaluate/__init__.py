"""Evaluation: batched generation, scoring with task verifiers, ranking accuracy, statistics.

`evaluate_model(model, tokenizer, task, {"eval_id": rows, ...})` → `EvalResult`;
statistics (`mean_ci`, `reliance_ci`, `compare`, `mcnemar`) are pure functions
in `ptlab.evaluate.stats`.
"""

from ptlab.evaluate.generate import GenerationSettings, generate
from ptlab.evaluate.run import MAX_NEW_TOKENS, EvalResult, evaluate_model, summarise
from ptlab.evaluate.score import accuracy, score, spurious_reliance
from ptlab.evaluate.stats import Comparison, Estimate, compare, mcnemar, mean_ci, reliance_ci

__all__ = ["Comparison", "Estimate", "EvalResult", "GenerationSettings", "MAX_NEW_TOKENS", "accuracy", "compare",
           "evaluate_model", "generate", "mcnemar", "mean_ci", "reliance_ci", "score", "spurious_reliance",
           "summarise"]
