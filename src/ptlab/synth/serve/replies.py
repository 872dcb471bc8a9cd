"""The JSON body of a non-streamed reply: ``chat.completion`` or ``text_completion`` with n choices and usage.

Usage follows OpenAI: a prompt's tokens count once however many choices it has
(choice i answers prompt i // n), completion tokens count for every choice.
"""

from __future__ import annotations

import time

from ptlab.synth.serve.responders import Completion
from ptlab.synth.serve.validate import Parsed


def usage(parsed: Parsed, done: list[Completion]) -> dict:
    prompt = sum(c.prompt_tokens for c in done[:: parsed.n])
    completion = sum(c.completion_tokens for c in done)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _choice(kind: str, index: int, c: Completion) -> dict:
    if kind == "chat":
        message = {"role": "assistant", "content": c.text}
        return {"index": index, "message": message, "logprobs": None, "finish_reason": c.finish_reason}
    return {"index": index, "text": c.text, "logprobs": None, "finish_reason": c.finish_reason}


def completion_body(parsed: Parsed, cid: str, model: str, done: list[Completion]) -> dict:
    return {
        "id": cid,
        "object": "chat.completion" if parsed.kind == "chat" else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [_choice(parsed.kind, k, c) for k, c in enumerate(done)],
        "usage": usage(parsed, done),
    }
