"""Latent MPC without ROS: the supervisor, the latent history and the planner, in one object.

:class:`LatentMPC` is what the planner node runs; the node only converts
messages, holds the lock, publishes and reports. One control step is split
in three so that planning can run outside the node's lock:

1. ``on_latent(z, stamp, now, wall_now)`` (under the lock) records the
   latent and asks the supervisor. It returns a :class:`Step` to act on now
   (hold, idle, reached) or, when the robot should drive, a step with a
   :class:`Job`: a snapshot (history window, goal, goal version, whether to
   drop the warm start, control periods since the previous plan, or for a
   cold plan since the previous latent) that planning needs.
2. ``plan(job)`` (outside the lock) runs the planner on that snapshot and
   times it with ``timer``.
3. ``on_plan(result, now, wall_now)`` (under the lock) asks the supervisor
   whether the plan may still be executed: None when the goal changed while
   planning (the plan is dropped), else a step with the first action, or a
   zero command (e-stop pressed meanwhile, overrun, latent gone stale).

The warm start (the previous plan, shifted) is dropped when the goal
changed since the last plan, or when the robot was not driving on plans
just before (a stop of any cause: e-stop, stale latents, overrun, goal
reached): a plan made before a stop no longer fits where the robot is.

Exploring (``set_explore``, a lease the online learner renews): each latent
gets a step of a :class:`MomentumRandomWalk` instead of a plan, advanced once
per ``explore_period`` of latent stamps (the control period: the same
walk the data collector drives), under the same e-stop and staleness rules.
When the lease ends the robot is held once, then plans (or idles) again.

Every step carries the supervisor's :class:`Decision` with its typed
:class:`Cause`, the previous decision (to report changes) and the command:
the normalised action to publish (zeros to hold), or None (command nothing).
"""
from __future__ import annotations

import collections
import dataclasses
import time
from typing import Callable

import numpy as np

from jepa_pilot.control.exploration import MomentumRandomWalk
from jepa_pilot.control.planner import GoalMetric, Plan, Planner, PlannerConfig, RolloutModel
from jepa_pilot.control.supervisor import Cause, Decision, Status, Supervisor, SupervisorConfig
from jepa_pilot.perception.latents import LatentHistory

STOPLESS = ("planning", "no_goal", "reached", "exploring")  # causes that never stop the robot

__all__ = ["Cause", "Status", "Decision", "Job", "PlanResult", "Step", "LatentMPC", "robot_fit"]


@dataclasses.dataclass(frozen=True)
class Job:
    """What planning needs, taken under the lock: a snapshot, safe to use outside it."""

    z_hist: np.ndarray        # (K, D) latents one model step apart, oldest first
    goal: np.ndarray          # (D,) goal latent
    goal_version: int         # the supervisor's goal version when the snapshot was taken
    reset: bool               # drop the warm start before planning
    goal_distance: float      # latent distance from the newest latent to the goal
    periods: float = 1.0      # control periods (of latent stamps) since the previous plan (reset: latent)


@dataclasses.dataclass(frozen=True)
class PlanResult:
    job: Job
    plan: Plan
    planning_time: float      # seconds, measured with the LatentMPC's timer


@dataclasses.dataclass(frozen=True)
class Step:
    """What to do now."""

    decision: Decision
    previous: Decision                  # the decision acted on before this one
    command: np.ndarray | None = None   # normalised action to publish (zeros: hold); None: publish nothing
    plan: Plan | None = None
    planning_time: float = 0.0
    job: Job | None = None              # set when a plan is to be made (call plan(job), then on_plan)

    @property
    def changed(self) -> bool:
        """The status or its reason differs from the previous decision."""
        return (self.decision.status, self.decision.reason) != (self.previous.status, self.previous.reason)


