"""Any Gymnasium environment that renders RGB frames, seen as the pipeline sees its own envs.

``make("gym:PointMaze_UMaze-v3")`` builds a :class:`GymEnv`: the same episode
interface as the built-in simulators (``reset(seed, state)``, ``step``,
``render``, ``render_goal``, ``sample_state``, ``goal_distance``, the action
and state names and units), so `collect`, `eval` and the sim node drive it
unchanged. What is translated:

* Actions are normalised: action ``a`` in [-1, 1]^A is the env's
  ``low + (a + 1) / 2 * (high - low)``; ``action_scale`` is half the range.
  The action space must be a bounded ``Box``.
* Frames are ``env.render()`` in ``rgb_array`` mode at the configured size
  (passed to ``gymnasium.make`` as ``width``/``height`` where the env takes
  them, else the frame is resized).
* The control period is the env's own ``dt`` (MuJoCo envs), else
  ``1 / metadata["render_fps"]``, times ``action_repeat``: each action is
  held for that many env steps and one frame is taken per control period.
* The true state, and putting the env in a state (for goal images), come
  from a small *state access* per env family (``FAMILIES``):

  - ``PointMaze_*`` (Gymnasium-Robotics): the ball's (x, y, vx, vy); states
    are sampled uniformly in the maze's free cells; the red goal marker is
    hidden so that neither frames nor goal images show it; success is the
    env's own (ball within 0.45 m of the goal). The camera looks straight
    down on the whole maze (the env's own oblique view shows the ball as a
    pixel or two at 64 x 64). The family knows its map: ``route`` gives a
    shortest path through the free cells and ``steer`` a PD law on the
    ball, which the collector uses to seek waypoints and `eval` as the
    ``shortest_path`` reference.
  - any other Gymnasium MuJoCo env: ``qpos`` then ``qvel``, set with the
    env's ``set_state``; positions are m or rad by joint type; the task
    position (for goal distances) is the first two ``qpos`` values.
  - anything else: the flattened observation, read only: such an env can be
    collected and driven, but not put in a goal state; the task position is
    its first two values.

Gymnasium (and Gymnasium-Robotics for the mazes) are imported only when a
``gym:`` env is made.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import math
from typing import Any, Protocol

import numpy as np

from jepa_pilot.common.config import Config, ConfigError, setting
from jepa_pilot.common.image import resize
from jepa_pilot.sim.base import CHANGE_SETTINGS, EnvConfig, Observation, RobotState

__all__ = ["GYM_PREFIX", "GymConfig", "GymEnv", "StateAccess", "GYM_OPTIONS", "gym_only_problem", "is_gym", "make_gym"]

GYM_PREFIX = "gym:"


def is_gym(name: str) -> bool:
    """Whether an env name asks for a Gymnasium env (``gym:ENV_ID``)."""
    return name.startswith(GYM_PREFIX)


# The GymConfig fields a caller may pass along with an env name, and their neutral values (what a
# built-in env accepts, as if not given).
GYM_OPTIONS = {"env_kwargs": ("", "{}"), "action_repeat": (1,)}


def gym_only_problem(name: str, **options: Any) -> tuple[str, str]:
    """(option, why) for the first of ``options`` (``GYM_OPTIONS``) that cannot go with env ``name``,
    ('', '') if all can: only gym:ENV_ID envs take them, a built-in env only their neutral values."""
    if not is_gym(name):
        for option, value in options.items():
            if value not in GYM_OPTIONS[option]:
                return option, f"only for gym:ENV_ID envs, not {name!r}"
    return "", ""


@dataclasses.dataclass(frozen=True)
class GymConfig(Config):
    """How a Gymnasium env is made and seen."""

    env_id: str = setting("PointMaze_UMaze-v3", "Gymnasium env id (registered by gymnasium or an import)")
    env_kwargs: str = setting("{}", "JSON object of keyword arguments for gymnasium.make")
    image_width: int = setting(64, "camera image width in pixels", low=16, high=1024)
    image_height: int = setting(64, "camera image height in pixels", low=16, high=1024)
    max_episode_steps: int = setting(0, "steps after which step() reports truncated; 0: the env's own limit",
                                     low=0)
    action_repeat: int = setting(1, "env steps each action is held for: one control period is the env's own "
                                 "step times this (frames are taken once per control period)", low=1, high=100)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.env_id:
            self._fail("env_id", self.env_id, "a Gymnasium env id, e.g. PointMaze_UMaze-v3")
        try:
            kwargs = json.loads(self.env_kwargs)
        except json.JSONDecodeError as exc:
            self._fail("env_kwargs", self.env_kwargs, f"a JSON object ({exc})")
        if not isinstance(kwargs, dict):
            self._fail("env_kwargs", self.env_kwargs, 'a JSON object, e.g. {"continuing_task": false}')

    @property
    def kwargs(self) -> dict[str, Any]:
        return json.loads(self.env_kwargs)


class StateAccess(Protocol):
    """What the pipeline needs to know about one env family's true state."""

    names: tuple[str, ...]
    units: tuple[str, ...]  # m, rad: positions (what one frame shows); m/s, rad/s: rates
    success_radius: float | None  # task-position distance at which the env counts success (None: unknown)
    can_write: bool

    def read(self) -> np.ndarray: ...
    def write(self, state: np.ndarray) -> None: ...
    def check(self, state: np.ndarray) -> None: ...
    def sample(self, rng: np.random.Generator) -> np.ndarray: ...
    def task_position(self, state: np.ndarray) -> np.ndarray: ...
    def goal(self) -> np.ndarray | None: ...
    def route(self, start: np.ndarray, goal: np.ndarray) -> list[np.ndarray] | None: ...
    def steer(self, state: np.ndarray, target: np.ndarray, speed: float = 1.0) -> np.ndarray | None: ...


