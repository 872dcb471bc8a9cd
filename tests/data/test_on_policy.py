"""On-policy rejected responses: verified-wrong samples replace authored ones; determinism and accounting."""

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

import ptlab.data.on_policy as op
from ptlab.data.on_policy import OnPolicySettings, on_policy_rejected
from ptlab.evaluate.score import score
from ptlab.tasks import get_task
from ptlab.tasks.rows import to_rows

N = 12


@pytest.fixture(scope="module")
def tiny_test():
    from ptlab.models import load

    torch.manual_seed(0)
    return load("tiny-test")


def _examples(task: str, n: int = N, seed: int = 0):
    return get_task(task).generate(n, seed=seed)


def _check_invariants(task, before, after, stats, samples):
    """What must hold of any run: unchanged fields, verified-wrong on-policy rejections, exact accounting."""
    verify = get_task(task).verify
    judged = dict(zip([ex.id for ex in after], score(task, to_rows(after, "paired"), [ex.rejected for ex in after])))
    by_id = {ex.id: ex for ex in before}
    assert [ex.id for ex in after] == [ex.id for ex in before if ex.id in {a.id for a in after}]  # input order
    drawn = 0
    for ex in after:
        orig = by_id[ex.id]
        assert (ex.prompt, ex.chosen, ex.answer, ex.split, ex.feature, ex.has_feature, ex.shortcut_agrees) == \
            (orig.prompt, orig.chosen, orig.answer, orig.split, orig.feature, orig.has_feature, orig.shortcut_agrees)
        if ex.meta["rejected_source"] == "on_policy":
            assert ex.error == "on_policy" and ex.meta["authored_error"] == orig.error
            assert verify(ex.answer, ex.rejected)["correct"] is False
            assert judged[ex.id]["correct"] is False  # and evaluation would score it wrong
            assert ex.rejected.strip() and ex.rejected.strip() != ex.chosen.strip()
            assert 0 <= ex.meta["on_policy_sample"] < samples
            drawn += ex.meta["on_policy_sample"] + 1
        else:
            assert ex.meta["rejected_source"] == "authored"
            assert (ex.rejected, ex.error) == (orig.rejected, orig.error)
            drawn += samples
        assert {k: v for k, v in ex.meta.items() if k not in ("rejected_source", "on_policy_sample",
                                                               "authored_error")} == orig.meta
    drawn += samples * stats["dropped"]  # a dropped example had every sample drawn
    k = sum(ex.meta["rejected_source"] == "on_policy" for ex in after)
    kept = [ex for ex in after if ex.meta["rejected_source"] == "authored"]
    assert stats["examples"] == len(before)
    assert stats["on_policy"] == k and stats["authored_kept"] == len(kept)
    assert stats["on_policy"] + stats["authored_kept"] + stats["dropped"] == len(before) == stats["examples"]
    assert len(after) == len(before) - stats["dropped"]
    assert stats["yield"] == pytest.approx(k / len(before))
    assert stats["samples_drawn"] == drawn
    assert stats["wrong_samples"] - stats["unusable_wrong"] == k  # a usable wrong sample ends its example's search
    assert stats["wrong_rate_per_sample"] == pytest.approx(stats["wrong_samples"] / stats["samples_drawn"])
    assert stats["errors_by_kind"] == dict(Counter(ex.error for ex in kept))
    assert stats["seconds"] >= 0 and stats["generated_tokens"] >= 0


def test_settings_defaults_and_validation():
    s = OnPolicySettings()
    assert (s.samples, s.temperature, s.top_p, s.model, s.keep_authored) == (4, 1.0, 1.0, None, True)
    assert OnPolicySettings(samples=2, temperature=0.7, top_p=0.9, model="runs/sft").model == "runs/sft"
    for bad in ({"samples": 0}, {"temperature": 0}, {"top_p": 0}, {"top_p": 1.5}, {"temperature": float("inf")},
                {"sampels": 3}):
        with pytest.raises(ValidationError):
            OnPolicySettings(**bad)


@pytest.mark.parametrize("task", ["math", "docqa"])
def test_real_model_rejections_are_verified_wrong_and_accounted(tiny_test, task):
    before = _examples(task)
    after, stats = on_policy_rejected("tiny-test", task, before, samples=3, seed=0, loaded=tiny_test,
                                      max_new_tokens=12)
    _check_invariants(task, before, after, stats, samples=3)
    assert stats["on_policy"] > 0  # an untrained model is wrong on these prompts
    assert stats["settings"]["max_new_tokens"] == 12
    # the budget caps every sample; the batches computed at least what the rows kept
    assert stats["hit_max_new_tokens"] <= stats["samples_drawn"]
    assert 12 * stats["hit_max_new_tokens"] <= stats["generated_tokens"] <= stats["token_slots"]
    assert stats["token_slots"] <= 12 * stats["samples_drawn"]


