"""Padded tensors from tokenised rows, and length-grouped batch orders.

Paired rows become one tensor of 2B sequences, chosen first then rejected, so
both go through the model in a single forward. Right padding only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ptlab.data.tokenize import TokenizedRow


@dataclass
class SequenceBatch:
    input_ids: torch.Tensor  # (N, T), right-padded
    completion_mask: torch.Tensor  # (N, T), 1 on completion tokens
    lengths: torch.Tensor  # (N,) completion tokens per sequence

    def to(self, device) -> SequenceBatch:
        return SequenceBatch(self.input_ids.to(device), self.completion_mask.to(device), self.lengths.to(device))


def pad_sequences(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> SequenceBatch:
    n = len(prompts)
    width = max(len(p) + len(c) for p, c in zip(prompts, completions))
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        seq = p + c
        ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[i, len(p) : len(seq)] = 1
    lengths = torch.tensor([len(c) for c in completions], dtype=torch.long)
    return SequenceBatch(ids, mask, lengths)


def sequences(rows: list[TokenizedRow]) -> tuple[list[list[int]], list[list[int]]]:
    """(prompts, completions) for every sequence of the rows, completion slot-major.

    For paired rows that is [chosen_0 … chosen_{B−1}, rejected_0 … rejected_{B−1}].
    """
    slots = len(rows[0].completions)
    prompts = [r.prompt_ids for _ in range(slots) for r in rows]
    comps = [r.completions[s] for s in range(slots) for r in rows]
    return prompts, comps


def collate(rows: list[TokenizedRow], pad_id: int) -> SequenceBatch:
    return pad_sequences(*sequences(rows), pad_id)


def collate_kl(rows: list[TokenizedRow], pad_id: int) -> SequenceBatch:
    return pad_sequences([r.prompt_ids for r in rows], [r.kl_completion for r in rows], pad_id)


def row_length(row: TokenizedRow) -> int:
    return len(row.prompt_ids) + max(len(c) for c in row.completions)


def batch_order(
    lengths: list[int], batch_size: int, seed: int, epoch: int, group_by_length: bool = True, min_last: int = 1
) -> list[list[int]]:
    """Row indices per batch for one epoch, deterministic in (seed, epoch).

    With `group_by_length`, rows are shuffled, cut into windows of 64 batches,
    sorted by length inside each window, and the batches shuffled again — padding
    drops while each batch stays a random draw. A last batch smaller than
    `min_last` rows is dropped.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group_by_length:
        window = batch_size * 64
        order = [
            i
            for start in range(0, len(order), window)
            for i in sorted(order[start : start + window], key=lambda j: -lengths[j])
        ]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if batches and len(batches[-1]) < min_last:
        batches.pop()
    if group_by_length:
        rng.shuffle(batches)
    return batches


def split_evenly(items: list, parts: int) -> list[list]:
    """`parts` contiguous slices whose sizes differ by at most one."""
    q, r = divmod(len(items), parts)
    out, start = [], 0
    for k in range(parts):
        end = start + q + (1 if k < r else 0)
        out.append(items[start:end])
        start = end
    return out
