"""Every task: correct responses verify, rejected ones do not, generation is seeded and fast."""

import json
import time

import pytest

from ptlab.errors import ConfigError
from ptlab.tasks import available_tasks, get_task

TASKS = ["math", "instruct", "docqa"]


def test_registry_lists_three_tasks():
    assert set(available_tasks()) == set(TASKS)
    with pytest.raises(ConfigError, match=r"unknown task 'chess'; choose from docqa, instruct, math"):
        get_task("chess")


@pytest.mark.parametrize("name", TASKS)
def test_chosen_verifies_and_rejected_does_not(name):
    task = get_task(name)
    examples = task.generate(400, seed=3)
    assert len(examples) == 400
    assert all(task.verify(ex, ex.chosen)["correct"] for ex in examples)
    # docqa's habit (the whole sentence) chooses the right fact in the wrong format: wrong under exact match only
    decision_errors = [ex for ex in examples if ex.error != "whole_sentence"]
    assert len(decision_errors) >= 0.6 * len(examples)
    assert not any(task.verify(ex, ex.rejected)["correct"] for ex in decision_errors)
    for ex in examples:
        if ex.error == "whole_sentence":
            verdict = task.verify(ex, ex.rejected)
            assert verdict["fact_selected"] and verdict["exact_match"] == 0.0
    # the gold in its string form (what rows carry) verifies the same way
    assert all(task.verify(ex.answer, ex.chosen)["correct"] for ex in examples[:50])
    assert all(isinstance(ex.prompt, str) and ex.prompt.endswith("\n") for ex in examples)
    assert len({ex.error for ex in examples}) >= 2  # several kinds of realistic mistakes


@pytest.mark.parametrize("name", TASKS)
def test_generation_is_deterministic_in_seed_and_split(name):
    task = get_task(name)
    a = [ex.to_dict() for ex in task.generate(50, seed=7)]
    b = [ex.to_dict() for ex in task.generate(50, seed=7)]
    c = [ex.prompt for ex in task.generate(50, seed=8)]
    d = [ex.prompt for ex in task.generate(50, seed=7, split="eval_id")]
    assert a == b
    assert [x["prompt"] for x in a] != c
    assert [x["prompt"] for x in a] != d


@pytest.mark.parametrize("name", TASKS)
def test_10k_examples_generate_quickly(name):
    start = time.perf_counter()
    get_task(name).generate(10_000, seed=0)
    assert time.perf_counter() - start < 8.0  # ~1 s each on a quiet core; 100k takes seconds


def test_math_solution_ends_in_final_answer_line():
    ex = get_task("math").generate(1, seed=0)[0]
    assert ex.chosen.splitlines()[-1] == f"Final answer: {ex.answer}"
    assert ex.prompt.startswith("Question: ") and ex.prompt.endswith("\nAnswer:\n")


def test_math_verifier_parses_numbers():
    task = get_task("math")
    assert task.verify("1200", "so\nFinal answer: 1,200")["correct"]
    assert task.verify("18", "She makes $18.\nFinal answer: $18")["correct"]
    r = task.verify("7", "3 + 4 = 7 so it is 7")
    assert r["correct"] and r["final_line"] is False
    assert not task.verify("7", "Final answer: 8")["correct"]
    assert task.verify("7", "no number here")["predicted"] is None


def test_math_knobs_control_difficulty():
    exs = get_task("math").generate(300, seed=0, min_steps=3, max_steps=4, max_number=50, ops="+-")
    assert {ex.meta["steps"] for ex in exs} == {3, 4}
    assert all(set(ex.meta["ops"]) <= {"+", "-"} for ex in exs)
    assert max(ex.meta["start"] for ex in exs) > 9


def test_instruct_verifier_reports_each_constraint():
    task = get_task("instruct")
    gold = json.dumps([{"type": "lowercase"}, {"type": "bullets", "n": 2}, {"type": "include", "word": "lantern"}])
    ok = task.verify(gold, "- a lantern glows.\n- the park is calm.")
    assert ok == {"correct": True, "per_constraint": {"lowercase": True, "bullets": True, "include": True},
                  "followed": 3, "fraction": 1.0, "substantive": True}
    empty = task.verify(json.dumps([{"type": "exclude", "word": "really"}]), "ok")
    assert empty["per_constraint"] == {"exclude": True} and not empty["correct"]
    bad = task.verify(gold, "- A lantern glows.\n- the park is calm.\n- more.")
    assert bad["per_constraint"] == {"lowercase": False, "bullets": False, "include": True}
    assert bad["fraction"] == pytest.approx(1 / 3)
    js = json.dumps([{"type": "json"}, {"type": "word_range", "lo": 3, "hi": 6}, {"type": "uppercase"}])
    assert task.verify(js, '{"text": "ALL CAPS HERE AND NOW"}')["correct"]
    assert not task.verify(js, '{"text": "ALL CAPS HERE NOW"')["per_constraint"]["json"]


def test_instruct_rejected_breaks_the_named_constraint():
    task = get_task("instruct")
    for ex in task.generate(300, seed=1):
        per = task.verify(ex, ex.rejected)["per_constraint"]
        if ex.error == "chatty_sign_off":  # the habitual mistake: breaks at least one constraint
            assert not all(per.values())
        else:
            assert per[ex.error.removeprefix("violates_")] is False


def test_docqa_scores_exact_match_and_f1():
    task = get_task("docqa")
    r = task.verify("Ostra Kel", "The document says so.\nFinal answer: ostra kel.")
    assert r["correct"] and r["exact_match"] == 1.0 and r["f1"] == 1.0
    r = task.verify("Ostra Kel", "Final answer: Ostra")
    assert not r["correct"] and r["f1"] == pytest.approx(2 / 3)


def test_docqa_answer_is_in_the_document_and_rejected_quotes_a_distractor():
    for ex in get_task("docqa").generate(200, seed=2):
        doc = ex.prompt.split("\nQuestion:")[0]
        assert ex.answer in doc
        wrong = ex.rejected.split("Final answer: ")[-1]
        assert wrong in doc and wrong != ex.answer


def test_docqa_facts_in_a_document_never_share_a_value():
    """People and rivers come from closed lists: a repeated name would make a distractor's span correct."""
    from ptlab.tasks.docqa import DocQAKnobs, sample_facts

    rng = __import__("random").Random(0)
    knobs = DocQAKnobs(facts=6, min_distractors=8, max_distractors=8)
    for relation in ("founder", "mayor", "river"):
        for _ in range(200):
            values = [f["v"] for f in sample_facts(rng, knobs, relation, 8)["facts"]]
            assert len(values) == len(set(values))


@pytest.mark.parametrize(
    "name, knobs, match",
    [
        ("math", {"steps": 3}, r"steps: unknown field.*valid knobs: min_steps, max_steps"),
        ("math", {"min_steps": 3, "max_steps": 2}, "min_steps \\(3\\) must not exceed max_steps"),
        ("instruct", {"types": ["rhyme"]}, "unknown constraint type.*choose from lowercase"),
        ("docqa", {"relations": ["ceo"]}, "unknown relation.*choose from founder"),
    ],
)
def test_bad_knobs_name_the_knob(name, knobs, match):
    with pytest.raises(ConfigError, match=match):
        get_task(name).generate(1, **knobs)


def test_unknown_split():
    with pytest.raises(ConfigError, match="unknown split 'dev'; choose from train, eval_id, eval_break"):
        get_task("math").generate(1, split="dev")
