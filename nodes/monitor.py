"""A watcher node for demos, benchmarks and tests: records what the robot publishes.

Not part of the robot graph: it runs inside `jepa-pilot demo` / `bench` and
keeps, with wall-clock receive times, the camera frames, odometry or joint
states and the sim clock, for summaries, plots and videos.
"""
from __future__ import annotations

import time

import numpy as np
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState

from jepa_pilot.nodes.qos import qos
from jepa_pilot.nodes.ros_io import ImageError, from_time, msg_to_image

__all__ = ["GraphMonitor"]


class GraphMonitor(Node):
    def __init__(self, name: str = "monitor", keep_frames: bool = True) -> None:
        super().__init__(name)
        self.keep_frames = keep_frames
        self.frames: list[np.ndarray] = []          # (H, W, 3) uint8, every received frame if keep_frames
        self.image_times: list[tuple[float, float]] = []  # (wall receive time, header stamp)
        self.poses: list[tuple[float, float, float]] = []  # (stamp, x, y) from /odom
        self.joints: list[np.ndarray] = []           # joint positions from /joint_states
        self.sim_time = 0.0
        self.bad_images = 0
        self.create_subscription(Image, "/camera/image_raw", self._on_image, qos("sensor_data"))
        self.create_subscription(Odometry, "/odom", self._on_odom, qos("reliable"))
        self.create_subscription(JointState, "/joint_states", self._on_joints, qos("reliable"))
        self.create_subscription(Clock, "/clock", self._on_clock, qos("best_effort"))

    def _on_image(self, msg: Image) -> None:
        self.image_times.append((time.monotonic(), from_time(msg.header.stamp)))
        if self.keep_frames:
            try:
                self.frames.append(msg_to_image(msg)[..., :3].copy())
            except ImageError as exc:
                self.bad_images += 1
                self.get_logger().warning(f"unreadable frame: {exc}", throttle_duration_sec=5.0)

    def _on_odom(self, msg: Odometry) -> None:
        p = msg.pose.pose.position
        self.poses.append((from_time(msg.header.stamp), p.x, p.y))

    def _on_joints(self, msg: JointState) -> None:
        self.joints.append(np.array(msg.position))

    def _on_clock(self, msg: Clock) -> None:
        self.sim_time = from_time(msg.clock)

    def image_rates(self) -> tuple[float, float]:
        """(frames per wall second, frames per simulated second) over everything received."""
        if len(self.image_times) < 2:
            return 0.0, 0.0
        (w0, s0), (w1, s1) = self.image_times[0], self.image_times[-1]
        n = len(self.image_times) - 1
        return n / max(w1 - w0, 1e-9), n / max(s1 - s0, 1e-9)


def watch(sim_seconds: float, wall_timeout: float, on_progress=None, keep_frames: bool = True,
          alive=lambda: True) -> GraphMonitor:
    """Run a GraphMonitor until ``sim_seconds`` of robot time have passed.

    Stops early when ``wall_timeout`` wall seconds pass or ``alive()`` turns
    false (the graph died). ``on_progress(sim_time)`` is called as time moves.
    """
    import rclpy  # here, so importing this module does not initialise ROS

    rclpy.init()
    try:
        monitor = GraphMonitor(keep_frames=keep_frames)
        start = time.monotonic()
        sim_start = None
        while time.monotonic() - start < wall_timeout and alive():
            rclpy.spin_once(monitor, timeout_sec=0.05)
            if monitor.image_times and sim_start is None:
                sim_start = monitor.sim_time
            if sim_start is not None:
                if on_progress is not None:
                    on_progress(monitor.sim_time - sim_start)
                if monitor.sim_time - sim_start >= sim_seconds:
                    break
        monitor.destroy_node()
        return monitor
    finally:
        rclpy.try_shutdown()
