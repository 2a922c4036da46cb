"""Supervise node processes: start, stream their output, stop them without orphans.

Used by ``jepa-pilot up`` and by tests that need nodes in other processes.
It never imports rclpy: it only spawns and signals processes.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Mapping, Sequence

from jepa_pilot.cli.launch import LaunchError, NodeSpec

_POLL_S = 0.05

_LIVE: "set[Launcher]" = set()
_COLOURS = (36, 32, 33, 35, 34, 96, 92, 93, 95, 94)


def _stop_live_launchers() -> None:
    """atexit: stop every Launcher that is still running."""
    for launcher in list(_LIVE):
        launcher.stop()


atexit.register(_stop_live_launchers)


def describe_exit(code: int) -> str:
    """``exited with code 3`` or ``killed by SIGKILL`` for a Popen returncode."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def _exit_status(code: int) -> int:
    """A shell-style status for a failed node: its code, or 128 + the signal."""
    return code if code > 0 else min(128 - code, 255)


def _labels(specs: Sequence[NodeSpec]) -> list[str]:
    """Output prefixes: node names, or full names where names repeat."""
    names = [spec.label for spec in specs]
    labels = [spec.label if names.count(spec.label) == 1 else spec.full_name.lstrip("/") for spec in specs]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise LaunchError(f"several nodes are named {duplicates}; give each node a unique name")
    return labels


