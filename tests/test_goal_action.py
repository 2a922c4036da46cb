"""The ReachGoal action: the GoalSession state machine (unit), and goal_node on /jepa/reach_goal driving the
real sim node, encoder, planner and predictor, each in its own process, from an rclpy ActionClient (ros)."""
from __future__ import annotations

import math
import os
import re
import types
from pathlib import Path

import pytest

from jepa_pilot.common.config import ConfigError
from jepa_pilot.common.paths import package_share, source_root
from jepa_pilot.control.goal_session import Cause, GoalSession, GoalSessionConfig, Outcome, goal_problem
from jepa_pilot.control.supervisor import Status

CFG = GoalSessionConfig(max_stop_time=2.0, status_timeout=5.0)
MINE, OLDER, NEWER = 10.0, 9.0, 11.0  # goal stamps


def session(timeout=0.0, estop=False, cfg=CFG) -> GoalSession:
    return GoalSession(MINE, timeout, cfg, now=100.0, wall=1000.0, estop=estop)


def plan(s: GoalSession, status, t: float, stamp=MINE, distance=3.0, reason="", wall=None) -> None:
    """A plan status at robot time 100 + t, wall time 1000 + t (unless given)."""
    s.on_plan(int(status), reason, stamp, distance, 100.0 + t, 1000.0 + t if wall is None else wall)


# --- GoalSession (unit) ---------------------------------------------------------------------
@pytest.mark.unit
def test_the_planner_saying_reached_for_this_goal_ends_it_reached_and_leaves_the_planner_holding():
    s = session()
    plan(s, Status.PLANNING, 0.1, distance=3.0)
    assert s.tick(100.2, 1000.2) is None
    plan(s, Status.REACHED, 2.0, distance=0.8, reason="goal reached: latent distance 0.8 < goal_tolerance 1")
    end = s.tick(102.1, 1002.1)
    assert end.outcome == Outcome.REACHED and end.reached and end.cause == Cause.REACHED
    assert "goal_tolerance 1" in end.reason and not end.clear_planner
    assert s.goal_distance == pytest.approx(0.8) and s.elapsed(102.5) == pytest.approx(2.5)


@pytest.mark.unit
def test_feedback_says_the_planners_status_distance_surprise_and_elapsed_robot_time():
    s = session()
    first = s.feedback(100.0)
    assert first.status == Status.IDLE and math.isnan(first.goal_distance) and math.isnan(first.surprise)
    plan(s, Status.PLANNING, 0.5, distance=2.5)
    s.on_surprise(0.7)
    s.on_surprise(float("nan"))  # not a measurement: kept out
    fb = s.feedback(101.5)
    assert (fb.status, fb.goal_distance, fb.surprise, fb.elapsed) == (Status.PLANNING, 2.5, 0.7, 1.5)


@pytest.mark.unit
def test_plans_for_other_goals_are_ignored_until_the_planner_takes_this_one_then_they_end_it():
    s = session()
    plan(s, Status.PLANNING, 0.1, stamp=OLDER)  # the previous goal, still in flight
    plan(s, Status.IDLE, 0.2, stamp=0.0)        # a planner that had no goal
    assert s.tick(100.3, 1000.3) is None and s.status == Status.IDLE and math.isnan(s.goal_distance)
    plan(s, Status.PLANNING, 0.4)
    plan(s, Status.PLANNING, 0.5, stamp=NEWER)  # someone set a goal on the topic or the service
    end = s.tick(100.6, 1000.6)
    assert end.outcome == Outcome.ABORTED and end.cause == Cause.REPLACED and "outside the action" in end.reason
    assert not end.clear_planner  # the other goal is its setter's

    s = session()
    plan(s, Status.PLANNING, 0.1)
    plan(s, Status.IDLE, 0.2, stamp=0.0)  # someone called clear_goal
    end = s.tick(100.3, 1000.3)
    assert end.cause == Cause.CLEARED and end.outcome == Outcome.ABORTED and not end.clear_planner


