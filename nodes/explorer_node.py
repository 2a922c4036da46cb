"""explorer_node: drives a robot with smooth random actions, no model needed.

Used by `make demo` until the world model drives, and to record exploration
data with `ros2 bag record` on a real robot (see README). Publishes the
robot profile's command topic: /cmd_vel (TwistStamped or Twist) for bases,
/arm_controller/commands (Float64MultiArray) for arms.
"""
from __future__ import annotations

import dataclasses

from rclpy.node import Node

from jepa_pilot.common.config import Config, setting
from jepa_pilot.control.action_space import RobotProfile
from jepa_pilot.control.exploration import MomentumRandomWalk, RandomWalkConfig
from jepa_pilot.nodes.commands import CommandOutput
from jepa_pilot.nodes.params import ConfigParameters
from jepa_pilot.nodes.runner import run_node


@dataclasses.dataclass(frozen=True)
class ExplorerConfig(Config):
    robot: str = setting("two_rooms", "robot profile: a name in config/robots/ or a YAML path")
    rate_hz: float = setting(10.0, "commands per second", low=0.1, high=1000.0)
    momentum: float = setting(0.9, "fraction of the previous action kept each step", low=0.0, high=0.999)
    noise: float = setting(0.5, "random kick per step (normalised units)", low=0.0, high=5.0)
    speed_scale: float = setting(1.0, "fraction of the profile's limits to use", low=0.0, high=1.0)
    seed: int = setting(0, "random seed", low=0, high=2**31 - 1)


CONFIG = ExplorerConfig  # parameters this node declares (checked against launch files by tests)


class ExplorerNode(Node):
    def __init__(self) -> None:
        super().__init__("explorer")
        cfg = ConfigParameters(self, ExplorerConfig).config
        self.profile = RobotProfile.load(cfg.robot)
        self.space = self.profile.action_space
        self.scale = cfg.speed_scale
        self.walk = MomentumRandomWalk(self.space.dim, RandomWalkConfig(cfg.momentum, cfg.noise, cfg.seed))
        self.out = CommandOutput(self, self.profile)
        self.create_timer(1.0 / cfg.rate_hz, self._tick)
        self.get_logger().info(f"random-walk driver for {self.profile.name} on {self.out.topic} "
                               f"({self.out.kind}) at {cfg.rate_hz:g} Hz")

    def _tick(self) -> None:
        """Publish the next random-walk action in the profile's command type."""
        self.out.send(self.walk() * self.scale)

    def safe_stop(self) -> None:
        """The process ends: leave the robot with a zero command."""
        self.out.close()


def main(args=None) -> int:
    return run_node(ExplorerNode, "explorer", args)


if __name__ == "__main__":
    raise SystemExit(main())
