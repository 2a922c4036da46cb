"""The canonical rclpy main: init, build the node, spin, shut down cleanly."""
from __future__ import annotations

from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

from jepa_pilot.common.config import ConfigError

__all__ = ["run_node"]


def run_node(make_node: Callable[[], Node], name: str, args=None, threads: int = 1) -> int:
    """Spin the node ``make_node()`` until Ctrl-C or shutdown; exit code 2 on invalid parameters.

    ``threads`` > 1 spins a MultiThreadedExecutor (for nodes whose callback
    groups must not block each other, such as a watchdog next to a planner).
    (Jazzy's rclpy.init() is not yet a context manager, hence the try/finally.)
    """
    rclpy.init(args=args)
    try:
        try:
            node = make_node()
        except (ConfigError, rclpy.exceptions.ParameterException) as exc:
            rclpy.logging.get_logger(name).fatal(f"invalid parameters: {exc}")
            return 2
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else None
        rclpy.spin(node, executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        rclpy.try_shutdown()
    return 0