@pytest.mark.unit
def test_a_short_stop_is_ridden_through_and_a_long_one_aborts_with_the_planners_reason():
    s = session()
    plan(s, Status.PLANNING, 0.1)
    plan(s, Status.STOPPED, 0.2, reason="newest latent is 0.5 s old")
    plan(s, Status.STOPPED, 1.9, reason="newest latent is 2.2 s old")
    assert s.tick(102.1, 1002.1) is None  # 1.9 s stopped < max_stop_time 2
    plan(s, Status.PLANNING, 2.1)  # resumed: the stop is forgotten
    plan(s, Status.STOPPED, 3.0, reason="plan took 0.5 s > max_plan_time")
    assert s.tick(104.9, 1004.9) is None
    end = s.tick(105.1, 1005.1)  # 2.1 s since this stop began
    assert end.outcome == Outcome.ABORTED and end.cause == Cause.STOPPED and end.clear_planner
    assert "more than 2 s" in end.reason and "max_plan_time" in end.reason


@pytest.mark.unit
def test_a_stop_also_counts_on_the_wall_clock_when_the_robot_clock_stops():
    s = session()
    plan(s, Status.STOPPED, 0.1, reason="newest latent is 0.4 s old")
    assert s.tick(100.1, 1001.0) is None
    end = s.tick(100.1, 1002.5)  # the simulator died: its clock stays at 100.1
    assert end.cause == Cause.STOPPED and "latent" in end.reason


@pytest.mark.unit
def test_the_estop_ends_the_goal_at_once_and_drops_the_planners_goal():
    s = session()
    plan(s, Status.PLANNING, 0.1)
    s.on_estop(False)
    assert s.tick(100.2, 1000.2) is None
    s.on_estop(True)
    end = s.tick(100.2, 1000.2)
    assert end.outcome == Outcome.ABORTED and end.cause == Cause.ESTOP and "e-stop" in end.reason
    assert end.clear_planner  # releasing the e-stop must not send the robot on to an abandoned goal
    assert session(estop=True).tick(100.0, 1000.0).cause == Cause.ESTOP  # engaged before the goal


@pytest.mark.unit
def test_the_timeout_counts_robot_time_and_zero_means_none():
    s = session(timeout=3.0)
    plan(s, Status.PLANNING, 0.1)
    assert s.tick(102.9, 1000.5) is None  # wall time does not matter
    end = s.tick(103.0, 1000.6)
    assert end.outcome == Outcome.ABORTED and end.cause == Cause.TIMEOUT and "3 s" in end.reason
    assert end.clear_planner
    s = session(timeout=0.0)
    plan(s, Status.PLANNING, 1e4, wall=1000.1)
    assert s.tick(100.0 + 1e4, 1000.2) is None


@pytest.mark.unit
def test_a_robot_clock_that_jumps_back_does_not_restart_the_timeout():
    s = session(timeout=3.0)
    plan(s, Status.PLANNING, 2.0)              # robot time 102: 2 s elapsed
    assert s.tick(0.5, 1002.1) is None          # the simulator restarted its clock
    assert s.feedback(1.0).elapsed == pytest.approx(2.5)
    assert s.tick(1.4, 1002.5) is None
    assert s.tick(1.5, 1002.6).cause == Cause.TIMEOUT and s.elapsed(1.5) == pytest.approx(3.0)


@pytest.mark.unit
def test_a_silent_planner_ends_the_goal_before_and_after_it_took_it():
    s = session()
    plan(s, Status.IDLE, 4.0, stamp=0.0)
    assert s.tick(104.0, 1004.9) is None
    end = s.tick(105.1, 1005.1)
    assert end.cause == Cause.SILENT and "did not take the goal" in end.reason and end.clear_planner
    s = session()
    plan(s, Status.PLANNING, 4.0)
    assert s.tick(108.0, 1008.9) is None  # heard 4.9 s ago
    assert s.tick(109.1, 1009.1).cause == Cause.SILENT