def test_default_budget_is_the_eval_budget(tiny_test, monkeypatch):
    from ptlab.evaluate.run import MAX_NEW_TOKENS

    seen = []

    def fake(model, tok, prompts, settings, progress=None):
        seen.append(settings)
        return ["Final answer: nope"] * len(prompts)

    monkeypatch.setattr(op, "generate", fake)
    for task in ("math", "instruct", "docqa"):
        _, stats = on_policy_rejected("tiny-test", task, _examples(task, 2), loaded=tiny_test, temperature=0.7,
                                      top_p=0.9)
        assert seen[-1].max_new_tokens == MAX_NEW_TOKENS[task] == stats["settings"]["max_new_tokens"]
        assert (seen[-1].do_sample, seen[-1].temperature, seen[-1].top_p) == (True, 0.7, 0.9)


def test_same_seed_same_examples_other_seed_other_samples(tiny_test):
    before = _examples("math")
    a, sa = on_policy_rejected("tiny-test", "math", before, samples=2, seed=5, loaded=tiny_test, max_new_tokens=10,
                               batch_size=5)
    b, sb = on_policy_rejected("tiny-test", "math", before, samples=2, seed=5, loaded=tiny_test, max_new_tokens=10,
                               batch_size=5)
    assert a == b
    assert {k: v for k, v in sa.items() if k != "seconds"} == {k: v for k, v in sb.items() if k != "seconds"}
    c, _ = on_policy_rejected("tiny-test", "math", before, samples=2, seed=6, loaded=tiny_test, max_new_tokens=10,
                              batch_size=5)
    assert [x.rejected for x in c] != [x.rejected for x in a]


def test_rounds_draw_distinct_samples(tiny_test, monkeypatch):
    seeds = []

    def fake(model, tok, prompts, settings, progress=None):
        seeds.append(settings.seed)
        return [""] * len(prompts)  # wrong but unusable: every round runs

    monkeypatch.setattr(op, "generate", fake)
    before = _examples("math", 4)
    after, stats = on_policy_rejected("tiny-test", "math", before, samples=5, seed=0, loaded=tiny_test)
    assert len(seeds) == 5 and len(set(seeds)) == 5
    assert stats["samples_drawn"] == 20 and stats["wrong_samples"] == 20 and stats["unusable_wrong"] == 20
    assert stats["on_policy"] == 0 and [x.rejected for x in after] == [x.rejected for x in before]


def _chosen_generator(monkeypatch, before, wrong_at=None):
    """A generator answering every prompt with its chosen text, except `wrong_at[prompt] == round` (a wrong one)."""
    chosen = {ex.prompt: ex.chosen for ex in before}
    rounds = []

    def fake(model, tok, prompts, settings, progress=None):
        r = len(rounds)
        rounds.append(len(prompts))
        return ["Final answer: -12345" if (wrong_at or {}).get(p) == r else chosen[p] for p in prompts]

    monkeypatch.setattr(op, "generate", fake)
    return rounds


@pytest.mark.parametrize("task", ["math", "instruct", "docqa"])
def test_a_model_that_is_always_right_yields_nothing(tiny_test, monkeypatch, task):
    before = _examples(task, 8)
    rounds = _chosen_generator(monkeypatch, before)
    after, stats = on_policy_rejected("tiny-test", task, before, samples=3, loaded=tiny_test)
    assert after == [replace(ex, meta={**ex.meta, "rejected_source": "authored"}) for ex in before]
    assert (stats["on_policy"], stats["yield"], stats["wrong_samples"]) == (0, 0.0, 0)
    assert stats["samples_drawn"] == 24 and rounds == [8, 8, 8]
    assert stats["samples_per_on_policy"] is None and stats["authored_kept"] == 8
    _check_invariants(task, before, after, stats, samples=3)

    rounds.clear()
    dropped, stats = on_policy_rejected("tiny-test", task, before, samples=3, loaded=tiny_test, keep_authored=False)
    assert dropped == [] and stats["dropped"] == 8 and stats["authored_kept"] == 0 and stats["errors_by_kind"] == {}


