"""Unit tests of the package's wiring: executables, launch files, parameter files, interfaces."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

from jepa_pilot.cli.launch import parse_launch_file
from jepa_pilot.common.paths import source_root
from jepa_pilot.nodes import NODES

pytestmark = pytest.mark.unit

ROOT = source_root()
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.yaml"))
ROS_BUILTIN_PARAMS = {"use_sim_time"}


def test_cmake_installs_exactly_the_registered_node_executables():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    listed = re.search(r"set\(JEPA_PILOT_NODES ([^)]*)\)", cmake).group(1).split()
    assert sorted(listed) == sorted(NODES)


def test_cmake_installs_every_python_room():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    rooms = set(re.search(r"set\(JEPA_PILOT_PY_ROOMS ([^)]*)\)", cmake).group(1).split())
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert rooms == on_disk


def test_pyproject_installs_every_python_room():
    text = (ROOT / "pyproject.toml").read_text()
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert {f"jepa_pilot.{room}" for room in on_disk} <= set(re.findall(r'"(jepa_pilot\.\w+)"', text))


def test_every_interface_is_generated():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    for path in [*ROOT.glob("msg/*.msg"), *ROOT.glob("srv/*.srv")]:
        assert f'"{path.parent.name}/{path.name}"' in cmake, f"{path} is not in rosidl_generate_interfaces"


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_files_name_real_nodes_and_real_parameters(launch_file):
    pytest.importorskip("rclpy")
    for spec in parse_launch_file(launch_file):
        assert spec.package == "jepa_pilot" and spec.executable in NODES, spec.executable
        declared = {f.name for f, _, _ in importlib.import_module(NODES[spec.executable]).CONFIG.settings()}
        given = set(spec.params)
        for params_file in spec.param_files:
            sections = yaml.safe_load(Path(params_file).read_text())
            for key in (spec.name, f"/{spec.name}", "/**"):
                given |= set((sections.get(key) or {}).get("ros__parameters", {}))
        unknown = given - declared - ROS_BUILTIN_PARAMS
        assert not unknown, f"{launch_file.name}: {spec.name} does not declare {sorted(unknown)}"


def test_parameter_files_only_configure_nodes_that_some_launch_file_starts():
    started = {spec.name for f in LAUNCH_FILES for spec in parse_launch_file(f)}
    for path in (ROOT / "config").glob("*.yaml"):
        sections = set(yaml.safe_load(path.read_text()))
        assert sections <= started | {"/**"}, f"{path.name} configures unknown nodes {sections - started}"


@pytest.mark.parametrize("executable", sorted(NODES))
def test_readme_documents_every_node_parameter(executable):
    pytest.importorskip("rclpy")
    readme = (ROOT / "README.md").read_text()
    config = importlib.import_module(NODES[executable]).CONFIG
    missing = [f.name for f, _, _ in config.settings() if f"`{f.name}`" not in readme]
    assert not missing, f"README.md does not document {executable} parameters {missing}"
