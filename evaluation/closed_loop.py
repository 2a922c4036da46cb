"""Closed-loop goal reaching in the built-in simulator, without ROS.

Each episode resets the robot to a start state and gives a policy the camera
image of a goal state; the policy acts every control period until the
success definition of :mod:`jepa_pilot.evaluation.metrics` is met or the
step budget runs out. Policies:

* ``latent``: the world-model bundle + the planner node's LatentMPC
  (what the robot runs, without ROS);
* ``true_state``: the same planner on the true task position with the
  env's own kinematics and walls (:class:`TrueKinematics`), a Euclidean cost:
  a reference for the planner settings, not an upper bound (it stalls at walls);
* ``random``: uniform random actions: a lower bound;
* ``shortest_path``: where the env knows its map and a steering law (the
  two-rooms worlds, PointMaze): its shortest route to the goal on the true
  state, followed with its steering law: what a scripted controller with a
  map achieves.

The settings the planner node runs with in the sim graph (``config/sim.yaml``,
section ``planner``) are the defaults here too (:func:`sim_planner_settings`),
so the direct and the ROS paths plan alike.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import yaml

from jepa_pilot.common.config import Config, setting
from jepa_pilot.common.paths import package_share
from jepa_pilot.control.landmarks import LandmarkGraph
from jepa_pilot.control.mpc import LatentMPC
from jepa_pilot.control.planner import Planner, PlannerConfig
from jepa_pilot.control.supervisor import Status, SupervisorConfig
from jepa_pilot.evaluation.metrics import EpisodeRecord, GoalTracker

__all__ = ["LoopConfig", "LatentPolicy", "TrueKinematics", "TrueStatePolicy", "RandomPolicy", "ShortestPathPolicy",
           "DIRECT_POLICIES", "goal_pairs", "make_policy", "run_episode", "sim_planner_settings"]


@dataclasses.dataclass(frozen=True)
class LoopConfig(Config):
    episodes: int = setting(50, "episodes per policy", low=1)
    seed: int = setting(0, "seed of the start/goal pairs and the planners", low=0)
    max_steps: int = setting(200, "control periods before an episode counts as failed", low=1)
    success_radius: float = setting(0.1, "true distance to the goal that counts as reached (m)", low=0.0)


def sim_planner_settings(**overrides) -> tuple[PlannerConfig, SupervisorConfig]:
    """The planner node's settings in the sim graph (config/sim.yaml), with ``overrides``."""
    params = yaml.safe_load((package_share("jepa_pilot") / "config" / "sim.yaml").read_text())
    node = {**params["planner"]["ros__parameters"], **overrides}
    pick = lambda cls: cls.from_dict({f.name: node[f.name] for f in dataclasses.fields(cls) if f.name in node})  # noqa: E731
    return pick(PlannerConfig), pick(SupervisorConfig)


