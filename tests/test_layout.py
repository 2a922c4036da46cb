"""The rooms' import graph: who may import whom, where ROS and torch may appear.

Parsed with ``ast`` from every .py file of every top-level Python folder (a
*room*, imported as ``jepa_pilot.<room>``), imports inside functions
included, so a lazy import cannot hide a dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]

# room -> the rooms it may import. Below the apps (cli, evaluation, nodes) the
# graph is layered: the trainer (world_model, torch) and the runtime
# (perception, ONNX Runtime) never import each other; the bundle format
# (common/bundle.py), the probes and splits (data/) sit below both.
ALLOWED = {
    "common": set(),
    "sim": {"common"},
    "perception": {"common"},
    "control": {"common", "perception"},
    "data": {"common", "control", "sim", "perception"},
    "world_model": {"common", "data"},
    "nodes": {"common", "control", "perception", "sim", "data", "world_model"},  # trainer_node: replay, learner
    "evaluation": {"common", "control", "data", "perception", "sim", "world_model", "nodes", "cli"},  # bench finetune
    "cli": {"common", "control", "data", "evaluation", "nodes", "perception", "sim", "world_model"},
}
LIBRARIES = ("common", "sim", "perception", "control", "data", "world_model")  # below the apps
ROS_HARNESS = "evaluation/rosgraph.py"  # the one module outside nodes/ that talks to the ROS graph
ROS_TOP = {"rclpy", "rosidl_runtime_py", "rosgraph_msgs", "builtin_interfaces"}


def rooms() -> list[str]:
    return sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests")


def imports_of(path: Path) -> set[str]:
    """Every module name ``path`` imports (absolute; relative ones resolved inside jepa_pilot)."""
    room = path.relative_to(ROOT).parts[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # from . import x, from .mod import y
                module = f"jepa_pilot.{room}" + (f".{module}" if module else "")
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def graph() -> dict[str, dict[str, set[str]]]:
    """room -> file (relative path) -> the modules it imports."""
    return {room: {str(p.relative_to(ROOT)): imports_of(p) for p in sorted((ROOT / room).rglob("*.py"))}
            for room in rooms()}


def room_of(module: str) -> str | None:
    """The jepa_pilot room a module name belongs to (jepa_pilot.data.probe -> data), else None."""
    parts = module.split(".")
    return parts[1] if parts[0] == "jepa_pilot" and len(parts) > 1 else None


def is_ros(module: str) -> bool:
    top = module.split(".")[0]
    return (top in ROS_TOP or top.endswith(("_msgs", "_srvs"))
            or room_of(module) in ("msg", "srv", "action"))


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle in a directed graph, as a list of nodes, or None (depth-first search)."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_every_room_is_in_the_table():
    assert set(rooms()) == set(ALLOWED), "add the new room to ALLOWED (and to the README's Layout)"


def test_rooms_import_only_what_the_table_allows():
    wrong = []
    for room, files in graph().items():
        for path, modules in files.items():
            for module in sorted(modules):
                other = room_of(module)
                if other and other != room and other in ALLOWED and other not in ALLOWED[room]:
                    wrong.append(f"{path} imports {module} ({room} may import {sorted(ALLOWED[room])})")
    assert not wrong, "\n".join(wrong)


def test_the_library_rooms_form_no_cycle():
    within = {r: ALLOWED[r] & set(LIBRARIES) for r in LIBRARIES}
    assert find_cycle(within) is None
    assert "world_model" not in ALLOWED["perception"] and "perception" not in ALLOWED["world_model"]
    actual = {room: {room_of(m) for ms in files.values() for m in ms} & set(LIBRARIES) - {room}
              for room, files in graph().items() if room in LIBRARIES}
    assert find_cycle(actual) is None, f"import cycle: {' -> '.join(find_cycle(actual))}"


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) in (["a", "b", "c", "a"], ["b", "c", "a", "b"])
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_only_nodes_and_the_harness_import_ros():
    offenders = [f"{path}: {module}" for room, files in graph().items() for path, modules in files.items()
                 for module in sorted(modules)
                 if is_ros(module) and room != "nodes" and path != ROS_HARNESS]
    assert not offenders, "rclpy and message packages belong in nodes/ (or the harness):\n" + "\n".join(offenders)


# The GPU path's modules outside world_model/ that need torch: the planner on the device and its
# search graph (only imported where `search: device` is used) and the benchmark that measures them
# against PyTorch's floor.
TORCH_ON_DEVICE = ("control/device_planner.py", "control/search_graph.py", "evaluation/gpu_bench.py")


def test_torch_stays_in_the_trainer():
    """The runtime (perception, nodes, control, ...) runs on ONNX Runtime; only world_model/ imports torch
    (and the GPU path's device planner and benchmark, which nothing on the CPU path imports)."""
    offenders = [f"{path}: {module}" for room, files in graph().items() for path, modules in files.items()
                 for module in sorted(modules) if module.split(".")[0] == "torch" and room != "world_model"
                 and path not in TORCH_ON_DEVICE]
    assert not offenders, "\n".join(offenders)
