"""control/search_graph.py on the CPU (slow: each search graph is an ONNX export of seconds): the
whole search exported as one ONNX graph plans exactly as DevicePlanner does, step by step, with the
same random numbers: cold, warm-started and with fewer iterations; the module it is exported from
agrees; exports are cached per model and search settings. The same on CUDA: tests/test_gpu.py."""
from __future__ import annotations

import numpy as np
import pytest

from jepa_pilot.common.paths import package_share
from jepa_pilot.control.device_planner import engine_planner
from jepa_pilot.control.planner import PlannerConfig
from jepa_pilot.perception.engine import WorldModelEngine
from jepa_pilot.world_model.finetune import load_world_model

pytestmark = pytest.mark.slow

BUNDLE = package_share() / "models" / "two_rooms"


@pytest.fixture(scope="module")
def engine():
    return WorldModelEngine(BUNDLE, providers=["cpu"], threads=1)


def plans(planner, seed: int = 5):
    """Cold, warm-started and one-iteration plans towards random goals from random latents."""
    rng = np.random.default_rng(seed)
    out = []
    for periods in (1.0, 1.0, 1.0, 1 / 3, 1.0):
        z, goal = rng.standard_normal((2, 32)).astype(np.float32), rng.standard_normal(32).astype(np.float32)
        out.append(planner.plan(z, goal, periods))
    return out


@pytest.mark.parametrize("settings", [{}, {"method": "mppi", "samples": 128, "smoothness": 0.2, "terminal_weight": 0.5}],
                         ids=["cem", "mppi-smooth-terminal"])
def test_the_search_graph_plans_as_the_step_by_step_device_planner_does(engine, settings, tmp_path):
    from jepa_pilot.control.search_graph import GraphPlanner, SearchGraph, graph_planner, torch_runner

    config = PlannerConfig(**settings)
    graph = graph_planner(engine.bundle, config, load_world_model, "cpu", cache=tmp_path)
    module = GraphPlanner(torch_runner(SearchGraph(load_world_model(BUNDLE), config)), config,
                          engine.spec, "cpu")
    got, by_module, want = plans(graph), plans(module), plans(engine_planner(engine, config, load_world_model))
    assert [p.iterations for p in got] == [p.iterations for p in want] == [3, 3, 3, 1, 3]
    graph.warm_up()  # as graph_planner does on CUDA (the capture): afterwards it plans as a fresh planner
    again = plans(graph)
    for g, m, w, a in zip(got, by_module, want, again):
        assert g.actions.shape == (40, 2) and g.latents.shape == (10, 32)
        np.testing.assert_allclose(g.actions, w.actions, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(g.latents, w.latents, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose([g.cost, g.goal_distance], [w.cost, w.goal_distance], rtol=1e-5)
        np.testing.assert_allclose(m.actions, g.actions, rtol=1e-4, atol=1e-5)  # the export is its module
        np.testing.assert_array_equal(a.actions, g.actions)
    if not settings:  # the plain cost (the distance on the way) is comparable to where it starts
        assert got[0].cost < got[0].goal_distance  # it found a way closer to the goal


def test_search_graphs_are_cached_per_model_and_search_settings(engine, tmp_path):
    from jepa_pilot.control.search_graph import export_search

    export = lambda config: export_search(engine.bundle, config, load_world_model, tmp_path)  # noqa: E731
    first = export(PlannerConfig())
    stamp = first.stat().st_mtime_ns
    assert export(PlannerConfig(seed=7, init_std=0.5)) == first  # neither is in the graph
    assert first.stat().st_mtime_ns == stamp and first.name.startswith(engine.spec.model_id)
    other = export(PlannerConfig(elites=10))
    assert other != first and sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, other.name])


def test_the_held_rollout_is_the_models_rollout_of_held_actions():
    """The search graph's rollout (biases folded into homogeneous coordinates, the S copies of a held action
    summed into one weight block) computes what WorldModel.rollout computes on the expanded actions, from
    one shared history or one per sequence; a predictor it cannot rewrite is refused, not approximated."""
    import torch
    from torch import nn

    from jepa_pilot.control.search_graph import HeldRollout

    model = load_world_model(BUNDLE)
    held, (k, d), (s, a) = HeldRollout(model), (2, 32), (4, 2)
    gen = torch.Generator().manual_seed(3)
    z, macro = torch.randn(64, k, d, generator=gen), torch.rand(64, 10, a, generator=gen) * 2 - 1
    with torch.no_grad():
        want = model.rollout(z, macro[:, :, None].expand(64, 10, s, a))  # (N, H, D)
        np.testing.assert_allclose(held(z, macro), want, rtol=1e-4, atol=1e-5)
        shared = model.rollout(z[:1].expand(64, k, d), macro[:, :, None].expand(64, 10, s, a))
        np.testing.assert_allclose(held(z[0], macro), shared, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(held(z[0], macro), want)  # the history matters
    model.predictor.mlp[1] = nn.Sigmoid()  # still rewritable: any activation that keeps 1 away from 0
    with torch.no_grad():
        np.testing.assert_allclose(HeldRollout(model)(z, macro), model.rollout(z, macro[:, :, None].expand(64, 10, s, a)),
                                   rtol=1e-4, atol=1e-5)
    model.predictor.mlp[0].bias = None  # not the predictor it knows how to rewrite
    with pytest.raises(TypeError, match="MLP predictor"):
        HeldRollout(model)
