"""The robot's command output, shared by every node that drives a robot (planner, explorer).

Normalised actions in, the robot profile's command messages out (through the
action space's limits). It remembers whether the last command moved the
robot, so the node can leave it stopped: ``hold()`` sends a zero command if
it was moving (waiting until reliable subscribers have it), and ``close()``
does the same on the way out of the process and refuses every command after.
"""
from __future__ import annotations

import numpy as np

from jepa_pilot.nodes.qos import qos
from jepa_pilot.nodes.ros_io import COMMAND_TYPES, command_msg, publish_and_flush

__all__ = ["CommandOutput"]


class CommandOutput:
    def __init__(self, node, profile, kind: str | None = None, topic: str | None = None,
                 lifecycle: bool = False) -> None:
        self.node, self.profile, self.space = node, profile, profile.action_space
        self.kind, self.topic = kind or profile.command_type, topic or profile.command_topic
        create = node.create_lifecycle_publisher if lifecycle else node.create_publisher
        self.publisher = create(COMMAND_TYPES[self.kind], self.topic, qos("reliable"))
        self.moving = self.closed = False

    def _msg(self, action: np.ndarray):
        return command_msg(self.kind, self.space, action, self.node.get_clock().now().to_msg(),
                           self.profile.base_frame)

    def send(self, action: np.ndarray) -> bool:
        """Publish a normalised action; False (nothing sent) once closed."""
        if self.closed:
            return False
        self.publisher.publish(self._msg(action))
        self.moving = bool(np.any(np.asarray(action) != 0))
        return True

    def hold(self, timeout: float = 0.5) -> bool:
        """A zero command if the robot was last commanded to move, waiting (up to ``timeout``) until
        reliable subscribers have it: a lifecycle shutdown destroys the publisher right after, and
        DDS drops what a deleted writer has not delivered. Returns whether one was sent."""
        if not self.moving or self.closed:
            return False
        publish_and_flush(self.publisher, self._msg(np.zeros(self.space.dim)), timeout)
        self.moving = False
        return True

    def close(self, timeout: float = 0.5) -> bool:
        """The process ends: a zero command if moving, delivered within ``timeout``; nothing after.
        Returns whether a zero command was sent."""
        sent = self.hold(timeout)
        self.closed = True
        return sent
