"""ROS tier: the sim node in another process, driven and watched over real DDS (localhost only)."""
from __future__ import annotations

import math
import types

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from geometry_msgs.msg import TwistStamped  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rcl_interfaces.msg import Log, Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from jepa_pilot.nodes.qos import qos  # noqa: E402
from jepa_pilot.nodes.ros_io import from_time, msg_to_image, to_time  # noqa: E402
from jepa_pilot.srv import GetGoalImage, ResetSim  # noqa: E402
from rosgraph import NodeProcess, Probe  # noqa: E402

pytestmark = pytest.mark.ros

MAX_SPEED = 0.5      # two_rooms base, m/s at action +1
CMD_TIMEOUT = 0.5    # s of sim time
CAMERA_HZ = 10.0


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    work = tmp_path_factory.mktemp("ros_sim")
    sim = NodeProcess("sim_node", "sim", dict(env="two_rooms", seed=1, control_period=0.05,
                                              camera_rate_hz=CAMERA_HZ, cmd_timeout=CMD_TIMEOUT), work)
    probe = Probe()
    g = types.SimpleNamespace(
        sim=sim, probe=probe,
        odom=probe.subscribe(Odometry, "/odom", qos("reliable")),
        images=probe.subscribe(Image, "/camera/image_raw", qos("sensor_data")),
        infos=probe.subscribe(CameraInfo, "/camera/camera_info", qos("sensor_data")),
        clock=probe.subscribe(Clock, "/clock", qos("reliable")),
        rosout=probe.subscribe(Log, "/rosout", qos("reliable", depth=100)),
        cmd=probe.node.create_publisher(TwistStamped, "/cmd_vel", qos("reliable")),
    )
    ok = probe.spin_until(lambda: (g.images and g.odom and g.clock) or sim.proc.poll() is not None, 60)
    assert ok and sim.proc.poll() is None, f"sim node published nothing; its log:\n{sim.log()}"
    yield g
    probe.close()
    sim.stop()


def now(g) -> float:
    return from_time(g.clock[-1].clock)


def send(g, stamp_offset: float = 0.0, frame: str = "base_link", **twist) -> None:
    msg = TwistStamped()
    msg.header.stamp, msg.header.frame_id = to_time(max(now(g) + stamp_offset, 0.0)), frame
    for field, value in twist.items():  # vx=..., wz=...
        part = msg.twist.linear if field[0] == "v" else msg.twist.angular
        setattr(part, field[1] if field[0] == "v" else "z", value)
    g.cmd.publish(msg)


def wait_sim(g, seconds: float) -> None:
    """Spin until ``seconds`` of simulated time have passed (a generous wall-clock limit only
    catches a simulator that stopped)."""
    end = now(g) + seconds
    assert g.probe.spin_until(lambda: now(g) >= end, timeout=20 + 10 * seconds), "the sim clock stopped"


def drive(g, seconds: float, **twist) -> None:
    """Publish a command about every 0.05 s until ``seconds`` of simulated time have passed."""
    end = now(g) + seconds
    for _ in range(int(400 + 200 * seconds)):  # bounded: a stopped sim clock fails below
        if now(g) >= end:
            return
        send(g, **twist)
        g.probe.spin_for(0.05)
    raise AssertionError(f"the sim clock stopped at {now(g):.2f} s while driving")


def reset(g, state=(-0.5, -0.5, 0.0, 0.0)) -> None:
    response = g.probe.call(ResetSim, "/sim/reset", ResetSim.Request(seed=0, state=list(state)))
    assert response.success, response.message
    wait_sim(g, 1.2)  # let the previous command time out and fresh frames arrive
    for topic in (g.odom, g.images):
        topic.clear()
    assert g.probe.spin_until(lambda: len(g.images) >= 2 and g.odom)


def pose(g) -> np.ndarray:
    p = g.odom[-1].pose.pose.position
    return np.array([p.x, p.y])


def test_commands_move_the_robot_and_the_camera_sees_it(g):
    reset(g)
    start_pose, start_image = pose(g), msg_to_image(g.images[-1])
    drive(g, 1.5, vy=0.25)
    moved = pose(g) - start_pose
    assert moved[1] > 0.15 and abs(moved[0]) < 0.05, moved
    assert g.odom[-1].twist.twist.linear.y == pytest.approx(0.25, abs=0.05)
    assert g.odom[-1].header.frame_id == "odom" and g.odom[-1].child_frame_id == "base_link"
    assert np.abs(msg_to_image(g.images[-1]).astype(int) - start_image).sum() > 0


def test_images_arrive_at_the_configured_rate_with_matching_camera_info(g):
    g.images.clear()
    wait_sim(g, 3.0)
    stamps = [from_time(m.header.stamp) for m in g.images]
    assert len(stamps) >= 10
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])  # frames per simulated second, after DDS
    assert rate == pytest.approx(CAMERA_HZ, rel=0.2)
    image, info = g.images[-1], g.infos[-1]
    assert (image.encoding, image.width, image.height) == ("rgb8", 64, 64)
    assert image.header.frame_id == info.header.frame_id == "camera_optical_frame"
    assert (info.width, info.height) == (64, 64) and info.k[0] > 0 and info.k[2] == pytest.approx(31.5)  # centre of pixel 0 is 0


def test_the_robot_stops_when_commands_stop(g):
    reset(g)
    drive(g, 1.0, vy=0.4)
    last_command = now(g)
    wait_sim(g, 1.5)
    assert abs(g.odom[-1].twist.twist.linear.y) < 1e-3, "still moving after the command timeout"
    moving = [from_time(o.header.stamp) for o in g.odom if abs(o.twist.twist.linear.y) > 0.2]
    assert moving and moving[-1] - last_command <= CMD_TIMEOUT + 0.15  # simulated seconds
    before = pose(g)
    wait_sim(g, 0.5)
    np.testing.assert_allclose(pose(g), before, atol=1e-4)