class Unmapped:
    """What a family knows of an env it has no map of: no goal, no route, no steering law; the task
    position is the state's first two values."""

    def task_position(self, state: np.ndarray) -> np.ndarray:
        return np.asarray(state[:2], dtype=np.float64)

    def goal(self) -> np.ndarray | None:
        return None

    def route(self, start: np.ndarray, goal: np.ndarray) -> list[np.ndarray] | None:
        return None  # no map of the world: no way known

    def steer(self, state: np.ndarray, target: np.ndarray, speed: float = 1.0) -> np.ndarray | None:
        return None  # no known law that moves the task position


class ObservationState(Unmapped):
    """Any env: the flattened observation (``observation`` of a dict space), read only."""

    success_radius = None
    can_write = False

    def __init__(self, env) -> None:
        self.env, self.last = env, None
        first = self._flat(env.observation_space.sample())
        self.names = tuple(f"o{i}" for i in range(len(first)))
        self.units = ("",) * len(first)  # not known: a probe scores every dimension

    @staticmethod
    def _flat(obs) -> np.ndarray:
        if isinstance(obs, dict):
            obs = obs.get("observation", np.concatenate([np.ravel(v) for v in obs.values()]))
        return np.asarray(obs, dtype=np.float64).ravel()

    def observe(self, obs) -> None:
        self.last = self._flat(obs)

    def read(self) -> np.ndarray:
        return self.last.copy()

    def write(self, state: np.ndarray) -> None:
        raise ValueError(f"{self.env.spec.id}: no state access for this env family, so it cannot be put in a "
                         f"given state (goal images need one; see jepa_pilot.sim.gym_env)")

    def check(self, state: np.ndarray) -> None:
        pass

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        raise ValueError(f"{self.env.spec.id}: no state access for this env family, so no state can be drawn "
                         f"(see jepa_pilot.sim.gym_env)")


