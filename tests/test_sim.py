"""The built-in MuJoCo environments: API, physics, rendering, camera model, registry."""
from __future__ import annotations

import math

import numpy as np
import pytest

from jepa_pilot import sim
from jepa_pilot.common.config import ConfigError
from jepa_pilot.sim.reacher import JOINT_LIMITS, LIMIT_TOLERANCE

pytestmark = pytest.mark.sim

NAMES = sim.registered()
BASES = ("two_rooms", "two_rooms_diff", "two_rooms_random_door")

# A start state per env from which an all-ones action moves the robot freely for a few steps.
FREE_START = {
    "two_rooms": [-0.6, 0.0, 0.0, 0.0],
    "two_rooms_diff": [-0.6, 0.0, 0.0, 0.0, 0.0],
    "two_rooms_random_door": [-0.6, 0.0, 0.0, 0.0, 0.0],  # the door at y = 0, in line with the base
    "reacher": [0.0, 0.0, 0.0, 0.0],
}


@pytest.fixture(scope="module")
def envs():
    """One shared env per (name, overrides); tests reset before use."""
    cache: dict = {}

    def get(name: str, **overrides):
        key = (name, tuple(sorted(overrides.items())))
        if key not in cache:
            cache[key] = sim.make(name, **overrides)
        return cache[key]

    yield get
    for env in cache.values():
        env.close()


def _is_valid_image(image, env) -> bool:
    return (isinstance(image, np.ndarray) and image.dtype == np.uint8
            and image.shape == (env.config.image_height, env.config.image_width, 3))


def test_the_three_envs_are_registered():
    assert {"two_rooms", "two_rooms_diff", "reacher"} <= set(NAMES)
    assert sim.config_class("two_rooms") is sim.TwoRoomsConfig
    assert sim.config_class("reacher") is sim.ReacherConfig
    assert sim.default_config("two_rooms_diff").drive == "differential"
    assert sim.default_config("two_rooms").drive == "holonomic"


@pytest.mark.parametrize("name", NAMES)
def test_reset_step_render_shapes(envs, name):
    env = envs(name)
    assert env.name == name
    assert env.embodiment in ("holonomic_base", "diff_drive_base", "arm")
    assert env.action_dim == len(env.action_names) == len(env.action_units) == env.action_scale.shape[0]
    assert np.all(env.action_scale > 0)
    assert env.state_dim == len(env.state_names) == len(env.state_units)
    assert any(u in ("m", "rad") for u in env.state_units), "a probe needs a state dimension one frame shows"
    assert env.camera_frame_id == "camera_optical_frame"

    obs, info = env.reset(seed=3)
    assert info["seed"] == 3
    assert _is_valid_image(obs.image, env)
    assert obs.state.dtype == np.float64 and obs.state.shape == (env.state_dim,)
    assert obs.time == 0.0
    rng = np.random.default_rng(0)
    for i in range(20):
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, env.action_dim))
        assert _is_valid_image(obs.image, env)
        assert obs.state.shape == (env.state_dim,) and np.all(np.isfinite(obs.state))
        assert obs.time == pytest.approx((i + 1) * env.config.control_period)
        assert (reward, terminated, truncated, info["clipped"]) == (0.0, False, False, False)
    assert np.array_equal(env.render(), obs.image)
    assert np.array_equal(env.state(), obs.state)

    robot = env.robot_state()
    if env.embodiment == "arm":
        assert robot.joint_names == ("shoulder", "elbow") and robot.base_pose is None
        np.testing.assert_array_equal(robot.joint_positions, obs.state[:2])
        np.testing.assert_array_equal(robot.joint_velocities, obs.state[2:])
    else:
        assert robot.joint_names == () and len(robot.base_twist) == 3
        np.testing.assert_allclose(robot.base_pose[:2], obs.state[:2])

    obs, *_ = env.step(np.zeros(env.action_dim), render=False)
    assert obs.image is None and np.all(np.isfinite(obs.state))


