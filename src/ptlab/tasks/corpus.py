"""Text from the task suite for tokenizers and for pretraining the `tiny` base.

The pretraining mix shows each task's prompts followed by a correct response or,
at `wrong_rate`, a mistake: a realistic one, or with `habits` the task's habitual
one where the prompt admits it (see `Task.habitual_mistake`), so the base model
knows the formats, is imperfect, and leaves post-training something to move.
"""

from __future__ import annotations

import random

TASK_NAMES = ("math", "instruct", "docqa")


def pretrain_texts(n_per_task: int, seed: int = 0, wrong_rate: float = 0.25, knobs: dict | None = None,
                   weights: dict[str, float] | None = None, habits: bool = False) -> list[str]:
    """prompt + response texts from every task (`n_per_task` x the task's weight), interleaved deterministically."""
    from ptlab.tasks import get_task

    rng = random.Random(f"pretrain|{seed}")
    texts = []
    for name in TASK_NAMES:
        n = round(n_per_task * (weights or {}).get(name, 1.0))
        for ex in get_task(name).generate(n, seed=seed + 1000, split="train", habits=habits,
                                           **(knobs or {}).get(name, {})):
            texts.append(ex.prompt + (ex.rejected if rng.random() < wrong_rate else ex.chosen))
    rng.shuffle(texts)
    return texts


def tokenizer_corpus(seed: int = 0) -> list[str]:
    """The `tasks` tokenizer corpus: correct and incorrect responses of every task."""
    from ptlab.tasks import get_task

    texts = []
    for name in TASK_NAMES:
        for ex in get_task(name).generate(3000, seed=seed + 2000, split="train"):
            texts += [ex.prompt + ex.chosen, ex.rejected]
    return texts

