"""The SoftQE report's checks of its own inputs: the expansion leak check and training convergence."""

from ptlab.studies.softqe.diagnostics import convergence_check, curves_figure, leak_check, leak_table


def _rep(gold: float, random: float, leaks: bool) -> dict:
    diff = {"mean": gold - random, "low": gold - random - 0.02, "high": gold - random + 0.02}
    by_n = {str(n): {"gold": gold, "random": random, "diff": diff if n == 3 else None} for n in (1, 3, 8)}
    return {"leaks": leaks, "reason": f"{'leaks' if leaks else 'no leak'}: {gold - random:+.3f}", "leak_n": 3,
            "by_n": by_n}


def test_an_llm_that_does_not_copy_passes_and_the_oracle_is_shown_for_reference():
    leak = {"SQuAD train": {"study": _rep(0.03, 0.01, False), "oracle (upper bound)": _rep(0.33, 0.0, True)},
            "SQuAD (in-domain)": {"study": _rep(0.04, 0.01, False), "oracle (upper bound)": _rep(0.34, 0.0, True)}}
    check = leak_check(leak, "`hf:smollm2-135m`")
    assert check.passed is True and "SQuAD train: no leak" in check.detail and "the oracle, for reference" in check.detail
    table = leak_table(leak)
    assert list(table["leaks"]) == ["no", "yes", "no", "yes"] and table.loc[0, "expansion"] == "study"
    assert table.loc[1, "3-gram gold − random (points, 95% CI)"] == "+33.0 [+31.0, +35.0]"
    assert table.loc[0, "1-gram gold / random (%)"] == "3.0 / 1.0"


def test_a_leaking_llm_fails_and_an_oracle_study_fails_by_construction():
    leak = {"SQuAD train": {"study": _rep(0.2, 0.0, True), "oracle (upper bound)": _rep(0.33, 0.0, True)}}
    assert leak_check(leak, "x").passed is False
    oracle_only = {"SQuAD train": {"oracle (upper bound)": _rep(0.33, 0.0, True)}}
    check = leak_check(oracle_only, "x")
    assert check.passed is False and "upper bound" in check.detail
    assert leak_check(None, "x").passed is None


def _record(converged: bool, curve: bool = True) -> dict:
    points = [{"step": s, "epoch": s / 10, "train_loss": None if s == 0 else 1.0 / s, "dev_loss": 2.0 - s / 100}
              for s in range(0, 50, 10)]
    return {"steps": 40, "best_step": 40, "best_dev_loss": 1.6, "converged": converged, "stopped_early": False,
            **({"curve": points} if curve else {})}


def test_convergence_needs_every_encoder_converged_with_a_curve():
    assert convergence_check({"teacher": _record(True), "SoftQE α=0": _record(True)}).passed is True
    bad = convergence_check({"teacher": _record(True), "SoftQE α=0": _record(False)})
    assert bad.passed is False and "not converged: SoftQE α=0" in bad.detail
    missing = convergence_check({"teacher": _record(True), "SoftQE α=0": _record(True, curve=False)})
    assert missing.passed is False and "no curve: SoftQE α=0" in missing.detail
    assert convergence_check({"teacher": None}).passed is None
    assert len(curves_figure({"teacher": _record(True), "SoftQE α=0": _record(True)})) > 5_000
    assert curves_figure({"teacher": None}) is None


def test_tool_queries_are_reported_by_who_wrote_them():
    import numpy as np

    from ptlab.report.document import Document
    from ptlab.retrieval.evaluate import CollectionResult, SystemResult, compare
    from ptlab.retrieval.stats import mean_ci
    from ptlab.retrieval.toolret import query_origin
    from ptlab.studies.softqe.report import _subsets

    assert query_origin({"category": "live_simple"}) == "user-written (live)"
    assert query_origin({"category": "parallel"}) == "written from the documentation"
    assert query_origin({}) is None
    res = CollectionResult("BFCL tools (out-of-domain)", 4, 10)
    for name, v in (("base", [1.0, 0.0, 0.5, 0.5]), ("SoftQE α=0.5", [1.0, 1.0, 0.5, 0.0])):
        v = np.array(v)
        res.systems[name] = SystemResult(name, {"nDCG@10": v}, {"nDCG@10": mean_ci(v)}, 1.0, 0.1, 4)
    compare(res, [("SoftQE α=0.5", "base")], 0)
    doc = Document("t")
    _subsets(doc, res, {"live": np.array([True, True, False, False]), "docs": np.array([False, False, True, True])}, 0)
    md = doc.markdown()
    assert "| system | live (n=2) | docs (n=2) |" in md and "| base | 50.0 [" in md
    assert "| SoftQE α=0.5 vs base | +50.0 [" in md and "| -25.0 [" in md  # +1 on live, (0 - 0.5) / 2 on docs
