"""The `hf` backend: a local transformers causal LM (any `ptlab.models` name) with batched generation.

Requests are grouped by sampling parameters (one `generate` call cannot mix
temperatures) and batched with left padding. Sampling is reproducible: each
batch seeds torch from a hash of its requests, sample indices included, so the
same requests give the same replies and different `sample_index` values give
different samples.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Sequence

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

    def generate(self, requests: Sequence[ChatRequest], hooks: ReplyHooks | None = None) -> list[ChatReply]:
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
                        for i, reply in zip(chunk, self._batch([requests[i] for i in chunk])):
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

    def _batch(self, batch: list[ChatRequest]) -> list[ChatReply]:
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
        stops = {tok.eos_token_id, tok.pad_token_id} - {None}
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
