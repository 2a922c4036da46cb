"""The shared machinery of the built-in MuJoCo environments.

A concrete environment subclasses :class:`MujocoEnv` and supplies the MJCF
model (as an XML string), how a normalised action becomes actuator controls,
how its true state maps to and from ``qpos``/``qvel``, how a valid state is
sampled and checked, and the task metric. Everything else - the model, the
offscreen renderer, sub-stepping, the random generator, the camera model and
the gymnasium-style ``reset``/``step`` API - lives here.

World changes: three settings (``CHANGE_SETTINGS``) change the robot or the
scene while an episode runs, through :meth:`MujocoEnv.set_changes`, so that
an online learner can be tested on a world that changes under it: the
commanded base velocity rotated (``action_rotation_deg``), every command
scaled (``action_gain``), and the scene light scaled (``light_scale``, a
change of appearance only). Their defaults change nothing, bit for bit.

Frames and units: the world frame is z-up, metres and radians; times are
simulated seconds. Every environment has one fixed camera named
``"overhead"``; its images are RGB, row 0 at the top. The camera model
follows the ROS/OpenCV convention (``camera_optical_frame``: x right, y down,
z forward; pixel ``(u, v) = (0, 0)`` is the centre of the top-left pixel).
"""
from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any, ClassVar

import mujoco
import numpy as np

from jepa_pilot.common.config import Config, setting

__all__ = ["CHANGE_SETTINGS", "EnvConfig", "MujocoEnv", "Observation", "RobotState"]

# The settings MujocoEnv.set_changes may change while an episode runs (EnvConfig fields).
CHANGE_SETTINGS = ("action_rotation_deg", "action_gain", "light_scale")
# Their ranges, shared with the sim node's parameters. The gain stops short of 0, where
# actions would have no effect and there would be nothing to adapt to; 2 doubles the
# robot's speed. The light floor is already saturated white from a scale of about 1.14,
# so more than 1.5 would only wash out the remaining colours; at 0.5 it is half as bright.
ROTATION_RANGE_DEG = (-180.0, 180.0)
GAIN_RANGE = (0.1, 2.0)
LIGHT_RANGE = (0.5, 1.5)
_LIGHT_COLOURS = ("ambient", "diffuse", "specular")


@dataclasses.dataclass(frozen=True)
class Observation:
    """What an environment returns after ``reset`` and ``step``.

    ``image`` is the overhead camera frame, uint8 RGB of shape (H, W, 3), or
    None when the step was taken with ``render=False``. ``state`` is the true
    state (float64, layout in the environment's ``state_names``) and ``time``
    the simulated time in seconds since the last reset.
    """

    image: np.ndarray | None
    state: np.ndarray
    time: float


@dataclasses.dataclass(frozen=True)
class RobotState:
    """Proprioception in the form a ROS robot reports it.

    ``joint_*`` follow ``joint_names`` (rad, rad/s; empty for a mobile base).
    ``base_pose`` is (x, y, yaw) in the world frame (m, m, rad) and
    ``base_twist`` (vx, vy, wz) in the BODY frame (m/s, m/s, rad/s), as in
    nav_msgs/Odometry; both are None for a fixed arm.
    """

    joint_names: tuple[str, ...]
    joint_positions: np.ndarray
    joint_velocities: np.ndarray
    base_pose: tuple[float, float, float] | None = None
    base_twist: tuple[float, float, float] | None = None


@dataclasses.dataclass(frozen=True)
class EnvConfig(Config):
    """Settings every built-in environment shares."""

    image_width: int = setting(64, "camera image width in pixels", low=16, high=1024)
    image_height: int = setting(64, "camera image height in pixels", low=16, high=1024)
    control_period: float = setting(0.1, "simulated seconds per step() (one action)",
                                    low=0.001, high=10.0)
    physics_timestep: float = setting(0.005, "MuJoCo integration timestep in seconds",
                                      low=0.0001, high=0.05)
    max_episode_steps: int = setting(200, "steps after which step() reports truncated", low=1)
    action_rotation_deg: float = setting(
        0.0, "world change: degrees (counter-clockwise) by which a base's commanded (vx, vy) is rotated "
        "before it is applied (holonomic bases only)", low=ROTATION_RANGE_DEG[0], high=ROTATION_RANGE_DEG[1])
    action_gain: float = setting(1.0, "world change: factor on every command the robot applies",
                                 low=GAIN_RANGE[0], high=GAIN_RANGE[1])
    light_scale: float = setting(1.0, "world change: factor on the scene light (brighter or darker "
                                 "images, same geometry)", low=LIGHT_RANGE[0], high=LIGHT_RANGE[1])

    def __post_init__(self) -> None:
        super().__post_init__()
        ratio = self.control_period / self.physics_timestep
        if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-6 * ratio:
            self._fail("control_period", self.control_period,
                       f"expected a whole multiple of physics_timestep = {self.physics_timestep:g} s "
                       f"(got {ratio:.6g} physics steps per control step)")

    @property
    def n_substeps(self) -> int:
        """Physics steps per ``step()``."""
        return round(self.control_period / self.physics_timestep)


