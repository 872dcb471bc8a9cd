"""Where ptlab keeps what it builds: models, reference log-probs, teacher caches."""

import os
from pathlib import Path


def home() -> Path:
    """ptlab's cache root: $PTLAB_HOME, else ~/.cache/ptlab."""
    root = os.environ.get("PTLAB_HOME") or Path.home() / ".cache" / "ptlab"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(kind: str) -> Path:
    path = home() / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
