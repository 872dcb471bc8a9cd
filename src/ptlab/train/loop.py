"""The training loop: one Accelerate loop for every objective, on CPU, one GPU or many.

Flow: load model and rows → tokenise → reference log-probs (cached) → for each
optimizer step: split the global batch over processes and micro-batches, add up
the objective's normalising counts over the whole step, forward/backward each
micro-batch, clip, step → log, checkpoint, evaluate → save the final model.

One run per output_dir: the main process holds `ptlab.locks.hold_dir_lock` on it
for the whole run. A run is finished when `final/` and `result.json` both exist
(`finished_run`); `result.json` is written first, `final/` renamed into place last.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ptlab.atomic import atomic_dir, check_replaceable, mark, write_json, write_text
from ptlab.data.batching import batch_order, collate, row_length, split_evenly
from ptlab.errors import ConfigError, PtlabError
from ptlab.fingerprint import fingerprint
from ptlab.locks import hold_dir_lock
from ptlab.train.checkpoint import (
    FINAL,
    RESULT,
    checkpoint_dirs,
    drop_checkpoints,
    latest_checkpoint,
    load_optimizer_and_scheduler,
    load_state,
    save_checkpoint,
)
from ptlab.train.config import TrainConfig
from ptlab.train.data_source import check_data, load_source
from ptlab.train.logps import SeqLogps, completion_logps
from ptlab.train.objectives import get_objective
from ptlab.train.progress import TrainProgress
from ptlab.train.reference import ReferenceLogps, compute_reference, reference_cache_path
from ptlab.train.schedule import make_scheduler
from ptlab.train.setup import build_model, build_optimizer, coerce_config, mixed_precision
from ptlab.train.step import counts_of, evaluate_objective, needs_kl, no_grad_logps
from ptlab.train.tracking import JsonlLog, MetricAccumulator


class TrainingDiverged(PtlabError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    output_dir: Path
    checkpoint: Path
    metrics: dict
    steps: int
    wall_s: float
    history: list[dict] = field(default_factory=list)


class CompletionLogps(nn.Module):
    """Wraps a causal LM so DDP/FSDP see one forward that returns completion log-probs."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, completion_mask):
        lp = completion_logps(self.lm, input_ids, completion_mask)
        return lp.token_logps, lp.seq_id, lp.pos, lp.lengths, lp.argmax_hit


def seed_step(seed: int, step: int, rank: int) -> None:
    s = (seed * 1_000_003 + step * 1_009 + rank) % (2**31)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def _reference(accelerator, model, model_dir, rows, pad_id, cfg, progress, label) -> ReferenceLogps:
    """Load the cached reference log-probs, or compute them (main process first) and cache them."""
    path = reference_cache_path(model_dir, rows, mixed_precision(cfg))
    with accelerator.main_process_first():
        if path.is_file():
            return ReferenceLogps.load(path)
        task = progress.add_task(f"reference log-probs ({label})", len(rows))
        ref = compute_reference(model, rows, pad_id, cfg.ref_batch_size, progress=lambda n: progress.advance(task, n))
        if accelerator.is_main_process:
            ref.save(path)
        return ref


def _kl_totals(lm, store, parts, tok, pad_id, device) -> torch.Tensor:
    """[Σ (log π − log π_ref), count] over the mismatched pairs of `parts` (for KTO's z₀)."""
    total = torch.zeros(2, dtype=torch.float64, device=device)
    for part in parts:
        pol = no_grad_logps(lm, [tok[i] for i in part], pad_id, kl=True).sums().double()
        ref = store.batch(part, kl=True).sums().to(device).double()
        total[0] += (pol - ref).sum()
        total[1] += len(part)
    return total


def _kl_estimate(totals: torch.Tensor) -> torch.Tensor:
    return (totals[0] / totals[1]).float().clamp(min=0)


def _forward(wrapped, rows, pad_id, device) -> SeqLogps:
    seqs = collate(rows, pad_id)
    return SeqLogps(*wrapped(seqs.input_ids.to(device), seqs.completion_mask.to(device)))


