"""The whole `study softqe` flow at its quick size (slow: trains two encoders on CPU)."""

import json

import pytest

from ptlab.retrieval.study import SoftQEConfig, quick, run_study, systems


@pytest.mark.slow
def test_quick_study_writes_report_and_reuses_its_cache(tmp_path):
    cfg = quick(SoftQEConfig()).model_copy(update={"train_queries": 96, "teacher_queries": 64})
    cfg.student.alpha, cfg.student.epochs = [0.0, 0.5], 1
    cfg.latency.n_queries, cfg.latency.max_new_tokens = 1, 8
    summary = run_study(cfg, tmp_path / "out", log=lambda _: None)
    out = tmp_path / "out"
    assert (out / "figure.png").stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert "SQuAD (in-domain)" in report and "HotpotQA (out-of-domain)" in report and "p=" in report
    results = json.loads((out / "results.json").read_text())["results"]
    SYSTEMS = systems([0.0, 0.5])
    for label in ("SQuAD (in-domain)", "HotpotQA (out-of-domain)"):
        got = results[label]["systems"]
        assert sorted(got) == sorted(SYSTEMS)  # results.json is written with sorted keys
        for s in got.values():
            ndcg = s["metrics"]["nDCG@10"]
            assert 0.0 <= ndcg["low"] <= ndcg["mean"] <= ndcg["high"] <= 1.0
        assert {"SoftQE α=0.5 vs base", "SoftQE α=0.5 vs SoftQE α=0"} <= set(results[label]["comparisons"])
    assert len(list((out / "runs").glob("*.trec"))) == 2 * len(SYSTEMS)
    lat = summary["latency"]
    assert lat["with_llm_ms"] > lat["without_llm_ms"] > 0

    again = run_study(cfg, tmp_path / "again", log=lambda _: None)  # everything cached: only re-scores
    assert again["timings_s"]["teacher"] < 5 and not any(k.startswith("student") for k in again["timings_s"])
    rerun = json.loads((tmp_path / "again" / "results.json").read_text())["results"]
    for label, res in results.items():  # same config and seed -> same numbers (timings aside)
        assert res["comparisons"] == rerun[label]["comparisons"]
        assert {n: s["metrics"] for n, s in res["systems"].items()} == {
            n: s["metrics"] for n, s in rerun[label]["systems"].items()}
