"""Two rooms: a mobile base in a 2 m x 2 m arena split by a wall with one door.

The arena spans [-1, 1] m in x and y (world frame, z up). A wall at x = 0
splits it into room 0 (x < 0) and room 1 (x > 0); a door of ``door_width``
centred at ``door_y`` is the only way between them. Walls are 0.05 m thick
and dark, the floor is light, the base is a red cylinder of radius 0.1 m. A
fixed overhead camera looks straight down and frames the whole arena: image
right is +x, image up is +y.

The base floats at a fixed height on slide joints x, y and a hinge yaw; it
collides with the walls only (frictionless, so it slides along them).
Velocity actuators in the body frame (forward, lateral, turn) track the
commanded velocities: a full-scale change takes two physics steps, after
which the error halves every step (under 1 % within 40 ms of a 100 ms
control period). Their force is bounded, so pressing against a wall moves
the base at most a few millimetres into it. With differential drive the
lateral actuator holds the sideways velocity at zero, as wheels would.

Why holonomic is the default: the overhead image then observes the whole
state (there is no heading to infer from a few pixels), planning through
the door needs no turning manoeuvres, and the public two-room JEPA
benchmarks use a point-mass agent, so results compare. The differential
variant (``drive="differential"``, registered as ``two_rooms_diff``) is for
diff-drive robots; its base carries a yellow nose so heading is visible.
"""
from __future__ import annotations

import dataclasses
import math

import mujoco
import numpy as np

from jepa_pilot.common.config import setting
from jepa_pilot.sim.base import EnvConfig, MujocoEnv, RobotState

__all__ = ["TwoRoomsConfig", "TwoRoomsEnv"]

ARENA_HALF = 1.0        # m, the free floor spans [-ARENA_HALF, ARENA_HALF] in x and y
WALL_THICKNESS = 0.05   # m
WALL_HEIGHT = 0.15      # m
BASE_RADIUS = 0.1       # m
BASE_HEIGHT = 0.08      # m
BASE_Z = 0.06           # m, height of the base centre above the floor
BASE_MASS = 2.0         # kg
CAMERA_FOVY = 45.0      # degrees
TRACKING = 1.0          # velocity gain in inertia / timestep: the error halves every physics step
SLEW_STEPS = 2          # physics steps the actuator force limit allows for a full-scale speed change
CONTACT_TOLERANCE = 0.01  # m the base may press into a wall in a valid state (contacts are soft)
SAMPLE_MARGIN = 0.02    # m kept between a sampled base and the walls

FLOOR_RGBA = "0.88 0.88 0.84 1"
WALL_RGBA = "0.12 0.12 0.16 1"
BASE_RGBA = "0.85 0.08 0.08 1"
NOSE_RGBA = "1.0 0.85 0.1 1"