def goal_pairs(env, count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(start, goal) states: in different rooms for the two-rooms worlds (the goal behind the start's
    door where the door moves), drawn by the env itself where it has its own goals (Gymnasium goal
    envs, e.g. PointMaze), independent otherwise."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(count):
        own = env.task_pair(rng) if hasattr(env, "task_pair") else None
        if own is not None:
            pairs.append(own)
        elif hasattr(env, "room_of"):
            room = int(rng.integers(2))
            start = env.sample_state(rng, room=room)
            pairs.append((start, env.sample_state(rng, room=1 - room, door_y=env.state_door(start))))
        else:
            pairs.append((env.sample_state(rng), env.sample_state(rng)))
    return pairs


class LatentPolicy:
    """What the planner node runs, without ROS: encode each frame, then one step of the same
    :class:`~jepa_pilot.control.mpc.LatentMPC` (supervisor, latent history one model step apart,
    planner, warm-start policy). Time is the episode's simulated time; REACHED holds the robot."""

    name = "latent"

    def __init__(self, engine, planner_config: PlannerConfig, supervisor_config: SupervisorConfig,
                 landmarks: bool = True) -> None:
        self.engine, spec = engine, engine.spec
        self.configs = (planner_config, supervisor_config)
        self.period = spec.control_period
        # The bundle's map of its latent space, if it ships one (and ``landmarks``): the planner's cost.
        self.metric = LandmarkGraph.of_bundle(engine.bundle) if landmarks else None

    def reset(self, goal_image: np.ndarray, goal_state: np.ndarray) -> None:
        spec = self.engine.spec
        self.mpc = LatentMPC(self.engine, spec.history, spec.model_step, *self.configs, metric=self.metric)
        self.mpc.set_goal(self.engine.encode(goal_image))
        self.t, self.reached, self.decision_time = 0.0, False, None

    def act(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        t, self.t = self.t, self.t + self.period
        step = self.mpc.on_latent(self.engine.encode(image), t, t, t)
        self.decision_time = None
        if step.job is not None:
            result = self.mpc.plan(step.job)
            self.decision_time = result.planning_time
            step = self.mpc.on_plan(result, t, t)
        self.reached = self.reached or step.decision.status == Status.REACHED
        return step.command if step.command is not None else np.zeros(self.engine.spec.action_dim)


class TrueKinematics:
    """The env's robot as the planner's model, on its true task position (the rollout protocol).

    Two-rooms holonomic base: position += speed x period x action, sliding along the
    walls (env.walls() grown by the base radius). Reacher: joint angles += speed x period
    x action within the joint limits; the 'latent' is the fingertip.
    """

    def __init__(self, env, horizon: int = 10, frameskip: int = 4) -> None:
        self.env, self.horizon, self.frameskip, self.action_dim = env, horizon, frameskip, env.action_dim
        self.step = np.asarray(env.action_scale, dtype=np.float64) * env.control_period
        if env.embodiment == "holonomic_base":
            self.boxes = self._grown_walls()
        elif env.embodiment == "arm":
            from jepa_pilot.sim.reacher import JOINT_LIMITS, fingertip

            self.limits, self.fingertip = np.array(JOINT_LIMITS), fingertip
        else:
            raise ValueError(f"true_state: no kinematic model for {env.name} ({env.embodiment}); "
                             f"it exists for holonomic bases and arms")

    def encode(self, state: np.ndarray) -> np.ndarray:
        """True state -> what the planner works on: the base (x, y), or the arm's joint angles."""
        return np.asarray(state[:2], dtype=np.float64)

    def _grown_walls(self) -> np.ndarray:
        r = self.env.base_radius
        return np.array([(cx, cy, hx + r, hy + r) for cx, cy, hx, hy in self.env.walls()])

    def goal_of(self, state: np.ndarray) -> np.ndarray:
        """The goal the planner aims at; a new goal is a new episode, so the walls are read again
        (a moving door has moved)."""
        if self.env.embodiment == "holonomic_base":
            self.boxes = self._grown_walls()
        return self.env.task_position(state)

    def _blocked(self, p: np.ndarray) -> np.ndarray:
        c, h = self.boxes[:, None, :2], self.boxes[:, None, 2:]
        return (np.abs(p[None] - c) < h).all(axis=-1).any(axis=0)

    def _move(self, pos: np.ndarray, delta: np.ndarray) -> np.ndarray:
        if self.env.embodiment == "arm":
            return np.clip(pos + delta, -self.limits, self.limits)
        new = pos + delta
        for slide in (np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.zeros(2)):
            bad = self._blocked(new)
            if not bad.any():
                break
            new[bad] = pos[bad] + delta[bad] * slide
        return new

    def rollout(self, z_hist: np.ndarray, actions: np.ndarray) -> np.ndarray:
        pos = np.broadcast_to(z_hist[-1], (len(actions), 2)).copy()
        out = []
        for t in range(actions.shape[1]):
            pos = self._move(pos, self.step * actions[:, t])
            if (t + 1) % self.frameskip == 0:
                out.append(self._task(pos))
        return np.stack(out, axis=1)

    def _task(self, pos: np.ndarray) -> np.ndarray:
        if self.env.embodiment == "arm":
            return np.stack([self.fingertip(p) for p in pos])
        return pos.copy()


class TrueStatePolicy:
    name = "true_state"

    def __init__(self, env, planner_config: PlannerConfig) -> None:
        self.model = TrueKinematics(env)
        self.planner = Planner(self.model, planner_config)

    def reset(self, goal_image: np.ndarray, goal_state: np.ndarray) -> None:
        self.goal = self.model.goal_of(goal_state)
        self.planner.reset()
        self.reached, self.decision_time = False, None

    def act(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        z = self.model.encode(state)
        start = time.perf_counter()
        action = self.planner.plan(np.stack([z, z]), self.goal).actions[0]
        self.decision_time = time.perf_counter() - start
        return action


class RandomPolicy:
    name = "random"

    def __init__(self, action_dim: int, seed: int) -> None:
        self.action_dim, self.rng = action_dim, np.random.default_rng(seed)

    def reset(self, goal_image: np.ndarray, goal_state: np.ndarray) -> None:
        self.reached, self.decision_time = False, None

    def act(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        action = self.rng.uniform(-1, 1, self.action_dim)
        self.decision_time = time.perf_counter() - start
        return action


class ShortestPathPolicy:
    """The env's own shortest route to the goal (``env.route``) on the true state, each waypoint
    steered to with the env's steering law (``env.steer``, at ``speed`` times the explorer's pace)
    until the robot is within ``switch`` of it (by default the env's ``waypoint_switch``)."""

    name = "shortest_path"

    def __init__(self, env, switch: float | None = None, speed: float = 2.0) -> None:
        state = env.state()
        if getattr(env, "route", None) is None or env.route(state, state) is None:
            raise ValueError(f"shortest_path: {env.name} knows no route (it exists for the two-rooms "
                             f"worlds and PointMaze)")
        self.env, self.speed = env, speed
        self.switch = env.waypoint_switch if switch is None else switch

    def reset(self, goal_image: np.ndarray, goal_state: np.ndarray) -> None:
        self.goal, self.waypoints = goal_state, None
        self.reached, self.decision_time = False, None

    def act(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        if self.waypoints is None:
            self.waypoints = self.env.route(state, self.goal)
        here = self.env.task_position(state)
        while len(self.waypoints) > 1 and np.linalg.norm(here - self.waypoints[0]) < self.switch:
            self.waypoints.pop(0)
        action = np.clip(self.env.steer(state, self.waypoints[0], self.speed), -1.0, 1.0)
        self.decision_time = time.perf_counter() - start
        return action


def run_episode(env, policy, start: np.ndarray, goal: np.ndarray, cfg: LoopConfig) -> EpisodeRecord:
    """One episode of ``policy`` from ``start`` towards the image of ``goal`` (see metrics.py)."""
    obs, _ = env.reset(state=start)
    policy.reset(env.render_goal(goal), goal)
    tracker = GoalTracker(env, start, goal, cfg.success_radius, cfg.max_steps, env.control_period)
    times = []
    for step in range(1, cfg.max_steps + 1):
        action = policy.act(obs.image, obs.state)
        if policy.decision_time is not None:  # None: the policy made no plan this step (e.g. REACHED)
            times.append(policy.decision_time)
        obs, *_ = env.step(action)
        if tracker.observe(step, obs.state):
            break
    return tracker.record(planner_reached=policy.reached, decision_times=times)


DIRECT_POLICIES = ("latent", "true_state", "random", "shortest_path")


def make_policy(name: str, env, planner: PlannerConfig, supervisor: SupervisorConfig, seed: int,
                bundle: str | None = None, landmarks: bool = True):
    """The direct policy ``name`` (``DIRECT_POLICIES``) for ``env``; ``bundle`` (a name in models/ or
    a path, default the env's name) for the latent one. ValueError if it cannot run on this env."""
    if name == "latent":
        from jepa_pilot.perception.engine import WorldModelEngine
        from jepa_pilot.perception.latents import resolve_bundle

        engine = WorldModelEngine(resolve_bundle(bundle or env.name), providers=("cuda", "cpu"))
        if abs(engine.spec.control_period - env.control_period) > 1e-9:
            raise ValueError(f"the bundle was trained at {engine.spec.control_period:g} s per action, {env.name} "
                             f"steps every {env.control_period:g} s (gym:ENV_ID: set --action-repeat to match)")
        return LatentPolicy(engine, planner, supervisor, landmarks=landmarks)
    if name == "true_state":
        return TrueStatePolicy(env, planner)
    if name == "shortest_path":
        return ShortestPathPolicy(env)
    if name == "random":
        return RandomPolicy(env.action_dim, seed)
    raise ValueError(f"unknown policy {name!r}; direct policies: {', '.join(DIRECT_POLICIES)}")
