"""The sim collector reads the two-rooms geometry from the env: walls, door, base radius."""
from __future__ import annotations

import numpy as np
import pytest

from jepa_pilot import sim
from jepa_pilot.data.collect import Coverage, arena_layout, door_region, episode_rng, start_state

pytestmark = pytest.mark.sim


def test_the_shipped_world_gives_the_region_the_bundles_were_trained_on():
    with sim.make("two_rooms") as env:
        assert arena_layout(env) == (1.0, 0.0)
        assert door_region(env) == (0.0, 0.0, 0.4, 0.35)  # exactly: the draws match the shipped datasets'


@pytest.mark.parametrize("door_y, door_width", [(0.5, 0.6), (-0.6, 0.3)])
def test_door_starts_follow_a_moved_door(door_y, door_width):
    with sim.make("two_rooms", door_y=door_y, door_width=door_width) as env:
        cx, cy, reach_x, reach_y = door_region(env)
        assert (cx, cy, reach_x) == (0.0, door_y, door_width)
        assert reach_y == pytest.approx(door_width / 2 + 1.5 * env.base_radius)
        starts = np.stack([start_state(env, episode_rng(1, i), door_start_prob=1.0) for i in range(60)])
    assert np.all(np.abs(starts[:, 0] - cx) <= reach_x) and np.all(np.abs(starts[:, 1] - cy) <= reach_y)
    assert np.abs(starts[:, 1] - door_y).mean() < 0.3  # centred on the moved door, not on y = 0
    assert {0, 1} == {int(x >= 0) for x in starts[:, 0]}  # both sides of the wall


def test_coverage_grid_spans_the_arena_read_from_the_walls():
    with sim.make("two_rooms") as env:
        coverage = Coverage(env)
        coverage.add(np.array([[-0.99, -0.99, 0, 0], [0.99, 0.99, 0, 0], [0.1, 0.0, 0, 0]]), 0.0)
    summary = coverage.summary()
    assert summary["grid"] == "8x8 over x, y in [-1, 1] m"
    assert coverage.counts[0, 0] == coverage.counts[7, 7] == 1 and summary["episodes_crossing_door"] == 1.0
    assert summary["frames_room0"] == pytest.approx(1 / 3, abs=1e-3)
