"""The adaptation benchmark: phase summaries, series, recovery, the phases driven against a fake graph on a
fake clock, the JSON's shape and the plot (unit); a short `jepa-pilot eval-adapt` through the real graph (ros)."""
from __future__ import annotations

import json
import re
import signal
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

from jepa_pilot.cli.main import main
from jepa_pilot.evaluation.adapt import (MEASURED, PHASES, AdaptConfig, AdaptRun, phase_summary, plot, recovery,
                                         rolling_mean, settings, summary_line, surprise_series, update_events)
from jepa_pilot.evaluation.metrics import EpisodeRecord

GOAL_S = 6.0  # wall and sim seconds per goal of the fake graph
PHASE_KEYS = {"success_rate", "surprise_median", "minutes_of_live_data", "updates_accepted", "last_verdict",
              "episodes", "records", "wall_minutes", "minutes_exploring", "command_period_ms_p50",
              "command_period_ms_p99", "missed_periods"}


def record(success: bool) -> EpisodeRecord:
    return EpisodeRecord(success=success, steps_to_goal=40 if success else None, time_to_goal=4.0 if success else None,
                         final_distance=0.05 if success else 0.8, closest_distance=0.05 if success else 0.5,
                         steps=40 if success else 200)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeGraph:
    """What AdaptRun uses of a GraphWatcher. Each goal takes GOAL_S of wall and sim time; the robot reaches
    every goal until the change and, after it, only once the trainer's update (announced ``accept_after``
    goals after the change; None: never) is swapped in; surprise is 5 meanwhile, else 1."""

    def __init__(self, clock: Clock, accept_after: int | None, explore_end: int | None = 4) -> None:
        self.clock, self.accept_after, self.explore_end = clock, accept_after, explore_end
        self.explore_until = None  # explore_end None: the exploration ends 25 s after the learning phase
        self.env = SimpleNamespace(config=SimpleNamespace(control_period=0.1))
        self.commands: list = []  # (wall, moving): a command every 0.1 s while driving, one gap of 0.3 s per goal
        self.sim_time, self.changed, self.goals_since_change = 50.0, {}, 0
        self.surprises: list = []
        self.models_seen = {"base": (clock(), self.sim_time)}
        self.updates: list = []
        self.explore: list = []  # the trainer asks for exploration from the 2nd to the 4th goal after the change
        self.diagnostics = {"trainer": {"accepted": "0", "last_verdict": "no fine-tune yet", "buffer_steps": "0"}}

    def set_parameters(self, node: str, **values) -> None:
        assert node == "sim"
        self.changed = values

    def forget(self, before: float) -> None:
        pass

    def spin_until(self, done, timeout: float, alive) -> bool:
        """Wall time passes in 1 s steps; an exploration without its end ends 25 s after the first wait."""
        if self.explore_until is None:
            self.explore_until = self.clock.t + 25.0
        end = self.clock.t + timeout
        while not done() and self.clock.t < end:
            self.clock.t += 1.0
            if self.explore_end is None and self.clock.t >= self.explore_until and self.explore[-1][1]:
                self.explore.append((self.clock(), False))
        return done()

    def run_goal(self, start, goal, max_steps, radius, alive):
        begin = self.clock.t
        self.commands += [(begin + 0.1 * k, True) for k in range(1, 11)] + [(begin + 1.3, True)]
        self.commands += [(begin + 1.4, False)]  # the hold at the end does not count
        self.clock.t += GOAL_S
        self.sim_time += GOAL_S
        learned = "m1" in self.models_seen
        self.surprises.append((self.clock(), 5.0 if self.changed and not learned else 1.0))
        if self.changed:
            self.goals_since_change += 1
            if self.goals_since_change in (2, self.explore_end):
                self.explore.append((self.clock(), self.goals_since_change == 2))
            if self.goals_since_change == self.accept_after:
                self.updates.append((self.clock(), SimpleNamespace(model_id="m1", parent_id="base", reason="accepted")))
                self.models_seen["m1"] = (self.clock() + 1.0, self.sim_time + 1.0)
                self.diagnostics["trainer"] = {"accepted": "1", "last_verdict": "accepted: live 0.9 -> 0.1"}
        return record(not self.changed or learned), {}


