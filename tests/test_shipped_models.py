"""The shipped bundles in models/: they load, run, and their latents hold the robot's state."""
from __future__ import annotations

import numpy as np
import pytest

from jepa_pilot import sim
from jepa_pilot.common.paths import package_share
from jepa_pilot.perception.engine import WorldModelEngine
from jepa_pilot.world_model.probe import linear_probe_r2

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
    env = sim.make(spec.robot)
    assert tuple(env.action_names) == spec.action_names and env.config.control_period == spec.control_period
    z = engine.encode(env.reset(seed=0)[0].image)
    assert z.shape == (spec.latent_dim,) and np.isfinite(z).all()
    actions = np.random.default_rng(0).uniform(-1, 1, (8, spec.horizon * spec.frameskip, spec.action_dim))
    assert engine.rollout(np.stack([z] * spec.history), actions).shape == (8, spec.horizon, spec.latent_dim)


KNOWN_WEAK = {"reacher": "the shipped reacher latent encodes the upper arm but ignores the thin forearm "
                        "(fingertip probe R² ~0.7); see benchmarks/world_model.md"}


@pytest.mark.parametrize("bundle", [pytest.param(b, marks=pytest.mark.xfail(b.name in KNOWN_WEAK, strict=True,
                                                                         reason=KNOWN_WEAK.get(b.name, "")))
                                    for b in BUNDLES], ids=lambda p: p.name)
def test_latent_holds_the_task_position_on_fresh_frames(bundle):
    """A linear probe fitted on 200 fresh random states predicts the base / fingertip (x, y) of 200 others."""
    engine = WorldModelEngine(bundle, providers=("cpu",))
    env = sim.make(engine.spec.robot)
    rng = np.random.default_rng(2024)
    states = np.stack([env.sample_state(rng) for _ in range(400)])
    latents = engine.encode(np.stack([env.render_goal(s) for s in states]))
    targets = np.stack([env.task_position(s) for s in states])
    r2 = linear_probe_r2(latents[:200], targets[:200], latents[200:], targets[200:])
    assert r2 > 0.9, f"probe R² {r2:.3f} of the task position"


def test_closed_loop_eval_runs_every_direct_policy_on_the_same_pairs(tmp_path):
    import json

    from jepa_pilot.cli.main import main

    out = tmp_path / "eval.json"
    assert main(["eval", "--policies", "latent,true_state,random", "--episodes", "2", "--max-steps", "60",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["policies"]) == {"latent", "true_state", "random"}
    for result in report["policies"].values():
        assert len(result["episodes"]) == 2 and 0.0 <= result["success_rate"] <= 1.0
        assert all(e["steps"] <= 60 and e["closest"] >= 0 for e in result["episodes"])
