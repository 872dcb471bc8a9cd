"""Hierarchical intervals (training seeds and examples): coverage measured on simulated studies with a known effect.

Simulation: item difficulties p_j ~ Beta(3, 2); seed i of a condition shifts every item's logit by delta_i ~ N(0, tau²)
(conditions share half the seed variance: seed i of every condition is the same training seed); outcomes are
Bernoulli. A 1-row base (greedy, untrained) has no seed shift. True effects come from quadrature over the item and
seed distributions. Coverage over R replicates has Monte-Carlo sd sqrt(0.95·0.05/R) ≈ 0.009 at R = 600.
"""

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss
from scipy import stats
from scipy.special import expit, logit

from ptlab.evaluate.hierarchical import Effect, did_effect, difference, effect, hierarchical_bootstrap, mean_effect
from ptlab.evaluate.stats import mean_ci

A, B = 3.0, 2.0  # item difficulty distribution
D, H, H0 = 0.4, 0.6, 0.2  # logit shifts: a treatment; a shortcut (hold +H / break −H) in the model and the base
_x, _w = leggauss(200)
_x = (_x + 1) / 2
_w = _w / 2 * stats.beta.pdf(_x, A, B)
_h, _hw = hermegauss(60)
_hw = _hw / _hw.sum()


def truth(shift: float, tau: float) -> float:
    """E over items and seeds of P(correct) = expit(logit p + shift + delta)."""
    return float((_w[:, None] * _hw[None] * expit(logit(_x)[:, None] + shift + tau * _h[None])).sum())


def bern(rng, logits):
    return (rng.random(logits.shape) < expit(logits)).astype(float)


def study(rng, R, S, n, tau):
    """R simulated studies at once: dict of (R, rows, n) outcome arrays."""
    item, item2 = logit(rng.beta(A, B, (R, 1, n))), logit(rng.beta(A, B, (R, 1, n)))
    shared = rng.normal(0, tau / np.sqrt(2), (R, S, 1))
    d1, d2 = shared + rng.normal(0, tau / np.sqrt(2), (R, S, 1)), shared + rng.normal(0, tau / np.sqrt(2), (R, S, 1))
    return {"m": bern(rng, item + d1), "treated": bern(rng, item + D + d2),
            "hold": bern(rng, item + H + d1), "break": bern(rng, item - H + d2),
            "base_hold": bern(rng, item + H0), "base_break": bern(rng, item - H0),
            "break2": bern(rng, item2 - H + d2), "base_break2": bern(rng, item2 - H0)}


def covers(e: Effect, true: float) -> bool:
    return e.lo <= true <= e.hi


@pytest.mark.parametrize("S", [3, 5])
@pytest.mark.parametrize("tau", [0.0, 0.5])
def test_coverage_of_mean_difference_and_did(S, tau):
    R, n = 600, 80
    x = study(np.random.default_rng(100 * S + int(10 * tau)), R, S, n, tau)
    true_did = (truth(H, tau) - truth(-H, tau)) - (truth(H0, 0) - truth(-H0, 0))
    hits = np.zeros(4)
    for r in range(R):
        hits += [covers(mean_effect(x["m"][r]), truth(0, tau)),
                 covers(difference(x["treated"][r], x["m"][r]), truth(D, tau) - truth(0, tau)),
                 covers(did_effect(x["hold"][r], x["break"][r], x["base_hold"][r], x["base_break"][r]), true_did),
                 covers(did_effect(x["hold"][r], x["break2"][r], x["base_hold"][r], x["base_break2"][r],
                                   paired_examples=False), true_did)]
    coverage = hits / R
    # nominal 95%: accept 0.93–0.99 (the module docstring has 2000-replicate numbers: 0.933–0.964 in every cell)
    assert ((coverage >= 0.93) & (coverage <= 0.99)).all(), coverage


def test_naive_two_level_bootstrap_undercovers_with_three_seeds_where_the_chosen_interval_does_not():
    R, S, n, tau = 300, 3, 80, 1.0
    x = study(np.random.default_rng(5), R, S, n, tau)["m"]
    naive = chosen = 0
    for r in range(R):
        draws = hierarchical_bootstrap(lambda m: m.mean(axis=(1, 2)), [[x[r]]], n_resamples=400, seed=r)
        lo, hi = np.percentile(draws, [2.5, 97.5])
        naive += lo <= truth(0, tau) <= hi
        chosen += covers(mean_effect(x[r]), truth(0, tau))
    assert naive / R < 0.88  # measured 0.82 (2000 replicates)
    assert chosen / R >= 0.93


