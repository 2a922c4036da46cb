"""Reacher: a planar two-link arm seen from above.

The shoulder sits at the world origin; the upper arm (0.5 m, blue) and the
forearm (0.4 m, green) turn about vertical axes, so the arm moves in the
horizontal plane and gravity plays no part. The fingertip is an orange
ball. A fixed overhead camera frames the whole reach: image right is +x,
image up is +y. Joint angles are measured counter-clockwise seen from above;
at (0, 0) the arm points along +x.

Actions are joint velocities (shoulder, elbow), normalised so that 1.0 is
``max_joint_speed``. Velocity actuators with bounded torque track them: a
full-scale change takes a few physics steps, after which the error roughly
halves every step. The joint limits (shoulder +-170 deg, elbow +-150 deg)
stop the arm; the joints carry motor armature, which keeps them nearly
decoupled.
"""
from __future__ import annotations

import dataclasses
import math

import mujoco
import numpy as np

from jepa_pilot.common.config import setting
from jepa_pilot.sim.base import EnvConfig, MujocoEnv, RobotState

__all__ = ["ReacherConfig", "ReacherEnv", "fingertip"]

UPPER_LENGTH, FORE_LENGTH = 0.5, 0.4      # m
UPPER_MASS, FORE_MASS, TIP_MASS = 1.0, 0.6, 0.1  # kg
ARMATURE = 0.5          # kg m^2, reflected motor inertia per joint; keeps the joints nearly decoupled
UPPER_RADIUS, FORE_RADIUS, TIP_RADIUS = 0.045, 0.04, 0.055  # m, as drawn
JOINT_LIMITS = (math.radians(170), math.radians(150))  # rad, symmetric: shoulder, elbow
ARM_Z = 0.05            # m, height of the upper arm's axis above the floor
CAMERA_FOVY = 45.0      # degrees
TRACKING = 1.0          # velocity gain in inertia / timestep: the error halves every physics step
SLEW_STEPS = 2          # physics steps the actuator force limit allows for a full-scale speed change
LIMIT_TOLERANCE = 0.02  # rad a valid state may lie beyond a joint limit (limits are soft)

FLOOR_RGBA = "0.88 0.88 0.84 1"
HUB_RGBA = "0.2 0.2 0.25 1"
UPPER_RGBA = "0.15 0.35 0.85 1"
FORE_RGBA = "0.1 0.65 0.25 1"
TIP_RGBA = "1.0 0.55 0.0 1"


