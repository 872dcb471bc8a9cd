"""Steps shared by the studies that post-train a model and evaluate it on task splits.

A step's output lives in a directory (or file) named by the fingerprint of its
inputs (`Step`), is written atomically, and counts as done only when complete
and verified: a training run when `final/` and `result.json` both exist, an
evaluation when its row count and content hash match. A step whose output fails
verification is recomputed, never trusted. Plans are duck-typed: any plan with
the attributes a step reads (`train`, `train_config`, `eval`, `eval_files`,
`eval_settings`, `n_pairs`, `ref_pairs`, `model_dir`, `max_length`, `cell.task`) works.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptlab.atomic import write_file


@dataclass(frozen=True)
class Step:
    fingerprint: str
    path: Path


def model_key(model_dir: str) -> str:
    """A model's identity for cache keys: its cache entry name (which carries the build's version hash), or its path."""
    from ptlab.paths import cache_dir

    path = Path(model_dir)
    return path.name if path.parent == cache_dir("models") else str(path)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def run_train(plan) -> Path:
    """Train unless the run finished (`final/` and `result.json`); resume an interrupted run from its latest
    intact checkpoint. `base` cells: the base model itself."""
    from ptlab.train.checkpoint import checkpoint_dirs, drop_checkpoints, finished_run
    from ptlab.train.loop import train

    if plan.train is None:
        return Path(plan.model_dir)
    out = plan.train.path
    final = finished_run(out)
    if final is not None:
        if plan.train_config.get("retention") == "final" and (out / "checkpoints").exists():
            drop_checkpoints(out)  # killed between saving final/ and dropping its checkpoints
        return final
    resume = out.is_dir() and bool(checkpoint_dirs(out))
    if out.is_dir() and not resume:
        shutil.rmtree(out)  # killed before its first checkpoint: nothing to keep
    return train(plan.train_config, resume=resume, quiet=True).checkpoint


def eval_placement() -> dict:
    """Where evaluation runs: the GPU when there is one (bf16 where supported), else the CPU in fp32, whose
    greedy decoding is bit-stable (same config and seed, same numbers)."""
    import torch

    if torch.cuda.is_available():
        return {"device": "cuda", "dtype": torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16}
    return {}


def reference_pair_logps(plan, pairs: list[dict]) -> np.ndarray:
    """The reference model's log-probs of the held-out pairs (the base, or a pipeline's SFT model:
    `plan.reference_dir`), computed once per study and cached."""
    path = plan.ref_pairs.path
    if path.is_file():
        return np.load(path, allow_pickle=False)
    from ptlab.evaluate.ranking import pair_logps
    from ptlab.models import load

    model, tokenizer = load(getattr(plan, "reference_dir", plan.model_dir), **eval_placement())
    arr = pair_logps(model, tokenizer, pairs, plan.max_length)
    write_file(path, lambda f: np.save(f, arr, allow_pickle=False))
    return arr


def run_eval(plan, checkpoint: Path, progress=None):
    from ptlab.atomic import atomic_dir
    from ptlab.evaluate.generate import GenerationSettings
    from ptlab.evaluate.run import EvalResult, evaluate_model
    from ptlab.models import load

    if eval_output_ok(plan.eval.path):  # shared by cells (the base's greedy evaluation): verified, then reused
        return EvalResult.load(plan.eval.path)
    splits = {split: read_rows(step.path) for split, step in plan.eval_files.items()}
    pool = splits.get(getattr(plan, "pairs_split", "eval_id"), []) if plan.n_pairs else []
    shortcut = [r for r in pool if r.get("error") == "shortcut"]  # where a shortcut has a response: it is the rejected
    pairs = (shortcut or pool)[: plan.n_pairs]
    # the implicit reward log π/π_base of the base itself is 0: only trained models get the reward view
    ref = reference_pair_logps(plan, pairs) if pairs and plan.train is not None else None
    model, tokenizer = load(str(checkpoint), **eval_placement())
    result = evaluate_model(model, tokenizer, plan.cell.task, splits, GenerationSettings(**plan.eval_settings),
                            pairs=pairs or None, ref_logps=ref, progress=progress)
    with atomic_dir(plan.eval.path) as tmp:
        result.save(tmp)
    return result


def eval_output_ok(path: Path) -> bool:
    """Whether an evaluation output is complete and intact (row count and content hash match)."""
    from ptlab.evaluate.run import EvalResult

    return (Path(path) / "metrics.json").is_file() and EvalResult.verify(path) is None


def prepare_worker(threads: int) -> None:
    """What every cell sets first, in whichever process runs it: its torch threads, and quiet libraries."""
    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


