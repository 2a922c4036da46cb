"""Exploration drivers: actions for collecting data or exercising a robot, no model needed."""
from __future__ import annotations

import dataclasses

import numpy as np

from jepa_pilot.common.config import Config, setting

__all__ = ["RandomWalkConfig", "MomentumRandomWalk"]


@dataclasses.dataclass(frozen=True)
class RandomWalkConfig(Config):
    momentum: float = setting(0.9, "how much of the previous action is kept each step", low=0.0, high=0.999)
    noise: float = setting(0.5, "std of the Gaussian kick added each step (normalised units)", low=0.0, high=5.0)
    seed: int = setting(0, "random seed")


class MomentumRandomWalk:
    """Smooth random actions in [-1, 1]^A: a_t = clip(m a_{t-1} + sqrt(1 - m^2) sigma eps).

    The sqrt(1 - m^2) factor keeps the stationary spread near sigma whatever
    the momentum, so long straight runs and turns both happen: enough to
    carry a base across a room, unlike white noise that jitters in place.
    """

    def __init__(self, action_dim: int, config: RandomWalkConfig | None = None) -> None:
        self.config = config or RandomWalkConfig()
        self.rng = np.random.default_rng(self.config.seed)
        self.action = np.zeros(action_dim)

    def __call__(self) -> np.ndarray:
        m, sigma = self.config.momentum, self.config.noise
        kick = self.rng.normal(0.0, sigma, self.action.shape)
        self.action = np.clip(m * self.action + np.sqrt(1.0 - m * m) * kick, -1.0, 1.0)
        return self.action.copy()
