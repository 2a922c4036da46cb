"""ROS tier: compose:=true, the encoder, planner and predictor in one process (nodes/pilot_node.py),
with the real sim node in another, over real DDS, driving the two_rooms robot with the shipped bundle."""
from __future__ import annotations

import signal
import time

import pytest

rclpy = pytest.importorskip("rclpy")

from std_msgs.msg import Bool  # noqa: E402

from jepa_pilot.nodes.ros_io import to_time  # noqa: E402
from rosgraph import NodeProcess, Probe  # noqa: E402
from test_ros_jepa import (BUNDLE, FAR_GOAL, NEAR_GOAL, PLANNING, REACHED, STOPPED, diagnostic,  # noqa: E402
                           goal_image, is_zero, model_params, now, pursuing, reset, set_goal, speed, wait_sim,
                           watch)

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    if not (BUNDLE / "bundle.yaml").is_file():
        pytest.skip(f"no model bundle at {BUNDLE}")
    work = tmp_path_factory.mktemp("ros_compose")
    sim = NodeProcess("sim_node", "sim", dict(env="two_rooms", seed=1, cmd_timeout=0.5), work)
    pilot = NodeProcess("pilot_node", "pilot", dict(
        encoder=model_params(), predictor=model_params(),
        planner=model_params(max_latent_age=0.3, max_plan_time=1.0)), work, composed=True)
    c = watch(Probe("probe_compose"), work, {"sim": sim, "pilot": pilot})
    yield c
    c.probe.close()
    sim.stop()
    pilot.stop()


def test_three_nodes_in_one_process_keep_their_names_and_diagnostics_and_latents_skip_dds(c):
    assert c.probe.spin_until(lambda: all(diagnostic(c, n)[1].get("state") == "active"
                                          for n in ("encoder", "planner", "predictor")), 20), c.nodes["pilot"].log()
    names = set(c.probe.node.get_node_names())
    assert {"encoder", "planner", "predictor"} <= names
    # The latents still go out on /jepa/latent for the rest of the graph, but the planner and the
    # predictor take them in-process: neither subscribes to it (nor the predictor to /jepa/plan).
    readers = {info.node_name for info in c.probe.node.get_subscriptions_info_by_topic("/jepa/latent")}
    assert "probe_compose" in readers and not readers & {"planner", "predictor"}, readers
    plan_readers = {info.node_name for info in c.probe.node.get_subscriptions_info_by_topic("/jepa/plan")}
    assert "predictor" not in plan_readers, plan_readers


def test_the_composed_graph_drives_to_a_goal_image_and_the_predictor_forecasts_its_plans(c):
    reset(c)
    c.probe.spin_for(0.5)
    goal = goal_image(c, NEAR_GOAL)
    goal.header.stamp = to_time(now(c) + 0.002)
    c.goal_image.publish(goal)
    assert c.probe.spin_until(lambda: pursuing(c, goal, REACHED), 30), \
        f"never REACHED; last plan: {c.plans[-1][1].reason if c.plans else None}"
    planned = [m for _, m in pursuing(c, goal, PLANNING)]
    assert planned and any(not is_zero(m) for _, m in c.cmds)
    stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in planned}
    forecast = [f for f in c.forecasts if (f.header.stamp.sec, f.header.stamp.nanosec) in stamps]
    assert forecast, "the predictor forecast none of the executed plans handed to it"
    assert c.surprises, "no surprise: the predictor did not get the latents handed to it"


def test_the_estop_acts_while_the_planner_plans(c):
    reset(c)
    goal = set_goal(c, FAR_GOAL)
    assert c.probe.spin_until(lambda: len(pursuing(c, goal, PLANNING)) >= 3, 20), "the planner does not plan"
    pressed = time.monotonic()
    c.estop.publish(Bool(data=True))
    assert c.probe.spin_until(lambda: pursuing(c, goal, STOPPED, after=pressed), 20), "no STOPPED status"
    wait_sim(c, 1.0)
    assert speed(c.odom[-1][1]) < 1e-3, "the robot still moves during the e-stop"
    c.estop.publish(Bool(data=False))
    released = time.monotonic()
    assert c.probe.spin_until(lambda: pursuing(c, goal, PLANNING, after=released), 20), "did not resume"


def test_sigint_ends_the_process_with_a_zero_command_last(c):
    reset(c)
    set_goal(c, FAR_GOAL)
    assert c.probe.spin_until(lambda: any(not is_zero(m) for t, m in c.cmds if t > time.monotonic() - 1.0), 20)
    pilot = c.nodes["pilot"]
    pilot.proc.send_signal(signal.SIGINT)
    assert pilot.wait(15) == 0, pilot.log()[-3000:]
    c.probe.spin_for(0.5)
    assert is_zero(c.cmds[-1][1]), "the last command before the process ended was not zero"
