"""Holm's step-down correction: checked against statsmodels and a hand computation; families kept apart."""

from unittest import mock

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from ptlab.evaluate.multiple import adjust_families, holm


def _reference(p):
    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        with mock.patch("gc.collect"):  # statsmodels' Holm runs a full garbage collection on every call (~0.1 s)
            out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def test_hand_example():
    # sorted 0.01, 0.02, 0.03, 0.04 with m = 4: 4·0.01, 3·0.02, 2·0.03, 1·0.04 → 0.04, 0.06, 0.06 (monotone), 0.06
    p = [0.03, 0.01, 0.04, 0.02]
    assert holm(p) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    # sorted 0.001, 0.4, 0.5: 3·0.001, 2·0.4, max(0.8, 1·0.5) — the step-down keeps later ones at least as large
    assert holm([0.5, 0.001, 0.4]) == pytest.approx([0.8, 0.003, 0.8])
    assert holm([0.6, 0.001, 0.55]) == pytest.approx([1.0, 0.003, 1.0])  # 2·0.55 caps at 1


@pytest.mark.parametrize("m", [1, 2, 5, 20, 200])
def test_matches_statsmodels_on_random_pvalues(m):
    rng = np.random.default_rng(m)
    for _ in range(20):
        p = rng.uniform(0, 1, m) ** rng.uniform(0.5, 4)  # from mostly-null to mostly-small
        np.testing.assert_allclose(holm(p), _reference(p), rtol=0, atol=1e-15)


@pytest.mark.parametrize("p", [
    [0.01, 0.01, 0.01],  # ties
    [0.02, 0.01, 0.02, 0.5, 0.01],  # ties among several
    [1.0, 1.0, 0.3],  # ones
    [0.0, 0.0, 1.0],  # zeros
    [0.04],  # a single test is not adjusted
    [0.01, np.nan, 0.03, np.nan],  # NaN kept and not counted
    [np.nan, np.nan],
])
def test_edge_cases_match_statsmodels(p):
    got = holm(p)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(p))
    np.testing.assert_allclose(got, _reference(p), rtol=0, atol=1e-15)


def test_nan_is_not_counted_and_result_is_monotone():
    assert holm([0.01, np.nan, 0.03])[[0, 2]] == pytest.approx([0.02, 0.03])  # m = 2, not 3
    rng = np.random.default_rng(0)
    p = rng.uniform(size=50)
    adj = holm(p)
    order = np.argsort(p)
    assert (np.diff(adj[order]) >= 0).all() and (adj >= p).all() and (adj <= 1).all()
    assert holm([]).shape == (0,)
    with pytest.raises(ValueError):
        holm([0.5, 1.5])


def test_adjust_families_corrects_within_each_family_only():
    df = pd.DataFrame({"claim": ["a", "a", "a", "b", "b", "c"],
                       "task": ["x", "x", "y", "x", "x", "x"],
                       "p": [0.01, 0.04, 0.03, 0.02, np.nan, 0.2]}, index=[10, 11, 12, 13, 14, 15])
    out = adjust_families(df, ["claim"])
    assert list(out.index) == list(df.index) and "p_adj" not in df.columns  # a copy, order kept
    assert out["p_adj"].to_numpy() == pytest.approx([0.03, 0.06, 0.06, 0.02, np.nan, 0.2], nan_ok=True)
    assert list(out["family"]) == ["claim=a"] * 3 + ["claim=b"] * 2 + ["claim=c"]
    two = adjust_families(df, ["claim", "task"], out_col="q")
    assert two["q"].to_numpy() == pytest.approx([0.02, 0.04, 0.03, 0.02, np.nan, 0.2], nan_ok=True)
    assert two.loc[12, "family"] == "claim=a, task=y"
    one = adjust_families(df, [])
    np.testing.assert_allclose(one["p_adj"], _reference(df["p"]))
    assert set(one["family"]) == {"all"}


def test_adjust_families_keeps_missing_family_values_as_their_own_family():
    df = pd.DataFrame({"g": ["a", None, "a", None], "p": [0.01, 0.02, 0.02, 0.04]})
    out = adjust_families(df, ["g"])
    assert out["p_adj"].to_numpy() == pytest.approx([0.02, 0.04, 0.02, 0.04])
    assert out["family"].iloc[0] == "g=a" and out["family"].iloc[1].startswith("g=")
    assert adjust_families(df.iloc[:0], ["g"]).empty
    with pytest.raises(KeyError):
        adjust_families(df, ["nope"])
