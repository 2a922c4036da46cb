"""ROS tier: the short fault suite (`jepa-pilot bench faults --scale 0.5`) on the real sim graph.

Every fault is injected mid-drive. Whatever the timing, the safety properties must hold: when a
fault leaves the planner without fresh information the robot stops and no command moves it until
the fault clears; it drives again afterwards; and no node crashes. (How fast is the benchmark's
business: benchmarks/faults.json.)
"""
from __future__ import annotations

import json

import pytest

from jepa_pilot.cli.main import main
from jepa_pilot.evaluation.faults import FAULTS

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults")
    assert main(["bench", "faults", "--scale", "0.5", "--repeats", "1", "--json", str(out / "faults.json"),
                 "--log", str(out / "nodes.log")]) == 0
    return {f["name"]: f for f in json.loads((out / "faults.json").read_text())["faults"]}


@pytest.mark.parametrize("name", [f.name for f in FAULTS])
def test_the_robot_is_safe_through_the_fault(faults, name):
    result = faults[name]
    assert result["crashed"] == [], result
    if result["must_stop"]:
        assert result["stopped"], result
        assert result["commands_while_stopped"] == 0, result
    if result["must_stop"] and not name.startswith("freeze_"):
        # (A frozen node that is thawed has once been seen not to receive again over DDS within 15 s;
        # the benchmark records it as recovered_by_restart. Its safety is asserted above.)
        assert result["resume_s"] is not None, f"the robot did not drive again after the fault cleared: {result}"


def test_a_node_that_stops_answering_is_restarted_before_the_next_fault(tmp_path):
    """The harness's own recovery: with the encoder frozen for good, setting the goal times out; the
    encoder is restarted once, recorded, and the robot drives to the goal."""
    import os
    import signal

    from jepa_pilot import sim
    from jepa_pilot.cli.supervisor import Launcher
    from jepa_pilot.cli.up import child_environment
    from jepa_pilot.evaluation.faults import FaultRun, pairs_for, start_driving
    from jepa_pilot.evaluation.rosgraph import sim_graph, wait_until_up, watching

    env = sim.make("two_rooms")
    specs = sim_graph("two_rooms", jepa=True)
    nodes = [spec.name for spec in specs]
    start, goals = pairs_for(env)
    with open(tmp_path / "nodes.log", "w") as log, \
            Launcher(specs, env=child_environment(os.environ), stream=log) as launcher, \
            watching(env, keep_frames=False) as watcher:
        wait_until_up(watcher, launcher.alive)
        watcher.call_timeout = 5.0
        launcher.signal_node("encoder", signal.SIGSTOP)
        run = FaultRun(launcher, watcher, goals)
        assert start_driving(run, start, goals[0], nodes) == ["encoder"]
        assert all(launcher.alive(n) for n in nodes)
        assert any(moving for _, moving in watcher.commands)
