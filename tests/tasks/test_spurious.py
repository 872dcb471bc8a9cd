"""Spurious features: measured rates match the spec, breaking splits break, bad specs are one-line errors."""

import random

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
from ptlab.tasks.spurious import dn_feature

ALL = [(task, name, f.artifact) for task in ("math", "instruct", "docqa") for name, f in features(task).items()]


@pytest.mark.parametrize("task", ["math", "instruct", "docqa"])
def test_at_least_two_features_per_artifact(task):
    assert len(features(task, FEATURE_AMBIGUITY)) >= 2
    assert len(features(task, DISTRIBUTIONAL_NARROWNESS)) >= 2


@pytest.mark.parametrize("task, feature, artifact", ALL)
@pytest.mark.parametrize("rate", [0.1, 0.9])
def test_training_rate_is_realised_and_breaking_split_breaks(task, feature, artifact, rate):
    t = get_task(task)
    spec = SpuriousSpec(feature, artifact, rate)
    train = t.generate(1500, seed=0, split="train", spurious=spec)
    realised = sum(ex.has_feature and ex.shortcut_agrees for ex in train) / len(train)
    if artifact == FEATURE_AMBIGUITY:
        assert realised == pytest.approx(rate, abs=0.035)
    else:  # the rest comes from the full distribution, which also lands in the slice sometimes
        assert rate - 0.035 <= realised <= rate + (1 - rate) * 0.6
    brk = t.generate(300, seed=0, split="eval_break", spurious=spec)
    assert not any(ex.shortcut_agrees for ex in brk)
    # every example still has a correct chosen and an incorrect rejected response
    assert all(t.verify(ex, ex.chosen)["correct"] for ex in train[:300] + brk)
    assert not any(t.verify(ex, ex.rejected)["correct"] for ex in train[:300] + brk)


def test_fa_cue_is_visible_in_the_text():
    t = get_task("math")
    spec = SpuriousSpec("altogether_cue", FEATURE_AMBIGUITY, 0.9)
    for ex in t.generate(300, seed=1, spurious=spec) + t.generate(100, seed=1, split="eval_break", spurious=spec):
        assert ("altogether" in ex.prompt) == ex.has_feature
        if ex.has_feature:
            last_plus = ex.meta["ops"][-1] == "+"
            assert last_plus == ex.shortcut_agrees
    brk = t.generate(100, seed=1, split="eval_break", spurious=spec)
    assert sum(ex.error == "shortcut" for ex in brk) >= 90  # the rejected response follows the cue


def test_verbosity_separates_chosen_from_rejected_at_the_rate():
    t = get_task("docqa")
    exs = t.generate(2000, seed=0, spurious=SpuriousSpec("verbosity", FEATURE_AMBIGUITY, 0.9))
    chosen_longer = sum(len(ex.chosen) > len(ex.rejected) for ex in exs) / len(exs)
    assert chosen_longer == pytest.approx(0.9, abs=0.03)


def test_docqa_answer_first_breaking_puts_a_distractor_first():
    t = get_task("docqa")
    spec = SpuriousSpec("answer_first", FEATURE_AMBIGUITY, 0.9)
    for ex in t.generate(100, seed=0, split="eval_break", spurious=spec):
        doc = ex.prompt.split("\nQuestion:")[0]
        first = doc.split(". ")[0]
        assert ex.answer not in first
        assert ex.rejected.split("Final answer: ")[-1] in first


def test_spec_errors_list_the_valid_choices():
    t = get_task("math")
    with pytest.raises(ConfigError, match="unknown artifact 'narrow'; choose from feature_ambiguity, distributional_narrowness"):
        SpuriousSpec("altogether_cue", "narrow", 0.5)
    with pytest.raises(ConfigError, match=r"spurious.rate: must be in \[0, 1\] \(got 1.5\)"):
        SpuriousSpec("altogether_cue", FEATURE_AMBIGUITY, 1.5)
    with pytest.raises(ConfigError, match="'answer_first' is not a feature of task 'math'; choose from add_sub_only"):
        t.generate(1, spurious=SpuriousSpec("answer_first", FEATURE_AMBIGUITY, 0.5))
    with pytest.raises(ConfigError, match="is feature_ambiguity, not distributional_narrowness.*: add_sub_only, fewest_steps"):
        t.generate(1, spurious=SpuriousSpec("altogether_cue", DISTRIBUTIONAL_NARROWNESS, 0.5))
    with pytest.raises(ConfigError, match="does not apply.*needs operation\\(s\\) \\+ in knobs.ops"):
        t.generate(1, spurious=SpuriousSpec("altogether_cue", FEATURE_AMBIGUITY, 0.5), ops="*-")
    with pytest.raises(ConfigError, match="fewest_steps.*does not apply.*needs max_steps > min_steps"):
        t.generate(1, spurious=SpuriousSpec("fewest_steps", DISTRIBUTIONAL_NARROWNESS, 0.5), min_steps=2, max_steps=2)


def test_users_can_register_their_own_feature():
    from ptlab.tasks.math import fill_numbers

    def apply(plan, rng: random.Random, mode, knobs):
        plan["name"] = ("Zed", "He", "him") if mode == "inside" else plan["name"]
        if mode == "outside" and plan["name"][0] == "Zed":
            plan["name"] = ("Ada", "She", "her")
        return fill_numbers(plan, rng, knobs)

    def detect(plan, knobs):
        return plan["name"][0] == "Zed", plan["name"][0] == "Zed"

    register_feature("math", dn_feature("zed_only", "only problems about Zed", apply, detect))
    try:
        exs = get_task("math").generate(500, seed=0, spurious=SpuriousSpec("zed_only", DISTRIBUTIONAL_NARROWNESS, 0.8))
        share = sum("Zed" in ex.prompt for ex in exs) / len(exs)
        assert 0.75 <= share <= 0.85
    finally:
        from ptlab.tasks.spurious import _FEATURES

        _FEATURES["math"].pop("zed_only")
