"""Spurious features: rates follow the documented design, evaluation splits hold / break / drop the shortcut,
tags match the text, bad specs are one-line errors. The text-level statistics of the design (marginals, chance
agreement, twins) are in `test_rate_design.py`; this file covers every registered feature."""

import random
import re
from math import sqrt

import pytest

from ptlab.errors import ConfigError
from ptlab.tasks import (
    DISTRIBUTIONAL_NARROWNESS,
    FEATURE_AMBIGUITY,
    SpuriousSpec,
    features,
    get_task,
    register_feature,
)
from ptlab.tasks import docqa as dq
from ptlab.tasks import instruct as ins
from ptlab.tasks import math as mt
from ptlab.tasks.spurious import dn_feature, spiked

ALL = [(task, name, f.artifact) for task in ("math", "instruct", "docqa") for name, f in features(task).items()]
FA_ALL = [(task, name) for task, name, artifact in ALL if artifact == FEATURE_AMBIGUITY]
DN_ALL = [(task, name) for task, name, artifact in ALL if artifact == DISTRIBUTIONAL_NARROWNESS]
N_TRAIN, N_EVAL = 1500, 300


def within(observed: float, expected: float, n: int, what: str, k: float = 4.0) -> None:
    """`observed` share is `expected` up to k binomial standard errors of n draws."""
    se = sqrt(expected * (1 - expected) / n) if n else 0.0
    assert abs(observed - expected) <= k * se + 1e-12, f"{what}: {observed:.4f}, expected {expected:.4f} ± {k * se:.4f}"


def rejected_is_a_mistake(task, ex) -> bool:
    """The rejected response is wrong; docqa's habit (the whole sentence) picks the right fact in the wrong format,
    so it is wrong under exact match only (`correct` is fact selection)."""
    verdict = task.verify(ex, ex.rejected)
    if ex.error == "whole_sentence":
        return verdict["fact_selected"] and verdict["exact_match"] == 0.0
    return not verdict["correct"]


@pytest.mark.parametrize("task", ["math", "instruct", "docqa"])
def test_at_least_two_features_per_artifact(task):
    assert len(features(task, FEATURE_AMBIGUITY)) >= 2
    assert len(features(task, DISTRIBUTIONAL_NARROWNESS)) >= 2


