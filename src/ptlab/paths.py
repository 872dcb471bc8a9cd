"""Where ptlab keeps what it builds: models, reference log-probs, teacher caches."""

import os
from pathlib import Path


def home() -> Path:
    """ptlab's cache root: $PTLAB_HOME, else ~/.cache/ptlab."""
    root = os.environ.get("PTLAB_HOME") or Path.home() / ".cache" / "ptlab"
    path = Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        from ptlab.errors import ConfigError

        raise ConfigError(f"PTLAB_HOME {path}: not a directory (a file is in the way); "
                          "point PTLAB_HOME at a directory") from None
    return path


def cache_dir(kind: str) -> Path:
    path = home() / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
