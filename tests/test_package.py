"""Unit tests of the package's wiring: executables, launch files, parameter files, interfaces."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

from jepa_pilot.cli.launch import declared_args, parse_launch_file, read_launch_file
from jepa_pilot.common.paths import source_root
from jepa_pilot.nodes import NODES

pytestmark = pytest.mark.unit

ROOT = source_root()
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.yaml"))
ROS_BUILTIN_PARAMS = {"use_sim_time"}

# Nodes of other packages that launch files start, with the parameters they
# declare (name -> type; a name ending in '.' is a prefix). They are not
# installed here (ros_gz comes with Gazebo), so this list stands in for their
# registry: ros_gz_sim/src/create.cpp declares x, y, z, R, P, Y as doubles (an
# int value would make it throw), parameter_bridge reads config_file and the
# qos_overrides.<topic>.* of its publishers and subscriptions.
EXTERNAL_NODES = {
    ("ros_gz_sim", "create"): {
        "world": str, "file": str, "string": str, "topic": str, "name": str, "allow_renaming": bool,
        "x": float, "y": float, "z": float, "R": float, "P": float, "Y": float},
    ("ros_gz_bridge", "parameter_bridge"): {
        "config_file": str, "expand_gz_topic_names": bool, "lazy": bool, "subscription_heartbeat": int,
        "override_timestamps_with_wall_time": bool, "qos_overrides.": None},
}
# Non-YAML launch files that launch files include (package/path), with the arguments they declare.
EXTERNAL_INCLUDES = {
    "ros_gz_sim/launch/gz_sim.launch.py": {"gz_args", "gz_version", "on_exit_shutdown", "debugger"},
}


def argument_variants(launch_file):
    """The default launch arguments, then each true/false argument flipped, then all of them true (to reach
    conditional nodes, also those behind two conditions such as jepa:=true learn:=true)."""
    yield {}
    flags = [arg for arg in declared_args(launch_file) if (arg.default or "").lower() in ("true", "false")]
    for arg in flags:
        yield {arg.name: "false" if arg.default.lower() == "true" else "true"}
    yield {arg.name: "true" for arg in flags}


def include_key(file: str) -> str:
    """``$(find-pkg-share P)/x`` or ``<prefix>/share/P/x`` -> ``P/x``."""
    match = re.match(r"\$\(find-pkg-share ([^)]+)\)/(.*)", file) or re.search(r"/share/([^/]+)/(.*)", file)
    return f"{match.group(1)}/{match.group(2)}" if match else file


def check_external_node(launch_file, spec):
    key = (spec.package, spec.executable)
    assert key in EXTERNAL_NODES, f"{launch_file.name}: {spec.package}/{spec.executable} is neither a " \
        f"jepa_pilot node nor in EXTERNAL_NODES"
    declared = EXTERNAL_NODES[key]
    for name, value in spec.params.items():
        match = declared.get(name, next((t for p, t in declared.items() if p.endswith(".") and
                                         name.startswith(p)), KeyError))
        assert match is not KeyError, f"{launch_file.name}: {spec.executable} declares no parameter {name!r}"
        assert match is None or type(value) is match, \
            f"{launch_file.name}: {spec.executable} parameter {name!r} = {value!r} must be a {match.__name__}"


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


def node_configs(executable: str, name: str | None) -> dict:
    """{node name: its config class} of the nodes an executable runs (several for a composed process)."""
    module = importlib.import_module(NODES[executable])
    return getattr(module, "CONFIGS", None) or {name: module.CONFIG}


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_files_name_real_nodes_and_real_parameters(launch_file):
    pytest.importorskip("rclpy")
    plans = [read_launch_file(launch_file, args, resolve_external=False) for args in argument_variants(launch_file)]
    for include in (inc for plan in plans for inc in plan.external_includes):
        key = include_key(include.file)
        assert key in EXTERNAL_INCLUDES, f"{launch_file.name}: includes unknown {include.file}"
        assert set(include.arguments) <= EXTERNAL_INCLUDES[key], f"{launch_file.name}: {key} takes no " \
            f"{sorted(set(include.arguments) - EXTERNAL_INCLUDES[key])}"
    for spec in (spec for plan in plans for spec in plan.nodes):
        if spec.package != "jepa_pilot":
            check_external_node(launch_file, spec)
            continue
        assert spec.executable in NODES, spec.executable
        spec.validate()  # parameter files exist and are well formed
        configs = node_configs(spec.executable, spec.name)  # a composed process: one per node it holds
        declared = {f.name for config in configs.values() for f, _, _ in config.settings()}
        given = set(spec.params)
        for params_file in spec.param_files:
            sections = yaml.safe_load(Path(params_file).read_text())
            for key in (*configs, *(f"/{name}" for name in configs), "/**"):
                given |= set((sections.get(key) or {}).get("ros__parameters", {}))
        unknown = given - declared - ROS_BUILTIN_PARAMS
        assert not unknown, f"{launch_file.name}: {spec.name} does not declare {sorted(unknown)}"


def test_parameter_files_only_configure_nodes_that_some_launch_file_starts():
    started = {name for f in LAUNCH_FILES for args in argument_variants(f)
               for spec in parse_launch_file(f, args, resolve_external=False)
               for name in (node_configs(spec.executable, spec.name) if spec.package == "jepa_pilot" else [spec.name])}
    for path in (ROOT / "config").glob("*.yaml"):
        sections = set(yaml.safe_load(path.read_text()))
        assert sections <= started | {"/**"}, f"{path.name} configures unknown nodes {sections - started}"


@pytest.mark.parametrize("executable", sorted(NODES))
def test_readme_documents_every_node_parameter(executable):
    pytest.importorskip("rclpy")
    readme = (ROOT / "README.md").read_text()
    missing = [f.name for config in node_configs(executable, None).values() for f, _, _ in config.settings()
               if f"`{f.name}`" not in readme]
    assert not missing, f"README.md does not document {executable} parameters {missing}"
