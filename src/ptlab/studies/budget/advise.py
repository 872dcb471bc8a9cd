"""`ptlab advise --seed-size N --budget Q [--results DIR]`: which synthetic-data strategy to use.

The rule (after Chan et al., 2024): answers to existing questions (answer
augmentation) win while the budget ratio Q/|S| is low; new questions win once
it is high. The switch point is the crossover ratio: measured by a budget
study when `--results` names one (`ptlab study budget`; the measured seed-set
size nearest to N, in log scale, is used), else `DEFAULT_CROSSOVER`.

`DEFAULT_CROSSOVER = 25`: the paper reports crossovers of roughly 12 to 50
depending on |S| and the student; 25 is about their geometric middle. New
Question also needs a strong teacher (about 15% lower accuracy with a 7B
augmenter in the paper) while rephrasing is robust to a weak one, so
`--weak-teacher` turns a new_question advice into question_rephrase.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import typer

from ptlab.errors import PtlabError

DEFAULT_CROSSOVER = 25.0


class AdviceError(PtlabError):
    """Bad input to `ptlab advise`."""


@dataclass(frozen=True)
class Advice:
    strategy: str
    ratio: float
    crossover: float | None
    source: str  # "default" or the results directory
    reason: str


def _weak(advice: Advice, weak_teacher: bool) -> Advice:
    if not weak_teacher or advice.strategy != "new_question":
        return advice
    return Advice("question_rephrase", advice.ratio, advice.crossover, advice.source,
                  advice.reason + "; but new questions need a strong teacher and yours is weak, so rephrase the seed "
                  "questions instead (robust to a weak augmenter in the paper)")


def from_default(seed_size: int, budget: int) -> Advice:
    ratio = budget / seed_size
    r = DEFAULT_CROSSOVER
    if ratio >= r:
        why = f"Q/|S| = {ratio:.3g} is at or above the default crossover ratio {r:g} (paper: ~12-50)"
        return Advice("new_question", ratio, r, "default", why + ": new questions add the diversity more answers cannot")
    why = f"Q/|S| = {ratio:.3g} is below the default crossover ratio {r:g} (paper: ~12-50)"
    return Advice("answer_augmentation", ratio, r, "default", why + ": more answers to the seed questions pay off more")


def from_results(seed_size: int, budget: int, results: str | Path) -> Advice:
    from ptlab.studies.budget.analysis import NotABudgetStudy, crossovers, load

    _, cells, outcomes = load(Path(results))
    cross = crossovers(cells, outcomes)
    if not cross:
        raise NotABudgetStudy(f"results dir {results}: no answer_augmentation and new_question cells to compare")
    c = min(cross, key=lambda c: (abs(math.log(c["seed_size"] / seed_size)), c["seed_size"]))
    ratio = budget / seed_size
    where = f"measured at |S| = {c['seed_size']} in {results}"
    if c["seed_size"] != seed_size:
        where += f" (the measured size nearest to {seed_size})"
    span = f"Q/|S| in [{c['lo']:g}, {c['hi']:g}]"
    outside = " (outside the measured range: an extrapolation)" if not c["lo"] <= ratio <= c["hi"] else ""
    if c["status"] == "crossover":
        r = c["ratio"]
        if ratio >= r:
            return Advice("new_question", ratio, r, str(results),
                          f"Q/|S| = {ratio:.3g} is at or above the crossover ratio {r:.3g} {where}{outside}")
        return Advice("answer_augmentation", ratio, r, str(results),
                      f"Q/|S| = {ratio:.3g} is below the crossover ratio {r:.3g} {where}{outside}")
    if c["status"] == "always":
        return Advice("new_question", ratio, None, str(results),
                      f"new_question beat answer_augmentation at every ratio {where} ({span}){outside}")
    return Advice("answer_augmentation", ratio, None, str(results),
                  f"no crossover in range {where} ({span}): new_question was not ahead at the largest ratio{outside}")


def advise(seed_size: int, budget: int, results: str | Path | None = None, weak_teacher: bool = False) -> Advice:
    if seed_size < 1:
        raise AdviceError(f"--seed-size: must be >= 1 (got {seed_size})")
    if budget < 1:
        raise AdviceError(f"--budget: must be >= 1 (got {budget})")
    advice = from_results(seed_size, budget, results) if results is not None else from_default(seed_size, budget)
    return _weak(advice, weak_teacher)


def register(app: typer.Typer) -> None:
    @app.command("advise")
    def advise_cmd(
        seed_size: int = typer.Option(..., "--seed-size", help="|S|: how many seed questions you have"),
        budget: int = typer.Option(..., "--budget", help="Q: how many teacher queries you can pay for"),
        results: str | None = typer.Option(None, "--results", help="a `ptlab study budget` output directory"),
        weak_teacher: bool = typer.Option(False, "--weak-teacher", help="the teacher is a small / weak model"),
    ) -> None:
        """Recommend a synthetic-data strategy for a seed-set size and a teacher-query budget."""
        a = advise(seed_size, budget, results, weak_teacher)
        print(f"recommended: {a.strategy}")
        print(f"reason: {a.reason}.")
