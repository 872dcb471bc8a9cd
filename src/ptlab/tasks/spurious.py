"""Spurious features declared as data: a per-task registry of named features.

A feature is a pair of pure functions over a task's *plan* (the dict of latent
choices a generator draws before rendering text):

- `apply(plan, rng, mode)` rewrites the plan so the feature is in `mode`;
- `detect(plan, knobs)` measures, after the fact, whether the feature is present
  (Feature Ambiguity) or the input lies inside the narrow slice (Distributional
  Narrowness), and whether the shortcut it offers agrees with the truth.

Modes. Feature Ambiguity: "agree" (the surface feature co-occurs with the
correct behaviour), "conflict" (present but pointing the wrong way), "absent".
Distributional Narrowness: "inside" / "outside" the slice, or None for a draw
from the full distribution. Training and in-distribution splits use `rate`
of the spiked mode and the feature's `rest` mode otherwise; the
shortcut-breaking split uses `breaking` for every example. Tags on the
examples come from `detect`, so the rates a card reports are measured.
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
    """A named spurious feature of one task.

    `apply(plan, rng, mode, knobs) -> plan`; `detect(plan, knobs) -> (present, agrees)`.
    `rest` is the mode of the (1 - rate) remainder of training data; `breaking`
    the mode of the shortcut-breaking split. `applies(knobs)` returns None when
    the feature can act under these difficulty knobs, else the reason it cannot.
    """

    name: str
    artifact: str
    description: str
    apply: Callable[[Plan, random.Random, str, Any], Plan]
    detect: Callable[[Plan, Any], tuple[bool, bool]]
    rest: str | None = "absent"
    spiked: str = "agree"
    breaking: str = "conflict"
    applies: Callable[[Any], str | None] = field(default=lambda knobs: None)

    def __post_init__(self) -> None:
        if self.artifact not in ARTIFACTS:
            raise ConfigError(f"feature {self.name!r}: unknown artifact {self.artifact!r}; choose from {', '.join(ARTIFACTS)}")


def fa_feature(name: str, description: str, apply, detect, rest: str = "absent", **kw) -> Feature:
    return Feature(name, FEATURE_AMBIGUITY, description, apply, detect, rest=rest, spiked="agree", breaking="conflict", **kw)


def dn_feature(name: str, description: str, apply, detect, **kw) -> Feature:
    return Feature(name, DISTRIBUTIONAL_NARROWNESS, description, apply, detect, rest=None, spiked="inside", breaking="outside", **kw)


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


def mode_for(feat: Feature | None, rate: float, breaking: bool, rng: random.Random) -> str | None:
    """The mode of one example: the breaking mode, else `spiked` with probability `rate`."""
    if feat is None:
        return None
    if breaking:
        return feat.breaking
    return feat.spiked if rng.random() < rate else feat.rest
