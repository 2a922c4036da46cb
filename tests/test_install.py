"""The installed package as ROS 2 sees it: node executables and the parameter files jepa-pilot up writes.

``ros2 run`` and ``ros2 launch`` exec ``<prefix>/lib/jepa_pilot/<exec>``
directly, so these tests check those files (mode, shebang) and start each one
the way launch_ros does, from the Makefile's symlink install and, in the slow
tier, from a fresh copy install.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jepa_pilot.cli.launch import NodeSpec, find_executable
from jepa_pilot.common.paths import source_root
from jepa_pilot.nodes import NODES


START_TIMEOUT_S = 120.0  # a bound for a loaded machine, not a measurement

PARAM_VALUES = {
    "flag": True, "n": 3, "gain": 0.5, "whole": 2.0, "tiny": 1e-05, "big": float("inf"),
    # strings rcl would read as bools or floats if they were written plain
    "s_true": "true", "s_half": "0.5", "s_y": "y", "s_n": "n", "s_inf": "inf", "s_exp": "1e5", "s_empty": "",
    "quote": "it's: x", "topic": "/camera/image_raw", "accent": "caf\u00e9",
    "floats": [1.0, 2.5], "strings": ["a", "true"], "ints": [1, 2], "bools": [True, False],
}


def shebang(path: Path) -> str:
    """The interpreter named on the first line of a script."""
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("#!"), f"{path} has no shebang: {first!r}"
    return first[2:].strip()


def check_executables(lib_dir: Path) -> None:
    """Every node executable in ``lib_dir`` runs with this interpreter, as its owner and anyone else."""
    for executable in sorted(NODES):
        path = lib_dir / executable
        assert path.is_file(), f"{path} is missing"
        mode = path.stat().st_mode & 0o777  # of the file itself; stat() follows a symlink install's link
        assert mode & 0o111 == 0o111 and os.access(path, os.X_OK), f"{path} has mode {oct(mode)}"
        assert shebang(path) == sys.executable, \
            f"{path} starts {shebang(path)}, not the interpreter of this build ({sys.executable})"


def start_nodes(lib_dir: Path, log_dir: Path, env: dict[str, str]) -> None:
    """Start every node as launch_ros would, wait until each logs as itself, SIGINT, expect exit 0."""
    running = {}
    try:
        for executable in sorted(NODES):
            name = f"installed_{executable}_{os.getpid()}"
            log = open(log_dir / f"{name}.log", "w")
            command = [str(lib_dir / executable), "--ros-args", "-r", f"__node:={name}"]
            running[name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                              start_new_session=True), log)
        deadline = time.monotonic() + START_TIMEOUT_S
        waiting = set(running)
        while waiting and time.monotonic() < deadline:
            for name in list(waiting):
                process, _ = running[name]
                text = (log_dir / f"{name}.log").read_text()
                assert process.poll() is None, f"{name} exited with {process.returncode} before logging:\n{text}"
                if "[INFO]" in text and f"[{name}]:" in text:
                    waiting.discard(name)
            time.sleep(0.2)
        assert not waiting, f"no INFO line as themselves from {sorted(waiting)} within {START_TIMEOUT_S:g} s"
        for process, _ in running.values():
            process.send_signal(signal.SIGINT)
        for name, (process, _) in running.items():
            code = process.wait(timeout=30)
            assert code == 0, f"{name} exited with {code} on SIGINT:\n{(log_dir / f'{name}.log').read_text()}"
    finally:
        for process, log in running.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()


@pytest.mark.ros
def test_symlink_install_executables_start_their_nodes(tmp_path):
    """The Makefile's `colcon build --symlink-install`: what `ros2 run jepa_pilot <exec>` execs."""
    lib_dir = find_executable("jepa_pilot", "sim_node").parent  # the first AMENT_PREFIX_PATH entry
    check_executables(lib_dir)
    start_nodes(lib_dir, tmp_path, dict(os.environ))


@pytest.mark.slow
def test_copy_install_executables_start_their_nodes(tmp_path):
    """A plain `colcon build` (no --symlink-install) into a fresh folder installs runnable copies."""
    colcon = shutil.which("colcon")
    if colcon is None:
        pytest.skip("colcon is not installed here")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "jepa_pilot").symlink_to(source_root())
    build = subprocess.run(
        [colcon, "--log-base", "log", "build", "--base-paths", "src", "--build-base", "build",
         "--install-base", "install", "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}",
         "-DBUILD_TESTING=OFF"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, f"colcon build failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    prefix = tmp_path / "install" / "jepa_pilot"
    lib_dir = prefix / "lib" / "jepa_pilot"
    assert not any((lib_dir / e).is_symlink() for e in NODES), "a copy install must not link into the build"
    check_executables(lib_dir)
    site = next((prefix / "lib").glob("python3*/site-packages"))
    env = dict(os.environ)  # as `source install/setup.bash` would put this install first
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([str(prefix), env.get("AMENT_PREFIX_PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env["LD_LIBRARY_PATH"] = os.pathsep.join([str(prefix / "lib"), env.get("LD_LIBRARY_PATH", "")])
    start_nodes(lib_dir, tmp_path, env)


@pytest.mark.ros
def test_rcl_reads_inline_params_with_their_types(tmp_path):
    """The parameter file jepa-pilot up writes for inline values, read by rcl's own YAML parser."""
    rclpy = pytest.importorskip("rclpy")
    from rclpy.node import Node

    path = NodeSpec("any_pkg", "any_exec", params=dict(PARAM_VALUES)).write_params_file(tmp_path / "p.yaml")
    context = rclpy.Context()
    rclpy.init(args=["--ros-args", "--params-file", str(path)], context=context)
    try:
        node = Node("any_name", namespace="/any_ns", context=context,
                    automatically_declare_parameters_from_overrides=True)
        for name, value in PARAM_VALUES.items():
            got = node.get_parameter(name).value
            got = list(got) if isinstance(value, list) else got
            assert got == value and type(got) is type(value), f"{name}: wrote {value!r}, rcl read {got!r}"
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
