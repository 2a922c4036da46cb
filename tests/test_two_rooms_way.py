"""The two-rooms worlds' door: where it is (a moving door), the way through it (route, geodesic
length, steering), and the reference policy that follows that way."""
from __future__ import annotations

import math

import numpy as np
import pytest

from jepa_pilot import sim
from jepa_pilot.common.config import ConfigError
from jepa_pilot.evaluation.closed_loop import LoopConfig, ShortestPathPolicy, goal_pairs, run_episode

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def moving():
    with sim.make("two_rooms_random_door") as env:
        yield env


@pytest.fixture(scope="module")
def fixed():
    with sim.make("two_rooms") as env:
        yield env


def test_each_reset_draws_a_door_in_its_range_and_the_camera_shows_it(moving):
    cfg = moving.config
    doors, images = [], []
    for seed in range(6):
        obs, _ = moving.reset(seed=seed)
        doors.append(moving.door_y)
        assert obs.state[-1] == moving.door_y and moving.state_names[-1] == "door_y"
        assert abs(moving.door_y - cfg.door_y) <= cfg.door_y_range
        # The same base position under another door is another image.
        images.append(moving.render_goal(np.array([-0.6, 0.0, 0.0, 0.0, moving.door_y])))
    assert np.ptp(doors) > 0.3
    assert all(np.abs(a.astype(int) - b.astype(int)).max() > 100 for a, b in zip(images, images[1:]))


def test_the_base_passes_the_door_where_it_is_and_nowhere_else(moving):
    for door_y in (-0.5, 0.5):
        for y, passes in ((door_y, True), (-door_y, False)):
            moving.reset(state=[-0.5, y, 0.0, 0.0, door_y])
            for _ in range(30):
                moving.step([1.0, 0.0])
            assert (moving.state()[0] > 0.2) == passes, (door_y, y)


def test_a_goal_render_with_another_door_leaves_the_running_world_alone(moving):
    moving.reset(state=[-0.5, 0.5, 0.0, 0.0, 0.5])
    walls = moving.walls()
    moving.render_goal([0.5, -0.5, 0.0, 0.0, -0.5])
    assert moving.walls() == walls and moving.door_y == 0.5
    for _ in range(30):
        moving.step([1.0, 0.0])
    assert moving.state()[0] > 0.2  # still through the running door, not blocked by the goal's wall


def test_a_door_outside_its_range_or_a_moved_fixed_door_is_refused(moving, fixed):
    with pytest.raises(ValueError, match="outside the door's range"):
        moving.reset(state=[-0.5, 0.0, 0.0, 0.0, 0.7])
    with pytest.raises(ValueError, match="door stays"):
        fixed.sample_state(np.random.default_rng(0), door_y=0.3)
    with pytest.raises(ConfigError, match="door_y_range"):
        sim.make("two_rooms", door_y=0.5, door_y_range=0.4)


def test_evaluation_goals_lie_behind_the_start_door(moving):
    for start, goal in goal_pairs(moving, 10, seed=3):
        assert start[-1] == goal[-1] and moving.room_of(start) != moving.room_of(goal)


@pytest.mark.parametrize("door_y", [-0.4, 0.0, 0.4])
def test_the_geodesic_is_straight_through_the_door_and_bends_at_its_edge(moving, door_y):
    a, b = np.array([-0.5, door_y, 0, 0, door_y]), np.array([0.5, door_y, 0, 0, door_y])
    assert moving.path_length(a, b) == pytest.approx(1.0)
    same_room = np.array([-0.2, -0.7, 0, 0, door_y])
    assert moving.path_length(a, same_room) == pytest.approx(math.hypot(0.3, door_y + 0.7))
    # A goal opposite, far along the wall: the way bends at the door's edge, where the base's
    # centre can pass (door half width 0.2 less the base radius 0.1).
    far = np.array([0.5, door_y - 0.6 if door_y > -0.2 else door_y + 0.6, 0, 0, door_y])
    edge = door_y + math.copysign(0.1, far[1] - door_y)
    expected = math.hypot(0.5, edge - door_y) + math.hypot(0.5, far[1] - edge)
    assert moving.path_length(a, far) == pytest.approx(expected)
    assert moving.path_length(a, far) > np.linalg.norm(far[:2] - a[:2]) + 0.01


def test_the_route_lines_up_with_the_door_and_ends_at_the_goal(moving):
    start, goal = np.array([-0.7, 0.8, 0, 0, -0.3]), np.array([0.6, 0.7, 0, 0, -0.3])
    route = moving.route(start, goal)
    assert [w.tolist() for w in route] == [[-0.25, -0.3], [0.25, -0.3], [0.6, 0.7]]
    assert [w.tolist() for w in moving.route(start, start)] == [[-0.7, 0.8]]


def test_door_waypoints_cross_only_between_rooms_and_the_route_refuses_a_door_too_narrow():
    from jepa_pilot.sim.two_rooms import door_waypoints
    assert [w.tolist() for w in door_waypoints([-0.5, 0.3], [-0.2, -0.6], door_y=0.1)] == [[-0.2, -0.6]]
    np.testing.assert_allclose(door_waypoints([0.7, -0.6], [-0.5, 0.3], door_y=0.1),
                               [[0.25, 0.1], [-0.25, 0.1], [-0.5, 0.3]])
    with sim.make("two_rooms", door_width=0.15) as narrow:
        start, goal = np.array([-0.7, 0.8, 0, 0]), np.array([0.6, 0.7, 0, 0])
        assert narrow.route(start, goal) is None and narrow.path_length(start, goal) is None
        assert [w.tolist() for w in narrow.route(start, [-0.2, 0.1, 0, 0])] == [[-0.2, 0.1]]


def test_a_differential_base_turns_towards_its_target_and_waits_while_it_is_behind():
    with sim.make("two_rooms_diff") as env:
        ahead = env.steer(np.array([0.0, 0.0, 0.0, 0, 0, 0]), np.array([0.5, 0.0]))
        assert ahead[0] > 0 and ahead[1] == pytest.approx(0.0)
        left = env.steer(np.array([0.0, 0.0, 0.0, 0, 0, 0]), np.array([0.0, 0.5]))
        assert left[0] == pytest.approx(0.0, abs=1e-12) and left[1] > 0
        behind = env.steer(np.array([0.0, 0.0, math.pi / 2, 0, 0, 0]), np.array([0.0, -0.5]))
        assert behind[0] == 0.0 and abs(behind[1]) > 0


@pytest.mark.parametrize("name", ["two_rooms", "two_rooms_random_door"])
def test_following_the_route_reaches_goals_in_the_other_room(name):
    with sim.make(name) as env:
        cfg = LoopConfig(episodes=6, seed=11, max_steps=80)
        policy = ShortestPathPolicy(env)
        records = [run_episode(env, policy, start, goal, cfg) for start, goal in goal_pairs(env, cfg.episodes, cfg.seed)]
    assert all(r.success for r in records), [r.final_distance for r in records]
