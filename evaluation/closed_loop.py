"""Closed-loop goal reaching in the built-in simulator, without ROS.

Each episode starts the robot in one room and gives it the camera image of a
goal state in the other; a policy acts every control period until the robot
is within ``success_radius`` of the goal (measured on the true state) or the
step budget runs out. Policies:

* ``latent``: the world-model bundle + a latent planner (what the robot runs);
* ``true_state``: the same planner on the true position with the arena's
  kinematics (walls and door): an upper bound for the planner settings;
* ``random``: uniform random actions: a lower bound.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from jepa_pilot.common.config import Config, setting
from jepa_pilot.control.planner import Planner, PlannerConfig
from jepa_pilot.perception.latents import LatentHistory

__all__ = ["LoopConfig", "LatentPolicy", "TrueStatePolicy", "RandomPolicy", "goal_pairs", "run_episode"]


@dataclasses.dataclass(frozen=True)
class LoopConfig(Config):
    episodes: int = setting(50, "episodes per policy", low=1)
    seed: int = setting(0, "seed of the start/goal pairs and the planners", low=0)
    max_steps: int = setting(200, "control periods before an episode counts as failed", low=1)
    success_radius: float = setting(0.1, "true distance to the goal that counts as reached (m)", low=0.0)


def goal_pairs(env, count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(start, goal) states, start and goal in different rooms (bases) or random (arms)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(count):
        if hasattr(env, "room_of"):
            room = int(rng.integers(2))
            pairs.append((env.sample_state(rng, room=room), env.sample_state(rng, room=1 - room)))
        else:
            pairs.append((env.sample_state(rng), env.sample_state(rng)))
    return pairs


class LatentPolicy:
    """Encode frames, keep latents one model step apart (as in training), plan towards the goal latent."""

    name = "latent"

    def __init__(self, engine, planner_config: PlannerConfig) -> None:
        self.engine, self.planner = engine, Planner(engine, planner_config)
        spec = engine.spec
        self.history = LatentHistory(spec.history, spacing=spec.model_step)
        self.period = spec.control_period

    def reset(self, goal_image: np.ndarray, goal_state: np.ndarray) -> None:
        self.goal = self.engine.encode(goal_image)
        self.history.clear()
        self.planner.reset()
        self.t = 0.0

    def act(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        self.history.add(self.t, self.engine.encode(image))
        self.t += self.period
        return self.planner.plan(self.history.window(), self.goal).actions[0]


class ArenaKinematics:
    """The two_rooms base as the planner's model: position + velocity x period, walls and door.

    Implements the rollout protocol on a 'latent' that is the true (x, y).
    """

    def __init__(self, env, horizon: int = 10, frameskip: int = 4) -> None:
        cfg = env.config
        self.horizon, self.frameskip, self.action_dim = horizon, frameskip, 2
        self.step = cfg.max_speed * cfg.control_period
        self.low, self.high = -1.0 + 0.025 + 0.1, 1.0 - 0.025 - 0.1  # outer walls minus the base radius
        self.door = (cfg.door_y - cfg.door_width / 2 + 0.1, cfg.door_y + cfg.door_width / 2 - 0.1)
        self.wall = 0.025 + 0.1

    def rollout(self, z_hist: np.ndarray, actions: np.ndarray) -> np.ndarray:
        pos = np.broadcast_to(z_hist[-1], (len(actions), 2)).copy()
        out = []
        for t in range(actions.shape[1]):
            new = np.clip(pos + self.step * actions[:, t], self.low, self.high)
            in_door = (new[:, 1] > self.door[0]) & (new[:, 1] < self.door[1])
            blocked = ~in_door & (np.abs(new[:, 0]) < self.wall) | ~in_door & (np.sign(new[:, 0]) != np.sign(pos[:, 0]))
            new[blocked, 0] = np.sign(pos[blocked, 0]) * self.wall
            pos = new
            if (t + 1) % self.frameskip == 0:
                out.append(pos.copy())
        return np.stack(out, axis=1)


class TrueStatePolicy:
    name = "true_state"

    def __init__(self, env, planner_config: PlannerConfig) -> None:
        self.planner = Planner(ArenaKinematics(env), planner_config)

    def reset(self, goal_image: np.ndarray, goal_state: np.ndarray) -> None:
        self.goal = np.asarray(goal_state[:2])
        self.planner.reset()

    def act(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        z = np.asarray(state[:2])
        return self.planner.plan(np.stack([z, z]), self.goal).actions[0]


class RandomPolicy:
    name = "random"

    def __init__(self, action_dim: int, seed: int) -> None:
        self.action_dim, self.rng = action_dim, np.random.default_rng(seed)

    def reset(self, goal_image: np.ndarray, goal_state: np.ndarray) -> None:
        pass

    def act(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1, 1, self.action_dim)


def run_episode(env, policy, start: np.ndarray, goal: np.ndarray, cfg: LoopConfig) -> dict:
    """One episode; returns success, steps, final and closest true distance, per-step decision times."""
    obs, _ = env.reset(state=start)
    policy.reset(env.render_goal(goal), goal)
    times, closest = [], env.goal_distance(obs.state, goal)
    for step in range(1, cfg.max_steps + 1):
        t0 = time.perf_counter()
        action = policy.act(obs.image, obs.state)
        times.append(time.perf_counter() - t0)
        obs, *_ = env.step(action)
        distance = env.goal_distance(obs.state, goal)
        closest = min(closest, distance)
        if distance < cfg.success_radius:
            return {"success": True, "steps": step, "final_distance": distance, "closest": closest,
                    "decision_ms": float(np.median(times) * 1e3)}
    return {"success": False, "steps": cfg.max_steps, "final_distance": distance, "closest": closest,
            "decision_ms": float(np.median(times) * 1e3)}
