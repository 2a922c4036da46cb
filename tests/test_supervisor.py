"""The planner's decision logic (control/supervisor.py) and the latent streams (perception/latents.py)."""
from __future__ import annotations

import types

import numpy as np
import pytest

from jepa_pilot.common.config import ConfigError
from jepa_pilot.control.supervisor import Cause, Status, Supervisor, SupervisorConfig
from jepa_pilot.perception.bundle import BundleError
from jepa_pilot.perception.latents import ForecastTracker, LatentHistory, latent_problem, resolve_bundle

pytestmark = pytest.mark.unit

CFG = SupervisorConfig(goal_tolerance=1.0, max_latent_age=0.3, max_plan_time=0.2)
GOAL = np.zeros(4)
FAR = np.array([3.0, 0, 0, 0])


def supervisor(goal=GOAL) -> Supervisor:
    sup = Supervisor(CFG)
    if goal is not None:
        sup.set_goal(goal)
    return sup


def test_without_a_goal_it_is_idle_and_commands_nothing():
    sup = supervisor(goal=None)
    d = sup.on_latent(FAR, stamp=1.0, now=1.0, wall_now=100.0)
    assert d.status == Status.IDLE and d.cause == Cause.NO_GOAL and not d.plan and not d.hold and not d.drive
    assert sup.watchdog(now=5.0, wall_now=200.0) is None  # idle: the command topic is left alone


def test_far_from_the_goal_it_plans_and_drives_a_plan_in_time():
    sup = supervisor()
    d = sup.on_latent(FAR, 1.0, 1.0, 100.0)
    assert d.status == Status.PLANNING and d.plan and d.goal_distance == pytest.approx(3.0)
    d = sup.on_plan(0.05, sup.goal_version, 1.05, 100.05, d.goal_distance)
    assert d.drive and d.status == Status.PLANNING and d.goal_distance == pytest.approx(3.0)
    assert sup.watchdog(1.1, 100.1) is None


def test_goal_reached_holds_the_robot_and_latches_until_a_new_goal():
    sup = supervisor()
    d = sup.on_latent(np.array([0.5, 0, 0, 0]), 1.0, 1.0, 100.0)
    assert d.status == Status.REACHED and d.cause == Cause.REACHED and d.hold and not d.plan
    assert "goal_tolerance" in d.reason
    d = sup.on_latent(FAR, 1.1, 1.1, 100.1)  # pushed away: stays REACHED (the goal was met)
    assert d.status == Status.REACHED and d.hold
    assert sup.watchdog(1.2, 100.2).status == Status.REACHED
    sup.set_goal(np.full(4, 10.0))
    assert sup.on_latent(FAR, 1.3, 1.3, 100.3).status == Status.PLANNING


def test_an_older_goal_is_ignored_and_the_same_goal_again_changes_nothing():
    sup = Supervisor(CFG)
    assert sup.set_goal(GOAL, stamp=5.0) == ""
    sup.on_latent(np.array([0.5, 0, 0, 0]), 6.0, 6.0, 100.0)
    assert sup.reached
    version = sup.goal_version
    assert "again" in sup.set_goal(GOAL, stamp=5.0)  # re-delivered (a restarted encoder's latched goal)
    assert "older" in sup.set_goal(FAR, stamp=4.0)
    assert sup.goal_version == version and sup.reached
    assert sup.set_goal(FAR, stamp=7.0) == "" and not sup.reached
    assert sup.set_goal(GOAL) == ""  # unstamped goals are always taken


def test_estop_stops_everything_until_released():
    sup = supervisor()
    sup.set_estop(True)
    d = sup.on_latent(FAR, 1.0, 1.0, 100.0)
    assert d.status == Status.STOPPED and d.cause == Cause.ESTOP and d.hold and not d.plan and "e-stop" in d.reason
    assert sup.watchdog(1.0, 100.0).cause == Cause.ESTOP
    sup.set_estop(False)
    assert sup.on_latent(FAR, 1.1, 1.1, 100.1).plan


def test_estop_during_planning_cancels_the_plan():
    sup = supervisor()
    d = sup.on_latent(FAR, 1.0, 1.0, 100.0)
    sup.set_estop(True)
    d = sup.on_plan(0.05, sup.goal_version)
    assert d.status == Status.STOPPED and d.cause == Cause.ESTOP and d.hold and not d.drive


