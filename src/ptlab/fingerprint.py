"""Stable content hashes used as cache keys for data, models and steps."""

import hashlib
import json
from typing import Any


def fingerprint(*parts: Any, length: int = 16) -> str:
    """Hash JSON-serialisable parts (sorted keys) into a short hex digest."""
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()[:length]
