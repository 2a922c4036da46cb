"""A node that only takes messages: started by tests/test_ros_stop.py as a process of its own.

Its executor spends most of its time building received messages (Python code that rclpy runs
from C), which is where a signal that raises in the handler would land: the test checks that a
signal still ends it cleanly, with exit code 0, however often it is sent.
"""
import sys

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node

from jepa_pilot.nodes.qos import qos
from jepa_pilot.nodes.runner import run_node


class FloodedNode(Node):
    def __init__(self) -> None:
        super().__init__("flooded")
        self.taken = 0
        self.create_subscription(DiagnosticArray, "/flood", self.take, qos("reliable", depth=100))

    def take(self, msg: DiagnosticArray) -> None:
        self.taken += 1
        if self.taken == 1:
            self.get_logger().info("taking messages")


if __name__ == "__main__":
    sys.exit(run_node(FloodedNode, "flooded"))