@pytest.mark.unit
def test_preempt_cancel_and_failures_and_the_first_ending_wins():
    s = session()
    s.preempt()
    end = s.tick(100.1, 1000.1)
    assert end.outcome == Outcome.ABORTED and "preempted" in end.reason and not end.clear_planner
    s = session()
    s.cancel()
    end = s.tick(100.1, 1000.1)
    assert end.outcome == Outcome.CANCELED and end.clear_planner and not end.reached
    s = session()
    s.fail("goal image refused: truncated data")
    assert s.tick(100.1, 1000.1).cause == Cause.FAILED and s.ended.clear_planner
    s = session()
    plan(s, Status.REACHED, 0.1, reason="goal reached")
    s.cancel()
    s.on_estop(True)
    plan(s, Status.PLANNING, 0.2, stamp=NEWER)
    assert s.tick(200.0, 2000.0).cause == Cause.REACHED


@pytest.mark.unit
def test_goal_numbers_and_settings_are_checked():
    assert goal_problem(0.0, 0.0) == "" and goal_problem(30.0, 1.5) == ""
    assert "timeout" in goal_problem(-1.0, 0.0)
    assert "tolerance" in goal_problem(0.0, float("nan")) and "goal_tolerance" in goal_problem(0.0, -2.0)
    assert "timeout" in goal_problem(float("inf"), 0.0)
    with pytest.raises(ConfigError, match="max_stop_time"):
        GoalSessionConfig(max_stop_time=-1.0)
    with pytest.raises(ConfigError, match="status_timeout"):
        GoalSessionConfig(status_timeout=0.0)


@pytest.mark.unit
def test_the_action_is_generated_and_its_dependency_declared():
    root = source_root()
    cmake, package = (root / "CMakeLists.txt").read_text(), (root / "package.xml").read_text()
    actions = sorted(root.glob("action/*.action"))
    assert actions
    for path in actions:
        assert f'"action/{path.name}"' in cmake, f"{path} is not in rosidl_generate_interfaces"
    assert re.search(r"DEPENDENCIES[^)]*\baction_msgs\b", cmake) and "find_package(action_msgs REQUIRED)" in cmake
    assert "<depend>action_msgs</depend>" in package
    assert re.search(r"^ros-jazzy-action-msgs==", (root / "requirements" / "ros-jazzy.txt").read_text(), re.M)


@pytest.mark.unit
def test_the_goal_node_runs_in_the_world_model_group_of_both_launch_files():
    from jepa_pilot.cli.launch import parse_launch_file

    root = source_root()
    for name, args in (("sim", {"jepa": "true"}), ("robot", {"jepa": "true", "bundle": "two_rooms"})):
        specs = parse_launch_file(root / "launch" / f"{name}.launch.yaml", args, resolve_external=False)
        goal = [s for s in specs if s.executable == "goal_node"]
        assert len(goal) == 1 and goal[0].name == "goal", [s.executable for s in specs]
        off = parse_launch_file(root / "launch" / f"{name}.launch.yaml", {"jepa": "false"}, resolve_external=False)
        assert not [s for s in off if s.executable == "goal_node"]


# --- goal_node across processes (ros) --------------------------------------------------------
BUNDLE = Path(os.environ.get("JEPA_PILOT_TEST_BUNDLE") or package_share() / "models" / "two_rooms")
START, NEAR_GOAL, FAR_GOAL = (-0.5, -0.5, 0.0, 0.0), (-0.5, -0.15, 0.0, 0.0), (0.5, 0.5, 0.0, 0.0)
PLANNER_TOLERANCE = 2.0


