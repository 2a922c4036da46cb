"""Normalised actions <-> physical robot commands, and robot profiles.

The world model and the planners work in normalised actions, one value in
[-1, 1] per action dimension. A robot is commanded in physical units: a base
by a twist (m/s, rad/s in its body frame), an arm by joint velocities
(rad/s). An :class:`ActionSpace` says which command field each action
dimension drives and how far +1 goes; a :class:`RobotProfile` (one YAML file
per robot in ``config/robots/``) adds the topics and frames around it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jepa_pilot.common.config import Config, ConfigError, setting
from jepa_pilot.common.paths import package_share

__all__ = ["TWIST_FIELDS", "ActionSpace", "RobotProfile", "EMBODIMENTS"]

# Fields of geometry_msgs/Twist, in message order.
TWIST_FIELDS = ("linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z")

# Which twist fields a base's actions drive, by embodiment (arms drive joints).
EMBODIMENTS = {
    "holonomic_base": ("linear.x", "linear.y"),
    "diff_drive_base": ("linear.x", "angular.z"),
    "arm": None,
}


@dataclasses.dataclass(frozen=True)
class ActionSpace:
    """Maps normalised actions in [-1, 1]^A to physical commands and back.

    ``fields[i]`` is the command field driven by action dimension i (a twist
    field such as ``"linear.x"`` or a joint name); ``scale[i]`` is its physical
    value at action +1 (m/s, rad/s).
    """

    fields: tuple[str, ...]
    scale: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.fields or len(self.fields) != len(self.scale):
            raise ValueError(f"ActionSpace needs one scale per field, got {self.fields} and {self.scale}")
        if len(set(self.fields)) != len(self.fields):
            raise ValueError(f"ActionSpace fields repeat: {self.fields}")
        if not all(np.isfinite(s) and s > 0 for s in self.scale):
            raise ValueError(f"ActionSpace scales must be finite and > 0, got {self.scale}")

    @property
    def dim(self) -> int:
        return len(self.fields)

    @property
    def is_twist(self) -> bool:
        return all(f in TWIST_FIELDS for f in self.fields)

    def to_physical(self, action: np.ndarray) -> np.ndarray:
        """(A,) normalised -> (A,) physical, clipped to the limits."""
        action = np.asarray(action, dtype=np.float64).reshape(self.dim)
        return np.clip(action, -1.0, 1.0) * np.asarray(self.scale)

    def to_normalised(self, physical: np.ndarray) -> np.ndarray:
        """(A,) physical -> (A,) normalised, clipped to [-1, 1]."""
        physical = np.asarray(physical, dtype=np.float64).reshape(self.dim)
        return np.clip(physical / np.asarray(self.scale), -1.0, 1.0)

    def beyond_limits(self, physical: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
        """(A,) bool: which physical values exceed their limit by more than ``tolerance`` (relative);
        :meth:`to_normalised` clips those to +-1."""
        physical = np.asarray(physical, dtype=np.float64).reshape(self.dim)
        return np.abs(physical) > np.asarray(self.scale) * (1.0 + tolerance)

    def twist_values(self, twist) -> np.ndarray:
        """(A,) physical values of the action fields of a geometry_msgs/Twist-like object
        (``twist.linear.x``...: rclpy, rosbags and plain objects alike)."""
        if not self.is_twist:
            raise ValueError(f"a twist does not drive {', '.join(self.fields)}")
        return np.array([float(getattr(getattr(twist, f[:-2]), f[-1])) for f in self.fields])

    def to_twist(self, action: np.ndarray) -> dict[str, float]:
        """Normalised action -> every twist field (unused fields are 0)."""
        twist = dict.fromkeys(TWIST_FIELDS, 0.0)
        twist.update(zip(self.fields, map(float, self.to_physical(action))))
        return twist

    @classmethod
    def for_embodiment(cls, embodiment: str, scale, joint_names=()) -> "ActionSpace":
        if embodiment not in EMBODIMENTS:
            raise ValueError(f"unknown embodiment {embodiment!r}; known: {', '.join(EMBODIMENTS)}")
        fields = EMBODIMENTS[embodiment] or tuple(joint_names)
        return cls(tuple(fields), tuple(float(s) for s in scale))


@dataclasses.dataclass(frozen=True)
class RobotProfile(Config):
    """How to command one robot: embodiment, limits, topics and frames."""

    name: str = setting("robot", "profile name")
    embodiment: str = setting("holonomic_base", "kind of robot", choices=tuple(EMBODIMENTS))
    max_linear_speed: float = setting(0.5, "m/s at action +1 on linear axes", low=0.0, high=20.0)
    max_angular_speed: float = setting(1.0, "rad/s at action +1 on angular axes", low=0.0, high=50.0)
    joint_names: tuple = setting((), "arm joints driven by the actions, in action order")
    max_joint_speed: float = setting(1.0, "rad/s at action +1 on each joint", low=0.0, high=50.0)
    command_topic: str = setting("/cmd_vel", "topic the robot takes commands on")
    command_type: str = setting("twist_stamped", "command message type",
                                choices=("twist_stamped", "twist", "float64_multi_array"))
    base_frame: str = setting("base_link", "frame_id of stamped base commands")
    image_topic: str = setting("/camera/image_raw", "camera image topic")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.embodiment == "arm":
            if not self.joint_names:
                self._fail("joint_names", self.joint_names, "an arm profile needs its joint names")
            if self.command_type != "float64_multi_array":
                self._fail("command_type", self.command_type, "arms take float64_multi_array joint velocities")
        elif self.command_type == "float64_multi_array":
            self._fail("command_type", self.command_type, "bases take twist or twist_stamped")

    @property
    def action_space(self) -> ActionSpace:
        if self.embodiment == "arm":
            return ActionSpace.for_embodiment("arm", [self.max_joint_speed] * len(self.joint_names),
                                              self.joint_names)
        fields = EMBODIMENTS[self.embodiment]
        scale = [self.max_angular_speed if f.startswith("angular") else self.max_linear_speed for f in fields]
        return ActionSpace.for_embodiment(self.embodiment, scale)

    @classmethod
    def load(cls, name_or_path: str, search_dir: str | Path | None = None) -> "RobotProfile":
        """Load ``config/robots/<name>.yaml`` (or a YAML file path)."""
        path = Path(name_or_path)
        if path.suffix not in (".yaml", ".yml"):
            search_dir = Path(search_dir) if search_dir else package_share() / "config" / "robots"
            path = search_dir / f"{name_or_path}.yaml"
            if not path.exists():
                known = sorted(p.stem for p in search_dir.glob("*.yaml"))
                raise ConfigError(f"no robot profile {name_or_path!r} in {search_dir}; known: {', '.join(known)}")
        return cls.from_yaml(path)