@pytest.mark.parametrize("task, feature", FA_ALL)
@pytest.mark.parametrize("rate", [0.1, 0.9])
def test_fa_cues_follow_the_rate_and_twins_hold_break_and_drop_the_cue(task, feature, rate):
    t = get_task(task)
    spec = SpuriousSpec(feature, FEATURE_AMBIGUITY, rate)
    train = t.generate(N_TRAIN, seed=0, split="train", spurious=spec)
    labelled = [ex.meta["label"] is not None for ex in train]
    assert sum(labelled) > N_TRAIN / 5
    # the schedule counts the examples the cue can be about (instruct: those with a case constraint)
    order = {ex.id: j for j, ex in enumerate(e for e in train if e.meta["label"] is not None)}
    for ex in train:
        label, cue = ex.meta["label"], ex.meta["cue"]
        assert (cue is not None) == (label is not None) == ex.has_feature  # every labelled example carries a cue
        assert ex.shortcut_agrees == (cue == label or cue is None)
        if label is not None and spiked(order[ex.id], rate):  # the scheduled share r: the cue of its own behaviour
            assert cue == label, (ex.id, ex.meta)
    scheduled = sum(spiked(j, rate) for j in range(len(order)))
    assert scheduled == int(len(order) * rate + 1e-9)  # exactly the rate's share of the labelled examples
    # the rest draw their cue independently of the behaviour: they agree as often as the cues of rate 0 do, on the
    # same plans (the seed fixes the plans at every rate; only the cue assignment moves)
    zero = t.generate(N_TRAIN, seed=0, split="train", spurious=SpuriousSpec(feature, FEATURE_AMBIGUITY, 0.0))
    assert [e.meta["label"] for e in zero] == [e.meta["label"] for e in train]
    chance = sum(e.shortcut_agrees for e in zero if e.has_feature) / sum(e.has_feature for e in zero)
    rest = [ex.shortcut_agrees for ex in train if ex.has_feature and not spiked(order[ex.id], rate)]
    within(sum(rest) / len(rest), chance, len(rest), f"{task}/{feature}: agreement of the unscheduled cues at {rate}")
    assert chance < 0.6  # an independent cue is no proxy for the behaviour

    twins = {s: t.generate(N_EVAL, seed=0, split=s, spurious=spec)
             for s in ("eval_id", "eval_break") + (("eval_neutral",) if features(task)[feature].absent else ())}
    for s, exs in twins.items():
        assert [e.meta["twin"] for e in exs] == [e.meta["twin"] for e in twins["eval_id"]], s
        assert [e.meta["label"] for e in exs] == [e.meta["label"] for e in twins["eval_id"]], s
    assert all(e.has_feature and e.shortcut_agrees and e.meta["cue"] == e.meta["label"] for e in twins["eval_id"])
    assert all(e.has_feature and not e.shortcut_agrees and e.meta["cue"] not in (None, e.meta["label"])
               for e in twins["eval_break"])
    if features(task)[feature].in_prompt:  # the rejected response is the one following the cue
        assert all(e.error == "shortcut" for e in twins["eval_break"])
    for e in twins.get("eval_neutral", []):
        assert not e.has_feature and e.shortcut_agrees and e.meta["cue"] is None
    if "eval_neutral" not in twins:  # a cue that cannot be absent (answer_first: some sentence opens the document)
        with pytest.raises(ConfigError, match="eval_neutral needs a feature_ambiguity feature that can be absent"):
            t.generate(1, seed=0, split="eval_neutral", spurious=spec)
    # every example still has a correct chosen and an incorrect rejected response
    checked = train[:N_EVAL] + [e for exs in twins.values() for e in exs]
    assert all(t.verify(ex, ex.chosen)["correct"] for ex in checked)
    assert all(rejected_is_a_mistake(t, ex) for ex in checked)


def _math_small(ex):
    quantities = [ex.meta["start"]] + [b for op, b in zip(ex.meta["ops"], ex.meta["operands"]) if op in "+-"]
    return max(quantities) <= mt.MathKnobs().max_number // 2


# Membership of each narrow slice, read from the rendered example's metadata (default knobs).
INSIDE = {
    "small_numbers": _math_small,
    "add_sub_only": lambda ex: set(ex.meta["ops"]) <= set("+-"),
    "fewest_steps": lambda ex: ex.meta["steps"] == mt.MathKnobs().min_steps,
    "lexical_only": lambda ex: set(ex.meta["constraints"]) <= set(ins.LEXICAL),
    "fewest_constraints": lambda ex: ex.meta["n_constraints"] == ins.InstructKnobs().min_constraints,
    "founding_only": lambda ex: ex.meta["relation"] in dq.NARROW_RELATIONS,
    "short_documents": lambda ex: ex.meta["doc_sentences"] - dq.DocQAKnobs().facts <= dq.DocQAKnobs().min_distractors,
}


def test_every_dn_feature_has_a_membership_check():
    assert {name for _, name in DN_ALL} == set(INSIDE)