def test_seed_variance_enters_the_interval():
    rng = np.random.default_rng(11)
    S, n = 5, 100
    ratios = {}
    for tau in (0.0, 1.0):
        x = study(rng, 40, S, n, tau)["m"]
        ratios[tau] = np.mean([(mean_effect(m).hi - mean_effect(m).lo) / (mean_ci(m, n_resamples=500).hi
                                                                          - mean_ci(m, n_resamples=500).lo)
                               for m in x])
    # large seed variance: the example-only interval (seeds held fixed) is far too narrow (measured 4.3×)
    assert ratios[1.0] > 2.0
    # none: both measure the same variance; ours is a t interval whose df come partly from 5 seeds (measured 1.10×)
    assert 0.9 < ratios[0.0] < 1.25
    m = study(rng, 1, S, n, 1.0)["m"][0]
    assert mean_effect(m).seed_share > 0.5 and mean_effect(m).df < 10


def _anova(m):
    S, n = m.shape
    rows, cols, g = m.mean(1), m.mean(0), m.mean()
    ms_row = n * ((rows - g) ** 2).sum() / (S - 1)
    ms_col = S * ((cols - g) ** 2).sum() / (n - 1)
    ms_res = ((m - rows[:, None] - cols[None] + g) ** 2).sum() / ((S - 1) * (n - 1))
    return ms_row, ms_col, ms_res


def test_variance_decomposition_by_hand():
    m = np.array([[1, 1, 0, 1, 0, 1], [1, 0, 0, 1, 1, 1], [0, 0, 0, 1, 0, 1], [1, 1, 1, 1, 0, 1]], float)
    S, n = m.shape
    ms_row, ms_col, ms_res = _anova(m)
    e = mean_effect(m)
    assert ms_col > ms_res and ms_row > ms_res  # nothing clipped: the unbiased crossed-design estimate
    assert e.se ** 2 == pytest.approx((ms_row + ms_col - ms_res) / (S * n))
    assert e.se ** 2 == pytest.approx(np.var(m.mean(1), ddof=1) / S + (ms_col - ms_res) / (S * n))
    assert e.value == pytest.approx(m.mean()) and e.seeds == S and e.n == n and np.isnan(e.p)
    assert e.seed_share == pytest.approx((ms_row - ms_res) / (ms_row + ms_col - ms_res))
    # Satterthwaite with the seed term at its 70% upper confidence bound
    c = (S - 1) / stats.chi2.ppf(0.3, S - 1)
    v_s, v_i = c * ms_row / (S * n), (ms_col - ms_res) / (S * n)
    den = v_s ** 2 / (S - 1) + (ms_col / (S * n)) ** 2 / (n - 1) + (ms_res / (S * n)) ** 2 / ((S - 1) * (n - 1))
    assert e.df == pytest.approx((v_s + v_i) ** 2 / den)
    assert e.hi - e.value == pytest.approx(e.value - e.lo) == pytest.approx(stats.t.ppf(0.975, e.df) * e.se)
    # no example variance beyond the residual (here: columns vary less than noise): the seed-level t-test, df = S − 1
    flat = np.array([[1, 0, 1, 0, 1, 1], [0, 1, 0, 1, 1, 1], [1, 1, 0, 0, 1, 0]], float)
    ms_row, ms_col, ms_res = _anova(flat)
    assert ms_col < ms_res
    e = mean_effect(flat)
    assert e.se ** 2 == pytest.approx(np.var(flat.mean(1), ddof=1) / 3) and e.df == pytest.approx(2)
    assert e.seed_share == 0  # the seeds differ no more than their example noise