class MujocoState(Unmapped):
    """A Gymnasium MuJoCo env: ``qpos`` then ``qvel`` of its model, set with the env's ``set_state``."""

    success_radius = None
    can_write = True

    def __init__(self, mujoco_env) -> None:
        import mujoco

        self.sim = mujoco_env
        model = mujoco_env.model
        free, ball, slide = mujoco.mjtJoint.mjJNT_FREE, mujoco.mjtJoint.mjJNT_BALL, mujoco.mjtJoint.mjJNT_SLIDE
        # Per joint type: (qpos suffixes, their units, qvel suffixes, their units).
        layout = {int(free): (("x", "y", "z", "qw", "qx", "qy", "qz"), ("m",) * 3 + ("",) * 4,
                              ("vx", "vy", "vz", "wx", "wy", "wz"), ("m/s",) * 3 + ("rad/s",) * 3),
                  int(ball): (("qw", "qx", "qy", "qz"), ("",) * 4, ("wx", "wy", "wz"), ("rad/s",) * 3),
                  int(slide): (("",), ("m",), ("",), ("m/s",))}
        hinge = (("",), ("rad",), ("",), ("rad/s",))
        names, units, vel_names, vel_units = [], [], [], []
        for j in range(model.njnt):
            joint = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) or f"joint{j}"
            q, q_units, v, v_units = layout.get(int(model.jnt_type[j]), hinge)
            names += [f"{joint}_{p}" if p else joint for p in q]
            units += q_units
            vel_names += [f"d{joint}_{p}" if p else f"d{joint}" for p in v]
            vel_units += v_units
        self.nq, self.nv = model.nq, model.nv
        self.names, self.units = tuple(names + vel_names), tuple(units + vel_units)

    def read(self) -> np.ndarray:
        return np.concatenate([self.sim.data.qpos, self.sim.data.qvel]).astype(np.float64)

    def write(self, state: np.ndarray) -> None:
        self.sim.set_state(state[:self.nq], state[self.nq:])

    def check(self, state: np.ndarray) -> None:
        pass

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """The model's initial pose plus a little noise, at rest (Gymnasium MuJoCo envs start near it)."""
        qpos = self.sim.init_qpos + rng.uniform(-0.1, 0.1, self.nq)
        return np.concatenate([qpos, np.zeros(self.nv)])


