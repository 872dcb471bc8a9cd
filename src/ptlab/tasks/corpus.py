"""Text from the task suite for tokenizers and for pretraining the `tiny` base.

The pretraining mix shows each task's prompts followed by a correct response or,
at `wrong_rate`, a mistake: a realistic one, or with `habits` the task's habitual
one where the prompt admits it (see `Task.habitual_mistake`), so the base model
knows the formats, is imperfect, and leaves post-training something to move.

Every registered Feature Ambiguity feature with a cue in the prompt appears in the mix with its cue drawn
independently of the behaviour it could point at (rate 0): the base has met every
cue value, uninformatively, so a cue is never new to it at study time and a
model that comes to follow one learned that from post-training data.
"""

from __future__ import annotations

import random

TASK_NAMES = ("math", "instruct", "docqa")
PRETRAIN_PROMPTS = "pretrain_prompts.npy"  # a built base's `prompt_key`s of its pretraining prompts (uint64 .npy)


def corpus_features(task: str) -> list[str]:
    """The Feature Ambiguity features of `task` whose cues the corpus shows: those in the prompt (a response style
    such as verbosity stays out: a base that picked it up would write past the evaluation's token budget)."""
    from ptlab.tasks import FEATURE_AMBIGUITY, features

    return sorted(name for name, f in features(task, FEATURE_AMBIGUITY).items() if f.in_prompt)


def feature_mix(task: str) -> list:
    """None (no feature) and a rate-0 spec of every corpus feature of `task`: the slices of its corpus."""
    from ptlab.tasks import FEATURE_AMBIGUITY, SpuriousSpec

    return [None] + [SpuriousSpec(name, FEATURE_AMBIGUITY, 0.0) for name in corpus_features(task)]


def corpus_examples(task: str, n: int, seed: int, habits: bool = False, knobs: dict | None = None) -> list:
    """`n` train examples of `task`, split evenly between no feature and each FA feature at rate 0."""
    from ptlab.tasks import get_task

    mix = feature_mix(task)
    out = []
    for j, spec in enumerate(mix):
        part = n // len(mix) + (j < n % len(mix))
        out += get_task(task).generate(part, seed=seed * 100 + j, split="train", spurious=spec, habits=habits,
                                       **(knobs or {}))
    return out


def pretrain_examples(n_per_task: int, seed: int = 0, knobs: dict | None = None,
                      weights: dict[str, float] | None = None, habits: bool = False) -> list:
    """The examples behind `pretrain_texts`, task by task (`n_per_task` x the task's weight)."""
    out = []
    for name in TASK_NAMES:
        n = round(n_per_task * (weights or {}).get(name, 1.0))
        out += corpus_examples(name, n, seed + 1000, habits, (knobs or {}).get(name))
    return out


def pretrain_texts(n_per_task: int, seed: int = 0, wrong_rate: float = 0.25, knobs: dict | None = None,
                   weights: dict[str, float] | None = None, habits: bool = False) -> list[str]:
    """prompt + response texts from every task, a mistake at `wrong_rate`, interleaved deterministically."""
    return texts_of(pretrain_examples(n_per_task, seed, knobs, weights, habits), seed, wrong_rate)


def texts_of(examples: list, seed: int, wrong_rate: float) -> list[str]:
    """`pretrain_texts` from its examples (a build that also needs the examples draws them once)."""
    rng = random.Random(f"pretrain|{seed}")
    texts = [ex.prompt + (ex.rejected if rng.random() < wrong_rate else ex.chosen) for ex in examples]
    rng.shuffle(texts)
    return texts


def tokenizer_corpus(seed: int = 0) -> list[str]:
    """The `tasks` tokenizer corpus: correct and incorrect responses of every task, every feature's cues included."""
    texts = []
    for name in TASK_NAMES:
        for ex in corpus_examples(name, 3000, seed + 2000):
            texts += [ex.prompt + ex.chosen, ex.rejected]
    return texts