def model_params(**extra) -> dict:
    return dict(bundle=str(BUNDLE), providers=["cpu"], threads=1, use_sim_time=True, **extra)


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    pytest.importorskip("rclpy")
    from geometry_msgs.msg import TwistStamped
    from nav_msgs.msg import Odometry
    from rclpy.action import ActionClient
    from std_msgs.msg import Bool

    from jepa_pilot.action import ReachGoal
    from jepa_pilot.msg import Latent, PlanStatus
    from jepa_pilot.nodes.qos import qos
    from rosgraph import NodeProcess, Probe

    if not (BUNDLE / "bundle.yaml").is_file():
        pytest.skip(f"no model bundle at {BUNDLE} (make train, or set JEPA_PILOT_TEST_BUNDLE)")
    work = tmp_path_factory.mktemp("goal_action")
    nodes = dict(
        sim=NodeProcess("sim_node", "sim", dict(env="two_rooms", seed=1), work),
        encoder=NodeProcess("encoder_node", "encoder", model_params(), work),
        planner=NodeProcess("planner_node", "planner", model_params(max_latent_age=1.0, max_plan_time=1.0,
                                                                    goal_tolerance=PLANNER_TOLERANCE), work),
        predictor=NodeProcess("predictor_node", "predictor", model_params(), work),
        # A loaded test machine may stall the planner for a while: only the unit tests time stops out.
        goal=NodeProcess("goal_node", "goal", dict(use_sim_time=True, max_stop_time=60.0), work))
    probe = Probe("probe_goal")
    g = types.SimpleNamespace(
        work=work, nodes=nodes, probe=probe, ReachGoal=ReachGoal, Bool=Bool,
        client=ActionClient(probe.node, ReachGoal, "/jepa/reach_goal"),
        latents=probe.subscribe(Latent, "/jepa/latent", qos("reliable")),
        plans=probe.subscribe(PlanStatus, "/jepa/plan", qos("reliable", depth=100)),
        cmds=probe.subscribe(TwistStamped, "/cmd_vel", qos("reliable", depth=100)),
        odom=probe.subscribe(Odometry, "/odom", qos("reliable")),
        estop=probe.node.create_publisher(Bool, "/jepa/estop", qos("reliable")))
    alive = lambda: all(n.proc.poll() is None for n in nodes.values())  # noqa: E731
    ok = probe.spin_until(lambda: (len(g.latents) >= 3 and g.odom and g.client.server_is_ready()
                                   and g.estop.get_subscription_count() >= 2) or not alive(), 90)
    assert ok and alive(), "the graph did not come up; logs:\n" + logs(g)
    yield g
    probe.close()
    for node in nodes.values():
        node.stop()


def logs(g, names=None) -> str:
    return "\n".join(f"--- {n.name}\n{n.log()[-3000:]}" for k, n in g.nodes.items() if names is None or k in names)


def goal_image(g, state):
    from jepa_pilot.srv import GetGoalImage

    response = g.probe.call(GetGoalImage, "/sim/get_goal_image", GetGoalImage.Request(state=list(state)))
    assert response.success, response.message
    return response.image


def reset(g, state=START) -> None:
    """Put the robot in ``state`` and wait for a latent of a frame taken there: a latent of before the
    reset, still in flight, would be the planner's view of the robot when the next goal arrives."""
    from jepa_pilot.srv import ResetSim

    seconds = lambda stamp: stamp.sec + stamp.nanosec * 1e-9  # noqa: E731
    there = lambda m: math.dist((m.pose.pose.position.x, m.pose.pose.position.y), state[:2]) < 0.02  # noqa: E731
    assert g.probe.call(ResetSim, "/sim/reset", ResetSim.Request(seed=0, state=list(state))).success
    assert g.probe.spin_until(lambda: g.odom and there(g.odom[-1]), 20), "no odometry at the reset state"
    since = seconds(g.odom[-1].header.stamp)
    assert g.probe.spin_until(lambda: g.latents and seconds(g.latents[-1].header.stamp) >= since, 20), \
        "no latent of a frame taken after the reset"


