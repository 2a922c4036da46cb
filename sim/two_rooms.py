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

The door can move: with ``door_y_range`` > 0 (registered as
``two_rooms_random_door``) its centre is drawn uniformly in ``door_y`` +-
``door_y_range`` at every reset, the state gains the door's ``door_y``, and
the camera and the goal image show where it is. The two wall pieces beside
the door are then mocap bodies, so each MjData (the running simulation, the
goal render) carries its own door.

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

__all__ = ["TwoRoomsConfig", "TwoRoomsEnv", "door_waypoints"]

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
DOOR_APPROACH = 0.25    # m before and beyond the door where a route lines up with it
MIN_WALL_PIECE = 0.05   # m, the shortest wall piece a moving door leaves beside it

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
    door_y: float = setting(0.0, "y of the door centre in metres (the middle of its range if it moves)",
                            low=-1.0, high=1.0)
    door_y_range: float = setting(0.0, "the door centre is drawn uniformly in door_y +- door_y_range (m) at "
                                  "every reset; 0 keeps the door in place", low=0.0, high=1.0)
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
        reach = ARENA_HALF - MIN_WALL_PIECE - self.door_width / 2
        if self.door_y_range > 0 and abs(self.door_y) + self.door_y_range > reach + 1e-9:
            self._fail("door_y_range", self.door_y_range,
                       f"a moving door (width {self.door_width:g} m) must leave at least {MIN_WALL_PIECE:g} m "
                       f"of wall on either side: |door_y| + door_y_range <= {reach:g} m")
        if self.drive == "differential" and self.action_rotation_deg != 0.0:
            self._fail("action_rotation_deg", self.action_rotation_deg,
                       "expected 0 with drive differential: its actions (v, omega) are a speed and a turn rate, "
                       "not a planar velocity that could be rotated (use drive holonomic)")


