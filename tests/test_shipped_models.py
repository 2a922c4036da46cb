"""The shipped bundles in models/: they load, run, and their latents hold the robot's state."""
from __future__ import annotations

import numpy as np
import pytest

from jepa_pilot import sim
from jepa_pilot.common.paths import package_share
from jepa_pilot.perception.engine import WorldModelEngine
from jepa_pilot.data.probe import linear_probe_r2
from jepa_pilot.sim.gym_env import is_gym

pytestmark = pytest.mark.sim

BUNDLES = sorted(p.parent for p in (package_share() / "models").glob("*/bundle.yaml"))


def test_the_default_bundle_ships():
    assert {b.name for b in BUNDLES} >= {"two_rooms", "reacher"}


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_bundle_loads_verifies_and_runs(bundle):
    engine = WorldModelEngine(bundle, providers=("cpu",))  # checks every sha256 and shape
    spec = engine.spec
    assert sum(f.stat().st_size for f in bundle.iterdir()) < 20 * 2**20
    assert spec.recipe and spec.metrics.get("eval"), "bundle.yaml should record its recipe and metrics"
    env = sim.make(spec.robot, control_period=spec.control_period)  # a gym env: its steps held as in the data
    assert tuple(env.action_names) == spec.action_names and env.control_period == pytest.approx(spec.control_period)
    z = engine.encode(env.reset(seed=0)[0].image)
    assert z.shape == (spec.latent_dim,) and np.isfinite(z).all()
    actions = np.random.default_rng(0).uniform(-1, 1, (8, spec.horizon * spec.frameskip, spec.action_dim))
    assert engine.rollout(np.stack([z] * spec.history), actions).shape == (8, spec.horizon, spec.latent_dim)


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_latent_holds_the_task_position_on_fresh_frames(bundle):
    """A linear probe fitted on 200 fresh random states predicts the base / fingertip (x, y) of 200 others."""
    engine = WorldModelEngine(bundle, providers=("cpu",))
    env = sim.make(engine.spec.robot)
    rng = np.random.default_rng(2024)
    states = np.stack([env.sample_state(rng) for _ in range(400)])
    latents = engine.encode(np.stack([env.render_goal(s) for s in states]))
    targets = np.stack([env.task_position(s) for s in states])
    r2 = linear_probe_r2(latents[:200], targets[:200], latents[200:], targets[200:])
    assert r2 >= 0.95, f"probe R² {r2:.3f} of the task position"


# How far a fresh, small evaluation may fall below what bundle.yaml records (eval-model --record, on 40-100
# held-out episodes): two_rooms records Spearman 0.49; reacher 0.06 (its latent follows the joint angles, and
# distance in joint space ranks the fingertip's distance poorly across the reach); 12 fresh episodes give more.
SPEARMAN_MARGIN = 0.1
# Rollout error over copy-last, k = 1..10: at most twice the recorded worst, and below 0.1 where that is
# lower (recorded: 0.014 two_rooms, 0.008 reacher, 0.16 PointMaze, whose ball moves fast between frames).
ROLLOUT_VS_COPY_LAST_MAX = 0.1


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_eval_model_on_fresh_episodes_stays_near_what_the_bundle_records(bundle, tmp_path):
    """eval-model's metrics on 12 freshly collected episodes: latent distance tracks true distance at least
    as well as recorded (minus a margin), rollouts beat copy-last tenfold, no latent dimension collapsed."""
    from jepa_pilot.data import Dataset
    from jepa_pilot.data.collect import CollectConfig, collect
    from jepa_pilot.cli.eval_model import env_geometry
    from jepa_pilot.evaluation.model_eval import evaluate, held_out_episodes

    engine = WorldModelEngine(bundle, providers=("cpu",))
    recorded = engine.spec.metrics["eval"]
    with sim.make(engine.spec.robot, control_period=engine.spec.control_period) as env:
        held = {"action_repeat": env.config.action_repeat} if is_gym(env.name) else {}  # as the data was collected
    collect(CollectConfig(env=engine.spec.robot, episodes=12, steps=50, seed=7, **held), tmp_path / "data",
            progress=False, log=lambda line: None)
    dataset = Dataset(tmp_path / "data")
    fit, held_out = held_out_episodes(dataset, engine.spec.recipe, trained_on=None)
    with env_geometry(engine.spec.robot) as geometry:  # what eval-model --record measured with
        report = evaluate(engine, dataset, held_out, fit, **geometry)
    floor = recorded["latent_vs_true_distance_spearman"] - SPEARMAN_MARGIN
    assert report["latent_vs_true_distance_spearman"] >= floor, (report["latent_vs_true_distance_spearman"], floor)
    ceiling = max(ROLLOUT_VS_COPY_LAST_MAX, 2 * max(recorded["rollout"]["ratio"]))
    assert max(report["rollout"]["ratio"]) < ceiling, (report["rollout"]["ratio"], ceiling)
    assert report["latent_std"]["collapsed_dims"] == recorded["latent_std"]["collapsed_dims"] == 0


