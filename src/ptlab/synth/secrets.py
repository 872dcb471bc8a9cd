"""API keys come from environment variables named in config, and stay out of every output.

Configs, caches, results and logs only ever hold the variable's *name*; `scrub`
removes the key's value from any text that might reach a message (a server
that echoes headers back in an error body, say).
"""

from __future__ import annotations

import os

from ptlab.errors import ConfigError


def read_api_key(env_var: str | None, *, required: bool, where: str) -> str | None:
    """The key from `$env_var`; a missing required key is a one-line error naming the variable."""
    if not env_var:
        return None
    value = os.environ.get(env_var)
    if not value:
        if required:
            raise ConfigError(f"{where}: environment variable {env_var} is not set (it should hold the API key)")
        return None
    return value


def scrub(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` replaced by '***'."""
    if secret and len(secret) >= 4:
        return text.replace(secret, "***")
    return text
