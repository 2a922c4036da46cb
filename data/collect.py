"""Collect exploration episodes in a simulator and write them as a dataset.

``collect(CollectConfig(env="two_rooms", episodes=2000, steps=100), "datasets/two_rooms")``
rolls out a :class:`~jepa_pilot.control.exploration.WaypointExplorer` (random
walk mixed with noisy waypoint seeking on the true state) and writes, per
episode, the camera frames, the normalised actions, the simulated time and
the true states (see :mod:`jepa_pilot.data.dataset`).

Reproducible: episode ``i`` draws everything (start state, explorer) from
``numpy.random.SeedSequence([seed, i])``, so the same seed writes the same
episode files whatever the number of worker processes. Next to the
episodes, ``collect.json`` records the settings and the coverage measured
(for the two-rooms worlds: door crossings, occupancy of an 8 x 8 grid of the
arena, frames per room; for the arm: occupancy of an 8 x 8 grid of joint
space).

A Gymnasium env (``env="gym:ENV_ID"``, :mod:`jepa_pilot.sim.gym_env`) is
explored with a :class:`~jepa_pilot.control.exploration.MomentumRandomWalk`
in its normalised action space, whose momentum follows the env's time
scale (``walk_momentum``), and its coverage is an 8 x 8 grid over the box the
visited task positions span.
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from tqdm import tqdm

from jepa_pilot.common.config import Config, setting
from jepa_pilot.control.exploration import WaypointConfig, WaypointExplorer, proportional_steer
from jepa_pilot.data.dataset import DatasetError, DatasetInfo, DatasetWriter, Episode
from jepa_pilot.sim import MujocoEnv, TwoRoomsEnv, make
from jepa_pilot.sim.gym_env import GymEnv, gym_only_problem, is_gym
from jepa_pilot.sim.base import CHANGE_SETTINGS, GAIN_RANGE, LIGHT_RANGE, ROTATION_RANGE_DEG
from jepa_pilot.sim.reacher import JOINT_LIMITS
from jepa_pilot.sim.two_rooms import door_waypoints

__all__ = ["CollectConfig", "Coverage", "arena_layout", "collect", "door_region", "episode_rng", "make_explorer",
           "rollout", "start_state"]

GRID = 8  # cells per axis of the coverage grid

# Per-env explorer settings; anything not named keeps WaypointConfig's default.
EXPLORER_DEFAULTS: dict[str, dict[str, Any]] = {
    "two_rooms": {},
    "two_rooms_diff": {"tolerance": 0.08, "seek_noise": 0.1},
    "two_rooms_random_door": {},
    "reacher": {"seek_prob": 0.3, "tolerance": 0.15, "seek_steps_max": 60},
}


@dataclasses.dataclass(frozen=True)
class CollectConfig(Config):
    """What `jepa-pilot collect` rolls out."""

    env: str = setting("two_rooms", "built-in simulator env (see `jepa-pilot envs`), or gym:ENV_ID")
    env_kwargs: str = setting("{}", "gym:ENV_ID only: JSON object of keyword arguments for gymnasium.make")
    action_repeat: int = setting(1, "gym:ENV_ID only: env steps each action is held for (the control period "
                                 "is the env's step times this; one frame per period)", low=1, high=100)
    walk_memory_s: float = setting(1.0, "gym:ENV_ID only: how long (seconds) the random walk keeps a direction; "
                                   "its momentum per step is 1 - control period / this", low=1e-3, high=600.0)
    episodes: int = setting(100, "number of episodes", low=1)
    steps: int = setting(100, "actions per episode (frames: steps + 1)", low=1)
    seed: int = setting(0, "base seed; episode i uses SeedSequence([seed, i])", low=0)
    door_start_prob: float = setting(0.3, "two rooms: fraction of episodes that start near the door",
                                     low=0.0, high=1.0)
    image_size: int = setting(0, "square frame size in pixels; 0 keeps the env's default", low=0, high=1024)
    action_rotation_deg: float = setting(0.0, "world change: a base's commanded (vx, vy) rotated by this many "
                                         "degrees before it is applied (data of a changed robot)",
                                         low=ROTATION_RANGE_DEG[0], high=ROTATION_RANGE_DEG[1])
    action_gain: float = setting(1.0, "world change: factor on every command the robot applies",
                                 low=GAIN_RANGE[0], high=GAIN_RANGE[1])
    light_scale: float = setting(1.0, "world change: factor on the scene light", low=LIGHT_RANGE[0],
                                 high=LIGHT_RANGE[1])

    def __post_init__(self) -> None:
        super().__post_init__()
        option, why_not = gym_only_problem(self.env, env_kwargs=self.env_kwargs, action_repeat=self.action_repeat)
        if why_not:
            self._fail(option, getattr(self, option), why_not)
        changed = [name for name in CHANGE_SETTINGS
                   if getattr(self, name) != CollectConfig.__dataclass_fields__[name].default]
        if is_gym(self.env) and changed:
            self._fail(changed[0], getattr(self, changed[0]), "world changes exist only in the built-in envs")

    def env_overrides(self) -> dict[str, Any]:
        """Keyword overrides for ``sim.make``: the frame size, and the world changes that differ from none."""
        size = self.image_size
        changes = {name: getattr(self, name) for name in CHANGE_SETTINGS
                   if getattr(self, name) != CollectConfig.__dataclass_fields__[name].default}
        gym = {"env_kwargs": self.env_kwargs, "action_repeat": self.action_repeat} if is_gym(self.env) else {}
        return {**({"image_width": size, "image_height": size} if size else {}), **changes, **gym}


def episode_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of episode ``index`` of a collection seeded with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def walk_momentum(control_period: float, memory_s: float) -> float:
    """The random walk's momentum per step for an env stepping every ``control_period`` seconds:
    ``1 - control_period / memory_s``, so a direction lasts about ``memory_s`` seconds whatever the
    time scale (0.9 at 0.1 s per step and 1 s of memory; 0.99 at 0.01 s), within [0, 0.999]."""
    return float(np.clip(1.0 - control_period / memory_s, 0.0, 0.999))


def explorer_config(env: MujocoEnv | GymEnv, walk_memory_s: float = 1.0) -> WaypointConfig:
    """The explorer settings used for ``env`` (``EXPLORER_DEFAULTS``). A Gymnasium env: segments
    counted in seconds, not steps, and a momentum whose memory is ``walk_memory_s``; it seeks
    waypoints only where its family knows a route and a steering law (PointMaze)."""
    if isinstance(env, GymEnv):
        steps = lambda seconds: max(int(round(seconds / env.control_period)), 1)  # noqa: E731
        return WaypointConfig(seek_prob=0.5 if can_route(env) else 0.0, tolerance=0.3,
                              walk_steps_min=steps(0.3), walk_steps_max=steps(1.5), seek_steps_max=steps(10.0),
                              momentum=walk_momentum(env.control_period, walk_memory_s))
    return WaypointConfig.from_dict(EXPLORER_DEFAULTS.get(env.name, {}))


def can_route(env: GymEnv) -> bool:
    """Whether ``env``'s family knows routes and a steering law (so the explorer can seek waypoints)."""
    state = env.state()
    return env.route(state, state) is not None and env.steer(state, env.task_position(state)) is not None