class MujocoEnv(abc.ABC):
    """Base class: a MuJoCo model seen by one fixed camera, driven by normalised actions.

    Subclasses set the class attributes below, build the model in
    :meth:`_model_xml` and implement the abstract methods. Actions given to
    :meth:`step` are normalised to [-1, 1] per dimension; ``action_scale``
    holds the physical value (in ``action_units``) of a normalised 1.0.
    """

    config_class: ClassVar[type[EnvConfig]] = EnvConfig
    camera_name: ClassVar[str] = "overhead"
    camera_frame_id: ClassVar[str] = "camera_optical_frame"

    def __init__(self, config: EnvConfig | None = None) -> None:
        config = self.config_class() if config is None else config
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, "
                            f"got {type(config).__name__}")
        self._config = config
        self.model = mujoco.MjModel.from_xml_string(self._model_xml())
        self.model.opt.timestep = config.physics_timestep
        self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, config.image_width)
        self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, config.image_height)
        self.data = mujoco.MjData(self.model)
        self._goal_data = mujoco.MjData(self.model)  # scratch data for render_goal()
        self._camera_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, self.camera_name)
        if self._camera_id < 0:
            raise RuntimeError(f"{type(self).__name__}: the model has no camera {self.camera_name!r}")
        self._renderer = mujoco.Renderer(self.model, config.image_height, config.image_width)
        self._built_light = [colour.copy() for colour in self._light_colours()]
        self._scale_light()
        self._rng = np.random.default_rng()
        self._steps = 0
        self.reset(seed=0, render=False)

    # --- what a subclass provides -------------------------------------------
    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The registered name of this environment variant."""

    @property
    @abc.abstractmethod
    def embodiment(self) -> str:
        """"holonomic_base", "diff_drive_base" or "arm"."""

    @property
    @abc.abstractmethod
    def action_names(self) -> tuple[str, ...]:
        """One name per action dimension."""

    @property
    @abc.abstractmethod
    def action_units(self) -> tuple[str, ...]:
        """The physical unit of each action dimension."""

    @property
    @abc.abstractmethod
    def action_scale(self) -> np.ndarray:
        """Physical value (in ``action_units``) of a normalised action of 1.0."""

    @property
    @abc.abstractmethod
    def state_names(self) -> tuple[str, ...]:
        """One name per true-state dimension."""

    @property
    @abc.abstractmethod
    def state_units(self) -> tuple[str, ...]:
        """One unit per true-state dimension: m or rad for what one frame shows, m/s or rad/s for rates."""

    @abc.abstractmethod
    def _model_xml(self) -> str:
        """The MJCF model; it must contain a camera named ``camera_name``."""

    @abc.abstractmethod
    def _apply_action(self, command: np.ndarray) -> None:
        """Set ``self.data.ctrl`` from a command in physical units (already clipped)."""

    @abc.abstractmethod
    def _read_state(self, data: mujoco.MjData) -> np.ndarray:
        """The true state held in ``data``."""

    @abc.abstractmethod
    def _write_state(self, data: mujoco.MjData, state: np.ndarray) -> None:
        """Put a validated true state into ``data.qpos``/``data.qvel``."""

    @abc.abstractmethod
    def _check_state(self, state: np.ndarray) -> None:
        """Raise ValueError saying what is wrong if a finite state is not valid."""

    @abc.abstractmethod
    def sample_state(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """A valid (collision-free) state at rest; ``rng`` defaults to the env's own."""

    @abc.abstractmethod
    def task_position(self, state: np.ndarray) -> np.ndarray:
        """Where the task happens, (x, y) in metres: the base's position, an arm's fingertip."""

    def goal_distance(self, state: np.ndarray, goal_state: np.ndarray) -> float:
        """The task metric between two states: distance of their task positions, in metres."""
        return float(np.linalg.norm(self.task_position(state) - self.task_position(goal_state)))

    @abc.abstractmethod
    def robot_state(self) -> RobotState:
        """The current proprioception."""

    # --- common properties --------------------------------------------------
    @property
    def config(self) -> EnvConfig:
        return self._config

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    @property
    def n_substeps(self) -> int:
        return self._config.n_substeps

    @property
    def control_period(self) -> float:
        """Simulated seconds per ``step()``."""
        return self._config.control_period

    @property
    def can_set_state(self) -> bool:
        """Whether ``reset(state=...)`` and ``render_goal`` work (always, in the built-in envs)."""
        return True

    @property
    def steps(self) -> int:
        """Number of ``step()`` calls since the last reset."""
        return self._steps

    # --- episode API --------------------------------------------------------
    def reset(self, seed: int | None = None, state: np.ndarray | None = None,
              *, render: bool = True) -> tuple[Observation, dict[str, Any]]:
        """Start an episode in ``state``, or in a state sampled with ``seed``.

        ``seed`` reseeds the env's random generator (None keeps it going).
        A given ``state`` is validated first (ValueError on a bad one, and
        the simulation is left as it was). ``render=False`` skips the image.
        """
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        state = self.sample_state(self._rng) if state is None else self.validate_state(state)
        mujoco.mj_resetData(self.model, self.data)
        self._write_state(self.data, state)
        mujoco.mj_forward(self.model, self.data)
        self._steps = 0
        return self._observe(render), {"seed": seed}

    def step(self, action: Any, *, render: bool = True
             ) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """Apply a normalised action for one control period.

        Returns (observation, reward, terminated, truncated, info). These
        environments are goal-free: reward is 0.0 and terminated False;
        truncated becomes True once ``max_episode_steps`` steps are taken.
        ``info["clipped"]`` says whether the action was outside [-1, 1].
        ``render=False`` skips the image (``observation.image`` is None), for
        fast rollouts that only need the state.
        """
        action = self._check_action(action)
        clipped = bool(np.any(np.abs(action) > 1.0))
        self._apply_action(self._changed_command(np.clip(action, -1.0, 1.0) * self.action_scale))
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)
        self._steps += 1
        truncated = self._steps >= self._config.max_episode_steps
        return self._observe(render), 0.0, False, truncated, {"clipped": clipped, "steps": self._steps}

    # --- world changes --------------------------------------------------------
    @property
    def changes(self) -> dict[str, float]:
        """The current world changes (``CHANGE_SETTINGS``), by setting name."""
        return {name: getattr(self._config, name) for name in CHANGE_SETTINGS}

    def set_changes(self, *, action_rotation_deg: float | None = None, action_gain: float | None = None,
                    light_scale: float | None = None) -> dict[str, tuple[float, float]]:
        """Change the world while it runs; None leaves a setting as it is.

        No reset is needed and the simulation state is untouched: commands
        change from the next ``step()``, the light from the next render
        (``render_goal`` included), and later resets keep the changes. The
        new values are validated as config fields (ConfigError on a bad one,
        and nothing changes) and ``config`` reports them. Returns
        {name: (old, new)} for the settings whose value changed, so a caller
        can say what changed.
        """
        asked = {"action_rotation_deg": action_rotation_deg, "action_gain": action_gain,
                 "light_scale": light_scale}
        before = self.changes
        changed = {name: value for name, value in asked.items() if value is not None and value != before[name]}
        if not changed:
            return {}
        self._config = self._config.replace(**changed)
        self._scale_light()
        return {name: (before[name], getattr(self._config, name)) for name in changed}

    def state(self) -> np.ndarray:
        """The current true state (a copy)."""
        return self._read_state(self.data)

    def render(self) -> np.ndarray:
        """The current camera image, uint8 RGB (H, W, 3)."""
        return self._render(self.data)

    def render_goal(self, state: np.ndarray) -> np.ndarray:
        """The image seen in ``state``; the running simulation is not touched."""
        state = self.validate_state(state)
        mujoco.mj_resetData(self.model, self._goal_data)
        self._write_state(self._goal_data, state)
        mujoco.mj_forward(self.model, self._goal_data)
        return self._render(self._goal_data)

    def validate_state(self, state: Any) -> np.ndarray:
        """``state`` as a float64 array, or ValueError saying what is wrong with it."""
        array = np.asarray(state, dtype=np.float64)
        if array.shape != (self.state_dim,):
            raise ValueError(f"{self.name}: state must have shape ({self.state_dim},) "
                             f"{self.state_names}, got shape {array.shape}")
        if not np.all(np.isfinite(array)):
            bad = [n for n, v in zip(self.state_names, array) if not math.isfinite(v)]
            raise ValueError(f"{self.name}: state has non-finite values in {', '.join(bad)}")
        self._check_state(array)
        return array

    # --- camera -------------------------------------------------------------
    def camera_intrinsics(self) -> tuple[float, float, float, float]:
        """Pinhole (fx, fy, cx, cy) in pixels of the rendered image (square pixels)."""
        width, height = self._config.image_width, self._config.image_height
        fovy = math.radians(self.model.cam_fovy[self._camera_id])
        focal = (height / 2) / math.tan(fovy / 2)
        return focal, focal, (width - 1) / 2, (height - 1) / 2

    def camera_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,), rotation (3, 3)) of ``camera_optical_frame`` in the world frame.

        The rotation's columns are the optical x (image right), y (image
        down) and z (viewing direction) axes in world coordinates.
        """
        position = self.data.cam_xpos[self._camera_id].copy()
        mujoco_cam = self.data.cam_xmat[self._camera_id].reshape(3, 3)  # x right, y up, looks along -z
        return position, mujoco_cam @ np.diag([1.0, -1.0, -1.0])

    def close(self) -> None:
        """Release the renderer (its OpenGL context)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> MujocoEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- helpers ------------------------------------------------------------
    @property
    def rng(self) -> np.random.Generator:
        """The env's random generator (reseeded by ``reset(seed=...)``)."""
        return self._rng

    def _check_action(self, action: Any) -> np.ndarray:
        try:
            array = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name}: action must be {self.action_dim} numbers "
                             f"{self.action_names}, got {action!r}") from None
        if array.shape != (self.action_dim,):
            raise ValueError(f"{self.name}: action must have shape ({self.action_dim},) "
                             f"{self.action_names}, got shape {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{self.name}: action must be finite, got {array.tolist()}")
        return array

    def _changed_command(self, command: np.ndarray) -> np.ndarray:
        """The command the (possibly changed) robot applies, in physical units.

        The rotation turns the first two dimensions (configs accept a non-zero
        rotation only where those are a planar velocity (vx, vy)). It is
        skipped at 0 so that default runs stay bit-identical; x * 1.0 is
        exact, so the gain needs no such care.
        """
        cfg = self._config
        if cfg.action_rotation_deg != 0.0:
            angle = math.radians(cfg.action_rotation_deg)
            cos, sin = math.cos(angle), math.sin(angle)
            vx, vy = command[0], command[1]
            command = command.copy()
            command[:2] = (cos * vx - sin * vy, sin * vx + cos * vy)
        return command * cfg.action_gain

    def _light_colours(self) -> list[np.ndarray]:
        """The headlight's and every model light's colours, as arrays the renderer reads in place."""
        headlight = self.model.vis.headlight
        return ([getattr(headlight, colour) for colour in _LIGHT_COLOURS]
                + [getattr(self.model, f"light_{colour}") for colour in _LIGHT_COLOURS])

    def _scale_light(self) -> None:
        """Set the light colours to the model's own times ``light_scale``; the next render shows them."""
        for colour, built in zip(self._light_colours(), self._built_light):
            colour[:] = built * self._config.light_scale

    def _observe(self, render: bool) -> Observation:
        return Observation(self.render() if render else None, self.state(), float(self.data.time))

    def _render(self, data: mujoco.MjData) -> np.ndarray:
        if self._renderer is None:
            raise RuntimeError(f"{self.name}: the environment is closed")
        self._renderer.update_scene(data, camera=self._camera_id)
        return self._renderer.render()
