"""The pretrained `tiny` base: registration, packing, schedule; the real build is slow-marked."""

import json

import pytest
import torch

from ptlab.models.packaged_builds import TIMING_FILE, reproducible_files
from ptlab.models.tiny_base import SPEC, PretrainSpec, build_tiny_base, lr_at, packed_blocks
from ptlab.tasks.base import TASKS_VERSION


def test_tiny_is_registered_with_a_versioned_builder():
    from ptlab.models.registry import available
    from ptlab.models.tiny import TINY_BUILDERS

    assert "tiny" in available() and "Pretrained" in available()["tiny"]
    assert TINY_BUILDERS["tiny"] is build_tiny_base
    assert TASKS_VERSION in build_tiny_base.version and f"steps={SPEC.steps}" in build_tiny_base.version


def test_packed_blocks_are_deterministic_and_separated_by_eos():
    from ptlab.models.tokenizer import train_bpe
    from ptlab.tasks.corpus import pretrain_texts

    texts = pretrain_texts(30, seed=0)
    assert len(texts) == 90 and texts == pretrain_texts(30, seed=0)
    tok = train_bpe(texts, 400)
    a, b = packed_blocks(tok, texts, 32, seed=0), packed_blocks(tok, texts, 32, seed=0)
    assert a.shape[1] == 33 and torch.equal(a, b)
    assert (a == tok.eos_token_id).sum() > 0
    assert not torch.equal(a, packed_blocks(tok, texts, 32, seed=1))


def test_pretraining_mix_contains_mistakes_at_the_rate():
    from ptlab.tasks import get_task
    from ptlab.tasks.corpus import corpus_examples, pretrain_texts

    texts = pretrain_texts(200, seed=0, wrong_rate=0.25)
    math = [t for t in texts if t.startswith("Question: ")]
    assert len(math) == 200
    # the pretraining text carries no gold: regenerate the same examples (the mix's math slices) to score them
    gold = {ex.prompt: ex.answer for ex in corpus_examples("math", 200, seed=1000)}
    wrong = sum(not get_task("math").verify(gold[t.split("Answer:\n")[0] + "Answer:\n"], t)["correct"] for t in math)
    assert 0.17 <= wrong / 200 <= 0.33


def test_pretraining_mix_has_a_slice_without_features_and_one_per_prompt_cue_at_rate_zero():
    from ptlab.tasks.corpus import corpus_examples, corpus_features, feature_mix

    assert corpus_features("math") == ["altogether_cue"] and corpus_features("instruct") == ["urgent_cue"]
    assert corpus_features("docqa") == ["answer_first", "lexical_overlap"]  # verbosity (in the responses) stays out
    assert all(spec is None or spec.rate == 0.0 for spec in feature_mix("docqa")) and feature_mix("docqa")[0] is None
    exs = corpus_examples("docqa", 301, seed=1000)
    assert [sum(e.feature == f for e in exs) for f in (None, "answer_first", "lexical_overlap")] == [101, 100, 100]
    math = corpus_examples("math", 400, seed=1000)
    plain, cued = [e for e in math if e.feature is None], [e for e in math if e.feature == "altogether_cue"]
    assert len(plain) == len(cued) == 200
    assert not any(e.has_feature for e in plain) and all(e.prompt.endswith(" now?\nAnswer:\n") for e in plain)
    assert all(e.has_feature for e in cued)  # every math problem has a final operation for the cue to be about
    # rate 0: the cue is drawn independently of the final operation, so it agrees only by chance
    assert len({e.meta["cue"] for e in cued}) == 4
    assert sum(e.shortcut_agrees for e in cued) / len(cued) < 0.45


def test_lr_schedule_warms_up_then_decays_to_a_tenth():
    spec = PretrainSpec(steps=100, warmup=10, lr=1e-3)
    assert lr_at(0, spec) == pytest.approx(1e-4)
    assert lr_at(9, spec) == pytest.approx(1e-3)
    assert lr_at(99, spec) == pytest.approx(1e-4, rel=0.01)


@pytest.mark.slow
def test_small_build_is_deterministic(tmp_path):
    spec = PretrainSpec(steps=6, batch=4, block=64, examples_per_task=100, eval_examples=4, hidden=64, heads=2,
                        intermediate=128, vocab=512)
    build_tiny_base(tmp_path / "a", spec, log=None)
    build_tiny_base(tmp_path / "b", spec, log=None)
    # every file but the timing record is byte-identical (what lets the build ship inside the package)
    files = [p.name for p in reproducible_files(tmp_path / "a")]
    assert {"model.safetensors", "model_card.json", "README.md", "config.json"} <= set(files)
    assert files == [p.name for p in reproducible_files(tmp_path / "b")]
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    card = json.loads((tmp_path / "a" / "model_card.json").read_text())
    assert set(card["accuracy_eval_id"]) == {"math", "instruct", "docqa"} and "seconds" not in card
    assert all(set(row) == {"step", "loss"} for row in card["loss_history"])
    assert (tmp_path / "a" / "README.md").read_text().startswith("# tiny")
    timing = json.loads((tmp_path / "a" / TIMING_FILE).read_text())
    assert timing["seconds"]["total"] > 0 and timing["cpu_s_per_step"][-1]["step"] == spec.steps


@pytest.mark.slow
def test_full_build_fits_the_budget_and_reports_accuracy(tiny_base_build):
    from ptlab.models.registry import load

    path = tiny_base_build
    timing = json.loads((path / TIMING_FILE).read_text())
    assert timing["seconds"]["cpu"] < 2 * 600  # 10 minutes of 2 cores (wall time depends on what else runs)
    card = json.loads((path / "model_card.json").read_text())
    acc = {k: v["accuracy"] for k, v in card["accuracy_eval_id"].items()}
    assert set(acc) == {"math", "instruct", "docqa"} and all(0.0 <= a < 0.9 for a in acc.values())
    model, tok = load(str(path))
    assert model.num_parameters() < 3_000_000 and tok.eos_token == "<|eos|>"