class PointMazeState:
    """Gymnasium-Robotics PointMaze: the ball's (x, y, vx, vy) in metres, in the maze's free cells."""

    names = ("x", "y", "vx", "vy")
    units = ("m", "m", "m/s", "m/s")
    success_radius = 0.45  # PointMaze's own: the ball within 0.45 m of the goal
    can_write = True
    margin = 0.25  # of a cell: how far from a free cell's centre states are drawn (the env's own reset noise)

    def __init__(self, maze_env) -> None:
        self.env, self.ball = maze_env, maze_env.point_env
        maze = maze_env.maze
        self.scale = maze.maze_size_scaling
        self.cells = np.array([maze.cell_rowcol_to_xy(np.array([r, c]))
                               for r, row in enumerate(maze.maze_map) for c, cell in enumerate(row)
                               if cell != 1])  # 0, or "r"/"g"/"c" reset and goal cells: free
        self.free = {tuple(maze.cell_xy_to_rowcol(xy)) for xy in self.cells}
        self.maze = maze
        # The red goal marker: hidden, so frames and goal images show the maze and the ball only.
        self.ball.model.site_rgba[maze_env.target_site_id, 3] = 0.0
        # A top-down camera framing the maze to the middle of its outer walls (the env's own is a
        # distant oblique view in which the ball is a pixel or two at 64 x 64).
        extent = (max(len(maze.maze_map), len(maze.maze_map[0])) - 1) * self.scale  # m
        fovy = float(self.ball.model.vis.global_.fovy)
        self.ball.mujoco_renderer.default_cam_config = {
            "lookat": np.zeros(3), "elevation": -90.0, "azimuth": 90.0,
            "distance": extent / 2 / math.tan(math.radians(fovy) / 2)}

    def read(self) -> np.ndarray:
        data = self.ball.data
        return np.concatenate([data.qpos[:2], data.qvel[:2]]).astype(np.float64)

    def write(self, state: np.ndarray) -> None:
        self.ball.set_state(state[:2].copy(), state[2:4].copy())

    def check(self, state: np.ndarray) -> None:
        if tuple(self.maze.cell_xy_to_rowcol(state[:2])) not in self.free:
            raise ValueError(f"ball at ({state[0]:.2f}, {state[1]:.2f}) m is not in a free cell of the maze")

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        centre = self.cells[rng.integers(len(self.cells))]
        xy = centre + rng.uniform(-self.margin, self.margin, 2) * self.scale
        return np.concatenate([xy, np.zeros(2)])

    def task_position(self, state: np.ndarray) -> np.ndarray:
        return np.asarray(state[:2], dtype=np.float64)

    def goal(self) -> np.ndarray | None:
        return np.concatenate([np.asarray(self.env.goal, dtype=np.float64), np.zeros(2)])

    # PD law on the ball (4.2 kg, 100 N per unit action: 24 m/s^2), about critically damped: at speed 1,
    # 7 rad/s, settling in ~0.6 s (the explorer's pace); speed s multiplies the rate (kp s^2, kd s).
    kp, kd = 2.0, 0.6  # normalised action per m of error, per m/s of speed, at speed 1

    def steer(self, state: np.ndarray, target: np.ndarray, speed: float = 1.0) -> np.ndarray | None:
        """The normalised force that drives the ball towards ``target`` (x, y) in m and stops it there."""
        return self.kp * speed ** 2 * (np.asarray(target[:2]) - state[:2]) - self.kd * speed * state[2:4]

    def route(self, start: np.ndarray, goal: np.ndarray) -> list[np.ndarray] | None:
        """Waypoints (x, y) in m from ``start`` to ``goal`` along a shortest path through the free
        cells (4-connected, breadth first): the centre of each cell where the path turns, then the
        goal itself. None if ``goal`` cannot be reached from ``start``."""
        here, there = (tuple(int(v) for v in self.maze.cell_xy_to_rowcol(np.asarray(p[:2]))) for p in (start, goal))
        previous, queue = {here: here}, collections.deque([here])
        while queue and there not in previous:
            r, c = queue.popleft()
            for step in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if step in self.free and step not in previous:
                    previous[step] = (r, c)
                    queue.append(step)
        if there not in previous:
            return None
        cells = [there]
        while cells[-1] != here:
            cells.append(previous[cells[-1]])
        cells.reverse()  # here ... there
        turns = [cells[i] for i in range(1, len(cells) - 1)
                 if (cells[i][0] - cells[i - 1][0], cells[i][1] - cells[i - 1][1])
                 != (cells[i + 1][0] - cells[i][0], cells[i + 1][1] - cells[i][1])]
        return [np.asarray(self.maze.cell_rowcol_to_xy(np.array(cell)), dtype=np.float64) for cell in turns] \
            + [np.asarray(goal[:2], dtype=np.float64)]


def _state_access(env) -> StateAccess:
    unwrapped = env.unwrapped
    if type(unwrapped).__name__ == "PointMazeEnv":
        return PointMazeState(unwrapped)
    try:
        from gymnasium.envs.mujoco import MujocoEnv as GymMujocoEnv
    except Exception:  # noqa: BLE001 - gymnasium without MuJoCo support: no MuJoCo families
        GymMujocoEnv = ()
    if GymMujocoEnv and isinstance(unwrapped, GymMujocoEnv):
        return MujocoState(unwrapped)
    return ObservationState(env)


def _control_period(env) -> float:
    unwrapped = env.unwrapped
    for owner in (unwrapped, getattr(unwrapped, "point_env", None)):
        dt = getattr(owner, "dt", None)
        if isinstance(dt, (int, float)) and dt > 0:
            return float(dt)
    fps = (unwrapped.metadata or {}).get("render_fps")
    if fps:
        return 1.0 / float(fps)
    raise ConfigError(f"{env.spec.id}: no control period (no env.dt, no metadata['render_fps'])")


