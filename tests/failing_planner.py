"""A planner node that fails in a callback once it has driven the robot for a while.

Started by tests/test_ros_stop.py as a script, like a real node process: it checks that a
planner which dies of an exception (a bug, a broken engine) still leaves the robot stopped.
"""
import sys

import numpy as np

from jepa_pilot.nodes.planner_node import PlannerNode
from jepa_pilot.nodes.runner import run_node

MOTION_COMMANDS_BEFORE_FAILING = 30  # about 3 s of driving: the test's probe has matched and seen it move


class FailingPlanner(PlannerNode):
    motion_commands = 0

    def _command(self, action, header=None) -> None:
        super()._command(action, header)
        self.motion_commands += bool(np.any(action != 0))
        if self.motion_commands >= MOTION_COMMANDS_BEFORE_FAILING:
            raise RuntimeError("injected failure (tests/failing_planner.py)")


if __name__ == "__main__":
    sys.exit(run_node(lambda: FailingPlanner().start(), "planner", threads=2))