def test_episode_is_truncated_after_max_steps():
    with sim.make("two_rooms", max_episode_steps=3) as env:
        env.reset(seed=0)
        flags = [env.step([0.0, 0.0], render=False)[3] for _ in range(4)]
    assert flags == [False, False, True, True]


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_and_actions_give_identical_runs(envs, name):
    first, second = envs(name), sim.make(name)
    try:
        actions = np.random.default_rng(1).uniform(-1, 1, (10, first.action_dim))
        runs = []
        for env in (first, second):
            obs, _ = env.reset(seed=42)
            frames = [(obs.image, obs.state)] + [(o.image, o.state) for o, *_ in map(env.step, actions)]
            runs.append(frames)
        for (image_a, state_a), (image_b, state_b) in zip(*runs):
            assert np.array_equal(image_a, image_b) and np.array_equal(state_a, state_b)

        other, _ = second.reset(seed=43)
        assert not np.array_equal(other.state, runs[0][0][1])
        assert not np.array_equal(other.image, runs[0][0][0])
    finally:
        second.close()


@pytest.mark.parametrize("name", NAMES)
def test_image_changes_when_moving_and_not_when_still(envs, name):
    env = envs(name)
    start, _ = env.reset(state=FREE_START[name])
    for _ in range(3):
        moved, *_ = env.step(np.ones(env.action_dim))
    changed = np.any(moved.image != start.image, axis=-1).sum()
    assert changed >= 5, f"only {changed} pixels changed after moving"

    for _ in range(3):  # let the commanded velocity settle to zero
        env.step(np.zeros(env.action_dim))
    still = env.render()
    for _ in range(3):
        obs, *_ = env.step(np.zeros(env.action_dim))
        assert np.array_equal(obs.image, still)


@pytest.mark.parametrize("name", NAMES)
def test_render_goal_shows_the_goal_and_leaves_the_sim_alone(envs, name):
    env = envs(name)
    actions = np.random.default_rng(5).uniform(-1, 1, (4, env.action_dim))
    goal = env.sample_state(np.random.default_rng(7))

    env.reset(seed=1)
    for action in actions[:3]:
        env.step(action)
    state, image, time = env.state(), env.render(), env.data.time
    goal_image = env.render_goal(goal)
    assert np.array_equal(env.state(), state) and env.data.time == time
    assert np.array_equal(env.render(), image)
    assert not np.array_equal(goal_image, image)
    after_goal, *_ = env.step(actions[3])

    env.reset(seed=1)
    for action in actions:
        without_goal, *_ = env.step(action)
    assert np.array_equal(after_goal.state, without_goal.state)

    env.reset(state=goal)
    assert np.array_equal(env.render(), goal_image)


@pytest.mark.parametrize("name", NAMES)
def test_actions_are_clipped_and_bad_actions_rejected(envs, name):
    env = envs(name)
    dim = env.action_dim
    env.reset(state=FREE_START[name])
    _, _, _, _, info = env.step(np.full(dim, 5.0))
    clipped_state = env.state()
    assert info["clipped"] is True
    env.reset(state=FREE_START[name])
    _, _, _, _, info = env.step(np.ones(dim))
    assert info["clipped"] is False
    assert np.array_equal(env.state(), clipped_state)

    with pytest.raises(ValueError, match="finite"):
        env.step(np.full(dim, np.nan))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(dim + 1))
    with pytest.raises(ValueError, match="action"):
        env.step("fast")


@pytest.mark.parametrize("name, state, message", [
    ("two_rooms", [0.0, 0.0, 0.0], "shape"),
    ("two_rooms", [np.nan, 0.0, 0.0, 0.0], "non-finite"),
    ("two_rooms", [1.5, 0.0, 0.0, 0.0], "outside the arena"),
    ("two_rooms", [0.0, 0.6, 0.0, 0.0], "wall"),
    ("two_rooms", [-0.07, -0.6, 0.0, 0.0], "wall"),
    ("two_rooms_diff", [0.05, 0.8, 0.0, 0.0, 0.0], "wall"),
    ("two_rooms_diff", [0.0, 0.0, 0.0, np.inf, 0.0], "non-finite"),
    ("reacher", [math.radians(175), 0.0, 0.0, 0.0], "shoulder"),
    ("reacher", [0.0, math.radians(-160), 0.0, 0.0], "elbow"),
    ("reacher", [[0.0, 0.0, 0.0, 0.0]], "shape"),
])
def test_invalid_start_states_are_rejected(envs, name, state, message):
    env = envs(name)
    with pytest.raises(ValueError, match=message):
        env.reset(state=state)
    with pytest.raises(ValueError, match=message):
        env.render_goal(state)


