"""Reading a study's config: the same for every study.

`--quick` defaults, then the YAML file, then `key=value` overrides (a first
argument containing `=` that is no file is an override), validated by the
study's pydantic model.
"""

from __future__ import annotations

import copy
from pathlib import Path


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_grid_config(model, study: str, config: str | None, overrides: list[str] | None, quick: dict | None = None):
    """A validated `model` from quick defaults, the YAML `config` and the overrides."""
    from ptlab.config import apply_overrides, read_yaml, validate
    from ptlab.errors import ConfigError

    overrides = list(overrides or [])
    if config is not None and "=" in config and not Path(config).is_file():
        overrides.insert(0, config)  # `ptlab study <name> key=value` with no config file
        config = None
    data: dict = copy.deepcopy(quick) if quick else {}
    if config is not None:
        data = _merge(data, read_yaml(config))
    data = apply_overrides(data, overrides)
    if "study" in data and data["study"] != study:
        raise ConfigError(f"{config}: study: expected {study!r}, got {data['study']!r}")
    return validate(model, data, source=str(config) if config else "config")
