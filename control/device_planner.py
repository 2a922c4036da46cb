"""The planner on a GPU: sampling, rollout, costs and the CEM / MPPI update on one device.

control.planner.Planner searches in NumPy around a rollout that takes and
returns host arrays: right on the CPU, where the model runs anyway. On a
GPU each iteration would copy N action sequences to the device and N
forecasts back. :class:`DevicePlanner` keeps all of it on the device
(torch): noise, candidate sequences, forecasts and costs; per plan only the
latent history goes up and the chosen plan comes down. Same PlannerConfig,
same cost and same warm start (control.planner.WarmStart) as Planner: the
same search, with other random numbers.

Its model is a *device rollout* of fixed batch N = ``samples``:
``model(z_hist (K, D), actions (N, H*S, A)) -> (N, H, D)``, torch tensors on
its device, with ``horizon``, ``frameskip`` and ``action_dim``:

* :class:`OrtDeviceRollout`: the bundle's rollout.onnx in ONNX Runtime,
  bound to device tensors (perception/bound.py); on CUDA (:func:`cuda_rollout`)
  a session of its own computing on the planner's torch stream, captured as
  a CUDA graph: a plan queues every iteration without the host waiting,
  until the chosen plan comes down;
* :class:`TorchRollout`: the same weights in PyTorch (world_model), the
  floor the GPU benchmark compares ONNX Runtime against.

torch is needed here only (the CPU path never imports this module).
"""
from __future__ import annotations

import numpy as np
import torch

from jepa_pilot.control.planner import Plan, PlannerConfig, WarmStart
from jepa_pilot.perception.bound import bind_tensors, captured_or_plain, cuda_session, on_cuda, queued_run

__all__ = ["DevicePlanner", "OrtDeviceRollout", "TorchRollout", "candidates", "cuda_rollout", "engine_planner",
           "search_costs", "update"]


# One search step, on torch tensors: what DevicePlanner runs op by op and control.search_graph unrolls
# into one ONNX graph (Planner, in NumPy, is the same search).
def candidates(mean: torch.Tensor, std: torch.Tensor, noise: torch.Tensor, limit: float) -> torch.Tensor:
    """(H, A) mean and std, (N, H, A) unit noise -> (N, H, A) macro actions within the limit; the
    first is the current mean itself (always tried)."""
    macro = (mean + std * noise).clamp(-limit, limit)
    return torch.cat([mean.clamp(-limit, limit)[None], macro[1:]])


def search_costs(latents: torch.Tensor, goal: torch.Tensor, macro: torch.Tensor, config: PlannerConfig):
    """(N, H, D) forecasts, (D,) goal, (N, H, A) macro actions -> (N,) costs (Planner.costs)."""
    dist = torch.linalg.vector_norm(latents - goal, dim=-1)                 # (N, H)
    cost = dist.min(dim=1).values + config.terminal_weight * dist[:, -1]
    if config.smoothness:
        cost = cost + config.smoothness * torch.diff(macro, dim=1).square().sum(dim=(1, 2))
    return cost


def update(macro: torch.Tensor, cost: torch.Tensor, config: PlannerConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H, A) candidates and their (N,) costs -> the next (H, A) mean and std: CEM's elites, or
    MPPI's exponentially weighted average of all of them."""
    if config.method == "cem":
        elite = macro[torch.topk(cost, config.elites, largest=False).indices]
        return elite.mean(0), elite.std(0, unbiased=False).clamp_min(config.min_std)
    w = torch.softmax(-(cost - cost.min()) / config.temperature, dim=0)
    mean = torch.einsum("n,nha->ha", w, macro)
    return mean, torch.einsum("n,nha->ha", w, (macro - mean) ** 2).sqrt().clamp_min(config.min_std)


