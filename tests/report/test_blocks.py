"""What a report opens with (Findings, Design checks, one headline figure) and clean tables, for the Document
itself and for the budget and SoftQE reports built from constructed results with a known answer."""

import json

import numpy as np
import pandas as pd
import pytest

from ptlab.report.document import Document, _md_table
from ptlab.report.verdicts import CONTRADICTED, INCONCLUSIVE, NO_EFFECT, NOT_TESTED, SUPPORTED, Check, Finding, fmt_p

OPENING = ["findings", "checks", "image"]


def _tables(doc: Document) -> list[pd.DataFrame]:
    return [body for kind, body in doc.blocks if kind == "table"]


def _no_empty_columns(doc: Document) -> None:
    for t in _tables(doc):
        for c in t.columns:
            assert not t[c].map(lambda v: v is None or (isinstance(v, float) and np.isnan(v))
                                or (isinstance(v, str) and not v.strip())).all(), c
        assert not any(str(c).startswith("Unnamed") or str(c) == "index" for c in t.columns)


# --- the Document's blocks -------------------------------------------------------------------------------------


def test_findings_and_checks_render_as_compact_tables_in_markdown():
    doc = Document("T")
    doc.findings([Finding("a beats b", SUPPORTED, "+3.0 points", "[+1.0, +5.0]", "0.004", "0.012"),
                  Finding("c beats b", NOT_TESTED)], note="how to read it")
    doc.checks([Check("budget respected", True, "all cells"), Check("seeds", False, "1 seed"),
                Check("convergence", None)])
    assert doc.kinds() == ["findings", "checks"]
    md = doc.markdown()
    assert md.index("## Findings") < md.index("## Design checks")
    assert "| claim | verdict | effect | 95% interval | p (Holm) | p (raw) |" in md  # no empty `detail` column
    assert "| a beats b | **supported** | +3.0 points | [+1.0, +5.0] | 0.012 | 0.004 |" in md
    assert "| c beats b | **not tested** |  |  |  |  |" in md and "how to read it" in md
    assert "| budget respected | **pass** | all cells |" in md
    assert "| seeds | **fail** | 1 seed |" in md and "| convergence | **not run** |  |" in md


def test_findings_and_checks_in_html_are_badges_with_their_words():
    doc = Document("T")
    doc.findings([Finding("a beats b", CONTRADICTED, "-3", "[-5, -1]", "0.01", "0.02")], title=None)
    doc.checks([Check("x", True), Check("y", False), Check("z", None)])
    html = doc.html()
    assert "<h2>Findings</h2>" not in html and "<h2>Design checks</h2>" in html
    assert "class='badge b-contradicted'" in html and "contradicted</span>" in html
    for word, css in (("pass", "b-pass"), ("fail", "b-fail"), ("not run", "b-not-run")):
        assert f"class='badge {css}'" in html and f"{word}</span>" in html  # the word, not colour alone
    assert "aria-hidden='true'" in html  # the symbol beside the word is decoration


def test_tables_drop_empty_columns_and_never_write_an_index():
    df = pd.DataFrame({"a": [1, 2], "nan": [np.nan, np.nan], "none": [None, None], "blank": ["", " "],
                       "some": ["", "x"]}, index=[7, 9])
    doc = Document("T")
    doc.table(df)
    doc.table(pd.DataFrame({"v": [0.5]}, index=pd.Index(["sft"], name="arm")))  # a named index is data
    md, html = doc.markdown(), doc.html()
    assert "| a | some |\n|---|---|\n| 1 |  |\n| 2 | x |" in md
    assert "| arm | v |" in md and "| sft | 0.5 |" in md
    for gone in ("nan", "none", "blank", ">7<", ">9<", "| 7 |"):
        assert gone not in md.split("# T")[1] and gone not in html.split("<body>")[1]
    assert _md_table(pd.DataFrame({"x": [1], "y": [np.nan]})) == "| x |\n|---|\n| 1 |"


