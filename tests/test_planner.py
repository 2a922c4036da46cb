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


def test_a_plan_cold_or_warm_runs_its_share_of_the_iterations():
    planner, z, goal = make_planner(PointMass(), iterations=3, seed=0), np.zeros((2, 2)), np.ones(2)
    assert planner.plan(z, goal, periods=1.0).iterations == 3     # cold, a period after the previous frame
    assert planner.plan(z, goal, periods=1 / 3).iterations == 1   # a frame a third of a period later
    assert planner.plan(z, goal, periods=2 / 3).iterations == 2
    assert planner.plan(z, goal, periods=5.0).iterations == 3     # never more than a cold plan
    assert planner.plan(z, goal, periods=0.0).iterations == 1     # never none
    planner.reset()
    assert planner.plan(z, goal, periods=1 / 3).iterations == 1   # cold at a third of a period: no more
    assert planner.plan(z, goal, periods=1 / 3).iterations == 1   # ... and the next frames search on


def test_the_warm_start_shifts_one_macro_step_per_frameskip_periods_however_they_come():
    model = TimedPointMass(FakeClock())
    planner, z, goal, s = make_planner(model, iterations=1, seed=0), np.zeros((2, 2)), np.array([0.8, -0.3]), 4
    previous, thirds = planner.plan(z, goal).actions, 0  # (H*S, A); time in thirds of a period
    for periods in [3.0, 1.0] + [1 / 3] * 12 + [2.0, 2.0]:
        shifted = (thirds + round(3 * periods)) // (3 * s) > thirds // (3 * s)
        thirds += round(3 * periods)
        plan = planner.plan(z, goal, periods=periods)
        expected = np.concatenate([previous[s:], previous[-s:]]) if shifted else previous
        np.testing.assert_allclose(model.starts[-1], expected, atol=1e-6, err_msg=f"after {thirds / 3} periods")
        previous = plan.actions


def test_the_kept_spread_is_widened_back_by_the_share_of_a_period_that_passed():
    from jepa_pilot.control.planner import WarmStart

    warm = WarmStart(horizon=2, frameskip=4, floor=0.4)
    warm.reset(np.zeros((2, 1)), np.ones((2, 1)))
    assert warm.begin(1 / 3, 3) == 1 and warm.std[0, 0] == 1.0   # cold: as reset, its share of the iterations
    warm.keep(np.zeros((2, 1)), np.full((2, 1), 0.1))
    assert warm.begin(1 / 3, 3) == 1
    np.testing.assert_allclose(warm.std, 0.2)                    # a third of the way back to 0.4
    warm.keep(np.zeros((2, 1)), np.full((2, 1), 0.1))
    warm.begin(2.0, 3)
    np.testing.assert_allclose(warm.std, 0.4)                    # a period or more: all the way


def test_limits_and_settings_are_validated():
    plan = make_planner(PointMass(), action_limit=0.3).plan(np.zeros((2, 2)), np.ones(2) * 5)
    assert np.abs(plan.actions).max() <= 0.3 + 1e-9
    with pytest.raises(ConfigError, match="elites = 300: at most samples = 256"):
        PlannerConfig(elites=300)
    with pytest.raises(ConfigError, match="method"):
        PlannerConfig(method="random")


# --- LatentMPC: supervisor + history + planner + warm-start policy (control/mpc.py) ------------

