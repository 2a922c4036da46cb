"""The pip path: the wheel carries every room and the package data, and runs without colcon or ROS.

Builds the wheel from a copy of this checkout (so stale build/ folders play
no part), checks what it contains, installs it with ``pip install --target``
and runs the CLI from there, in a process that sees no colcon install (no
AMENT_PREFIX_PATH, nothing of ros_ws/ on PYTHONPATH) and works outside the
repository: the shipped bundle must come from the wheel's own data.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from jepa_pilot.common.paths import source_root

ROOT = source_root()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(ROOT is None, reason="needs the source checkout (builds the wheel from it)")]

# Not part of a build: environments, build outputs, data and runs of this checkout.
IGNORED = shutil.ignore_patterns(".git", ".venv", ".stamps", "ros_ws", "build", "dist", "*.egg-info", "__pycache__",
                                 "datasets", "runs", "out", ".pytest_cache")


def run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``cmd``; fail the test with its output when it does not exit 0."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{output}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The jepa-pilot wheel built with this venv's pip from a copy of the checkout."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    shutil.copytree(ROOT, src, ignore=IGNORED, symlinks=True)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(work / "dist"),
         str(src)], cwd=work)
    (built,) = (work / "dist").glob("jepa_pilot-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel installed into a folder of its own (``pip install --no-deps --target``)."""
    target = tmp_path_factory.mktemp("site")
    run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        cwd=target)
    return target


def clean_env(site: Path) -> dict[str, str]:
    """This environment without colcon's: no AMENT_PREFIX_PATH, PYTHONPATH only the installed wheel."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMENT_", "COLCON_", "CMAKE_PREFIX"))}
    env["PYTHONPATH"] = str(site)
    env.setdefault("MUJOCO_GL", "egl")
    return env


def test_the_wheel_holds_every_room_the_bundles_configs_and_launch_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    rooms = sorted(p.parent for p in ROOT.glob("*/__init__.py"))
    assert len(rooms) >= 9, rooms
    for room in rooms:  # every Python file of every top-level package folder
        for module in room.rglob("*.py"):
            if "__pycache__" not in module.parts:
                assert f"jepa_pilot/{module.relative_to(ROOT).as_posix()}" in names, f"{module} is not in the wheel"
    share = "jepa_pilot/share"
    bundles = sorted(p.parent.name for p in ROOT.glob("models/*/bundle.yaml"))
    assert "two_rooms" in bundles
    wanted = [f"{share}/package.xml"]
    wanted += [f"{share}/models/{b}/{f}" for b in bundles for f in ("bundle.yaml", "encoder.onnx", "rollout.onnx")]
    wanted += [f"{share}/{p.relative_to(ROOT).as_posix()}" for pattern in
               ("config/*.yaml", "config/robots/*.yaml", "config/train/*.yaml", "launch/*.yaml")
               for p in ROOT.glob(pattern)]
    missing = [name for name in wanted if name not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert any(n.startswith(f"{share}/config/robots/") for n in names)
    assert any(n.startswith(f"{share}/config/train/") for n in names)
    # package data is only what pyproject names: no sources copied into share/, no tests
    assert not [n for n in names if n.startswith(f"{share}/") and n.endswith(".py")]
    assert not [n for n in names if n.startswith("jepa_pilot/tests/") or n.startswith("tests/")]
    # the shipped bundle is byte for byte the checkout's
    with zipfile.ZipFile(wheel) as zf:
        shipped = zf.read(f"{share}/models/two_rooms/encoder.onnx")
    assert shipped == (ROOT / "models/two_rooms/encoder.onnx").read_bytes()


def test_the_installed_wheel_runs_without_colcon_from_outside_the_checkout(installed, tmp_path):
    env = clean_env(installed)
    where = run([sys.executable, "-c", "import jepa_pilot.cli.main as m; from jepa_pilot.common.paths import "
                 "package_share; print(m.__file__); print(package_share())"], cwd=tmp_path, env=env).stdout.split()
    assert where == [str(installed / "jepa_pilot/cli/main.py"), str(installed / "jepa_pilot/share")], where

    help_text = run([sys.executable, "-m", "jepa_pilot.cli.main", "--help"], cwd=tmp_path, env=env).stdout
    for command in ("collect", "import-bag", "train", "export", "eval-model", "eval"):
        assert f"    {command}" in help_text, help_text

    out = tmp_path / "eval.json"
    proc = run([sys.executable, "-m", "jepa_pilot.cli.main", "eval", "--env", "two_rooms", "--policies",
                "random,latent", "--episodes", "1", "--max-steps", "5", "--samples", "32", "--iterations", "1",
                "--json", str(out)], cwd=tmp_path, env=env)
    policies = json.loads(out.read_text())["policies"]
    assert set(policies) == {"random", "latent"}, proc.stdout
    assert policies["latent"]["decision_ms_median"] > 0  # the planner ran on the shipped bundle


def test_an_install_without_its_data_says_where_it_looked(installed, tmp_path):
    """package_share() finds the data next to the installed code, nowhere else: without it, a clear error."""
    site = tmp_path / "site"
    shutil.copytree(installed, site, ignore=shutil.ignore_patterns("share"))
    proc = subprocess.run([sys.executable, "-c", "from jepa_pilot.common.paths import package_share; package_share()"],
                          cwd=tmp_path, env=clean_env(site), capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "package 'jepa_pilot' not found" in proc.stderr and "AMENT_PREFIX_PATH" in proc.stderr, proc.stderr
