"""A planner node that fails in a callback once it has driven the robot for a while.

Started by tests/test_ros_stop.py as a script, like a real node process: it checks that a
planner which dies of an exception (a bug, a broken engine) still leaves the robot stopped.
"""
import sys
import time

import numpy as np

from jepa_pilot.nodes.planner_node import PlannerNode
from jepa_pilot.nodes.runner import run_node

MOTION_COMMANDS_BEFORE_FAILING = 30  # about 3 s of driving: the test's probe has matched and seen it move
SECONDS_BEFORE_FAILING = 3.0  # or 3 s after the first motion (a slow planner may reach the goal before 30)


class FailingPlanner(PlannerNode):
    motion_commands, first_motion = 0, None

    def _command(self, action, header=None) -> None:
        super()._command(action, header)
        self.motion_commands += bool(np.any(action != 0))
        if self.motion_commands and self.first_motion is None:
            self.first_motion = time.monotonic()
        if self.motion_commands >= MOTION_COMMANDS_BEFORE_FAILING or (
                self.first_motion is not None and time.monotonic() - self.first_motion >= SECONDS_BEFORE_FAILING):
            raise RuntimeError("injected failure (tests/failing_planner.py)")


if __name__ == "__main__":
    sys.exit(run_node(lambda: FailingPlanner().start(), "planner"))
