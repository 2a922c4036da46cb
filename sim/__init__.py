"""jepa_pilot.sim: the built-in MuJoCo worlds behind a gymnasium-style API.

``make(name, **overrides)`` builds a registered environment (``registered()``
lists them: ``two_rooms``, ``two_rooms_diff``,
``two_rooms_random_door``, ``reacher``). Rendering is
offscreen; without a display MuJoCo uses EGL unless ``MUJOCO_GL`` says
otherwise. Nothing here imports ROS.
"""
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede the mujoco import

from jepa_pilot.sim.base import EnvConfig, MujocoEnv, Observation, RobotState  # noqa: E402
from jepa_pilot.sim.reacher import ReacherConfig, ReacherEnv  # noqa: E402
from jepa_pilot.sim.registry import config_class, default_config, make, register, registered  # noqa: E402
from jepa_pilot.sim.two_rooms import TwoRoomsConfig, TwoRoomsEnv  # noqa: E402

register("two_rooms", TwoRoomsEnv, TwoRoomsConfig, drive="holonomic")
register("two_rooms_diff", TwoRoomsEnv, TwoRoomsConfig, drive="differential")
register("two_rooms_random_door", TwoRoomsEnv, TwoRoomsConfig, drive="holonomic", door_y_range=0.6)
register("reacher", ReacherEnv, ReacherConfig)

__all__ = [
    "EnvConfig", "MujocoEnv", "Observation", "ReacherConfig", "ReacherEnv", "RobotState",
    "TwoRoomsConfig", "TwoRoomsEnv", "config_class", "default_config", "make", "register", "registered",
]