def send(g, state, timeout: float = 0.0, tolerance: float = 0.0, image=None):
    """Send a goal; returns (goal handle, its feedback list, its result future)."""
    feedback = []
    goal = g.ReachGoal.Goal(image=image or goal_image(g, state), timeout=timeout, tolerance=tolerance)
    sent = g.client.send_goal_async(goal, feedback_callback=lambda m: feedback.append(m.feedback))
    assert g.probe.spin_until(sent.done, 20), "the goal was not answered"
    handle = sent.result()
    return handle, feedback, (handle.get_result_async() if handle.accepted else None)


def result(g, future, timeout: float = 60.0):
    assert g.probe.spin_until(future.done, timeout), "no result; logs:\n" + logs(g, ("goal", "planner"))
    return future.result().status, future.result().result


def planning(feedback) -> bool:
    from jepa_pilot.msg import PlanStatus

    return any(f.status == PlanStatus.STATUS_PLANNING and math.isfinite(f.goal_distance) for f in feedback)


def moving(cmd) -> bool:
    return bool(cmd.twist.linear.x or cmd.twist.linear.y or cmd.twist.angular.z)


def drive_far(g, **goal):
    """A goal in the other room, once the planner drives on it (feedback PLANNING, motion commanded)."""
    reset(g)
    since = len(g.cmds)
    handle, feedback, future = send(g, FAR_GOAL, **goal)
    assert handle.accepted
    assert g.probe.spin_until(lambda: planning(feedback) and any(map(moving, g.cmds[since:])), 30), \
        "the planner does not drive on the goal; logs:\n" + logs(g, ("goal", "planner"))
    return handle, feedback, future


def assert_held_at_zero(g) -> None:
    """After a goal ended: the last command is zero and nothing moves the robot afterwards."""
    since = len(g.cmds)
    g.probe.spin_for(1.5)
    assert g.cmds and not moving(g.cmds[-1]), g.cmds[-1]
    assert not any(map(moving, g.cmds[since:])), "the robot was driven after the goal ended"


@pytest.mark.ros
def test_a_near_goal_is_reached_with_feedback_on_the_way(g):
    from action_msgs.msg import GoalStatus

    reset(g)
    handle, feedback, future = send(g, NEAR_GOAL)
    assert handle.accepted
    status, res = result(g, future)
    assert status == GoalStatus.STATUS_SUCCEEDED and res.reached, res
    assert res.reason.startswith("goal reached") and f"goal_tolerance {PLANNER_TOLERANCE:g}" in res.reason, res
    assert res.final_goal_distance < PLANNER_TOLERANCE and res.elapsed > 0.0
    assert planning(feedback), feedback
    driving = [f for f in feedback if math.isfinite(f.goal_distance)]
    assert driving[0].goal_distance > res.final_goal_distance
    assert all(a.elapsed <= b.elapsed for a, b in zip(feedback, feedback[1:])) and feedback[-1].elapsed <= res.elapsed
    assert any(math.isfinite(f.surprise) for f in feedback), "no surprise reported while driving"
    position = g.odom[-1].pose.pose.position
    assert math.dist((position.x, position.y), NEAR_GOAL[:2]) < math.dist(START[:2], NEAR_GOAL[:2])


@pytest.mark.ros
def test_a_new_goal_preempts_the_running_one_and_an_invalid_one_is_refused(g):
    from action_msgs.msg import GoalStatus

    first, _, first_result = drive_far(g)
    broken = goal_image(g, NEAR_GOAL)
    broken.data = bytes(broken.data)[:100]
    for bad in (dict(timeout=-1.0), dict(tolerance=float("nan")), dict(image=broken)):
        refused, _, _ = send(g, NEAR_GOAL, **bad)
        assert not refused.accepted, bad
    assert not first_result.done(), "a refused goal ended the running one"
    second, feedback, second_result = send(g, NEAR_GOAL)
    assert second.accepted
    status, res = result(g, first_result, 30)
    assert status == GoalStatus.STATUS_ABORTED and not res.reached and "preempted" in res.reason, res
    assert g.probe.spin_until(lambda: planning(feedback) or second_result.done(), 30), "the new goal is not pursued"
    status, res = result(g, second_result)
    assert status == GoalStatus.STATUS_SUCCEEDED and res.reached, res


