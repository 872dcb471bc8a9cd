"""Request bodies for `ptlab serve`: a declared length under a limit, strict UTF-8, JSON of bounded depth.

Why so strict: a server left running on a network gets bodies from anyone. The length is
checked before a byte of the body is read (a claimed gigabyte is refused, not buffered);
chunked uploads are refused rather than read without a bound; ``NaN``/``Infinity`` (which
Python's json accepts) and nesting deeper than any chat request needs are refused before
they reach the validator, so no body can cost more than its size or crash a handler.
"""

from __future__ import annotations

import json
from email.message import Message

from ptlab.synth.serve.errors import ApiError

MAX_DEPTH = 64  # a chat request nests 5 deep; Python's json itself only stops near 1000


def body_length(headers: Message, max_bytes: int) -> int:
    """The body's length from Content-Length, or an ApiError that closes the connection (411/400/413)."""
    if headers.get("Transfer-Encoding") is not None:
        raise ApiError(411, "Transfer-Encoding is not supported; send the body with a Content-Length",
                       code="length_required", close=True)
    values = headers.get_all("Content-Length") or []
    if not values:
        raise ApiError(411, "a POST needs a Content-Length header", code="length_required", close=True)
    declared = {v.strip() for v in values}
    value = declared.pop()
    if declared or not (value.isascii() and value.isdigit()) or len(value) > 19:
        raise ApiError(400, "invalid Content-Length header", code="invalid_content_length", close=True)
    length = int(value)
    if length > max_bytes:
        raise ApiError(413, f"request body of {length} bytes is over this server's limit of {max_bytes} bytes",
                       code="request_too_large", close=True)
    return length


def decode_json(raw: bytes, max_depth: int = MAX_DEPTH) -> dict:
    """The body as a JSON object, or a 400 that says why it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, f"request body is not valid UTF-8 (byte {e.start})", code="invalid_encoding") from None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ApiError(400, f"request body nests deeper than {max_depth} levels", code="too_deep") from None
    except ValueError as e:
        raise ApiError(400, f"request body is not valid JSON ({e})", code="invalid_json") from None
    if _nests_deeper(value, max_depth):
        raise ApiError(400, f"request body nests deeper than {max_depth} levels", code="too_deep")
    if not isinstance(value, dict):
        raise ApiError(400, f"request body must be a JSON object, not {type(value).__name__}", code="invalid_json")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _nests_deeper(value, limit: int) -> bool:
    """Iteratively (no recursion to exhaust), True as soon as a container sits deeper than `limit`."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
