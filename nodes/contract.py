"""The robot-side topic contract: what a robot offers the JEPA nodes.

One table, used by the sim node to create its publishers and subscriptions
and by the tests that check the Gazebo world + ros_gz_bridge config offer
the same topics, types, QoS and frames. Pure data: no rclpy import.
"""
from __future__ import annotations

import dataclasses

__all__ = ["RobotTopic", "ROBOT_TOPICS", "robot_topics"]


@dataclasses.dataclass(frozen=True)
class RobotTopic:
    topic: str
    type: str                 # ROS interface name, e.g. "sensor_msgs/msg/Image"
    direction: str            # "out": the robot publishes it; "in": the robot subscribes to it
    qos: str                  # a name from nodes.qos.QOS_NAMES
    frame_id: str | None      # header.frame_id the robot uses (None: no header)
    embodiments: tuple[str, ...] = ("holonomic_base", "diff_drive_base", "arm")
    child_frame_id: str | None = None


BASES = ("holonomic_base", "diff_drive_base")

ROBOT_TOPICS = (
    RobotTopic("/camera/image_raw", "sensor_msgs/msg/Image", "out", "sensor_data", "camera_optical_frame"),
    RobotTopic("/camera/camera_info", "sensor_msgs/msg/CameraInfo", "out", "sensor_data", "camera_optical_frame"),
    RobotTopic("/clock", "rosgraph_msgs/msg/Clock", "out", "reliable", None),
    RobotTopic("/odom", "nav_msgs/msg/Odometry", "out", "reliable", "odom", BASES, child_frame_id="base_link"),
    RobotTopic("/cmd_vel", "geometry_msgs/msg/TwistStamped", "in", "reliable", "base_link", BASES),
    RobotTopic("/joint_states", "sensor_msgs/msg/JointState", "out", "reliable", "", ("arm",)),
    RobotTopic("/arm_controller/commands", "std_msgs/msg/Float64MultiArray", "in", "reliable", None, ("arm",)),
)


def robot_topics(embodiment: str) -> dict[str, RobotTopic]:
    """Topic name -> contract entry, for one embodiment."""
    return {t.topic: t for t in ROBOT_TOPICS if embodiment in t.embodiments}
