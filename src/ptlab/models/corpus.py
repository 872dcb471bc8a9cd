"""Text corpora that train the tiny models' tokenizers.

Corpora are registered by name (`register_corpus(name, fn)`): `tasks` is the
task suite's text (models sit above tasks: a model is built from task data,
never the other way round); `builtin` is a deterministic mix of arithmetic,
instructions and prose-like sentences for engine tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable

CorpusFn = Callable[[int], list[str]]  # seed -> texts
_CORPORA: dict[str, CorpusFn] = {}


def register_corpus(name: str, fn: CorpusFn) -> None:
    _CORPORA[name] = fn


def get_corpus(name: str, seed: int = 0) -> list[str]:
    if name not in _CORPORA:
        from ptlab.errors import ConfigError

        raise ConfigError(f"unknown tokenizer corpus {name!r}; choose from {sorted(_CORPORA)}")
    return _CORPORA[name](seed)


_NAMES = ["Ada", "Ben", "Cleo", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jade", "Kai", "Lena"]
_THINGS = ["apples", "books", "coins", "marbles", "pencils", "stamps", "cards", "shells", "boxes", "cups"]
_VERBS = ["has", "buys", "finds", "gives away", "sells", "collects", "loses", "packs"]
_ADJ = ["short", "formal", "friendly", "clear", "brief", "detailed", "simple", "careful"]
_TOPICS = ["the ocean", "a city park", "winter mornings", "a train ride", "old maps", "a small garden"]


def _builtin(seed: int, n: int = 4000) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        kind = rng.randrange(4)
        a, b = rng.randint(0, 999), rng.randint(1, 99)
        if kind == 0:
            op, val = rng.choice([("+", a + b), ("-", a - b), ("*", a * b), ("/", a // b)])
            texts.append(f"Question: what is {a} {op} {b}?\nAnswer: {a} {op} {b} = {val}\nThe answer is {val}.")
        elif kind == 1:
            name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
            texts.append(f"{name} {rng.choice(_VERBS)} {a} {thing}. Then {name} {rng.choice(_VERBS)} {b} more.")
        elif kind == 2:
            texts.append(
                f"Write a {rng.choice(_ADJ)} note about {rng.choice(_TOPICS)}. "
                f"Use exactly {b % 5 + 1} bullet points and include the word \"{rng.choice(_THINGS)}\"."
            )
        else:
            texts.append(
                f"Document: {rng.choice(_NAMES)} founded the town of {rng.choice(_NAMES)}ville in {1500 + a}.\n"
                f"Question: who founded {rng.choice(_NAMES)}ville?\nAnswer: {rng.choice(_NAMES)}"
            )
    return texts


def _tasks(seed: int) -> list[str]:
    from ptlab.tasks.corpus import tokenizer_corpus

    return tokenizer_corpus(seed)


register_corpus("builtin", _builtin)
register_corpus("tasks", _tasks)
