"""The shape every task shares: knobs -> plan -> (spurious feature) -> text.

A task draws a *plan* (the latent choices of one example), lets the spurious
feature rewrite it, and renders prompt, a correct response and a realistic
incorrect one. Keeping the plan separate from the text is what lets features
be data (functions over plans) rather than branches inside each generator.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from pydantic import ValidationError

from ptlab.config import Strict, format_validation_error
from ptlab.errors import ConfigError
from ptlab.tasks import spurious as sp

SPLITS = ("train", "eval_id", "eval_break")
TASKS_VERSION = "tasks-v5"  # bump when generators change what a seed produces (invalidates cached data and `tiny`)
STYLES = ("plain", "verbose")
# Share of incorrect responses (outside a shortcut) that are the task's habitual mistake rather than another
# realistic one: `tiny` greedily makes the habit, so preference data that never showed it could not correct it.
HABIT_SHARE = 0.25


@dataclass(frozen=True)
class Example:
    """One generated example with a correct (`chosen`) and an incorrect (`rejected`) response."""

    id: str
    task: str
    split: str
    prompt: str
    chosen: str
    rejected: str
    answer: str  # the gold, in the string form `Task.verify` accepts
    error: str  # what is wrong with `rejected`
    feature: str | None = None
    artifact: str | None = None
    has_feature: bool = False  # FA: the surface feature is present; DN: inside the narrow slice
    shortcut_agrees: bool = True  # following the shortcut gives the correct behaviour
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class Task(ABC):
    """Base class: subclasses set `name`, `Knobs`, and implement plan/render/verify."""

    name: ClassVar[str]
    description: ClassVar[str]
    Knobs: ClassVar[type[Strict]]

    # -- to implement -------------------------------------------------------
    @abstractmethod
    def sample_plan(self, rng: random.Random, knobs: Any) -> sp.Plan:
        """Draw the underlying structure of one example (before any text)."""

    @abstractmethod
    def render(self, plan: sp.Plan, rng: random.Random, knobs: Any) -> dict:
        """Return {prompt, chosen, rejected, answer, error, meta}."""

    @abstractmethod
    def verify(self, example_or_gold: Example | str, response: str) -> dict:
        """Score a response: at least {"correct": bool}."""

    def habitual_mistake(self, plan: sp.Plan) -> tuple[str, str] | None:
        """(error, response) for the one mistake a careless writer makes the same way every time, or None.

        Realistic mistakes vary (which step, which constraint), so greedy decoding
        averages them away; a habit does not. Pretraining `tiny` on a corpus where
        the habit outweighs the correct response gives a base that has the skill
        but not the behaviour, which is the gap post-training closes. Must not
        draw from an rng, so `generate(habits=True)` yields the same prompts.
        """
        return None

    # -- shared -------------------------------------------------------------
    def knobs(self, **knobs: Any) -> Any:
        try:
            return self.Knobs(**knobs)
        except ValidationError as e:
            valid = ", ".join(self.Knobs.model_fields)
            raise ConfigError(f"{format_validation_error(e, f'knobs of task {self.name!r}')}; valid knobs: {valid}") from None

    def generate(
        self,
        n: int,
        seed: int = 0,
        split: str = "train",
        spurious: sp.SpuriousSpec | dict | None = None,
        habits: bool = False,
        **knobs: Any,
    ) -> list[Example]:
        """`n` examples, deterministic in (task, seed, split, spurious, knobs).

        `rejected` is the task's habitual mistake in `HABIT_SHARE` of the examples
        where it has one, and with `habits=True` in all of them (the same prompts
        and chosen responses either way).
        """
        if split not in SPLITS:
            raise ConfigError(f"split: unknown split {split!r}; choose from {', '.join(SPLITS)}")
        k = self.knobs(**knobs)
        if isinstance(spurious, dict):  # as written in a config
            spurious = sp.SpuriousSpec(**spurious)
        feat = sp.resolve(self.name, spurious, k) if spurious is not None else None
        rate = float(spurious.rate) if spurious is not None else 0.0
        rng = random.Random(f"{self.name}|{split}|{seed}")
        out = []
        for i in range(n):
            plan = self.sample_plan(rng, k)
            plan.setdefault("chosen_style", "plain")
            plan.setdefault("rejected_style", "plain")
            mode = sp.mode_for(feat, rate, split == "eval_break", rng)
            if feat is not None and mode is not None:
                plan = feat.apply(plan, rng, mode, k)
            present, agrees = feat.detect(plan, k) if feat is not None else (False, True)
            r = self.render(plan, rng, k)
            if rng.random() < (1.0 if habits else HABIT_SHARE) and r["error"] != "shortcut":
                habit = self.habitual_mistake(plan)
                if habit is not None:
                    r["error"], r["rejected"] = habit
            meta = dict(r.get("meta", {}))
            if feat is not None:
                meta["mode"] = mode or "full"
            out.append(
                Example(
                    id=f"{self.name}-{split}-{seed}-{i}",
                    task=self.name,
                    split=split,
                    prompt=r["prompt"],
                    chosen=r["chosen"],
                    rejected=r["rejected"],
                    answer=r["answer"],
                    error=r["error"],
                    feature=feat.name if feat else None,
                    artifact=feat.artifact if feat else None,
                    has_feature=bool(present),
                    shortcut_agrees=bool(agrees),
                    meta=meta,
                )
            )
        return out


def pick(rng: random.Random, seq):
    """`rng.choice` at a third of the cost (one C call): generators draw millions of these."""
    return seq[int(rng.random() * len(seq))]


# -- the response-style feature every task shares -----------------------------


def _verbosity_apply(plan: sp.Plan, rng: random.Random, mode: str, knobs: Any) -> sp.Plan:
    styles = {"agree": ("verbose", "plain"), "conflict": ("plain", "verbose"), "absent": ("plain", "plain")}
    plan["chosen_style"], plan["rejected_style"] = styles[mode]
    return plan


def _verbosity_detect(plan: sp.Plan, knobs: Any) -> tuple[bool, bool]:
    chosen, rejected = plan["chosen_style"] == "verbose", plan["rejected_style"] == "verbose"
    return chosen or rejected, not (rejected and not chosen)


def verbosity_feature() -> sp.Feature:
    """A response-level Feature Ambiguity: a verbose, explanatory style co-occurs with correctness.

    The chosen/desirable/SFT response is verbose in `rate` of examples and the
    rejected one in the rest, as in length-biased preference data.
    """
    return sp.fa_feature(
        "verbosity",
        "correct responses are written in a longer, explanatory style in `rate` of examples; "
        "incorrect ones carry that style in the rest",
        _verbosity_apply,
        _verbosity_detect,
        rest="conflict",
    )