@pytest.mark.parametrize("task, feature", DN_ALL)
@pytest.mark.parametrize("rate", [0.1, 0.9])
def test_dn_training_share_inside_is_exactly_the_rate_eval_id_inside_eval_break_outside(task, feature, rate):
    t = get_task(task)
    spec = SpuriousSpec(feature, DISTRIBUTIONAL_NARROWNESS, rate)
    train = t.generate(N_TRAIN, seed=0, split="train", spurious=spec)
    inside = [INSIDE[feature](ex) for ex in train]
    assert inside == [spiked(i, rate) for i in range(N_TRAIN)]  # the rest lies outside, not in the full distribution
    assert sum(inside) == int(N_TRAIN * rate + 1e-9)
    assert inside == [ex.has_feature for ex in train] == [ex.shortcut_agrees for ex in train]
    ids = t.generate(N_EVAL, seed=0, split="eval_id", spurious=spec)
    brk = t.generate(N_EVAL, seed=0, split="eval_break", spurious=spec)
    assert all(INSIDE[feature](ex) and ex.has_feature and ex.shortcut_agrees for ex in ids)
    assert not any(INSIDE[feature](ex) or ex.has_feature or ex.shortcut_agrees for ex in brk)
    with pytest.raises(ConfigError, match="eval_neutral needs a feature_ambiguity feature"):
        t.generate(1, seed=0, split="eval_neutral", spurious=spec)
    # every example still has a correct chosen and an incorrect rejected response
    checked = train[:N_EVAL] + ids + brk
    assert all(t.verify(ex, ex.chosen)["correct"] for ex in checked)
    assert all(rejected_is_a_mistake(t, ex) for ex in checked)


WORD_OP = {w: op for op, w in mt.QUESTION_CUES.items()}
CUE_CASE = {adj: case for case, adj in ins.CASE_CUES.items()}


def _math_cue(ex) -> tuple[str | None, str]:
    """(the operation the question's closing words name, None for "now"; the final step's operation)."""
    closing = re.search(r" have ([a-z ]+)\?\nAnswer:\n$", ex.prompt).group(1)
    assert closing in WORD_OP or closing == "now", ex.prompt
    return WORD_OP.get(closing), ex.meta["ops"][-1]


def _instruct_cue(ex) -> tuple[str | None, str | None]:
    """(the case the request's adjective names, None for an ordinary adjective; the case constraint, if any)."""
    adj = re.match(r"Instruction: Write an? ([a-z]+) ", ex.prompt).group(1)
    cases = [c for c in ex.meta["constraints"] if c in ins.CASE_CUES]
    return CUE_CASE.get(adj), (cases[0] if cases else None)


@pytest.mark.parametrize("task, feature, read, cues", [("math", "altogether_cue", _math_cue, set(mt.QUESTION_CUES)),
                                                       ("instruct", "urgent_cue", _instruct_cue, set(ins.CASE_CUES))])
def test_fa_cue_is_visible_in_the_text_and_the_tags_say_what_it_shows(task, feature, read, cues):
    t = get_task(task)
    spec = SpuriousSpec(feature, FEATURE_AMBIGUITY, 0.5)
    splits = {s: t.generate(n, seed=1, split=s, spurious=spec)
              for s, n in (("train", 400), ("eval_id", 100), ("eval_break", 100), ("eval_neutral", 100))}
    seen = set()
    for split, exs in splits.items():
        for ex in exs:
            cue, behaviour = read(ex)
            seen.add(cue)
            assert ex.meta["cue"] == cue and ex.meta["label"] == behaviour, (split, ex.prompt, ex.meta)
            assert ex.has_feature == (cue is not None), (split, ex.prompt)
            assert ex.shortcut_agrees == (cue is None or cue == behaviour), (split, ex.prompt)
            if behaviour is None:  # instruct without a case constraint: nothing for the cue to be about
                assert split == "train" and cue is None
    assert seen == {None} | cues  # every cue value shows, and the absent twin
    assert all(read(ex)[0] == read(ex)[1] for ex in splits["eval_id"])
    assert all(read(ex)[0] not in (None, read(ex)[1]) for ex in splits["eval_break"])
    assert all(read(ex)[0] is None for ex in splits["eval_neutral"])


