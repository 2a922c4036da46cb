"""gpu tier: the GPU path on CUDA (skipped without a CUDA device; see tests/conftest.py). Parity
between the CPU and CUDA providers, IO binding with CUDA graphs, the device planner, `bench gpu`."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from jepa_pilot.common.paths import package_share
from jepa_pilot.control.planner import PlannerConfig
from jepa_pilot.evaluation.gpu_bench import cuda_status
from jepa_pilot.perception.engine import WorldModelEngine

pytestmark = pytest.mark.gpu

BUNDLE = package_share() / "models" / "two_rooms"


@pytest.fixture(scope="module")
def engines():
    status = cuda_status()
    if not status["available"]:
        pytest.skip(status["why"])
    return WorldModelEngine(BUNDLE, providers=["cpu"]), WorldModelEngine(BUNDLE, providers=["cuda"])


def test_cpu_and_cuda_providers_agree(engines):
    cpu, cuda = engines
    assert cuda.providers[0] == "CUDAExecutionProvider", cuda.providers
    rng = np.random.default_rng(0)
    frames = rng.random((4, 3, 64, 64), dtype=np.float32)
    np.testing.assert_allclose(cuda.encode_prepared(frames), cpu.encode_prepared(frames), rtol=1e-3, atol=1e-3)
    z = rng.standard_normal((2, 32)).astype(np.float32)
    a = rng.uniform(-1, 1, (256, 40, 2)).astype(np.float32)
    np.testing.assert_allclose(cuda.rollout(z, a), cpu.rollout(z, a), rtol=1e-3, atol=1e-3)


def test_the_cuda_engine_encodes_a_single_frame_by_a_captured_graph_from_any_thread(engines):
    """WorldModelEngine on CUDA encodes one frame through its IO-bound session, captured as a CUDA graph
    on its first runs and replayed after: each answer must be its own input's, also when frames come
    from several threads at once (the encoder node: camera frames, and goal images from a service)."""
    from concurrent.futures import ThreadPoolExecutor

    cpu, cuda = engines
    assert cuda.single_frame == "cuda graph", cuda.single_frame
    frames = np.random.default_rng(1).random((24, 1, 3, 64, 64), dtype=np.float32)
    want = [cpu.encode_prepared(frame) for frame in frames]
    for frame, w in zip(frames[:4], want):
        np.testing.assert_allclose(cuda.encode_prepared(frame), w, rtol=1e-3, atol=1e-3)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(cuda.encode_prepared, frames))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-3)
    assert not np.allclose(want[0], want[1], atol=1e-3)  # different frames, different latents


def test_the_device_planner_on_cuda_plans_like_the_cpu_planner(engines):
    import torch

    from jepa_pilot.control.device_planner import DevicePlanner, OrtDeviceRollout
    from jepa_pilot.control.planner import Planner
    from jepa_pilot.perception.bound import cuda_session

    cpu, _ = engines
    spec, config = cpu.spec, PlannerConfig(samples=1024, elites=64)
    rollout = OrtDeviceRollout(cuda_session(BUNDLE / "rollout.onnx", cuda_graph=True), config.samples, spec.history,
                               spec.latent_dim, spec.horizon, spec.frameskip, spec.action_dim, "cuda")
    rng = np.random.default_rng(2)
    z, goal = rng.standard_normal((2, 32)).astype(np.float32), rng.standard_normal(32).astype(np.float32)
    device = DevicePlanner(rollout, config, "cuda").plan(z, goal)
    host = Planner(cpu, config).plan(z, goal)
    assert torch.cuda.is_available() and device.actions.shape == host.actions.shape
    assert device.cost < device.goal_distance  # it found a way closer to the goal
    assert host.cost < host.goal_distance and device.cost <= 1.25 * host.cost + 1e-6, (device.cost, host.cost)


def test_the_planner_nodes_device_search_is_one_captured_graph_that_plans_as_the_step_by_step_search(engines):
    """search: device (nodes/planner_node.py) on an engine whose rollout ONNX Runtime put on CUDA: the
    whole search as one ONNX graph, captured, on the planner's own stream (the host waits only for
    the plan), plans as DevicePlanner does step by step with the host waiting for every rollout, and
    as the torch module it was exported from, captured whole (the benchmark's floor): same seed, same
    random numbers; cold, warm-started and one-iteration plans."""
    import torch

    from jepa_pilot.control.device_planner import DevicePlanner, OrtDeviceRollout, engine_planner
    from jepa_pilot.control.search_graph import GraphPlanner, SearchGraph, torch_runner
    from jepa_pilot.perception.bound import cuda_session
    from jepa_pilot.world_model.finetune import load_world_model

    _, cuda = engines
    spec, config = cuda.spec, PlannerConfig()
    planner = engine_planner(cuda, config, load_world_model)
    assert isinstance(planner, GraphPlanner) and planner.device.type == "cuda" and planner.captured == "cuda graph"
    assert planner.stream is not None and planner.stream != torch.cuda.current_stream()
    stepwise = DevicePlanner(OrtDeviceRollout(cuda_session(BUNDLE / "rollout.onnx"), config.samples, spec.history,
                                              spec.latent_dim, spec.horizon, spec.frameskip, spec.action_dim, "cuda"),
                             config, "cuda")
    floor = GraphPlanner(torch_runner(SearchGraph(load_world_model(BUNDLE).cuda().eval(), config),
                                      capture=True), config, spec, "cuda")
    rng = np.random.default_rng(3)
    for periods in (1.0, 1.0, 1 / 3, 1.0):
        z, goal = rng.standard_normal((2, 32)).astype(np.float32), rng.standard_normal(32).astype(np.float32)
        plan, want, module = planner.plan(z, goal, periods), stepwise.plan(z, goal, periods), floor.plan(z, goal, periods)
        assert plan.actions.shape == (40, 2) and plan.iterations == want.iterations == module.iterations
        for other in (want, module):
            np.testing.assert_allclose(plan.actions, other.actions, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(plan.latents, other.latents, rtol=1e-3, atol=1e-3)
            assert abs(plan.cost - other.cost) < 1e-3 * max(1.0, abs(other.cost))


def test_bench_gpu_measures_every_cuda_path(tmp_path, engines):
    out = tmp_path / "gpu.json"
    done = subprocess.run(["jepa-pilot", "bench", "gpu", "--repeats", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    for name in ("ort_cpu", "ort_cuda", "ort_cuda_bound_graph", "torch_cuda_graph"):
        path = result["paths"][name]
        assert "skipped" not in path and path["plan"]["default"]["ms_p50"] > 0, (name, path)
    assert result["dino_wm_reference"]["ms_p50"] > 0
    sessions = result["paths"]["ort_cuda_bound_graph"]["sessions"]
    assert sessions["encoder"] == sessions["rollout N256"] == sessions["search default"] == "cuda graph", sessions
    assert all("value" in t for t in result["targets"].values()), result["targets"]
