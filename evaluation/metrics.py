"""What counts as reaching a goal: one definition for every policy, path and env.

An episode **succeeds** when the robot's true task position (``env.goal_distance``:
the base's (x, y), an arm's fingertip) comes within ``success_radius`` of the
goal's at any control step within the budget. The episode ends there, or when
the budget runs out. Whether the planner itself said REACHED is recorded
beside it, not mixed into it.

The direct loop (:func:`jepa_pilot.evaluation.closed_loop.run_episode`) and
the ROS-graph harness (:mod:`jepa_pilot.evaluation.rosgraph`) both feed a
:class:`GoalTracker` with (step, true state) and read the same
:class:`EpisodeRecord`; :func:`summarize` turns records into the per-policy
numbers `jepa-pilot eval`, the demo and the benchmarks report.
"""
from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["EpisodeRecord", "GoalTracker", "summarize"]


@dataclasses.dataclass
class EpisodeRecord:
    """One episode, as every path reports it (distances in metres, times in simulated seconds)."""

    success: bool                  # true distance < success_radius at some step within the budget
    steps_to_goal: int | None      # control steps from the goal being set to the first such step
    time_to_goal: float | None     # the same in simulated seconds (steps x control period)
    final_distance: float          # true distance when the episode ended
    closest_distance: float        # smallest true distance seen in the episode
    steps: int                     # control steps the episode ran
    planner_reached: bool = False  # the planner said REACHED (latent distance < goal_tolerance)
    decision_ms: float = float("nan")  # median time the policy took to choose an action from its input
    start: list = dataclasses.field(default_factory=list)
    goal: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)  # e.g. reasons the planner stopped the robot

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class GoalTracker:
    """Watches the true state of one episode and applies the success definition.

    ``observe(step, state)`` for each control step after the goal was set
    (step 1 is the state after the first action); returns True once the
    episode is over (success, or ``max_steps`` reached).
    """

    def __init__(self, env, start, goal, success_radius: float, max_steps: int, control_period: float) -> None:
        self.env, self.goal = env, np.asarray(goal, dtype=np.float64)
        self.start = np.asarray(start, dtype=np.float64)
        self.radius, self.max_steps, self.period = success_radius, max_steps, control_period
        self.distance = self.closest = env.goal_distance(self.start, self.goal)
        self.steps, self.reached_at = 0, None

    @property
    def done(self) -> bool:
        return self.reached_at is not None or self.steps >= self.max_steps

    def observe(self, step: int, state) -> bool:
        """The true state after ``step`` control steps; steps past the budget are ignored."""
        if self.done or step > self.max_steps:
            return self.done
        self.steps = max(self.steps, step)
        self.distance = self.env.goal_distance(np.asarray(state, dtype=np.float64), self.goal)
        self.closest = min(self.closest, self.distance)
        if self.distance < self.radius:
            self.reached_at = step
        return self.done

    def record(self, planner_reached: bool = False, decision_times: list[float] = (), notes=()) -> EpisodeRecord:
        ok = self.reached_at is not None
        return EpisodeRecord(
            success=ok, steps_to_goal=self.reached_at, time_to_goal=self.reached_at * self.period if ok else None,
            final_distance=float(self.distance), closest_distance=float(self.closest), steps=self.steps,
            planner_reached=bool(planner_reached),
            decision_ms=float(np.median(decision_times) * 1e3) if len(decision_times) else float("nan"),
            start=self.start.tolist(), goal=self.goal.tolist(), notes=sorted(set(notes)))


def _median(values) -> float | None:
    values = [v for v in values if v is not None and v == v]
    return float(np.median(values)) if values else None


def summarize(records: list[EpisodeRecord]) -> dict:
    """Per-policy numbers: the same keys for every policy and path."""
    ok = [r for r in records if r.success]
    return {
        "episodes": len(records),
        "success_rate": len(ok) / len(records) if records else float("nan"),
        "steps_to_goal_median": _median([r.steps_to_goal for r in ok]),
        "time_to_goal_median_s": _median([r.time_to_goal for r in ok]),
        "decision_ms_median": _median([r.decision_ms for r in records]),
        "closest_distance_median": _median([r.closest_distance for r in records]),
        "final_distance_median": _median([r.final_distance for r in records]),
        "planner_reached_rate": sum(r.planner_reached for r in records) / len(records) if records else float("nan"),
    }