def test_fmt_p_and_the_verdict_words_are_the_power_modules():
    from ptlab.evaluate import power
    from ptlab.report.verdicts import VERDICTS

    assert set(power.VERDICTS) <= set(VERDICTS)
    assert fmt_p(0.01234) == "0.012" and fmt_p(3e-6) == "<0.0001" and fmt_p(float("nan")) == "" and fmt_p(None) == ""


# --- budget: a constructed study with a known crossover ------------------------------------------------------


def _budget_study(root, n=300, gap=(-0.25, 0.25), seeds=(0, 1, 2), budgets=(4, 16, 64), size=4, overlap=0,
                  floor=False, regimes=None):
    """AA at 0.6 everywhere; NQ − AA moves linearly (in log Q) from gap[0] to gap[1]; QR at 0.55.
    `regimes`: {name: gap} for a sensitivity study (one panel per regime, exposure epochs)."""
    from ptlab.studies.budget.cells import BudgetCell
    from ptlab.studies.budget.study import STUDY as BUDGET
    from ptlab.studies.grid.store import ResultStore

    root.mkdir(parents=True)
    store = ResultStore(root / "results.sqlite", BUDGET.axes)
    rng = np.random.default_rng(0)
    regimes = regimes or {"default": gap}
    cells = [BudgetCell("math", 0, 0, "base", 0, "-", "-")]
    for seed in seeds:
        cells.append(BudgetCell("math", size, 0, "seeds_only", seed, "-"))
        cells += [BudgetCell("math", size, q, s, seed, r) for r in regimes
                  for s in ("answer_augmentation", "question_rephrase", "new_question") for q in budgets]
    for cell in cells:
        p = {"base": 0.3, "seeds_only": 0.4, "answer_augmentation": 0.6, "question_rephrase": 0.55}.get(cell.strategy)
        if cell.strategy == "new_question":
            t = np.log(cell.budget / budgets[0]) / np.log(budgets[-1] / budgets[0])
            g = regimes[cell.regime]
            p = 0.6 + g[0] + t * (g[1] - g[0])
        correct = rng.random(n) < (0.0 if floor else p)
        metrics = {"eval_id/accuracy": correct.mean(), "eval_id/n": n}
        if cell.strategy != "base":
            metrics.update({"synth/rows": max(cell.budget, size), "synth/unique_prompts": size,
                            "synth/queries_used": cell.budget, "teacher/paid": cell.budget,
                            "synth/eval_overlap": overlap, "train/steps": 10})
        store.add_cell(cell.as_dict(), "h", metrics,
                       [{"split": "eval_id", "id": f"e{i:04d}", "correct": bool(c)} for i, c in enumerate(correct)],
                       {"train_s": 1.0})
    config = {"task": "math", "model": "tiny", "axes": {"seed_size": [size], "budget": list(budgets),
                                                         "strategy": ["answer_augmentation", "question_rephrase",
                                                                      "new_question"], "seed": list(seeds),
                                                         "regime": list(regimes), "exposure": ["epochs"]},
              "regimes": {r: ({} if r == "default" else {"answer_paths": 1}) for r in regimes},
              "data": {"n_eval": n}, "train": {"epochs": 3, "batch_size": 8, "lr": 5e-4, "scheduler": "cosine"},
              "teacher": {"backend": "simulated", "model": "math", "simulator": {"answer_error": 0.1}}}
    (root / "study.json").write_text(json.dumps({"format": BUDGET.study_format, "cell_version": BUDGET.cell_version,
                                                 "cells": [c.as_dict() for c in cells], "config": config}))
    return root


