"""Unit tests: configs, action spaces, robot profiles, the command gate, exploration."""
import dataclasses
import math

import numpy as np
import pytest

from jepa_pilot.common.config import Config, ConfigError, setting
from jepa_pilot.common.paths import package_share
from jepa_pilot.control.action_space import TWIST_FIELDS, ActionSpace, RobotProfile
from jepa_pilot.control.command_gate import CommandGate, CommandGateConfig
from jepa_pilot.control.exploration import MomentumRandomWalk, RandomWalkConfig

pytestmark = pytest.mark.unit


@dataclasses.dataclass(frozen=True)
class Demo(Config):
    rate: float = setting(10.0, "steps per second", low=1, high=100)
    mode: str = setting("a", "mode", choices=("a", "b"))
    count: int = setting(3, "how many", low=0)
    on: bool = setting(True, "switch")


@pytest.mark.parametrize("bad, message", [
    (dict(rate=0), "Demo.rate = 0.0: expected a value in [1, 100] (steps per second)"),
    (dict(rate=float("nan")), "expected a finite number"),
    (dict(rate="fast"), "expected a number"),
    (dict(mode="c"), "expected one of 'a', 'b'"),
    (dict(count=1.5), "expected an integer"),
    (dict(on="yes"), "expected true or false"),
    (dict(speed=1), "unknown setting(s) speed; known: count, mode, on, rate"),
])
def test_config_rejects_bad_values_with_a_message_that_says_what(bad, message):
    with pytest.raises(ConfigError) as err:
        Demo.from_dict(bad)
    assert message in str(err.value)


def test_config_coerces_and_round_trips(tmp_path):
    cfg = Demo.from_dict({"rate": 5, "count": 2.0})
    assert cfg.rate == 5.0 and isinstance(cfg.rate, float) and cfg.count == 2
    path = tmp_path / "c.yaml"
    path.write_text("demo:\n  rate: 20\n  mode: b\n")
    assert Demo.from_yaml(path, section="demo") == Demo(rate=20.0, mode="b")
    with pytest.raises(ConfigError, match="no section 'other'"):
        Demo.from_yaml(path, section="other")
    with pytest.raises(ConfigError, match="does not exist"):
        Demo.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError):
        cfg.replace(rate=1000)


def test_action_space_maps_and_clips():
    space = ActionSpace.for_embodiment("diff_drive_base", (0.5, 2.0))
    assert space.fields == ("linear.x", "angular.z")
    np.testing.assert_allclose(space.to_physical([1.0, -0.5]), [0.5, -1.0])
    np.testing.assert_allclose(space.to_physical([3.0, -3.0]), [0.5, -2.0])
    np.testing.assert_allclose(space.to_normalised([0.25, 4.0]), [0.5, 1.0])
    twist = space.to_twist([1.0, 1.0])
    assert twist["linear.x"] == 0.5 and twist["angular.z"] == 2.0 and twist["linear.y"] == 0.0
    with pytest.raises(ValueError, match="unknown embodiment"):
        ActionSpace.for_embodiment("hexapod", (1.0,))
    with pytest.raises(ValueError, match="scales must be finite and > 0"):
        ActionSpace(("linear.x",), (0.0,))


@pytest.mark.parametrize("path", sorted((package_share() / "config" / "robots").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_shipped_robot_profile_loads(path):
    profile = RobotProfile.load(path.stem)
    assert profile.name == path.stem
    space = profile.action_space
    if profile.embodiment == "arm":  # one action per joint, in the profile's joint order
        assert space.fields == tuple(profile.joint_names) and profile.command_type == "float64_multi_array"
    else:  # bases are driven through twist fields
        assert space.is_twist and set(space.fields) <= set(TWIST_FIELDS)
        assert profile.command_type in ("twist_stamped", "twist")
    assert len(space.scale) == space.dim and min(space.scale) > 0


def test_robot_profile_errors():
    with pytest.raises(ConfigError, match="no robot profile 'nope'.*known: .*two_rooms"):
        RobotProfile.load("nope")
    with pytest.raises(ConfigError, match="an arm profile needs its joint names"):
        RobotProfile(embodiment="arm", command_type="float64_multi_array")
    with pytest.raises(ConfigError, match="bases take twist"):
        RobotProfile(command_type="float64_multi_array")


def make_gate(**cfg):
    return CommandGate(ActionSpace.for_embodiment("holonomic_base", (0.5, 0.5)), CommandGateConfig(**cfg))


def test_gate_holds_a_good_command_until_the_timeout():
    gate = make_gate(timeout=0.5)
    np.testing.assert_array_equal(gate.action(0.0), [0.0, 0.0])  # nothing received: stopped
    assert gate.submit({"linear.x": 0.25, "linear.y": -0.5}, now=1.0, stamp=1.0, frame_id="base_link").accepted
    np.testing.assert_allclose(gate.action(1.4), [0.5, -1.0])
    np.testing.assert_array_equal(gate.action(1.6), [0.0, 0.0])
    assert gate.timed_out(1.6)


@pytest.mark.parametrize("command, stamp, frame, reason", [
    ({"linear.x": math.nan}, None, None, "non-finite value in linear.x"),
    ({"linear.x": 0.1, "angular.z": math.inf}, None, None, "non-finite value in angular.z"),
    ({"linear.x": 0.1}, 8.0, "base_link", "stale: stamp is 2.000 s old"),
    ({"linear.x": 0.1}, 11.0, "base_link", "in the future"),
    ({"linear.x": 0.1}, 10.0, "map", "frame_id 'map' is not 'base_link'"),
])
def test_gate_drops_broken_commands_and_keeps_the_last_good_one(command, stamp, frame, reason):
    gate = make_gate()
    assert gate.submit({"linear.x": 0.5}, now=10.0).accepted
    verdict = gate.submit(command, now=10.0, stamp=stamp, frame_id=frame)
    assert not verdict.accepted and reason in verdict.reason
    np.testing.assert_allclose(gate.action(10.1), [1.0, 0.0])  # the last good command still holds
    assert gate.counts["dropped"] == 1 and gate.counts["accepted"] == 1


def test_gate_clamps_over_limit_and_checks_joint_count():
    gate = make_gate()
    verdict = gate.submit({"linear.x": 2.0, "linear.y": -0.1}, now=0.0)
    assert verdict.accepted and verdict.clamped and "linear.x=2 (limit 0.5)" in verdict.reason
    np.testing.assert_allclose(gate.action(0.0), [1.0, -0.2])
    arm = CommandGate(ActionSpace.for_embodiment("arm", (2.0, 2.0), ("shoulder", "elbow")))
    assert "expected 2 values" in arm.submit([0.1, 0.2, 0.3], now=0.0).reason
    assert "non-finite" in arm.submit([0.1, math.nan], now=0.0).reason
    assert "a twist was sent to a robot that takes joint velocities" in arm.submit({"linear.x": 0.1}, now=0.0).reason


def test_momentum_random_walk_is_seeded_bounded_and_moves():
    a = MomentumRandomWalk(2, RandomWalkConfig(seed=3))
    b = MomentumRandomWalk(2, RandomWalkConfig(seed=3))
    xs = np.array([a() for _ in range(500)])
    np.testing.assert_array_equal(xs, [b() for _ in range(500)])
    assert np.abs(xs).max() <= 1.0 and xs.std(axis=0).min() > 0.2
    # Momentum makes consecutive actions correlated (smooth), unlike white noise.
    assert np.corrcoef(xs[:-1, 0], xs[1:, 0])[0, 1] > 0.7
