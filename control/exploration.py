"""Exploration drivers: actions for collecting data or exercising a robot, no model needed.

Two drivers, both producing normalised actions in [-1, 1]^A:

* :class:`MomentumRandomWalk` - smooth random actions; needs nothing but the
  action dimension (used on real robots, where no true state is known).
* :class:`WaypointExplorer` - alternates random-walk segments with segments
  that seek sampled waypoints using the TRUE state (a simulator's), so data
  also covers places a random walk rarely reaches, e.g. the far side of a
  door. What a waypoint is and how to steer towards it are given as small
  functions: :func:`proportional_steer` (holonomic bases in world-frame
  velocities, arms in joint space); simulated worlds that know their way
  bring their own (``route`` and ``steer`` of the two-rooms and Gymnasium
  envs).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from jepa_pilot.common.config import Config, setting

__all__ = ["RandomWalkConfig", "MomentumRandomWalk", "WaypointConfig", "WaypointExplorer",
           "Route", "Steer", "proportional_steer"]


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

    def __init__(self, action_dim: int, config: RandomWalkConfig | None = None,
                 rng: np.random.Generator | None = None) -> None:
        """``rng``, when given, is used (and shared) instead of one seeded with ``config.seed``."""
        self.config = config or RandomWalkConfig()
        self.rng = np.random.default_rng(self.config.seed) if rng is None else rng
        self.action = np.zeros(action_dim)

    def __call__(self) -> np.ndarray:
        m, sigma = self.config.momentum, self.config.noise
        kick = self.rng.normal(0.0, sigma, self.action.shape)
        self.action = np.clip(m * self.action + np.sqrt(1.0 - m * m) * kick, -1.0, 1.0)
        return self.action.copy()


# A route: (true state, rng) -> the waypoints to visit in order (in position units).
Route = Callable[[np.ndarray, np.random.Generator], Sequence[np.ndarray]]
# A steering law: (true state, waypoint) -> normalised action towards it (may exceed [-1, 1]).
Steer = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class WaypointConfig(Config):
    """How a :class:`WaypointExplorer` alternates random walks and waypoint seeking."""

    seek_prob: float = setting(0.5, "probability that a new segment follows a route (else a random walk)",
                               low=0.0, high=1.0)
    walk_steps_min: int = setting(10, "shortest random-walk segment in steps", low=1)
    walk_steps_max: int = setting(40, "longest random-walk segment in steps", low=1)
    seek_steps_max: int = setting(80, "steps after which an unfinished route is given up", low=1)
    tolerance: float = setting(0.05, "distance at which a waypoint counts as reached "
                               "(position units: m, or rad in joint space)", low=0.0)
    speed_min: float = setting(0.4, "slowest per-route speed limit (normalised, drawn uniformly per route)",
                               low=0.0, high=1.0)
    speed_max: float = setting(1.0, "fastest per-route speed limit (normalised)", low=0.0, high=1.0)
    seek_noise: float = setting(0.15, "std of the Gaussian noise added to each seeking action (normalised)",
                                low=0.0, high=5.0)
    momentum: float = setting(0.9, "random walk: fraction of the previous action kept each step",
                              low=0.0, high=0.999)
    walk_noise: float = setting(0.5, "random walk: std of the kick per step (normalised)", low=0.0, high=5.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.walk_steps_max < self.walk_steps_min:
            self._fail("walk_steps_max", self.walk_steps_max, f"expected >= walk_steps_min = {self.walk_steps_min}")
        if self.speed_max < self.speed_min:
            self._fail("speed_max", self.speed_max, f"expected >= speed_min = {self.speed_min:g}")


class WaypointExplorer:
    """Random-walk segments mixed with noisy waypoint seeking on the true state.

    Each episode is a chain of segments. With probability ``seek_prob`` a
    segment asks ``route(state, rng)`` for waypoints (e.g. a random goal,
    via a door when it lies in the other room) and steers to each in turn
    with ``steer(state, waypoint)``, at a speed limit drawn per route and
    with Gaussian action noise, until the last one is within ``tolerance``
    of ``position(state)`` or ``seek_steps_max`` steps have passed.
    Otherwise it runs a :class:`MomentumRandomWalk` for a random number of
    steps; the walk continues from the last action, so actions stay smooth
    across the switch. All randomness comes from ``rng``: the same rng seed
    and states give the same actions.
    """

    def __init__(self, action_dim: int, route: Route, steer: Steer,
                 position: Callable[[np.ndarray], np.ndarray], config: WaypointConfig | None = None,
                 rng: np.random.Generator | None = None) -> None:
        self.config = config or WaypointConfig()
        self.rng = np.random.default_rng() if rng is None else rng
        self.route, self.steer, self.position = route, steer, position
        walk = RandomWalkConfig(momentum=self.config.momentum, noise=self.config.walk_noise)
        self.walk = MomentumRandomWalk(action_dim, walk, rng=self.rng)
        self.reset()

    def reset(self) -> None:
        """Forget the current segment and action (call at the start of an episode)."""
        self.waypoints: list[np.ndarray] = []
        self.seeking = False
        self._left = 0
        self._speed = 1.0
        self.walk.action[:] = 0.0

    def __call__(self, state: np.ndarray) -> np.ndarray:
        """The normalised action for the true ``state``."""
        state = np.asarray(state, dtype=np.float64)
        if self.seeking:
            self._drop_reached(state)
        if self._left <= 0 or (self.seeking and not self.waypoints):
            self._start_segment(state)
        self._left -= 1
        if not self.seeking:
            return self.walk()
        action = np.asarray(self.steer(state, self.waypoints[0]), dtype=np.float64)
        peak = np.abs(action).max()
        if peak > self._speed:
            action = action * (self._speed / peak)
        action = action + self.rng.normal(0.0, self.config.seek_noise, action.shape)
        self.walk.action = np.clip(action, -1.0, 1.0)
        return self.walk.action.copy()

    def _drop_reached(self, state: np.ndarray) -> None:
        here = np.asarray(self.position(state), dtype=np.float64)
        while self.waypoints and np.linalg.norm(here - self.waypoints[0]) <= self.config.tolerance:
            self.waypoints.pop(0)

    def _start_segment(self, state: np.ndarray) -> None:
        cfg = self.config
        self.seeking = bool(self.rng.random() < cfg.seek_prob)
        if self.seeking:
            self.waypoints = [np.asarray(w, dtype=np.float64) for w in self.route(state, self.rng)]
            self._drop_reached(state)
            self.seeking = bool(self.waypoints)
            self._speed = float(self.rng.uniform(cfg.speed_min, cfg.speed_max))
            self._left = cfg.seek_steps_max
        if not self.seeking:
            self.waypoints = []
            self._left = int(self.rng.integers(cfg.walk_steps_min, cfg.walk_steps_max + 1))


def proportional_steer(scale: Sequence[float], gain: float = 2.0, first: int = 0) -> Steer:
    """P-control of ``state[first:first + A]`` (positions, m or rad) with velocity actions.

    Action i = ``gain * (target_i - state_i) / scale_i``: the velocity (units
    per second) that closes the error in ``1 / gain`` s, normalised by the
    velocity ``scale_i`` of action 1.0. Fits a holonomic base commanded in
    world-frame (vx, vy) with state (x, y, ...), and an arm commanded in joint
    velocities with state (q_1..q_A, ...).
    """
    scale = np.asarray(scale, dtype=np.float64)

    def steer(state: np.ndarray, target: np.ndarray) -> np.ndarray:
        return gain * (np.asarray(target) - state[first:first + len(scale)]) / scale

    return steer
