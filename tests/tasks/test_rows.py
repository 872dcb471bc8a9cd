"""make_rows: TRL columns, the same examples across formats, metadata on every row."""

import json

import pytest

from ptlab.errors import ConfigError
from ptlab.tasks import SpuriousSpec, get_task, make_rows

META = {"id", "task", "split", "answer", "feature", "artifact", "has_feature", "shortcut_agrees", "error", "meta"}


@pytest.mark.parametrize("task", ["math", "instruct", "docqa"])
def test_formats_share_examples(task):
    spec = SpuriousSpec("verbosity", "feature_ambiguity", 0.9)
    sft = make_rows(task, "sft", 40, seed=5, spurious=spec)
    paired = make_rows(task, "paired", 40, seed=5, spurious=spec)
    unpaired = make_rows(task, "unpaired", 40, seed=5, spurious=spec)
    assert set(sft[0]) == {"prompt", "completion"} | META
    assert set(paired[0]) == {"prompt", "chosen", "rejected"} | META
    assert set(unpaired[0]) == {"prompt", "completion", "label"} | META
    assert len(sft) == len(paired) == 40 and len(unpaired) == 80
    for s, p, u_good, u_bad in zip(sft, paired, unpaired[0::2], unpaired[1::2]):
        assert s["prompt"] == p["prompt"] == u_good["prompt"] == u_bad["prompt"]
        assert s["completion"] == p["chosen"] == u_good["completion"] and u_good["label"] is True
        assert p["rejected"] == u_bad["completion"] and u_bad["label"] is False
        assert s["id"] == p["id"] and s["task"] == task and isinstance(s["prompt"], str)


def test_rows_verify_from_their_answer_column():
    for task in ("math", "docqa"):
        t = get_task(task)
        for row in make_rows(task, "paired", 30, seed=1):
            assert row["chosen"].splitlines()[-1].startswith("Final answer: ")
            assert t.verify(row["answer"], row["chosen"])["correct"]
            assert not t.verify(row["answer"], row["rejected"])["correct"]


def test_breaking_rows_are_tagged():
    spec = SpuriousSpec("urgent_cue", "feature_ambiguity", 0.9)
    rows = make_rows("instruct", "paired", 50, seed=0, spurious=spec, split="eval_break")
    assert all(r["has_feature"] and not r["shortcut_agrees"] and r["split"] == "eval_break" for r in rows)
    assert all(r["error"] == "shortcut" for r in rows)
    for r in rows:  # the cue names the other case than the one asked for, and the metadata says which
        meta = json.loads(r["meta"])
        case = next(c["type"] for c in json.loads(r["answer"]) if c["type"] in ("uppercase", "lowercase"))
        assert meta["label"] == case and meta["cue"] != case and meta["twin"].startswith("instruct-twins-0-")
        cue_word = {"uppercase": "an urgent", "lowercase": "a relaxed"}[meta["cue"]]
        assert r["prompt"].startswith(f"Instruction: Write {cue_word} ")
    neutral = make_rows("instruct", "paired", 50, seed=0, spurious=spec, split="eval_neutral")
    assert [json.loads(r["meta"])["twin"] for r in neutral] == [json.loads(r["meta"])["twin"] for r in rows]
    assert not any(r["has_feature"] for r in neutral)


def test_knobs_pass_through_and_bad_format_is_named():
    rows = make_rows("math", "sft", 20, min_steps=3, max_steps=3)
    assert all(r["completion"].count("\n") == 3 for r in rows)
    with pytest.raises(ConfigError, match="unknown format 'pairs'; choose from sft, paired, unpaired"):
        make_rows("math", "pairs", 2)


def test_tasks_tokenizer_corpus_is_registered():
    from ptlab.models.corpus import get_corpus

    texts = get_corpus("tasks", seed=0)
    assert len(texts) == 18000
    assert any(t.startswith("Question: ") for t in texts) and any(t.startswith("Document: ") for t in texts)
    assert texts == get_corpus("tasks", seed=0)