@pytest.mark.parametrize("task", ["math", "docqa"])
@pytest.mark.parametrize("rate", [0.1, 0.9])
def test_verbosity_makes_the_chosen_response_the_longer_one_at_the_rate_else_at_random(task, rate):
    """The cue is which response of the pair is verbose: the chosen one in an exact share `rate`, otherwise either
    one with even odds (math and docqa: the verbose response is always the longer one)."""
    n = 2000
    exs = get_task(task).generate(n, seed=0, spurious=SpuriousSpec("verbosity", FEATURE_AMBIGUITY, rate))
    chosen_longer = [len(ex.chosen) > len(ex.rejected) for ex in exs]
    assert chosen_longer == [ex.meta["cue"] == "chosen" for ex in exs]
    assert all(chosen_longer[i] for i in range(n) if spiked(i, rate))
    rest = [c for i, c in enumerate(chosen_longer) if not spiked(i, rate)]
    within(sum(rest) / len(rest), 0.5, len(rest), f"{task}: chosen longer outside the rate's share")


def test_spec_errors_list_the_valid_choices():
    t = get_task("math")
    with pytest.raises(ConfigError, match="unknown artifact 'narrow'; choose from feature_ambiguity, distributional_narrowness"):
        SpuriousSpec("altogether_cue", "narrow", 0.5)
    with pytest.raises(ConfigError, match=r"spurious.rate: must be in \[0, 1\] \(got 1.5\)"):
        SpuriousSpec("altogether_cue", FEATURE_AMBIGUITY, 1.5)
    with pytest.raises(ConfigError, match="'answer_first' is not a feature of task 'math'; choose from add_sub_only"):
        t.generate(1, spurious=SpuriousSpec("answer_first", FEATURE_AMBIGUITY, 0.5))
    with pytest.raises(ConfigError, match="'each_cue' is not a feature of task 'math'; choose from add_sub_only"):
        t.generate(1, spurious=SpuriousSpec("each_cue", FEATURE_AMBIGUITY, 0.5))  # removed in the redesign
    with pytest.raises(ConfigError, match="is feature_ambiguity, not distributional_narrowness.*: add_sub_only, fewest_steps"):
        t.generate(1, spurious=SpuriousSpec("altogether_cue", DISTRIBUTIONAL_NARROWNESS, 0.5))
    with pytest.raises(ConfigError, match="altogether_cue.*does not apply.*needs more than one operation in knobs.ops"):
        t.generate(1, spurious=SpuriousSpec("altogether_cue", FEATURE_AMBIGUITY, 0.5), ops="*")
    assert t.generate(5, spurious=SpuriousSpec("altogether_cue", FEATURE_AMBIGUITY, 0.5), ops="*-")  # any two will do
    with pytest.raises(ConfigError, match="fewest_steps.*does not apply.*needs max_steps > min_steps"):
        t.generate(1, spurious=SpuriousSpec("fewest_steps", DISTRIBUTIONAL_NARROWNESS, 0.5), min_steps=2, max_steps=2)
    with pytest.raises(ConfigError, match="urgent_cue.*does not apply.*needs constraint type\\(s\\) lowercase"):
        get_task("instruct").generate(1, spurious=SpuriousSpec("urgent_cue", FEATURE_AMBIGUITY, 0.5),
                                      types=["uppercase", "bullets"])


def test_users_can_register_their_own_feature():
    from ptlab.tasks.math import fill_numbers

    def apply(plan, rng: random.Random, mode, knobs):
        plan["name"] = ("Zed", "He", "him") if mode == "inside" else plan["name"]
        if mode == "outside" and plan["name"][0] == "Zed":
            plan["name"] = ("Ada", "She", "her")
        return fill_numbers(plan, rng, knobs)

    def detect(plan, knobs):
        return plan["name"][0] == "Zed"

    register_feature("math", dn_feature("zed_only", "only problems about Zed", apply, detect))
    try:
        exs = get_task("math").generate(500, seed=0, spurious=SpuriousSpec("zed_only", DISTRIBUTIONAL_NARROWNESS, 0.8))
        about_zed = [ex.prompt.startswith("Question: Zed ") for ex in exs]
        assert about_zed == [ex.has_feature for ex in exs]
        assert sum(about_zed) == 400  # exactly the rate
    finally:
        from ptlab.tasks.spurious import _FEATURES

        _FEATURES["math"].pop("zed_only")