@pytest.mark.parametrize("now, wall_now, words", [
    (1.5, 100.05, "0.50 s old"),          # robot clock: the latent's stamp is old
    (1.05, 100.5, "no latent for 0.50 s"),  # wall clock: nothing arrived (the sim clock may have stopped)
    (None, 100.5, "no latent for"),         # no robot clock yet: the wall clock still counts
])
def test_stale_latents_stop_the_robot_and_fresh_ones_resume(now, wall_now, words):
    sup = supervisor()
    sup.on_latent(FAR, 1.0, 1.0, 100.0)
    d = sup.watchdog(now, wall_now)
    assert d is not None and d.status == Status.STOPPED and d.cause == Cause.STALE and d.hold and words in d.reason
    d = sup.on_latent(FAR, 2.0, 2.0, 101.0)
    assert d.status == Status.PLANNING and d.plan
    assert sup.watchdog(2.05, 101.05) is None


def test_a_latent_that_arrives_old_or_from_the_future_is_not_planned_on():
    sup = supervisor()
    d = sup.on_latent(FAR, stamp=1.0, now=1.6, wall_now=100.0)
    assert d.status == Status.STOPPED and d.cause == Cause.STALE and not d.plan and "0.60 s old" in d.reason
    d = sup.on_latent(FAR, stamp=1.7e9, now=12.0, wall_now=100.1)
    assert d.status == Status.STOPPED and d.cause == Cause.FUTURE_STAMP and "use_sim_time" in d.reason


def test_a_plan_whose_latent_aged_beyond_the_limit_meanwhile_is_not_executed():
    sup = supervisor()
    sup.on_latent(FAR, stamp=1.0, now=1.1, wall_now=100.0)  # arrived 0.1 s old
    d = sup.on_plan(0.15, sup.goal_version, now=1.25, wall_now=100.15)
    assert d.drive  # 0.25 s from frame to command: in time
    sup.on_latent(FAR, stamp=2.0, now=2.1, wall_now=101.0)
    d = sup.on_plan(0.15, sup.goal_version, now=2.35, wall_now=101.15)
    assert d.status == Status.STOPPED and d.hold and "0.35 s old" in d.reason


def test_no_latent_yet_with_a_goal_holds_the_robot():
    d = supervisor().watchdog(1.0, 100.0)
    assert d.status == Status.STOPPED and d.cause == Cause.NO_LATENT and d.hold and "no latent" in d.reason


def test_a_plan_that_overran_is_not_executed_until_one_is_in_time():
    sup = supervisor()
    d = sup.on_latent(FAR, 1.0, 1.0, 100.0)
    d = sup.on_plan(0.5, sup.goal_version)
    assert d.status == Status.STOPPED and d.cause == Cause.OVERRUN and d.hold and "max_plan_time" in d.reason
    assert sup.watchdog(1.05, 100.05).cause == Cause.OVERRUN  # keeps holding between latents
    d = sup.on_latent(FAR, 1.1, 1.1, 100.1)
    assert d.plan
    assert sup.on_plan(0.05, sup.goal_version).drive
    assert sup.watchdog(1.15, 100.15) is None


def test_a_plan_for_a_goal_that_changed_meanwhile_is_dropped():
    sup = supervisor()
    sup.on_latent(FAR, 1.0, 1.0, 100.0)
    version = sup.goal_version
    sup.set_goal(np.ones(4))
    assert sup.on_plan(0.05, version) is None
    version = sup.goal_version
    sup.clear_goal()
    assert sup.on_plan(0.05, version) is None


def test_config_is_validated():
    with pytest.raises(ConfigError, match="max_latent_age"):
        SupervisorConfig(max_latent_age=0.0)
    with pytest.raises(ConfigError, match="goal_tolerance"):
        SupervisorConfig(goal_tolerance=-1.0)


# --- latent streams -------------------------------------------------------------------

def z(value: float) -> np.ndarray:
    return np.full(3, value, np.float32)


def test_history_window_takes_latents_one_model_step_apart():
    hist = LatentHistory(length=3, spacing=0.4)
    for i in range(12):  # a latent every 0.1 s, value = its stamp
        hist.add(i * 0.1, z(i * 0.1))
    window = hist.window()
    np.testing.assert_allclose(window[:, 0], [0.3, 0.7, 1.1], atol=1e-6)  # oldest first
    np.testing.assert_allclose(hist.window(stamp=0.9)[:, 0], [0.1, 0.5, 0.9], atol=1e-6)
    assert hist.window(stamp=0.95) is None  # no latent with that stamp


