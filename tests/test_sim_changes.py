"""World changes for adaptation benchmarks: rotated actions, a changed gain, a changed light.

The sim tier drives real MuJoCo physics and rendering; the ros tier changes a
running sim node through its parameters and watches /odom.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from jepa_pilot import sim
from jepa_pilot.common.config import ConfigError

NAMES = sim.registered()
STEPS = 5                  # control steps of 0.1 s: 0.25 m at the base's full speed
# Start states with room for STEPS steps of a full command at twice the speed along +x
# (through the door), and at full speed along -x and +-y.
FREE_START = {
    "two_rooms": [-0.6, 0.0, 0.0, 0.0],
    "two_rooms_diff": [-0.6, 0.0, 0.0, 0.0, 0.0],
    "two_rooms_random_door": [-0.6, 0.0, 0.0, 0.0, 0.0],  # the door at y = 0
    "reacher": [0.0, 0.0, 0.0, 0.0],
}
CHANGED = {"two_rooms": dict(action_rotation_deg=90.0, action_gain=0.5, light_scale=1.3),
           "two_rooms_random_door": dict(action_rotation_deg=90.0, action_gain=0.5, light_scale=1.3),
           "two_rooms_diff": dict(action_gain=0.5, light_scale=1.3),  # rotation is refused for these two
           "reacher": dict(action_gain=0.5, light_scale=1.3)}
DEFAULTS = dict(action_rotation_deg=0.0, action_gain=1.0, light_scale=1.0)


@pytest.fixture(scope="module")
def envs():
    """One shared env per name; tests reset it and put its changes back to the defaults."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = sim.make(name)
        cache[name].set_changes(**DEFAULTS)
        return cache[name]

    yield get
    for env in cache.values():
        env.close()


def _displacement(env, action, steps: int = STEPS, start=None) -> np.ndarray:
    """How far the task position moves under ``action`` from the env's free start (true state)."""
    start = FREE_START[env.name] if start is None else start
    env.reset(state=start)
    for _ in range(steps):
        obs, *_ = env.step(action, render=False)
    return obs.state[:2] - np.asarray(start)[:2]


def _red_centroid(image: np.ndarray) -> np.ndarray:
    """(column, row) centroid of the red base's pixels."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    rows, cols = np.nonzero((r > 120) & (g < 60) & (b < 60))
    return np.array([cols.mean(), rows.mean()])


@pytest.mark.sim
@pytest.mark.parametrize("name", NAMES)
def test_default_changes_reproduce_a_default_env_bit_for_bit(envs, name):
    """An env whose world was changed and changed back runs exactly like one never changed."""
    reference, changed = envs(name), sim.make(name)
    try:
        changed.set_changes(**CHANGED[name])
        changed.step(np.ones(changed.action_dim))
        assert changed.set_changes(**DEFAULTS).keys() == CHANGED[name].keys()
        assert changed.config == reference.config
        actions = np.random.default_rng(1).uniform(-1.2, 1.2, (8, reference.action_dim))
        runs = []
        for env in (reference, changed):
            obs, _ = env.reset(seed=42)
            runs.append([(obs.image, obs.state)] + [(o.image, o.state) for o, *_ in map(env.step, actions)])
        for (image_a, state_a), (image_b, state_b) in zip(*runs):
            assert np.array_equal(image_a, image_b) and np.array_equal(state_a, state_b)
    finally:
        changed.close()


@pytest.mark.sim
@pytest.mark.parametrize("degrees, direction", [(90, (0, 1)), (-90, (0, -1)), (180, (-1, 0))])
def test_rotation_turns_the_commanded_velocity(envs, degrees, direction):
    """Quarter turns map the command's axes exactly: +vx at 90 deg moves the base along +y only."""
    env = envs("two_rooms")
    straight = _displacement(env, [1.0, 0.0])
    assert straight[0] > 0.2 and straight[1] == 0.0
    env.set_changes(action_rotation_deg=degrees)
    moved = _displacement(env, [1.0, 0.0])
    np.testing.assert_allclose(moved, np.multiply(direction, straight[0]), atol=1e-9)
    assert env.robot_state().base_pose[2] == 0.0, "a rotated command must not turn the base"


@pytest.mark.sim
def test_rotation_by_any_angle_keeps_the_speed_and_turns_the_direction(envs):
    env = envs("two_rooms")
    env.set_changes(action_rotation_deg=30.0)
    moved = _displacement(env, [1.0, 0.0], start=[-0.8, -0.8, 0.0, 0.0])
    assert math.degrees(math.atan2(moved[1], moved[0])) == pytest.approx(30.0, abs=0.5)
    # The actuators' force limit is per axis, so a diagonal speed is reached a little sooner:
    # the path differs from a straight run's by well under the 2-physics-step slew (5 mm).
    straight_length = 0.5 * STEPS * env.config.control_period
    assert np.linalg.norm(moved) == pytest.approx(straight_length, abs=0.005)