class FakeClock:
    """The planning timer: advanced by the toy model, so overruns need no real waiting."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class TimedPointMass(PointMass):
    """PointMass that takes ``seconds`` of the fake clock per rollout and records the first sample
    of each search (the planner's starting mean: zeros after a reset, the shifted plan when warm)."""

    def __init__(self, clock: FakeClock, seconds: float = 0.0) -> None:
        super().__init__()
        self.clock, self.seconds, self.starts = clock, seconds, []

    def rollout(self, z_hist, actions):
        self.clock.t += self.seconds
        if len(actions) > 1:
            self.starts.append(actions[0].copy())
        return super().rollout(z_hist, actions)


def make_mpc(seconds: float = 0.0):
    from jepa_pilot.control.mpc import LatentMPC
    from jepa_pilot.control.supervisor import SupervisorConfig

    clock = FakeClock()
    model = TimedPointMass(clock, seconds)
    mpc = LatentMPC(model, history=2, model_step=0.2,
                    planner_config=PlannerConfig(samples=64, elites=8, iterations=1, seed=0),
                    supervisor_config=SupervisorConfig(goal_tolerance=0.05, max_latent_age=0.3, max_plan_time=0.2),
                    timer=clock)
    return mpc, model


def control_step(mpc, z, t: float):
    """One latent at robot time t (arrived at wall time 100 + t): plan if asked, then decide."""
    step = mpc.on_latent(z, t, t, 100.0 + t)
    if step.job is None:
        return step
    return mpc.on_plan(mpc.plan(step.job), t, 100.0 + t)


def test_mpc_drives_to_the_goal_then_holds_with_cause_reached():
    from jepa_pilot.control.mpc import Cause, Status

    mpc, _ = make_mpc()
    goal = np.array([0.3, -0.2])
    assert mpc.set_goal(goal) == ""
    z, t, steps = np.zeros(2), 0.0, []
    for _ in range(80):
        step = control_step(mpc, z, t)
        steps.append(step)
        if step.decision.status != Status.PLANNING:
            break
        assert step.decision.cause == Cause.PLANNING and step.plan is not None
        np.testing.assert_array_equal(step.command, step.plan.actions[0])
        z, t = z + 0.05 * step.command, t + 0.05
    assert steps[-1].decision.cause == Cause.REACHED, [s.decision.reason for s in steps[-3:]]
    np.testing.assert_array_equal(steps[-1].command, np.zeros(2))  # held at zero
    assert np.linalg.norm(z - goal) < 0.05 and len(steps) > 5


def test_no_goal_commands_nothing_and_a_goal_without_latents_holds_with_cause_no_latent():
    from jepa_pilot.control.mpc import Cause, Status

    mpc, model = make_mpc()
    step = control_step(mpc, np.zeros(2), 1.0)
    assert (step.decision.status, step.decision.cause, step.command) == (Status.IDLE, Cause.NO_GOAL, None)
    assert model.calls == 0 and mpc.watchdog(1.0, 101.0) is None
    fresh, _ = make_mpc()
    fresh.set_goal(np.ones(2))
    step = fresh.watchdog(0.0, 100.0)
    assert step.decision.cause == Cause.NO_LATENT and not step.command.any()


def test_a_new_goal_drops_the_warm_start():
    mpc, model = make_mpc()
    mpc.set_goal(np.array([0.8, 0.0]))
    jobs = []
    for i in range(3):
        step = mpc.on_latent(np.zeros(2), i * 0.05, i * 0.05, 100.0)
        jobs.append(step.job)
        mpc.on_plan(mpc.plan(step.job), i * 0.05, 100.0)
    assert [j.reset for j in jobs] == [True, False, False]
    assert not model.starts[0].any() and model.starts[-1].any()  # warm: the search starts from the last plan
    mpc.set_goal(np.array([-0.8, 0.0]))
    step = mpc.on_latent(np.zeros(2), 0.15, 0.15, 100.0)
    assert step.job.reset
    mpc.plan(step.job)
    assert not model.starts[-1].any(), "a new goal must start from a cold plan"


def test_mpc_plans_a_camera_faster_than_the_control_rate_at_its_share_of_the_iterations():
    mpc, _ = make_mpc()  # control period 0.05 s (model step 0.2 s / frameskip 4), iterations 1 ...
    mpc.planner.config = PlannerConfig(samples=64, elites=8, iterations=3, seed=0)  # ... made 3
    mpc.set_goal(np.array([0.8, 0.0]))
    done = []
    for i in range(4):  # latents three times per control period
        step = mpc.on_latent(np.zeros(2), i * 0.05 / 3, i * 0.05 / 3, 100.0)
        result = mpc.plan(step.job)
        done.append((round(step.job.periods, 6), result.plan.iterations))
        mpc.on_plan(result, i * 0.05 / 3, 100.0)
    assert done == [(1.0, 3), (round(1 / 3, 6), 1), (round(1 / 3, 6), 1), (round(1 / 3, 6), 1)]
    mpc.set_goal(np.array([-0.8, 0.0]))  # a new goal: a cold plan with the share of a frame's time
    step = mpc.on_latent(np.zeros(2), 4 * 0.05 / 3, 4 * 0.05 / 3, 100.0)
    assert step.job.reset and round(step.job.periods, 6) == round(1 / 3, 6)
    assert mpc.plan(step.job).plan.iterations == 1


@pytest.mark.parametrize("stop", ["estop", "stale"])
def test_a_stop_then_resume_drops_the_warm_start(stop):
    from jepa_pilot.control.mpc import Cause

    mpc, model = make_mpc()
    mpc.set_goal(np.array([0.8, 0.0]))
    for i in range(2):
        assert control_step(mpc, np.zeros(2), i * 0.05).decision.cause == Cause.PLANNING
    if stop == "estop":
        step = mpc.set_estop(True)
        assert step.decision.cause == Cause.ESTOP and not step.command.any()
        during = control_step(mpc, np.zeros(2), 0.1)
        assert during.decision.cause == Cause.ESTOP and during.job is None and not during.command.any()
        assert mpc.set_estop(False) is None
    else:
        step = mpc.watchdog(0.1, 100.0 + 5.0)  # no latent for 5 s of wall time
        assert step.decision.cause == Cause.STALE and not step.command.any()
    step = mpc.on_latent(np.zeros(2), 0.2, 0.2, 100.2)
    assert step.job.reset
    mpc.plan(step.job)
    assert not model.starts[-1].any(), "a plan made before the stop must not warm-start"


def test_an_overrun_holds_the_robot_with_cause_overrun_until_a_plan_is_in_time():
    from jepa_pilot.control.mpc import Cause, Status

    mpc, model = make_mpc(seconds=0.15)  # two rollouts per plan: 0.3 s > max_plan_time 0.2
    mpc.set_goal(np.array([0.8, 0.0]))
    step = control_step(mpc, np.zeros(2), 0.0)
    assert (step.decision.status, step.decision.cause) == (Status.STOPPED, Cause.OVERRUN)
    assert step.plan is not None and step.plan.actions[0].any() and not step.command.any()
    assert step.planning_time == pytest.approx(0.3) and mpc.counts["overruns"] == 1
    assert mpc.watchdog(0.05, 100.05).decision.cause == Cause.OVERRUN  # keeps holding between latents
    assert mpc.counts["stops"] == mpc.counts["stops_overrun"] == 1 and mpc.report()["stops_overrun"] == 1
    assert mpc.counts["stops_stale"] == 0  # a stop counts once, under its cause
    model.seconds = 0.05
    step = control_step(mpc, np.zeros(2), 0.1)
    assert step.decision.cause == Cause.PLANNING and step.command.any()
    assert not model.starts[-1].any()  # the robot stopped meanwhile: cold start


def test_a_plan_finished_after_the_goal_changed_is_dropped_and_an_estop_meanwhile_wins():
    from jepa_pilot.control.mpc import Cause

    mpc, _ = make_mpc()
    mpc.set_goal(np.array([0.8, 0.0]))
    step = mpc.on_latent(np.zeros(2), 0.0, 0.0, 100.0)
    new_goal = np.array([0.0, 0.8])
    mpc.set_goal(new_goal)                      # while planning for the old goal
    assert mpc.on_plan(mpc.plan(step.job), 0.0, 100.0) is None
    assert mpc.counts["dropped_plans"] == 1
    step = mpc.on_latent(np.zeros(2), 0.05, 0.05, 100.05)
    np.testing.assert_array_equal(step.job.goal, new_goal)
    assert step.job.reset
    mpc.set_estop(True)                         # pressed while planning
    done = mpc.on_plan(mpc.plan(step.job), 0.05, 100.05)
    assert done.decision.cause == Cause.ESTOP and not done.command.any()


def test_robot_fit_refuses_a_bundle_whose_actions_do_not_fit_the_robot():
    import types

    from jepa_pilot.control.action_space import RobotProfile
    from jepa_pilot.control.mpc import robot_fit

    base, arm = RobotProfile.load("two_rooms"), RobotProfile.load("reacher")
    spec = types.SimpleNamespace(action_dim=base.action_space.dim, action_names=base.action_space.fields,
                                 action_scale=tuple(base.action_space.scale))
    assert robot_fit(base, spec) == (base.command_type, "")
    assert robot_fit(base, spec, "twist")[0] == "twist"
    slow = types.SimpleNamespace(**{**vars(spec), "action_scale": tuple(0.5 * np.asarray(spec.action_scale))})
    assert "differ from the bundle" in robot_fit(base, slow)[1]
    arm_spec = types.SimpleNamespace(action_dim=3, action_names=("a", "b", "c"), action_scale=(1.0,) * 3)
    with pytest.raises(ValueError, match="do not fit robot reacher"):
        robot_fit(arm, arm_spec)
    arm_spec = types.SimpleNamespace(action_dim=2, action_names=("a", "b"), action_scale=(1.0, 1.0))
    with pytest.raises(ValueError, match="command_type twist does not fit robot reacher"):
        robot_fit(arm, arm_spec, "twist")


def test_mpc_explores_with_a_paced_random_walk_and_holds_once_when_the_lease_ends():
    from jepa_pilot.control.mpc import Status

    mpc, model = make_mpc()
    mpc.explore_period = 0.1
    mpc.set_explore(True, wall_now=100.0)
    commands = []
    for k in range(12):  # latents every 0.05 s: a new random action every other latent
        t = 0.05 * k
        mpc.set_explore(True, wall_now=100.0 + t)  # renewed
        step = mpc.on_latent(np.zeros(2), t, t, 100.0 + t)
        assert step.decision.status == Status.EXPLORING and step.job is None
        commands.append(step.command)
    assert all(np.abs(c).max() <= 1.0 for c in commands)
    assert all(np.array_equal(commands[2 * i], commands[2 * i + 1]) for i in range(6))
    assert len({tuple(c) for c in commands}) == 6  # the walk moved once per period
    assert model.starts == []  # no planning while exploring
    mpc.set_explore(False, wall_now=100.6)
    step = mpc.on_latent(np.zeros(2), 0.6, 0.6, 100.6)  # no goal: idle, and the walk is stopped once
    assert step.decision.status == Status.IDLE and np.array_equal(step.command, np.zeros(2))
    assert mpc.on_latent(np.zeros(2), 0.65, 0.65, 100.65).command is None  # then idle commands nothing


def test_a_new_mpc_carries_over_the_estop_and_the_exploration_lease_but_not_the_goal():
    from jepa_pilot.control.mpc import Status

    old, _ = make_mpc()
    old.set_goal(np.array([0.3, 0.0]))
    old.set_estop(True)
    old.set_explore(True, wall_now=100.0)
    new, _ = make_mpc()
    new.carry_over(old)
    assert new.estop and new.exploring(101.0) and not new.exploring(100.0 + 3.1) and new.goal is None
    new.set_estop(False)
    assert new.on_latent(np.zeros(2), 1.0, 1.0, 101.0).decision.status == Status.EXPLORING
