"""IFBench golds are scored by IFBench's own strict checker, and say clearly when it cannot load."""

import json
import sys
import types
from dataclasses import dataclass

import pytest

from ptlab.errors import DataError
from ptlab.tasks import get_task

GOLD = {"instruction_id_list": ["count:keywords_multiple", "format:no_commas"], "prompt": "Write about tea.",
        "kwargs": [{"keyword1": "tea"}, {}]}


@dataclass
class _Input:
    key: int
    instruction_id_list: list
    prompt: str
    kwargs: list


@dataclass
class _Output:
    follow_all_instructions: bool
    follow_instruction_list: list


def _fake_lib(calls):
    """A stand-in for ifbench.evaluation_lib with the same interface: keyword present; no commas."""
    def strict(inp, prompt_to_response):
        calls.append(inp)
        response = prompt_to_response[inp.prompt]
        follows = ["tea" in response, "," not in response]
        return _Output(all(follows), follows)

    return types.SimpleNamespace(InputExample=_Input, test_instruction_following_strict=strict)


def test_ifbench_gold_uses_ifbench_checker(monkeypatch):
    calls = []
    package = types.ModuleType("ifbench")
    package.evaluation_lib = _fake_lib(calls)
    monkeypatch.setitem(sys.modules, "ifbench", package)
    monkeypatch.setitem(sys.modules, "ifbench.evaluation_lib", package.evaluation_lib)
    task = get_task("instruct")
    good = task.verify(json.dumps(GOLD), "I drink tea every morning")
    assert good["correct"] and good["fraction"] == 1.0
    assert good["per_constraint"] == {"0:count:keywords_multiple": True, "1:format:no_commas": True}
    bad = task.verify(json.dumps(GOLD), "I drink tea, then coffee")
    assert not bad["correct"] and bad["followed"] == 1 and bad["fraction"] == 0.5
    assert calls[0].prompt == "Write about tea." and calls[0].kwargs == [{"keyword1": "tea"}, {}]


def test_ifbench_checker_missing_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ifbench.evaluation_lib", None)  # import fails like a missing dependency
    with pytest.raises(DataError, match=r"scoring IFBench responses needs IFBench's checker .*en_core_web_sm"):
        get_task("instruct").verify(json.dumps(GOLD), "text")


def test_ifbench_gold_missing_prompt_names_the_field():
    gold = {k: v for k, v in GOLD.items() if k != "prompt"}
    with pytest.raises(DataError, match="IFBench gold is missing field 'prompt'"):
        get_task("instruct").verify(json.dumps(gold), "text")
