"""The base-model probe of the card: each prompt cue's effect on counterfactual twins."""

import numpy as np

from ptlab.evaluate import twins


def test_probe_reports_every_prompt_cue_with_paired_tests(monkeypatch):
    """A fake model that answers correctly exactly when the math cue agrees is flagged as moved by the cue; one that
    ignores cues is not."""
    from ptlab.tasks import get_task

    def fake_generate(follow_cue):
        def gen(model, tokenizer, prompts, settings):
            out = []
            for p in prompts:
                ex = next(e for split in cache.values() for e in split if e.prompt == p)
                right = ex.chosen if (not follow_cue or ex.split != "eval_break") else ex.rejected
                out.append(right)
            return out
        return gen

    cache = {}
    real_splits = twins.twin_splits

    def remember(task, feature, n, seed, knobs=None, exclude=()):
        cache.clear()
        cache.update(real_splits(task, feature, n, seed, knobs, exclude))
        return cache

    import importlib

    gen_module = importlib.import_module("ptlab.evaluate.generate")
    monkeypatch.setattr(twins, "twin_splits", remember)
    monkeypatch.setattr(gen_module, "generate", fake_generate(True))
    moved = twins.probe_features(None, None, n=40)
    monkeypatch.setattr(gen_module, "generate", fake_generate(False))
    steady = twins.probe_features(None, None, n=40)
    assert set(moved) == {"math", "instruct", "docqa"}
    assert set(moved["docqa"]) == {"answer_first", "lexical_overlap"} and "verbosity" not in moved["math"]
    m = moved["math"]["altogether_cue"]
    assert (m["agree"], m["conflict"], m["absent"]) == (1.0, 0.0, 1.0) and m["novel"] is True and m["p_conflict"] < 0.001
    s = steady["math"]["altogether_cue"]
    assert (s["agree"], s["conflict"], s["absent"]) == (1.0, 1.0, 1.0) and s["novel"] is False
    assert steady["docqa"]["answer_first"]["novel"] is None  # no absent twin: not judged
    assert all(0 <= v <= 1 for t in moved.values() for r in t.values() for k, v in r.items() if k in ("agree", "conflict"))
    assert np.isclose(get_task("math").verify(cache["eval_id"][0], cache["eval_id"][0].chosen)["correct"], 1)
