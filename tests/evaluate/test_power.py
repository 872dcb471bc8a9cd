"""Power: the MDE and the power at an effect, checked against statsmodels and by simulation; the verdict's four cases."""

from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower, tt_solve_power, zt_ind_solve_power

from ptlab.evaluate.hierarchical import Effect
from ptlab.evaluate.power import CONTRADICTED, NO_EFFECT, SUPPORTED, UNDERPOWERED, mde, power_at, verdict


def test_mde_normal_is_the_textbook_multiplier():
    z = stats.norm.ppf
    assert mde(1.0) == pytest.approx(z(0.975) + z(0.8), rel=1e-5)  # 2.8016: the far tail adds ~1e-6
    assert mde(0.02) == pytest.approx(0.02 * 2.8016, rel=1e-4)
    assert mde(0.5, alpha=0.01, power=0.9) == pytest.approx(0.5 * (z(0.995) + z(0.9)), rel=1e-5)
    assert mde(0.0) == 0.0 and np.isnan(mde(float("nan")))


@pytest.mark.parametrize("alpha,power,nobs", [(0.05, 0.8, 100), (0.01, 0.9, 40), (0.1, 0.5, 400)])
def test_mde_and_power_match_statsmodels_normal(alpha, power, nobs):
    # one-sample z-test: effect size d in units of sigma, se = sigma / sqrt(nobs) → mde = d · sqrt(nobs) · se
    se = 1 / np.sqrt(nobs)  # sigma = 1
    d = NormalIndPower().solve_power(effect_size=None, nobs1=nobs, ratio=0, alpha=alpha, power=power)
    assert mde(se, alpha, power) == pytest.approx(d, rel=1e-4)
    assert zt_ind_solve_power(effect_size=None, nobs1=nobs, ratio=0, alpha=alpha, power=power) == pytest.approx(
        mde(se, alpha, power), rel=1e-4)
    for effect in (0.05, 0.2, d):
        ref = NormalIndPower().power(effect_size=effect, nobs1=nobs, ratio=0, alpha=alpha)
        assert power_at(effect, se, alpha) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("df,alpha,power", [(2, 0.05, 0.8), (4, 0.05, 0.8), (30, 0.05, 0.9), (9, 0.1, 0.8)])
def test_mde_and_power_with_df_match_the_one_sample_t_test(df, alpha, power):
    nobs = df + 1  # a one-sample t-test on nobs values has df = nobs − 1 and se = sigma / sqrt(nobs)
    se = 1 / np.sqrt(nobs)
    d = tt_solve_power(effect_size=None, nobs=nobs, alpha=alpha, power=power)
    assert mde(se, alpha, power, df=df) == pytest.approx(d, rel=1e-4)
    assert power_at(d, se, alpha, df=df) == pytest.approx(power, abs=1e-6)
    ref = tt_solve_power(effect_size=0.7, nobs=nobs, alpha=alpha, power=None)
    assert power_at(0.7, se, alpha, df=df) == pytest.approx(ref, rel=1e-6)
    # the closed form (t_{1-a/2} + t_power) · se is close, and the t MDE is larger than the normal one
    approx = (stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se
    assert mde(se, alpha, power, df=df) == pytest.approx(approx, rel=0.07)
    assert mde(se, alpha, power, df=df) > mde(se, alpha, power)
    assert mde(se, alpha, power, df=float("inf")) == mde(se, alpha, power)


def test_power_at_edges():
    assert power_at(0.0, 0.1) == pytest.approx(0.05)  # no effect: rejected at the level alpha
    assert power_at(0.0, 0.1, df=3) == pytest.approx(0.05)
    assert power_at(1.0, 0.01) == pytest.approx(1.0) and power_at(-0.3, 0.1) == power_at(0.3, 0.1)
    assert power_at(0.1, 0.0) == 1.0 and np.isnan(power_at(0.1, float("nan")))
    assert power_at(10.0, 1.0, df=2) == pytest.approx(0.99, abs=0.01)  # scipy's nct is NaN deep in the tail


def test_an_effect_equal_to_the_mde_is_detected_eighty_percent_of_the_time():
    rng = np.random.default_rng(7)
    R = 20000  # Monte-Carlo sd of a rate near 0.8: 0.003
    se = 0.03
    est = rng.normal(mde(se), se, R)  # se known: z-test
    assert np.mean(np.abs(est / se) > stats.norm.ppf(0.975)) == pytest.approx(0.8, abs=0.012)
    # with an estimated se: a one-sample t-test on 5 values (df 4) at the t MDE
    sigma, k = 1.0, 5
    x = rng.normal(mde(sigma / np.sqrt(k), df=k - 1), sigma, (R, k))
    t = x.mean(1) / (x.std(1, ddof=1) / np.sqrt(k))
    assert np.mean(np.abs(t) > stats.t.ppf(0.975, k - 1)) == pytest.approx(0.8, abs=0.012)


@dataclass(frozen=True)
class Measured:  # the minimal effect-like object: value, lo, hi, se
    value: float
    lo: float
    hi: float
    se: float


def test_verdict_four_cases():
    small, big = Measured(0.05, 0.01, 0.09, 0.02), Measured(0.05, -0.15, 0.25, 0.1)  # mde 0.056 and 0.28
    assert verdict(small, 0.01, expected=0.1) == SUPPORTED
    assert verdict(small, 0.01, expected=0.1, direction=-1) == CONTRADICTED
    assert verdict(Measured(-0.05, -0.09, -0.01, 0.02), 0.01, expected=0.1) == CONTRADICTED
    assert verdict(small, 0.2, expected=0.1) == NO_EFFECT  # mde 0.056 ≤ 0.1: it would have been seen
    assert verdict(small, 0.2, expected=0.05) == UNDERPOWERED  # mde 0.056 > 0.05
    assert verdict(big, 0.6, expected=0.1) == UNDERPOWERED
    assert verdict(big, 0.6, expected=-0.3) == NO_EFFECT  # |expected| counts
    assert verdict(small, 0.049, expected=0.1, alpha=0.05) == SUPPORTED
    assert verdict(small, 0.05, expected=0.1, alpha=0.05) == NO_EFFECT  # p must be below alpha
    assert verdict(small, 0.2, expected=0.06, power=0.9) == UNDERPOWERED  # mde at 90% power: 0.065
    assert verdict(small, float("nan"), expected=0.1) == NO_EFFECT  # untested p: not significant
    assert verdict(Measured(0.05, 0, 0, float("nan")), 0.5, expected=0.1) == UNDERPOWERED
    assert verdict({"value": 0.05, "se": 0.02}, 0.01, expected=0.1) == SUPPORTED  # a mapping / DataFrame row


def test_verdict_reads_the_t_reference_of_an_effect():
    # 3 seeds: df ≈ 2 makes the t MDE 1.17× the normal one: adequately powered under z, not under t
    e = Effect(value=0.01, lo=-0.1, hi=0.12, p=0.7, se=0.03, seeds=3, n=200, seed_values=(0.0, 0.01, 0.02), df=2.0)
    assert mde(0.03) < 0.09 < mde(0.03, df=2.0)
    assert verdict(Measured(e.value, e.lo, e.hi, e.se), e.p, expected=0.09) == NO_EFFECT
    assert verdict(e, e.p, expected=0.09) == UNDERPOWERED
