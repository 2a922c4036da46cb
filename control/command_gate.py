"""The last line before the motors: validate commands, hold them, time them out.

A :class:`CommandGate` receives physical commands from outside (a planner, a
teleop, a test), rejects the broken ones with a reason (non-finite values,
wrong size, wrong frame, stale or future stamps), clamps values beyond the
robot's limits, and answers "what should the robot do now?" with the last
good command, or zero once no good command has arrived for ``timeout``
seconds (like ros2_control's diff_drive_controller ``cmd_vel_timeout``).
"""
from __future__ import annotations

import collections
import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np

from jepa_pilot.common.config import Config, setting
from jepa_pilot.control.action_space import TWIST_FIELDS, ActionSpace

__all__ = ["CommandGate", "CommandGateConfig", "Verdict"]


@dataclasses.dataclass(frozen=True)
class CommandGateConfig(Config):
    timeout: float = setting(0.5, "s without a valid command before the robot is stopped",
                             low=0.01, high=60.0, dynamic=True)
    max_age: float = setting(0.5, "s: stamped commands older than this are dropped as stale",
                             low=0.0, high=60.0, dynamic=True)
    max_future: float = setting(0.2, "s: stamps further ahead of our clock are dropped (clock mismatch)",
                                low=0.0, high=60.0, dynamic=True)
    frame_id: str = setting("base_link", "required frame_id of stamped commands; '' accepts any")
    tolerance: float = setting(1e-6, "relative excess over a limit that is not reported", low=0.0, high=0.1)


@dataclasses.dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str = ""        # why it was dropped or changed; empty when taken as is
    clamped: bool = False


class CommandGate:
    """Validates physical commands for one :class:`ActionSpace`; holds the last good one."""

    def __init__(self, space: ActionSpace, config: CommandGateConfig | None = None) -> None:
        self.space = space
        self.config = config or CommandGateConfig()
        self.counts: collections.Counter[str] = collections.Counter()
        self._action = np.zeros(space.dim)
        self._last_time: float | None = None

    def submit(self, command: Mapping[str, float] | Sequence[float], now: float,
               stamp: float | None = None, frame_id: str | None = None) -> Verdict:
        """Offer one command received at time ``now`` (seconds on the robot's clock).

        ``command`` is a mapping of twist fields (``"linear.x"``...) for a base,
        or a sequence of joint velocities in action order for an arm. ``stamp``
        and ``frame_id`` come from the message header when it has one; a zero
        stamp means "not stamped" and skips the age check.
        """
        verdict = self._check(command, now, stamp, frame_id)
        self.counts["accepted" if verdict.accepted else "dropped"] += 1
        self.counts["clamped"] += verdict.clamped
        return verdict

    def _check(self, command, now, stamp, frame_id) -> Verdict:
        values, problem = self._values(command)
        if problem:
            return Verdict(False, problem)
        cfg = self.config
        if frame_id is not None and cfg.frame_id and frame_id not in ("", cfg.frame_id):
            return Verdict(False, f"frame_id {frame_id!r} is not {cfg.frame_id!r}")
        if stamp is not None and not math.isfinite(stamp):  # NaN would pass both age checks below
            return Verdict(False, f"non-finite stamp {stamp}")
        if stamp:  # 0 / None: unstamped
            age = now - stamp
            if age > cfg.max_age:
                return Verdict(False, f"stale: stamp is {age:.3f} s old (max_age {cfg.max_age:g} s)")
            if -age > cfg.max_future:
                return Verdict(False, f"stamp is {-age:.3f} s in the future: does the sender use "
                                      f"the same clock (use_sim_time)?")
        over = self.space.beyond_limits(values, cfg.tolerance)
        self._action = self.space.to_normalised(values)
        self._last_time = now
        if over.any():
            names = ", ".join(f"{f}={v:g} (limit {s:g})" for f, v, s, o in
                              zip(self.space.fields, values, self.space.scale, over) if o)
            return Verdict(True, f"clamped to limits: {names}", clamped=True)
        return Verdict(True)

    def _values(self, command) -> tuple[np.ndarray, str]:
        """The command's values for the action dimensions, or a reason to drop it."""
        if isinstance(command, Mapping):
            if not self.space.is_twist:
                return np.empty(0), "a twist was sent to a robot that takes joint velocities"
            bad = [k for k in TWIST_FIELDS if not math.isfinite(float(command.get(k, 0.0)))]
            if bad:
                return np.empty(0), f"non-finite value in {', '.join(bad)}"
            return np.array([float(command.get(f, 0.0)) for f in self.space.fields]), ""
        values = np.asarray(command, dtype=np.float64).ravel()
        if values.shape != (self.space.dim,):
            return values, f"expected {self.space.dim} values ({', '.join(self.space.fields)}), got {values.size}"
        if not np.isfinite(values).all():
            return values, "non-finite value in command"
        return values, ""

    def action(self, now: float) -> np.ndarray:
        """The normalised action to apply at ``now``: the last good command, or zero after the timeout."""
        if self.timed_out(now):
            return np.zeros(self.space.dim)
        return self._action.copy()

    def timed_out(self, now: float) -> bool:
        return self._last_time is None or now - self._last_time > self.config.timeout

    def reset(self) -> None:
        """Forget the held command (e.g. after the robot was reset)."""
        self._action[:] = 0.0
        self._last_time = None
