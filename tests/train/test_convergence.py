import numpy as np

from ptlab.train.convergence import convergence_metrics, curve_points, still_improving


def test_a_falling_loss_is_flagged_and_a_plateau_is_not():
    steps = np.arange(1, 41)
    falling = 0.69 * np.exp(-steps / 60)
    flat = 0.3 + 0.4 * np.exp(-steps / 3)
    assert still_improving(falling)[0] and not still_improving(flat)[0]
    assert still_improving(falling)[1] == pytest_approx((falling[20:30].mean() - falling[30:].mean()) / falling[20:30].mean())
    flag, drop = still_improving([0.5] * 5)  # too short to say
    assert not flag and np.isnan(drop)


def pytest_approx(x):
    import pytest

    return pytest.approx(x)


def test_curve_points_average_segments_and_take_the_last_evaluation():
    history = [{"step": s, "loss": float(s)} for s in range(1, 9)]
    history[3]["eval/loss"] = 0.4
    history[7].update({"eval/loss": 0.2, "eval/rewards/accuracies": 0.75})
    pts = curve_points(history, 2)
    assert pts == [{"step": 4, "train_loss": 2.5, "eval_loss": 0.4},
                   {"step": 8, "train_loss": 6.5, "eval_loss": 0.2, "eval_reward_accuracy": 0.75}]
    m = convergence_metrics(history, 2)
    assert m["curve/2/eval_loss"] == 0.2 and m["train/first_loss"] == 1.0 and m["train/still_improving"] == 0.0
