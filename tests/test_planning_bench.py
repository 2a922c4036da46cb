"""The planning benchmark: budgets parsed strictly, seeds summarised honestly, real episodes played."""
from __future__ import annotations

import pytest

from jepa_pilot import sim
from jepa_pilot.evaluation.closed_loop import LoopConfig, sim_planner_settings
from jepa_pilot.evaluation.planning_bench import across_seeds, parse_budgets, run_budgets, run_seeds


@pytest.mark.unit
def test_budgets_are_samples_times_iterations_and_bad_ones_say_why():
    assert parse_budgets("32x1, 256X3") == [(32, 1), (256, 3)]
    for bad, why in (("256", "SAMPLESxITERATIONS"), ("0x3", "at least 1"), ("", "no planning budgets")):
        with pytest.raises(ValueError, match=why):
            parse_budgets(bad)


@pytest.mark.unit
def test_across_seeds_reports_mean_spread_and_median_times():
    seeds = [{"episodes": 10, "success_rate": r, "time_to_goal_median_s": t, "decision_ms_median": d}
             for r, t, d in ((1.0, 3.0, 20.0), (0.9, 5.0, 22.0), (0.8, None, 30.0))]
    out = across_seeds(seeds)
    assert out["success_mean"] == pytest.approx(0.9) and (out["success_min"], out["success_max"]) == (0.8, 1.0)
    assert out["time_to_goal_median_s"] == 4.0 and out["decision_ms_median"] == 22.0
    assert out["seeds"] == 3 and out["episodes_per_seed"] == 10


@pytest.mark.sim
def test_seeds_and_budgets_play_real_episodes():
    planner, supervisor = sim_planner_settings()
    with sim.make("two_rooms") as env:
        out = run_seeds(env, ["shortest_path", "random"], [4, 5], LoopConfig(episodes=3, max_steps=60),
                        planner, supervisor)
        sweep = run_budgets(env, [(32, 1), (128, 2)], LoopConfig(episodes=2, seed=4), planner, supervisor)
    assert set(out["seeds"]) == {"4", "5"}
    assert out["policies"]["shortest_path"]["success_mean"] == 1.0  # the map's route always gets there
    assert out["policies"]["random"]["success_mean"] < 1.0  # 60 random steps do not cross the door every time
    assert [(b["samples"], b["iterations"], b["budget"], b["elites"]) for b in sweep] == [(32, 1, 32, 8), (128, 2, 256, 25)]
    assert all(b["episodes"] == 2 and b["decision_ms_median"] > 0 for b in sweep)
