"""Reference log-probs: computed once in a no-grad pass, cached on disk.

The cache key is (model fingerprint, token ids of every sequence, precision),
so a re-run, a resumed run, or another objective on the same data and model
reuses it. Per-token values are stored, so any objective (LD-DPO weighting,
length normalisation) can derive what it needs. During training the
reference model is not in memory at all.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from ptlab.data.batching import row_length
from ptlab.data.tokenize import TokenizedRow
from ptlab.fingerprint import fingerprint
from ptlab.paths import cache_dir
from ptlab.train.logps import SeqLogps
from ptlab.train.step import no_grad_logps


def model_fingerprint(model_dir: Path) -> str:
    """Identity of a checkpoint: its config and the size and mtime of its weight files."""
    model_dir = Path(model_dir)
    files = sorted(p for p in model_dir.iterdir() if p.suffix in (".safetensors", ".bin", ".json"))
    return fingerprint(str(model_dir.resolve()), [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in files])


def rows_fingerprint(rows: list[TokenizedRow]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(repr((r.prompt_ids, r.completions, r.kl_completion)).encode())
    return h.hexdigest()[:16]


class ReferenceLogps:
    """Per-row, per-completion token log-probs of the reference model."""

    def __init__(self, values: list[list[torch.Tensor]], kl: list[torch.Tensor] | None):
        self.values = values  # values[row][slot] -> (len,) float32
        self.kl = kl  # kl[row] -> (len,)

    def batch(self, row_ids: list[int], kl: bool = False) -> SeqLogps:
        """Reference SeqLogps for these rows, in the same sequence order as `collate`."""
        if kl:
            per_seq = [self.kl[i] for i in row_ids]
        else:
            slots = len(self.values[row_ids[0]])
            per_seq = [self.values[i][s] for s in range(slots) for i in row_ids]
        lengths = torch.tensor([len(t) for t in per_seq], dtype=torch.long)
        seq_id = torch.repeat_interleave(torch.arange(len(per_seq)), lengths)
        pos = torch.cat([torch.arange(len(t)) for t in per_seq])
        return SeqLogps(torch.cat(per_seq), seq_id, pos, lengths)

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({"values": self.values, "kl": self.kl}, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ReferenceLogps:
        data = torch.load(path, weights_only=True)
        return cls(data["values"], data["kl"])


def _split(lp: SeqLogps) -> list[torch.Tensor]:
    cpu = lp.token_logps.float().cpu()
    return list(torch.split(cpu, lp.lengths.cpu().tolist()))


@torch.no_grad()
def compute_reference(model, rows: list[TokenizedRow], pad_id: int, batch_size: int, progress=None) -> ReferenceLogps:
    """One no-grad pass over all rows, longest first to keep padding low.

    `model` is the policy before training (or a PEFT model, whose adapters are
    disabled here), so no second copy of the weights is ever made.
    """
    was_training = model.training
    model.eval()
    order = sorted(range(len(rows)), key=lambda i: -row_length(rows[i]))
    slots = len(rows[0].completions)
    values: list = [None] * len(rows)
    kl: list | None = [None] * len(rows) if rows[0].kl_completion is not None else None
    for start in range(0, len(order), batch_size):
        ids = order[start : start + batch_size]
        chunk = [rows[i] for i in ids]
        per_seq = _split(no_grad_logps(model, chunk, pad_id, as_reference=True))
        for k, i in enumerate(ids):
            values[i] = [per_seq[s * len(ids) + k] for s in range(slots)]
        if kl is not None:
            for k, t in enumerate(_split(no_grad_logps(model, chunk, pad_id, kl=True, as_reference=True))):
                kl[ids[k]] = t
        if progress is not None:
            progress(len(ids))
    model.train(was_training)
    return ReferenceLogps(values, kl)


def reference_cache_path(model_dir: Path, rows: list[TokenizedRow], precision: str) -> Path:
    key = fingerprint(model_fingerprint(model_dir), rows_fingerprint(rows), precision)
    return cache_dir("reflogps") / f"{key}.pt"
