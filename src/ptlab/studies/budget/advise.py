"""`ptlab advise --seed-size N --budget Q [--results DIR]`: which synthetic-data strategy to use.

The rule (after Chan et al., 2024): answers to existing questions (answer
augmentation) win while the budget ratio Q/|S| is low; new questions win once
it is high. The switch point is the crossover ratio: measured by a budget
study when `--results` names one (`ptlab study budget`; the measured seed-set
size nearest to N, in log scale, is used), else `DEFAULT_CROSSOVER`.

A crossover holds only under the conditions it was measured in, so the advice
names them: the simulated teacher's regime (its declared assumptions: solution
paths per question, error rates, new-question drift, ...) or the real teacher,
and the exposure rule (fixed epochs or equal steps). A study with several
regimes is read in the one `--regime` names (default: its first), and the
advice lists where the others cross.

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


def _conditions(cfg: dict, regime: str) -> str:
    """Under what the crossover was measured: the real teacher, or the simulated teacher's regime and assumptions."""
    teacher = cfg.get("teacher", {})
    if teacher.get("backend") != "simulated":
        return f"with the teacher {teacher.get('backend')}:{teacher.get('model')}"
    params = {**teacher.get("simulator", {}), **cfg.get("regimes", {}).get(regime, {})}
    return f"with a SIMULATED teacher, regime {regime!r} ({', '.join(f'{k}={v}' for k, v in params.items())})"


def _pick(cross: list[dict], value: str | None, axis: str, option: str, default: str) -> list[dict]:
    have = list(dict.fromkeys(c[axis] for c in cross))
    if value is None:
        value = default if default in have else have[0]
    elif value not in have:
        raise AdviceError(f"{option}: {value!r} was not measured in this study (measured: {', '.join(have)})")
    return [c for c in cross if c[axis] == value]


def from_results(seed_size: int, budget: int, results: str | Path, regime: str | None = None,
                 exposure: str | None = None) -> Advice:
    from ptlab.studies.budget.analysis import NotABudgetStudy, load, panel_results, show_ratio

    manifest, cells, outcomes = load(Path(results))
    cfg = manifest.get("config", {})
    axes = cfg.get("axes", {})
    every = panel_results(cells, outcomes, {"regime": axes.get("regime", []), "exposure": axes.get("exposure", [])},
                          n_boot=1000)["crossovers"]
    if not every:
        raise NotABudgetStudy(f"results dir {results}: no answer_augmentation and new_question cells to compare")
    cross = _pick(every, regime, "regime", "--regime", (axes.get("regime") or ["default"])[0])
    cross = _pick(cross, exposure, "exposure", "--exposure", "epochs")
    c = min(cross, key=lambda c: (abs(math.log(c["seed_size"] / seed_size)), c["seed_size"]))
    ratio = budget / seed_size
    where = (f"measured at |S| = {c['seed_size']} in {results} {_conditions(cfg, c['regime'])}, trained by the "
             f"{c['exposure']} rule; bootstrap 95% interval of the crossover [{show_ratio(c['boot_lo'])}, "
             f"{show_ratio(c['boot_hi'])}]")
    if c["seed_size"] != seed_size:
        where += f" (the measured size nearest to {seed_size})"
    others = [o for o in every if o["seed_size"] == c["seed_size"] and (o["regime"], o["exposure"]) != (
        c["regime"], c["exposure"])]
    if others:
        where += "; elsewhere in the study: " + ", ".join(
            f"{o['regime']}/{o['exposure']} " + (f"crosses at {o['ratio']:.3g}" if o["status"] == "crossover"
                                                 else "NQ ahead everywhere" if o["status"] == "always"
                                                 else "no crossover") for o in others)
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


def advise(seed_size: int, budget: int, results: str | Path | None = None, weak_teacher: bool = False,
           regime: str | None = None, exposure: str | None = None) -> Advice:
    if seed_size < 1:
        raise AdviceError(f"--seed-size: must be >= 1 (got {seed_size})")
    if budget < 1:
        raise AdviceError(f"--budget: must be >= 1 (got {budget})")
    if results is None and (regime or exposure):
        raise AdviceError("--regime / --exposure: read from a study; give --results too")
    advice = (from_results(seed_size, budget, results, regime, exposure) if results is not None
              else from_default(seed_size, budget))
    return _weak(advice, weak_teacher)


def register(app: typer.Typer) -> None:
    @app.command("advise")
    def advise_cmd(
        seed_size: int = typer.Option(..., "--seed-size", help="|S|: how many seed questions you have"),
        budget: int = typer.Option(..., "--budget", help="Q: how many teacher queries you can pay for"),
        results: str | None = typer.Option(None, "--results", help="a `ptlab study budget` output directory"),
        weak_teacher: bool = typer.Option(False, "--weak-teacher", help="the teacher is a small / weak model"),
        regime: str | None = typer.Option(None, "--regime", help="the study's simulator regime to read "
                                          "(default: its first)"),
        exposure: str | None = typer.Option(None, "--exposure", help="epochs or steps (default: epochs)"),
    ) -> None:
        """Recommend a synthetic-data strategy for a seed-set size and a teacher-query budget."""
        a = advise(seed_size, budget, results, weak_teacher, regime, exposure)
        print(f"recommended: {a.strategy}")
        print(f"reason: {a.reason}.")