@torch.no_grad()
def _evaluate(objective, params, wrapped, tok, store, pad_id, cfg, accelerator) -> dict:
    """Objective loss and metrics over the whole eval set, each row on one process."""
    lm = accelerator.unwrap_model(wrapped).lm
    lm.eval()
    mine = split_evenly(list(range(len(tok))), accelerator.num_processes)[accelerator.process_index]
    counts = counts_of(objective, tok)
    acc, loss = MetricAccumulator(), 0.0
    for start in range(0, len(mine), cfg.ref_batch_size):
        part = mine[start : start + cfg.ref_batch_size]
        rows = [tok[i] for i in part]
        kl = (_kl_estimate(_kl_totals(lm, store, [part], tok, pad_id, accelerator.device))
              if needs_kl(objective, params) else None)
        # The unwrapped model: ranks may run different numbers of eval batches, and a DDP
        # forward would wait for the others (buffer broadcast).
        seqs = collate(rows, pad_id).to(accelerator.device)
        pol = completion_logps(lm, seqs.input_ids, seqs.completion_mask)
        ref = store.batch(part).to_device(accelerator.device) if store is not None else None
        out = evaluate_objective(objective, params, pol, rows, ref, kl)
        loss += float(out.reduce(counts))
        acc.add(out.metrics)
    # Each process holds its share of the dataset-level loss; counted once, on the main process.
    acc.sums["loss"] += loss
    acc.counts["loss"] += 1.0 if accelerator.is_main_process else 0.0
    lm.train()
    return {f"eval/{k}": v for k, v in acc.reduce(accelerator).items()}


# Settings that change how a run is logged or saved, or where, but not the numbers it computes.
_NOT_IN_HASH = {"output_dir", "save_every", "log_every", "report_to", "save_total_limit", "retention"}


def _check_may_write(out: Path) -> None:
    """Refuse an output_dir ptlab may not write into: checked before the lock, whose taking creates it."""
    if not checkpoint_dirs(out):  # a run of an older ptlab has no marker, but its checkpoints say what it is
        check_replaceable(out, "output_dir")


def _check_output_dir(out: Path, resume: bool) -> None:
    """Refuse, before any work, an output_dir ptlab may not write into or that holds another run."""
    _check_may_write(out)
    if not resume and (out / "final").exists():
        raise ConfigError(f"output_dir {out} already holds a finished run; choose another output_dir")
    if not resume and checkpoint_dirs(out):
        raise ConfigError(f"output_dir {out} holds a partial run; pass --resume to continue it")


def _restore_threads(state: dict, device) -> None:
    """Use the thread count the checkpoint was written with: CPU sums depend on it, bit-exact resume needs it."""
    threads = state.get("torch_threads")
    if device.type == "cpu" and threads and threads != torch.get_num_threads():
        torch.set_num_threads(int(threads))


