"""explorer_node: drives a robot with smooth random actions, no model needed.

Used by `make demo` until the world model drives, and to record exploration
data with `ros2 bag record` on a real robot (see README). Publishes the
robot profile's command topic: /cmd_vel (TwistStamped or Twist) for bases,
/arm_controller/commands (Float64MultiArray) for arms.
"""
from __future__ import annotations

import dataclasses

from geometry_msgs.msg import Twist, TwistStamped
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray

from jepa_pilot.common.config import Config, setting
from jepa_pilot.control.action_space import RobotProfile
from jepa_pilot.control.exploration import MomentumRandomWalk, RandomWalkConfig
from jepa_pilot.nodes.params import ConfigParameters
from jepa_pilot.nodes.runner import run_node
from jepa_pilot.nodes.qos import qos
from jepa_pilot.nodes.ros_io import dict_to_twist


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
        kind = self.profile.command_type
        msg_type = {"twist_stamped": TwistStamped, "twist": Twist, "float64_multi_array": Float64MultiArray}[kind]
        self.pub = self.create_publisher(msg_type, self.profile.command_topic, qos("reliable"))
        self.create_timer(1.0 / cfg.rate_hz, self._tick)
        self.get_logger().info(f"random-walk driver for {self.profile.name} on {self.profile.command_topic} "
                               f"({kind}) at {cfg.rate_hz:g} Hz")

    def _tick(self) -> None:
        action = self.walk() * self.scale
        kind = self.profile.command_type
        if kind == "float64_multi_array":
            self.pub.publish(Float64MultiArray(data=self.space.to_physical(action).tolist()))
            return
        msg = TwistStamped() if kind == "twist_stamped" else Twist()
        if kind == "twist_stamped":
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.header.frame_id = self.profile.base_frame
        dict_to_twist(self.space.to_twist(action), msg.twist if kind == "twist_stamped" else msg)
        self.pub.publish(msg)


def main(args=None) -> int:
    return run_node(ExplorerNode, "explorer", args)


if __name__ == "__main__":
    raise SystemExit(main())
