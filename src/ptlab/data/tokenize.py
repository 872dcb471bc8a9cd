"""Tokenise rows exactly as TRL 1.16 does, so losses can be compared with it.

Plain text: tokenise `prompt` and `prompt + completion + EOS`; the completion
starts where the two token lists diverge (usually right after the prompt).
Chat (`messages` lists): the prompt is rendered with the generation prompt and
the completion is the rest of the rendered conversation.
"""

from __future__ import annotations

from dataclasses import dataclass

from ptlab.data.formats import check_rows, messages_to_prompt_completion
from ptlab.errors import DataError


@dataclass
class TokenizedRow:
    prompt_ids: list[int]
    completions: list[list[int]]  # sft/unpaired: [completion]; paired: [chosen, rejected]
    label: bool | None = None
    kl_completion: list[int] | None = None  # KTO: a completion from another row


def _ids(tokenizer, text_or_messages, add_generation_prompt=False) -> list[int]:
    if isinstance(text_or_messages, list):
        out = tokenizer.apply_chat_template(
            text_or_messages, tokenize=True, return_dict=True, add_generation_prompt=add_generation_prompt
        )
        return list(out["input_ids"])
    return list(tokenizer(text_or_messages)["input_ids"])


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _with_eos(text, eos: str):
    if isinstance(text, str) and not text.endswith(eos):
        return text + eos
    return text


def split_completions(tokenizer, prompt, completions: list) -> tuple[list[int], list[list[int]]]:
    """Prompt ids and the completion ids of each completion, TRL-style."""
    prompt_ids = _ids(tokenizer, prompt, add_generation_prompt=isinstance(prompt, list))
    fulls = [
        _ids(tokenizer, prompt + c if isinstance(prompt, list) else prompt + _with_eos(c, tokenizer.eos_token))
        for c in completions
    ]
    k = min(common_prefix_length(prompt_ids, f) for f in fulls)
    return prompt_ids[:k], [f[k:] for f in fulls]


def _row_parts(row: dict, fmt: str, where: str):
    if fmt == "sft" and "prompt" not in row:
        prompt, completion = messages_to_prompt_completion(row["messages"], where)
        return prompt, [completion], None
    if fmt == "paired":
        return row["prompt"], [row["chosen"], row["rejected"]], None
    label = bool(row["label"]) if fmt == "unpaired" else None
    return row["prompt"], [row["completion"]], label


def tokenize_rows(
    tokenizer,
    rows: list[dict],
    fmt: str,
    max_length: int | None = None,
    source: str = "data",
    kl_chunk: int | None = None,
) -> list[TokenizedRow]:
    """Tokenise and validate rows; prompts that leave no room for a completion are errors.

    Sequences longer than `max_length` keep their start (TRL's `keep_start`).
    For KTO (`kl_chunk` set), each row also gets the completion of the previous
    row within consecutive chunks of `kl_chunk` rows — TRL's mismatched pairs.
    """
    check_rows(rows, fmt, source)
    out = []
    full_first = []  # each row's first completion before truncation: another row's KL completion
    for i, row in enumerate(rows):
        where = f"{source}: row {i + 1}"  # rows are numbered from 1, as in check_rows
        prompt, completions, label = _row_parts(row, fmt, where)
        if not isinstance(prompt, (str, list)):
            raise DataError(f"{where}: 'prompt' must be a string or a list of messages")
        prompt_ids, comp_ids = split_completions(tokenizer, prompt, completions)
        full_first.append(comp_ids[0])
        if max_length is not None:
            if len(prompt_ids) >= max_length:
                raise DataError(
                    f"{where}: prompt is {len(prompt_ids)} tokens, at or over max_length={max_length}; "
                    "raise max_length or shorten the prompt"
                )
            room = max_length - len(prompt_ids)
            comp_ids = [c[:room] for c in comp_ids]
        if any(len(c) == 0 for c in comp_ids):
            raise DataError(f"{where}: a completion tokenises to nothing")
        out.append(TokenizedRow(prompt_ids, comp_ids, label))
    if kl_chunk:
        for start in range(0, len(out), kl_chunk):
            chunk = out[start : start + kl_chunk]
            firsts = full_first[start : start + kl_chunk]
            for j, row in enumerate(chunk):
                # truncated to this row's room only, as TRL truncates the (prompt, KL completion) sequence
                kl = firsts[j - 1]
                room = None if max_length is None else max_length - len(row.prompt_ids)
                row.kl_completion = kl[:room]
    return out
