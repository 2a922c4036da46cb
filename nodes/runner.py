"""The canonical rclpy main: init, build the node, spin, stop the robot, shut down.

Every way a node process ends goes through one place, while its ROS context
is still valid: Ctrl-C (SIGINT), SIGTERM (what launch systems send after
SIGINT), an exception out of a callback, or the end of spinning. There the
node's ``safe_stop()`` runs (nodes that command a robot publish a zero
command if they last commanded motion), and only then is ROS shut down.

rclpy's own signal handlers are not installed: they shut the context down
inside the handler, before any Python code could still publish, so a robot
that keeps its last command (Gazebo's DiffDrive, many base drivers) would
drive on after the stack stopped. Nor is Python's: its KeyboardInterrupt is
raised in whatever Python code runs when the signal lands, and when that is
code rclpy calls from C (building a received message) it comes out as an
unrelated RuntimeError. Once spinning, a signal only wakes the executor
(``_Signals``), which stops the node between callbacks.
"""
from __future__ import annotations

import os
import signal
import traceback
from pathlib import Path
from typing import Callable

import rclpy
from rclpy.exceptions import InvalidHandle
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from jepa_pilot.common.config import ConfigError
from jepa_pilot.common.worker import LatestWorker

__all__ = ["run_node", "raise_priority", "raise_autogroup", "node_worker"]

RESPINS = 10  # executor races on destroyed entities tolerated per process (see run_node)


def raise_priority(nice: int) -> str:
    """Lower this process's niceness to ``nice``: every thread it has now (DDS's, the executor's), and
    the threads it starts later inherit it from the main thread; with autogroup scheduling on, its
    autogroup's too (:func:`raise_autogroup`). Never lowers the priority. Returns '' or why it could
    not (below 0 needs CAP_SYS_NICE: root, or a ``nice`` entry in limits.conf)."""
    if nice < os.getpriority(os.PRIO_PROCESS, 0):
        try:
            for tid in sorted(os.listdir("/proc/self/task"), key=lambda t: t != str(os.getpid())):  # main first
                os.setpriority(os.PRIO_PROCESS, int(tid), nice)
        except (PermissionError, FileNotFoundError, ProcessLookupError) as exc:
            return f"cannot run at nice {nice} ({exc}); running at {os.getpriority(os.PRIO_PROCESS, 0)}"
    return raise_autogroup(nice)


def raise_autogroup(nice: int) -> str:
    """With the kernel's autogroup scheduling on (most desktop and robot Linux installs), the CPU is
    shared between sessions first, equally whatever their threads' niceness, and a thread's niceness
    only ranks it within its own session: a busy process in another session takes as much as the
    whole loop. A process that leads its own session (``jepa-pilot up`` starts every node so) gets
    ``nice`` for its autogroup, so its priority holds against the rest of the machine. One that
    shares a session (its parent's) is left alone: raising that session would raise its neighbours
    too. Returns '' or why the niceness does not reach beyond this process's session."""
    group = Path("/proc/self/autogroup")
    try:
        enabled = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
        current = int(group.read_text().split()[-1])              # "/autogroup-42 nice 0"
    except (OSError, ValueError, IndexError):
        return ""  # no autogroups here (another OS, or a kernel built without them)
    if not enabled or nice >= current:
        return ""
    if os.getsid(0) != os.getpid():
        return (f"autogroup scheduling is on and this process shares session {os.getsid(0)}: its nice {nice} "
                f"ranks it only within that session; start it in a session of its own (setsid) or set "
                f"kernel.sched_autogroup_enabled=0")
    try:
        group.write_text(str(nice))
    except OSError as exc:
        return f"cannot give this session's autogroup nice {nice} ({exc}); it stays at {current}"
    return ""


def node_worker(node: Node, work: Callable[[object], None], name: str) -> LatestWorker:
    """A LatestWorker (common/worker.py) of ``node`` whose failure ends the process as a failed
    callback does: its exception is raised again in the executor's thread, where run_node logs it,
    stops the robot and exits with 1."""
    def raise_failure() -> None:
        raise worker.failed

    guard = node.create_guard_condition(raise_failure)
    worker = LatestWorker(work, name, on_error=lambda exc: guard.trigger())
    return worker


class _Signals:
    """SIGINT and SIGTERM end the node the same way (Python's default for SIGTERM would kill it with
    no cleanup), without raising inside code that rclpy runs from C.

    Before ``arm`` (building the nodes, loading models) a signal raises KeyboardInterrupt at once.
    Once armed it triggers a guard condition: the executor wakes and raises KeyboardInterrupt
    between callbacks. After ``disarm`` (stopping the robot, shutting down) signals are ignored,
    so a second Ctrl-C cannot cut the zero command short.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self.guard = None
        self.armed = True
        self.previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}

    def arm(self, node: Node) -> None:
        self.guard = node.create_guard_condition(self._interrupt)

    def disarm(self) -> None:
        self.armed = False

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        self.received = signum
        if not self.armed:
            return
        if self.guard is None:
            raise KeyboardInterrupt(signal.Signals(signum).name)
        self.guard.trigger()

    def _interrupt(self) -> None:
        raise KeyboardInterrupt(signal.Signals(self.received).name)


def run_node(make_node: Callable[[], Node | list[Node]], name: str, args=None) -> int:
    """Spin the node ``make_node()`` (or the nodes, for a composed process) until a signal, an
    exception or shutdown; returns the exit code.

    0 after a signal or shutdown, 1 after an exception (logged with its traceback), 2 for
    invalid parameters. One executor thread: work that must not hold it up runs in a thread
    of its own (the planner's plans: ``node_worker``; the goal node's goals). rclpy's
    MultiThreadedExecutor is not used: it spends milliseconds of CPU on each event, more than
    a 30 Hz loop on two cores can spare.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signals = _Signals()
    logger, nodes, code = rclpy.logging.get_logger(name), [], 0
    try:
        made = make_node()
        nodes = made if isinstance(made, list) else [made]
        executor = SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        signals.arm(nodes[0])
        for respin in range(RESPINS + 1):
            try:
                executor.spin()  # returns at shutdown
                break
            except InvalidHandle as exc:
                # rclpy's own race: an entity destroyed by a callback (a lifecycle deactivate destroys
                # subscriptions and timers) that the executor had found ready already. Nothing of the
                # node is lost: spin on, a few times at most (a handle broken for good is an error).
                if respin == RESPINS:
                    raise
                logger.warning(f"executor race on a destroyed entity, spinning on: {exc}")
    except (ConfigError, rclpy.exceptions.ParameterException) as exc:
        logger.fatal(f"invalid parameters: {exc}")
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:  # noqa: BLE001 - logged; the robot is stopped below before the process ends
        logger.fatal(f"{name} failed:\n{traceback.format_exc()}")
        code = 1
    finally:
        signals.disarm()
        for node in nodes:
            if hasattr(node, "safe_stop"):
                try:
                    node.safe_stop()
                except Exception:  # noqa: BLE001 - best effort: shutting down must go on
                    logger.error(f"safe stop failed:\n{traceback.format_exc()}")
        rclpy.try_shutdown()
        signals.restore()
    return code
