"""Statistics: bootstrap intervals, seed aggregation, paired tests — numbers checked against hand computations."""

import numpy as np
import pytest

from ptlab.evaluate.score import accuracy, spurious_reliance
from ptlab.evaluate.stats import compare, mcnemar, mean_ci, reliance_ci, significance_mark


def test_mean_ci_brackets_the_mean_and_is_deterministic():
    x = np.r_[np.ones(60), np.zeros(40)]
    est = mean_ci(x)
    assert est.value == pytest.approx(0.6)
    assert est.lo < 0.6 < est.hi
    # binomial standard error 0.049 -> half-width about 0.096
    assert est.hi - est.lo == pytest.approx(2 * 1.96 * np.sqrt(0.24 / 100), abs=0.03)
    assert mean_ci(x).as_dict().keys() == est.as_dict().keys() and (mean_ci(x).lo, mean_ci(x).hi) == (est.lo, est.hi)


def test_constant_outcomes_have_a_zero_width_interval():
    est = mean_ci(np.ones(50))
    assert (est.value, est.lo, est.hi) == (1.0, 1.0, 1.0)


def test_seed_aggregation_pools_seeds_and_reports_their_spread():
    m = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]], float)
    est = mean_ci(m)
    assert est.value == pytest.approx(6 / 12)
    assert est.seeds == 3 and est.n == 4
    assert est.seed_sd == pytest.approx(np.std([0.5, 0.25, 0.75], ddof=1))


def test_reliance_is_agree_minus_conflict():
    correct = np.array([1, 1, 1, 0, 1, 0, 0, 0], float)
    agrees = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    assert spurious_reliance(correct, agrees) == pytest.approx(0.75 - 0.25)
    est = reliance_ci(correct, agrees)
    assert est.value == pytest.approx(0.5)
    assert est.lo <= 0.5 <= est.hi
    assert np.isnan(spurious_reliance(correct, np.ones(8, bool)))
    assert accuracy([1, 0, 1, 1]) == 0.75


def test_paired_comparison_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    a = (rng.random(200) < 0.7).astype(float)
    b = a.copy()
    flip = rng.choice(200, 40, replace=False)
    b[flip] = 0.0  # b is a with up to 40 successes removed
    cmp = compare(a, b)
    assert cmp.paired and cmp.diff == pytest.approx(a.mean() - b.mean())
    assert cmp.diff > 0.1 and cmp.p < 0.001 and cmp.lo > 0
    same = compare(a, a)
    assert same.p == 1.0 and same.diff == 0.0


def test_unpaired_comparison_and_mcnemar():
    a, b = np.r_[np.ones(30), np.zeros(10)], np.r_[np.ones(10), np.zeros(30)]
    cmp = compare(a, b, paired=False)
    assert not cmp.paired and cmp.diff == pytest.approx(0.5) and cmp.p < 0.001
    # 10 discordant pairs, all in a's favour: two-sided exact binomial p = 2 * 0.5**10
    x = np.r_[np.ones(10), np.ones(5), np.zeros(5)].astype(bool)
    y = np.r_[np.zeros(10), np.ones(5), np.zeros(5)].astype(bool)
    assert mcnemar(x, y) == pytest.approx(2 * 0.5 ** 10)
    assert mcnemar(x, x) == 1.0


def test_paired_comparison_needs_the_same_examples():
    with pytest.raises(ValueError, match="same examples"):
        compare(np.ones(5), np.ones(6))


@pytest.mark.parametrize("p, mark", [(0.0001, "***"), (0.005, "**"), (0.04, "*"), (0.2, "")])
def test_significance_marks(p, mark):
    assert significance_mark(p) == mark
