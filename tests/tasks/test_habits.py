"""Habitual mistakes: the one error each task's careless writer makes every time (used to pretrain `tiny`)."""

import pytest

from ptlab.tasks import get_task
from ptlab.tasks.corpus import corpus_examples, pretrain_texts

HABITS = {"math": "forgets_last_step", "instruct": "chatty_sign_off", "docqa": "whole_sentence"}


@pytest.mark.parametrize("name", sorted(HABITS))
def test_habits_change_only_the_rejected_response_and_are_wrong(name):
    task = get_task(name)
    plain, habitual = task.generate(300, seed=4), task.generate(300, seed=4, habits=True)
    assert [(e.prompt, e.chosen, e.answer) for e in plain] == [(e.prompt, e.chosen, e.answer) for e in habitual]
    with_habit = [e for e in habitual if e.error == HABITS[name]]
    assert len(with_habit) >= 100  # most prompts admit the habit
    assert all(task.verify(e, e.chosen)["correct"] for e in habitual)
    assert not any(task.verify(e, e.rejected)["correct"] for e in habitual if e.error != "whole_sentence")
    if name == "docqa":  # the whole sentence: the right fact (the decision) in the wrong format (exact match)
        assert all(task.verify(e, e.rejected)["fact_selected"] and task.verify(e, e.rejected)["exact_match"] == 0.0
                   for e in with_habit)
    else:
        assert not any(task.verify(e, e.rejected)["correct"] for e in with_habit)


def test_math_habit_stops_one_step_early():
    task = get_task("math")
    for ex in task.generate(100, seed=5, habits=True):
        if ex.meta["steps"] == 1:
            assert ex.error != "forgets_last_step"  # nothing to forget: a realistic mistake instead
            continue
        assert ex.error == "forgets_last_step"
        assert ex.rejected.count(" = ") == ex.chosen.count(" = ") - 1
        assert ex.chosen.splitlines()[:-2] == ex.rejected.splitlines()[:-1]


def test_instruct_habit_is_a_sign_off_only_where_it_breaks_a_constraint():
    task = get_task("instruct")
    for ex in task.generate(200, seed=6, habits=True):
        signed = ex.chosen + ("\n" if "\n" in ex.chosen else " ") + "Hope this helps!"
        if ex.error == "chatty_sign_off":
            assert ex.rejected == signed
        else:
            assert task.verify(ex, signed)["correct"]


def test_docqa_habit_copies_the_sentence_around_the_span():
    task = get_task("docqa")
    for ex in task.generate(100, seed=7, habits=True):
        said = ex.rejected.removeprefix("Final answer: ")
        assert said in ex.prompt and ex.answer in said and said != ex.answer
        assert 0 < task.verify(ex, ex.rejected)["f1"] < 1


@pytest.mark.parametrize("name", sorted(HABITS))
def test_habits_keep_the_rejected_style_of_the_verbosity_feature(name):
    task = get_task(name)
    spec = {"feature": "verbosity", "artifact": "feature_ambiguity", "rate": 0.0}  # rejected is verbose
    verbose = [e for e in task.generate(200, seed=9, spurious=spec, habits=True) if e.error == HABITS[name]]
    plain = [e for e in task.generate(200, seed=9, habits=True) if e.error == HABITS[name]]
    assert verbose and plain
    assert sum(len(e.rejected) for e in verbose) / len(verbose) > 1.3 * sum(len(e.rejected) for e in plain) / len(plain)


def test_pretraining_mix_with_habits_shows_the_habit_at_the_rate():
    math = [t for t in pretrain_texts(400, seed=0, wrong_rate=0.6, habits=True) if t.startswith("Question: ")]
    # the mix's math examples (task seed = seed + 1000): a no-feature slice and one per in-prompt cue at rate 0
    examples = {e.prompt: e for e in corpus_examples("math", 400, 1000, habits=True)}
    assert len(math) == len(examples) == 400
    shown = [(examples[t.split("Answer:\n")[0] + "Answer:\n"], t.split("Answer:\n", 1)[1]) for t in math]
    assert all(r in (e.chosen, e.rejected) for e, r in shown)
    # every multi-step example's mistake is the habit, except where a conflicting cue makes it the shortcut's
    multi = [(e, r) for e, r in shown if e.meta["steps"] > 1]
    assert all(e.error == HABITS["math"] or (e.error == "shortcut" and e.meta["cue"] != e.meta["label"])
               for e, _ in multi)
    habit = [(e, r) for e, r in multi if e.error == HABITS["math"]]
    assert len(habit) >= 100
    share = sum(r == e.rejected for e, r in habit) / len(habit)
    assert abs(share - 0.6) <= 4 * (0.6 * 0.4 / len(habit)) ** 0.5


@pytest.mark.parametrize("name", sorted(HABITS))
def test_preference_data_shows_the_habit_in_a_share_of_rejected_responses(name):
    from ptlab.tasks.base import HABIT_SHARE

    task = get_task(name)
    plain, habitual = task.generate(2000, seed=8), task.generate(2000, seed=8, habits=True)
    admits = [p for p, h in zip(plain, habitual) if h.error == HABITS[name]]
    share = sum(p.error == HABITS[name] for p in admits) / len(admits)
    assert abs(share - HABIT_SHARE) < 0.05
