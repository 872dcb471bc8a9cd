"""YAML configs validated by pydantic, with `key=value` overrides.

Every area (train, data, study, synth, retrieval) declares its config as a
pydantic model with `extra="forbid"`, and loads it through `load_config`, so a
typo or a bad value becomes one line naming the field and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ptlab.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for config models: unknown keys are errors, numbers are finite, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False)


def read_text(path: Path, what: str = "file") -> str:
    """A UTF-8 text file's contents; invalid UTF-8 is a ConfigError naming the file and line."""
    from ptlab.data.io import read_utf8

    return read_utf8(path, what, ConfigError)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML config file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = read_text(path, "config file")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise ConfigError(f"{where}: invalid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides; values are parsed as YAML (`lr=1e-3`, `tags=[a,b]`)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: expected key=value with a key like a or a.b (got key {key!r})")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validation_error_line(err: ValidationError, prefix: str = "") -> str:
    """The first validation error as `field.path: message (got value)`; an unknown key (a typo) comes first."""
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = ".".join(str(p) for p in (prefix, *first["loc"]) if p != "")
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown field"
    got = first.get("input")
    shown = "" if first["type"] == "missing" or isinstance(got, dict) or first["type"] == "value_error" else f" (got {_short(got)})"
    more = len(errors) - 1
    tail = f" [+{more} more]" if more else ""
    return f"{loc}: {msg}{shown}{tail}" if loc else f"{msg}{shown}{tail}"


def format_validation_error(err: ValidationError, source: str = "config") -> str:
    return f"{source}: {validation_error_line(err)}"


def validate(model: type[M], data: dict[str, Any], source: str = "config") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None


def load_config(model: type[M], path: str | Path | None = None, overrides: list[str] | None = None) -> M:
    """Read YAML (optional), apply overrides, validate against `model`."""
    data = read_yaml(path) if path else {}
    data = apply_overrides(data, list(overrides or []))
    return validate(model, data, source=str(path) if path else "config")
