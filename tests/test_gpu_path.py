"""The GPU path's pieces on the CPU (unit): IO binding (perception/bound.py), the device planner
(control/device_planner.py) on torch CPU tensors, and `bench gpu`'s CPU path. The same code on CUDA
is checked by tests/test_gpu.py (gpu tier)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from jepa_pilot.common.paths import package_share
from jepa_pilot.control.device_planner import DevicePlanner, OrtDeviceRollout, TorchRollout
from jepa_pilot.control.planner import PlannerConfig
from jepa_pilot.perception.bound import BoundSession
from jepa_pilot.perception.engine import WorldModelEngine

pytestmark = pytest.mark.unit

BUNDLE = package_share() / "models" / "two_rooms"


@pytest.fixture(scope="module")
def engine():
    return WorldModelEngine(BUNDLE, providers=["cpu"], threads=1)


def inputs(spec, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((spec.history, spec.latent_dim)).astype(np.float32)
    a = rng.uniform(-1, 1, (n, spec.horizon * spec.frameskip, spec.action_dim)).astype(np.float32)
    return z, a


def test_a_bound_session_gives_what_a_plain_run_gives_and_checks_its_shapes(engine):
    spec = engine.spec
    session = ort.InferenceSession(str(BUNDLE / "rollout.onnx"), providers=["CPUExecutionProvider"])
    bound = BoundSession(session, {"z_hist": (8, spec.history, spec.latent_dim),
                                   "actions": (8, spec.horizon * spec.frameskip, spec.action_dim),
                                   "latents": (8, spec.horizon, spec.latent_dim)})
    for seed in (0, 1):  # new inputs each run: the buffers are updated in place
        z, a = inputs(spec, 8, seed)
        np.testing.assert_allclose(bound.run(z_hist=np.broadcast_to(z, (8, *z.shape)), actions=a),
                                   engine.rollout(z, a), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"actions: shape \(4, 40, 2\), the binding's is \(8, 40, 2\)"):
        bound.run(actions=a[:4])
    with pytest.raises(ValueError, match="no shape given for \\['latents'\\]"):
        BoundSession(session, {"z_hist": (1, 2, 32), "actions": (1, 40, 2)})


def test_device_rollouts_on_cpu_tensors_match_the_engine(engine):
    from jepa_pilot.world_model.finetune import load_world_model

    spec = engine.spec
    z, a = inputs(spec, 16)
    want = engine.rollout(z, a)
    session = ort.InferenceSession(str(BUNDLE / "rollout.onnx"), providers=["CPUExecutionProvider"])
    bound = OrtDeviceRollout(session, 16, spec.history, spec.latent_dim, spec.horizon, spec.frameskip,
                             spec.action_dim, "cpu")
    np.testing.assert_allclose(bound(torch.from_numpy(z), torch.from_numpy(a)).numpy(), want, rtol=1e-5, atol=1e-5)
    floor = TorchRollout(load_world_model(BUNDLE), spec.horizon)
    np.testing.assert_allclose(floor(torch.from_numpy(z), torch.from_numpy(a)).numpy(), want, rtol=1e-4, atol=1e-4)


class TorchPointMass:
    """tests/test_planner.py's PointMass on torch tensors, its batch fixed like a device rollout's."""

    horizon, frameskip, action_dim = 5, 4, 2

    def __call__(self, z_hist, actions):
        assert actions.shape == (128, 20, 2) and float(actions.abs().max()) <= 1.0
        path = z_hist[-1] + 0.05 * torch.cumsum(actions, dim=1)
        return path[:, self.frameskip - 1::self.frameskip]


@pytest.mark.parametrize("method", ["cem", "mppi"])
def test_the_device_planner_drives_a_toy_model_to_its_goal_and_shares_the_warm_start_rule(method):
    planner = DevicePlanner(TorchPointMass(), PlannerConfig(method=method, samples=128, elites=16, iterations=3,
                                                             seed=1), "cpu")
    goal, z = np.array([0.6, -0.4]), np.zeros(2)
    for step in range(40):
        plan = planner.plan(np.stack([z, z]), goal, periods=1.0)
        assert plan.actions.shape == (20, 2) and plan.latents.shape == (5, 2)
        assert plan.iterations == 3  # a control period after the previous plan (or frame, cold): all 3
        z = z + 0.05 * plan.actions[0]
    assert np.linalg.norm(z - goal) < 0.06, z
    assert planner.plan(np.stack([z, z]), goal, periods=1 / 3).iterations == 1
    planner.reset()
    assert planner.plan(np.stack([z, z]), goal, periods=1 / 3).iterations == 1  # cold: its share too


def test_bench_gpu_measures_the_cpu_path_and_says_why_cuda_paths_were_not(monkeypatch):
    from jepa_pilot.evaluation import gpu_bench

    monkeypatch.setattr(gpu_bench, "PLANS", {"default": {}})  # the 4096-sample plan costs seconds on a CPU
    out = gpu_bench.run(str(BUNDLE), calls=5)
    cpu = out["paths"]["ort_cpu"]
    assert cpu["provider"] == "CPUExecutionProvider" and cpu["encoder"]["ms_p50"] > 0
    assert cpu["rollout"]["N4096"]["ms_p50"] > cpu["rollout"]["N256"]["ms_p50"] > 0
    assert cpu["plan"]["default"]["ms_p50"] > 0 and cpu["plan"]["default"]["calls"] >= 5
    if not out["cuda"]["available"]:
        assert out["cuda"]["why"]
        for name in ("ort_cuda", "ort_cuda_bound_graph", "torch_cuda_graph"):
            assert out["paths"][name] == {"skipped": out["cuda"]["why"]}
        assert not any(t["measured"] for t in out["targets"].values())


def test_a_failed_measurement_is_recorded_where_it_happened_and_the_targets_are_judged_on_the_rest():
    from jepa_pilot.evaluation.gpu_bench import TARGETS, attempt, failures, targets

    def broken():
        raise RuntimeError("graph capture is not supported\n")

    out = {"paths": {"ort_cuda_bound_graph": {"encoder": {"ms_p50": 0.5}, "plan": {"default": {"ms_p50": 2.5},
                                                                                     "samples4096": attempt(broken)}},
                     "torch_cuda_graph": {"encoder": {"ms_p50": 0.4}, "plan": {}}}}
    assert attempt(lambda: {"ms_p50": 1.0}) == {"ms_p50": 1.0}
    assert failures(out) == [("paths ort_cuda_bound_graph plan samples4096",
                              "RuntimeError: graph capture is not supported")]
    judged = targets(out)
    assert judged["encoder_ort_over_floor"] == {"limit": TARGETS["encoder_ort_over_floor"], "value": 1.25, "met": True}
    assert judged["plan_default_ms"] == {"limit": 2.0, "value": 2.5, "met": False}
    assert judged["plan_samples4096_ms"] == {"limit": 5.0, "measured": False}


def test_a_graph_that_cannot_be_captured_falls_back_to_a_plain_session_and_says_why():
    from jepa_pilot.perception.bound import captured_or_plain

    built = []

    def build(graph: bool):
        built.append(graph)
        return {"graph": graph}

    def trial(session):
        if session["graph"]:
            raise RuntimeError("This session cannot use the graph capture feature\n")

    session, why = captured_or_plain(build, trial)
    assert session == {"graph": False} and built == [True, False]
    assert why == "no cuda graph (RuntimeError: This session cannot use the graph capture feature)"
    runs = []
    session, why = captured_or_plain(lambda graph: {"graph": graph}, runs.append, trials=3)
    assert session == {"graph": True} and why == "cuda graph" and len(runs) == 3
