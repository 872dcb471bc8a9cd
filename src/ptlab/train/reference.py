"""Reference log-probs: computed once in a no-grad pass, cached on disk.

The cache key is (model fingerprint, token ids of every sequence, precision),
so a re-run, a resumed run, or another objective on the same data and model
reuses it. Per-token values are stored, so any objective (LD-DPO weighting,
length normalisation) can derive what it needs. During training the
reference model is not in memory at all.

A damaged cache file (truncated by a full disk, garbage, or tensors that do
not fit the rows) is found by `reference_cache_path`, which checks an existing
file against the rows it is keyed by, warns in one line and deletes it (ptlab
made it), so the caller sees no file and recomputes. Files are written under a
unique temporary name and fsynced before the rename, so a kill never leaves a
half-written file under the real name.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ptlab.atomic import write_file
from ptlab.cache_heal import warn_corrupt
from ptlab.data.batching import row_length
from ptlab.data.tokenize import TokenizedRow
from ptlab.errors import DataError
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
        write_file(Path(path), lambda f: torch.save({"values": self.values, "kl": self.kl}, f))

    @classmethod
    def load(cls, path: Path) -> ReferenceLogps:
        """The cached values; a file `reference_cache_path` just checked is not read a second time."""
        path = Path(path)
        checked = _CHECKED.pop(_stamp(path), None) if path.is_file() else None
        if checked is not None:
            return checked
        try:
            return cls.read(path)
        except CorruptReference as e:
            raise DataError(f"{path}: corrupt reference log-probs cache ({e}); delete it and re-run") from None

    @classmethod
    def read(cls, path: Path) -> ReferenceLogps:
        """Load and check the file's structure; raises `CorruptReference` saying what is wrong."""
        try:
            data = torch.load(path, weights_only=True)
        except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, zipfile errors...
            raise CorruptReference(f"unreadable: {type(e).__name__}") from None
        if not isinstance(data, dict) or "values" not in data or "kl" not in data:
            raise CorruptReference("not a reference log-probs file")
        return cls(data["values"], data["kl"])

    def problem(self, rows: list[TokenizedRow]) -> str | None:
        """Why these values cannot belong to `rows` (None if they fit): counts, slots and lengths per sequence."""
        if not isinstance(self.values, list) or len(self.values) != len(rows):
            return f"{_count(self.values)} rows cached for {len(rows)} rows"
        for i, row in enumerate(rows):
            slots = self.values[i]
            if not isinstance(slots, list) or len(slots) != len(row.completions):
                return f"row {i}: {_count(slots)} completions cached for {len(row.completions)}"
            for s, completion in enumerate(row.completions):
                if not _fits(slots[s], row.prompt_ids, completion):
                    return f"row {i}, completion {s}: wrong shape"
        expect_kl = rows[0].kl_completion is not None if rows else False
        if expect_kl != (self.kl is not None):
            return "KL values present where none belong" if self.kl is not None else "KL values missing"
        if self.kl is not None:
            if not isinstance(self.kl, list) or len(self.kl) != len(rows):
                return f"{_count(self.kl)} KL rows cached for {len(rows)} rows"
            for i, row in enumerate(rows):
                if not _fits(self.kl[i], row.prompt_ids, row.kl_completion or []):
                    return f"row {i}, KL completion: wrong shape"
        return None


class CorruptReference(Exception):
    """A reference log-probs file that cannot be used; `str(e)` says why."""


# A file checked by `reference_cache_path`, kept for the `load` that follows, keyed by (path, size, mtime).
_CHECKED: dict[tuple, ReferenceLogps] = {}


def _stamp(path: Path) -> tuple:
    st = path.stat()
    return str(path), st.st_size, st.st_mtime_ns


def _count(x) -> str:
    return str(len(x)) if isinstance(x, list) else f"a {type(x).__name__} of"


def _fits(t, prompt_ids: list[int], completion: list[int]) -> bool:
    """A 1-D float tensor with one value per predicted completion token (the first is unpredicted without a prompt)."""
    expected = max(len(completion) - (0 if prompt_ids else 1), 0)
    return isinstance(t, torch.Tensor) and t.dtype.is_floating_point and t.dim() == 1 and len(t) == expected


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
    """Where the values for (model, rows, precision) live; a file there is checked, and removed if it is corrupt.

    Checking here, where the rows are known, means every caller's
    `if path.is_file(): load(path)` heals: a corrupt file is gone and recomputed.
    """
    key = fingerprint(model_fingerprint(model_dir), rows_fingerprint(rows), precision)
    path = cache_dir("reflogps") / f"{key}.pt"
    if path.is_file():
        check_cache_file(path, rows)
    return path


def check_cache_file(path: Path, rows: list[TokenizedRow]) -> bool:
    """True if `path` holds values for `rows`; otherwise warn, delete it and return False."""
    try:
        stamp = _stamp(path)
        ref = _CHECKED.get(stamp) or ReferenceLogps.read(path)  # checked twice per run: read once
        problem = ref.problem(rows)
    except FileNotFoundError:  # another process healed it first
        return False
    except CorruptReference as e:
        problem = str(e)
    if problem is None:
        _CHECKED.clear()  # at most one file's values held: the one about to be loaded
        _CHECKED[stamp] = ref
        return True
    warn_corrupt(path, problem)
    path.unlink(missing_ok=True)
    return False