class OrtDeviceRollout:
    """rollout.onnx run by ``session`` (on CUDA, or the CPU) on tensors of ``device``, batch ``samples``.

    ``stream``: the torch stream ``session`` computes on (perception.bound.cuda_session(stream=)).
    Then a call queues its copies and the run on that stream, ordered after the caller's stream and
    before it by events, and the host never waits. Without one, ONNX Runtime runs on a stream of its
    own: the host waits for the copies before the run and for the run before returning."""

    def __init__(self, session, samples: int, history: int, latent_dim: int, horizon: int, frameskip: int,
                 action_dim: int, device: str | torch.device, stream=None) -> None:
        self.session, self.horizon, self.frameskip, self.action_dim = session, horizon, frameskip, action_dim
        zeros = lambda *shape: torch.zeros(shape, dtype=torch.float32, device=device)  # noqa: E731
        self.z, self.a = zeros(samples, history, latent_dim), zeros(samples, horizon * frameskip, action_dim)
        self.out = zeros(samples, horizon, latent_dim)
        self.binding = bind_tensors(session, {"z_hist": self.z, "actions": self.a, "latents": self.out})
        self.stream, self.options = stream, (queued_run() if stream is not None else None)
        self.captured = "no cuda graph (a plain session)"  # what cuda_rollout made of it

    def __call__(self, z_hist: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The forecast, in a buffer the next call overwrites."""
        if self.stream is None:
            self.z.copy_(z_hist.expand_as(self.z))
            self.a.copy_(actions)
            if self.z.is_cuda:
                torch.cuda.synchronize(self.z.device)  # ONNX Runtime runs on a stream of its own
            self.session.run_with_iobinding(self.binding)
            return self.out
        caller = torch.cuda.current_stream(self.z.device)
        self.stream.wait_stream(caller)
        with torch.cuda.stream(self.stream):
            self.z.copy_(z_hist.expand_as(self.z))
            self.a.copy_(actions)
            self.session.run_with_iobinding(self.binding, self.options)
        caller.wait_stream(self.stream)
        return self.out


def cuda_rollout(path, samples: int, history: int, latent_dim: int, horizon: int, frameskip: int,
                 action_dim: int, device_id: int = 0) -> OrtDeviceRollout:
    """rollout.onnx on CUDA for a DevicePlanner: a session of its own on a torch stream of its own,
    captured as a CUDA graph on three trial runs (its shapes and addresses never change); where ONNX
    Runtime cannot capture it, a plain session on that stream. ``captured`` says which, and why."""
    stream = torch.cuda.Stream(device=device_id)
    dims = (samples, history, latent_dim, horizon, frameskip, action_dim, f"cuda:{device_id}")
    z = torch.zeros(history, latent_dim, device=f"cuda:{device_id}")

    def build(graph: bool) -> OrtDeviceRollout:
        return OrtDeviceRollout(cuda_session(path, graph, device_id, stream), *dims, stream=stream)

    def trial(rollout: OrtDeviceRollout) -> None:
        rollout(z, torch.zeros_like(rollout.a))
        torch.cuda.synchronize(device_id)

    rollout, rollout.captured = captured_or_plain(build, trial)
    return rollout


class TorchRollout:
    """A world_model.WorldModel's rollout on (K, D) + (N, H*S, A) tensors."""

    def __init__(self, model, horizon: int) -> None:
        cfg = model.cfg
        self.model, self.horizon, self.frameskip, self.action_dim = model, horizon, cfg.frameskip, cfg.action_dim

    @torch.no_grad()
    def __call__(self, z_hist: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        n = actions.shape[0]
        chunks = actions.reshape(n, self.horizon, self.frameskip, self.action_dim)  # (N, H, S, A)
        return self.model.rollout(z_hist.expand(n, *z_hist.shape), chunks)


class DevicePlanner:
    """CEM or MPPI over macro actions on ``device``, warm-started from the previous plan."""

    def __init__(self, model, config: PlannerConfig | None = None, device: str | torch.device = "cuda") -> None:
        self.model, self.config, self.device = model, config or PlannerConfig(), torch.device(device)
        self.gen = torch.Generator(device=self.device).manual_seed(self.config.seed)
        self.shape = (model.horizon, model.action_dim)  # macro actions (H, A)
        self.warm = WarmStart(model.horizon, model.frameskip, self.config.init_std * 0.5)
        self.reset()

    def reset(self) -> None:
        """Forget the previous plan (new goal, or the robot was moved)."""
        self.warm.reset(torch.zeros(self.shape, device=self.device),
                        torch.full(self.shape, self.config.init_std, device=self.device))

    def expand(self, macro: torch.Tensor) -> torch.Tensor:
        """(..., H, A) -> (..., H*S, A), each macro action held for S control periods."""
        return torch.repeat_interleave(macro, self.model.frameskip, dim=-2)

    def costs(self, latents: torch.Tensor, goal: torch.Tensor, macro: torch.Tensor) -> torch.Tensor:
        return search_costs(latents, goal, macro, self.config)

    @torch.no_grad()
    def plan(self, z_hist: np.ndarray, goal: np.ndarray, periods: float = 1.0) -> Plan:
        """Planner.plan, on the device: (K, D) latest latents and the (D,) goal in, the plan out."""
        with torch.cuda.stream(getattr(self.model, "stream", None)):  # the rollout's, if it has one
            return self._plan(z_hist, goal, periods)

    def _plan(self, z_hist: np.ndarray, goal: np.ndarray, periods: float) -> Plan:
        cfg, lim, dev = self.config, self.config.action_limit, self.device
        z = torch.as_tensor(np.asarray(z_hist, np.float32), device=dev)       # (K, D)
        g = torch.as_tensor(np.asarray(goal, np.float32), device=dev)         # (D,)
        iterations = self.warm.begin(periods, cfg.iterations)
        mean, std = self.warm.mean.clone(), self.warm.std.clone()
        for _ in range(iterations):
            noise = torch.randn((cfg.samples, *self.shape), generator=self.gen, device=dev)
            macro = candidates(mean, std, noise, lim)                        # (N, H, A)
            cost = self.costs(self.model(z, self.expand(macro)), g, macro)
            mean, std = update(macro, cost, cfg)
        best = mean.clamp(-lim, lim)                                          # (H, A)
        batch = self.expand(best).expand(cfg.samples, -1, -1)                 # fixed N: the rollout's shape
        final = self.model(z, batch)[0]                                       # (H, D)
        self.warm.keep(best, std)
        cost = float(self.costs(final[None], g, best[None])[0])
        # .copy(): on the CPU .cpu() is the rollout's own buffer, which the next plan overwrites
        return Plan(actions=self.expand(best).cpu().numpy().astype(np.float64), latents=final.cpu().numpy().copy(),
                    cost=cost, goal_distance=float(torch.linalg.vector_norm(z[-1] - g)), iterations=iterations)


def engine_planner(engine, config: PlannerConfig, load_model):
    """The planner node's ``search: device`` for a WorldModelEngine, on the device ONNX Runtime placed
    its rollout on. On CUDA: the whole search as one graph (control.search_graph.graph_planner: its
    own session on the planner's stream, a CUDA graph where ONNX Runtime can capture it); on the CPU:
    this DevicePlanner around the engine's own rollout session, bound to host tensors. Raises
    RuntimeError when the rollout is on CUDA and torch cannot use it. ``load_model``: the bundle's
    torch WorldModel from its folder, for the export (world_model.finetune.load_world_model)."""
    session, spec = engine.sessions["rollout"], engine.spec
    if not on_cuda(session):
        dims = (config.samples, spec.history, spec.latent_dim, spec.horizon, spec.frameskip, spec.action_dim)
        return DevicePlanner(OrtDeviceRollout(session, *dims, "cpu"), config, "cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("search: device needs torch with CUDA when the rollout runs on CUDA "
                           f"(torch {torch.__version__} sees no GPU); use search: host")
    from jepa_pilot.control.search_graph import graph_planner

    return graph_planner(engine.bundle, config, load_model, "cuda")
