"""Request validation for `ptlab serve`: every field checked, and named in a 400, before anything is queued.

Why strict: the server batches many clients' requests into one model call, so a bad value
must fail its own request here, never a batch. And a parameter that would change the reply
but that ptlab does not implement (tools, logprobs, penalties, a JSON response format...)
is refused with a 400 that names it: a client silently getting something other than what
it asked for is worse than an error. Fields known to be harmless at their neutral value
(``presence_penalty: 0``, ``logprobs: false``, ``user``...) are accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ptlab.synth.serve.errors import ApiError
from ptlab.synth.teachers.base import ChatRequest

ROLES = ("system", "user", "assistant", "tool", "developer")
MESSAGE_KEYS = {"role", "content", "name", "tool_call_id"}
SEED_RANGE = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (the server's caps, `ptlab serve --max-tokens-cap`)."""

    max_tokens_cap: int = 4096
    max_n: int = 16  # choices in one request, prompts x n for /v1/completions
    max_stop: int = 4
    max_stop_chars: int = 256


@dataclass(frozen=True)
class Parsed:
    """A valid request: one ChatRequest per choice, in the order of the reply's choice indices."""

    kind: str  # "chat" (/v1/chat/completions) or "text" (/v1/completions)
    requests: tuple[ChatRequest, ...]
    n: int  # choices per prompt: choice i answers prompt i // n
    stream: bool = False
    include_usage: bool = False


# Accepted only at a value that changes nothing; any other value is refused with a 400.
HARMLESS = {
    "user": lambda v: v is None or isinstance(v, str),
    "metadata": lambda v: v is None or isinstance(v, dict),
    "store": lambda v: v is None or v is False,
    "service_tier": lambda v: v in (None, "auto", "default"),
    "presence_penalty": lambda v: v is None or (type(v) in (int, float) and v == 0),
    "frequency_penalty": lambda v: v is None or (type(v) in (int, float) and v == 0),
    "logit_bias": lambda v: v is None or v == {},
    "parallel_tool_calls": lambda v: v is None or isinstance(v, bool),
}
HARMLESS_CHAT = {
    "logprobs": lambda v: v is None or v is False,
    "top_logprobs": lambda v: v is None,
    "response_format": lambda v: v is None or v == {"type": "text"},
    "tools": lambda v: v is None or v == [],
    "tool_choice": lambda v: v in (None, "none"),
    "functions": lambda v: v is None or v == [],
    "function_call": lambda v: v in (None, "none"),
    "modalities": lambda v: v is None or v == ["text"],
}
HARMLESS_TEXT = {
    "logprobs": lambda v: v is None,
    "echo": lambda v: v is None or v is False,
    "suffix": lambda v: v is None or v == "",
    "best_of": lambda v: v is None or (type(v) is int and v == 1),
}
IMPLEMENTED = {"model", "max_tokens", "temperature", "top_p", "stop", "n", "seed", "stream", "stream_options"}
IMPLEMENTED_CHAT = IMPLEMENTED | {"messages", "max_completion_tokens"}
IMPLEMENTED_TEXT = IMPLEMENTED | {"prompt"}


def parse_request(kind: str, body: dict, model_name: str, limits: Limits = Limits()) -> Parsed:
    """A chat or text completion body as a Parsed request; ApiError (400, or 404 for another model) if not valid."""
    _refuse_unimplemented(kind, body)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(400, "'model' must be a string", "model", "invalid_type")
    if model is not None and model != model_name:
        raise ApiError(404, f"The model {model!r} does not exist.", "model", "model_not_found")
    if kind == "chat":
        prompts = [_messages(body.get("messages"))]
        default_tokens = 256
    else:  # /v1/completions: each prompt is one user message (ptlab's backends are chat models)
        prompts = [(("user", p),) for p in _prompts(body.get("prompt"), limits)]
        default_tokens = 16  # OpenAI's default for /v1/completions
    n = _int(body, "n", 1, limits.max_n, 1)
    if n * len(prompts) > limits.max_n:
        raise ApiError(400, f"{len(prompts)} prompts x n={n} is over this server's {limits.max_n} choices",
                       "n", "invalid_value")
    seed = _int(body, "seed", *SEED_RANGE, 0)
    sampling = {
        "temperature": _number(body, "temperature", 0.0, 2.0, 1.0),
        "top_p": _number(body, "top_p", 0.0, 1.0, 1.0, low_open=True),
        "max_tokens": _max_tokens(body, kind, limits, min(default_tokens, limits.max_tokens_cap)),
        "stop": _stop(body.get("stop"), limits),
    }
    stream = _bool(body, "stream")
    requests = tuple(ChatRequest(messages=p, sample_index=seed + k, **sampling) for p in prompts for k in range(n))
    return Parsed(kind, requests, n, stream, _include_usage(body.get("stream_options")))


def _refuse_unimplemented(kind: str, body: dict) -> None:
    implemented = IMPLEMENTED_CHAT if kind == "chat" else IMPLEMENTED_TEXT
    harmless = {**HARMLESS, **(HARMLESS_CHAT if kind == "chat" else HARMLESS_TEXT)}
    for name, value in body.items():
        if name in implemented:
            continue
        check = harmless.get(name)
        if check is None:
            raise ApiError(400, f"Unrecognized request argument supplied: {name}", name, "unknown_parameter")
        if not check(value):
            raise ApiError(400, f"'{name}' is not supported by this server (only its neutral value is accepted)",
                           name, "unsupported_parameter")