def drive(name: str, accept_after: int | None, learn_minutes: float = 1.0,
          explore_end: int | None = 4) -> tuple[dict, list[str]]:
    clock, lines = Clock(), []
    graph = FakeGraph(clock, accept_after, explore_end)
    run = AdaptRun(name, AdaptConfig(goals=3, learn_minutes=learn_minutes), graph, alive=lambda: True,
                   progress=lines.append, clock=clock)
    pairs = [(np.zeros(4), np.ones(4))] * 3
    stream = iter(lambda: (np.zeros(4), np.ones(4)), None)  # endless
    return run.run(pairs, stream), lines


@pytest.mark.unit
def test_phase_summary_counts_the_phase_s_goals_and_the_surprises_received_during_it():
    surprises = [(9.0, 100.0), (10.0, 1.0), (11.0, 3.0), (12.0, 2.0), (20.0, 100.0)]
    out = phase_summary([record(True), record(True), record(False)], surprises, (10.0, 20.0), 1.23456,
                        {"accepted": "2", "last_verdict": "rejected: not better", "buffer_steps": "900"})
    assert out["success_rate"] == pytest.approx(2 / 3) and out["episodes"] == 3 and len(out["records"]) == 3
    assert out["surprise_median"] == 2.0 and out["surprises_received"] == 3  # [10, 20): not 9 or 20
    assert out["minutes_of_live_data"] == 1.2346 and out["updates_accepted"] == 2
    assert out["last_verdict"] == "rejected: not better" and out["trainer"]["buffer_steps"] == "900"
    empty = phase_summary([], surprises, (30.0, 40.0), -0.5, {})
    assert empty["success_rate"] is None and empty["surprise_median"] is None and empty["updates_accepted"] is None
    assert empty["minutes_of_live_data"] == 0.0 and empty["planner_reached_rate"] is None
    json.dumps(empty, allow_nan=False)


@pytest.mark.unit
def test_surprise_series_bins_by_wall_time_and_the_rolling_mean_trails():
    surprises = [(99.0, 9.0), (100.0, 1.0), (105.0, 3.0), (111.0, 4.0), (135.0, 8.0)]
    assert surprise_series(surprises, t0=100.0, bin_s=10.0) == [
        {"minute": round(5 / 60, 4), "median": 2.0, "count": 2},
        {"minute": round(15 / 60, 4), "median": 4.0, "count": 1},
        {"minute": round(35 / 60, 4), "median": 8.0, "count": 1}]
    assert rolling_mean([1.0, 0.0, 1.0, 1.0], window=2) == [1.0, 0.5, 0.5, 1.0]


@pytest.mark.unit
def test_recovery_counts_only_updates_after_the_change_that_were_swapped_in():
    change = {"wall": 100.0, "stamp": 500.0}
    updates = [{"wall": 90.0, "model_id": "early", "parent_id": "base", "reason": "a"},
               {"wall": 200.0, "model_id": "never", "parent_id": "early", "reason": "b"},
               {"wall": 300.0, "model_id": "m2", "parent_id": "early", "reason": "c"}]
    seen = {"early": (95.0, 495.0), "m2": (310.0, 740.0)}
    events = update_events(updates, seen, t0=40.0, change=change)
    assert [e["after_change"] for e in events] == [False, True, True]
    assert events[1]["swapped_minute"] is None and events[2]["swapped_minute"] == pytest.approx(4.5)
    assert events[2]["swapped_live_minutes"] == pytest.approx(4.0)
    assert events[0]["minute"] == pytest.approx(50 / 60, abs=1e-4)
    phases = {"before": {"success_rate": 0.9}, "after_learning": {"success_rate": 0.85}}
    assert recovery(phases, events) == {"recovery_minutes": pytest.approx(4.0), "success_recovered": True,
                                        "updates_after_change": 2}
    phases["after_learning"]["success_rate"] = 0.8
    assert recovery(phases, events[:2]) == {"recovery_minutes": None, "success_recovered": False,
                                            "updates_after_change": 1}