def make_gym(name: str, config: GymConfig | None = None, control_period: float | None = None,
             **overrides: Any) -> "GymEnv":
    """``make_gym("gym:PointMaze_UMaze-v3", image_width=64)``: ``name`` sets ``env_id``. A
    ``control_period`` (s) sets ``action_repeat`` to the whole number of env steps it spans."""
    env_id = name[len(GYM_PREFIX):] if is_gym(name) else name
    base = config.to_dict() if config is not None else {}
    env = GymEnv(GymConfig.from_dict({**base, "env_id": env_id}, **overrides))
    if control_period is not None:
        try:
            env.hold_for(control_period)
        except ConfigError:
            env.close()
            raise
    return env


class GymEnv:
    """A Gymnasium env with the episode interface of :class:`~jepa_pilot.sim.base.MujocoEnv`."""

    embodiment = "gym"
    camera_frame_id = "camera_optical_frame"
    waypoint_switch = 0.5  # m (half a PointMaze cell) from a route's waypoint at which a follower heads for the next

    def __init__(self, config: GymConfig | None = None) -> None:
        self._config = config = config or GymConfig()
        self._env = _gym_make(config)
        space = self._env.action_space
        low, high = np.asarray(getattr(space, "low", []), np.float64), np.asarray(getattr(space, "high", []), np.float64)
        if type(space).__name__ != "Box" or low.ndim != 1 or not (np.isfinite(low).all() and np.isfinite(high).all()):
            self._env.close()
            raise ConfigError(f"{config.env_id}: the action space must be a bounded 1-D Box, got {space}")
        self._centre, self._half = (high + low) / 2, (high - low) / 2
        self.name = GYM_PREFIX + config.env_id
        self.action_names = tuple(f"a{i}" for i in range(len(low)))
        self.action_units = ("",) * len(low)  # the env's own units
        self.control_period = _control_period(self._env) * config.action_repeat
        self._access = _state_access(self._env)
        self._rng = np.random.default_rng()
        self._steps = 0
        self.reset(seed=0, render=False)

    # --- what the pipeline reads ----------------------------------------------
    @property
    def config(self) -> GymConfig:
        return self._config

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def action_scale(self) -> np.ndarray:
        return self._half.copy()

    @property
    def state_names(self) -> tuple[str, ...]:
        return self._access.names

    @property
    def state_units(self) -> tuple[str, ...]:
        return self._access.units

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    @property
    def can_set_state(self) -> bool:
        """Whether ``reset(state=...)`` and ``render_goal`` work: only with a state access that can write."""
        return self._access.can_write

    @property
    def success_radius(self) -> float | None:
        """Task-position distance at which the env itself counts success (None where it is not known)."""
        return self._access.success_radius

    @property
    def steps(self) -> int:
        return self._steps

    def hold_for(self, period: float) -> None:
        """Hold each action for ``period`` seconds: ``action_repeat`` becomes the whole number of env
        steps in it (ConfigError if it is not a whole multiple of the env's own step)."""
        own = self.control_period / self._config.action_repeat
        repeat = int(round(period / own))
        if repeat < 1 or abs(repeat * own - period) > 1e-6 * period:
            raise ConfigError(f"control_period = {period!r}: {self.name} steps every {own:g} s; "
                              f"a control period must be a whole number of its steps")
        self._config = GymConfig.from_dict(self._config.to_dict(), action_repeat=repeat)
        self.control_period = own * repeat

    @property
    def rng(self) -> np.random.Generator:
        return self._rng

    @property
    def gym(self):
        """The Gymnasium env itself."""
        return self._env

    # --- episodes -------------------------------------------------------------
    def reset(self, seed: int | None = None, state: np.ndarray | None = None,
              *, render: bool = True) -> tuple[Observation, dict[str, Any]]:
        """Start an episode: the env's own reset (seeded from this env's generator), then ``state``
        if given, else, where the state can be set, one drawn by ``sample_state``."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        if state is not None:
            state = self.validate_state(state)
        obs, info = self._env.reset(seed=int(self._rng.integers(2 ** 31)))
        self._observed(obs)
        if state is None and self._access.can_write:
            state = self._access.sample(self._rng)
        if state is not None:
            self._access.write(state)
        self._steps = 0
        return self._observe(render), {"seed": seed, **info}

    def step(self, action: Any, *, render: bool = True) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """Apply a normalised action for one control period: (observation, reward, terminated,
        truncated, info) with the env's own reward, termination and info; ``info["clipped"]``."""
        array = np.asarray(action, dtype=np.float64)
        if array.shape != (self.action_dim,) or not np.isfinite(array).all():
            raise ValueError(f"{self.name}: action must be {self.action_dim} finite numbers, got {action!r}")
        clipped = bool(np.any(np.abs(array) > 1.0))
        physical = self._centre + np.clip(array, -1.0, 1.0) * self._half
        reward = 0.0
        for _ in range(self._config.action_repeat):  # the action held for one control period
            obs, gained, terminated, truncated, info = self._env.step(physical.astype(self._env.action_space.dtype))
            self._observed(obs)
            reward += float(gained)
            if terminated:
                break
        self._steps += 1
        limit = self._config.max_episode_steps
        truncated = bool(truncated or (limit and self._steps >= limit))
        return (self._observe(render), float(reward), bool(terminated), truncated,
                {**info, "clipped": clipped, "steps": self._steps})

    def state(self) -> np.ndarray:
        return self._access.read()

    def render(self) -> np.ndarray:
        frame = np.asarray(self._env.render())
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise RuntimeError(f"{self.name}: render() gave {frame.dtype} {frame.shape}, not an RGB frame")
        width, height = self._config.image_width, self._config.image_height
        return frame if frame.shape[:2] == (height, width) else resize(frame, (width, height))

    def render_goal(self, state: np.ndarray) -> np.ndarray:
        """The frame seen in ``state``; the running episode is put back as it was."""
        state = self.validate_state(state)
        here = self._access.read()
        self._access.write(state)
        try:
            return self.render()
        finally:
            self._access.write(here)

    def route(self, start: np.ndarray, goal: np.ndarray) -> list[np.ndarray] | None:
        """Task-position waypoints from state ``start`` to state ``goal`` along a shortest path the
        env family knows (PointMaze: through the maze's free cells), ending at the goal; None where
        the family knows no map, or the goal cannot be reached."""
        return self._access.route(self.validate_state(start), self.validate_state(goal))

    def path_length(self, start: np.ndarray, goal: np.ndarray) -> float | None:
        """Length of ``route(start, goal)`` from the start's task position (the shortest way, in position
        units: PointMaze's through the cell centres where it turns); None where there is no route."""
        route = self.route(start, goal)
        if route is None:
            return None
        points = np.stack([self.task_position(np.asarray(start, dtype=np.float64)), *route])
        return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())

    def steer(self, state: np.ndarray, target: np.ndarray, speed: float = 1.0) -> np.ndarray | None:
        """A normalised action (may exceed [-1, 1]) that moves true ``state``'s task position towards
        ``target`` and holds it there, ``speed`` times as briskly as the explorer's pace; None where the
        family knows no such law."""
        return self._access.steer(np.asarray(state, dtype=np.float64), np.asarray(target, dtype=np.float64),
                                  speed)

    def goal_state(self) -> np.ndarray | None:
        """The env's own goal of this episode as a state at rest (None if it has none)."""
        return self._access.goal()

    def task_pair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
        """A (start, goal) pair as the env itself draws them at a reset seeded from ``rng``, or None
        if the env has no goal of its own. The running episode is left at that reset."""
        obs, _ = self._env.reset(seed=int(rng.integers(2 ** 31)))
        self._observed(obs)
        goal = self._access.goal()
        return None if goal is None else (self.validate_state(self._access.read()), self.validate_state(goal))

    def validate_state(self, state: Any) -> np.ndarray:
        array = np.asarray(state, dtype=np.float64)
        if array.shape != (self.state_dim,):
            raise ValueError(f"{self.name}: state must have shape ({self.state_dim},) {self.state_names}, "
                             f"got shape {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError(f"{self.name}: state must be finite, got {array.tolist()}")
        self._access.check(array)
        return array

    def sample_state(self, rng: np.random.Generator | None = None) -> np.ndarray:
        return self._access.sample(self._rng if rng is None else rng)

    def task_position(self, state: np.ndarray) -> np.ndarray:
        return self._access.task_position(state)

    def goal_distance(self, state: np.ndarray, goal_state: np.ndarray) -> float:
        return float(np.linalg.norm(self.task_position(state) - self.task_position(goal_state)))

    # --- what the built-in envs also have -----------------------------------------
    @property
    def changes(self) -> dict[str, float]:
        return {}

    def set_changes(self, **changes: float | None) -> dict[str, tuple[float, float]]:
        """World changes exist only in the built-in envs: asking for one (a value other than the
        setting's neutral default) is a ConfigError; the neutral values change nothing."""
        neutral = {name: EnvConfig.__dataclass_fields__[name].default for name in CHANGE_SETTINGS}
        asked = {k: v for k, v in changes.items() if v is not None and v != neutral.get(k)}
        if asked:
            raise ConfigError(f"{self.name}: world changes ({', '.join(asked)}) exist only in the built-in envs")
        return {}

    def robot_state(self) -> RobotState:
        """The true state as joint positions and velocities, named as the state is."""
        state, names = self.state(), self.state_names
        pos = [i for i, u in enumerate(self.state_units) if "/" not in u]
        vel = [i for i, u in enumerate(self.state_units) if "/" in u]
        if len(vel) != len(pos):
            vel = []
        return RobotState(tuple(names[i] for i in pos), state[pos], state[vel] if vel else np.zeros(len(pos)))

    def camera_intrinsics(self) -> tuple[float, float, float, float]:
        """A pinhole with a 45 degree vertical field of view (the env's own camera model is not read)."""
        width, height = self._config.image_width, self._config.image_height
        focal = (height / 2) / math.tan(math.radians(45.0) / 2)
        return focal, focal, (width - 1) / 2, (height - 1) / 2

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

    def __enter__(self) -> "GymEnv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- helpers ----------------------------------------------------------------
    def _observed(self, obs) -> None:
        if isinstance(self._access, ObservationState):
            self._access.observe(obs)

    def _observe(self, render: bool) -> Observation:
        return Observation(self.render() if render else None, self.state(), self._steps * self.control_period)


def _gym_make(config: GymConfig):
    try:
        import gymnasium
    except ModuleNotFoundError:
        raise ConfigError(f"gym:{config.env_id} needs gymnasium (not installed): pip install gymnasium "
                          f"(and gymnasium-robotics for the mazes)") from None
    if config.env_id.split("/")[-1].startswith(("PointMaze", "AntMaze", "Fetch", "Adroit", "FrankaKitchen")):
        try:
            import gymnasium_robotics
            gymnasium.register_envs(gymnasium_robotics)
        except ModuleNotFoundError:
            raise ConfigError(f"gym:{config.env_id} needs gymnasium-robotics (not installed): "
                              f"pip install gymnasium-robotics") from None
    kwargs = {**config.kwargs, "render_mode": "rgb_array"}
    if config.max_episode_steps:
        kwargs["max_episode_steps"] = config.max_episode_steps
    try:
        return gymnasium.make(config.env_id, width=config.image_width, height=config.image_height, **kwargs)
    except TypeError:  # an env that does not take a frame size: its frames are resized
        pass
    except gymnasium.error.Error as exc:
        raise ConfigError(f"gym:{config.env_id}: {exc}") from None
    try:
        return gymnasium.make(config.env_id, **kwargs)
    except gymnasium.error.Error as exc:
        raise ConfigError(f"gym:{config.env_id}: {exc}") from None