@pytest.mark.ros
def test_cancel_stops_the_robot_and_ends_the_goal_canceled(g):
    from action_msgs.msg import GoalStatus
    from jepa_pilot.msg import PlanStatus

    handle, _, future = drive_far(g)
    canceling = handle.cancel_goal_async()
    assert g.probe.spin_until(canceling.done, 20) and canceling.result().goals_canceling
    status, res = result(g, future, 30)
    assert status == GoalStatus.STATUS_CANCELED and not res.reached and "canceled" in res.reason, res
    assert_held_at_zero(g)
    assert g.plans[-1].status == PlanStatus.STATUS_IDLE, g.plans[-1]  # the planner dropped the goal


@pytest.mark.ros
def test_a_timeout_aborts_the_goal_on_the_robot_clock_and_stops_the_robot(g):
    from action_msgs.msg import GoalStatus

    _, _, future = drive_far(g, timeout=1.5)
    status, res = result(g, future, 60)
    assert status == GoalStatus.STATUS_ABORTED and res.reason.startswith("timeout"), res
    assert res.elapsed >= 1.5 and math.isfinite(res.final_goal_distance)
    assert_held_at_zero(g)


@pytest.mark.ros
def test_the_estop_aborts_the_goal_and_releasing_it_does_not_resume(g):
    from action_msgs.msg import GoalStatus

    _, _, future = drive_far(g)
    g.estop.publish(g.Bool(data=True))
    try:
        status, res = result(g, future, 30)
        assert status == GoalStatus.STATUS_ABORTED and "e-stop" in res.reason, res
    finally:
        g.estop.publish(g.Bool(data=False))
    assert_held_at_zero(g)  # released: the abandoned goal is not pursued


@pytest.mark.ros
def test_a_goals_own_tolerance_applies_to_it_and_the_planners_is_restored(g):
    from action_msgs.msg import GoalStatus
    from rcl_interfaces.srv import GetParameters

    reset(g)
    _, _, future = send(g, FAR_GOAL, tolerance=1000.0)  # any distance counts as reached
    status, res = result(g, future, 30)
    assert status == GoalStatus.STATUS_SUCCEEDED and "goal_tolerance 1000" in res.reason, res
    values = g.probe.call(GetParameters, "/planner/get_parameters", GetParameters.Request(names=["goal_tolerance"]))
    assert values.values[0].double_value == PLANNER_TOLERANCE


@pytest.mark.ros
def test_a_goal_set_outside_the_action_replaces_it_and_the_service_still_works(g):
    from action_msgs.msg import GoalStatus
    from jepa_pilot.msg import PlanStatus
    from jepa_pilot.nodes.ros_io import from_time, to_time
    from jepa_pilot.srv import SetGoal
    from std_srvs.srv import Trigger

    _, _, future = drive_far(g)
    image = goal_image(g, NEAR_GOAL)
    image.header.stamp = to_time(from_time(g.plans[-1].goal_header.stamp) + 1.0)  # newer than the action's
    assert g.probe.call(SetGoal, "/encoder/set_goal", SetGoal.Request(image=image)).success
    status, res = result(g, future, 30)
    assert status == GoalStatus.STATUS_ABORTED and "outside the action" in res.reason, res
    assert g.probe.spin_until(lambda: any(p.goal_header.stamp == image.header.stamp and p.status in (
        PlanStatus.STATUS_PLANNING, PlanStatus.STATUS_REACHED) for p in g.plans[-20:]), 20), \
        "the planner does not pursue the goal set on the service"
    assert math.isfinite(res.final_goal_distance)
    assert g.probe.call(Trigger, "/planner/clear_goal", Trigger.Request()).success  # leave the robot stopped
