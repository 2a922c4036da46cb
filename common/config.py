"""Typed, validated configuration: one dataclass per component.

Every component (a simulator, a node, later the planner and the trainer) has
one frozen dataclass that holds its settings. Fields are declared with
:func:`setting`, which records a one-line description and the allowed values;
``__post_init__`` checks types and ranges and raises :class:`ConfigError`
with a message that names the component, the field, the bad value and what
was expected.

The same definition serves the CLI (``from_yaml``, and
:func:`add_config_arguments` / :func:`config_from_args`, which make one
``--field-name`` option per field), the tests (plain constructors) and ROS
(``jepa_pilot.nodes.params`` declares one ROS parameter per field, with the
description and range as its descriptor).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = ["Config", "ConfigError", "Setting", "setting", "add_config_arguments", "config_from_args",
           "overrides_from_args"]


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


@dataclasses.dataclass(frozen=True)
class Setting:
    """What a field means and which values it accepts."""

    doc: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    dynamic: bool = False  # may change while a node runs (ROS: not read_only)


def setting(default: Any, doc: str, *, low: float | None = None, high: float | None = None,
            choices: tuple[Any, ...] | None = None, dynamic: bool = False) -> Any:
    """Declare a config field: ``rate_hz: float = setting(10.0, "steps per second", low=1)``."""
    meta = {"setting": Setting(doc, low, high, tuple(choices) if choices else None, dynamic)}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for sequence defaults so configs stay immutable")
    return dataclasses.field(default=default, metadata=meta)


def _optional(annotation: Any) -> bool:
    """float | None -> True; float -> False."""
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and \
        type(None) in typing.get_args(annotation)


def _base_type(annotation: Any) -> type:
    """float | None -> float; tuple[float, ...] -> tuple."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    return origin or annotation


class Config:
    """Mixin for frozen config dataclasses: validation, YAML, introspection.

    Subclasses are ``@dataclasses.dataclass(frozen=True)`` and may extend
    ``__post_init__`` for cross-field checks (call ``super().__post_init__()``
    first and raise via :meth:`_fail`).
    """

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = _base_type(hints[f.name])
            if value is None and not _optional(hints[f.name]):
                self._fail(f.name, value, f"a value is required ({kind.__name__})")
            value = self._coerce(f.name, value, kind)
            object.__setattr__(self, f.name, value)
            spec: Setting | None = f.metadata.get("setting")
            if spec is not None and value is not None:
                self._check_range(f.name, value, spec)

    # --- validation helpers -------------------------------------------------
    def _fail(self, name: str, value: Any, expected: str) -> None:
        raise ConfigError(f"{type(self).__name__}.{name} = {value!r}: {expected}")

    def _coerce(self, name: str, value: Any, kind: type) -> Any:
        if value is None:
            return None
        if kind is bool:
            if not isinstance(value, bool):
                self._fail(name, value, "expected true or false")
            return value
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    return int(value)
                self._fail(name, value, "expected an integer")
            return value
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self._fail(name, value, "expected a number")
            try:
                value = float(value)
            except OverflowError:  # an integer beyond float range (YAML integers are unbounded)
                self._fail(name, value, "expected a finite number")
            if not math.isfinite(value):
                self._fail(name, value, "expected a finite number")
            return value
        if kind is str:
            if not isinstance(value, str):
                self._fail(name, value, "expected a string")
            return value
        if kind is tuple:
            if not isinstance(value, (list, tuple)):
                self._fail(name, value, "expected a list")
            return tuple(value)
        return value

    def _check_range(self, name: str, value: Any, spec: Setting) -> None:
        if spec.choices is not None and value not in spec.choices:
            self._fail(name, value, f"expected one of {', '.join(map(repr, spec.choices))} ({spec.doc})")
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if not isinstance(item, (int, float)) or isinstance(item, bool):
                continue
            if spec.low is not None and item < spec.low or spec.high is not None and item > spec.high:
                lo = "-inf" if spec.low is None else f"{spec.low:g}"
                hi = "inf" if spec.high is None else f"{spec.high:g}"
                self._fail(name, value, f"expected a value in [{lo}, {hi}] ({spec.doc})")

    # --- construction -------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, **overrides: Any):
        """Build from a mapping; unknown keys are an error that lists the known ones."""
        values = dict(data or {})
        values.update(overrides)
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(map(str, set(values) - known))  # YAML keys need not be strings
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown setting(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path, section: str | None = None, **overrides: Any):
        """Load from a YAML file, optionally from one top-level section of it."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{cls.__name__}: config file {path} does not exist") from None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{cls.__name__}: {path} is not valid YAML: {exc}") from None
        if section is not None:
            if not isinstance(data, dict):
                raise ConfigError(f"{cls.__name__}: {path} must hold a mapping with a section {section!r}")
            if section not in data:
                raise ConfigError(f"{cls.__name__}: {path} has no section {section!r}")
            data = data[section]
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__}: {path} must hold a mapping of settings")
        return cls.from_dict(data, **overrides)

    def replace(self, **changes: Any):
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def settings(cls) -> list[tuple[dataclasses.Field, type, Setting]]:
        """(field, base type, Setting) for every declared field, in order."""
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            spec = f.metadata.get("setting") or Setting(doc=f.name)
            out.append((f, _base_type(hints[f.name]), spec))
        return out


# --- command-line options ------------------------------------------------------
def _dest(name: str, prefix: str) -> str:
    return (prefix.replace("-", "_") + name)


def _option(name: str, prefix: str) -> str:
    """``door_start_prob`` -> ``--door-start-prob`` (``prefix`` ``train-``: ``--train-door-start-prob``)."""
    return "--" + prefix + name.replace("_", "-")


def _scalar(text: str) -> Any:
    """One item of a list option: an int, else a float, else the text (as YAML would read it)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _describe(spec: Setting, default: Any, from_elsewhere: str | None) -> str:
    """A setting's help: its doc, the allowed range, the default (``%`` escaped for argparse)."""
    text = spec.doc
    if spec.low is not None and spec.high is not None:
        text += f"; in [{spec.low:g}, {spec.high:g}]"
    elif spec.low is not None:
        text += f"; at least {spec.low:g}"
    elif spec.high is not None:
        text += f"; at most {spec.high:g}"
    shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
    shown = "empty" if shown == "" else shown
    text += f" (default: {from_elsewhere}; built-in {shown})" if from_elsewhere else f" (default: {shown})"
    return text.replace("%", "%%")


