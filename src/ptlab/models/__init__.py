"""Model registry: `tiny-*` (built locally), `smollm2-135m` (packaged weights), `hf:<path>`.

`load(name)` returns `(model, tokenizer)`; `resolve(name)` returns the local
Hugging Face directory the name stands for, building it on first use.
"""

from ptlab.models.registry import available, load, resolve

__all__ = ["available", "load", "resolve"]