def test_a_single_seed_is_an_example_bootstrap_holding_the_model_fixed():
    rng = np.random.default_rng(3)
    y = (rng.random(200) < 0.7).astype(float)
    e = mean_effect(y)
    assert e.seeds == 1 and e.seed_values == (e.value,) and e.seed_share == 0
    assert e.se == pytest.approx(y.std(ddof=1) / np.sqrt(200)) and e.df == pytest.approx(199)
    est = mean_ci(y)
    assert (e.lo, e.hi) == pytest.approx((est.lo, est.hi), abs=0.01)
    z = (rng.random(200) < 0.6).astype(float)
    d = difference(y, z)
    assert d.se == pytest.approx((y - z).std(ddof=1) / np.sqrt(200))
    assert d.p == pytest.approx(stats.ttest_rel(y, z).pvalue, rel=1e-6)  # the paired t-test


def test_one_row_base_is_never_resampled_and_seeds_and_examples_stay_paired():
    S, n = 4, 7
    model = np.arange(S)[:, None] * 100.0 + np.arange(n)[None, :]  # value encodes (seed, example)
    other = model + 1000.0
    base = np.arange(n)[None, :] + 0.5
    elsewhere = np.arange(5)[None, :] * 1.0 + 0.25  # another group: different examples
    seen = []

    def stat(mo, ot, ba, el):
        seen.append((mo, ot, ba, el))
        return mo.mean(axis=(1, 2))

    draws = hierarchical_bootstrap(stat, [[model, other, base], [elsewhere]], n_resamples=300, seed=1)
    assert draws.shape == (300,)
    mo, ot, ba, el = (np.concatenate(a) for a in zip(*seen))
    assert mo.shape == (300, S, n) and ba.shape == (300, 1, n) and el.shape == (300, 1, 5)
    np.testing.assert_array_equal(ot, mo + 1000)  # one seed index and one column index for both matrices
    np.testing.assert_array_equal(mo % 100, np.broadcast_to(ba - 0.5, mo.shape))  # base paired on examples
    assert len(np.unique(mo // 100)) == S and not (np.diff(mo // 100, axis=1) == 0).all()  # seeds resampled
    cols_model = (ba[:, 0, :5] - 0.5)
    assert not np.array_equal(cols_model, el[:, 0, :] - 0.25)  # the other group has its own column index
    # seeds only: every base row is the original row
    seen.clear()
    hierarchical_bootstrap(stat, [[model, other, base], [elsewhere]], n_resamples=50, seed=1, resample_examples=False)
    ba = np.concatenate([s[2] for s in seen])
    np.testing.assert_array_equal(ba, np.broadcast_to(base, ba.shape))


def test_two_level_bootstrap_variance_matches_its_formula():
    # E*[var] of the grand mean when seeds and examples are both resampled:
    # (S−1)/S·MS_row/(Sn) + (n−1)/n·MS_col/(Sn) + (S−1)(n−1)/(Sn)·MS_res/(Sn)
    x = study(np.random.default_rng(2), 1, 4, 60, 0.7)["m"][0]
    S, n = x.shape
    rows, cols, g = x.mean(1), x.mean(0), x.mean()
    ms_row = n * ((rows - g) ** 2).sum() / (S - 1)
    ms_col = S * ((cols - g) ** 2).sum() / (n - 1)
    ms_res = ((x - rows[:, None] - cols[None] + g) ** 2).sum() / ((S - 1) * (n - 1))
    expected = ((S - 1) / S * ms_row + (n - 1) / n * ms_col + (S - 1) * (n - 1) / (S * n) * ms_res) / (S * n)
    draws = hierarchical_bootstrap(lambda m: m.mean(axis=(1, 2)), [[x]], n_resamples=20000, seed=0)
    assert draws.var() == pytest.approx(expected, rel=0.04)  # Monte-Carlo: sqrt(2/20000) = 1%
    assert draws.mean() == pytest.approx(g, abs=0.003)


def test_paired_twins_give_a_much_narrower_did_than_an_unpaired_analysis():
    # twins are one item asked two ways: an item's latent draw u (competence on it) is shared by its hold and break
    # versions, so their outcomes agree unless the shortcut tips them (u between the two probabilities)
    rng = np.random.default_rng(4)
    S, n = 5, 150
    ratios = []
    for _ in range(8):
        item = logit(rng.beta(A, B, (1, n)))
        u, u0 = rng.random((S, n)), rng.random((1, n))
        mats = [(u < expit(item + H)) * 1.0, (u < expit(item - H)) * 1.0, (u0 < expit(item + H0)) * 1.0,
                (u0 < expit(item - H0)) * 1.0]
        paired, unpaired = did_effect(*mats), did_effect(*mats, paired_examples=False)
        assert paired.value == pytest.approx(unpaired.value) and paired.se < 0.65 * unpaired.se
        assert paired.n == n and unpaired.n == 2 * n
        ratios.append((paired.hi - paired.lo) / (unpaired.hi - unpaired.lo))
    assert np.mean(ratios) < 0.65  # measured 0.5


def test_seed_values_are_the_per_seed_computations():
    x = study(np.random.default_rng(8), 1, 4, 50, 0.5)
    m, t, h, b, bh, bb = (x[k][0] for k in ("m", "treated", "hold", "break", "base_hold", "base_break"))
    assert mean_effect(m).seed_values == pytest.approx(tuple(m.mean(1)))
    assert difference(t, m).seed_values == pytest.approx(tuple(t.mean(1) - m.mean(1)))
    did = did_effect(h, b, bh, bb)
    assert did.seed_values == pytest.approx(tuple(h.mean(1) - b.mean(1) - (bh.mean() - bb.mean())))
    assert did.value == pytest.approx(np.mean(did.seed_values)) and did.seeds == 4
    ratio = effect(lambda a, c: a.mean(axis=(1, 2)) / c.mean(axis=(1, 2)), [[t], [m]], n_resamples=200)
    assert ratio.seed_values == pytest.approx(tuple(t.mean(1) / m.mean(1)))
    assert ratio.value == pytest.approx(t.mean() / m.mean())
    d = did.as_dict()
    assert d["seed_values"] == list(did.seed_values) and {"value", "lo", "hi", "p", "se", "seeds", "n", "df"} <= set(d)


def test_generic_bootstrap_path_agrees_with_the_closed_form():
    x = study(np.random.default_rng(9), 1, 5, 120, 0.4)
    m, t, h, b, b2, bh, bb, bb2 = (x[k][0] for k in ("m", "treated", "hold", "break", "break2", "base_hold",
                                                      "base_break", "base_break2"))
    pairs = [(mean_effect, (m,), {}), (difference, (t, m), {}), (difference, (t, m), {"paired_examples": False}),
             (did_effect, (h, b, bh, bb), {}), (did_effect, (h, b2, bh, bb2), {"paired_examples": False})]
    for f, args, kw in pairs:
        exact, boot = f(*args, **kw), f(*args, **kw, exact=False, n_resamples=4000, seed=3)
        assert boot.value == pytest.approx(exact.value) and boot.seed_values == pytest.approx(exact.seed_values)
        assert boot.se == pytest.approx(exact.se, rel=0.05), f.__name__  # Monte-Carlo: ~2% at 4000 draws
        assert boot.df == pytest.approx(exact.df, rel=0.25)


def test_determinism():
    x = study(np.random.default_rng(10), 1, 3, 40, 0.5)["m"][0]
    stat = lambda m: m.mean(axis=(1, 2))
    a, b = hierarchical_bootstrap(stat, [[x]], 500, seed=7), hierarchical_bootstrap(stat, [[x]], 500, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, hierarchical_bootstrap(stat, [[x]], 500, seed=8))
    np.testing.assert_equal(effect(stat, [[x]], 500, seed=7).as_dict(), effect(stat, [[x]], 500, seed=7).as_dict())
    np.testing.assert_equal(mean_effect(x).as_dict(), mean_effect(x).as_dict())
    assert effect(stat, [[x]], 500, seed=7).se != effect(stat, [[x]], 500, seed=8).se


def test_rejects_inconsistent_inputs():
    with pytest.raises(ValueError, match="same seeds"):
        difference(np.zeros((3, 10)), np.zeros((4, 10)))
    with pytest.raises(ValueError, match="share their examples"):
        difference(np.zeros((3, 10)), np.zeros((3, 9)))
    with pytest.raises(ValueError, match="NaN"):
        mean_effect(np.array([[1.0, np.nan]]))
    assert difference(np.zeros((3, 10)), np.zeros((3, 9)), paired_examples=False).value == 0
    e = difference(np.ones((3, 10)), np.zeros((1, 10)))  # a sure thing: no variance anywhere
    assert (e.value, e.lo, e.hi, e.se, e.p) == (1.0, 1.0, 1.0, 0.0, 0.0)
