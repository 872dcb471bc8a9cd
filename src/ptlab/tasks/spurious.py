"""Spurious features declared as data: a per-task registry of named features.

Two artifacts, two shapes of feature (each a few pure functions over a task's
*plan*, the dict of latent choices a generator draws before rendering text):

**Feature Ambiguity** — a surface cue that *can* point at the correct behaviour.
`label(plan)` is the behaviour the cue is about (math: the final step's
operation; instruct: the case constraint; docqa: which sentence holds the
answer), or None where the plan has no such behaviour (the cue is then never
shown). `apply(plan, rng, cue)` renders the cue that points at behaviour `cue`
(None: no cue) and, where `cue` differs from the plan's own behaviour, marks
the shortcut's response (what following the cue would produce). Every example
with a label carries a cue; at rate r a share r carries the cue of its own
behaviour and the rest a cue drawn *independently* of it, from the behaviour's
marginal (`draw`). So across rates the frequency of every cue value and every
behaviour stays put; only how often they agree moves. Rate 0 is the negative
control (cue independent of the label), rate 1 the positive one (perfectly
predictive, no counterexamples).

**Distributional Narrowness** — `apply(plan, rng, "inside"|"outside")` redraws
the plan inside or outside a slice; `detect(plan)` measures membership. At rate
r a share r of the training data lies inside the slice and the rest outside it.

Evaluation (see `Task.generate`): for Feature Ambiguity, counterfactual twins —
the same plans rendered with the cue agreeing (`eval_id`), conflicting
(`eval_break`) and absent (`eval_neutral`); for Distributional Narrowness,
items inside (`eval_id`) and outside (`eval_break`) the slice.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ptlab.errors import ConfigError

FEATURE_AMBIGUITY = "feature_ambiguity"
DISTRIBUTIONAL_NARROWNESS = "distributional_narrowness"
ARTIFACTS = (FEATURE_AMBIGUITY, DISTRIBUTIONAL_NARROWNESS)

Plan = dict[str, Any]


@dataclass(frozen=True)
class SpuriousSpec:
    """Which feature, in which artifact form, at what rate of the training data."""

    feature: str
    artifact: str
    rate: float

    def __post_init__(self) -> None:
        if self.artifact not in ARTIFACTS:
            raise ConfigError(f"spurious.artifact: unknown artifact {self.artifact!r}; choose from {', '.join(ARTIFACTS)}")
        if not isinstance(self.rate, (int, float)) or not 0.0 <= float(self.rate) <= 1.0:
            raise ConfigError(f"spurious.rate: must be in [0, 1] (got {self.rate!r})")


@dataclass(frozen=True)
class Feature:
    """A named spurious feature of one task (see the module docstring for the two shapes).

    FA: `label(plan, knobs) -> str | None`, `apply(plan, rng, cue, knobs) -> plan`,
    `draw(plan, rng, knobs) -> str` (an independent draw from the label's marginal;
    None: the label of a freshly sampled plan), `absent` (whether a no-cue twin exists),
    `in_prompt` (whether the cue is in the prompt, so following a conflicting cue gives a
    response of its own: twins whose shortcut happens to give the right answer are then no
    conflict, and skipped; a cue in the responses, like verbosity's, shows in likelihoods only).
    DN: `apply(plan, rng, "inside" | "outside", knobs) -> plan`, `detect(plan, knobs) -> inside`.
    `applies(knobs)` returns None when the feature can act under these knobs, else why not.
    """

    name: str
    artifact: str
    description: str
    apply: Callable[[Plan, random.Random, Any, Any], Plan]
    label: Callable[[Plan, Any], str | None] | None = None
    draw: Callable[[Plan, random.Random, Any], str] | None = None
    detect: Callable[[Plan, Any], bool] | None = None
    absent: bool = True
    in_prompt: bool = True  # FA: the cue is in the prompt (verbosity's is in the responses)
    applies: Callable[[Any], str | None] = field(default=lambda knobs: None)

    def __post_init__(self) -> None:
        if self.artifact not in ARTIFACTS:
            raise ConfigError(f"feature {self.name!r}: unknown artifact {self.artifact!r}; choose from {', '.join(ARTIFACTS)}")
        if (self.label is None) == (self.artifact == FEATURE_AMBIGUITY):
            raise ConfigError(f"feature {self.name!r}: a {self.artifact} feature {'needs' if self.label is None else 'takes no'} label")
        if self.artifact == DISTRIBUTIONAL_NARROWNESS and self.detect is None:
            raise ConfigError(f"feature {self.name!r}: a distributional_narrowness feature needs detect")


def fa_feature(name: str, description: str, label, apply, draw=None, absent: bool = True, **kw) -> Feature:
    return Feature(name, FEATURE_AMBIGUITY, description, apply, label=label, draw=draw, absent=absent, **kw)


def dn_feature(name: str, description: str, apply, detect, **kw) -> Feature:
    return Feature(name, DISTRIBUTIONAL_NARROWNESS, description, apply, detect=detect, **kw)


_FEATURES: dict[str, dict[str, Feature]] = {}


def register_feature(task: str, feature: Feature) -> Feature:
    """Add (or replace) a feature of `task`; studies then refer to it by name."""
    _FEATURES.setdefault(task, {})[feature.name] = feature
    return feature


def features(task: str, artifact: str | None = None) -> dict[str, Feature]:
    table = _FEATURES.get(task, {})
    return {n: f for n, f in table.items() if artifact is None or f.artifact == artifact}


def resolve(task: str, spec: SpuriousSpec, knobs: Any) -> Feature:
    """The registered feature a spec names, or a ConfigError listing the valid choices."""
    table = _FEATURES.get(task, {})
    feat = table.get(spec.feature)
    if feat is None:
        valid = ", ".join(f"{n} ({f.artifact})" for n, f in sorted(table.items()))
        raise ConfigError(f"spurious.feature: {spec.feature!r} is not a feature of task {task!r}; choose from {valid}")
    if feat.artifact != spec.artifact:
        same = ", ".join(sorted(features(task, spec.artifact))) or "none"
        raise ConfigError(
            f"spurious.artifact: feature {spec.feature!r} of task {task!r} is {feat.artifact}, not {spec.artifact}; "
            f"{spec.artifact} features of {task!r}: {same}"
        )
    reason = feat.applies(knobs)
    if reason:
        raise ConfigError(f"spurious.feature: {spec.feature!r} does not apply to task {task!r} with these knobs: {reason}")
    return feat


def spiked(done: int, rate: float) -> bool:
    """Whether example number `done` (0-based, among those kept) is in the rate's share, exactly.

    floor((done + 1) r) - floor(done r): the first n examples hold round-down(n r) spiked ones,
    so the realised share is the rate, not a Bernoulli draw around it.
    """
    return int((done + 1) * rate + 1e-9) > int(done * rate + 1e-9)
