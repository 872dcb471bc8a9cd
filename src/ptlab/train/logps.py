"""Per-token log-probabilities of completion tokens, computed only where needed.

The LM head is applied only to the positions that predict a completion token,
so prompt positions never build a vocabulary-sized logit row. Log-probs are
kept flat (one entry per completion token) with the index of the sequence
each belongs to and its position inside the completion.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class SeqLogps:
    """Flat per-token log-probs of a batch of sequences' completion tokens."""

    token_logps: torch.Tensor  # (M,) log p(token | prefix)
    seq_id: torch.Tensor  # (M,) which sequence each token belongs to
    pos: torch.Tensor  # (M,) 0-based position of the token inside its completion
    lengths: torch.Tensor  # (N,) completion tokens per sequence
    argmax_hit: torch.Tensor | None = None  # (M,) token == argmax, for token accuracy

    @property
    def n_seqs(self) -> int:
        return int(self.lengths.numel())

    def sums(self, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sequence sum of (optionally weighted) token log-probs, shape (N,)."""
        vals = self.token_logps if weights is None else self.token_logps * weights
        out = torch.zeros(self.n_seqs, dtype=vals.dtype, device=vals.device)
        return out.index_add(0, self.seq_id, vals)

    def means(self) -> torch.Tensor:
        return self.sums() / self.lengths.clamp(min=1).to(self.token_logps.dtype)

    def to_device(self, device) -> SeqLogps:
        move = lambda t: None if t is None else t.to(device)
        return SeqLogps(move(self.token_logps), move(self.seq_id), move(self.pos), move(self.lengths),
                        move(self.argmax_hit))

    def detach(self) -> SeqLogps:
        return SeqLogps(self.token_logps.detach(), self.seq_id, self.pos, self.lengths, self.argmax_hit)


def completion_logps(model, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> SeqLogps:
    """Run `model` on right-padded `input_ids` and return log-probs of the completion tokens.

    Sequences are right-padded, so with causal attention no real token attends to
    padding and no attention mask is needed; this keeps the fast causal kernel.
    """
    base = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    hidden = base(input_ids=input_ids, use_cache=False).last_hidden_state  # (N, T, H)
    target_mask = completion_mask[:, 1:].bool()  # position t predicts token t+1
    seq_id, _ = target_mask.nonzero(as_tuple=True)
    h = hidden[:, :-1][target_mask]  # (M, H)
    logits = model.get_output_embeddings()(h).float()  # (M, V)
    targets = input_ids[:, 1:][target_mask]
    token_logps = -F.cross_entropy(logits, targets, reduction="none")
    lengths = target_mask.sum(dim=1)
    starts = torch.cumsum(lengths, 0) - lengths
    pos = torch.arange(seq_id.numel(), device=seq_id.device) - starts[seq_id]
    with torch.no_grad():
        argmax_hit = logits.argmax(dim=-1) == targets
    return SeqLogps(token_logps, seq_id, pos, lengths, argmax_hit)