class LatentMPC:
    """Supervisor + LatentHistory + Planner + the warm-start policy. No clock inside except ``timer``
    (planning time); every other time is passed in."""

    def __init__(self, model: RolloutModel, history: int, model_step: float,
                 planner_config: PlannerConfig | None = None, supervisor_config: SupervisorConfig | None = None,
                 timer: Callable[[], float] = time.perf_counter, explore_period: float = 0.1,
                 explorer: Callable[[], np.ndarray] | None = None, planner=None,
                 metric: GoalMetric | None = None) -> None:
        """``planner``: anything with Planner's ``plan`` and ``reset`` (control/device_planner.py's
        DevicePlanner); by default a Planner on ``model`` with ``planner_config`` and ``metric``
        (the planner's goal metric: None for the latent distance)."""
        self.action_dim = model.action_dim
        self.planner = planner or Planner(model, planner_config, metric)
        self.supervisor = Supervisor(supervisor_config)
        self.history = LatentHistory(history, model_step)
        self.period = model_step / model.frameskip  # s: the control period
        self._plan_stamp: float | None = None  # stamp of the latent the previous plan was made on
        self._latent_stamp: float | None = None  # stamp of the previous latent
        self.timer = timer
        self.last = Decision(Status.IDLE, Cause.NO_GOAL, "no goal")
        self.counts = collections.Counter(plans=0, overruns=0, dropped_plans=0, stops=0,
                                          **{f"stops_{c.value}": 0 for c in Cause if c.value not in STOPLESS})
        self._new_goal = True  # no plan made for the current goal yet
        self.explorer = explorer or MomentumRandomWalk(self.action_dim)
        self.explore_period, self._explore_next, self._explore_action = explore_period, -float("inf"), None

    # --- inputs -------------------------------------------------------------------
    @property
    def goal(self) -> np.ndarray | None:
        return self.supervisor.goal

    @property
    def estop(self) -> bool:
        return self.supervisor.estop

    def exploring(self, wall_now: float) -> bool:
        return self.supervisor.exploring(wall_now)

    def set_explore(self, on: bool, wall_now: float) -> None:
        """Take, renew (``on``) or end the exploration lease (Supervisor.set_explore)."""
        self.supervisor.set_explore(on, wall_now)

    def carry_over(self, previous: "LatentMPC") -> None:
        """Take over what must outlive a model switch from the MPC it replaces: the e-stop and the
        exploration lease (the goal comes again in the new latent space; the history does not)."""
        if previous.estop:
            self.set_estop(True)
        self.supervisor.explore_until = previous.supervisor.explore_until

    def set_config(self, config: SupervisorConfig) -> None:
        """New supervisor limits (dynamic parameters)."""
        self.supervisor.config = config

    def set_goal(self, goal: np.ndarray, stamp: float = 0.0) -> str:
        """Pursue ``goal``; '' when taken (the next plan starts cold), else why not (Supervisor.set_goal)."""
        refused = self.supervisor.set_goal(goal, stamp)
        if not refused:
            self._new_goal = True
        return refused

    def clear_goal(self) -> Step:
        """Drop the goal (a canceled goal): hold the robot at zero once, then IDLE (nothing commanded)."""
        self.supervisor.clear_goal()
        self._new_goal = True
        return self._act(Decision(Status.IDLE, Cause.NO_GOAL, "goal cleared", hold=True))

    def set_estop(self, engaged: bool) -> Step | None:
        """Engage or release the e-stop. Engaging returns the step that holds the robot; releasing
        returns None (driving resumes with the next latent, from a cold start)."""
        self.supervisor.set_estop(engaged)
        if not engaged:
            return None
        return self._act(Decision(Status.STOPPED, Cause.ESTOP, "e-stop engaged", hold=True,
                                  goal_distance=self.supervisor.last_distance))

    # --- one control step ---------------------------------------------------------
    def on_latent(self, z: np.ndarray, stamp: float, now: float | None, wall_now: float) -> Step:
        """A new latent. The step either says what to do now, or carries a ``job`` to plan."""
        self.history.add(stamp, z)
        previous_latent, self._latent_stamp = self._latent_stamp, stamp
        decision = self.supervisor.on_latent(z, stamp, now, wall_now)
        if decision.status == Status.EXPLORING:
            return self._act(decision, explore=self._explore_step(stamp))
        if not decision.plan:
            return self._act(decision)
        reset = self._new_goal or self.last.status != Status.PLANNING
        self._new_goal = self._new_goal and not reset
        since = previous_latent if reset else self._plan_stamp  # cold: the frame's time; warm: since the plan
        periods = 1.0 if since is None else max(stamp - since, 0.0) / self.period
        self._plan_stamp = stamp
        job = Job(self.history.window(), self.supervisor.goal, self.supervisor.goal_version, reset,
                  decision.goal_distance, periods)
        return Step(decision, self.last, job=job)

    def plan(self, job: Job) -> PlanResult:
        """Run the planner on a snapshot (outside the caller's lock; one plan at a time)."""
        if job.reset:
            self.planner.reset()
        start = self.timer()
        plan = self.planner.plan(job.z_hist, job.goal, job.periods)
        elapsed = self.timer() - start
        self.counts["plans"] += 1
        return PlanResult(job, plan, elapsed)

    def on_plan(self, result: PlanResult, now: float | None, wall_now: float) -> Step | None:
        """Execute the plan's first action, or hold; None: the goal changed while planning (dropped)."""
        decision = self.supervisor.on_plan(result.planning_time, result.job.goal_version, now, wall_now,
                                           result.job.goal_distance)
        if decision is None:
            self.counts["dropped_plans"] += 1
            return None
        self.counts["overruns"] += decision.cause == Cause.OVERRUN
        return self._act(decision, result.plan, result.planning_time)

    def watchdog(self, now: float | None, wall_now: float) -> Step | None:
        """Between latents: a step that holds the robot, or None (nothing to do)."""
        decision = self.supervisor.watchdog(now, wall_now)
        return None if decision is None else self._act(decision)

    def report(self) -> dict:
        """The last decision and the counts, for diagnostics."""
        last = self.last
        return {"status": last.status.name, "cause": last.cause.value, "reason": last.reason,
                "goal_distance": last.goal_distance, **self.counts}

    # --- helpers --------------------------------------------------------------------
    def _explore_step(self, stamp: float) -> np.ndarray:
        """The random walk's action for a latent stamped ``stamp``: a new one each ``explore_period``."""
        if self._explore_action is None or stamp >= self._explore_next or stamp < self._explore_next - 2 * \
                self.explore_period:  # (a clock that jumped back restarts the pacing)
            self._explore_action = np.asarray(self.explorer(), dtype=np.float64)
            self._explore_next = stamp + self.explore_period
        return self._explore_action

    def _act(self, decision: Decision, plan: Plan | None = None, planning_time: float = 0.0,
             explore: np.ndarray | None = None) -> Step:
        """Record ``decision`` as the one acted on and say what to command."""
        if decision.drive and plan is not None:
            command = np.asarray(plan.actions[0], dtype=np.float64)
        elif explore is not None:
            command = explore
        elif decision.hold or self.last.status == Status.EXPLORING:  # (exploring ended: stop the walk)
            command = np.zeros(self.action_dim)
        else:
            command = None
        step = Step(decision, self.last, command, plan, planning_time)
        if step.changed and decision.status == Status.STOPPED:
            self.counts["stops"] += 1
            self.counts[f"stops_{decision.cause.value}"] += 1  # by cause: stops_stale, stops_overrun, ...
        self.last = decision
        return step


def robot_fit(profile, spec, command_type: str = "profile") -> tuple[str, str]:
    """Can a bundle (``spec``, a BundleSpec) drive the robot ``profile`` (a RobotProfile) with
    ``command_type`` (profile, twist_stamped or twist)? Returns (the command message kind, a warning
    or ''); raises ValueError with the reason when it cannot."""
    space = profile.action_space
    if space.dim != spec.action_dim:
        raise ValueError(f"bundle actions ({', '.join(spec.action_names)}) do not fit robot {profile.name} "
                         f"({', '.join(space.fields)})")
    if command_type != "profile" and not space.is_twist:
        raise ValueError(f"command_type {command_type} does not fit robot {profile.name} "
                         f"({profile.embodiment}): use command_type profile")
    warning = ""
    if not np.allclose(space.scale, spec.action_scale) and not np.allclose(spec.action_scale, 1.0):
        warning = (f"robot {profile.name} limits {space.scale} differ from the bundle's training data "
                   f"{spec.action_scale}: the model's motion will be off")
    return (profile.command_type if command_type == "profile" else command_type), warning
