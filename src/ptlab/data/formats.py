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


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_messages(messages, where: str, column: str = "messages") -> None:
    """A chat: a non-empty list of {"role": str, "content": str} objects."""
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: {column!r} must be a non-empty list of {{role, content}} (got {_short(messages)})")
    for j, m in enumerate(messages, 1):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: {column!r} item {j}: expected an object with string 'role' and 'content' "
                            f"(got {_short(m)})")


def messages_to_prompt_completion(messages: list[dict], where: str) -> tuple[list[dict], list[dict]]:
    check_messages(messages, where)
    if messages[-1].get("role") != "assistant":
        raise DataError(f"{where}: the last message must be the assistant's (got {messages[-1].get('role')!r})")
    return messages[:-1], messages[-1:]


def _check_text(row: dict, column: str, chat: bool, where: str) -> None:
    """`column` is text (a string), or a list of messages when the prompt is a chat."""
    value = row[column]
    if chat:
        if isinstance(value, str) and column != "prompt":
            raise DataError(f"{where}: {column!r} must be a list of messages like the prompt (got a string)")
        check_messages(value, where, column)
    elif not isinstance(value, str):
        raise DataError(f"{where}: {column!r} must be a string (got {type(value).__name__} {_short(value)})")
    elif column != "prompt" and not value:
        raise DataError(f"{where}: column {column!r} is empty")


def _check_label(value, where: str) -> None:
    if not isinstance(value, bool) and value not in (0, 1):
        raise DataError(f"{where}: 'label' must be a boolean (got {_short(value)})")


def check_row(row, fmt: str, where: str) -> None:
    """Raise DataError naming `where` for a row that is not an object or has missing, empty or mistyped columns."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected an object, got {type(row).__name__}")
    need = COLUMNS[fmt]
    if fmt == "sft" and "messages" in row and "prompt" not in row:
        messages_to_prompt_completion(row["messages"], where)
        return
    missing = [c for c in need if c not in row or row[c] is None]
    if missing:
        have = ", ".join(sorted(map(str, row))) or "none"
        raise DataError(
            f"{where}: missing column(s) {', '.join(missing)} for {fmt} data (needs {', '.join(need)}; has {have})"
        )
    chat = isinstance(row["prompt"], list)
    for c in need:
        if c == "label":
            _check_label(row[c], where)
        else:
            _check_text(row, c, chat, where)


def check_rows(rows: list[dict], fmt: str, source: str = "data") -> None:
    """Raise DataError naming the first bad row (numbered from 1): missing, empty or mistyped columns."""
    if not rows:
        raise DataError(f"{source}: dataset is empty")
    for i, row in enumerate(rows, 1):
        check_row(row, fmt, f"{source}: row {i}")