@pytest.mark.sim
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("gain", [0.5, 2.0])
def test_gain_scales_the_motion(envs, name, gain):
    """Displacement scales with the gain, less the actuators' slew.

    The force limit makes a speed change of ``gain`` times full scale a ramp of
    2 * gain physics steps, so a run of T seconds from rest falls behind by about
    gain * dt seconds: the displacement ratio is gain * (T - gain * dt) / (T - dt)
    (0.5025 and 1.980 here). The arm's coupled joints stay within 0.5 % of it.
    """
    env = envs(name)
    action = np.ones(env.action_dim) if name == "reacher" else np.array([1.0, 0.0])
    reference = _displacement(env, action)
    env.set_changes(action_gain=gain)
    scaled = _displacement(env, action)
    run, dt = STEPS * env.config.control_period, env.config.physics_timestep
    moving = np.abs(reference) > 1e-6
    np.testing.assert_allclose(scaled[moving] / reference[moving], gain * (run - gain * dt) / (run - dt),
                               rtol=0.005)
    np.testing.assert_allclose(scaled[~moving], 0.0, atol=1e-6)


@pytest.mark.sim
def test_light_scale_changes_brightness_not_what_is_seen(envs):
    env = envs("two_rooms")
    state = [0.5, 0.4, 0.0, 0.0]
    base, _ = env.reset(state=state)
    env.set_changes(light_scale=1.3)
    brighter = env.render()
    assert brighter.mean() > base.image.mean() + 10, (brighter.mean(), base.image.mean())
    assert np.all(brighter >= base.image), "more light never darkens a pixel"
    assert np.array_equal(env.state(), base.state)
    # The base is where it was: the red pixels' centroid stays within a tenth of a pixel.
    np.testing.assert_allclose(_red_centroid(brighter), _red_centroid(base.image), atol=0.1)
    assert np.array_equal(env.render_goal(state), brighter), "goal images see the same light"

    env.set_changes(light_scale=0.7)
    assert env.render().mean() < base.image.mean() - 10
    env.set_changes(light_scale=1.0)
    assert np.array_equal(env.render(), base.image)


@pytest.mark.sim
def test_changes_apply_while_running_without_a_reset(envs):
    env = envs("two_rooms")
    env.reset(state=FREE_START["two_rooms"])
    for _ in range(3):
        env.step([1.0, 0.0], render=False)
    before, steps, time = env.state(), env.steps, env.data.time

    changed = env.set_changes(action_rotation_deg=90.0, light_scale=1.2)
    assert changed == {"action_rotation_deg": (0.0, 90.0), "light_scale": (1.0, 1.2)}
    assert env.config.action_rotation_deg == 90.0 and env.changes["light_scale"] == 1.2
    assert np.array_equal(env.state(), before) and env.data.time == time, "changing must not touch the state"
    assert env.set_changes(action_rotation_deg=90.0) == {}, "setting the current value changes nothing"

    for _ in range(STEPS):
        obs, *_ = env.step([1.0, 0.0])
    assert env.steps == steps + STEPS and obs.time == pytest.approx(time + STEPS * env.config.control_period)
    assert obs.state[1] - before[1] > 0.2, "the rotated command should drive the base along +y"
    assert abs(obs.state[0] - before[0]) < 0.01, "only the slew from the old +x speed moves it along x"
    assert obs.state[2] == pytest.approx(0.0, abs=1e-9) and obs.state[3] == pytest.approx(0.5)

    env.reset(seed=3)
    assert env.changes == dict(action_rotation_deg=90.0, action_gain=1.0, light_scale=1.2), \
        "a reset keeps the world as changed"


@pytest.mark.sim
def test_invalid_changes_raise_config_errors_and_change_nothing(envs):
    env = envs("two_rooms")
    env.set_changes(action_gain=0.5)
    config = env.config
    for bad, message in [(dict(action_rotation_deg=270.0), r"action_rotation_deg = 270.0: expected a value in "
                                                           r"\[-180, 180\]"),
                         (dict(action_gain=0.0), r"action_gain = 0.0: expected a value in \[0.1, 2\]"),
                         (dict(light_scale=3.0), r"light_scale = 3.0: expected a value in \[0.5, 1.5\]"),
                         (dict(light_scale=math.nan), "light_scale.*finite"),
                         (dict(action_gain="half"), "action_gain.*number"),
                         (dict(action_gain=1.0, light_scale=0.1), "light_scale")]:
        with pytest.raises(ConfigError, match=message):
            env.set_changes(**bad)
        assert env.config is config, f"{bad} was refused but something changed"
    with pytest.raises(ConfigError, match="action_gain"):
        sim.make("two_rooms", action_gain=5.0)


@pytest.mark.sim
@pytest.mark.parametrize("name, reason", [("reacher", "joint velocities"), ("two_rooms_diff", "differential")])
def test_rotation_is_refused_where_actions_are_not_a_planar_velocity(envs, name, reason):
    env = envs(name)
    with pytest.raises(ConfigError, match=f"action_rotation_deg = 90.0: expected 0 .*{reason}"):
        env.set_changes(action_rotation_deg=90.0)
    assert env.config.action_rotation_deg == 0.0
    with pytest.raises(ConfigError, match="action_rotation_deg"):
        sim.default_config(name, action_rotation_deg=-45.0)