def door_waypoints(start: np.ndarray, goal: np.ndarray, door_y: float) -> list[np.ndarray]:
    """Waypoints (x, y) in m from position ``start`` to position ``goal`` (the first two values of each
    are read) in a world split by the wall at x = 0 with a door centred at y = ``door_y``: the goal in
    the same room; else a point ``DOOR_APPROACH`` before the door, one as far beyond it, then the goal."""
    goal = np.array(goal[:2], dtype=np.float64)
    side = math.copysign(1.0, start[0])
    if math.copysign(1.0, goal[0]) == side:
        return [goal]
    return [np.array([side * DOOR_APPROACH, door_y]), np.array([-side * DOOR_APPROACH, door_y]), goal]


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
    waypoint_switch = 0.1  # m from a route's waypoint at which a follower heads for the next

    def __init__(self, config: TwoRoomsConfig | None = None) -> None:
        self._door_pieces: tuple[int, int] | None = None  # the mocap wall pieces of a moving door
        super().__init__(config)

    @property
    def config(self) -> TwoRoomsConfig:
        return self._config

    @property
    def moving_door(self) -> bool:
        return self._config.door_y_range > 0

    @property
    def holonomic(self) -> bool:
        return self._config.drive == "holonomic"

    @property
    def name(self) -> str:
        if self.moving_door:
            return "two_rooms_random_door" if self.holonomic else "two_rooms_diff_random_door"
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
        names = ("x", "y", "vx", "vy") if self.holonomic else ("x", "y", "yaw", "v", "omega")
        return names + (("door_y",) if self.moving_door else ())

    @property
    def state_units(self) -> tuple[str, ...]:
        units = ("m", "m", "m/s", "m/s") if self.holonomic else ("m", "m", "rad", "m/s", "rad/s")
        return units + (("m",) if self.moving_door else ())

    @property
    def door_y(self) -> float:
        """The y of the door centre in the running simulation, m."""
        return float(self.data.userdata[0]) if self.moving_door else self._config.door_y

    # --- the world ------------------------------------------------------------
    def walls(self, door_y: float | None = None) -> list[tuple[float, float, float, float]]:
        """Wall boxes as (centre x, centre y, half size x, half size y) in metres: the four outer
        walls, then the pieces below and above the door (at ``door_y``, by default where it is now)."""
        half_t, outer = WALL_THICKNESS / 2, ARENA_HALF + WALL_THICKNESS
        boxes = [(-ARENA_HALF - half_t, 0.0, half_t, outer), (ARENA_HALF + half_t, 0.0, half_t, outer),
                 (0.0, -ARENA_HALF - half_t, outer, half_t), (0.0, ARENA_HALF + half_t, outer, half_t)]
        return boxes + self._door_pieces_at(self.door_y if door_y is None else door_y)

    def _door_pieces_at(self, door_y: float) -> list[tuple[float, float, float, float]]:
        door_low, door_high = door_y - self._config.door_width / 2, door_y + self._config.door_width / 2
        return [(0.0, (low + high) / 2, WALL_THICKNESS / 2, (high - low) / 2)
                for low, high in ((-ARENA_HALF, door_low), (door_high, ARENA_HALF)) if high - low > 1e-9]

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
        wall = f'type="box" rgba="{WALL_RGBA}" condim="1" solref="{solref}"'
        boxes = self.walls(self._config.door_y)
        fixed = boxes[:4] if self.moving_door else boxes
        walls = "\n".join(
            f'    <geom name="wall{i}" pos="{x:g} {y:g} {WALL_HEIGHT / 2:g}" '
            f'size="{hx:g} {hy:g} {WALL_HEIGHT / 2:g}" {wall}/>' for i, (x, y, hx, hy) in enumerate(fixed))
        if self.moving_door:  # each piece beside the door is a mocap body: per-MjData positions
            walls += "\n" + "\n".join(
                f'    <body name="door_piece{i}" mocap="true" pos="{x:g} {y:g} {WALL_HEIGHT / 2:g}">\n'
                f'      <geom name="wall{4 + i}" size="{hx:g} {hy:g} {WALL_HEIGHT / 2:g}" {wall}/>\n'
                f'    </body>' for i, (x, y, hx, hy) in enumerate(boxes[4:]))
        nose = "" if self.holonomic else (
            f'      <geom name="nose" type="box" pos="{BASE_RADIUS * 0.5:g} 0 {BASE_HEIGHT / 2 + 0.002:g}" '
            f'size="{BASE_RADIUS * 0.48:g} {BASE_RADIUS * 0.5:g} 0.002" rgba="{NOSE_RGBA}" '
            f'contype="0" conaffinity="0"/>')
        return f"""
<mujoco model="two_rooms">
  <option timestep="{cfg.physics_timestep:g}" integrator="implicitfast"/>
  <size nuserdata="1"/>
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
        door = (float(data.userdata[0]),) if self.moving_door else ()
        if self.holonomic:
            return np.array([x, y, vx, vy, *door])
        forward = vx * math.cos(yaw) + vy * math.sin(yaw)
        return np.array([x, y, _wrap(yaw), forward, wz, *door])

    def _write_state(self, data: mujoco.MjData, state: np.ndarray) -> None:
        if self.moving_door:
            self._place_door(data, float(state[-1]))
            state = state[:-1]
        if self.holonomic:
            x, y, vx, vy = state
            data.qpos[:] = (x, y, 0.0)
            data.qvel[:] = (vx, vy, 0.0)
        else:
            x, y, yaw, v, omega = state
            data.qpos[:] = (x, y, _wrap(yaw))
            data.qvel[:] = (v * math.cos(yaw), v * math.sin(yaw), omega)

    def _place_door(self, data: mujoco.MjData, door_y: float) -> None:
        """Put the door of ``data`` at ``door_y``: the pieces' mocap positions (per MjData) and
        lengths (in the model, shared: ``render_goal`` puts them back for the running simulation)."""
        if self._door_pieces is None:
            pieces = []
            for i in (4, 5):
                geom = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, f"wall{i}")
                # Bounds that hold for any length up to the whole wall: collisions are never culled.
                half = (WALL_THICKNESS / 2, ARENA_HALF, WALL_HEIGHT / 2)
                self.model.geom_rbound[geom] = math.hypot(*half)
                self.model.geom_aabb[geom] = (0.0, 0.0, 0.0, *half)
                pieces.append((geom, int(self.model.body_mocapid[self.model.geom_bodyid[geom]])))
            self._door_pieces = tuple(pieces)
        data.userdata[0] = door_y
        for (geom, mocap), (x, y, hx, hy) in zip(self._door_pieces, self._door_pieces_at(door_y)):
            self.model.geom_size[geom, :2] = (hx, hy)
            data.mocap_pos[mocap] = (x, y, WALL_HEIGHT / 2)

    def render_goal(self, state: np.ndarray) -> np.ndarray:
        image = super().render_goal(state)
        if self.moving_door:  # the goal's door sized the wall pieces: back to the running door
            self._place_door(self.data, self.door_y)
        return image

    def _check_state(self, state: np.ndarray) -> None:
        x, y = state[:2]
        limit = ARENA_HALF - BASE_RADIUS + CONTACT_TOLERANCE
        if abs(x) > limit or abs(y) > limit:
            raise ValueError(f"{self.name}: base at (x, y) = ({x:.3f}, {y:.3f}) m is outside the arena; "
                             f"its centre must satisfy |x|, |y| <= {ARENA_HALF - BASE_RADIUS:g} m")
        door_y = self.state_door(state)
        for cx, cy, hx, hy in self.walls(door_y):
            gap = math.hypot(max(abs(x - cx) - hx, 0.0), max(abs(y - cy) - hy, 0.0))
            if gap < BASE_RADIUS - CONTACT_TOLERANCE:
                raise ValueError(f"{self.name}: base at (x, y) = ({x:.3f}, {y:.3f}) m overlaps the wall "
                                 f"centred at ({cx:g}, {cy:g}) m (base radius {BASE_RADIUS:g} m)")

    def state_door(self, state: np.ndarray) -> float:
        """The door centre (m) in ``state``: its last value if the door moves (ValueError if that is out
        of the door's range), else the config's."""
        cfg = self._config
        if not self.moving_door:
            return cfg.door_y
        door_y = float(state[-1])
        if abs(door_y - cfg.door_y) > cfg.door_y_range + 1e-9:
            raise ValueError(f"{self.name}: door_y = {door_y:.3f} m is outside the door's range "
                             f"{cfg.door_y:g} +- {cfg.door_y_range:g} m")
        return door_y

    def sample_state(self, rng: np.random.Generator | None = None, room: int | None = None,
                     door_y: float | None = None) -> np.ndarray:
        """A state at rest at a uniform position in ``room`` (0, 1, or None for either). A moving door
        is at ``door_y``, or drawn uniformly in its range when None."""
        rng = self._rng if rng is None else rng
        cfg = self._config
        if self.moving_door:
            door_y = rng.uniform(cfg.door_y - cfg.door_y_range, cfg.door_y + cfg.door_y_range) \
                if door_y is None else door_y
        elif door_y is not None and abs(door_y - cfg.door_y) > 1e-9:
            raise ValueError(f"{self.name}: the door stays at door_y = {cfg.door_y:g} m (door_y_range 0), "
                             f"asked for {door_y:g} m")
        if room is None:
            room = int(rng.integers(2))
        if room not in (0, 1):
            raise ValueError(f"{self.name}: room must be 0 (x < 0), 1 (x > 0) or None, got {room!r}")
        inner = WALL_THICKNESS / 2 + BASE_RADIUS + SAMPLE_MARGIN
        outer = ARENA_HALF - BASE_RADIUS - SAMPLE_MARGIN
        x = rng.uniform(inner, outer) * (1 if room == 1 else -1)
        y = rng.uniform(-outer, outer)
        door = (door_y,) if self.moving_door else ()
        if self.holonomic:
            return np.array([x, y, 0.0, 0.0, *door])
        return np.array([x, y, rng.uniform(-math.pi, math.pi), 0.0, 0.0, *door])

    # --- the way between two states -------------------------------------------------
    def route(self, start: np.ndarray, goal: np.ndarray) -> list[np.ndarray] | None:
        """Waypoints (x, y) in m from state ``start`` to state ``goal``: the goal in the same room;
        else a point ``DOOR_APPROACH`` before the door (of ``start``), one as far beyond it, then the
        goal. None if the door is narrower than the base."""
        start, goal = self.validate_state(start), self.validate_state(goal)
        crossing = math.copysign(1.0, start[0]) != math.copysign(1.0, goal[0])
        if crossing and self._config.door_width < 2 * BASE_RADIUS:
            return None
        return door_waypoints(start, goal, self.state_door(start))

    def path_length(self, start: np.ndarray, goal: np.ndarray) -> float | None:
        """The geodesic distance (m) the base centre travels from ``start`` to ``goal``: straight in
        one room; between rooms, through the part of the door the base fits through (the wall taken
        as thin), bending at the door's edge where the straight line misses it. None if the door is
        narrower than the base."""
        start, goal = self.validate_state(start), self.validate_state(goal)
        a, b = start[:2], goal[:2]
        if math.copysign(1.0, a[0]) == math.copysign(1.0, b[0]):
            return float(np.linalg.norm(b - a))
        play = self._config.door_width / 2 - BASE_RADIUS
        if play < 0:
            return None
        door_y = self.state_door(start)
        # The length through (0, y) is convex in y: the best y in the gap is the straight line's, clipped.
        crossing = a[1] + (b[1] - a[1]) * abs(a[0]) / (abs(a[0]) + abs(b[0]))
        y = min(max(crossing, door_y - play), door_y + play)
        return float(math.hypot(a[0], a[1] - y) + math.hypot(b[0], b[1] - y))

    def steer(self, state: np.ndarray, target: np.ndarray, speed: float = 1.0) -> np.ndarray:
        """A normalised action (may exceed [-1, 1]) towards position ``target`` (x, y) in m: holonomic,
        the velocity that closes the error in 0.5 / ``speed`` s; differential, turn to it and drive
        while facing it."""
        dx, dy = float(target[0] - state[0]), float(target[1] - state[1])
        gain = 2.0 * speed
        if self.holonomic:
            return gain * np.array([dx, dy]) / self.action_scale
        error = _wrap(math.atan2(dy, dx) - state[2])
        forward = gain * math.hypot(dx, dy) * max(math.cos(error), 0.0)
        return np.array([forward, 1.5 * gain * error]) / self.action_scale

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