def test_budget_report_opens_with_findings_checks_and_the_curves(tmp_path):
    from ptlab.studies.budget.report import build_document, write_report

    root = _budget_study(tmp_path / "s")
    doc, _, summary, _ = build_document(root)
    assert doc.kinds()[:3] == OPENING
    assert next(body for kind, body in doc.blocks if kind == "image")[0] == "curves.png"
    found, checks = doc.blocks[1][1][0], doc.blocks[3][1][0]
    assert [f.verdict for f in found] == [SUPPORTED]
    assert found[0].claim.startswith("|S| = 4: new_question overtakes answer_augmentation")
    assert found[0].effect.startswith("+") and found[0].p_adj and found[0].p
    by_name = {c.name.split(" (")[0]: c for c in checks}
    assert by_name["Teacher budget respected"].passed is True
    assert by_name["Same held-out examples for every cell"].passed is True
    assert by_name["Seeds per condition"].passed is True
    assert by_name["Training questions disjoint from held-out questions"].passed is True
    assert by_name["Every configured cell finished"].passed is True
    assert by_name["Outcomes vary"].passed is True
    assert any(c.name.startswith("Power") for c in checks)
    _no_empty_columns(doc)
    md = write_report(root).read_text()
    assert md.index("## Findings") < md.index("## Design checks") < md.index("curves.png") < md.index("## Setup")
    comp = md.split("## Strategy comparisons at each budget")[1].split("##")[0]
    assert "| p (raw) | p (Holm) |" in comp and "new_question − answer_augmentation" in comp
    assert summary["findings"][0]["verdict"] == SUPPORTED and len(summary["comparisons"]) == 3 * 3
    # Holm within the |S| family: adjusted p never below the raw one
    assert all(c["p_adj"] >= c["p"] - 1e-12 for c in summary["comparisons"])


def test_budget_checks_fail_where_the_design_does(tmp_path):
    from ptlab.studies.budget.report import build_document

    root = _budget_study(tmp_path / "s", n=40, seeds=(0,), overlap=2)
    doc, *_ = build_document(root)
    checks = {c.name.split(" (")[0]: c for c in doc.blocks[3][1][0]}
    assert checks["Seeds per condition"].passed is False and "1 seed" in checks["Seeds per condition"].detail
    assert checks["Training questions disjoint from held-out questions"].passed is False
    power = next(c for n, c in checks.items() if n.startswith("Power"))
    assert power.passed is False and "MDE" in power.detail  # 40 examples cannot detect 5 points


def test_budget_outcomes_at_the_floor_cannot_show_power(tmp_path):
    from ptlab.studies.budget.report import build_document

    doc, *_ = build_document(_budget_study(tmp_path / "s", floor=True))  # every example wrong, everywhere
    (finding,) = doc.blocks[1][1][0]
    assert finding.verdict == INCONCLUSIVE and "no variation" in finding.detail  # not "no effect"
    checks = {c.name.split(" (")[0]: c for c in doc.blocks[3][1][0]}
    assert checks["Outcomes vary"].passed is False
    assert next(c for n, c in checks.items() if n.startswith("Power")).passed is False


@pytest.mark.parametrize("gap, n, expected", [
    ((-0.25, 0.25), 300, SUPPORTED),  # NQ gains 50 points on AA from the lowest to the highest budget
    ((0.25, -0.25), 300, CONTRADICTED),  # NQ loses ground as Q grows
    ((0.0, 0.0), 40, INCONCLUSIVE),  # no change, and 40 examples cannot see one of 5 points
])
def test_budget_findings_verdicts(tmp_path, gap, n, expected):
    from ptlab.studies.budget.analysis import load, panel_results
    from ptlab.studies.budget.report import findings

    _, cells, outcomes = load(_budget_study(tmp_path / "s", n=n, gap=gap))
    r = panel_results(cells, outcomes)
    found = findings(r["crossover_tests"], r["crossovers"], [("default", "epochs", 4), ("default", "epochs", 8)])
    assert [f.verdict for f in found] == [expected, NOT_TESTED]  # |S| = 8 has no cells


