"""Helpers for ROS-graph tests: nodes in other processes, a probe node in this one."""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from jepa_pilot.evaluation.rosgraph import ServiceTimeout, call_service


class NodeProcess:
    """A jepa_pilot node started as ``python -m jepa_pilot.nodes.<module>`` with a params file."""

    def __init__(self, module: str, name: str, params: dict, workdir: Path, composed: bool = False) -> None:
        """``composed``: a process of several nodes (nodes/pilot_node.py); ``params`` then maps each
        node's name to its parameters, and no node is renamed."""
        self.name = name
        params_file = workdir / f"{name}.params.yaml"
        sections = params if composed else {name: params}
        params_file.write_text(yaml.safe_dump({node: {"ros__parameters": p} for node, p in sections.items()}))
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "w")
        program = [module] if module.endswith(".py") else ["-m", f"jepa_pilot.nodes.{module}"]  # a script, or a node
        self.proc = subprocess.Popen(
            [sys.executable, *program, "--ros-args", *([] if composed else ["-r", f"__node:={name}"]),
             "--params-file", str(params_file)],
            stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ), start_new_session=True)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Probe:
    """An rclpy node in the test process that records what it receives."""

    def __init__(self, name: str = "probe") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received: dict[str, list] = collections.defaultdict(list)

    def subscribe(self, msg_type, topic: str, qos) -> list:
        self.node.create_subscription(msg_type, topic, self.received[topic].append, qos)
        return self.received[topic]

    def subscribe_timed(self, msg_type, topic: str, qos) -> list:
        """(wall-clock arrival, message) pairs of ``topic``."""
        timed: list = []
        self.node.create_subscription(msg_type, topic, lambda m: timed.append((time.monotonic(), m)), qos)
        return timed

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def spin_until(self, done: Callable[[], bool], timeout: float = 20.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if done():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return done()

    def call(self, srv_type, name: str, request, timeout: float = 20.0, resend: bool = True):
        """The first answer of service ``name``; ``resend`` for idempotent services (see call_service)."""
        client = self.node.create_client(srv_type, name)
        try:
            return call_service(client, request, self.spin_until, timeout, resend)
        except ServiceTimeout as exc:
            raise AssertionError(str(exc)) from None
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
