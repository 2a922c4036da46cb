"""Planners (CEM, MPPI) against a toy latent model: they only need the rollout protocol."""
from __future__ import annotations

import numpy as np
import pytest

from jepa_pilot.common.config import ConfigError
from jepa_pilot.control.planner import PlannerConfig, make_planner

pytestmark = pytest.mark.unit


class PointMass:
    """Latent = 2-d position; each control period moves it by 0.05 * action (a stand-in world model)."""

    horizon, frameskip, action_dim = 5, 4, 2

    def __init__(self) -> None:
        self.calls = 0

    def rollout(self, z_hist: np.ndarray, actions: np.ndarray) -> np.ndarray:
        self.calls += 1
        assert actions.shape[1:] == (self.horizon * self.frameskip, 2) and np.abs(actions).max() <= 1.0
        path = z_hist[-1] + 0.05 * np.cumsum(actions, axis=1)               # (N, H*S, 2)
        return path[:, self.frameskip - 1::self.frameskip]                   # (N, H, 2)


@pytest.mark.parametrize("method", ["cem", "mppi"])
def test_closed_loop_reaches_the_goal(method):
    model, goal = PointMass(), np.array([0.6, -0.4])
    planner = make_planner(model, method=method, samples=128, iterations=3, seed=1)
    z = np.zeros(2)
    for _ in range(40):
        plan = planner.plan(np.stack([z, z]), goal)
        assert plan.actions.shape == (20, 2) and plan.latents.shape == (5, 2)
        z = z + 0.05 * plan.actions[0]  # execute the first action for one period
    assert np.linalg.norm(z - goal) < 0.06, z


def test_first_action_points_at_the_goal_and_the_plan_is_seeded():
    goal = np.array([-0.5, 0.0])
    a = make_planner(PointMass(), seed=3).plan(np.zeros((2, 2)), goal)
    b = make_planner(PointMass(), seed=3).plan(np.zeros((2, 2)), goal)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert a.actions[0, 0] < -0.5 and abs(a.actions[0, 1]) < 0.5
    assert a.cost < a.goal_distance == pytest.approx(0.5)


def test_one_rollout_call_per_iteration_plus_the_final_forecast():
    model = PointMass()
    make_planner(model, iterations=4).plan(np.zeros((2, 2)), np.ones(2))
    assert model.calls == 5


def test_warm_start_keeps_a_good_plan():
    model, goal = PointMass(), np.array([0.8, 0.0])
    warm = make_planner(model, samples=32, iterations=1, seed=0)
    for _ in range(3):
        plan = warm.plan(np.zeros((2, 2)), goal)
    cold = make_planner(model, samples=32, iterations=1, seed=0).plan(np.zeros((2, 2)), goal)
    assert plan.cost <= cold.cost


def test_limits_and_settings_are_validated():
    plan = make_planner(PointMass(), action_limit=0.3).plan(np.zeros((2, 2)), np.ones(2) * 5)
    assert np.abs(plan.actions).max() <= 0.3 + 1e-9
    with pytest.raises(ConfigError, match="elites = 300: at most samples = 256"):
        PlannerConfig(elites=300)
    with pytest.raises(ConfigError, match="method"):
        PlannerConfig(method="random")
