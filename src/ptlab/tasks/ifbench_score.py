"""Scoring responses to IFBench prompts with IFBench's own checker (strict mode).

IFBench's 58 instruction types are not ptlab's constraints, so ptlab does not
re-implement them: an `instruct` gold that carries an `instruction_id_list`
(what `ptlab data build source=ifbench` writes) is scored by
`ifbench.evaluation_lib.test_instruction_following_strict`. That checker
imports nltk, spaCy, emoji and syllapy and downloads spaCy's `en_core_web_sm`
and NLTK's `punkt_tab` when first used, so it needs those packages and, once,
the internet; without them scoring stops with one line saying so.
"""

from __future__ import annotations

from ptlab.errors import DataError


def _evaluation_lib():
    try:
        from ifbench import evaluation_lib
    except (Exception, SystemExit) as e:  # noqa: BLE001 - spaCy's model download exits instead of raising
        raise DataError(
            "scoring IFBench responses needs IFBench's checker (ifbench.evaluation_lib), which failed to load "
            f"({type(e).__name__}: {str(e)[:120]}); it needs `pip install nltk spacy emoji syllapy` and a one-time "
            "download of spaCy's en_core_web_sm and NLTK's punkt_tab"
        ) from None
    return evaluation_lib


def is_ifbench_gold(gold) -> bool:
    return isinstance(gold, dict) and "instruction_id_list" in gold


def verify_ifbench(gold: dict, response: str) -> dict:
    """All-instructions (`correct`) and per-instruction compliance, as IFBench's strict evaluation scores it."""
    for field in ("instruction_id_list", "kwargs", "prompt"):
        if field not in gold:
            raise DataError(f"IFBench gold is missing field {field!r} (rebuild the data with `ptlab data build`)")
    lib = _evaluation_lib()
    ids = list(gold["instruction_id_list"])
    example = lib.InputExample(key=0, instruction_id_list=ids, prompt=gold["prompt"],
                               kwargs=[dict(kw) for kw in gold["kwargs"]])
    out = lib.test_instruction_following_strict(example, {gold["prompt"]: response or ""})
    per = {f"{i}:{name}": bool(ok) for i, (name, ok) in enumerate(zip(ids, out.follow_instruction_list))}
    followed = sum(per.values())
    return {"correct": bool(out.follow_all_instructions), "per_constraint": per, "followed": followed,
            "fraction": followed / len(per) if per else 1.0, "substantive": bool((response or "").strip())}