def add_config_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type,
                         exclude: tuple[str, ...] = (), prefix: str = "",
                         defaults_from: str | None = None) -> None:
    """Add one ``--field-name`` option per setting of the config dataclass ``cls``.

    Each option gets the field's type (int, float, str; ``--x/--no-x`` for
    bools; a list of values for tuples), its choices, its default and the
    setting's doc as help. Ranges and cross-field rules are left to the
    dataclass: :func:`config_from_args` builds it, and a bad value raises
    its :class:`ConfigError`. ``defaults_from`` (e.g. ``"the recipe's"``):
    the values come from elsewhere and the options only override them, so
    an option not given is left out of the namespace.
    """
    for f, kind, spec in cls.settings():
        if f.name in exclude:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        kwargs: dict[str, Any] = {"dest": _dest(f.name, prefix), "help": _describe(spec, default, defaults_from),
                                  "default": argparse.SUPPRESS if defaults_from else default}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif kind is tuple:
            kwargs.update(nargs="*", type=_scalar, metavar=f.name.upper())
        else:
            kwargs["type"] = kind if kind in (int, float, str) else _scalar
        if spec.choices is not None:
            kwargs["choices"] = spec.choices
        parser.add_argument(_option(f.name, prefix), **kwargs)


def overrides_from_args(cls: type, args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    """The settings of ``cls`` present in ``args`` (options added by :func:`add_config_arguments`)."""
    values = vars(args)
    return {f.name: values[_dest(f.name, prefix)] for f in dataclasses.fields(cls)
            if _dest(f.name, prefix) in values}


def config_from_args(cls: type, args: argparse.Namespace, prefix: str = "", **fixed: Any):
    """Build ``cls`` from parsed options (plus ``fixed`` values); raises its ConfigError on a bad value."""
    return cls.from_dict(overrides_from_args(cls, args, prefix), **fixed)
