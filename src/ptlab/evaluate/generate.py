"""Batched generation for decoder-only models: left padding, greedy or sampled, stop conditions.

A row stops at EOS, at `max_new_tokens`, or — for tasks that end in a
`Final answer: ...` line — as soon as that line is complete, so a model that
keeps talking after answering costs no extra tokens and is scored on its answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

FINAL_LINE = re.compile(r"final answer\s*:[^\n]*\S[^\n]*\n", re.IGNORECASE)


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 48
    batch_size: int = 64
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    stop_at_final_line: bool = True


class FinalLineStop:
    """A `StoppingCriteria` that ends each row once its new text holds a complete final-answer line."""

    def __init__(self, tokenizer, prompt_width: int):
        self.tokenizer = tokenizer
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.Tensor, scores=None, **kwargs) -> torch.BoolTensor:
        new = input_ids[:, self.prompt_width:]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return torch.tensor([bool(FINAL_LINE.search(t)) for t in texts], dtype=torch.bool, device=input_ids.device)


def truncate_after_final_line(text: str) -> str:
    """Drop whatever follows the first complete final-answer line (the stop condition, applied to text)."""
    m = FINAL_LINE.search(text)
    return text[: m.end() - 1] if m else text


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], settings: GenerationSettings = GenerationSettings(),
             progress=None) -> list[str]:
    """Completions for `prompts`, in order. `progress(n)` is called after each batch."""
    from transformers import StoppingCriteriaList

    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    # Longest prompts first: batches of similar width waste less compute on padding.
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    if settings.do_sample:
        torch.manual_seed(settings.seed)
    try:
        for start in range(0, len(order), settings.batch_size):
            idx = order[start: start + settings.batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(device) for k, v in enc.items()}
            width = enc["input_ids"].shape[1]
            stops = StoppingCriteriaList([FinalLineStop(tokenizer, width)]) if settings.stop_at_final_line else None
            kw = dict(do_sample=True, temperature=settings.temperature, top_p=settings.top_p) if settings.do_sample \
                else dict(do_sample=False)
            gen = model.generate(**enc, max_new_tokens=settings.max_new_tokens, pad_token_id=pad_id,
                                 eos_token_id=tokenizer.eos_token_id, stopping_criteria=stops, **kw)
            texts = tokenizer.batch_decode(gen[:, width:], skip_special_tokens=True)
            for i, text in zip(idx, texts):
                out[i] = truncate_after_final_line(text) if settings.stop_at_final_line else text
            if progress is not None:
                progress(len(idx))
    finally:
        tokenizer.padding_side = side
    return out