def _text(value, param: str) -> str:
    """A string that is valid Unicode (JSON's \\ud800 escapes can make one that a tokenizer cannot encode)."""
    if not isinstance(value, str):
        raise ApiError(400, f"'{param}' must be a string", param, "invalid_type")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, f"'{param}' holds an unpaired surrogate", param, "invalid_value") from None
    return value


def _messages(msgs) -> tuple[tuple[str, str], ...]:
    if not isinstance(msgs, list) or not msgs:
        raise ApiError(400, "'messages' must be a non-empty list of message objects", "messages", "invalid_type")
    return tuple(_message(m, f"messages[{i}]") for i, m in enumerate(msgs))


def _message(m, param: str) -> tuple[str, str]:
    if not isinstance(m, dict):
        raise ApiError(400, f"'{param}' must be an object with 'role' and 'content'", param, "invalid_type")
    extra = sorted(set(m) - MESSAGE_KEYS)
    if extra:
        raise ApiError(400, f"'{param}.{extra[0]}' is not supported by this server", f"{param}.{extra[0]}",
                       "unsupported_parameter")
    role = m.get("role")
    if role not in ROLES:
        raise ApiError(400, f"'{param}.role' must be one of {', '.join(ROLES)}", f"{param}.role", "invalid_value")
    for key in ("name", "tool_call_id"):
        if m.get(key) is not None:
            _text(m[key], f"{param}.{key}")
    return role, _content(m.get("content"), f"{param}.content")


def _content(content, param: str) -> str:
    if isinstance(content, str):
        return _text(content, param)
    if not isinstance(content, list):
        raise ApiError(400, f"'{param}' must be a string or a list of text parts", param, "invalid_type")
    texts = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        if not isinstance(part, dict) or part.get("type") != "text" or set(part) - {"type", "text"}:
            raise ApiError(400, f"'{where}' must be {{\"type\": \"text\", \"text\": ...}} (only text is supported)",
                           where, "invalid_value")
        texts.append(_text(part.get("text"), f"{where}.text"))
    return "".join(texts)


def _prompts(prompt, limits: Limits) -> list[str]:
    if isinstance(prompt, str):
        return [_text(prompt, "prompt")]
    if not isinstance(prompt, list) or not prompt or not all(isinstance(p, str) for p in prompt):
        raise ApiError(400, "'prompt' must be a string or a non-empty list of strings (token ids are not supported)",
                       "prompt", "invalid_type")
    if len(prompt) > limits.max_n:
        raise ApiError(400, f"'prompt' holds {len(prompt)} prompts, over this server's {limits.max_n}",
                       "prompt", "invalid_value")
    return [_text(p, f"prompt[{i}]") for i, p in enumerate(prompt)]


def _int(body: dict, name: str, low: int, high: int, default: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if type(value) is not int:  # bool is an int subclass: refused
        raise ApiError(400, f"'{name}' must be an integer", name, "invalid_type")
    if not low <= value <= high:
        raise ApiError(400, f"'{name}' must be between {low} and {high} (got {value})", name, "invalid_value")
    return value


def _number(body: dict, name: str, low: float, high: float, default: float, low_open: bool = False) -> float:
    value = body.get(name)
    if value is None:
        return default
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ApiError(400, f"'{name}' must be a finite number", name, "invalid_type")
    if value > high or value < low or (low_open and value == low):
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ApiError(400, f"'{name}' must be in {bounds} (got {value})", name, "invalid_value")
    return float(value)


def _max_tokens(body: dict, kind: str, limits: Limits, default: int) -> int:
    names = ["max_tokens", "max_completion_tokens"] if kind == "chat" else ["max_tokens"]
    given = {name: _int(body, name, 1, limits.max_tokens_cap, 0) for name in names if body.get(name) is not None}
    if len(set(given.values())) > 1:
        raise ApiError(400, "'max_tokens' and 'max_completion_tokens' disagree", "max_completion_tokens",
                       "invalid_value")
    return next(iter(given.values()), default)


def _stop(stop, limits: Limits) -> tuple[str, ...]:
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > limits.max_stop:
        raise ApiError(400, f"'stop' must be a string or a list of at most {limits.max_stop} strings",
                       "stop", "invalid_value")
    for s in stops:
        if not isinstance(s, str) or not s or len(s) > limits.max_stop_chars:
            raise ApiError(400, f"each 'stop' must be a non-empty string of at most {limits.max_stop_chars} "
                           "characters", "stop", "invalid_value")
        _text(s, "stop")
    return tuple(stops)


def _bool(body: dict, name: str) -> bool:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise ApiError(400, f"'{name}' must be a boolean", name, "invalid_type")
    return bool(value)


def _include_usage(options) -> bool:
    if options is None:
        return False
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise ApiError(400, "'stream_options' must be an object with only 'include_usage'", "stream_options",
                       "invalid_value")
    value = options.get("include_usage")
    if value is not None and not isinstance(value, bool):
        raise ApiError(400, "'stream_options.include_usage' must be a boolean", "stream_options.include_usage",
                       "invalid_type")
    return bool(value)
