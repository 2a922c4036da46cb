"""The planner's safety logic, without ROS: when to plan, when to stop, and why.

A :class:`Supervisor` watches the inputs of a latent planner (the goal, the
newest latent and its age, the e-stop, how long planning took) and answers,
at each new latent, after each plan and at each watchdog tick, with a
:class:`Decision`: the status to report (the ``PlanStatus.STATUS_*``
values), a human-readable reason, whether to run the planner, and whether
the robot must be held at zero.

Rules, in order of precedence:

1. **E-stop** engaged: stop (STOPPED) until it is released; no planning.
1b. **Exploring** (an exploration lease held, e.g. by the online learner
   after the world changed): EXPLORING, random actions instead of plans,
   as long as the newest latent is fresh (rule 4 applies); the goal is kept
   and pursued again when the lease ends. The lease lasts
   ``explore_lease`` wall seconds after the last renewal, so a requester
   that dies cannot leave the robot exploring.
2. **No goal**: IDLE; nothing is commanded (the command topic stays free).
3. **Goal reached** (latent distance to the goal < ``goal_tolerance``):
   stop (REACHED). Latched until a new goal is set.
4. **Stale data**: the newest latent is older than ``max_latent_age``, on
   the robot's clock (now - header stamp) or on the wall clock (time since
   it arrived; catches a simulator whose clock stopped), or it carries a
   stamp in the future (clock mismatch): stop (STOPPED). Resumes with the
   next fresh latent.
5. **Overrun**: a plan that took longer than ``max_plan_time`` is not
   executed (its first action is already late): stop (STOPPED) until a plan
   finishes in time.
6. Otherwise PLANNING: execute the plan's first action.

Each decision carries a typed :class:`Cause` (ESTOP, NO_GOAL, REACHED,
NO_LATENT, STALE, FUTURE_STAMP, OVERRUN, PLANNING, EXPLORING) next to its reason text,
so callers branch on the cause, never on the wording of the reason.
"""
from __future__ import annotations

import dataclasses
import enum

import numpy as np

from jepa_pilot.common.config import Config, setting

__all__ = ["Status", "Cause", "SupervisorConfig", "Decision", "Supervisor"]


class Status(enum.IntEnum):
    """Same values as jepa_pilot/msg/PlanStatus STATUS_*."""

    IDLE = 0
    PLANNING = 1
    REACHED = 2
    STOPPED = 3
    EXPLORING = 4


class Cause(enum.Enum):
    """Why a decision was taken (the reason text says it for people)."""

    PLANNING = "planning"          # driving on plans in time
    NO_GOAL = "no_goal"            # IDLE
    REACHED = "reached"            # the goal latent is within goal_tolerance
    ESTOP = "estop"                # the e-stop is engaged
    NO_LATENT = "no_latent"        # a goal but no latent received yet
    STALE = "stale"                # the newest latent is too old (robot or wall clock)
    FUTURE_STAMP = "future_stamp"  # the newest latent is stamped in the future (clock mismatch)
    OVERRUN = "overrun"            # the last plan took longer than max_plan_time
    EXPLORING = "exploring"        # random actions under an exploration lease


@dataclasses.dataclass(frozen=True)
class SupervisorConfig(Config):
    goal_tolerance: float = setting(2.0, "latent distance to the goal latent that counts as reached",
                                    low=0.0, high=1e6, dynamic=True)
    max_latent_age: float = setting(0.3, "s: stop when the newest latent is older (robot clock or wall clock)",
                                    low=0.01, high=60.0, dynamic=True)
    max_plan_time: float = setting(0.3, "s: a plan that took longer is not executed and the robot stops",
                                   low=0.001, high=60.0, dynamic=True)
    explore_lease: float = setting(3.0, "s (wall): an exploration request lasts this long unless renewed",
                                   low=0.1, high=60.0)


