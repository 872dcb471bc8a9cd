"""Math wording families and the variation a teacher draws from: solution paths, mistakes, wordings, parsing."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter

import pytest

from ptlab.tasks import get_task
from ptlab.tasks import math_variants as mv
from ptlab.tasks.corpus import corpus_examples
from ptlab.tasks.math import WORDINGS

MATH = get_task("math")
CUE = {"feature": "altogether_cue", "artifact": "feature_ambiguity", "rate": 0.9}


def test_default_wording_renders_exactly_as_before():
    """What a seed produced before the wording knob existed (the hash of tasks-v6's output): bump TASKS_VERSION and
    this hash together if a generator change is meant to change it."""
    h = hashlib.sha256()
    for s in range(2):
        for split, spur, kn in [("train", None, {}), ("eval_id", None, {}),
                                ("train", None, {"max_steps": 4, "max_number": 50}), ("eval_break", CUE, {}),
                                ("train", {"feature": "small_numbers", "artifact": "distributional_narrowness",
                                           "rate": 0.9}, {})]:
            for ex in MATH.generate(25, seed=s, split=split, spurious=spur, **kn):
                h.update(json.dumps(ex.to_dict(), sort_keys=True).encode())
    assert h.hexdigest() == "f8f94295736484cf61a4de006331aad07b4aea1ec5505fe2622d78a13452a4ed"
    assert [e.prompt for e in MATH.generate(20, seed=4, wording="standard")] == \
        [e.prompt for e in MATH.generate(20, seed=4)]


def _sentences(prompt: str) -> set[str]:
    body = prompt.removeprefix("Question: ").split("\n")[0]
    return {s for s in re.split(r"(?<=[.?]) ", body)}


def test_alternate_wording_tells_the_same_stories_in_other_sentences():
    for split, spur in [("eval_id", None), ("eval_break", CUE)]:
        std = MATH.generate(60, seed=1, split=split, spurious=spur, max_steps=3)
        alt = MATH.generate(60, seed=1, split=split, spurious=spur, max_steps=3, wording="alternate")
        for a, b in zip(std, alt):
            assert (a.answer, a.chosen, a.rejected, a.shortcut_agrees) == (b.answer, b.chosen, b.rejected, b.shortcut_agrees)
            assert not _sentences(a.prompt) & _sentences(b.prompt)  # no sentence in common
            pa, pb = MATH.parse_plan(a.prompt), MATH.parse_plan(b.prompt)
            assert (pa["wording"], pb["wording"]) == ("standard", "alternate")
            assert {k: v for k, v in pa.items() if k != "wording"} == {k: v for k, v in pb.items() if k != "wording"}
    std, alt = WORDINGS["standard"], WORDINGS["alternate"]
    for part in ("openings", "friends", "questions"):
        assert not set(getattr(std, part)) & set(getattr(alt, part)), part
    assert not {s for t in std.steps.values() for s in t} & {s for t in alt.steps.values() for s in t}
    assert not set(std.cues.values()) & set(alt.cues.values())


def test_pretraining_shows_only_the_standard_wording():
    prompts = [e.prompt for e in corpus_examples("math", 300, seed=0, habits=True)]
    assert {MATH.parse_plan(p)["wording"] for p in prompts} == {"standard"}


def test_solution_paths_are_distinct_correct_nested_and_start_with_the_gold():
    for knobs in [{}, {"min_steps": 3, "max_steps": 4, "max_number": 40, "max_factor": 6}]:
        for ex in MATH.generate(80, seed=2, split="eval_id", **knobs):
            plan = MATH.parse_plan(ex.prompt)
            paths = MATH.solution_paths(plan, 32)
            assert paths[0] == ex.chosen and len(set(paths)) == len(paths) >= 4
            assert all(MATH.verify(ex, p)["correct"] and p.endswith(f"Final answer: {ex.answer}") for p in paths)
            assert MATH.solution_paths(plan, 3) == paths[:3] == MATH.solution_paths(json.loads(json.dumps(plan)), 3)
            assert max(map(len, paths)) <= len(paths[0]) + mv.MAX_EXTRA_CHARS


def test_wrong_solutions_are_wrong_and_vary_in_kind():
    kinds: Counter = Counter()
    for ex in MATH.generate(60, seed=5, min_steps=2):
        plan = MATH.parse_plan(ex.prompt)
        rng = random.Random(ex.id)
        texts = set()
        for _ in range(20):
            kind, text = mv.wrong_solution(plan, rng, paths=4)
            assert not MATH.verify(ex, text)["correct"]
            kinds[kind] += 1
            texts.add(text)
        assert len(texts) >= 5
    assert set(kinds) == {"wrong_operation", "arithmetic_slip", "skipped_step", "forgets_last_step"}
    assert min(kinds.values()) > 0.05 * sum(kinds.values())


@pytest.mark.parametrize("wording", ["standard", "alternate"])
def test_wordings_keep_the_plan_and_parse_back(wording):
    knobs = MATH.knobs(wording=wording)
    for ex in MATH.generate(40, seed=6, wording=wording):
        plan = MATH.parse_plan(ex.prompt)
        texts = MATH.wordings(plan, 8, knobs)
        assert len(set(texts)) == 8 and MATH.wordings(plan, 3, knobs) == texts[:3]
        assert all(MATH.parse_plan(t) == plan for t in texts)


def test_perturbed_near_and_far_plans():
    knobs = MATH.knobs()
    for i in range(100):
        rng = random.Random(i)
        plan = MATH.sample_plan(rng, knobs)
        assert mv.answer_of(MATH.perturb_plan(plan, rng, knobs)) != mv.answer_of(plan)
        near = MATH.near_plan({**plan, "wording": "standard"}, rng, knobs)
        assert near["ops"] == plan["ops"] and near["wording"] == "standard"
        far = MATH.far_plan(rng, knobs)
        assert len(far["ops"]) == 3 and far["wording"] == "alternate"
    assert MATH.parse_plan("Question: Ada has some apples. She buys 2 more apples. How many apples does Ada have now?"
                           "\nAnswer:\n") is None
    assert MATH.parse_plan("Question: Ada has 3 apples. She buys 2 more apples.\nAnswer:\n") is None