@pytest.mark.unit
def test_the_phases_run_in_order_and_learning_runs_its_minutes_with_the_update_swapped_in():
    result, lines = drive("rotation", accept_after=5)
    phases = result["phases"]
    assert list(phases) == list(PHASES) and result["change"]["parameters"] == {"action_rotation_deg": 90.0}
    assert [phases[p]["success_rate"] for p in MEASURED] == [1.0, 0.0, 1.0]
    assert phases["learning"]["episodes"] == 7  # until 1 min (10 goals) after the change; the update came at 5
    live = [phases[p]["minutes_of_live_data"] for p in PHASES]
    assert live == pytest.approx([0.0, 3 * GOAL_S / 60, 10 * GOAL_S / 60, 13 * GOAL_S / 60])
    assert [phases[p]["updates_accepted"] for p in MEASURED] == [0, 0, 1]
    assert phases["after_change"]["surprise_median"] == 5.0 and phases["after_learning"]["surprise_median"] == 1.0
    assert result["recovery_minutes"] == pytest.approx((5 * GOAL_S + 1.0) / 60, abs=1e-4)
    # Exploration from the 2nd to the 4th goal after the change: one goal's time in each of two phases.
    change = result["change"]["minute"]
    assert result["exploration"] == [pytest.approx([change + 2 * GOAL_S / 60, change + 4 * GOAL_S / 60], abs=1e-4)]
    # 10 driving periods of 0.1 s and one of 0.3 s per goal: one missed period per goal, one near the swap.
    assert result["updates"][0]["missed_periods_near_swap"] == 1
    assert result["updates"][0]["command_period_ms_max_near_swap"] == pytest.approx(300.0)
    assert phases["before"]["command_period_ms_p50"] == pytest.approx(100.0)
    assert [phases[p]["missed_periods"] for p in PHASES] == [phases[p]["episodes"] for p in PHASES]
    assert [phases[p]["minutes_exploring"] for p in PHASES] == pytest.approx([0.0, GOAL_S / 60, GOAL_S / 60, 0.0],
                                                                            abs=1e-3)
    assert result["success_recovered"] is True and result["expects_update"] is True
    assert len(result["series"]["goals"]) == 3 + 3 + 7 + 3
    assert any("update m1 swapped in" in line for line in lines)
    assert any(line.startswith("[rotation] after_change goal 3/3: missed, 0/3 so far; trainer:") for line in lines)


@pytest.mark.unit
def test_the_surprise_line_breaks_where_no_plan_was_executed():
    from jepa_pilot.evaluation.adapt import _broken_at_gaps

    minutes = [1 / 12, 3 / 12, 5 / 12, 25 / 12, 27 / 12]  # 10 s bins; none from 50 s to 4 min 10 s
    xs, ys = _broken_at_gaps([{"minute": m, "median": float(k)} for k, m in enumerate(minutes)])
    assert np.isnan(xs[3]) and np.isnan(ys[3]) and len(xs) == 6
    assert [y for y in ys if not np.isnan(y)] == [0.0, 1.0, 2.0, 3.0, 4.0]


@pytest.mark.unit
def test_after_learning_waits_for_the_exploration_to_end():
    result, lines = drive("rotation", accept_after=5, explore_end=None)  # still exploring when learning ends
    assert result["waited_for_exploration_s"] == pytest.approx(25.0)
    assert result["phases"]["after_learning"]["minutes_exploring"] == 0.0
    assert result["phases"]["after_learning"]["success_rate"] == 1.0
    assert any("waiting for the exploration to end" in line for line in lines)
    plain, _ = drive("rotation", accept_after=5)  # the exploration ended in the learning phase: no wait
    assert plain["waited_for_exploration_s"] == 0.0


@pytest.mark.unit
def test_without_an_update_learning_ends_after_learn_minutes_and_nothing_recovers():
    result, _ = drive("harmless", accept_after=None, learn_minutes=0.5)
    phases = result["phases"]
    assert phases["learning"]["episodes"] == 2  # 18 s after the change: 2 more goals reach 30 s
    assert result["updates"] == [] and result["recovery_minutes"] is None and result["success_recovered"] is False
    assert "none swapped in" in summary_line("harmless", result)


