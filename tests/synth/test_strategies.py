"""Strategies under a budget Q: row counts, costs, verification, and identical reruns from the cache."""

from __future__ import annotations

import pytest

from ptlab.errors import ConfigError
from ptlab.synth import make_teacher
from ptlab.synth.strategies import Seed, StrategyConfig, run_strategy
from ptlab.tasks import get_task

MATH = get_task("math")


def simulated(error_rate=0.0, q=None, **kw):
    """A simulated teacher whose every error rate is `error_rate` (answers, rephrase drift, invalid questions,
    checks); replies are cached, in the test session's PTLAB_HOME."""
    params = {"answer_error": error_rate, "new_question_error": error_rate, "rephrase_drift": error_rate,
              "new_question_invalid": error_rate, "check_error": error_rate}
    teacher = make_teacher({"backend": "simulated", "model": "math", "simulator": params, **kw}, cache=False,
                           budget={"max_queries": q})
    seeds = [Seed(e.id, e.prompt, e.answer) for e in teacher.inner.seeds(10)]
    return teacher, seeds


@pytest.mark.parametrize(
    "strategy, q, rows, rounds",
    [("answer_augmentation", 35, 35, 4), ("question_rephrase", 35, 17, 2), ("new_question", 35, 11, 2)],
)
def test_budget_q_decides_rows_and_is_never_exceeded(strategy, q, rows, rounds):
    teacher, seeds = simulated(q=q)
    res = run_strategy(teacher, seeds, StrategyConfig(strategy=strategy, queries=q), task=MATH)
    assert len(res.rows) == rows and res.stats["rounds"] == rounds
    assert res.stats["queries_used"] <= q and teacher.report()["paid"] == res.stats["queries_used"]
    assert {r["strategy"] for r in res.rows} == {strategy}
    assert {r["cost"] for r in res.rows} == {{"answer_augmentation": 1, "question_rephrase": 2, "new_question": 3}[strategy]}
    assert all(set(r) >= {"prompt", "completion", "seed_id", "teacher", "cost"} for r in res.rows)


def test_answers_to_rephrased_questions_are_correct_for_a_perfect_teacher():
    teacher, seeds = simulated()
    res = run_strategy(teacher, seeds, StrategyConfig(strategy="question_rephrase", rounds=2, verify="gold"), task=MATH)
    assert len(res.rows) == 20 and all(r["verified"] for r in res.rows)
    assert sum(r["prompt"] not in {s.question for s in seeds} for r in res.rows) >= 10


def test_gold_verification_filters_wrong_answers():
    teacher, seeds = simulated(error_rate=0.3)
    cfg = StrategyConfig(strategy="answer_augmentation", rounds=10, verify="gold")
    res = run_strategy(teacher, seeds, cfg, task=MATH)
    rejected = res.stats["rejected_by_verification"]
    assert len(res.rows) + rejected == 100 and 15 <= rejected <= 45
    gold = {s.id: s.answer for s in seeds}
    assert all(MATH.verify(gold[r["seed_id"]], r["completion"])["correct"] for r in res.rows)


def test_majority_keeps_answers_agreeing_with_the_most_common_one():
    teacher, seeds = simulated(error_rate=0.2)
    cfg = StrategyConfig(strategy="new_question", rounds=1, verify="majority", answers_per_question=5, check=False)
    res = run_strategy(teacher, seeds, cfg, task=MATH)
    assert res.stats["queries_used"] == 10 * (1 + 5)
    by_question = {}
    for r in res.rows:
        by_question.setdefault(r["prompt"], set()).add(MATH.verify("0", r["completion"])["predicted"])
    assert all(len(answers) == 1 for answers in by_question.values())  # only the majority answer survives


def test_bad_strategy_configs_are_one_line_errors():
    teacher, seeds = simulated()
    with pytest.raises(ConfigError, match="set queries .* or rounds"):
        run_strategy(teacher, seeds, StrategyConfig())
    with pytest.raises(ConfigError, match="majority verification needs >= 3"):
        run_strategy(teacher, seeds, StrategyConfig(rounds=1, verify="majority"))
    with pytest.raises(ConfigError, match="seed set is empty"):
        run_strategy(teacher, [], StrategyConfig(rounds=1))


def test_rerun_from_the_cache_rebuilds_the_same_rows_for_free(home, serve):
    srv = serve()
    seeds = [Seed(f"s{i}", f"What is {i} + 1?", str(i + 1)) for i in range(6)]
    cfg = StrategyConfig(strategy="new_question", queries=30, check=False)

    def build():
        teacher = make_teacher({"backend": "openai", "model": "echo", "base_url": srv.url, "api_key_env": None},
                               budget={"max_queries": 30})
        return run_strategy(teacher, seeds, cfg)

    first, second = build(), build()
    assert [r["completion"] for r in first.rows] == [r["completion"] for r in second.rows]
    assert len(first.rows) == 15 and first.stats["queries_paid"] == 30
    assert second.stats["queries_paid"] == 0 and second.stats["queries_used"] == 30
    assert all(r["cached"] for r in second.rows)
    assert srv.stats.as_dict()["counts"]["ok"] == 30