@pytest.mark.parametrize("name", NAMES)
def test_sampled_states_are_valid(envs, name):
    env = envs(name)
    rng = np.random.default_rng(0)
    for _ in range(200):
        env.validate_state(env.sample_state(rng))
    if name in BASES:
        for room in (0, 1):
            assert all(env.room_of(env.sample_state(rng, room=room)) == room for _ in range(50))
        with pytest.raises(ValueError, match="room"):
            env.sample_state(rng, room=2)


def _drive(env, start, action, steps):
    env.reset(state=start)
    xs = []
    for _ in range(steps):
        obs, *_ = env.step(action, render=False)
        xs.append(obs.state[0])
    return np.array(xs)


@pytest.mark.parametrize("name", BASES)
def test_wall_blocks_the_base_outside_the_door(envs, name):
    env = envs(name)
    heading = [] if name == "two_rooms" else [0.0]
    rest = [0.0, 0.0] if name == "two_rooms" else [0.0, 0.0]
    forward = [1.0, 0.0]
    xs = _drive(env, [-0.5, 0.6, *heading, *rest], forward, 40)
    assert xs.max() < 0 and xs[-1] > -0.2, "the base should press against the wall, on its own side"
    assert env.room_of(env.state()) == 0

    backward = [-1.0, 0.0] if name == "two_rooms" else [1.0, 0.0]
    start = [0.5, -0.6, *([] if name == "two_rooms" else [math.pi]), *rest]
    xs = _drive(env, start, backward, 40)
    assert xs.min() > 0 and env.room_of(env.state()) == 1
    if name == "two_rooms":
        assert env.robot_state().base_pose[2] == 0.0, "the holonomic heading must stay at 0"


@pytest.mark.parametrize("name", BASES)
def test_base_passes_through_the_door(envs, name):
    env = envs(name)
    heading = [] if name == "two_rooms" else [0.0]
    start = [-0.4, 0.0, *heading, 0.0, 0.0]
    assert env.room_of(start) == 0
    xs = _drive(env, start, [1.0, 0.0], 20)
    assert xs[-1] > 0.3 and env.room_of(env.state()) == 1


def test_door_position_and_width_are_configurable(envs):
    env = envs("two_rooms", door_y=0.5, door_width=0.3)
    assert _drive(env, [-0.4, 0.5, 0.0, 0.0], [1.0, 0.0], 20)[-1] > 0.3
    assert _drive(env, [-0.4, 0.0, 0.0, 0.0], [1.0, 0.0], 20).max() < 0


def test_velocity_commands_are_tracked(envs):
    holonomic = envs("two_rooms")
    holonomic.reset(state=[-0.6, 0.0, 0.0, 0.0])
    obs, *_ = holonomic.step([1.0, -0.5])
    np.testing.assert_allclose(obs.state[2:], [0.5, -0.25], rtol=1e-3)
    assert obs.state[0] - (-0.6) == pytest.approx(0.05, rel=0.1)

    diff = envs("two_rooms_diff")
    diff.reset(state=[-0.6, 0.0, math.pi / 2, 0.0, 0.0])
    obs, *_ = diff.step([1.0, 0.0])
    assert obs.state[1] == pytest.approx(0.05, rel=0.1) and abs(obs.state[0] + 0.6) < 1e-3
    vx, vy, wz = diff.robot_state().base_twist
    assert vx == pytest.approx(0.5, rel=1e-3) and abs(vy) < 1e-3 and abs(wz) < 1e-3
    obs, *_ = diff.step([0.0, 0.5])
    assert obs.state[4] == pytest.approx(1.0, rel=1e-3)
    assert obs.state[2] - math.pi / 2 == pytest.approx(0.1, rel=0.1)

    arm = envs("reacher")
    arm.reset(state=[0.0, 0.0, 0.0, 0.0])
    obs, *_ = arm.step([0.5, -0.5])
    np.testing.assert_allclose(obs.state[2:], [1.0, -1.0], rtol=1e-3)


