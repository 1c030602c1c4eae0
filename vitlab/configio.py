"""Config dataclasses <-> JSON / TOML files / dotted CLI overrides, strictly typed.

Unknown keys and values of the wrong type are rejected with a message listing the valid
keys, so a typo never trains silently with a default.
"""
from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from pathlib import Path
from typing import Any

from .config import RunConfig
from .errors import ConfigError
from .fileio import save_json

__all__ = ["ConfigError", "apply_overrides", "coerce", "flatten", "from_dict", "load_config_file", "merge",
           "save_json", "to_dict", "valid_keys"]


def to_dict(cfg) -> dict:
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        out[f.name] = to_dict(value) if dataclasses.is_dataclass(value) else (
            list(value) if isinstance(value, tuple) else value)
    return out


def valid_keys(cls=RunConfig, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        if dataclasses.is_dataclass(t):
            keys += valid_keys(t, f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def from_dict(cls, data: dict, *, where: str = ""):
    """Build ``cls`` from a nested dict; every key must exist and every value must fit its type."""
    if not isinstance(data, dict):
        raise ConfigError(f"config section {where or '<root>'} must be a table/object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key(s) {[where + k for k in unknown]}; valid keys: "
                          f"{', '.join(valid_keys(cls, where))}")
    kwargs = {}
    for name, value in data.items():
        t = hints[name]
        if dataclasses.is_dataclass(t):
            kwargs[name] = from_dict(t, value, where=f"{where}{name}.")
        else:
            kwargs[name] = coerce(value, t, key=where + name)
    return cls(**kwargs)


def coerce(value: Any, t, *, key: str):
    """Convert a JSON/TOML value or a CLI string to type ``t`` (int, float, bool, str, tuple[float, ...])."""
    origin = typing.get_origin(t)
    if origin is tuple:
        args = typing.get_args(t)
        items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or len(items) != len(args):
            raise ConfigError(f"{key} expects {len(args)} comma-separated values, got {value!r}")
        return tuple(coerce(v, a, key=key) for v, a in zip(items, args))
    if t is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{key} expects a boolean (true/false), got {value!r}")
    if t is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key} expects an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key} expects an integer, got {value!r}")
    if t is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key} expects a number, got {value!r}")
    if t is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} expects a string, got {value!r}")
    raise ConfigError(f"{key} has an unsupported type {t}")


def apply_overrides(cfg, overrides: dict[str, Any]):
    """Return ``cfg`` with dotted keys replaced, e.g. ``{"model.depth": "6", "optim.lr": 3e-3}``."""
    data = to_dict(cfg)
    keys = valid_keys(type(cfg))
    for dotted, value in overrides.items():
        if dotted not in keys:
            raise ConfigError(f"unknown config key {dotted!r}; valid keys: {', '.join(keys)}")
        node = data
        *path, last = dotted.split(".")
        for part in path:
            node = node[part]
        node[last] = value
    return from_dict(type(cfg), data)


def load_config_file(path: str | Path) -> dict:
    """A full or partial run config from JSON or TOML as a nested dict, to ``merge`` over a config."""
    path = Path(path)
    kind = "TOML" if path.suffix == ".toml" else "JSON"
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; expected a {kind} file")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path} is not a text file ({e.reason} at byte {e.start}); expected "
                          f"{kind}") from e
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid {kind}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} holds a {type(data).__name__}; expected a {kind} table/object of "
                          f"sections such as {{\"model\": {{\"depth\": 6}}}}")
    return data


def flatten(partial: dict, prefix: str = "") -> dict:
    """A nested dict as dotted keys: ``{"model": {"depth": 6}}`` -> ``{"model.depth": 6}``."""
    flat = {}
    for k, v in partial.items():
        if isinstance(v, dict):
            flat.update(flatten(v, f"{prefix}{k}."))
        else:
            flat[prefix + k] = v
    return flat


def merge(cfg, partial: dict):
    """``cfg`` with a nested partial dict laid over it."""
    return apply_overrides(cfg, flatten(partial))

