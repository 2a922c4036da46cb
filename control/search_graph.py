"""The whole search as one ONNX graph: a plan is one ONNX Runtime run, one CUDA graph replay.

control.device_planner.DevicePlanner keeps the search on the GPU but drives it
op by op from Python: each iteration is a dozen kernel launches around a
rollout, and on a model this small the launches, not the arithmetic, set the
time. Here the iterations are unrolled into one graph, built from the
bundle's own weights (world_model.finetune.load_world_model, checked against
its ONNX files) and the same step functions DevicePlanner runs
(``candidates``, ``search_costs``, ``update``):

    z_hist (K, D), goal (D,), mean (H, A), std (H, A),
    noise (I, N, H, A), active (I,)
        -> best (H, A), spread (H, A), latents (H, D), cost (1,)

``I`` is the configured iterations, ``N`` the samples. Iteration ``i`` updates
the mean and std only where ``active[i]`` is 1: a plan that may run fewer
iterations (control.planner.WarmStart spreads a search over the frames it has)
uses the same graph, so its shapes never change and ONNX Runtime captures it
once. The noise comes from the caller (torch's generator): a replayed graph
would repeat its own random numbers.

:class:`GraphPlanner` is the planner around it, with DevicePlanner's API and
warm start. The graph is exported once per model and search settings and kept
in ``~/.cache/jepa_pilot/search`` (export takes seconds: done at configure).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort
import torch
from torch import nn
from torch.nn import functional as F

from jepa_pilot.control.device_planner import candidates, search_costs, update
from jepa_pilot.control.planner import Plan, PlannerConfig, WarmStart
from jepa_pilot.perception.bound import bind_tensors, captured_or_plain, cuda_session, queued_run

__all__ = ["HeldRollout", "SearchGraph", "GraphPlanner", "export_search", "graph_planner", "ort_runner", "torch_runner", "CACHE"]

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jepa_pilot" / "search"
# Bumped when SearchGraph computes the same search another way: cached graphs of an older form are
# then exported again, not reused.
FORM = 2
INPUTS = ("z_hist", "goal", "mean", "std", "noise", "active")
OUTPUTS = ("best", "spread", "latents", "cost")


class HeldRollout(nn.Module):
    """The world model's rollout of macro actions, each held for S model substeps, rewritten so a model
    step is few kernels (on a model this small a GPU's time per step is its kernel count):

    * an action held S substeps meets the S action blocks of the predictor's first layer: their
      weights are summed once, so a step reads A action inputs, not S * A;
    * every layer is one matrix product, no bias add (ONNX Runtime's CUDA Gemm writes a bias into
      its output with a cuBLAS call of its own): the biases ride in homogeneous coordinates, a
      constant input column and one extra unit per hidden layer that stays constant through its
      activation;
    * the history is a list of latents, joined with the action once per step.

    Same function as ``model.rollout`` (WorldModel over its MLP Predictor), to float rounding:
    ``(K, D)`` or ``(N, K, D)`` latents, ``(N, H, A)`` macro actions -> ``(N, H, D)``."""

    def __init__(self, model) -> None:
        super().__init__()
        cfg, layers = model.cfg, list(model.predictor.mlp)
        linears, self.acts = layers[0::2], nn.ModuleList(layers[1::2])
        if not all(isinstance(m, nn.Linear) and m.bias is not None for m in linears) or len(self.acts) != len(linears) - 1:
            raise TypeError(f"HeldRollout needs the MLP predictor (Linear, activation, ..., Linear), not {layers}")
        self.history, k = cfg.history, cfg.history * cfg.latent_dim
        with torch.no_grad():
            first = linears[0].weight                                                      # (W, K*D + S*A)
            held = first[:, k:].reshape(len(first), cfg.frameskip, cfg.action_dim).sum(1)  # (W, A)
            weights, unit, folded = [torch.cat([first[:, :k], held], 1)] + [m.weight for m in linears[1:]], 1.0, []
            for i, (w, m) in enumerate(zip(weights, linears)):
                w = torch.cat([w, (m.bias / unit)[:, None]], 1)                 # (out, in + 1): the bias
                if i < len(self.acts):  # one more unit, pre-activation 1, constant through the activation
                    w = torch.cat([w, F.one_hot(torch.tensor([w.shape[1] - 1]), w.shape[1]).to(w) / unit])
                    unit = float(self.acts[i](torch.ones(1)))
                    if not abs(unit) > 1e-3:
                        raise TypeError(f"HeldRollout: the activation {self.acts[i]} maps 1 to {unit}")
                folded.append(nn.Parameter(w.T.contiguous(), requires_grad=False))  # (in + 1, out [+ 1])
        self.weights = nn.ParameterList(folded)

    def forward(self, z_hist: torch.Tensor, macro: torch.Tensor) -> torch.Tensor:
        n = macro.shape[0]
        window = list(z_hist.expand(n, *z_hist.shape[-2:]).unbind(1))       # K x (N, D), oldest first
        one, out, (*hidden, last) = macro.new_ones(n, 1), [], self.weights
        for action in macro.unbind(1):                                      # (N, A), held S substeps
            x = torch.cat([*window[-self.history:], action, one], 1)        # (N, K*D + A + 1)
            for w, act in zip(hidden, self.acts):
                x = act(x @ w)                                              # (N, W + 1), the last unit constant
            window.append(window[-1] + x @ last)                            # (N, D): a residual step
            out.append(window[-1])
        return torch.stack(out, 1)                                          # (N, H, D)


class SearchGraph(nn.Module):
    """``config.iterations`` search steps and the chosen plan's forecast, over a WorldModel."""

    def __init__(self, model, config: PlannerConfig) -> None:
        super().__init__()
        self.rollout, self.config = HeldRollout(model), config

    def forward(self, z_hist, goal, mean, std, noise, active):
        limit = self.config.action_limit
        for i in range(noise.shape[0]):
            macro = candidates(mean, std, noise[i], limit)                        # (N, H, A)
            cost = search_costs(self.rollout(z_hist, macro), goal, macro, self.config)  # (N,)
            new_mean, new_std = update(macro, cost, self.config)                  # (H, A) each
            on = active[i] > 0.5
            mean, std = torch.where(on, new_mean, mean), torch.where(on, new_std, std)
        best = mean.clamp(-limit, limit)                                          # (H, A)
        latents = self.rollout(z_hist, best[None])                                # (1, H, D)
        return best, std, latents[0], search_costs(latents, goal, best[None], self.config)


def _key(model_id: str, horizon: int, config: PlannerConfig) -> str:
    search = {k: v for k, v in config.to_dict().items() if k not in ("init_std", "seed")}  # not in the graph
    return hashlib.sha256(json.dumps([FORM, model_id, horizon, search], sort_keys=True).encode()).hexdigest()[:16]


def export_search(bundle, config: PlannerConfig, load_model: Callable, cache: Path = CACHE) -> Path:
    """The bundle's search graph for ``config``: from the cache, else exported there (atomically, so
    concurrent nodes never read half a file) from ``load_model(bundle.root)``, the bundle's torch
    WorldModel (world_model.finetune.load_world_model: its weights read back from the bundle's ONNX
    files and checked against them; passed in, as control does not depend on training code)."""
    spec = bundle.spec
    path = cache / f"{spec.model_id}-{_key(spec.model_id, spec.horizon, config)}.onnx"
    if path.exists():
        return path
    model = load_model(bundle.root).eval()
    graph = SearchGraph(model, config).eval()
    inputs = (torch.zeros(spec.history, spec.latent_dim), torch.zeros(spec.latent_dim),
              torch.zeros(spec.horizon, spec.action_dim), torch.ones(spec.horizon, spec.action_dim),
              torch.zeros(config.iterations, config.samples, spec.horizon, spec.action_dim),
              torch.ones(config.iterations))
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        staged = Path(tmp) / path.name
        with torch.no_grad():
            torch.onnx.export(graph, inputs, str(staged), dynamo=True, external_data=False, verbose=False,
                              input_names=list(INPUTS), output_names=list(OUTPUTS))
        os.replace(staged, path)
    return path


def ort_runner(session, stream=None):
    """The exported graph in ``session``, bound to a GraphPlanner's buffers. With ``stream`` (the
    session computes on it: cuda_session(stream=)) the run is queued there and the host does not
    wait; without, it waits for the inputs first (ONNX Runtime runs on a stream of its own)."""
    def make(buffers: dict) -> Callable[[], None]:
        binding = bind_tensors(session, buffers)
        if stream is not None:
            options = queued_run()
            return lambda: session.run_with_iobinding(binding, options)

        def run() -> None:
            if buffers["mean"].is_cuda:
                torch.cuda.synchronize(buffers["mean"].device)
            session.run_with_iobinding(binding)
        return run
    return make


def torch_runner(graph: SearchGraph, capture: bool = False):
    """The SearchGraph module itself on the buffers' device (what the export is checked against),
    optionally captured as one torch CUDA graph: the floor the GPU benchmark compares ONNX Runtime to."""
    def make(buffers: dict) -> Callable[[], None]:
        @torch.no_grad()
        def step() -> None:
            for name, out in zip(OUTPUTS, graph(*(buffers[n] for n in INPUTS))):
                buffers[name].copy_(out.reshape(buffers[name].shape))
        if not capture:
            return step
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(side)
        captured = torch.cuda.CUDAGraph()
        with torch.cuda.graph(captured):
            step()
        return captured.replay
    return make


class GraphPlanner:
    """DevicePlanner's search as one run of a SearchGraph (``make_run(buffers)`` binds it to this
    planner's tensors on ``device``: :func:`ort_runner`, :func:`torch_runner`); on ``stream`` if the
    run computes there, the host waiting only for the chosen plan."""

    def __init__(self, make_run: Callable[[dict], Callable[[], None]], config: PlannerConfig, spec,
                 device: str | torch.device = "cuda", stream=None) -> None:
        self.config, self.device, self.stream = config, torch.device(device), stream
        self.horizon, self.frameskip, self.action_dim = spec.horizon, spec.frameskip, spec.action_dim
        self.shape = (spec.horizon, spec.action_dim)  # macro actions (H, A)
        zeros = lambda *shape: torch.zeros(shape, dtype=torch.float32, device=self.device)  # noqa: E731
        i, n = config.iterations, config.samples
        self.buffers = {"z_hist": zeros(spec.history, spec.latent_dim), "goal": zeros(spec.latent_dim),
                        "mean": zeros(*self.shape), "std": zeros(*self.shape), "noise": zeros(i, n, *self.shape),
                        "active": zeros(i), "best": zeros(*self.shape), "spread": zeros(*self.shape),
                        "latents": zeros(spec.horizon, spec.latent_dim), "cost": zeros(1)}
        self.active = [torch.arange(i, device=self.device).lt(k).float() for k in range(i + 1)]  # k of I on
        self.gen = torch.Generator(device=self.device).manual_seed(config.seed)
        self.warm = WarmStart(spec.horizon, spec.frameskip, config.init_std * 0.5)
        self.captured = "no cuda graph (a plain session)"  # what graph_planner made of it
        self.reset()
        with torch.cuda.stream(stream):
            self.run = make_run(self.buffers)

    def reset(self) -> None:
        """Forget the previous plan (new goal, or the robot was moved)."""
        self.warm.reset(torch.zeros(self.shape, device=self.device),
                        torch.full(self.shape, self.config.init_std, device=self.device))

    def warm_up(self, trials: int = 3) -> None:
        """Plan ``trials`` times (ONNX Runtime captures its CUDA graph on these runs), then start
        afresh: the warm start forgotten and the random numbers from the seed again, so the first
        real plan is the one a planner that never warmed up would make."""
        z, goal = np.zeros(self.buffers["z_hist"].shape), np.zeros(self.buffers["goal"].shape)
        for _ in range(trials):
            self.plan(z, goal)
        self.reset()
        self.gen.manual_seed(self.config.seed)

    @torch.no_grad()
    def plan(self, z_hist: np.ndarray, goal: np.ndarray, periods: float = 1.0) -> Plan:
        """DevicePlanner.plan: (K, D) latest latents and the (D,) goal in, the plan out."""
        z, goal = np.asarray(z_hist, np.float32), np.asarray(goal, np.float32)
        with torch.cuda.stream(self.stream):
            b = self.buffers
            iterations = self.warm.begin(periods, self.config.iterations)
            b["z_hist"].copy_(torch.as_tensor(z))
            b["goal"].copy_(torch.as_tensor(goal))
            b["mean"].copy_(self.warm.mean)
            b["std"].copy_(self.warm.std)
            for i in range(iterations):  # one draw per iteration run, as DevicePlanner draws them
                b["noise"][i].normal_(generator=self.gen)  # (the inactive ones' noise is never used)
            b["active"].copy_(self.active[iterations])
            self.run()
            best, spread = b["best"].clone(), b["spread"].clone()
            self.warm.keep(best, spread)
            down = torch.cat([best.reshape(-1), b["latents"].reshape(-1), b["cost"]]).cpu().numpy()  # one copy
        (h, a), d = self.shape, b["latents"].shape[1]
        return Plan(actions=np.repeat(down[:h * a].reshape(h, a), self.frameskip, axis=0).astype(np.float64),
                    latents=down[h * a:h * a + h * d].reshape(h, d), cost=float(down[-1]), iterations=iterations,
                    goal_distance=float(np.linalg.norm(z[-1] - goal)))


def graph_planner(bundle, config: PlannerConfig, load_model: Callable, device: str = "cuda",
                  cache: Path = CACHE) -> GraphPlanner:
    """A GraphPlanner for ``bundle`` on ``device`` in ONNX Runtime (the graph: :func:`export_search`).
    On CUDA: a session of its own on a torch stream of its own, captured as a CUDA graph on three
    trial plans; where ONNX Runtime cannot capture it, a plain session on that stream (``captured``
    says which, and why). On the CPU: a CPU session."""
    path, spec = export_search(bundle, config, load_model, cache), bundle.spec
    if torch.device(device).type == "cpu":
        return GraphPlanner(ort_runner(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])),
                            config, spec, "cpu")
    stream = torch.cuda.Stream(device=device)

    def build(graph: bool) -> GraphPlanner:
        return GraphPlanner(ort_runner(cuda_session(path, graph, stream=stream), stream), config, spec, device, stream)

    planner, planner.captured = captured_or_plain(build, GraphPlanner.warm_up, trials=1)  # warm_up: 3 plans
    return planner