def make_explorer(env: MujocoEnv | GymEnv, rng: np.random.Generator, walk_memory_s: float = 1.0) -> WaypointExplorer:
    """A waypoint explorer for an env, driven by ``rng``.

    Two rooms: waypoints are uniform positions in either room, reached via
    the door when in the other room; holonomic bases steer with a P law on
    (x, y), differential ones with a go-to-point law. Reacher: waypoints
    are uniform joint configurations, steered to with a P law in joint space.
    A Gymnasium env: random states of the env reached along its family's
    route with its steering law (PointMaze: through the free cells, a PD law
    on the ball), or, where the family knows neither, the random walk only.
    """
    config = explorer_config(env, walk_memory_s)
    if isinstance(env, GymEnv):
        def gym_route(state: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
            return (env.route(state, env.sample_state(rng)) or []) if config.seek_prob else []

        return WaypointExplorer(env.action_dim, gym_route, env.steer, env.task_position, config, rng)
    if isinstance(env, TwoRoomsEnv):
        world = env.config
        jitter = max(world.door_width / 2 - env.base_radius, 0.0) / 2  # half the door's free play, m

        def route(state: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
            way = door_waypoints(state, env.sample_state(rng), env.door_y)
            if len(way) == 3 and jitter > 0:  # through the door: shift its two points alike
                shift = float(rng.uniform(-jitter, jitter))
                for point in way[:2]:
                    point[1] += shift
            return way

        return WaypointExplorer(env.action_dim, route, env.steer, env.task_position, config, rng)
    if env.embodiment != "arm":
        raise ValueError(f"no explorer for env {env.name!r} ({env.embodiment})")

    def joint_goal(state: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        return [env.sample_state(rng)[:env.action_dim]]

    return WaypointExplorer(env.action_dim, joint_goal, proportional_steer(env.action_scale),
                            lambda s: s[:env.action_dim], config, rng)


def _nm(metres: float) -> float:
    """A length derived from the geometry by float arithmetic, rounded to the nanometre
    (0.2 + 1.5 * 0.1 is 0.35000000000000003 in floats; the world is laid out in round numbers)."""
    return round(metres, 9)


def arena_layout(env: TwoRoomsEnv) -> tuple[float, float]:
    """(half size of the arena, x of the wall between the rooms) in metres, read from ``env.walls()``.

    The outer side walls are the vertical boxes farthest out: the arena ends
    at their inner faces. The dividing wall is made of the vertical boxes
    inside the arena (none if the door spans the whole wall: then x = 0,
    where ``room_of`` splits the rooms).
    """
    vertical = [w for w in env.walls() if w[2] < w[3]]  # (centre x, centre y, half x, half y): taller than wide
    half = _nm(max(abs(cx) - hx for cx, _, hx, _ in vertical))
    inner = [cx for cx, _, hx, _ in vertical if abs(cx) + hx < half]
    return half, (_nm(inner[0]) if inner else 0.0)


def door_region(env: TwoRoomsEnv, door_y: float | None = None) -> tuple[float, float, float, float]:
    """(centre x, centre y, half extent x, half extent y) of the start area "near the door" (at
    ``door_y``, by default where it is now).

    Centred on the door in the dividing wall; it reaches one door width into
    either room and, along the wall, half a door plus 1.5 base radii each
    side of the door's centre (with the shipped 0.4 m door and 0.1 m base:
    +-0.4 m by +-0.35 m). Draws that put the base in a wall are redrawn.
    """
    world = env.config
    _, wall_x = arena_layout(env)
    door_y = env.door_y if door_y is None else door_y
    return wall_x, door_y, world.door_width, _nm(world.door_width / 2 + 1.5 * env.base_radius)


def start_state(env: MujocoEnv | GymEnv, rng: np.random.Generator, door_start_prob: float) -> np.ndarray | None:
    """A start state: near the door (``door_region``) with probability ``door_start_prob`` (two rooms),
    else uniform; None for a Gymnasium env whose state cannot be set (its own reset decides)."""
    if not env.can_set_state:
        return None
    if isinstance(env, TwoRoomsEnv) and rng.random() < door_start_prob:
        for _ in range(100):
            state = env.sample_state(rng)  # keeps the heading draw of a differential base (and a moving door's)
            cx, cy, reach_x, reach_y = door_region(env, env.state_door(state))
            state[0] = cx + rng.uniform(-reach_x, reach_x)
            state[1] = cy + rng.uniform(-reach_y, reach_y)
            try:
                return env.validate_state(state)
            except ValueError:  # in a wall or outside the arena: draw again
                continue
    return env.sample_state(rng)


def rollout(env: MujocoEnv | GymEnv, steps: int, rng: np.random.Generator, door_start_prob: float,
            walk_memory_s: float = 1.0) -> tuple[Episode, float]:
    """One rendered episode of ``steps`` actions; also the fraction of steps spent seeking."""
    explorer = make_explorer(env, rng, walk_memory_s)
    start = start_state(env, rng, door_start_prob)
    seed = int(rng.integers(2 ** 31)) if isinstance(env, GymEnv) else None  # what a Gymnasium env's reset draws
    obs, _ = env.reset(seed=seed, state=start)
    images, states, times, actions = [obs.image], [obs.state], [obs.time], []
    seeking = 0
    for _ in range(steps):
        action = explorer(obs.state)
        seeking += explorer.seeking
        obs, *_ = env.step(action)
        actions.append(action)
        images.append(obs.image)
        states.append(obs.state)
        times.append(obs.time)
    episode = Episode(images=np.stack(images), actions=np.asarray(actions, dtype=np.float32),
                      timestamps=np.asarray(times, dtype=np.float64), states=np.stack(states))
    return episode, seeking / steps


class Coverage:
    """Where the episodes went: an 8 x 8 occupancy grid (and, for two rooms, rooms and door crossings).

    The grid spans the arena (two rooms), the joint limits (arm), or for a Gymnasium env the box
    its visited task positions span (known only at the end: they are kept until ``summary``)."""

    def __init__(self, env: MujocoEnv | GymEnv) -> None:
        self.two_rooms = isinstance(env, TwoRoomsEnv)
        self.gym = env.task_position if isinstance(env, GymEnv) else None
        self.positions: list[np.ndarray] = []
        self.high = np.full(2, arena_layout(env)[0]) if self.two_rooms else np.array(JOINT_LIMITS)  # m, rad
        self.room_of = env.room_of if self.two_rooms else None
        self.low = -self.high
        self.counts = np.zeros((GRID, GRID), dtype=np.int64)
        self.episodes = self.crossing = 0
        self.room_frames = np.zeros(2, dtype=np.int64)
        self.seek_fraction = 0.0

    def add(self, states: np.ndarray, seek_fraction: float) -> None:
        """Account one episode's true states (T+1, S)."""
        if self.gym is not None:
            self.positions.append(np.array([self.gym(s) for s in states]))
        else:
            self._count(states[:, :2])
        self.episodes += 1
        self.seek_fraction += seek_fraction
        if self.two_rooms:
            rooms = np.array([self.room_of(s) for s in states])
            self.crossing += bool(np.any(rooms != rooms[0]))
            self.room_frames += np.bincount(rooms, minlength=2)

    def _count(self, points: np.ndarray) -> None:
        cells = np.floor((points - self.low) / np.maximum(self.high - self.low, 1e-12) * GRID).astype(int)
        cells = np.clip(cells, 0, GRID - 1)
        np.add.at(self.counts, (cells[:, 0], cells[:, 1]), 1)

    def summary(self) -> dict[str, Any]:
        """The numbers printed and written to collect.json."""
        if self.gym is not None and self.positions:
            points = np.concatenate(self.positions)
            self.low, self.high = points.min(0), points.max(0)
            self.counts[:] = 0
            self._count(points)
        frames = max(int(self.counts.sum()), 1)
        if self.gym is not None:
            where = (f"the visited task positions, x in [{self.low[0]:.3g}, {self.high[0]:.3g}], "
                     f"y in [{self.low[1]:.3g}, {self.high[1]:.3g}]")
        else:
            where = f"x, y in [{-self.high[0]:g}, {self.high[0]:g}] m" if self.two_rooms else "joint angles"
        out: dict[str, Any] = {
            "grid": f"{GRID}x{GRID} over {where}",
            "grid_cells_visited": round(float((self.counts > 0).mean()), 4),
            "grid_min_cell_frames": round(float(self.counts.min() / frames), 5),
            "grid_max_cell_frames": round(float(self.counts.max() / frames), 5),
            "seek_fraction": round(self.seek_fraction / max(self.episodes, 1), 4),
        }
        if self.two_rooms:
            out["episodes_crossing_door"] = round(self.crossing / max(self.episodes, 1), 4)
            out["frames_room0"], out["frames_room1"] = (round(float(f) / frames, 4) for f in self.room_frames)
        return out

    def lines(self) -> list[str]:
        """A human-readable summary."""
        s = self.summary()
        lines = [f"grid cells visited  {s['grid_cells_visited']:.0%} of {s['grid']} "
                 f"(frames per cell {s['grid_min_cell_frames']:.2%} .. {s['grid_max_cell_frames']:.2%})",
                 f"steps seeking       {s['seek_fraction']:.0%} (rest: random walk)"]
        if self.two_rooms:
            lines += [f"door crossings      {s['episodes_crossing_door']:.0%} of episodes",
                      f"frames per room     {s['frames_room0']:.0%} left (x<0), {s['frames_room1']:.0%} right (x>0)"]
        return lines


# --- worker processes ---------------------------------------------------------
_worker: dict[str, Any] = {}


def _init_worker(config: CollectConfig) -> None:
    _worker["env"], _worker["config"] = make(config.env, **config.env_overrides()), config


def _work(index: int) -> tuple[Episode, float]:
    config: CollectConfig = _worker["config"]
    return rollout(_worker["env"], config.steps, episode_rng(config.seed, index), config.door_start_prob,
                   config.walk_memory_s)


def _episodes(config: CollectConfig, workers: int) -> Iterator[tuple[Episode, float]]:
    """Episodes 0..N-1 in order, rolled out here or by ``workers`` spawned processes."""
    if workers <= 1:
        _init_worker(config)
        try:
            yield from map(_work, range(config.episodes))
        finally:
            _worker.pop("env").close()
        return
    # spawn: a forked child would inherit the parent's OpenGL state.
    with multiprocessing.get_context("spawn").Pool(workers, _init_worker, (config,)) as pool:
        yield from pool.imap(_work, range(config.episodes))


def collect(config: CollectConfig, out: str | Path, workers: int = 1,
            progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Roll out ``config.episodes`` episodes into the new dataset folder ``out``.

    Returns the summary also written to ``out/collect.json`` (settings and
    coverage). Raises DatasetError if ``out`` already holds episodes.
    """
    out = Path(out)
    if any((out / "episodes").glob("*.npz")):
        raise DatasetError(f"{out}: already holds episodes; collect into a new folder")
    with make(config.env, **config.env_overrides()) as env:
        world = env.config
        explorer = explorer_config(env, config.walk_memory_s)
        how = ("momentum random walk" if isinstance(env, GymEnv)
               else "WaypointExplorer (random walk + waypoint seeking on the true state)")
        info = DatasetInfo(robot=env.name, source="sim", image_height=world.image_height,
                           image_width=world.image_width, action_names=env.action_names,
                           action_scale=tuple(float(s) for s in env.action_scale),
                           control_period=env.control_period, state_names=env.state_names,
                           state_units=env.state_units,
                           notes=f"jepa-pilot collect: {how}, seed {config.seed}; see collect.json")
        coverage = Coverage(env)
    writer = DatasetWriter(out, info)
    bar = tqdm(total=config.episodes, unit="episode", disable=not progress, desc="collect")
    with bar:
        for episode, seek_fraction in _episodes(config, workers):
            writer.add(episode)
            coverage.add(episode.states, seek_fraction)
            bar.update()
    summary = {"collect": config.to_dict(), "env": world.to_dict(), "explorer": explorer.to_dict(),
               "frames": writer.steps + writer.count, "coverage": coverage.summary()}
    (out / "collect.json").write_text(json.dumps(summary, indent=2) + "\n")
    for line in coverage.lines():
        log(line)
    return summary