@dataclasses.dataclass(frozen=True)
class TwoRoomsConfig(EnvConfig):
    """Settings of the two-rooms world."""

    drive: str = setting("holonomic", "base kinematics: holonomic (vx, vy) or differential (v, omega)",
                         choices=("holonomic", "differential"))
    door_width: float = setting(0.4, "width of the door in the middle wall in metres "
                                "(below the base diameter 0.2 m the rooms are closed)", low=0.0, high=2.0)
    door_y: float = setting(0.0, "y of the door centre in metres", low=-1.0, high=1.0)
    max_speed: float = setting(0.5, "linear speed of a normalised action of 1.0 in m/s",
                               low=0.01, high=5.0)
    max_turn_rate: float = setting(2.0, "turn rate of a normalised action of 1.0 in rad/s "
                                   "(differential drive)", low=0.01, high=20.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if abs(self.door_y) + self.door_width / 2 > ARENA_HALF + 1e-9:
            self._fail("door_y", self.door_y,
                       f"the door (width {self.door_width:g} m) must lie within the wall, "
                       f"i.e. |door_y| + door_width / 2 <= {ARENA_HALF:g} m")
        if self.drive == "differential" and self.action_rotation_deg != 0.0:
            self._fail("action_rotation_deg", self.action_rotation_deg,
                       "expected 0 with drive differential: its actions (v, omega) are a speed and a turn rate, "
                       "not a planar velocity that could be rotated (use drive holonomic)")


def _wrap(angle: float) -> float:
    """An angle in radians wrapped to [-pi, pi)."""
    return (angle + math.pi) % (2 * math.pi) - math.pi


class TwoRoomsEnv(MujocoEnv):
    """A base in two rooms, seen from above.

    Holonomic drive: action (vx, vy) in the body frame, whose heading is held
    at 0 so it equals the world frame; state (x, y, vx, vy) in m and m/s.
    Differential drive: action (v, omega), forward speed and turn rate;
    state (x, y, yaw, v, omega) in m, rad, m/s and rad/s, yaw in [-pi, pi).
    """

    config_class = TwoRoomsConfig
    _config: TwoRoomsConfig

    base_radius = BASE_RADIUS
    base_top_z = BASE_Z + BASE_HEIGHT / 2

    @property
    def config(self) -> TwoRoomsConfig:
        return self._config

    @property
    def holonomic(self) -> bool:
        return self._config.drive == "holonomic"

    @property
    def name(self) -> str:
        return "two_rooms" if self.holonomic else "two_rooms_diff"

    @property
    def embodiment(self) -> str:
        return "holonomic_base" if self.holonomic else "diff_drive_base"

    @property
    def action_names(self) -> tuple[str, ...]:
        return ("vx", "vy") if self.holonomic else ("v", "omega")

    @property
    def action_units(self) -> tuple[str, ...]:
        return ("m/s", "m/s") if self.holonomic else ("m/s", "rad/s")

    @property
    def action_scale(self) -> np.ndarray:
        cfg = self._config
        second = cfg.max_speed if self.holonomic else cfg.max_turn_rate
        return np.array([cfg.max_speed, second])

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("x", "y", "vx", "vy") if self.holonomic else ("x", "y", "yaw", "v", "omega")

    @property
    def state_units(self) -> tuple[str, ...]:
        return ("m", "m", "m/s", "m/s") if self.holonomic else ("m", "m", "rad", "m/s", "rad/s")

    # --- the world ------------------------------------------------------------
    def walls(self) -> list[tuple[float, float, float, float]]:
        """Wall boxes as (centre x, centre y, half size x, half size y) in metres."""
        half_t, outer = WALL_THICKNESS / 2, ARENA_HALF + WALL_THICKNESS
        boxes = [(-ARENA_HALF - half_t, 0.0, half_t, outer), (ARENA_HALF + half_t, 0.0, half_t, outer),
                 (0.0, -ARENA_HALF - half_t, outer, half_t), (0.0, ARENA_HALF + half_t, outer, half_t)]
        door_low = self._config.door_y - self._config.door_width / 2
        door_high = self._config.door_y + self._config.door_width / 2
        for low, high in ((-ARENA_HALF, door_low), (door_high, ARENA_HALF)):
            if high - low > 1e-9:
                boxes.append((0.0, (low + high) / 2, half_t, (high - low) / 2))
        return boxes

    def _model_xml(self) -> str:
        cfg = self._config
        extent = ARENA_HALF + WALL_THICKNESS + 0.05  # half size of the framed square, m
        aspect = min(1.0, cfg.image_width / cfg.image_height)
        camera_z = WALL_HEIGHT + extent / (math.tan(math.radians(CAMERA_FOVY) / 2) * aspect)
        inertia_z = BASE_MASS * BASE_RADIUS ** 2 / 2
        kv_linear = TRACKING * BASE_MASS / cfg.physics_timestep
        kv_turn = TRACKING * inertia_z / cfg.physics_timestep
        # Bounded forces keep the base from pressing far into a (soft) wall.
        force = BASE_MASS * cfg.max_speed / (SLEW_STEPS * cfg.physics_timestep)
        torque = inertia_z * cfg.max_turn_rate / (SLEW_STEPS * cfg.physics_timestep)
        solref = f"{2 * cfg.physics_timestep:g} 1"
        walls = "\n".join(
            f'    <geom name="wall{i}" type="box" pos="{x:g} {y:g} {WALL_HEIGHT / 2:g}" '
            f'size="{hx:g} {hy:g} {WALL_HEIGHT / 2:g}" rgba="{WALL_RGBA}" condim="1" solref="{solref}"/>'
            for i, (x, y, hx, hy) in enumerate(self.walls()))
        nose = "" if self.holonomic else (
            f'      <geom name="nose" type="box" pos="{BASE_RADIUS * 0.5:g} 0 {BASE_HEIGHT / 2 + 0.002:g}" '
            f'size="{BASE_RADIUS * 0.48:g} {BASE_RADIUS * 0.5:g} 0.002" rgba="{NOSE_RGBA}" '
            f'contype="0" conaffinity="0"/>')
        return f"""
<mujoco model="two_rooms">
  <option timestep="{cfg.physics_timestep:g}" integrator="implicitfast"/>
  <visual>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.55 0.55 0.55" specular="0 0 0"/>
  </visual>
  <worldbody>
    <geom name="floor" type="plane" size="{extent + 1:g} {extent + 1:g} 0.1" rgba="{FLOOR_RGBA}"
          contype="0" conaffinity="0"/>
{walls}
    <camera name="{self.camera_name}" pos="0 0 {camera_z:g}" fovy="{CAMERA_FOVY:g}"/>
    <body name="base" pos="0 0 {BASE_Z:g}">
      <inertial pos="0 0 0" mass="{BASE_MASS:g}" diaginertia="{inertia_z:g} {inertia_z:g} {inertia_z:g}"/>
      <joint name="x" type="slide" axis="1 0 0"/>
      <joint name="y" type="slide" axis="0 1 0"/>
      <joint name="yaw" type="hinge" axis="0 0 1"/>
      <geom name="body" type="cylinder" size="{BASE_RADIUS:g} {BASE_HEIGHT / 2:g}" rgba="{BASE_RGBA}"
            contype="0" conaffinity="0"/>
      <!-- Collides in place of the cylinder: it meets a wall where the cylinder would, exactly. -->
      <geom name="collider" type="sphere" size="{BASE_RADIUS:g}" group="3" condim="1"
            solref="{solref}"/>
{nose}
      <site name="base"/>
    </body>
  </worldbody>
  <actuator>
    <velocity name="forward" site="base" gear="1 0 0 0 0 0" kv="{kv_linear:g}"
              forcerange="{-force:g} {force:g}"/>
    <velocity name="lateral" site="base" gear="0 1 0 0 0 0" kv="{kv_linear:g}"
              forcerange="{-force:g} {force:g}"/>
    <velocity name="turn" site="base" gear="0 0 0 0 0 1" kv="{kv_turn:g}"
              forcerange="{-torque:g} {torque:g}"/>
  </actuator>
</mujoco>"""

    # --- actions and state ------------------------------------------------------
    def _apply_action(self, command: np.ndarray) -> None:
        if self.holonomic:
            self.data.ctrl[:] = (command[0], command[1], 0.0)
        else:
            self.data.ctrl[:] = (command[0], 0.0, command[1])

    def _read_state(self, data: mujoco.MjData) -> np.ndarray:
        x, y, yaw = data.qpos
        vx, vy, wz = data.qvel
        if self.holonomic:
            return np.array([x, y, vx, vy])
        forward = vx * math.cos(yaw) + vy * math.sin(yaw)
        return np.array([x, y, _wrap(yaw), forward, wz])

    def _write_state(self, data: mujoco.MjData, state: np.ndarray) -> None:
        if self.holonomic:
            x, y, vx, vy = state
            data.qpos[:] = (x, y, 0.0)
            data.qvel[:] = (vx, vy, 0.0)
        else:
            x, y, yaw, v, omega = state
            data.qpos[:] = (x, y, _wrap(yaw))
            data.qvel[:] = (v * math.cos(yaw), v * math.sin(yaw), omega)

    def _check_state(self, state: np.ndarray) -> None:
        x, y = state[:2]
        limit = ARENA_HALF - BASE_RADIUS + CONTACT_TOLERANCE
        if abs(x) > limit or abs(y) > limit:
            raise ValueError(f"{self.name}: base at (x, y) = ({x:.3f}, {y:.3f}) m is outside the arena; "
                             f"its centre must satisfy |x|, |y| <= {ARENA_HALF - BASE_RADIUS:g} m")
        for cx, cy, hx, hy in self.walls():
            gap = math.hypot(max(abs(x - cx) - hx, 0.0), max(abs(y - cy) - hy, 0.0))
            if gap < BASE_RADIUS - CONTACT_TOLERANCE:
                raise ValueError(f"{self.name}: base at (x, y) = ({x:.3f}, {y:.3f}) m overlaps the wall "
                                 f"centred at ({cx:g}, {cy:g}) m (base radius {BASE_RADIUS:g} m)")

    def sample_state(self, rng: np.random.Generator | None = None, room: int | None = None) -> np.ndarray:
        """A state at rest at a uniform position in ``room`` (0, 1, or None for either)."""
        rng = self._rng if rng is None else rng
        if room is None:
            room = int(rng.integers(2))
        if room not in (0, 1):
            raise ValueError(f"{self.name}: room must be 0 (x < 0), 1 (x > 0) or None, got {room!r}")
        inner = WALL_THICKNESS / 2 + BASE_RADIUS + SAMPLE_MARGIN
        outer = ARENA_HALF - BASE_RADIUS - SAMPLE_MARGIN
        x = rng.uniform(inner, outer) * (1 if room == 1 else -1)
        y = rng.uniform(-outer, outer)
        if self.holonomic:
            return np.array([x, y, 0.0, 0.0])
        return np.array([x, y, rng.uniform(-math.pi, math.pi), 0.0, 0.0])

    @staticmethod
    def room_of(state: np.ndarray) -> int:
        """0 if the base is in the room at x < 0, else 1."""
        return 0 if state[0] < 0 else 1

    def task_position(self, state: np.ndarray) -> np.ndarray:
        """The base position (x, y) in metres."""
        return np.asarray(state, dtype=np.float64)[:2]

    def robot_state(self) -> RobotState:
        x, y, yaw = self.data.qpos
        vx, vy, wz = self.data.qvel
        cos, sin = math.cos(yaw), math.sin(yaw)
        body_twist = (float(cos * vx + sin * vy), float(-sin * vx + cos * vy), float(wz))
        return RobotState(joint_names=(), joint_positions=np.zeros(0), joint_velocities=np.zeros(0),
                          base_pose=(float(x), float(y), _wrap(float(yaw))), base_twist=body_twist)
