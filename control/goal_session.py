"""One goal of the ReachGoal action, without ROS: what to report, and when and how the goal ends.

A :class:`GoalSession` follows one goal from the moment the goal node sets it
until it ends. The node feeds it what the graph says (the planner's
``/jepa/plan`` statuses, ``/jepa/surprise``, ``/jepa/estop``) and what the
action client asks (cancel), and ticks it with the clocks; the session
answers with the feedback values and, once, with an :class:`End`: the
outcome (reached, aborted, canceled), a typed cause, a reason for people,
and whether the node must drop the planner's goal (a zero command) before it
reports the end.

A plan status belongs to this goal when its ``goal_header`` stamp is the
goal's stamp (the node stamps each goal image with a stamp of its own).

How a goal ends, first ending wins:

* **reached**: the planner says REACHED for this goal. The planner holds the
  robot at zero (REACHED is latched), so its goal is left in place.
* **preempted** (aborted): a new action goal arrived; the new goal replaces
  this one on the planner, so nothing is cleared.
* **canceled**: the client canceled it: the planner's goal is dropped (the
  robot stops), then the goal ends canceled.
* **e-stop** (aborted): ``/jepa/estop`` was engaged during the goal, or
  already when it started. Always ends the goal, at once: the goal is dropped
  so that releasing the e-stop does not send the robot on to an abandoned goal.
* **timeout** (aborted): ``timeout`` seconds on the robot's clock passed
  (0: none). A clock that jumps back (a simulator reset that restarts it)
  does not give the goal its time again.
* **stopped** (aborted): the planner held the robot (STOPPED: stale latents,
  the watchdog, plans over time, no latent yet) without driving again for
  more than ``max_stop_time`` seconds, on the robot's clock or the wall clock
  (a simulator that died stops its clock). A short stop that resumes is
  ridden through. The reason carries the planner's.
* **silent** (aborted): no status from the planner naming this goal for
  ``status_timeout`` wall seconds: it never took the goal (not running, or a
  newer goal set outside the action made it ignore this one) or it died.
* **replaced** / **cleared** (aborted): after it took this goal, the planner
  reports another goal (set on ``/jepa/goal_image`` or ``/encoder/set_goal``
  outside the action) or none (someone called ``/planner/clear_goal``, or it
  restarted). The robot is left to whoever set that.
* **failed** (aborted): the node could not set the goal (the encoder refused
  the image, a service did not answer); the planner's goal is dropped.

Every aborted or canceled ending except preempted, replaced and cleared
drops the planner's goal: the robot is left stopped.
"""
from __future__ import annotations

import dataclasses
import enum
import math

from jepa_pilot.common.config import Config, setting
from jepa_pilot.control.supervisor import Status

__all__ = ["Outcome", "Cause", "End", "Feedback", "GoalSessionConfig", "GoalSession", "goal_problem"]


class Outcome(enum.Enum):
    """The action's terminal state."""

    REACHED = "reached"      # succeeded
    ABORTED = "aborted"
    CANCELED = "canceled"


class Cause(enum.Enum):
    """Why the goal ended (the reason text says it for people)."""

    REACHED = "reached"
    PREEMPTED = "preempted"
    CANCELED = "canceled"
    ESTOP = "estop"
    TIMEOUT = "timeout"
    STOPPED = "stopped"
    SILENT = "silent"
    REPLACED = "replaced"
    CLEARED = "cleared"
    FAILED = "failed"


# Endings after which the planner's goal is left alone: it holds REACHED, or belongs to someone else.
_KEEP_PLANNER_GOAL = {Cause.REACHED, Cause.PREEMPTED, Cause.REPLACED, Cause.CLEARED}


@dataclasses.dataclass(frozen=True)
class End:
    outcome: Outcome
    cause: Cause
    reason: str

    @property
    def clear_planner(self) -> bool:
        """Drop the planner's goal (a zero command, then IDLE) before reporting the end."""
        return self.cause not in _KEEP_PLANNER_GOAL

    @property
    def reached(self) -> bool:
        return self.outcome == Outcome.REACHED


@dataclasses.dataclass(frozen=True)
class Feedback:
    status: int              # the planner's status for this goal (Status values; IDLE until it takes it)
    goal_distance: float     # the latest latent distance to the goal (NaN: none yet)
    surprise: float          # the latest surprise during this goal (NaN: none yet)
    elapsed: float           # s on the robot's clock since the goal started


@dataclasses.dataclass(frozen=True)
class GoalSessionConfig(Config):
    max_stop_time: float = setting(5.0, "s: abort a goal when the planner holds the robot (STOPPED, not e-stop) "
                                        "this long without driving again (robot clock or wall clock)",
                                   low=0.0, high=3600.0, dynamic=True)
    status_timeout: float = setting(10.0, "wall s without a planner status for the goal before it is aborted "
                                          "(the planner did not take it, or died)",
                                    low=0.1, high=3600.0, dynamic=True)


