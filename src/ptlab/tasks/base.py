"""The shape every task shares: knobs -> plan -> (spurious feature) -> text.

A task draws a *plan* (the latent choices of one example), lets the spurious
feature rewrite it, and renders prompt, a correct response and a realistic
incorrect one. Keeping the plan separate from the text is what lets features
be data (functions over plans) rather than branches inside each generator.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from pydantic import ValidationError

from ptlab.config import Strict, format_validation_error
from ptlab.errors import ConfigError, DataError
from ptlab.tasks import spurious as sp

SPLITS = ("train", "eval_id", "eval_break", "eval_neutral")
TASKS_VERSION = "tasks-v6"  # bump when generators change what a seed produces (invalidates cached data and `tiny`)
STYLES = ("plain", "verbose")
# Default share of incorrect responses (outside a shortcut) that are the task's habitual mistake rather than another
# realistic one: `tiny` greedily makes the habit, so preference data that never showed it could not correct it.
HABIT_SHARE = 0.25
FA_VARIANT = {"eval_id": "agree", "eval_break": "conflict", "eval_neutral": "absent"}


def prompt_key(prompt: str) -> int:
    """A 64-bit key of a prompt, for deduplicating evaluation against training and pretraining text."""
    return int.from_bytes(hashlib.blake2b(prompt.encode("utf-8"), digest_size=8).digest(), "big")


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

    def verify_row(self, row: dict, response: str) -> dict:
        """Score a response to a data row (TRL row with `answer` and the example's metadata); tasks whose verdict
        needs more than the gold read it from the row."""
        return self.verify(row["answer"], response)

    def habitual_mistake(self, plan: sp.Plan) -> tuple[str, str] | None:
        """(error, response) for the one mistake a careless writer makes the same way every time, or None.

        Realistic mistakes vary (which step, which constraint), so greedy decoding
        averages them away; a habit does not. Pretraining `tiny` on a corpus where
        the habit outweighs the correct response gives a base that has the skill
        but not the behaviour, which is the gap post-training closes. Must not
        draw from an rng, so `generate(habits=True)` yields the same prompts.
        """
        return None

    # -- variation a teacher draws from (ptlab.synth's simulated teacher); defaults: a task without variation --
    def solution_paths(self, plan: sp.Plan, n: int, knobs: Any = None) -> list[str]:
        """Up to `n` distinct correct responses to `plan`, deterministic in (plan, n), the chosen one first."""
        return [self._rerender(plan, "paths", knobs)["chosen"]]

    def wrong_solution(self, plan: sp.Plan, rng: random.Random, knobs: Any = None, paths: int = 1) -> tuple[str, str]:
        """(error, response): one incorrect response, its mistake drawn by `rng`, written like one of the first
        `paths` solution paths."""
        r = self.render(styled(plan), rng, knobs or self.knobs())
        return r["error"], r["rejected"]

    def wordings(self, plan: sp.Plan, n: int, knobs: Any = None) -> list[str]:
        """Up to `n` distinct prompts of `plan` with its meaning, deterministic in (plan, n). Default: renderings
        under other rngs that leave the plan as it was (a render that redraws part of it changes the meaning)."""
        out: list[str] = []
        for j in range(8 * n):
            p = styled(plan)
            r = self.render(p, random.Random(f"{self.name}|wording-{j}|{_plan_hash(plan)}"), knobs or self.knobs())
            if p == styled(plan) and r["prompt"] not in out:
                out.append(r["prompt"])
                if len(out) >= n:
                    break
        return out

    def perturb_plan(self, plan: sp.Plan, rng: random.Random, knobs: Any = None) -> sp.Plan:
        """The plan with its meaning changed (another answer); default: another plan."""
        return self.sample_plan(rng, knobs or self.knobs())

    def near_plan(self, plan: sp.Plan | None, rng: random.Random, knobs: Any = None) -> sp.Plan:
        """A new plan like `plan` (a seed), from the same distribution; default: a fresh draw."""
        return self.sample_plan(rng, knobs or self.knobs())

    def far_plan(self, rng: random.Random, knobs: Any = None) -> sp.Plan:
        """A plan off the distribution `knobs` describe; default: a fresh draw (the task declares no shift)."""
        return self.sample_plan(rng, knobs or self.knobs())

    def parse_plan(self, prompt: str) -> sp.Plan | None:
        """The plan behind a prompt this task renders, or None (ill-formed, or the task cannot read prompts)."""
        return None

    def _rerender(self, plan: sp.Plan, salt: str, knobs: Any) -> dict:
        return self.render(styled(plan), random.Random(f"{self.name}|{salt}|{_plan_hash(plan)}"), knobs or self.knobs())

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
        habit_share: float = HABIT_SHARE,
        exclude: Collection[int] = (),
        **knobs: Any,
    ) -> list[Example]:
        """`n` examples, deterministic in (task, seed, split, spurious, knobs, exclude).

        Example i is drawn from its own rng, so the same seed gives the same plans at
        every rate: only the feature's assignment changes with it. Feature Ambiguity's
        evaluation splits are counterfactual twins of one plan stream (`eval_id`: the
        cue agrees, `eval_break`: it conflicts, `eval_neutral`: absent); prompts are
        distinct within an evaluation split. Examples whose prompt (any twin's prompt)
        has its `prompt_key` in `exclude` are skipped. `rejected` is the task's
        habitual mistake in `habit_share` of the examples where it has one (all with
        `habits=True`), else a realistic mistake; in evaluation splits, the shortcut's
        response where the cue conflicts. Training never gets the shortcut's response:
        the kinds of mistakes would then move with the rate, and preference data would
        carry an explicit lesson against the cue that SFT never sees.
        """
        if split not in SPLITS:
            raise ConfigError(f"split: unknown split {split!r}; choose from {', '.join(SPLITS)}")
        if not 0.0 <= habit_share <= 1.0:
            raise ConfigError(f"habit_share: must be in [0, 1] (got {habit_share!r})")
        k = self.knobs(**knobs)
        if isinstance(spurious, dict):  # as written in a config
            spurious = sp.SpuriousSpec(**spurious)
        feat = sp.resolve(self.name, spurious, k) if spurious is not None else None
        rate = float(spurious.rate) if spurious is not None else 0.0
        fa = feat is not None and feat.artifact == sp.FEATURE_AMBIGUITY
        if split == "eval_neutral" and not (fa and feat.absent):
            raise ConfigError(f"split: eval_neutral needs a feature_ambiguity feature that can be absent "
                              f"({feat.name if feat else 'no feature'} cannot)")
        twins = fa and split != "train"
        stream = "twins" if twins else split  # the twins of one plan share its stream, whichever split asks
        share = 1.0 if habits else habit_share
        out: list[Example] = []
        seen: set[str] = set()
        i = labelled = 0  # labelled: examples the cue can be about, so far (the rate's share is of those)
        while len(out) < n:
            if i >= 50 * n + 200:
                raise DataError(f"task {self.name}: only {len(out)} of {n} {split} examples could be drawn "
                                f"that are distinct and not excluded; lower n or widen the knobs")
            rng = random.Random(f"{self.name}|{stream}|{seed}|{i}")
            i += 1
            plan = self.sample_plan(rng, k)
            plan.setdefault("chosen_style", "plain")
            plan.setdefault("rejected_style", "plain")
            habit_coin = rng.random() < share
            if feat is None:
                variants = {None: (plan, None, None)}
            elif not fa:
                inside = split == "eval_id" or (split == "train" and sp.spiked(len(out), rate))
                plan = feat.apply(plan, rng, "inside" if inside else "outside", k)
                variants = {None: (plan, None, None)}
            else:
                label = feat.label(plan, k)
                if label is None and twins:
                    continue  # twins only of items the cue can be about
                variants = self._cue_variants(feat, plan, label, rng, k, labelled, rate, twins)
                labelled += label is not None
                if variants is None:
                    continue
            rendered = {}
            for name, (p, label, cue) in variants.items():
                if split == "train":  # a shortcut's response only where it is measured (breaking pairs): in training
                    p["shortcut"] = None  # a conflicting cue gets the same kinds of mistakes as any other example
                r = self.render(p, random.Random(f"{self.name}|{stream}|{seed}|{i}|render"), k)
                rendered[name] = (p, label, cue, r)
            if twins and feat.in_prompt and rendered["conflict"][3]["error"] != "shortcut":
                continue  # following the cue happens to be right here (2 + 2 = 2 * 2): no conflict to show
            prompts = [r["prompt"] for *_, r in rendered.values()]
            if exclude and any(prompt_key(q) in exclude for q in prompts):
                continue
            if split != "train":
                if prompts[0] in seen:
                    continue
                seen.add(prompts[0])
            p, label, cue, r = rendered[FA_VARIANT[split] if twins else None]
            if habit_coin and r["error"] != "shortcut":
                habit = self.habitual_mistake(p)
                if habit is not None:
                    r["error"], r["rejected"] = habit
            meta = dict(r.get("meta", {}))
            if fa:
                present, agrees = cue is not None, cue is None or cue == label
                meta.update({"label": label, "cue": cue})
                if twins:
                    meta["twin"] = f"{self.name}-twins-{seed}-{i - 1}"
            elif feat is not None:
                present = agrees = bool(feat.detect(p, k))
            else:
                present, agrees = False, True
            out.append(Example(
                id=f"{self.name}-{split}-{seed}-{i - 1}", task=self.name, split=split, prompt=r["prompt"],
                chosen=r["chosen"], rejected=r["rejected"], answer=r["answer"], error=r["error"],
                feature=feat.name if feat else None, artifact=feat.artifact if feat else None,
                has_feature=bool(present), shortcut_agrees=bool(agrees), meta=meta,
            ))
        return out

    def _cue_variants(self, feat: sp.Feature, plan: sp.Plan, label, rng: random.Random, k, done: int, rate: float,
                      twins: bool) -> dict | None:
        """{variant: (plan, label, cue)} — one training draw, or every twin of an evaluation item (None: skip)."""
        def draw_other(exclude_label):
            for _ in range(100):
                v = feat.draw(plan, rng, k) if feat.draw else feat.label(self.sample_plan(rng, k), k)
                if v is not None and v != exclude_label:
                    return v
            return None

        if not twins:
            if label is None:
                return {None: (plan, None, None)}
            cue = label if sp.spiked(done, rate) else draw_other(None)
            return {None: (feat.apply(plan, rng, cue, k), label, cue)}
        cue_rng_state = rng.getstate()
        conflict = draw_other(label)
        if conflict is None:
            return None
        out = {}
        for variant, cue in (("agree", label), ("conflict", conflict), ("absent", None)):
            if cue is None and not feat.absent:
                continue
            rng.setstate(cue_rng_state)
            out[variant] = (feat.apply(copy.deepcopy(plan), rng, cue, k), label, cue)
        return out


def _plan_hash(plan: sp.Plan) -> str:
    return hashlib.blake2b(json.dumps(plan, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()


def styled(plan: sp.Plan) -> sp.Plan:
    """A copy of `plan` ready to render (plain styles where it names none)."""
    plan = copy.deepcopy(plan)
    plan.setdefault("chosen_style", "plain")
    plan.setdefault("rejected_style", "plain")
    return plan


def pick(rng: random.Random, seq):
    """`rng.choice` at a third of the cost (one C call): generators draw millions of these."""
    return seq[int(rng.random() * len(seq))]


# -- the response-style feature every task shares -----------------------------

_STYLES = {"chosen": ("verbose", "plain"), "rejected": ("plain", "verbose"), None: ("plain", "plain")}


def _verbosity_apply(plan: sp.Plan, rng: random.Random, cue: str | None, knobs: Any) -> sp.Plan:
    plan["chosen_style"], plan["rejected_style"] = _STYLES[cue]
    return plan


def verbosity_feature() -> sp.Feature:
    """A response-level Feature Ambiguity: a verbose, explanatory style co-occurs with correctness.

    The label is "chosen" (the correct response); the cue is which response of the pair
    is verbose: the chosen one in `rate` of examples, otherwise either one at random (as in
    length-biased preference data). Prompts do not change, so it shows in likelihoods only.
    """
    return sp.fa_feature(
        "verbosity",
        "the correct response is the verbose one of the pair in `rate` of examples; otherwise either is, at random",
        label=lambda plan, knobs: "chosen",
        apply=_verbosity_apply,
        draw=lambda plan, rng, knobs: pick(rng, ("chosen", "rejected")),
        in_prompt=False,
    )