SUCCESS_DISTANCE = 0.1  # m: the success definition of `jepa-pilot eval` (README, Benchmarks)


def test_closed_loop_eval_runs_every_direct_policy_on_the_same_pairs(tmp_path):
    import json

    from jepa_pilot.cli.main import main

    out = tmp_path / "eval.json"
    assert main(["eval", "--policies", "latent,true_state,random", "--episodes", "2", "--max-steps", "60",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["policies"]) == {"latent", "true_state", "random"}
    pairs = {name: [(r["start"], r["goal"]) for r in result["records"]] for name, result in report["policies"].items()}
    assert len(pairs["latent"]) == 2 and pairs["latent"] == pairs["true_state"] == pairs["random"]
    for result in report["policies"].values():
        records = result["records"]
        assert all(r["steps"] <= 60 for r in records)
        assert all(r["success"] == (r["closest_distance"] < SUCCESS_DISTANCE) for r in records), records
        assert result["success_rate"] == sum(r["success"] for r in records) / len(records)
    # The planner on the true position is the reference: it reaches both goals (seeded, deterministic).
    assert report["policies"]["true_state"]["success_rate"] == 1.0


def _bundle_named(name: str):
    found = [b for b in BUNDLES if b.name == name]
    return found[0] if found else pytest.skip(f"no shipped bundle {name}")


def test_the_shipped_cost_is_zero_at_the_goal_and_larger_behind_the_wall():
    """two_rooms' landmarks: a frame 1 m from the goal behind the wall costs more than one 1 m away in the
    open, and the goal frame itself costs (almost) nothing."""
    from jepa_pilot.control.landmarks import LandmarkGraph

    engine = WorldModelEngine(_bundle_named("two_rooms"), providers=("cpu",))
    graph = LandmarkGraph.of_bundle(engine.bundle)
    with sim.make("two_rooms") as env:
        goal, behind, open_ = ([x, y, 0.0, 0.0] for x, y in ((-0.5, -0.6), (0.5, -0.6), (-0.5, 0.4)))
        z = engine.encode(np.stack([env.render_goal(s) for s in (goal, behind, open_)]))
    cost = graph.to_goal(z[0])(z)
    assert cost[0] < 0.1 * cost[2] and cost[1] > cost[2], cost


# Known-good goal-image episodes of the shipped two-rooms (cross-room) and reacher bundles (env, seed of
# goal_pairs, episodes, planner settings beyond the planner node's): each reached its goal with the shipped
# model. A model or planner change that loses one of them fails here. The random door and the reacher run
# with the goal tolerance their benchmarks ran with (the random door: its latent_distance_at_5cm; the
# reacher: its calibrated goal_tolerance, both in their bundle.yaml).
REGRESSION_EPISODES = [("two_rooms", 2026, 4, {}), ("two_rooms_random_door", 2026, 4, {"goal_tolerance": 0.83}),
                       ("reacher", 2026, 4, {"goal_tolerance": 0.266})]


@pytest.mark.parametrize("env_name, seed, count, settings", REGRESSION_EPISODES)
def test_known_good_episodes_still_reach_their_goals(env_name, seed, count, settings):
    from jepa_pilot.evaluation.closed_loop import LoopConfig, goal_pairs, make_policy, run_episode, sim_planner_settings

    planner, supervisor = sim_planner_settings(seed=seed, **settings)
    cfg = LoopConfig(episodes=count, seed=seed)
    with sim.make(env_name) as env:
        policy = make_policy("latent", env, planner, supervisor, seed, bundle=_bundle_named(env_name).name)
        records = [run_episode(env, policy, start, goal, cfg) for start, goal in goal_pairs(env, count, seed)]
    assert all(r.success for r in records), [(r.closest_distance, r.notes) for r in records]
