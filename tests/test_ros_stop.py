"""ROS tier: stop means stop. However the planner ends while it drives the robot, its last command is zero.

A base that keeps its last command (Gazebo's DiffDrive and VelocityControl, many drivers) would
otherwise drive on after the stack stopped. Each test starts a fresh planner process beside a
shared sim node and encoder, gives it a goal in the other room, waits until it commands motion,
ends it one way, and checks what it published last on /cmd_vel.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue  # noqa: E402
from geometry_msgs.msg import TwistStamped  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from jepa_pilot.common.paths import package_share  # noqa: E402
from jepa_pilot.msg import Latent, PlanStatus  # noqa: E402
from jepa_pilot.nodes.qos import qos  # noqa: E402
from jepa_pilot.nodes.ros_io import from_time, to_time  # noqa: E402
from jepa_pilot.srv import GetGoalImage, ResetSim, SetGoal  # noqa: E402
from rosgraph import NodeProcess, Probe  # noqa: E402

pytestmark = pytest.mark.ros

BUNDLE = Path(os.environ.get("JEPA_PILOT_TEST_BUNDLE") or package_share() / "models" / "two_rooms")
START, NEAR_GOAL, FAR_GOAL = (-0.5, -0.5, 0.0, 0.0), (-0.5, -0.15, 0.0, 0.0), (0.5, 0.5, 0.0, 0.0)
FAILING_PLANNER = str(Path(__file__).with_name("failing_planner.py"))
FLOODED_NODE = str(Path(__file__).with_name("flooded_node.py"))


def model_params(**extra) -> dict:
    return dict(bundle=str(BUNDLE), providers=["cpu"], threads=1, use_sim_time=True, **extra)


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    work = tmp_path_factory.mktemp("ros_stop")
    nodes = [NodeProcess("sim_node", "sim", dict(env="two_rooms", seed=1), work),
             NodeProcess("encoder_node", "encoder", model_params(), work)]
    probe = Probe("probe_stop")
    latents = probe.subscribe(Latent, "/jepa/latent", qos("reliable"))
    clock = probe.subscribe(Clock, "/clock", qos("reliable"))
    assert probe.spin_until(lambda: len(latents) >= 3 and clock, 90), "\n".join(n.log()[-2000:] for n in nodes)
    yield work, probe, clock
    probe.close()
    for node in nodes:
        node.stop()


def moving(msg: TwistStamped) -> bool:
    t = msg.twist
    return bool(np.any(np.abs([t.linear.x, t.linear.y, t.angular.z]) > 1e-9))


def drive(graph, name: str, module: str = "planner_node", goal=FAR_GOAL, **params):
    """A fresh planner (``params`` on top of the defaults), driving the robot towards ``goal`` (by
    default in the other room). Returns (node, commands, the probe's /cmd_vel subscription)."""
    work, probe, clock = graph
    commands = probe.received[f"/cmd_vel#{name}"] = []
    sub = probe.node.create_subscription(TwistStamped, "/cmd_vel", commands.append, qos("reliable", depth=100))
    planner = NodeProcess(module, "planner", model_params(max_plan_time=1.0, max_latent_age=1.0, **params), work)
    # The goal only once the planner's /cmd_vel reaches the probe: a drive can end (REACHED, then
    # zero commands) before a late DDS match would let the probe see it move (a CI failure).
    matched = probe.spin_until(lambda: sub.get_publisher_count() >= 1 or planner.proc.poll() is not None, 90)
    assert matched and planner.proc.poll() is None, planner.log()[-3000:]
    probe.call(ResetSim, "/sim/reset", ResetSim.Request(seed=0, state=list(START)))
    shot = probe.call(GetGoalImage, "/sim/get_goal_image", GetGoalImage.Request(state=list(goal)))
    shot.image.header.stamp = to_time(from_time(clock[-1].clock) + 0.001)
    # The planner takes the latched goal latent when it comes up; wait until it drives on it.
    assert probe.call(SetGoal, "/encoder/set_goal", SetGoal.Request(image=shot.image)).success
    if not probe.spin_until(lambda: sum(map(moving, commands)) >= 3 or planner.proc.poll() is not None, 90):
        planner.stop()  # a planner left running would drive the robot in the next test
        pytest.fail(f"the planner did not drive:\n{planner.log()[-3000:]}")
    assert module != "planner_node" or planner.proc.poll() is None, planner.log()[-3000:]
    return planner, commands, sub


def assert_left_stopped(graph, planner, commands, sub, since: int) -> None:
    """After the ending (commands[since:]), a zero command came, and nothing moved the robot after it."""
    _, probe, _ = graph
    probe.spin_for(1.0)  # anything still in flight
    probe.node.destroy_subscription(sub)
    after = commands[since:]
    assert after and not moving(after[-1]), f"last command after the ending: {after[-1:]}\n{planner.log()[-3000:]}"
    assert not moving(commands[-1])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_the_planner_with_a_zero_command(graph, sig):
    planner, commands, sub = drive(graph, sig.name)
    since = len(commands)
    planner.proc.send_signal(sig)
    assert planner.wait(20) == 0, planner.log()[-3000:]
    assert_left_stopped(graph, planner, commands, sub, since)
    assert "stopping: zero command sent" in planner.log()
    planner.stop()


@pytest.mark.parametrize("transition", [Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_ACTIVE_SHUTDOWN],
                         ids=["deactivate", "shutdown"])
def test_a_lifecycle_transition_leaves_the_robot_stopped(graph, transition):
    _, probe, _ = graph
    planner, commands, sub = drive(graph, f"lifecycle{transition}")
    since = len(commands)
    answer = probe.call(ChangeState, "/planner/change_state", ChangeState.Request(transition=Transition(id=transition)),
                        resend=False)
    assert answer.success
    assert_left_stopped(graph, planner, commands, sub, since)
    assert planner.proc.poll() is None, f"a lifecycle transition does not end the process\n{planner.log()[-3000:]}"
    planner.stop()  # SIGINT now: inactive, already stopped, so nothing more is sent
    assert not moving(commands[-1])


def test_cancelling_the_goal_stops_the_robot(graph):
    _, probe, _ = graph
    planner, commands, sub = drive(graph, "clear_goal")
    since = len(commands)
    answer = probe.call(Trigger, "/planner/clear_goal", Trigger.Request(), resend=False)
    assert answer.success and answer.message == "goal cleared, robot stopped"
    assert_left_stopped(graph, planner, commands, sub, since)
    planner.stop()


def test_a_planner_that_fails_with_an_exception_leaves_the_robot_stopped(graph):
    planner, commands, sub = drive(graph, "exception", module=FAILING_PLANNER)
    motion = [i for i, c in enumerate(commands) if moving(c)]
    assert motion, f"the probe saw no motion before the failure\n{planner.log()[-3000:]}"
    since = motion[-1]  # it may have failed already
    assert planner.wait(30) == 1, planner.log()[-3000:]
    assert "injected failure" in planner.log()
    # Stopped either by safe_stop's zero command ("stopping: zero command sent") or, when the executor's
    # other thread sent a zero command (a staleness stop) between the failure and the exit, by that one:
    # either way a zero command came after the last motion, and nothing moved the robot after it.
    assert_left_stopped(graph, planner, commands, sub, since)
    planner.stop()


def test_an_exploration_lease_drives_random_actions_and_ends_when_not_renewed(graph):
    """/jepa/explore true, renewed: EXPLORING with moving commands; not renewed: back to the goal."""
    _, probe, _ = graph
    plans = probe.subscribe(PlanStatus, "/jepa/plan", qos("reliable", depth=100))
    planner, commands, sub = drive(graph, "explore")
    explore = probe.node.create_publisher(Bool, "/jepa/explore", qos("latched"))
    try:
        statuses = lambda: [m.status for m in plans]  # noqa: E731
        exploring = lambda: PlanStatus.STATUS_EXPLORING in statuses()  # noqa: E731
        deadline = time.monotonic() + 20.0
        while not exploring() and time.monotonic() < deadline:  # renewed every 0.5 s (a lease lasts 3 s)
            explore.publish(Bool(data=True))
            probe.spin_for(0.5)
        assert exploring(), planner.log()[-3000:]
        first, since = statuses().index(PlanStatus.STATUS_EXPLORING), len(commands)
        for _ in range(4):  # 2 s more of exploring
            explore.publish(Bool(data=True))
            probe.spin_for(0.5)
        assert sum(map(moving, commands[since:])) >= 5, planner.log()[-3000:]
        # Not renewed: the lease runs out and the planner pursues its goal again, without a new goal.
        resumed = lambda: PlanStatus.STATUS_PLANNING in statuses()[first:]  # noqa: E731
        assert probe.spin_until(resumed, 15), planner.log()[-3000:]
        assert "exploring: random actions" in planner.log() and planner.proc.poll() is None
    finally:
        probe.node.destroy_publisher(explore)
        probe.node.destroy_subscription(sub)
        planner.stop()


def test_a_planner_searching_on_the_device_drives_to_a_goal_image(graph):
    """search: device runs the sampling, the IO-bound rollout and the CEM update on torch tensors of the
    rollout's device; here the CPU (a GPU machine runs the same code on CUDA: tests/test_gpu.py)."""
    _, probe, _ = graph
    odom = probe.subscribe(Odometry, "/odom", qos("reliable"))
    planner, commands, sub = drive(graph, "device", goal=NEAR_GOAL, search="device")
    assert "search on the device: torch tensors on cpu" in planner.log(), planner.log()[-3000:]
    position = lambda: np.array([odom[-1].pose.pose.position.x, odom[-1].pose.pose.position.y])  # noqa: E731
    distance = lambda: float(np.linalg.norm(position() - np.asarray(NEAR_GOAL[:2])))  # noqa: E731
    start = float(np.linalg.norm(np.asarray(START[:2]) - np.asarray(NEAR_GOAL[:2])))
    probe.spin_until(lambda: distance() < 0.5 * start, 30)
    assert distance() < 0.5 * start, f"robot at {position()}, goal {NEAR_GOAL[:2]}\n{planner.log()[-3000:]}"
    planner.proc.send_signal(signal.SIGINT)
    assert planner.wait(20) == 0, planner.log()[-3000:]
    probe.spin_for(1.0)
    probe.node.destroy_subscription(sub)
    assert not moving(commands[-1]), f"last command: {commands[-1]}\n{planner.log()[-3000:]}"
    planner.stop()


def flood_message() -> DiagnosticArray:
    """A message with many small fields: building it on receipt runs much Python code."""
    values = [KeyValue(key=f"k{i}", value=str(i)) for i in range(20)]
    return DiagnosticArray(status=[DiagnosticStatus(name=f"s{i}", values=values) for i in range(20)])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_messages_pour_in_ends_the_node_cleanly(tmp_path, sig):
    """A signal lands wherever the node's one thread is; most often here, while rclpy builds a received
    message. Python's own KeyboardInterrupt, raised there, came out as an unrelated RuntimeError
    ("Unable to convert call argument '0' to Python object") and the node ended as failed (exit 1)."""
    probe = Probe(f"probe_flood_{sig.name}")
    publisher = probe.node.create_publisher(DiagnosticArray, "/flood", qos("reliable", depth=100))
    msg, stop = flood_message(), threading.Event()

    def flood() -> None:
        while not stop.is_set():
            publisher.publish(msg)

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    try:
        for trial in range(5):
            node = NodeProcess(FLOODED_NODE, "flooded", {}, tmp_path)
            try:
                deadline = time.monotonic() + 60
                while "taking messages" not in node.log() and node.proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert "taking messages" in node.log(), node.log()[-3000:]
                time.sleep(0.05 * trial)  # a different moment of its work each time
                node.proc.send_signal(sig)
                assert node.wait(20) == 0, f"trial {trial}:\n{node.log()[-3000:]}"
            finally:
                node.stop()
    finally:
        stop.set()
        flooder.join(5)
        probe.close()