def test_first_wrong_sample_wins_and_keep_authored_false_drops_the_rest(tiny_test, monkeypatch):
    before = _examples("math", 10)
    # examples 0-3 go wrong in round 0, 4-5 in round 2, 6-9 never (round 5 is never drawn with samples=3)
    wrong_at = {ex.prompt: r for ex, r in zip(before, [0, 0, 0, 0, 2, 2, 5, 5, 5, 5])}
    rounds = _chosen_generator(monkeypatch, before, wrong_at)
    after, stats = on_policy_rejected("tiny-test", "math", before, samples=3, loaded=tiny_test, keep_authored=False)
    assert rounds == [10, 6, 6]  # only examples without an on-policy rejected are sampled again
    assert [ex.id for ex in after] == [ex.id for ex in before[:6]]
    assert [ex.meta["on_policy_sample"] for ex in after] == [0, 0, 0, 0, 2, 2]
    assert all(ex.rejected == "Final answer: -12345" and ex.error == "on_policy" for ex in after)
    assert (stats["on_policy"], stats["dropped"], stats["authored_kept"]) == (6, 4, 0)
    assert stats["yield"] == pytest.approx(0.6)
    assert stats["samples_drawn"] == 22 and stats["wrong_samples"] == 6
    assert stats["wrong_rate_per_sample"] == pytest.approx(6 / 22)
    assert stats["samples_per_on_policy"] == pytest.approx(22 / 6)
    _check_invariants("math", before, after, stats, samples=3)

    rounds.clear()
    kept, stats = on_policy_rejected("tiny-test", "math", before, samples=3, loaded=tiny_test)
    assert [ex.meta["rejected_source"] for ex in kept] == ["on_policy"] * 6 + ["authored"] * 4
    assert stats["errors_by_kind"] == dict(Counter(ex.error for ex in before[6:]))
    _check_invariants("math", before, kept, stats, samples=3)


def test_wrong_but_unusable_samples_are_skipped(tiny_test, monkeypatch):
    before = _examples("math", 3)
    answers = iter([["", "   ", before[2].chosen], ["", "7 + 1 = 9\nFinal answer: 9", "x"], ["ok? no"]])
    monkeypatch.setattr(op, "generate", lambda model, tok, prompts, settings, progress=None: next(answers))
    after, stats = on_policy_rejected("tiny-test", "math", before, samples=3, loaded=tiny_test)
    # round 0: two wrong but unusable (empty, blank), one right; round 1: 1 and 2 found; round 2: 0 found
    assert [ex.meta["rejected_source"] for ex in after] == ["on_policy"] * 3
    assert [ex.rejected for ex in after] == ["ok? no", "7 + 1 = 9\nFinal answer: 9", "x"]
    assert [ex.meta["on_policy_sample"] for ex in after] == [2, 1, 1]
    assert (stats["samples_drawn"], stats["unusable_wrong"], stats["wrong_samples"]) == (7, 3, 6)
    _check_invariants("math", before, after, stats, samples=3)


def test_examples_of_another_task_are_refused(tiny_test):
    with pytest.raises(ValueError, match="docqa"):
        on_policy_rejected("tiny-test", "math", _examples("docqa", 2), loaded=tiny_test)


def _cached_tiny() -> Path | None:
    """The pretrained `tiny` if a build is already in the user's cache (never built here: it takes minutes)."""
    dirs = sorted(p.parent for p in (Path.home() / ".cache" / "ptlab" / "models").glob("tiny-*/ptlab_model.json")
                  if not p.parent.name.startswith(("tiny-test", "tiny-4m")))
    return dirs[-1] if dirs else None


@pytest.mark.skipif(_cached_tiny() is None, reason="no pretrained `tiny` in ~/.cache/ptlab/models")
def test_pretrained_tiny_fails_like_a_model_not_like_noise():
    path = str(_cached_tiny())
    before = _examples("math", 32)
    after, stats = on_policy_rejected(path, "math", before, samples=4, seed=0)
    _check_invariants("math", before, after, stats, samples=4)
    assert stats["yield"] >= 0.5
    assert 0 < stats["wrong_rate_per_sample"] < 1  # it is right sometimes: the rounds matter
    found = [ex for ex in after if ex.error == "on_policy"]
    assert sum("Final answer:" in ex.rejected for ex in found) >= 0.9 * len(found)  # a wrong answer, in the format