def _output_lock(out: Path):
    """The output_dir lock, taken by the main process only (rank 0 under `accelerate launch`)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return contextlib.nullcontext()
    return hold_dir_lock(out, "output_dir")


def train(config, resume: bool = False, quiet: bool = False) -> TrainResult:
    """Train as `config` says into its output_dir (`resume`: from the latest intact checkpoint there)."""
    cfg: TrainConfig = coerce_config(config)
    out = Path(cfg.output_dir)
    _check_may_write(out)
    with _output_lock(out):
        # under the lock: a run still going here is named by the lock, not mistaken for a partial one
        _check_output_dir(out, resume)
        return _train(cfg, out, resume, quiet)


def _save_final(out: Path, lm, tokenizer, record: dict) -> Path:
    """`result.json`, then `final/` renamed into place: a run that looks finished has its metrics."""
    write_json(out / RESULT, record)
    final = out / FINAL
    with atomic_dir(final) as tmp:
        lm.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return final


def _train(cfg: TrainConfig, out: Path, resume: bool, quiet: bool) -> TrainResult:
    from accelerate import Accelerator

    ckpt = latest_checkpoint(out) if resume else None
    cfg_hash = fingerprint(cfg.model_dump(exclude=_NOT_IN_HASH))
    if ckpt is not None and load_state(ckpt).get("config_hash") != cfg_hash:
        raise ConfigError(f"--resume: {ckpt} was written by a different config; use the same config or a new output_dir")

    accelerator = Accelerator(
        mixed_precision=mixed_precision(cfg),
        log_with=list(cfg.report_to) or None,
        project_dir=str(out),
    )
    world, rank, device = accelerator.num_processes, accelerator.process_index, accelerator.device
    objective = get_objective(cfg.objective)
    params = cfg.objective_params()
    progress = TrainProgress(enabled=accelerator.is_main_process and not quiet)
    t0 = time.time()

    rows, eval_rows = check_data(cfg, world)  # bad data fails here, before any model is built or loaded
    model_dir, model, tokenizer = build_model(cfg, ckpt)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    use_kl = needs_kl(objective, params)
    kl_chunk = cfg.batch_size if use_kl else None
    tok = load_source(rows, cfg.data, objective.format, tokenizer, cfg.max_length, kl_chunk, "data")
    eval_tok = (load_source(eval_rows, cfg.eval_data, objective.format, tokenizer, cfg.max_length, kl_chunk,
                            "eval_data") if cfg.eval_data else None)

    store = eval_store = None
    if objective.uses_reference:
        ref_model = model
        if ckpt is not None and cfg.lora is None and not reference_cache_path(model_dir, tok, mixed_precision(cfg)).is_file():
            from ptlab.models import load as load_model  # the policy has moved: load the base once

            ref_model, _ = load_model(str(model_dir))
        ref_model.to(device)
        store = _reference(accelerator, ref_model, model_dir, tok, pad_id, cfg, progress, "train")
        if eval_tok:
            eval_store = _reference(accelerator, ref_model, model_dir, eval_tok, pad_id, cfg, progress, "eval")
        del ref_model

    optimizer = build_optimizer(model, cfg)
    lengths = [row_length(r) for r in tok]
    per_epoch = len(batch_order(lengths, cfg.batch_size, cfg.seed, 0, cfg.group_by_length, world * cfg.grad_accum))
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))
    scheduler = make_scheduler(optimizer, cfg.scheduler, int(cfg.warmup_ratio * total_steps), total_steps)
    wrapped, optimizer = accelerator.prepare(CompletionLogps(model), optimizer)
    start = 0
    if ckpt is not None:
        load_optimizer_and_scheduler(ckpt, optimizer, scheduler)
        state = load_state(ckpt)
        start = state["step"]
        _restore_threads(state, device)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        mark(out)
        write_text(out / "config.yaml", _yaml(cfg))
    if cfg.report_to:
        accelerator.init_trackers("ptlab", config=_flat(cfg.model_dump()))
    log = JsonlLog(out / "metrics.jsonl", truncate_after_step=start if ckpt else None) if accelerator.is_main_process else None

    orders: dict[int, list[list[int]]] = {}
    interval = MetricAccumulator()
    history: list[dict] = []
    last_good = ckpt
    bar = progress.add_task("train", total_steps, completed=start)
    wrapped.train()
    for step in range(start, total_steps):
        epoch, k = divmod(step, per_epoch)
        if epoch not in orders:
            orders = {epoch: batch_order(lengths, cfg.batch_size, cfg.seed, epoch, cfg.group_by_length, world * cfg.grad_accum)}
        batch = orders[epoch][k]
        seed_step(cfg.seed, step, rank)
        parts = split_evenly(batch, world * cfg.grad_accum)
        mine = parts[rank * cfg.grad_accum : (rank + 1) * cfg.grad_accum]
        counts = counts_of(objective, [tok[i] for i in batch])
        lm = accelerator.unwrap_model(wrapped).lm
        kl = None
        if use_kl:  # KTO's z₀ over every process's share of the step
            totals = _kl_totals(lm, store, mine, tok, pad_id, device)
            kl = _kl_estimate(accelerator.reduce(totals, reduction="sum") if world > 1 else totals)
        step_loss = torch.zeros((), dtype=torch.float64, device=device)
        for j, part in enumerate(mine):
            rows = [tok[i] for i in part]
            sync = contextlib.nullcontext() if j == len(mine) - 1 else accelerator.no_sync(wrapped)
            with sync:
                with accelerator.autocast():
                    pol = _forward(wrapped, rows, pad_id, device)
                    ref = store.batch(part).to_device(device) if store is not None else None
                    out_ = evaluate_objective(objective, params, pol, rows, ref, kl)
                    loss = out_.reduce(counts, scale=world)
                bad = torch.tensor(0.0 if torch.isfinite(loss) else 1.0, device=device)
                if world > 1:
                    bad = accelerator.reduce(bad, reduction="sum")
                if bad.item() > 0:
                    where = f"last good checkpoint: {last_good}" if last_good else "no checkpoint was written yet"
                    raise TrainingDiverged(
                        f"loss is not finite at step {step + 1} (rows {sorted(batch)[:8]}...); {where}"
                    )
                accelerator.backward(loss)
            step_loss += loss.detach().double() / world
            interval.add(out_.metrics)
        if world > 1:
            step_loss = accelerator.reduce(step_loss, reduction="sum")
        if cfg.max_grad_norm:
            grad_norm = accelerator.clip_grad_norm_(wrapped.parameters(), cfg.max_grad_norm)
        else:
            grad_norm = torch.norm(torch.stack([p.grad.norm() for p in wrapped.parameters() if p.grad is not None]))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        interval.add_value("loss", float(step_loss))
        interval.add_value("grad_norm", float(grad_norm))
        done = step + 1
        if done % cfg.log_every == 0 or done == total_steps:
            record = {"step": done, "epoch": round(step / per_epoch, 4), "lr": scheduler.get_last_lr()[0],
                      **interval.reduce(accelerator), "elapsed_s": round(time.time() - t0, 3)}
            interval = MetricAccumulator()
            if eval_tok and cfg.eval_every and (done % cfg.eval_every == 0 or done == total_steps):
                record.update(_evaluate(objective, params, wrapped, eval_tok, eval_store, pad_id, cfg, accelerator))
            history.append(record)
            if accelerator.is_main_process:
                log.write(record)
                progress.log(record)
            if cfg.report_to:
                accelerator.log({k: v for k, v in record.items() if k != "step"}, step=done)
        progress.advance(bar, 1, loss=float(step_loss))
        if cfg.save_every and done % cfg.save_every == 0 and done < total_steps:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                last_good = save_checkpoint(out, done, accelerator.unwrap_model(wrapped).lm, tokenizer, optimizer,
                                            scheduler, {"config_hash": cfg_hash, "torch_threads": torch.get_num_threads()},
                                            cfg.save_total_limit)
            accelerator.wait_for_everyone()

    progress.stop()
    final = out / FINAL
    accelerator.wait_for_everyone()
    metrics = history[-1] if history else {}
    if accelerator.is_main_process:
        record = {"metrics": metrics, "checkpoint": str(final), "steps": total_steps,
                  "wall_s": round(time.time() - t0, 3), "config_hash": cfg_hash}
        _save_final(out, accelerator.unwrap_model(wrapped).lm, tokenizer, record)
        if cfg.retention == "final":
            drop_checkpoints(out)
    if cfg.report_to:
        accelerator.end_training()
    accelerator.wait_for_everyone()
    return TrainResult(out, final, metrics, total_steps, time.time() - t0, history)


def _yaml(cfg: TrainConfig) -> str:
    import yaml

    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[key] = v
        else:
            out[key] = str(v)
    return out