@dataclasses.dataclass(frozen=True)
class ReacherConfig(EnvConfig):
    """Settings of the reacher arm."""

    max_joint_speed: float = setting(2.0, "joint speed of a normalised action of 1.0 in rad/s",
                                     low=0.01, high=20.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.action_rotation_deg != 0.0:
            self._fail("action_rotation_deg", self.action_rotation_deg,
                       "expected 0 for the arm: its actions are joint velocities (shoulder, elbow), not a planar "
                       "velocity that could be rotated; action_gain and light_scale apply to it")


def fingertip(state: np.ndarray) -> np.ndarray:
    """Fingertip (x, y) in metres in the world frame, from (q_shoulder, q_elbow, ...).

    Works on a single state (S,) or a batch (..., S).
    """
    state = np.asarray(state, dtype=np.float64)
    q1, q12 = state[..., 0], state[..., 0] + state[..., 1]
    x = UPPER_LENGTH * np.cos(q1) + FORE_LENGTH * np.cos(q12)
    y = UPPER_LENGTH * np.sin(q1) + FORE_LENGTH * np.sin(q12)
    return np.stack([x, y], axis=-1)


class ReacherEnv(MujocoEnv):
    """A planar two-link arm.

    Action (dq_shoulder, dq_elbow), normalised joint velocities.
    State (q_shoulder, q_elbow, dq_shoulder, dq_elbow) in rad and rad/s.
    """

    config_class = ReacherConfig
    _config: ReacherConfig

    name = "reacher"
    embodiment = "arm"
    joint_names = ("shoulder", "elbow")
    action_names = ("dq_shoulder", "dq_elbow")
    action_units = ("rad/s", "rad/s")
    state_names = ("q_shoulder", "q_elbow", "dq_shoulder", "dq_elbow")
    state_units = ("rad", "rad", "rad/s", "rad/s")
    tip_z = ARM_Z + 0.02
    # Reaching counts when the fingertip is within 5 cm of the goal's: inside the drawn fingertip ball
    # (radius 5.5 cm), 1.5 pixels of the 64-pixel image (3.2 cm per pixel), 5.6 % of the 0.9 m reach.
    success_radius = 0.05

    @property
    def config(self) -> ReacherConfig:
        return self._config

    @property
    def action_scale(self) -> np.ndarray:
        return np.full(2, self._config.max_joint_speed)

    def _model_xml(self) -> str:
        cfg = self._config
        extent = UPPER_LENGTH + FORE_LENGTH + TIP_RADIUS + 0.08  # half size of the framed square, m
        aspect = min(1.0, cfg.image_width / cfg.image_height)
        camera_z = self.tip_z + extent / (math.tan(math.radians(CAMERA_FOVY) / 2) * aspect)
        # Largest joint-space inertia each joint sees (arm stretched out), kg m^2.
        fore_about_shoulder = FORE_LENGTH ** 2 / 3 + UPPER_LENGTH * FORE_LENGTH + UPPER_LENGTH ** 2
        inertia_shoulder = (ARMATURE + UPPER_MASS * UPPER_LENGTH ** 2 / 3 + FORE_MASS * fore_about_shoulder
                            + TIP_MASS * (UPPER_LENGTH + FORE_LENGTH) ** 2)
        inertia_elbow = ARMATURE + FORE_MASS * FORE_LENGTH ** 2 / 3 + TIP_MASS * FORE_LENGTH ** 2
        inertias = (inertia_shoulder, inertia_elbow)
        kv = [TRACKING * inertia / cfg.physics_timestep for inertia in inertias]
        # Bounded torque keeps the arm from pressing far into its (soft) joint limits.
        torque = [inertia * cfg.max_joint_speed / (SLEW_STEPS * cfg.physics_timestep) for inertia in inertias]
        solref = f"{2 * cfg.physics_timestep:g} 1"
        shoulder_limit, elbow_limit = JOINT_LIMITS
        return f"""
<mujoco model="reacher">
  <compiler angle="radian"/>
  <option timestep="{cfg.physics_timestep:g}" integrator="implicitfast"/>
  <visual>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.55 0.55 0.55" specular="0 0 0"/>
  </visual>
  <default>
    <geom contype="0" conaffinity="0"/>
    <joint type="hinge" axis="0 0 1" limited="true" armature="{ARMATURE:g}" solreflimit="{solref}"/>
  </default>
  <worldbody>
    <geom name="floor" type="plane" size="{extent + 1:g} {extent + 1:g} 0.1" rgba="{FLOOR_RGBA}"/>
    <geom name="hub" type="cylinder" pos="0 0 {ARM_Z / 2:g}" size="0.07 {ARM_Z / 2:g}" rgba="{HUB_RGBA}"/>
    <camera name="{self.camera_name}" pos="0 0 {camera_z:g}" fovy="{CAMERA_FOVY:g}"/>
    <body name="upper_arm" pos="0 0 {ARM_Z:g}">
      <joint name="shoulder" range="{-shoulder_limit:.6f} {shoulder_limit:.6f}"/>
      <geom name="upper_arm" type="capsule" fromto="0 0 0 {UPPER_LENGTH:g} 0 0" size="{UPPER_RADIUS:g}"
            mass="{UPPER_MASS:g}" rgba="{UPPER_RGBA}"/>
      <body name="forearm" pos="{UPPER_LENGTH:g} 0 0.01">
        <joint name="elbow" range="{-elbow_limit:.6f} {elbow_limit:.6f}"/>
        <geom name="forearm" type="capsule" fromto="0 0 0 {FORE_LENGTH:g} 0 0" size="{FORE_RADIUS:g}"
              mass="{FORE_MASS:g}" rgba="{FORE_RGBA}"/>
        <geom name="fingertip" type="sphere" pos="{FORE_LENGTH:g} 0 0.01" size="{TIP_RADIUS:g}"
              mass="{TIP_MASS:g}" rgba="{TIP_RGBA}"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <velocity name="shoulder" joint="shoulder" kv="{kv[0]:g}" forcerange="{-torque[0]:g} {torque[0]:g}"/>
    <velocity name="elbow" joint="elbow" kv="{kv[1]:g}" forcerange="{-torque[1]:g} {torque[1]:g}"/>
  </actuator>
</mujoco>"""

    def _apply_action(self, command: np.ndarray) -> None:
        self.data.ctrl[:] = command

    def _read_state(self, data: mujoco.MjData) -> np.ndarray:
        return np.concatenate([data.qpos, data.qvel])

    def _write_state(self, data: mujoco.MjData, state: np.ndarray) -> None:
        data.qpos[:] = state[:2]
        data.qvel[:] = state[2:]

    def _check_state(self, state: np.ndarray) -> None:
        for name, angle, limit in zip(self.joint_names, state[:2], JOINT_LIMITS):
            if abs(angle) > limit + LIMIT_TOLERANCE:
                raise ValueError(f"{self.name}: {name} angle {angle:.3f} rad ({math.degrees(angle):.1f} deg) "
                                 f"is outside its limits +-{math.degrees(limit):g} deg")

    def sample_state(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """Joint angles uniform within their limits, at rest."""
        rng = self._rng if rng is None else rng
        limits = np.array(JOINT_LIMITS)
        return np.concatenate([rng.uniform(-limits, limits), np.zeros(2)])

    def task_position(self, state: np.ndarray) -> np.ndarray:
        """The fingertip (x, y) in metres."""
        return fingertip(state)

    def robot_state(self) -> RobotState:
        return RobotState(joint_names=self.joint_names, joint_positions=self.data.qpos.copy(),
                          joint_velocities=self.data.qvel.copy())
