"""The crossover ratio of a difference curve: crossing, none, always ahead, several crossings."""

import math

import pytest

from ptlab.studies.budget.crossover import find_crossover


def test_single_crossing_is_interpolated_in_log_ratio():
    # d = -0.1 at r=4, +0.1 at r=16: zero half-way in log space, i.e. at r=8
    c = find_crossover([1, 4, 16, 64], [-0.2, -0.1, 0.1, 0.2])
    assert c.status == "crossover"
    assert c.ratio == pytest.approx(8.0)
    assert c.crossings == ((pytest.approx(8.0), "up"),)
    assert "overtakes" in c.describe()


def test_unequal_sides_and_unsorted_input():
    c = find_crossover([16, 2, 8], [0.3, -0.3, -0.1])  # between 8 (-0.1) and 16 (+0.3): a quarter of the way
    assert c.ratio == pytest.approx(math.exp(math.log(8) + 0.25 * math.log(2)))


def test_no_crossing_in_range_is_reported_honestly():
    c = find_crossover([1, 2, 4, 8], [-0.3, -0.2, -0.1, -0.05])
    assert c.status == "none" and c.ratio is None and c.crossings == ()
    assert "no crossover in range" in c.describe() and "[1, 8]" in c.describe()


def test_ahead_everywhere_means_crossover_below_range():
    c = find_crossover([1, 2, 4], [0.1, 0.2, 0.05])
    assert c.status == "always" and c.ratio is None
    assert "below" in c.describe()


def test_multiple_crossings_take_the_last_upward_one():
    # up between 1 and 2, down between 4 and 8, up again between 16 and 32 and stays ahead
    c = find_crossover([1, 2, 4, 8, 16, 32], [-0.1, 0.1, 0.1, -0.1, -0.1, 0.1])
    assert [d for _, d in c.crossings] == ["up", "down", "up"]
    assert c.status == "crossover"
    assert c.ratio == pytest.approx(math.sqrt(16 * 32))
    assert "3 times" in c.describe()


def test_ending_behind_after_crossings_is_no_crossover():
    c = find_crossover([1, 2, 4], [-0.1, 0.1, -0.1])
    assert c.status == "none" and len(c.crossings) == 2


def test_zero_counts_as_not_ahead_and_nans_are_dropped():
    c = find_crossover([1, 2, 4, 8], [-0.1, 0.0, float("nan"), 0.2])
    assert c.status == "crossover" and c.ratio == pytest.approx(2.0)
    assert find_crossover([5], [0.0]).status == "none"


def test_bad_input():
    with pytest.raises(ValueError):
        find_crossover([1, 2], [0.1])
    with pytest.raises(ValueError):
        find_crossover([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        find_crossover([], [])


def _tests(low_diff, low_p, high_diff, high_p):
    import pandas as pd

    return pd.DataFrame([
        {"seed_size": 25, "end": "lowest", "budget": 25, "ratio": 1.0, "diff": low_diff, "lo": low_diff - 0.05,
         "hi": low_diff + 0.05, "p": low_p},
        {"seed_size": 25, "end": "highest", "budget": 1600, "ratio": 64.0, "diff": high_diff, "lo": high_diff - 0.05,
         "hi": high_diff + 0.05, "p": high_p},
    ])


@pytest.mark.parametrize("args, head", [
    ((-0.1, 0.01, 0.1, 0.01), "**Reproduced**"),
    ((-0.1, 0.30, 0.1, 0.01), "**Partly reproduced**: new questions win at the highest ratio (significant, p < 0.05); "
                              "at the lowest, answer augmentation leads, but not significantly."),
    ((0.05, 0.30, 0.1, 0.01), "**Partly reproduced**: new questions win at the highest ratio (significant, p < 0.05); "
                              "at the lowest, answer augmentation does not lead."),
    ((-0.1, 0.01, -0.1, 0.01), "**Partly reproduced**: answer augmentation wins"),
    ((-0.1, 0.30, 0.1, 0.30), "**Same direction, not significant**"),
    ((0.1, 0.01, -0.1, 0.01), "**Not reproduced**"),
    ((0.005, 0.9, 0.005, 0.9), "**Not reproduced**"),  # a positive point estimate at the top alone reproduces nothing
])
def test_verdict_sentence(args, head):
    from ptlab.studies.budget.analysis import verdict

    text = verdict(_tests(*args))
    assert text.startswith(head) and "Q/|S|=64" in text

