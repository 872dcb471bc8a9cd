"""Tiny Llama-architecture models with a locally trained tokenizer.

They are built deterministically from a `TinySpec` (architecture, tokenizer
corpus, seed) into ptlab's cache; the directory is a normal Hugging Face
checkpoint, so everything downstream treats it like any causal LM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ptlab.atomic import atomic_dir, write_json
from ptlab.models.corpus import get_corpus
from ptlab.models.tokenizer import train_bpe


@dataclass(frozen=True)
class TinySpec:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int = 2048
    max_positions: int = 512
    corpus: str = "builtin"
    seed: int = 0
    description: str = ""


TINY_SPECS: dict[str, TinySpec] = {
    "tiny-test": TinySpec(64, 2, 4, 2, 172, vocab=1024, description="~0.2M params, for unit tests"),
    "tiny-4m": TinySpec(256, 4, 8, 8, 688, description="~3.7M params, engine benchmarks and CPU runs"),
}

# Builders that do more than initialise (e.g. the pretrained `tiny` base from the
# task suite) register themselves here: name -> fn(out_dir) writing a checkpoint.
TINY_BUILDERS: dict[str, Callable[[Path], None]] = {}


def llama_config(spec: TinySpec, tokenizer) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        attn_implementation="sdpa",
    )


def build_tiny(spec: TinySpec, out: Path) -> None:
    """Train the tokenizer, initialise the model from `spec.seed`, save both to `out`."""
    tokenizer = train_bpe(get_corpus(spec.corpus, spec.seed), spec.vocab)
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(llama_config(spec, tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "ptlab_model.json", {"name": out.name, "spec": asdict(spec)})