def test_history_repeats_the_oldest_latent_at_a_start_or_after_a_gap():
    hist = LatentHistory(length=3, spacing=0.4)
    hist.add(5.0, z(1.0))
    np.testing.assert_allclose(hist.window()[:, 0], [1, 1, 1])
    hist.add(5.4, z(2.0))
    np.testing.assert_allclose(hist.window()[:, 0], [1, 1, 2])
    hist.add(9.0, z(3.0))  # after a 3.6 s gap, nothing is 0.4 s back
    np.testing.assert_allclose(hist.window()[:, 0], [3, 3, 3])


def test_history_restarts_when_the_clock_goes_back_and_forgets_old_latents():
    hist = LatentHistory(length=2, spacing=0.4)
    for i in range(100):
        hist.add(i * 0.1, z(i))
    assert len(hist) < 30
    hist.add(0.0, z(-1))
    assert len(hist) == 1 and hist.latest()[0] == 0.0


def test_surprise_compares_the_forecast_made_one_step_ago_with_the_observation():
    tracker = ForecastTracker(step=0.4, tolerance=0.05)
    assert tracker.surprise(1.0, z(0)) is None
    tracker.add(0.6, np.stack([z(1.0), z(2.0)]))  # from t=0.6: z(1) expected at 1.0, z(2) at 1.4
    assert tracker.surprise(1.0, z(1.0)) == pytest.approx(0.0)
    assert tracker.surprise(1.0, z(2.0)) == pytest.approx(np.sqrt(3))
    assert tracker.surprise(1.4, z(2.0), steps=2) == pytest.approx(0.0)
    assert tracker.surprise(1.2, z(1.0)) is None  # no forecast made 0.4 s before 1.2


def test_resolve_bundle_names_the_shipped_bundles_when_one_is_unknown(tmp_path):
    assert resolve_bundle(str(tmp_path)) == tmp_path
    with pytest.raises(BundleError, match="no model bundle 'nope'"):
        resolve_bundle("nope")
    with pytest.raises(BundleError, match="no model bundle given"):
        resolve_bundle("")


def test_latents_of_another_model_or_shape_are_refused_with_the_reason():
    spec = types.SimpleNamespace(model_id="two_rooms-1", latent_dim=3)
    assert latent_problem(spec, "two_rooms-1", [3], 3) == ""
    assert "model id 'other'" in latent_problem(spec, "other", [3], 3)
    assert "[3]" in latent_problem(spec, "two_rooms-1", [4], 4)
    assert "with 2 values" in latent_problem(spec, "two_rooms-1", [3], 2)


def test_an_exploration_lease_replaces_planning_under_the_same_safety_rules():
    sup = supervisor()
    sup.set_explore(True, wall_now=100.0)
    d = sup.on_latent(FAR, 1.0, 1.0, 100.0)
    assert d.status == Status.EXPLORING and d.cause == Cause.EXPLORING and not d.plan and not d.hold
    assert sup.watchdog(1.1, 100.1) is None  # exploring on fresh latents: nothing to stop
    assert sup.watchdog(2.0, 101.0).cause == Cause.STALE  # a stale latent stops exploring too
    sup.set_estop(True)
    assert sup.on_latent(FAR, 2.1, 2.1, 101.1).cause == Cause.ESTOP  # the e-stop wins
    sup.set_estop(False)
    # A plan that finishes while exploring is not executed.
    assert sup.on_plan(0.05, sup.goal_version, 2.2, 101.2) is None
    # The lease ends explore_lease s after its last renewal; then the goal is pursued again.
    sup.set_explore(True, wall_now=101.5)
    assert sup.on_latent(FAR, 2.5 + CFG.explore_lease - 0.6, 2.5 + CFG.explore_lease - 0.6,
                         101.5 + CFG.explore_lease - 0.1).status == Status.EXPLORING
    assert sup.on_latent(FAR, 2.6 + CFG.explore_lease, 2.6 + CFG.explore_lease,
                         101.6 + CFG.explore_lease).status == Status.PLANNING
    sup.set_explore(True, wall_now=200.0)
    sup.set_explore(False, wall_now=200.1)  # ended at once
    assert sup.on_latent(FAR, 100.0, 100.0, 200.2).status == Status.PLANNING


def test_exploring_needs_no_goal():
    sup = supervisor(goal=None)
    sup.set_explore(True, wall_now=100.0)
    assert sup.on_latent(FAR, 1.0, 1.0, 100.0).status == Status.EXPLORING
    assert sup.watchdog(2.0, 101.0).cause == Cause.STALE
