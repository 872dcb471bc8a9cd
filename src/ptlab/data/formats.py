"""The three row formats (TRL's column names) and their validation.

- sft:      prompt / completion   (or messages: a chat whose last turn is the assistant's)
- paired:   prompt / chosen / rejected
- unpaired: prompt / completion / label (bool: desirable)
"""

from __future__ import annotations

from ptlab.errors import DataError

COLUMNS = {
    "sft": ("prompt", "completion"),
    "paired": ("prompt", "chosen", "rejected"),
    "unpaired": ("prompt", "completion", "label"),
}


def messages_to_prompt_completion(messages: list[dict], where: str) -> tuple[list[dict], list[dict]]:
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty list of {{role, content}}")
    if messages[-1].get("role") != "assistant":
        raise DataError(f"{where}: the last message must be the assistant's (got {messages[-1].get('role')!r})")
    return messages[:-1], messages[-1:]


def check_rows(rows: list[dict], fmt: str, source: str = "data") -> None:
    """Raise DataError naming the first row with a missing or empty required column."""
    if not rows:
        raise DataError(f"{source}: dataset is empty")
    need = COLUMNS[fmt]
    for i, row in enumerate(rows):
        if fmt == "sft" and "messages" in row and "prompt" not in row:
            messages_to_prompt_completion(row["messages"], f"{source}: row {i}")
            continue
        missing = [c for c in need if c not in row or row[c] is None]
        if missing:
            have = ", ".join(sorted(row)) or "none"
            raise DataError(
                f"{source}: row {i}: missing column(s) {', '.join(missing)} for {fmt} data "
                f"(needs {', '.join(need)}; has {have})"
            )
        if fmt == "unpaired" and not isinstance(row["label"], (bool, int)):
            raise DataError(f"{source}: row {i}: 'label' must be a boolean, got {row['label']!r}")
        for c in need:
            if c != "label" and isinstance(row[c], str) and c != "prompt" and not row[c]:
                raise DataError(f"{source}: row {i}: column {c!r} is empty")
