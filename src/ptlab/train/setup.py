"""Building what the loop needs from a config: model (+LoRA), optimizer, precision."""

from __future__ import annotations

from pathlib import Path

import torch

from ptlab.config import load_config, validate
from ptlab.train.config import TrainConfig


def coerce_config(config) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, dict):
        return validate(TrainConfig, config)
    return load_config(TrainConfig, config)


def mixed_precision(cfg: TrainConfig) -> str:
    """'bf16' where asked for, or on 'auto' where the GPU supports it; else 'no' (fp32)."""
    if cfg.precision == "bf16":
        return "bf16"
    if cfg.precision == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def build_model(cfg: TrainConfig, checkpoint: Path | None):
    """(base model dir, policy model, tokenizer); from `checkpoint` when resuming."""
    from transformers import AutoModelForCausalLM

    from ptlab.models import load, resolve

    model_dir = resolve(cfg.model)
    model, tokenizer = load(str(model_dir))
    if cfg.lora is not None:
        from peft import LoraConfig, PeftModel, get_peft_model

        if checkpoint is not None:
            model = PeftModel.from_pretrained(model, checkpoint, is_trainable=True)
        else:
            lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                              target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM")
            model = get_peft_model(model, lora)
    elif checkpoint is not None:
        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype="float32")
    model.config.use_cache = False
    return model_dir, model, tokenizer


def build_optimizer(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and norm weights (1-D parameters)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    try:  # one fused kernel for all parameters where the device supports it (CPU and CUDA do)
        return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=cfg.lr, foreach=True)