@pytest.mark.unit
def test_sim_node_parameters_refuse_what_the_env_refuses():
    """The node validates world changes through the env's own config, so a refusal reaches
    `ros2 param set` as its reason instead of failing inside the running node."""
    pytest.importorskip("rclpy")
    from jepa_pilot.nodes.sim_node import SimNodeConfig

    assert SimNodeConfig().world_changes() == DEFAULTS
    assert SimNodeConfig(action_rotation_deg=90.0).world_changes()["action_rotation_deg"] == 90.0
    with pytest.raises(ConfigError, match="SimNodeConfig.*env reacher.*action_rotation_deg.*joint velocities"):
        SimNodeConfig(env="reacher", action_rotation_deg=90.0)
    with pytest.raises(ConfigError, match=r"SimNodeConfig.light_scale = 2.0: expected a value in \[0.5, 1.5\]"):
        SimNodeConfig().replace(light_scale=2.0)


# --------------------------------------------------------------------------- ros tier
def _set_param(probe, name: str, value: float):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    value_msg = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float(value))
    request = SetParameters.Request(parameters=[Parameter(name=name, value=value_msg)])
    return probe.call(SetParameters, "/sim/set_parameters", request).results[0]


def _drive_x(probe, publisher, clock: list, seconds: float, speed: float) -> None:
    """Publish a stamped +x command about every 0.05 s until ``seconds`` of sim time have passed."""
    from geometry_msgs.msg import TwistStamped

    from jepa_pilot.nodes.ros_io import from_time

    end = from_time(clock[-1].clock) + seconds
    for _ in range(int(400 + 200 * seconds)):  # bounded: a stopped sim clock fails below
        if from_time(clock[-1].clock) >= end:
            return
        msg = TwistStamped()
        msg.header.stamp, msg.header.frame_id = clock[-1].clock, "base_link"
        msg.twist.linear.x = speed
        publisher.publish(msg)
        probe.spin_for(0.05)
    raise AssertionError("the sim clock stopped while driving")


@pytest.mark.ros
def test_sim_node_rotates_commands_when_its_parameter_says_so(tmp_path):
    pytest.importorskip("rclpy")
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import TwistStamped
    from nav_msgs.msg import Odometry
    from rcl_interfaces.msg import Log
    from rosgraph import NodeProcess, Probe
    from rosgraph_msgs.msg import Clock

    from jepa_pilot.nodes.qos import qos
    from jepa_pilot.srv import ResetSim

    node = NodeProcess("sim_node", "sim", dict(env="two_rooms", seed=1, control_period=0.05, cmd_timeout=0.5),
                       tmp_path)
    probe = Probe()
    try:
        odom = probe.subscribe(Odometry, "/odom", qos("reliable"))
        clock = probe.subscribe(Clock, "/clock", qos("reliable"))
        diagnostics = probe.subscribe(DiagnosticArray, "/diagnostics", qos("reliable"))
        rosout = probe.subscribe(Log, "/rosout", qos("reliable", depth=100))
        cmd = probe.node.create_publisher(TwistStamped, "/cmd_vel", qos("reliable"))
        up = probe.spin_until(lambda: (odom and clock) or node.proc.poll() is not None, 60)
        assert up and node.proc.poll() is None, f"sim node published nothing; its log:\n{node.log()}"
        reset = probe.call(ResetSim, "/sim/reset", ResetSim.Request(seed=0, state=[-0.5, -0.5, 0.0, 0.0]))
        assert reset.success, reset.message

        result = _set_param(probe, "action_rotation_deg", 90.0)
        assert result.successful, result.reason
        odom.clear()
        assert probe.spin_until(lambda: odom)
        start = odom[-1].pose.pose.position
        _drive_x(probe, cmd, clock, 1.0, speed=0.25)
        end = odom[-1].pose.pose.position
        assert end.y - start.y > 0.15 and abs(end.x - start.x) < 0.02, (end.x - start.x, end.y - start.y)
        assert odom[-1].twist.twist.linear.y == pytest.approx(0.25, abs=0.05)
        warnings = [m.msg for m in rosout if m.name == "sim" and m.level == Log.WARN and "world changed" in m.msg]
        assert warnings == ["world changed from the next step: action_rotation_deg 0 -> 90"], warnings

        def reported() -> dict[str, str]:
            return {kv.key: kv.value for a in diagnostics for s in a.status if s.name == "jepa_pilot: sim"
                    for kv in s.values}
        diagnostics.clear()
        assert probe.spin_until(lambda: reported().get("action_rotation_deg") == "90", 10), reported()
        assert reported()["action_gain"] == "1" and reported()["light_scale"] == "1"

        for name, bad in [("action_rotation_deg", 270.0), ("action_gain", 0.0), ("light_scale", 3.0)]:
            result = _set_param(probe, name, bad)
            assert not result.successful and name in result.reason, (name, result.reason)
        clock.clear()
        assert probe.spin_until(lambda: len(clock) >= 5, 10) and node.proc.poll() is None, "the node stopped"
    finally:
        probe.close()
        node.stop()