def goal_problem(timeout: float, tolerance: float) -> str:
    """Why a goal's numbers are unusable ('' when they are fine)."""
    for name, value in (("timeout", timeout), ("tolerance", tolerance)):
        if not math.isfinite(value) or value < 0.0:
            return f"{name} = {value!r}: expected a finite number >= 0 (0: {_ZERO_MEANS[name]})"
    return ""


_ZERO_MEANS = {"timeout": "no timeout", "tolerance": "the planner's goal_tolerance"}


class GoalSession:
    """One goal, from when it is set (robot time ``now``, wall time ``wall``) to its end."""

    def __init__(self, goal_stamp: float, timeout: float, config: GoalSessionConfig, now: float, wall: float,
                 estop: bool = False) -> None:
        self.goal_stamp, self.timeout, self.config = float(goal_stamp), float(timeout), config
        self.start, self.last_now, self.last_heard = now, now, wall
        self.taken = False                      # the planner reported this goal at least once
        self.status = int(Status.IDLE)
        self.goal_distance = self.surprise = math.nan
        self.stopped_since: tuple[float, float] | None = None   # (robot, wall) time the current stop began
        self.stop_reason = ""
        self.ended: End | None = None
        if estop:
            self.on_estop(True)

    # --- what happens -------------------------------------------------------------------
    def on_plan(self, status: int, reason: str, goal_stamp: float, goal_distance: float, now: float,
                wall: float) -> None:
        """A /jepa/plan status: ``goal_stamp`` is its goal_header stamp (0: no goal)."""
        if self.ended:
            return
        now = self._clock(now)
        if goal_stamp != self.goal_stamp:
            if not self.taken:
                return  # plans for the previous goal, still in flight; or the planner has not taken it yet
            if status == Status.IDLE or not goal_stamp:
                self._end(Outcome.ABORTED, Cause.CLEARED, "the planner dropped the goal (cleared outside the "
                                                          "action, or restarted)")
            elif goal_stamp > self.goal_stamp:
                self._end(Outcome.ABORTED, Cause.REPLACED, f"replaced by a goal set outside the action "
                                                           f"(stamp {goal_stamp:.3f})")
            return
        self.taken, self.last_heard, self.status = True, wall, int(status)
        if math.isfinite(goal_distance):
            self.goal_distance = float(goal_distance)
        if status == Status.REACHED:
            self._end(Outcome.REACHED, Cause.REACHED, reason or "goal reached")
        elif status == Status.STOPPED:
            if self.stopped_since is None:
                self.stopped_since = (now, wall)
            self.stop_reason = reason or self.stop_reason
        else:
            self.stopped_since = None

    def on_surprise(self, distance: float) -> None:
        if not self.ended and math.isfinite(distance):
            self.surprise = float(distance)

    def on_estop(self, engaged: bool) -> None:
        if engaged:
            self._end(Outcome.ABORTED, Cause.ESTOP, "e-stop engaged: goal abandoned, robot left stopped")

    def preempt(self) -> None:
        self._end(Outcome.ABORTED, Cause.PREEMPTED, "preempted by a new goal")

    def cancel(self) -> None:
        self._end(Outcome.CANCELED, Cause.CANCELED, "canceled: robot stopped")

    def fail(self, reason: str) -> None:
        self._end(Outcome.ABORTED, Cause.FAILED, reason)

    # --- the clocks ---------------------------------------------------------------------
    def tick(self, now: float, wall: float) -> End | None:
        """The ending, if the goal has ended (by now); else None."""
        if self.ended:
            return self.ended
        now, cfg = self._clock(now), self.config
        if self.timeout > 0.0 and now - self.start >= self.timeout:
            self._end(Outcome.ABORTED, Cause.TIMEOUT, f"timeout: not reached within {self.timeout:g} s")
        elif self.stopped_since is not None and max(now - self.stopped_since[0],
                                                    wall - self.stopped_since[1]) > cfg.max_stop_time:
            self._end(Outcome.ABORTED, Cause.STOPPED, f"stopped for more than {cfg.max_stop_time:g} s: "
                                                      f"{self.stop_reason or 'the planner holds the robot'}")
        elif wall - self.last_heard > cfg.status_timeout:
            self._end(Outcome.ABORTED, Cause.SILENT,
                      f"no status from the planner for this goal for {cfg.status_timeout:g} s" if self.taken else
                      f"the planner did not take the goal within {cfg.status_timeout:g} s (is it running? a newer "
                      f"goal set outside the action makes it ignore this one)")
        return self.ended

    def feedback(self, now: float) -> Feedback:
        return Feedback(self.status, self.goal_distance, self.surprise, self.elapsed(now))

    def elapsed(self, now: float) -> float:
        return max(0.0, self._clock(now) - self.start)

    def _clock(self, now: float) -> float:
        """The robot's clock went back (a simulator reset that restarts it): count on from where it was."""
        if now < self.last_now:
            jump = now - self.last_now
            self.start += jump
            if self.stopped_since is not None:
                self.stopped_since = (self.stopped_since[0] + jump, self.stopped_since[1])
        self.last_now = now
        return now

    def _end(self, outcome: Outcome, cause: Cause, reason: str) -> None:
        if self.ended is None:
            self.ended = End(outcome, cause, reason)