@pytest.mark.parametrize("bad", [
    dict(vx=math.nan), dict(vx=0.3, wz=math.inf), dict(vx=-math.inf),
    dict(vx=0.3, frame="map"), dict(vx=0.3, stamp_offset=-5.0), dict(vx=0.3, stamp_offset=+5.0),
], ids=["nan", "inf-unused-axis", "-inf", "wrong-frame", "stale", "future"])
def test_broken_commands_are_dropped_and_the_node_keeps_running(g, bad):
    assert g.probe.spin_until(lambda: now(g) > 6.0)  # so a stamp 5 s back is not 0 ("unstamped")
    reset(g)
    g.rosout.clear()
    drive(g, 0.6, **bad)
    assert np.abs(pose(g) - [-0.5, -0.5]).max() < 1e-3, "a dropped command moved the robot"
    assert any("command dropped" in m.msg and m.name == "sim" for m in g.rosout), "no message said why"
    g.images.clear()
    assert g.probe.spin_until(lambda: len(g.images) >= 3, timeout=10), "node stopped publishing"


def test_over_limit_commands_are_clamped_to_the_robot_limits(g):
    reset(g)
    g.rosout.clear()
    drive(g, 0.8, vy=5.0)
    assert g.odom[-1].twist.twist.linear.y == pytest.approx(MAX_SPEED, abs=0.03)
    assert any("clamped to limits: linear.y=5" in m.msg for m in g.rosout)


def set_param(g, name: str, value):
    kind = {float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}[type(value)]
    pv = ParameterValue(type=kind, **{"double_value" if kind == ParameterType.PARAMETER_DOUBLE
                                      else "string_value": value})
    request = SetParameters.Request(parameters=[Parameter(name=name, value=pv)])
    return g.probe.call(SetParameters, "/sim/set_parameters", request).results[0]


def test_invalid_parameter_changes_are_rejected_with_a_reason(g):
    result = set_param(g, "cmd_timeout", -1.0)
    assert not result.successful and "cmd_timeout" in result.reason
    result = set_param(g, "env", "nope")
    assert not result.successful
    result = set_param(g, "image_qos", "sometimes")
    assert not result.successful
    assert set_param(g, "cmd_timeout", CMD_TIMEOUT).successful  # valid dynamic change is taken
    g.images.clear()
    assert g.probe.spin_until(lambda: len(g.images) >= 3, timeout=10)


def test_reset_is_seeded_and_validates_its_request(g):
    first = g.probe.call(ResetSim, "/sim/reset", ResetSim.Request(seed=7))
    second = g.probe.call(ResetSim, "/sim/reset", ResetSim.Request(seed=7))
    other = g.probe.call(ResetSim, "/sim/reset", ResetSim.Request(seed=8))
    assert first.success and list(first.state) == list(second.state) != list(other.state)
    bad = g.probe.call(ResetSim, "/sim/reset", ResetSim.Request(seed=0, state=[0.0, math.nan, 0.0, 0.0]))
    assert not bad.success and bad.message
    bad = g.probe.call(ResetSim, "/sim/reset", ResetSim.Request(seed=0, state=[1.0]))
    assert not bad.success and bad.message


def test_goal_image_is_what_the_camera_sees_in_that_state(g):
    goal_state = [0.5, 0.4, 0.0, 0.0]
    response = g.probe.call(GetGoalImage, "/sim/get_goal_image", GetGoalImage.Request(state=goal_state))
    assert response.success, response.message
    goal = msg_to_image(response.image)
    assert goal.shape == (64, 64, 3) and response.image.header.frame_id == "camera_optical_frame"
    reset(g, state=goal_state)
    np.testing.assert_array_equal(msg_to_image(g.images[-1]), goal)
    sampled = g.probe.call(GetGoalImage, "/sim/get_goal_image", GetGoalImage.Request(seed=5))
    again = g.probe.call(GetGoalImage, "/sim/get_goal_image", GetGoalImage.Request(seed=5))
    assert sampled.success and list(sampled.state) == list(again.state) and len(sampled.state) == 4
    bad = g.probe.call(GetGoalImage, "/sim/get_goal_image", GetGoalImage.Request(state=[9.0, 9.0, 0.0, 0.0]))
    assert not bad.success and bad.message


def test_the_node_offers_exactly_the_robot_contract(g):
    from rclpy.qos import ReliabilityPolicy

    from jepa_pilot.nodes.contract import robot_topics

    contract = robot_topics("holonomic_base")
    node = g.probe.node
    assert g.probe.spin_until(lambda: node.get_publisher_names_and_types_by_node("sim", "/"), 10)
    published = dict(node.get_publisher_names_and_types_by_node("sim", "/"))
    subscribed = dict(node.get_subscriber_names_and_types_by_node("sim", "/"))
    for topic, entry in contract.items():
        offered = published if entry.direction == "out" else subscribed
        assert offered.get(topic) == [entry.type], f"{topic}: {offered.get(topic)} != {entry.type}"
        if entry.direction == "out":
            (info,) = node.get_publishers_info_by_topic(topic)
            want = ReliabilityPolicy.BEST_EFFORT if entry.qos == "sensor_data" else ReliabilityPolicy.RELIABLE
            assert info.qos_profile.reliability == want, topic
    assert g.odom[-1].header.frame_id == contract["/odom"].frame_id
    assert g.odom[-1].child_frame_id == contract["/odom"].child_frame_id
    assert g.images[-1].header.frame_id == contract["/camera/image_raw"].frame_id