@pytest.mark.unit
def test_the_json_has_the_documented_shape_and_the_plot_is_a_png(tmp_path):
    cfg = AdaptConfig(goals=3)
    results = {"command": "jepa-pilot eval-adapt", "machine": {}, **settings(cfg, tmp_path, False, given=False),
               "scenarios": {"rotation": drive("rotation", 5)[0], "harmless": drive("harmless", None, 0.5)[0],
                             "gain": {"change": {"node": "sim", "parameters": {"action_gain": 0.5}},
                                      "error": "the graph stopped moving"}}}
    loaded = json.loads(json.dumps(results))
    assert {"command", "machine", "scenarios", "base_data"} <= set(loaded)
    assert "collector" in loaded["base_data"]["note"] and loaded["base_data"]["collect"]["episodes"] == 200
    for name in ("rotation", "harmless"):
        scenario = loaded["scenarios"][name]
        assert {"change", "phases", "updates", "series", "recovery_minutes"} <= set(scenario)
        assert all(PHASE_KEYS <= set(scenario["phases"][p]) for p in MEASURED)
        assert {"goals", "surprise"} <= set(scenario["series"])
    path = tmp_path / "adapt.png"
    plot(results, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.unit
@pytest.mark.parametrize("argv, message", [
    (["--scenarios", "rotation,teleport"], "unknown scenario(s) teleport; known: rotation, gain, harmless"),
    (["--goals", "0"], "AdaptConfig.goals = 0"),
    (["--learn-minutes", "0"], "AdaptConfig.learn_minutes = 0.0"),
    (["--base-data", "/nonexistent/base"], "not a dataset (no dataset.yaml)"),
])
def test_bad_options_are_refused_before_anything_starts(argv, message, capsys, tmp_path):
    assert main(["eval-adapt", "--out", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().out
    assert not any(tmp_path.iterdir())  # no base data collected, no graph started


@pytest.mark.unit
def test_help_explains_the_phases_and_the_outputs(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["eval-adapt", "--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0
    for word in ("before", "after_change", "learning", "after_learning", "rotation", "gain", "harmless",
                 "minutes_of_live_data", "recovery_minutes", "PNG", "--learn-minutes", "--update-every",
                 "--finetune-steps", "--base-data"):
        assert word in text, word


@pytest.mark.ros
def test_a_short_adaptation_run_through_the_graph(tmp_path):
    from jepa_pilot.data.collect import CollectConfig, collect

    base = tmp_path / "base"
    collect(CollectConfig(env="two_rooms", episodes=12, steps=50, seed=0), base, progress=False)
    out = tmp_path / "adapt.json"
    proc = subprocess.Popen(["jepa-pilot", "eval-adapt", "--scenarios", "harmless", "--goals", "2", "--learn-minutes",
                             "0.5", "--base-data", str(base), "--out", str(tmp_path / "work"), "--json", str(out),
                             "--baseline",
                             "--log", str(tmp_path / "nodes.log")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        printed, _ = proc.communicate(timeout=330)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # its launcher stops the nodes: none outlive the test
        printed, _ = proc.communicate(timeout=40)
    logs = printed[-4000:] + (tmp_path / "nodes.log").read_text()[-3000:]
    assert proc.returncode == 0 and out.exists(), logs
    result = json.loads(out.read_text())
    assert set(result["scenarios"]) == {"harmless"} and result["command"].startswith("jepa-pilot eval-adapt")
    scenario = result["scenarios"]["harmless"]
    assert scenario["change"]["parameters"] == {"light_scale": 1.1}
    phases = [scenario["phases"][p] for p in MEASURED]
    goals = scenario["series"]["goals"]
    for name, phase in zip(MEASURED, phases):
        assert PHASE_KEYS <= set(phase), phase.keys()
        outcomes = [g["success"] for g in goals if g["phase"] == name]
        assert phase["episodes"] == len(outcomes) == 2
        assert phase["success_rate"] == sum(outcomes) / 2  # the summary and the series tell the same story
        assert phase["surprise_median"] > 0.0  # the predictor forecast the plans and measured surprise
    accepted = [p["updates_accepted"] for p in phases]  # the trainer's count: it only grows, and holds
    assert accepted == sorted(accepted)  # every update announced after the change
    assert accepted[-1] >= sum(u["after_change"] for u in scenario["updates"])
    live = [p["minutes_of_live_data"] for p in phases]
    assert live[0] == 0.0 and live[0] < live[1] < live[2], live
    # The trainer's memory (its process group) was sampled after each goal; the robot was driven.
    memory = scenario["trainer_memory_mb"]
    assert len(memory) >= len(goals) and all(mb > 50.0 for _, mb in memory), memory
    assert any(p["command_period_ms_p50"] for p in phases)
    assert scenario["exploration"] == []  # a harmless change is no reason to explore
    # The predictor's surprise reached the trainer's drift monitor (counted only while the robot moved).
    drift = scenario["phases"]["after_learning"]["trainer"]["drift"]
    taken = re.search(r"taking the surprise reference \((\d+) of 300 samples\)", drift)
    assert (taken and int(taken.group(1)) > 0) or "x the reference" in drift, drift
    # The baseline: the same goals in a graph without the trainer, driven and measured the same way.
    baseline = result["baseline"]
    assert baseline["trainer"] is False and list(baseline["phases"]) == ["before"]
    assert baseline["phases"]["before"]["episodes"] == 2 and baseline["phases"]["before"]["command_period_ms_p50"]
    assert "baseline (no trainer)" in printed
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