def test_budget_sensitivity_names_the_regime_that_gives_the_papers_finding(tmp_path):
    """Two regimes, one where AA leads at the lowest ratio and NQ at the highest (the paper's shape), one where NQ
    leads everywhere: the sensitivity table, the crossover ratios and the sentence tell them apart."""
    from ptlab.studies.budget.report import build_document

    root = _budget_study(tmp_path / "s", regimes={"default": (-0.25, 0.25), "one_path": (0.2, 0.3)},
                         budgets=(16, 64, 256, 1024))  # Q/|S| = 4 ... 256
    doc, _, summary, _ = build_document(root)
    sens = {r["regime"]: r for r in summary["sensitivity"]}
    assert sens["default"]["pattern"] == "AA low → NQ high (the paper's)" and sens["default"]["paper_pattern_significant"]
    assert sens["default"]["status"] == "crossover" and 16 < sens["default"]["crossover"] < 64  # midway: 32
    assert sens["default"]["crossover_in_paper_range"]
    assert sens["one_path"]["pattern"] == "NQ at both ends" and sens["one_path"]["status"] == "always"
    assert summary["paper_regime"].startswith("The paper's finding") and "`default`" in summary["paper_regime"]
    assert "`one_path` (epochs, |S| = 4): NQ at both ends" in summary["paper_regime"]
    # bootstrap over seeds and examples: an interval around the crossover that excludes "always" and "none"
    d = next(c for c in summary["crossovers"] if c["regime"] == "default")
    assert d["boot_seeds"] and 4 < d["boot_lo"] <= d["ratio"] <= d["boot_hi"] < 256
    claims = [f["claim"] for f in summary["findings"]]
    assert claims == ["regime default: |S| = 4: new_question overtakes answer_augmentation as the budget Q grows",
                      "regime one_path: |S| = 4: new_question overtakes answer_augmentation as the budget Q grows"]


def test_budget_no_effect_when_adequately_powered():
    from ptlab.studies.budget.report import EXPECTED_CROSSOVER_GAIN, findings

    # a null effect measured precisely: the interval excludes the smallest effect of interest
    ctests = pd.DataFrame([{"regime": "default", "exposure": "epochs", "seed_size": 4, "low_budget": 4, "high_budget": 64, "low_ratio": 1.0, "high_ratio": 16.0,
                            "gap_low": 0.0, "gap_high": 0.001, "diff": 0.001, "lo": -0.008, "hi": 0.01,
                            "p": 0.8, "se": 0.0046, "df": float("inf"), "n": 5000, "p_adj": 0.8}])
    assert EXPECTED_CROSSOVER_GAIN > 0.02
    (f,) = findings(ctests, [], [("default", "epochs", 4)])
    assert f.verdict == NO_EFFECT and f.p == "0.8"


# --- SoftQE: constructed per-query results ------------------------------------------------------------------


def _softqe(gain_out: float, gain_in: float, n_in=300, n_out=300, alphas=(0.0, 0.5)):
    from ptlab.retrieval.evaluate import CollectionResult, SystemResult, compare
    from ptlab.retrieval.stats import mean_ci
    from ptlab.studies.softqe.analysis import SoftQEResults
    from ptlab.studies.softqe.cells import comparisons, systems

    rng = np.random.default_rng(1)
    results = {}
    for label, n, gain in (("SQuAD (in-domain)", n_in, gain_in), ("HotpotQA (out-of-domain)", n_out, gain_out)):
        res = CollectionResult(label, n, 1000)
        base = rng.uniform(0.2, 0.8, n)
        for name in systems(list(alphas)):
            shift = gain if name.startswith("SoftQE") and name != "SoftQE α=0" else 0.0
            v = np.clip(base + shift + rng.normal(0, 0.05, n), 0, 1)
            res.systems[name] = SystemResult(name, {"nDCG@10": v}, {"nDCG@10": mean_ci(v)}, 1.0, 0.1, n)
        compare(res, comparisons(list(alphas)), 0)
        results[label] = res
    info = {"epochs": 1, "batch_size": 8, "learning_rate": 1e-4, "steps": 4, "train_loss": 0.5, "seconds": 1.0}
    shared = {"expansion": {"backend": "simulated-expansion", "model": "oracle"}, "train_ids": ["t1", "t2"],
              "collections": {"squad": {"queries": ["q1", "q2"]}, "hotpotqa": {"queries": ["h1"]}},
              "pseudo": {"q1": "a", "q2": "b", "h1": "c"}}
    training = {"teacher": {**info, "pairs": 2}, "students": {f"{a:g}": {**info, "rows": 2} for a in alphas},
                "train_queries": 2, "teacher_queries": 2}
    return SoftQEResults({"config": {"threads": 1}}, shared, None, list(alphas), results, training)


