"""The `hf` backend: a local transformers causal LM (any `ptlab.models` name) with batched generation.

Requests are grouped by sampling parameters (one `generate` call cannot mix
temperatures) and batched with left padding. Sampling is reproducible: each
batch seeds torch from a hash of its requests, sample indices included, so the
same requests give the same replies and different `sample_index` values give
different samples.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from ptlab.fingerprint import fingerprint
from ptlab.synth.teachers.base import BUDGET_SPENT, ChatReply, ChatRequest, ReplyHooks


class HFTeacher:
    backend = "hf"

    def __init__(self, model: str, batch_size: int = 8, device: str | None = None, seed: int = 0):
        self.model = model
        self.batch_size = batch_size
        self.device = device
        self.seed = seed
        self._lm = None
        self._tok = None
        self._lock = threading.Lock()  # one generate at a time per loaded model

    @classmethod
    def from_config(cls, cfg) -> HFTeacher:
        return cls(cfg.model, cfg.batch_size, cfg.device, cfg.seed)

    def load(self):
        """Load model and tokenizer once (ptlab.models.load: registry names or directories)."""
        if self._lm is None:
            from ptlab.models import load

            lm, tok = load(self.model, device=self.device)
            lm.eval()
            tok.padding_side = "left"
            tok.truncation_side = "left"
            self._lm, self._tok = lm, tok
        return self._lm, self._tok

    def generate(self, requests: Sequence[ChatRequest], hooks: ReplyHooks | None = None,
                 on_text: Callable[[int, str], None] | None = None) -> list[ChatReply]:
        """Replies in request order. `on_text(i, piece)`, if given, receives request i's text piece by piece
        as it is generated (`ptlab serve` streams it); the pieces join to the reply before stop strings."""
        requests = list(requests)
        out: list[ChatReply | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            groups[(r.temperature, r.top_p, r.max_tokens, r.stop)].append(i)
        with self._lock:
            self.load()
            for idx in groups.values():
                idx.sort(key=lambda i: requests[i].prompt_chars())  # similar lengths pad less
                pending = list(idx)
                while pending:
                    chunk, pending = self._admit_chunk(pending, hooks, out)
                    if chunk:
                        listeners = None if on_text is None else [functools.partial(on_text, i) for i in chunk]
                        for i, reply in zip(chunk, self._batch([requests[i] for i in chunk], listeners)):
                            out[i] = reply
                            if hooks is not None:
                                hooks.done(i, reply)
                    elif pending:  # the budget is held by another thread's calls: wait for them
                        time.sleep(0.005)
        return out  # type: ignore[return-value]

    def _admit_chunk(self, pending: list[int], hooks, out) -> tuple[list[int], list[int]]:
        """Up to `batch_size` admitted indices, and what is still pending. A "wait" answer stops
        the chunk: our own admitted requests must finish first to give budget back."""
        chunk: list[int] = []
        for n, i in enumerate(pending):
            if len(chunk) == self.batch_size:
                return chunk, pending[n:]
            admitted = True if hooks is None else hooks.admit(i)
            if admitted is None:
                return chunk, pending[n:]
            if admitted:
                chunk.append(i)
            else:
                out[i] = ChatReply("", error=BUDGET_SPENT, meta={"attempts": 0, "cost": 0})
                hooks.done(i, out[i])
        return chunk, []

    def render(self, request: ChatRequest) -> str:
        """The prompt text: the tokenizer's chat template, else 'role: content' lines."""
        _, tok = self.load()
        messages = request.message_dicts()
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def _batch(self, batch: list[ChatRequest], listeners: list[Callable[[str], None]] | None = None) -> list[ChatReply]:
        import torch

        lm, tok = self._lm, self._tok
        first = batch[0]
        limit = getattr(lm.config, "max_position_embeddings", None) or 4096
        max_new = max(1, min(first.max_tokens, limit - 8))
        enc = tok(
            [self.render(r) for r in batch],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=max(8, limit - max_new),
            add_special_tokens=False,
        ).to(lm.device)
        sample = first.temperature > 0
        kwargs = {"max_new_tokens": max_new, "do_sample": sample, "pad_token_id": tok.pad_token_id}
        if sample:
            kwargs.update(temperature=first.temperature, top_p=first.top_p)
        stops = {tok.eos_token_id, tok.pad_token_id} - {None}
        if listeners:
            kwargs["streamer"] = _RowStreamer(tok, listeners, stops)
        seed = int(fingerprint(self.seed, [r.key_fields() for r in batch], length=8), 16)
        torch.manual_seed(seed)
        try:
            with torch.no_grad():
                gen = lm.generate(**enc, **kwargs)
        except Exception as e:  # noqa: BLE001 - a failed batch becomes failed replies, counted as such
            msg = f"generation failed: {type(e).__name__}: {e}"[:300]
            return [ChatReply("", error=msg, meta={"attempts": 1}) for _ in batch]
        new = gen[:, enc["input_ids"].shape[1] :]
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        replies = []
        for row, plen, req in zip(new.tolist(), prompt_lens, batch):
            end = next((k for k, t in enumerate(row) if t in stops), None)
            ids = row if end is None else row[:end]
            text = tok.decode(ids, skip_special_tokens=True)
            finish = "length" if end is None and len(row) >= max_new else "stop"
            for s in req.stop:
                if s and s in text:
                    text, finish = text[: text.index(s)], "stop"
            replies.append(ChatReply(text, int(plen), len(ids), meta={"attempts": 1, "finish_reason": finish}))
        return replies


class _RowStreamer:
    """A `generate(streamer=...)` that hands each row's new text to that row's listener, step by step.

    transformers calls `put` with the prompt ids first, then with each step's tokens (one per
    row). A row ends at its first eos/pad token, as `_batch` cuts it. Each step decodes the
    row so far and sends what is new — quadratic in the reply's length, negligible next to
    the model — and waits while the text ends in an incomplete character.
    """

    def __init__(self, tok, listeners: list[Callable[[str], None]], stops: set[int]):
        self.tok = tok
        self.listeners = listeners
        self.stops = stops
        self.rows: list[list[int]] = [[] for _ in listeners]
        self.sent = ["" for _ in listeners]
        self.ended = [False for _ in listeners]
        self.prompt_seen = False

    def put(self, value) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for r, tokens in enumerate(value.reshape(len(self.rows), -1).tolist()):
            if self.ended[r]:
                continue
            for t in tokens:
                if t in self.stops:
                    self.ended[r] = True
                    break
                self.rows[r].append(t)
            text = self.tok.decode(self.rows[r], skip_special_tokens=True)
            if text.startswith(self.sent[r]) and len(text) > len(self.sent[r]) and not text.endswith("\ufffd"):
                self.listeners[r](text[len(self.sent[r]) :])
                self.sent[r] = text

    def end(self) -> None:
        pass
