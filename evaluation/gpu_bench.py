"""`jepa-pilot bench gpu`: encoder, rollout and full-plan latency on every path this machine offers.

One run measures, for one bundle, each path where it runs and records why
not where it does not (no CUDA device, no onnxruntime-gpu):

* ``ort_cpu``: ONNX Runtime on the CPU, host arrays in and out, the NumPy
  planner (control.planner.Planner): what a robot without a GPU runs;
* ``ort_cuda``: the same engine's sessions on the CUDA provider, host
  arrays (each call uploads its inputs and downloads its outputs);
* ``ort_cuda_bound_graph``: IO binding on device buffers, captured as CUDA
  graphs (perception/bound.py; where ONNX Runtime cannot capture a graph,
  its plain CUDA session, and ``sessions`` says why). ``encoder``: the
  engine's single-frame encoder, as the encoder node runs it. ``plan``: as the
  planner node's ``search: device`` runs it, the whole search as one
  exported graph (control.search_graph.graph_planner: one run, one CUDA
  graph replay per plan); ``plan_op_by_op``: the same search driven from
  Python around the bound rollout (control.device_planner.DevicePlanner
  with a cuda_rollout), for comparison;
* ``torch_cuda_graph``: the same weights in PyTorch (read back from the
  ONNX files), captured as CUDA graphs: the floor. ``plan``: the search
  module the export is made from, captured whole; ``plan_op_by_op``:
  DevicePlanner around the captured rollout.

Measured per path: the encoder on one prepared frame, the rollout at
N = 256 and 4096 sequences, and a full plan (a cold plan: all iterations)
with the default PlannerConfig and with 4096 samples. On CUDA, a
DINO-WM-sized reference too: a 6-layer transformer predictor over 196
patch tokens x 384 dims, CEM with 300 samples x horizon 5 x 30 iterations,
bf16, in PyTorch (random weights: only its cost is measured).

Every number is the median wall time in ms of repeated calls after a
warm-up (a CUDA graph is captured then), each call ending with its result
on the host or the device synchronised. A measurement that fails (a graph
ONNX Runtime cannot capture, say) is recorded as ``{"failed": why}`` and
the others still run: one run shows every path it could measure.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from jepa_pilot.control.planner import Planner, PlannerConfig
from jepa_pilot.perception.engine import WorldModelEngine

__all__ = ["timed_ms", "attempt", "failures", "cuda_status", "targets", "run"]

ROLLOUT_N = (256, 4096)
PLANS = {"default": {}, "samples4096": {"samples": 4096}}
# What the GPU path should reach (README, Performance): ONNX Runtime's encoder against the PyTorch
# CUDA-graph floor, and a full plan on the bound path.
TARGETS = {"encoder_ort_over_floor": 1.3, "plan_default_ms": 2.0, "plan_samples4096_ms": 5.0}
DINO = dict(tokens=196, dim=384, layers=6, heads=6, samples=300, horizon=5, iterations=30, elites=30, action_dim=2)


def timed_ms(fn: Callable[[], object], calls: int, budget_s: float = 20.0) -> dict:
    """Median and p90 ms of ``fn()`` over ``calls`` calls (fewer when one call would overrun
    ``budget_s``; at least 5) after two warm-up calls."""
    fn()
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    calls = max(5, min(calls, int(budget_s / max(first, 1e-6))))
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    p50, p90 = np.percentile(times, [50, 90]) * 1e3
    return {"ms_p50": round(float(p50), 4), "ms_p90": round(float(p90), 4), "calls": calls}


def attempt(measure: Callable[[], dict]) -> dict:
    """``measure()``, or ``{"failed": "<exception>: <message>"}`` where it raised."""
    try:
        return measure()
    except Exception as exc:  # noqa: BLE001 - recorded in the JSON and printed, never hidden
        return {"failed": f"{type(exc).__name__}: {str(exc).strip()[:500]}"}


def failures(tree: dict, where: str = "") -> list[tuple[str, str]]:
    """Every ``{"failed": why}`` in a result, with where it is ("paths ort_cuda encoder")."""
    found = [(where, tree["failed"])] if "failed" in tree else []
    for key, value in tree.items():
        if isinstance(value, dict):
            found += failures(value, f"{where} {key}".strip())
    return found


def cuda_status() -> dict:
    """Whether the CUDA paths can run here: torch sees a CUDA device and ONNX Runtime has its CUDA
    provider; else why not."""
    import onnxruntime as ort

    try:
        import torch
    except ImportError:
        return {"available": False, "why": "torch is not installed"}
    if not torch.cuda.is_available():
        return {"available": False, "why": "no CUDA device (torch.cuda.is_available() is false)"}
    status = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "onnxruntime": ort.__version__}
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return {"available": False, "why": "ONNX Runtime has no CUDA provider (install onnxruntime-gpu: make setup "
                                           "GPU=1)", **status}
    return {"available": True, **status}


def _host_inputs(spec, rng):
    frame = rng.random((1, 3, spec.image_size, spec.image_size), dtype=np.float32)
    z = rng.standard_normal((spec.history, spec.latent_dim)).astype(np.float32)
    goal = rng.standard_normal(spec.latent_dim).astype(np.float32)
    actions = {n: rng.uniform(-1, 1, (n, spec.horizon * spec.frameskip, spec.action_dim)).astype(np.float32)
               for n in ROLLOUT_N}
    return frame, z, goal, actions


def _cold_plan(planner, z, goal) -> Callable[[], object]:
    def plan():
        planner.reset()
        return planner.plan(z, goal)
    return plan


def ort_path(engine: WorldModelEngine, spec, calls: int, rng) -> dict:
    """ONNX Runtime with host arrays and the NumPy planner, on whichever provider ``engine`` runs."""
    frame, z, goal, actions = _host_inputs(spec, rng)
    # The engine's plain encoder session: on CUDA the engine encodes a single frame through a bound one
    # (measured in cuda_paths).
    plain = engine.sessions["encoder"]
    out = {"provider": engine.providers[0], "encoder": timed_ms(lambda: plain.run(None, {"frames": frame}), calls),
           "rollout": {f"N{n}": timed_ms(lambda a=a: engine.rollout(z, a), calls) for n, a in actions.items()}}
    out["plan"] = {name: timed_ms(_cold_plan(Planner(engine, PlannerConfig(**cfg)), z, goal), calls)
                   for name, cfg in PLANS.items()}
    return out


def _graphed(fn, *static):
    """``fn(*static)`` captured as a CUDA graph: returns f(*args) that copies args into the static
    tensors, replays, and returns the static output."""
    import torch

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(3):
            fn(*static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        out = fn(*static)

    def replay(*args):
        for dst, src in zip(static, args):
            if dst.data_ptr() != src.data_ptr():
                dst.copy_(src)
        graph.replay()
        return out
    return replay


class _GraphedRollout:
    """A device rollout (control.device_planner) replayed from a CUDA graph of fixed shapes."""

    def __init__(self, rollout, z, actions) -> None:
        self.horizon, self.frameskip, self.action_dim = rollout.horizon, rollout.frameskip, rollout.action_dim
        self._replay = _graphed(rollout, z.clone(), actions.clone())

    def __call__(self, z_hist, actions):
        return self._replay(z_hist, actions)


def cuda_paths(engine: WorldModelEngine, spec, calls: int, rng) -> dict:
    """The bound + CUDA-graph ONNX Runtime path (as the planner node's ``search: device`` builds it) and
    the PyTorch CUDA-graph floor."""
    import torch

    from jepa_pilot.control.device_planner import DevicePlanner, TorchRollout, cuda_rollout
    from jepa_pilot.control.search_graph import GraphPlanner, SearchGraph, graph_planner, torch_runner
    from jepa_pilot.world_model.finetune import load_world_model

    frame, z, goal, actions = _host_inputs(spec, rng)
    sync = torch.cuda.synchronize
    bound = {"rollout": {}, "plan": {}, "sessions": {}}
    floor = {"rollout": {}, "plan": {}}
    model = load_world_model(engine.bundle.root).cuda().eval()

    def bound_encoder():  # the engine's single-frame encoder, as the encoder node runs it
        bound["sessions"]["encoder"] = engine.single_frame
        return timed_ms(lambda: engine.encode_prepared(frame), calls)

    def floor_encoder():
        x = torch.as_tensor(frame, device="cuda")
        encode = _graphed(model.encoder, x.clone())
        return timed_ms(lambda: (encode(x), sync()), calls)

    bound["encoder"], floor["encoder"] = attempt(bound_encoder), attempt(floor_encoder)

    zt = torch.as_tensor(z, device="cuda")
    dims = (spec.history, spec.latent_dim, spec.horizon, spec.frameskip, spec.action_dim)
    builders = {0: lambda n: cuda_rollout(engine.bundle.path("rollout"), n, *dims),
                1: lambda n: _GraphedRollout(TorchRollout(model, spec.horizon), zt,
                                             torch.zeros((n, spec.horizon * spec.frameskip, spec.action_dim),
                                                         device="cuda"))}
    built: dict[tuple[int, int], object] = {}

    def rollout(n: int, which: int):  # built once per (N, path), on first use
        if (n, which) not in built:
            built[n, which] = builders[which](n)
            if which == 0:
                bound["sessions"][f"rollout N{n}"] = built[n, which].captured
        return built[n, which]

    for n in ROLLOUT_N:
        at = torch.as_tensor(actions[n], device="cuda")
        for which, out in enumerate((bound, floor)):
            out["rollout"][f"N{n}"] = attempt(lambda: timed_ms(lambda r=rollout(n, which): (r(zt, at), sync()), calls))
    for out in (bound, floor):
        out["plan_op_by_op"] = {}
    for name, cfg in PLANS.items():
        config = PlannerConfig(**cfg)
        searches = (lambda: graph_planner(engine.bundle, config, load_world_model, "cuda"),
                    lambda: GraphPlanner(torch_runner(SearchGraph(model, config), capture=True), config,
                                         spec, "cuda"))
        for which, out in enumerate((bound, floor)):
            def fused(which=which):
                planner = searches[which]()
                if which == 0:
                    bound["sessions"][f"search {name}"] = planner.captured
                return timed_ms(_cold_plan(planner, z, goal), calls)
            out["plan"][name] = attempt(fused)
            out["plan_op_by_op"][name] = attempt(lambda: timed_ms(
                _cold_plan(DevicePlanner(rollout(config.samples, which), config, "cuda"), z, goal), calls))
    return {"ort_cuda_bound_graph": bound, "torch_cuda_graph": floor}


def dino_wm_reference(calls: int) -> dict:
    """CEM over a DINO-WM-sized predictor (random weights), bf16 on CUDA: ms per plan."""
    import torch
    from torch import nn

    d = DINO
    layer = nn.TransformerEncoderLayer(d["dim"], d["heads"], 4 * d["dim"], batch_first=True, norm_first=True)
    predictor = nn.TransformerEncoder(layer, d["layers"], enable_nested_tensor=False).cuda().eval()
    act = nn.Linear(d["action_dim"], d["dim"]).cuda()
    z0 = torch.randn(1, d["tokens"], d["dim"], device="cuda")
    goal = torch.randn(d["tokens"], d["dim"], device="cuda")

    @torch.no_grad()
    def plan():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            mean = torch.zeros(d["horizon"], d["action_dim"], device="cuda")
            std = torch.ones_like(mean)
            for _ in range(d["iterations"]):
                macro = (mean + std * torch.randn(d["samples"], *mean.shape, device="cuda")).clamp(-1, 1)
                z = z0.expand(d["samples"], -1, -1)
                cost = torch.zeros(d["samples"], device="cuda")
                for t in range(d["horizon"]):
                    z = predictor(z + act(macro[:, t])[:, None])               # (N, tokens, dim)
                    cost = cost + (z.float() - goal).square().mean(dim=(1, 2))
                elite = macro[torch.topk(cost, d["elites"], largest=False).indices]
                mean, std = elite.mean(0), elite.std(0).clamp_min(0.05)
        torch.cuda.synchronize()
        return mean

    return {"setting": dict(d), **timed_ms(plan, calls, budget_s=60.0)}


def targets(out: dict) -> dict:
    """Each of TARGETS measured against this run (ms_p50s), or ``measured: False``."""
    paths = out["paths"]
    bound, floor = paths.get("ort_cuda_bound_graph", {}), paths.get("torch_cuda_graph", {})

    def ms(path: dict, *keys: str) -> float | None:
        for key in keys:
            path = path.get(key, {})
        return path.get("ms_p50")

    encoder, encoder_floor = ms(bound, "encoder"), ms(floor, "encoder")
    values = {"encoder_ort_over_floor": encoder / encoder_floor if encoder and encoder_floor else None,
              "plan_default_ms": ms(bound, "plan", "default"),
              "plan_samples4096_ms": ms(bound, "plan", "samples4096")}
    return {name: {"limit": TARGETS[name], "measured": False} if value is None else
            {"limit": TARGETS[name], "value": round(value, 3), "met": value <= TARGETS[name]}
            for name, value in values.items()}


def run(bundle: str, calls: int = 50, seed: int = 0) -> dict:
    """Every path this machine offers, for ``bundle`` (a name in models/ or a path)."""
    from jepa_pilot.perception.latents import resolve_bundle

    rng = np.random.default_rng(seed)
    cpu = WorldModelEngine(resolve_bundle(bundle), providers=["cpu"])
    spec, cuda = cpu.spec, cuda_status()
    out = {"bundle": str(bundle), "model_id": spec.model_id, "cuda": cuda,
           "planner_default": PlannerConfig().to_dict(), "plans": PLANS,
           "paths": {"ort_cpu": ort_path(cpu, spec, calls, rng)}}
    if not cuda["available"]:
        for name in ("ort_cuda", "ort_cuda_bound_graph", "torch_cuda_graph"):
            out["paths"][name] = {"skipped": cuda["why"]}
        out["dino_wm_reference"] = {"skipped": cuda["why"]}
        out["targets"] = targets(out)
        return out
    gpu = WorldModelEngine(resolve_bundle(bundle), providers=["cuda"])
    out["paths"]["ort_cuda"] = attempt(lambda: ort_path(gpu, spec, calls, rng))
    out["paths"].update(cuda_paths(gpu, spec, calls, rng))
    out["dino_wm_reference"] = attempt(lambda: dino_wm_reference(max(5, calls // 10)))
    out["targets"] = targets(out)
    return out
