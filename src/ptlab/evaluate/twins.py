"""Counterfactual twins: the same evaluation items with the cue agreeing, conflicting and absent.

A Feature Ambiguity feature's evaluation splits are twins of one plan stream
(`Task.generate`), so any accuracy difference between them is the cue's doing.
`probe_features` measures it for a base model: the model card's evidence that a
cue is not new to the base (no significant gap between the twins with and
without it) before any post-training teaches it to follow the cue.
"""

from __future__ import annotations

import numpy as np

VARIANTS = {"eval_id": "agree", "eval_break": "conflict", "eval_neutral": "absent"}


def twin_splits(task: str, feature: str, n: int, seed: int, knobs: dict | None = None, exclude=()) -> dict:
    """{split: examples} for each twin the feature has (answer_first has no absent twin)."""
    from ptlab.tasks import FEATURE_AMBIGUITY, SpuriousSpec, features, get_task

    spec = SpuriousSpec(feature, FEATURE_AMBIGUITY, 0.0)
    splits = [s for s in VARIANTS if s != "eval_neutral" or features(task)[feature].absent]
    return {s: get_task(task).generate(n, seed=seed, split=s, spurious=spec, exclude=exclude, **(knobs or {}))
            for s in splits}


def probe_features(model, tokenizer, n: int = 100, seed: int = 0, batch_size: int = 50) -> dict:
    """Per task and prompt-cue feature: the model's greedy accuracy on each twin, and paired tests against the
    absent twin (`p_agree`, `p_conflict`); `novel` when either is significant at 0.05 (None: no absent twin)."""
    from ptlab.evaluate.generate import GenerationSettings, generate
    from ptlab.evaluate.run import MAX_NEW_TOKENS
    from ptlab.evaluate.stats import compare
    from ptlab.tasks import get_task
    from ptlab.tasks.corpus import TASK_NAMES, corpus_features

    out: dict = {}
    for task in TASK_NAMES:
        verifier = get_task(task)
        settings = GenerationSettings(max_new_tokens=MAX_NEW_TOKENS[task], batch_size=batch_size)
        for feature in corpus_features(task):
            correct = {}
            for split, examples in twin_splits(task, feature, n, seed + 7000).items():
                texts = generate(model, tokenizer, [ex.prompt for ex in examples], settings)
                correct[VARIANTS[split]] = np.array([verifier.verify(ex, t)["correct"] for ex, t in zip(examples, texts)], float)
            row = {v: round(float(c.mean()), 4) for v, c in correct.items()} | {"n": n}
            if "absent" in correct:
                for v in ("agree", "conflict"):
                    row[f"p_{v}"] = round(compare(correct[v], correct["absent"]).p, 4)
                row["novel"] = bool(min(row["p_agree"], row["p_conflict"]) < 0.05)
            else:
                row["p_conflict_vs_agree"] = round(compare(correct["conflict"], correct["agree"]).p, 4)
                row["novel"] = None
            out.setdefault(task, {})[feature] = row
    return out