def test_reacher_stops_at_its_joint_limits(envs):
    env = envs("reacher")
    env.reset(state=[0.0, 0.0, 0.0, 0.0])
    for _ in range(40):
        obs, *_ = env.step([1.0, -1.0], render=False)
    shoulder, elbow = obs.state[:2]
    assert JOINT_LIMITS[0] - 0.05 < shoulder <= JOINT_LIMITS[0] + LIMIT_TOLERANCE
    assert -JOINT_LIMITS[1] - LIMIT_TOLERANCE <= elbow < -JOINT_LIMITS[1] + 0.05
    env.reset(state=obs.state)  # a state the simulator reached is a valid state


def test_goal_distance_is_metres(envs):
    base = envs("two_rooms")
    assert base.goal_distance([0.0, 0.0, 0.1, 0.0], [0.3, 0.4, 0.0, 0.0]) == pytest.approx(0.5)
    arm = envs("reacher")
    stretched_east, stretched_north = [0.0, 0.0, 0.0, 0.0], [math.pi / 2, 0.0, 0.0, 0.0]
    assert arm.goal_distance(stretched_east, stretched_north) == pytest.approx(0.9 * math.sqrt(2))
    assert arm.goal_distance([0.3, 1.0, 0.0, 0.0], [0.3, 1.0, 2.0, 2.0]) == 0.0


def _project(env, point):
    """Pixel (u, v) of a world point through the env's pinhole model."""
    fx, fy, cx, cy = env.camera_intrinsics()
    position, rotation = env.camera_pose()
    x, y, z = rotation.T @ (np.asarray(point) - position)
    assert z > 0, "point behind the camera"
    return fx * x / z + cx, fy * y / z + cy


def _red_mask(image):
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return (r > 120) & (g < 60) & (b < 60)


@pytest.mark.parametrize("width, height", [(64, 64), (256, 256), (160, 96)])
def test_camera_intrinsics_project_the_base_onto_red_pixels(envs, width, height):
    env = envs("two_rooms", image_width=width, image_height=height)
    for x, y in [(0.0, 0.0), (-0.7, 0.7), (0.75, -0.6), (-0.3, -0.8), (0.6, 0.45)]:
        obs, _ = env.reset(state=[x, y, 0.0, 0.0])
        u, v = _project(env, [x, y, env.base_top_z])
        red = _red_mask(obs.image)
        assert red[round(v), round(u)], f"projected base centre ({u:.1f}, {v:.1f}) is not red"
        rows, cols = np.nonzero(red)
        # Off the optical axis the camera also sees the side of the cylinder facing it,
        # which pulls the red centroid up to ~0.4 px towards the image centre.
        tolerance = 0.2 if (x, y) == (0.0, 0.0) else 0.6
        assert abs(cols.mean() - u) < tolerance and abs(rows.mean() - v) < tolerance, \
            f"red centroid ({cols.mean():.2f}, {rows.mean():.2f}) vs projection ({u:.2f}, {v:.2f})"
    # Image right is +x and image up is +y.
    u_left, v_low = _project(env, [-0.5, -0.5, 0.0])
    u_right, v_high = _project(env, [0.5, 0.5, 0.0])
    assert u_right > u_left and v_high < v_low


def test_unknown_env_and_bad_config_values_give_clear_errors():
    with pytest.raises(ValueError, match="unknown environment 'warehouse'.*reacher.*two_rooms"):
        sim.make("warehouse")
    with pytest.raises(ConfigError, match="image_width.*16"):
        sim.make("two_rooms", image_width=8)
    with pytest.raises(ConfigError, match="control_period.*whole multiple"):
        sim.make("reacher", control_period=0.0123)
    with pytest.raises(ConfigError, match="unknown setting.*colour"):
        sim.make("two_rooms", colour="red")
    with pytest.raises(ConfigError, match="drive.*holonomic"):
        sim.make("two_rooms", drive="tank")
    with pytest.raises(ConfigError, match="door"):
        sim.make("two_rooms", door_y=0.9)
    with pytest.raises(ConfigError, match="max_joint_speed"):
        sim.make("reacher", max_joint_speed=-1.0)
    with pytest.raises(ConfigError, match="ReacherConfig"):
        sim.make("reacher", config=sim.TwoRoomsConfig())
    assert sim.default_config("reacher", control_period=0.05).n_substeps == 10
