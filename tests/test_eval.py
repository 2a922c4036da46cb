"""`jepa-pilot eval` and the one success definition (evaluation/metrics.py).

The closed-loop regression test runs a small fixed set of episodes whose
outcome with the shipped two_rooms bundle is known (seed 0, the first three
start/goal pairs, all across the wall): the latent planner reaches every goal
and random actions reach none. A model, planner or harness change that breaks
goal reaching fails it.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from jepa_pilot import sim
from jepa_pilot.cli.main import main
from jepa_pilot.evaluation.closed_loop import TrueKinematics, goal_pairs
from jepa_pilot.evaluation.metrics import GoalTracker, summarize

KEYS = {"success_rate", "episodes", "steps_to_goal_median", "decision_ms_median", "closest_distance_median"}


@pytest.mark.unit
def test_success_is_the_first_step_within_the_radius_and_ends_the_episode():
    env = sim.make("two_rooms")
    start, goal = np.array([-0.5, 0.0, 0, 0]), np.array([0.5, 0.0, 0, 0])
    tracker = GoalTracker(env, start, goal, success_radius=0.1, max_steps=50, control_period=0.1)
    assert not tracker.observe(1, [0.0, 0.0, 0, 0])
    assert not tracker.observe(2, [0.38, 0.0, 0, 0])         # 0.12 m: not yet
    assert tracker.observe(3, [0.45, 0.05, 0, 0])            # 0.07 m: reached
    tracker.observe(4, [-0.9, 0.0, 0, 0])                     # after the end: ignored
    record = tracker.record(planner_reached=False, decision_times=[0.01, 0.03, 0.02])
    assert (record.success, record.steps_to_goal, record.time_to_goal) == (True, 3, pytest.approx(0.3))
    assert record.closest_distance == pytest.approx(np.hypot(0.05, 0.05))
    assert record.decision_ms == pytest.approx(20.0)
    failed = GoalTracker(env, start, goal, 0.1, max_steps=2, control_period=0.1)
    failed.observe(1, [0.0, 0.0, 0, 0])
    assert failed.observe(2, [0.2, 0.0, 0, 0])                # budget spent
    summary = summarize([record, failed.record()])
    assert summary["success_rate"] == 0.5 and summary["steps_to_goal_median"] == 3
    assert summary["closest_distance_median"] == pytest.approx((np.hypot(0.05, 0.05) + 0.3) / 2)


@pytest.mark.unit
def test_success_of_an_arm_is_measured_at_the_fingertip():
    env = sim.make("reacher")
    start, goal = np.array([0.0, 0.0, 0, 0]), np.array([0.3, -0.2, 0, 0])
    tracker = GoalTracker(env, start, goal, success_radius=0.05, max_steps=10, control_period=0.1)
    near = goal + np.array([0.02, 0.0, 0, 0])   # 0.02 rad at the shoulder: the fingertip moves < 0.05 m
    assert tracker.observe(1, near)
    assert tracker.record().success


@pytest.mark.unit
def test_true_state_kinematics_stop_at_the_wall_and_pass_the_door():
    env = sim.make("two_rooms")
    model = TrueKinematics(env, horizon=10, frameskip=4)
    at = np.array([[-0.3, 0.6], [-0.3, 0.6]])                       # left room, above the door
    into_wall = model.rollout(at, np.tile([1.0, 0.0], (1, 40, 1)))  # 2 m to the right
    assert into_wall[0, -1, 0] < 0 and into_wall[0, -1, 1] == pytest.approx(0.6)
    door = np.array([[-0.3, env.config.door_y], [-0.3, env.config.door_y]])
    through = model.rollout(door, np.tile([1.0, 0.0], (1, 40, 1)))
    assert through[0, -1, 0] > 0.5                                  # through the door into the right room


@pytest.mark.sim
def test_eval_reaches_known_goals_and_reports_one_definition_for_every_policy(tmp_path):
    out = tmp_path / "eval.json"
    assert main(["eval", "--env", "two_rooms", "--episodes", "3", "--seed", "0", "--policies", "latent,random",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    pairs = goal_pairs(sim.make("two_rooms"), 3, 0)
    for name in ("latent", "random"):
        policy = result["policies"][name]
        assert KEYS <= set(policy) and policy["episodes"] == 3
        for record, (start, goal) in zip(policy["records"], pairs):
            assert np.allclose(record["start"], start) and np.allclose(record["goal"], goal)
            if record["success"]:     # the episode ends at the first step within the radius
                assert record["closest_distance"] < 0.1 and record["steps"] == record["steps_to_goal"]
            else:
                assert record["closest_distance"] >= 0.1 and record["steps"] == 200
    assert [r["success"] for r in result["policies"]["latent"]["records"]] == [True, True, True]
    assert [r["success"] for r in result["policies"]["random"]["records"]] == [False, False, False]
    assert result["policies"]["latent"]["decision_ms_median"] > 0


@pytest.mark.unit
def test_eval_refuses_unknown_policies(capsys):
    assert main(["eval", "--policies", "latent,telepathy"]) == 2
    assert "telepathy" in capsys.readouterr().out


@pytest.mark.ros
def test_the_ros_harness_drives_the_arm_and_scores_its_fingertip(tmp_path):
    """Through the graph, the arm is commanded on its joint topic and success is judged at the fingertip."""
    import os

    from jepa_pilot.cli.supervisor import Launcher
    from jepa_pilot.cli.up import child_environment
    from jepa_pilot.evaluation.rosgraph import run_goals, sim_graph

    env = sim.make("reacher")
    (start, goal), = goal_pairs(env, 1, seed=0)
    with open(tmp_path / "nodes.log", "w") as log, \
            Launcher(sim_graph("reacher", jepa=True), env=child_environment(os.environ), stream=log) as launcher:
        records, drawings, watcher = run_goals(env, [(start, goal)], max_steps=30, radius=0.05,
                                               alive=launcher.alive)
    record, = records
    end = drawings[0]["end_stamp"]
    begin = end - record.steps * env.config.control_period  # the reset: the tracker counts steps from it
    states = [s for t, s in watcher.states if begin + 1e-6 < t <= end + 1e-6]
    assert len(states) >= record.steps > 0
    moved = max(np.abs(s[:2] - states[0][:2]).max() for s in states)
    assert moved > 0.05, "the planner's joint commands should move the arm"
    fingertip = [env.goal_distance(s, goal) for s in states[:record.steps]]
    assert record.closest_distance == pytest.approx(min(fingertip + [env.goal_distance(start, goal)]))
    assert record.success == (record.closest_distance < 0.05)
