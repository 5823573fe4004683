"""The generic half of the settings: errors that name a setting, range and choice checks,
dotted field names (``optim.learning_rate``) and the plain-JSON round trip of nested frozen
dataclasses. config.py declares the settings themselves."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Settings = TypeVar("Settings", bound="DataclassInstance")


class ConfigError(ValueError):
    """A setting is invalid. ``field_path`` names it (``optim.learning_rate``)."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{field_path}: {message}")
        self.field_path = field_path
        self.message = message


class ConfigFileError(ConfigError):
    """A config file that cannot be read at all (missing, a folder, not UTF-8, not JSON…)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__("<file>", message)
        self.path = path

    def __str__(self) -> str:
        return f"the config file {self.path} cannot be used: {self.message}"


def config_fields(config: Any) -> dict[str, Any]:
    """Every setting by its dotted name (``optim.learning_rate``), in declaration order."""
    fields: dict[str, Any] = {}
    for config_field in dataclasses.fields(config):
        value = getattr(config, config_field.name)
        if dataclasses.is_dataclass(value):
            for inner in dataclasses.fields(value):
                fields[f"{config_field.name}.{inner.name}"] = getattr(value, inner.name)
        else:
            fields[config_field.name] = value
    return fields


def get_field(config: Any, field_path: str) -> Any:
    """The value of one dotted field (``optim.learning_rate``); ConfigError for an unknown one."""
    owner: Any = config
    for name in field_path.split("."):
        if not dataclasses.is_dataclass(owner) or name not in {
            f.name for f in dataclasses.fields(owner)
        }:
            raise ConfigError(field_path, "there is no such setting")
        owner = getattr(owner, name)
    return owner


def replace_field(config: Settings, field_path: str, value: Any) -> Settings:
    """Return a copy of ``config`` with one dotted field (``optim.learning_rate``) replaced."""
    if "." not in field_path:
        return dataclasses.replace(config, **{field_path: value})
    section_name, field_name = field_path.split(".", 1)
    section = getattr(config, section_name)
    return dataclasses.replace(
        config, **{section_name: dataclasses.replace(section, **{field_name: value})}
    )


def check_range(
    field_path: str, value: float, low: float, high: float, *, low_open: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(field_path, f"must be a number, got {value!r}")
    if value != value or value < low or value > high or (low_open and value == low):
        raise ConfigError(
            field_path, f"must be between {_number(low)} and {_number(high)}, got {value!r}"
        )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def check_choice(field_path: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(field_path, f"{value!r} is not one of: {', '.join(allowed)}")


def to_plain(instance: Any) -> Any:
    if dataclasses.is_dataclass(instance) and not isinstance(instance, type):
        return {f.name: to_plain(getattr(instance, f.name)) for f in dataclasses.fields(instance)}
    if isinstance(instance, tuple):
        return [to_plain(item) for item in instance]
    return instance


def from_plain(cls: type, payload: dict[str, Any], prefix: str) -> Any:
    if not isinstance(payload, dict):
        raise ConfigError(prefix.rstrip(".") or "<file>", "expected an object of settings")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(payload) - known)
    if unknown:
        raise ConfigError(
            f"{prefix}{unknown[0]}", f"unknown setting; known ones are: {', '.join(sorted(known))}"
        )
    values = {}
    for name, raw in payload.items():
        values[name] = _coerce(hints[name], raw, f"{prefix}{name}")
    return cls(**values)


def _coerce(hint: Any, raw: Any, field_path: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_plain(hint, raw, prefix=f"{field_path}.")
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if raw is None and type(None) in args:
            return None
        non_none = [arg for arg in args if arg is not type(None)]
        return _coerce(non_none[0], raw, field_path)
    if origin is tuple:
        if not isinstance(raw, list | tuple):
            raise ConfigError(field_path, f"expected a list, got {raw!r}")
        return tuple(_coerce(args[0], item, field_path) for item in raw)
    if hint is bool:
        if not isinstance(raw, bool):
            raise ConfigError(field_path, f"expected true or false, got {raw!r}")
        return raw
    if hint is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConfigError(field_path, f"expected a whole number, got {raw!r}")
        return raw
    if hint is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ConfigError(field_path, f"expected a number, got {raw!r}")
        return float(raw)
    if hint is str:
        if not isinstance(raw, str):
            raise ConfigError(field_path, f"expected text, got {raw!r}")
        return raw
    return raw
