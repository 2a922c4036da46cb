"""The canonical rclpy main: init, build the node, spin, shut down cleanly."""
from __future__ import annotations

from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from jepa_pilot.common.config import ConfigError

__all__ = ["run_node"]


def run_node(make_node: Callable[[], Node], name: str, args=None) -> int:
    """Spin the node ``make_node()`` until Ctrl-C or shutdown; exit code 2 on invalid parameters.

    (Jazzy's rclpy.init() is not yet a context manager, hence the try/finally.)
    """
    rclpy.init(args=args)
    try:
        try:
            node = make_node()
        except (ConfigError, rclpy.exceptions.ParameterException) as exc:
            rclpy.logging.get_logger(name).fatal(f"invalid parameters: {exc}")
            return 2
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        rclpy.try_shutdown()
    return 0
