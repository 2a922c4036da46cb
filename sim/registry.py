"""Names for the built-in environments: ``make("two_rooms", image_width=128)``."""
from __future__ import annotations

import dataclasses
from typing import Any

from jepa_pilot.common.config import ConfigError
from jepa_pilot.sim.base import EnvConfig, MujocoEnv
from jepa_pilot.sim.gym_env import GYM_PREFIX, GymConfig, GYM_OPTIONS, gym_only_problem, is_gym, make_gym

__all__ = ["config_class", "default_config", "make", "register", "registered"]


@dataclasses.dataclass(frozen=True)
class _Entry:
    env_class: type[MujocoEnv]
    config_class: type[EnvConfig]
    defaults: dict[str, Any]


_REGISTRY: dict[str, _Entry] = {}


def register(name: str, env_cls: type[MujocoEnv], config_cls: type[EnvConfig], **defaults: Any) -> None:
    """Make ``env_cls`` available as ``name``; ``defaults`` override the config's own defaults."""
    if name in _REGISTRY:
        raise ValueError(f"environment {name!r} is already registered")
    if not issubclass(config_cls, env_cls.config_class):
        raise TypeError(f"{env_cls.__name__} needs a {env_cls.config_class.__name__}, "
                        f"not {config_cls.__name__}")
    config_cls.from_dict(defaults)  # fail now, not at make(), on bad defaults
    _REGISTRY[name] = _Entry(env_cls, config_cls, dict(defaults))


def registered() -> list[str]:
    """The registered environment names, sorted."""
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown environment {name!r}; registered: {', '.join(registered())}, "
                         f"or gym:ENV_ID for a Gymnasium env") from None


def config_class(name: str) -> type[EnvConfig]:
    """The config dataclass of environment ``name``."""
    return GymConfig if is_gym(name) else _entry(name).config_class


def default_config(name: str, **overrides: Any) -> EnvConfig:
    """The config ``make(name, **overrides)`` would use (registered defaults, then overrides)."""
    if is_gym(name):
        return GymConfig.from_dict({"env_id": name[len(GYM_PREFIX):]}, **overrides)
    entry = _entry(name)
    return entry.config_class.from_dict(entry.defaults, **overrides)


def make(name: str, config: EnvConfig | None = None, **overrides: Any) -> MujocoEnv:
    """Build environment ``name``: a registered one, or ``gym:ENV_ID`` for a Gymnasium env
    (:mod:`jepa_pilot.sim.gym_env`; overrides are ``GymConfig`` fields then).

    Without ``config`` it uses the registered defaults; a given ``config``
    replaces them. ``overrides`` change single fields on top; a bad value or
    an unknown field raises ConfigError.
    """
    if is_gym(name):
        return make_gym(name, config, **overrides)
    option, why_not = gym_only_problem(name, **{k: overrides.pop(k) for k in GYM_OPTIONS if k in overrides})
    if why_not:
        raise ConfigError(f"{option}: {why_not}")
    entry = _entry(name)
    if config is None:
        config = default_config(name, **overrides)
    elif not isinstance(config, entry.config_class):
        raise ConfigError(f"environment {name!r} needs a {entry.config_class.__name__}, "
                          f"got {type(config).__name__}")
    elif overrides:
        config = entry.config_class.from_dict(config.to_dict(), **overrides)
    return entry.env_class(config)