@contextlib.contextmanager
def _signal_handlers(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """Route SIGINT and SIGTERM to ``handler`` (main thread only), then restore."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def _raise_system_exit(signum: int, frame: Any) -> None:
    """SIGTERM handler for the context manager: unwind so ``__exit__`` stops the nodes."""
    raise SystemExit(128 + signum)


class Launcher:
    """Start node processes, stream their output, stop them without orphans.

    Each node runs as launch_ros runs it (:meth:`NodeSpec.command`: the
    installed executable with ``--ros-args``; inline parameters in a parameter
    file in a temporary folder that :meth:`stop` removes), in its own process
    group with stdout and stderr merged and printed line by line as ``[name] line``. Stopping sends SIGINT to every
    group, waits ``grace`` seconds, then SIGTERM, waits ``term_timeout``, then
    SIGKILL; leftover processes in a node's group are killed too.

    Use :meth:`run` from a CLI, or the context manager from Python tests::

        with Launcher(specs) as launcher:
            assert launcher.alive()
    """

    def __init__(
        self,
        specs: Sequence[NodeSpec],
        env: Mapping[str, str] | None = None,
        grace: float = 10.0,
        term_timeout: float = 5.0,
        stream: IO[str] | None = None,
    ) -> None:
        self.specs = list(specs)
        self.labels = _labels(self.specs)
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.grace = grace
        self.term_timeout = term_timeout
        self._stream = stream
        self.processes: dict[str, subprocess.Popen] = {}
        self._readers: dict[str, threading.Thread] = {}
        self._reported: set[str] = set()
        self._write_lock = threading.Lock()
        self._colour = False
        self._started = False
        self._stopped = False
        self._stop_reason: str | None = None
        self._escalate = False
        self._exit_stack = contextlib.ExitStack()
        self._params_dir: tempfile.TemporaryDirectory | None = None

    # -- output ---------------------------------------------------------

    @property
    def stream(self) -> IO[str]:
        """Where lines go (``sys.stdout`` at the time of writing unless given)."""
        return sys.stdout if self._stream is None else self._stream

    def _emit(self, label: str, text: str) -> None:
        """Write one prefixed line, coloured per node on a terminal."""
        prefix = f"[{label}]"
        if self._colour:
            index = self.labels.index(label) if label in self.labels else -1
            colour = _COLOURS[index % len(_COLOURS)] if index >= 0 else 1
            prefix = f"\033[{colour}m{prefix}\033[0m"
        with self._write_lock:
            try:
                self.stream.write(f"{prefix} {text}\n")
                self.stream.flush()
            except (OSError, ValueError):  # closed or broken stdout: keep draining the nodes
                pass

    def log(self, text: str) -> None:
        """A message of the launcher itself, prefixed ``[launch]``."""
        self._emit("launch", text)

    def _pump(self, label: str, pipe: IO[bytes]) -> None:
        """Reader thread: copy a node's output, line by line, until EOF."""
        with pipe:
            for raw in iter(pipe.readline, b""):
                self._emit(label, raw.decode("utf-8", errors="replace").rstrip("\r\n"))

    # -- lifecycle --------------------------------------------------------

    def start(self) -> None:
        """Start every node; if one cannot start, stop the others and raise LaunchError."""
        if self._started:
            raise RuntimeError("a Launcher starts once; create a new one")
        self._started = True
        self._colour = self.stream.isatty() and "NO_COLOR" not in os.environ
        _LIVE.add(self)
        self._params_dir = tempfile.TemporaryDirectory(prefix="jepa-pilot-launch-")
        for label, spec in zip(self.labels, self.specs):
            try:
                self._start_node(label, spec)
            except (LaunchError, OSError) as err:
                self.stop()
                raise LaunchError(f"cannot start node '{label}': {err}") from None

    def _start_node(self, label: str, spec: NodeSpec) -> None:
        """Start (or restart) one node process and the thread that prints its output."""
        command = spec.command(self._params_file(label, spec))
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
        )
        self.processes[label] = process
        self._reported.discard(label)
        self.log(f"started {label} (pid {process.pid})")
        reader = threading.Thread(
            target=self._pump, args=(label, process.stdout), name=f"launch-{label}", daemon=True,
        )
        reader.start()
        self._readers[label] = reader

    def _params_file(self, label: str, spec: NodeSpec) -> Path | None:
        """Write the node's inline parameters into the temporary folder (None without any)."""
        if not spec.params:
            return None
        return spec.write_params_file(Path(self._params_dir.name) / f"{label.replace('/', '__')}.params.yaml")

    def alive(self, name: str | None = None) -> bool:
        """Whether node ``name`` is running, or with no name, whether every node is."""
        if name is not None:
            return name in self.processes and self.processes[name].poll() is None
        return bool(self.processes) and all(p.poll() is None for p in self.processes.values())

    def signal_node(self, name: str, sig: signal.Signals) -> None:
        """Send ``sig`` to node ``name``'s process group (fault injection: SIGKILL, SIGSTOP, SIGCONT)."""
        self._signal_groups(sig, [name])

    def restart(self, name: str) -> None:
        """Start node ``name`` again after it exited (a respawn by hand)."""
        if self.alive(name):
            raise RuntimeError(f"node {name} is still running")
        self.processes[name].wait()
        self._collect_exits()
        self._start_node(name, dict(zip(self.labels, self.specs))[name])

    def request_stop(self, reason: str) -> None:
        """Ask :meth:`run` to shut down (as a signal would); a second request skips the grace."""
        if self._stop_reason is None:
            self._stop_reason = reason
        else:
            self._escalate = True

    def stop(self) -> None:
        """Stop every node: SIGINT, grace, SIGTERM, timeout, SIGKILL. Idempotent."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        try:
            stages = (
                (signal.SIGINT, self.grace), (signal.SIGTERM, self.term_timeout), (signal.SIGKILL, None),
            )
            for sig, timeout in stages:
                running = self._running()
                if not running:
                    break
                again = " (stop requested twice)" if self._escalate else ""
                self.log(f"sending {sig.name} to {', '.join(running)}{again}")
                self._signal_groups(sig, running)
                self._wait(timeout)
            self._signal_groups(signal.SIGKILL, list(self.processes))  # leftover grandchildren
            self._collect_exits()
        finally:
            _LIVE.discard(self)
            if self._params_dir is not None:
                self._params_dir.cleanup()

    def run(self, duration: float | None = None) -> int:
        """Start the nodes and supervise them until something ends the launch.

        It ends on SIGINT/SIGTERM, after ``duration`` seconds, when a node
        fails (non-zero exit or a signal; the others are stopped) or when every
        node has exited. A node exiting 0 on its own is logged; the rest keep
        running. A node with ``respawn`` is started again ``respawn_delay``
        seconds after it exits, whatever its exit status, and ends nothing.
        Returns 0 on a clean shutdown, else the failed node's status.
        """
        def on_signal(signum: int, frame: Any) -> None:
            self.request_stop(f"received {signal.Signals(signum).name}")

        with _signal_handlers(on_signal):
            self.start()
            try:
                return self._supervise(duration)
            finally:
                self.stop()

    def __enter__(self) -> Launcher:
        if threading.current_thread() is threading.main_thread() and (
            signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        ):
            previous = signal.signal(signal.SIGTERM, _raise_system_exit)
            self._exit_stack.callback(signal.signal, signal.SIGTERM, previous)
        try:
            self.start()
        except BaseException:
            self._exit_stack.close()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self.stop()
        finally:
            self._exit_stack.close()

    # -- internals --------------------------------------------------------

    def _running(self) -> list[str]:
        """Labels of the nodes still running."""
        return [label for label, p in self.processes.items() if p.poll() is None]

    def _signal_groups(self, sig: signal.Signals, labels: Sequence[str]) -> None:
        """Send ``sig`` to the process group of each node in ``labels``."""
        for label in labels:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.processes[label].pid, sig)

    def _wait(self, timeout: float | None) -> None:
        """Wait until every node has exited, ``timeout`` passed, or a second stop request.

        With no timeout (after SIGKILL) wait for every node unconditionally.
        """
        if timeout is None:
            for process in self.processes.values():
                process.wait()
            return
        deadline = time.monotonic() + timeout
        while self._running() and time.monotonic() < deadline and not self._escalate:
            time.sleep(_POLL_S)

    def _collect_exits(self) -> list[tuple[str, int]]:
        """``(label, returncode)`` of nodes that exited since last asked, each logged once."""
        exits = []
        for label, process in self.processes.items():
            code = process.poll()
            if code is None or label in self._reported:
                continue
            self._reported.add(label)
            self._readers[label].join(timeout=1.0)  # print its last lines first
            self.log(f"{label} {describe_exit(code)}")
            exits.append((label, code))
        return exits

    def _supervise(self, duration: float | None) -> int:
        """Poll until a stop request, the duration, a failed node, or no node left."""
        deadline = None if duration is None else time.monotonic() + duration
        specs = dict(zip(self.labels, self.specs))
        respawns: dict[str, float] = {}  # label -> when to start it again
        while True:
            for label, code in self._collect_exits():
                if specs[label].respawn and self._stop_reason is None:
                    respawns[label] = time.monotonic() + specs[label].respawn_delay
                    self.log(f"{label} will respawn in {specs[label].respawn_delay:g} s")
                elif code != 0:
                    self.log(f"{label} failed; shutting down the other nodes")
                    return _exit_status(code)
            for label, due in list(respawns.items()):
                if time.monotonic() >= due and self._stop_reason is None:
                    del respawns[label]
                    try:
                        self._start_node(label, specs[label])
                    except (LaunchError, OSError) as err:
                        self.log(f"cannot respawn {label}: {err}; shutting down")
                        return 1
            if self._stop_reason is not None:
                self.log(f"{self._stop_reason}; shutting down")
                return 0
            if deadline is not None and time.monotonic() >= deadline:
                self.log(f"{duration:g} s elapsed; shutting down")
                return 0
            if len(self._reported) == len(self.processes) and not respawns:
                self.log("every node has exited")
                return 0
            time.sleep(_POLL_S)
