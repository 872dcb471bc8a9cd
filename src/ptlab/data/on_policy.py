"""On-policy rejected responses: the model's own verified failures as the rejected / undesirable side.

Authored rejected responses are the generator's idea of a mistake (a realistic
one, or the task's habitual one). `on_policy_rejected` instead samples a model
(the study's base, or any model directory such as an SFT checkpoint) on each
training prompt, scores every sample with the task verifier as evaluation
does (`ptlab.evaluate.score.score`), and keeps the first verified-wrong
sample — non-empty and not the chosen text — as `rejected`, with
`error="on_policy"`. Sampling goes in rounds: round `r`
samples once more every example that has no on-policy rejected yet, so an
example costs as many samples as it takes to find a failure, at most `samples`.

Where no sample is wrong the authored rejected is kept (`keep_authored=True`,
meta["rejected_source"] = "authored") or the example is dropped. The stats say
what it cost and what it yielded: `yield` is the share of examples that got an
on-policy rejected, nothing else.

Deterministic on CPU for the same model, examples, settings and seed (each round
seeds torch from `(seed, round)` through `GenerationSettings.seed`).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import replace
from typing import Callable

from pydantic import Field

from ptlab.config import Strict
from ptlab.evaluate.generate import GenerationSettings, generate
from ptlab.tasks.base import Example

ON_POLICY_ERROR = "on_policy"
DEFAULT_MAX_NEW_TOKENS = 64  # for a task absent from ptlab.evaluate.run.MAX_NEW_TOKENS


class OnPolicySettings(Strict):
    """How on-policy rejected responses are drawn (`data.rejected: on_policy` in a study)."""

    samples: int = Field(4, gt=0, description="samples drawn per prompt at most, until one is verified wrong")
    temperature: float = Field(1.0, gt=0, description="sampling temperature")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    model: str | None = Field(None, description="model name or directory to sample; None: the study's base model")
    keep_authored: bool = Field(True, description="keep the authored rejected where no sample is wrong, else drop")


def round_seed(seed: int, round_: int) -> int:
    """The torch seed of sampling round `round_` (distinct rounds draw distinct samples)."""
    digest = hashlib.sha256(f"on_policy|{seed}|{round_}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class _Counting:
    """The model, with `generate` counting what it generates (`ptlab.evaluate.generate` returns text only).

    `tokens`: new tokens per row before its end (EOS, or the padding a finished row gets while its
    batch runs on); `slots`: rows x decoding steps, what the batches computed; `hit_limit`: rows
    that ran to `max_new_tokens` without ending.
    """

    def __init__(self, model, tokenizer):
        self._model = model
        self._end = {t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None}
        self.tokens = self.slots = self.hit_limit = 0

    def __getattr__(self, name):
        return getattr(self._model, name)

    def generate(self, *args, **kw):
        out = self._model.generate(*args, **kw)
        new = out[:, (args[0] if args else kw["input_ids"]).shape[1]:]
        self.slots += new.numel()
        for row in new.tolist():
            end = next((j for j, t in enumerate(row) if t in self._end), None)
            if end is None:
                self.tokens += len(row)
                self.hit_limit += len(row) >= kw.get("max_new_tokens", len(row))
            else:
                self.tokens += end
        return out


def _usable(text: str, chosen: str) -> bool:
    return bool(text.strip()) and text.strip() != chosen.strip()


def on_policy_rejected(
    model_dir: str,
    task: str,
    examples: list[Example],
    samples: int = 4,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    max_new_tokens: int | None = None,
    batch_size: int = 32,
    keep_authored: bool = True,
    loaded: tuple | None = None,
    device: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[Example], dict]:
    """Replace each example's rejected response with a verified-wrong sample of the model at `model_dir`.

    Returns `(examples, stats)`: the examples in their input order (prompt, chosen,
    answer and everything else unchanged; dropped ones left out when
    `keep_authored=False`), and stats — examples, on_policy, authored_kept,
    dropped, yield (on_policy / examples), samples_drawn, wrong_samples,
    unusable_wrong (wrong but empty or equal to chosen), wrong_rate_per_sample,
    generated_tokens (new tokens before each row's EOS), token_slots (rows x
    decoding steps: what the batches computed), hit_max_new_tokens (rows cut
    off by the budget), seconds (sampling and verifying; loading excluded),
    samples_per_on_policy, tokens_per_on_policy, errors_by_kind (the authored
    errors of the examples that kept them) and the settings used. `loaded=(model, tokenizer)` skips loading `model_dir`.
    """
    from ptlab.evaluate.run import MAX_NEW_TOKENS
    from ptlab.evaluate.score import score
    from ptlab.tasks import get_task
    from ptlab.tasks.rows import to_rows

    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    get_task(task)  # a ConfigError for an unknown task, before loading anything
    if any(ex.task != task for ex in examples):
        others = sorted({ex.task for ex in examples if ex.task != task})
        raise ValueError(f"examples of task(s) {', '.join(others)} given for task {task!r}")
    max_new_tokens = max_new_tokens or MAX_NEW_TOKENS.get(task, DEFAULT_MAX_NEW_TOKENS)
    if loaded is None:
        import torch

        from ptlab.models import load

        loaded = load(model_dir, device=device or ("cuda" if torch.cuda.is_available() else None))
    model, tokenizer = loaded
    counting = _Counting(model, tokenizer)

    n = len(examples)
    found: dict[int, tuple[str, int]] = {}  # example index -> (rejected text, sample round)
    drawn = wrong = unusable = 0
    t0 = time.perf_counter()
    for r in range(samples):
        pending = [i for i in range(n) if i not in found]
        if not pending:
            break
        settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size, do_sample=True,
                                      temperature=temperature, top_p=top_p, seed=round_seed(seed, r))
        texts = generate(counting, tokenizer, [examples[i].prompt for i in pending], settings, progress=progress)
        drawn += len(pending)
        # the evaluation's verdict (`score` reads what the verifier needs from the row: docqa the document's values)
        verdicts = score(task, to_rows([examples[i] for i in pending], "sft"), texts)
        for i, text, verdict in zip(pending, texts, verdicts, strict=True):
            if verdict["correct"]:
                continue
            wrong += 1
            if _usable(text, examples[i].chosen):
                found[i] = (text, r)
            else:
                unusable += 1
    seconds = time.perf_counter() - t0

    out: list[Example] = []
    kept_errors: Counter = Counter()
    dropped = 0
    for i, ex in enumerate(examples):
        if i in found:
            text, r = found[i]
            meta = {**ex.meta, "rejected_source": "on_policy", "on_policy_sample": r, "authored_error": ex.error}
            out.append(replace(ex, rejected=text, error=ON_POLICY_ERROR, meta=meta))
        elif keep_authored:
            kept_errors[ex.error] += 1
            out.append(replace(ex, meta={**ex.meta, "rejected_source": "authored"}))
        else:
            dropped += 1
    k = len(found)
    stats = {
        "model": str(model_dir),
        "task": task,
        "examples": n,
        "on_policy": k,
        "authored_kept": sum(kept_errors.values()),
        "dropped": dropped,
        "yield": k / n if n else 0.0,
        "samples_drawn": drawn,
        "wrong_samples": wrong,
        "unusable_wrong": unusable,
        "wrong_rate_per_sample": wrong / drawn if drawn else 0.0,
        "generated_tokens": counting.tokens,
        "token_slots": counting.slots,
        "hit_max_new_tokens": counting.hit_limit,
        "seconds": round(seconds, 3),
        "samples_per_on_policy": drawn / k if k else None,
        "tokens_per_on_policy": counting.tokens / k if k else None,
        "errors_by_kind": dict(sorted(kept_errors.items())),
        "settings": {"samples": samples, "temperature": temperature, "top_p": top_p, "seed": seed,
                     "max_new_tokens": max_new_tokens, "batch_size": batch_size, "keep_authored": keep_authored},
    }
    return out, stats
