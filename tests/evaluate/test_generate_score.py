"""Generation (left padding, stop conditions, order) and scoring with the task verifiers."""

import pytest
import torch

from ptlab.evaluate import GenerationSettings, evaluate_model, generate, score
from ptlab.evaluate.generate import FinalLineStop, truncate_after_final_line
from ptlab.tasks import SpuriousSpec, make_rows


@pytest.fixture(scope="module")
def tiny():
    from ptlab.models import load

    torch.manual_seed(0)
    return load("tiny-test")


def test_truncate_after_final_line():
    assert truncate_after_final_line("2 + 3 = 5\nFinal answer: 5\nmore talk") == "2 + 3 = 5\nFinal answer: 5"
    assert truncate_after_final_line("Final answer: 5") == "Final answer: 5"  # incomplete line: kept as is
    assert truncate_after_final_line("no answer here\n") == "no answer here\n"


def test_final_line_stop_is_per_row(tiny):
    _, tok = tiny
    texts = ["Q\n", "Q\n"]
    width = len(tok(texts[0], add_special_tokens=False)["input_ids"])
    done = tok(["Q\nFinal answer: 7\n", "Q\nFinal answer: 7"], add_special_tokens=False, padding=True,
               return_tensors="pt")["input_ids"]
    stop = FinalLineStop(tok, width)(done)
    assert stop.tolist() == [True, False]


def test_generate_keeps_order_padding_side_and_is_greedy_deterministic(tiny):
    model, tok = tiny
    prompts = ["Question: Ada has 2 pens.\nAnswer:\n", "Q\n", "Question: a much longer prompt with many words in it\n"]
    tok.padding_side = "right"
    s = GenerationSettings(max_new_tokens=6, batch_size=2)
    out1 = generate(model, tok, prompts, s)
    out2 = generate(model, tok, list(reversed(prompts)), s)
    assert tok.padding_side == "right"
    assert len(out1) == 3 and out1 == list(reversed(out2))
    # batch composition does not change a greedy row (left padding + attention mask)
    assert generate(model, tok, [prompts[1]], s) == [out1[1]]
    sampled = generate(model, tok, prompts, GenerationSettings(max_new_tokens=6, do_sample=True, seed=3))
    assert sampled == generate(model, tok, prompts, GenerationSettings(max_new_tokens=6, do_sample=True, seed=3))


def test_score_uses_the_task_verifier():
    rows = make_rows("math", "paired", 3, seed=0, split="eval_id")
    responses = [rows[0]["chosen"], rows[1]["rejected"], "Final answer: " + rows[2]["answer"]]
    recs = score("math", rows, responses)
    assert [r["correct"] for r in recs] == [True, False, True]
    assert [r["id"] for r in recs] == [r["id"] for r in rows]


def test_evaluate_model_metrics_and_pairs(tiny):
    model, tok = tiny
    spec = SpuriousSpec("altogether_cue", "feature_ambiguity", 0.9)
    splits = {s: make_rows("math", "paired", 6, seed=1, spurious=spec, split=s) for s in ("eval_id", "eval_break")}
    res = evaluate_model(model, tok, "math", splits, GenerationSettings(max_new_tokens=4), pairs=splits["eval_id"][:4],
                         ref_model=model)
    m = res.metrics
    assert m["eval_id/n"] == 6 and m["eval_break/n"] == 6
    assert m["eval_break/shortcut_agree_rate"] == 0.0  # every breaking example has the shortcut conflict
    assert 0.0 <= m["pairs/rank_accuracy"] <= 1.0
    assert m["pairs/reward_accuracy"] == 0.0  # policy == reference: no margin is > 0
    assert sum(r["split"] == "pairs" for r in res.records) == 4