def test_softqe_report_opens_with_findings_checks_and_the_systems_figure():
    from ptlab.studies.softqe.report import build_document

    doc = build_document(_softqe(gain_out=0.06, gain_in=0.0))
    assert doc.kinds()[:3] == OPENING
    found = {f.claim: f for f in doc.blocks[1][1][0]}
    out_base = found["SoftQE α=0.5 beats the base encoder on HotpotQA (out-of-domain), nDCG@10"]
    assert out_base.verdict == SUPPORTED and float(out_base.effect.split()[0]) == pytest.approx(6, abs=0.5)
    assert "expected +2.83 points" in out_base.detail
    in_base = found["SoftQE α=0.5 beats the base encoder on SQuAD (in-domain), nDCG@10"]
    assert in_base.verdict in (NO_EFFECT, INCONCLUSIVE)  # no gain in-domain
    assert any("without distillation" in c for c in found)
    assert not any(c.startswith("SoftQE α=0 ") for c in found)  # the ablation is a reference, not a claim
    checks = {c.name: c for c in doc.blocks[3][1][0]}
    assert checks["Same queries for every system"].passed is True
    assert checks["Student training queries disjoint from the SQuAD test queries"].passed is True
    assert checks["Expansions from a real LLM (the paper's setting)"].passed is False  # simulated oracle
    assert checks["Training converged (held-out dev loss)"].passed is None  # no learning curve recorded: not run
    assert checks["Expansions do not copy the relevant passage (leak check)"].passed is None  # not recorded
    assert checks["No-distillation ablation (α = 0) run"].passed is True
    control = checks["Positive control: students distilling oracle expansions beat α = 0"]
    assert control.passed is True and "HotpotQA (out-of-domain)" in control.detail  # the oracle run's +6 there
    _no_empty_columns(doc)
    md = doc.markdown()
    assert md.index("## Findings") < md.index("## Design checks") < md.index("figure.png") < md.index("## Setup")
    assert "| a vs b | measure | a − b (points) | 95% interval | p (raw) | p (Holm) |" in md


def test_softqe_holm_family_is_the_measure_across_collections():
    from ptlab.studies.softqe.report import comparisons_frame

    comps = comparisons_frame(_softqe(0.06, 0.0).results)
    assert set(comps["collection"]) == {"SQuAD (in-domain)", "HotpotQA (out-of-domain)"}
    raw = comps["p"].to_numpy()
    order = np.argsort(raw)
    m = len(raw)
    holm = np.minimum(1, np.maximum.accumulate(raw[order] * (m - np.arange(m))))
    assert np.allclose(comps["p_adj"].to_numpy()[order], holm)


def test_softqe_underpowered_out_of_domain_is_inconclusive():
    from ptlab.studies.softqe.report import findings

    r = _softqe(gain_out=0.0, gain_in=0.0, n_out=8)
    found = {f.claim: f for f in findings(r.results)}
    assert found["SoftQE α=0.5 beats the base encoder on HotpotQA (out-of-domain), nDCG@10"].verdict == INCONCLUSIVE


def test_softqe_positive_control_fails_without_a_distillation_gain_and_is_not_run_for_an_llm():
    from ptlab.studies.softqe.report import POSITIVE_CONTROL, comparisons_frame, design_checks

    null = _softqe(gain_out=0.0, gain_in=0.0)
    check = next(c for c in design_checks(null, comparisons_frame(null.results)) if c.name == POSITIVE_CONTROL)
    assert check.passed is False and check.detail.startswith("0 of 2 distilled-vs-α=0 comparisons significant")
    llm = _softqe(gain_out=0.06, gain_in=0.0)
    llm.shared["expansion"] = {"backend": "hf", "model": "smollm2-135m"}
    check = next(c for c in design_checks(llm, comparisons_frame(llm.results)) if c.name == POSITIVE_CONTROL)
    assert check.passed is None and "expansion.source=oracle" in check.detail
