"""What the spurious report opens with: a Finding per claim, a Check per design check.

Findings are the paper's three claims (`reliance.claims`), each with its verdict,
strongest effect, interval, raw and Holm-adjusted p. The design checks say
whether the numbers can be trusted: the controls (can the design see reliance at
all, and does it see none where there is none), the built data (realised rates,
target marginals fixed across rates, no evaluation prompt in training), how the
arms were compared (tuned on validation, equal exposure, converged), seeds and
power.
"""

from __future__ import annotations

import pandas as pd

from ptlab.report.verdicts import Check, Finding
from ptlab.studies.spurious.reliance import EXPECTED

MIN_SEEDS = 5  # what the default full study runs; fewer: seed variance is estimated from very few degrees of freedom


def findings(claim_rows: list[dict]) -> list[Finding]:
    return [Finding(c["claim"], c["verdict"], c.get("effect", ""), c.get("interval", ""), c.get("p", ""),
                    c.get("p_adj", ""), c.get("detail", "")) for c in claim_rows]


def _pts(v: float, lo: float, hi: float) -> str:
    return f"{v * 100:+.1f} [{lo * 100:+.1f}, {hi * 100:+.1f}]"


def control_checks(controls: pd.DataFrame, has_fa: bool) -> list[Check]:
    if controls.empty:
        return [Check("controls (Feature Ambiguity at rates 0 and 1)", None,
                      "not run: whether this design can detect reliance is unknown" if has_fa else
                      "no Feature Ambiguity cells")]
    out = []
    for r in controls.itertuples():
        out.append(Check(f"positive control detects reliance: {r.task} ({r.algorithm})", bool(r.detects),
                         f"rate 1 reliance {_pts(r.positive, r.positive_lo, r.positive_hi)} points"
                         + ("" if r.detects else "; this task's Feature Ambiguity results cannot show robustness")))
        out.append(Check(f"negative control is null: {r.task} ({r.algorithm})", bool(r.negative_null),
                         f"rate 0 reliance {_pts(r.negative, r.negative_lo, r.negative_hi)} points"))
    return out


def data_checks(checks: pd.DataFrame, results: pd.DataFrame) -> list[Check]:
    out = []
    if not checks.empty:
        bad = checks[~checks["ok"].astype(bool)]
        out.append(Check("realised rates and target marginals across rates", bad.empty,
                         f"{len(checks) - len(bad)} of {len(checks)} task/artifact data sets: only the agreement "
                         "moves with the rate (Narrowness: inside share = rate)"
                         + ("" if bad.empty else "; off: " + ", ".join(f"{r.task}/{r.feature}" for r in bad.itertuples()))))
    overlap = results[results["metric"] == "data/eval_overlap"]["value"] if not results.empty else pd.Series(dtype=float)
    if len(overlap):
        out.append(Check("no evaluation or validation prompt in any training set", bool((overlap == 0).all()),
                         f"largest overlap {int(overlap.max())} prompts over {len(overlap)} post-training cells"))
    return out


def protocol_checks(tuned: bool | None, sweep_arms: int, edges: list[str], exposure: tuple[bool | None, str],
                    convergence: pd.DataFrame) -> list[Check]:
    out = [Check("arms tuned on the validation split", tuned,
                 f"{sweep_arms} task/arm choices from the sweep (validation disjoint from every evaluation split)"
                 if tuned else "hyper-parameters fixed by the config (tuning.enabled: false), not tuned")]
    if tuned:
        out.append(Check("every choice inside its grid", not edges, "none at an end of a learning-rate grid"
                         if not edges else "at an end (the best value may lie beyond it): " + ", ".join(edges)))
    out.append(Check("equal exposure", exposure[0], exposure[1]))
    if not convergence.empty:
        counts = convergence["still improving"].str.extract(r"(\d+) of (\d+)").astype(int)
        flagged = convergence[counts[0] > 0]
        out.append(Check("training converged (loss on a plateau at the end)", flagged.empty,
                         f"{int(counts[0].sum())} of {int(counts[1].sum())} runs still improving in their last "
                         "quarter" + ("" if flagged.empty else ": " + ", ".join(f"{r.task}/{r.arm}"
                                                                               for r in flagged.itertuples()))))
    return out


def power_checks(seeds: int, tests: pd.DataFrame) -> list[Check]:
    out = [Check(f"at least {MIN_SEEDS} training seeds", seeds >= MIN_SEEDS,
                 f"{seeds} seed{'s' if seeds != 1 else ''}" + (": intervals hold the trained models fixed (no seed "
                                                              "variance can be estimated)" if seeds == 1 else ""))]
    if not tests.empty:
        under = tests[tests["mde"] > EXPECTED]
        out.append(Check(f"claims' tests can detect a {EXPECTED * 100:.0f}-point effect (80% power)", under.empty,
                         f"{len(tests) - len(under)} of {len(tests)} tests adequately powered; MDE "
                         f"{tests['mde'].min() * 100:.1f}–{tests['mde'].max() * 100:.1f} points"))
    return out