@dataclasses.dataclass(frozen=True)
class Decision:
    status: Status
    cause: Cause
    reason: str = ""
    plan: bool = False        # run the planner on the newest latent
    hold: bool = False        # command zero (the robot must not move)
    goal_distance: float = float("nan")

    @property
    def drive(self) -> bool:
        """Execute the plan's first action."""
        return self.status == Status.PLANNING and not self.hold


class Supervisor:
    """Decides what a latent planner does; all times in seconds, passed in (no clock inside)."""

    def __init__(self, config: SupervisorConfig | None = None) -> None:
        self.config = config or SupervisorConfig()
        self.goal: np.ndarray | None = None
        self.goal_stamp = 0.0
        self.goal_version = 0             # incremented by every set_goal / clear_goal
        self.estop = False
        self.reached = False
        self.overrun = ""                 # reason of the last plan that overran, until one is in time
        self.latent_stamp: float | None = None   # header stamp of the newest latent (robot clock)
        self.latent_wall: float | None = None    # wall time it arrived
        self.last_distance = float("nan")          # latent distance to the goal of the newest latent
        self.reached_reason = ""
        self.explore_until = -float("inf")        # wall time the exploration lease ends

    # --- inputs -------------------------------------------------------------------
    def set_goal(self, goal: np.ndarray, stamp: float = 0.0) -> str:
        """Pursue ``goal`` (its source image stamped ``stamp``; 0: unstamped). Returns '' when taken,
        else why not: a goal stamped before the current one is ignored (a latched goal re-sent by a
        restarted encoder must not replace a newer one), and the current goal sent again changes nothing."""
        goal = np.asarray(goal, dtype=np.float64).ravel()
        if self.goal is not None and stamp and self.goal_stamp:
            if stamp < self.goal_stamp:
                return f"goal stamped {stamp:.3f} is older than the current goal ({self.goal_stamp:.3f}): ignored"
            if stamp == self.goal_stamp and goal.shape == self.goal.shape and np.allclose(goal, self.goal):
                return "the current goal again: nothing changes"
        self.goal, self.goal_stamp = goal, float(stamp)
        self.goal_version += 1
        self.reached, self.overrun, self.last_distance = False, "", float("nan")
        return ""

    def clear_goal(self) -> None:
        self.goal, self.goal_stamp, self.reached, self.overrun = None, 0.0, False, ""
        self.goal_version += 1

    def set_estop(self, engaged: bool) -> None:
        self.estop = bool(engaged)

    def set_explore(self, on: bool, wall_now: float) -> None:
        """Take or renew (``on``) the exploration lease until ``wall_now + explore_lease``, or end it."""
        self.explore_until = wall_now + self.config.explore_lease if on else -float("inf")

    def exploring(self, wall_now: float | None) -> bool:
        return wall_now is not None and wall_now < self.explore_until

    def distance(self, z: np.ndarray) -> float:
        if self.goal is None:
            return float("nan")
        return float(np.linalg.norm(np.asarray(z, dtype=np.float64).ravel() - self.goal))

    # --- decisions ----------------------------------------------------------------
    def on_latent(self, z: np.ndarray, stamp: float, now: float | None, wall_now: float) -> Decision:
        """A new latent with header stamp ``stamp`` arrived at robot time ``now`` (None: clock not
        running yet) and wall time ``wall_now``: plan on it, or hold?"""
        self.latent_stamp, self.latent_wall = stamp, wall_now
        distance = self.last_distance = self.distance(z)
        if self.estop:
            return self._stop(Cause.ESTOP, "e-stop engaged", distance)
        if self.exploring(wall_now):
            cause, stale = self._age_problem(now, None)
            if cause is not None:
                return self._stop(cause, stale, distance)
            return Decision(Status.EXPLORING, Cause.EXPLORING, "random actions for the online learner",
                            goal_distance=distance)
        if self.goal is None:
            return Decision(Status.IDLE, Cause.NO_GOAL, "no goal", goal_distance=distance)
        if not self.reached and distance < self.config.goal_tolerance:
            self.reached = True
            self.reached_reason = (f"goal reached: latent distance {distance:.3g} < goal_tolerance "
                                   f"{self.config.goal_tolerance:g}")
        if self.reached:
            return Decision(Status.REACHED, Cause.REACHED, self.reached_reason, hold=True, goal_distance=distance)
        cause, stale = self._age_problem(now, None)
        if cause is not None:
            return self._stop(cause, stale, distance)
        return Decision(Status.PLANNING, Cause.PLANNING, plan=True, goal_distance=distance)

    def on_plan(self, planning_time: float, goal_version: int, now: float | None = None,
                wall_now: float | None = None, goal_distance: float = float("nan")) -> Decision | None:
        """A plan for goal ``goal_version`` took ``planning_time`` and is ready at ``now`` /
        ``wall_now``: execute it? None: the goal changed (or was cleared) while planning, drop it.
        A plan whose latent has become older than ``max_latent_age`` meanwhile is not executed."""
        if goal_version != self.goal_version or self.goal is None or self.exploring(wall_now):
            return None
        if self.estop:
            return self._stop(Cause.ESTOP, "e-stop engaged", goal_distance)
        if planning_time > self.config.max_plan_time:
            self.overrun = (f"planning took {planning_time:.3f} s > max_plan_time "
                            f"{self.config.max_plan_time:g} s")
            return self._stop(Cause.OVERRUN, self.overrun, goal_distance)
        self.overrun = ""
        cause, stale = self._age_problem(now, wall_now)
        if cause is not None:
            return self._stop(cause, stale, goal_distance)
        return Decision(Status.PLANNING, Cause.PLANNING, goal_distance=goal_distance)

    def watchdog(self, now: float | None, wall_now: float) -> Decision | None:
        """Periodic check between latents. A Decision means "hold the robot at zero now"; None:
        nothing to do (idle, or driving on fresh plans)."""
        distance = self.last_distance if self.goal is not None else float("nan")
        if self.estop:
            return self._stop(Cause.ESTOP, "e-stop engaged", distance)
        if self.exploring(wall_now):
            cause, stale = self._age_problem(now, wall_now)
            return None if cause is None else self._stop(cause, stale, distance)
        if self.goal is None:
            return None
        if self.reached:
            return Decision(Status.REACHED, Cause.REACHED, self.reached_reason, hold=True, goal_distance=distance)
        cause, stale = self._age_problem(now, wall_now)
        if cause is not None:
            return self._stop(cause, stale, distance)
        if self.overrun:
            return self._stop(Cause.OVERRUN, self.overrun, distance)
        return None

    @staticmethod
    def _stop(cause: Cause, reason: str, distance: float) -> Decision:
        """Hold the robot at zero: STOPPED because of ``cause``."""
        return Decision(Status.STOPPED, cause, reason, hold=True, goal_distance=distance)

    def _age_problem(self, now: float | None, wall_now: float | None) -> tuple[Cause | None, str]:
        """Why the newest latent is too old to act on: (cause, reason), or (None, '')."""
        limit = self.config.max_latent_age
        if self.latent_stamp is None:
            return Cause.NO_LATENT, "no latent received yet"
        if wall_now is not None and wall_now - self.latent_wall > limit:
            return Cause.STALE, f"no latent for {wall_now - self.latent_wall:.2f} s (max_latent_age {limit:g} s)"
        if now is not None:
            age = now - self.latent_stamp
            if age > limit:
                return Cause.STALE, f"newest latent is {age:.2f} s old (max_latent_age {limit:g} s)"
            if -age > limit:
                return Cause.FUTURE_STAMP, (f"newest latent is stamped {-age:.2f} s in the future: do the camera "
                                            f"and the planner use the same clock (use_sim_time)?")
        return None, ""
