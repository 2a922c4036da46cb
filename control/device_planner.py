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
  bound to device tensors (perception/bound.py), optionally a CUDA graph;
* :class:`TorchRollout`: the same weights in PyTorch (world_model), the
  floor the GPU benchmark compares ONNX Runtime against.

torch is needed here only (the CPU path never imports this module).
"""
from __future__ import annotations

import numpy as np
import torch

from jepa_pilot.control.planner import Plan, PlannerConfig, WarmStart
from jepa_pilot.perception.bound import bind_tensors, on_cuda

__all__ = ["DevicePlanner", "OrtDeviceRollout", "TorchRollout", "engine_planner"]


class OrtDeviceRollout:
    """rollout.onnx run by ``session`` (on CUDA, or the CPU) on tensors of ``device``, batch ``samples``."""

    def __init__(self, session, samples: int, history: int, latent_dim: int, horizon: int, frameskip: int,
                 action_dim: int, device: str | torch.device) -> None:
        self.session, self.horizon, self.frameskip, self.action_dim = session, horizon, frameskip, action_dim
        zeros = lambda *shape: torch.zeros(shape, dtype=torch.float32, device=device)  # noqa: E731
        self.z, self.a = zeros(samples, history, latent_dim), zeros(samples, horizon * frameskip, action_dim)
        self.out = zeros(samples, horizon, latent_dim)
        self.binding = bind_tensors(session, {"z_hist": self.z, "actions": self.a, "latents": self.out})

    def __call__(self, z_hist: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The forecast, in a buffer the next call overwrites."""
        self.z.copy_(z_hist.expand_as(self.z))
        self.a.copy_(actions)
        if self.z.is_cuda:
            torch.cuda.synchronize(self.z.device)  # ONNX Runtime runs on a stream of its own
        self.session.run_with_iobinding(self.binding)
        return self.out


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
        """(N, H, D) forecasts, (D,) goal, (N, H, A) macro actions -> (N,) costs (Planner.costs)."""
        dist = torch.linalg.vector_norm(latents - goal, dim=-1)             # (N, H)
        cost = dist.min(dim=1).values + self.config.terminal_weight * dist[:, -1]
        if self.config.smoothness:
            cost = cost + self.config.smoothness * torch.diff(macro, dim=1).square().sum(dim=(1, 2))
        return cost

    @torch.no_grad()
    def plan(self, z_hist: np.ndarray, goal: np.ndarray, periods: float = 1.0) -> Plan:
        """Planner.plan, on the device: (K, D) latest latents and the (D,) goal in, the plan out."""
        cfg, lim, dev = self.config, self.config.action_limit, self.device
        z = torch.as_tensor(np.asarray(z_hist, np.float32), device=dev)       # (K, D)
        g = torch.as_tensor(np.asarray(goal, np.float32), device=dev)         # (D,)
        iterations = self.warm.begin(periods, cfg.iterations)
        mean, std = self.warm.mean.clone(), self.warm.std.clone()
        for _ in range(iterations):
            noise = torch.randn((cfg.samples, *self.shape), generator=self.gen, device=dev)
            macro = (mean + std * noise).clamp(-lim, lim)                     # (N, H, A)
            macro[0] = mean.clamp(-lim, lim)                                  # always try the current mean
            cost = self.costs(self.model(z, self.expand(macro)), g, macro)
            if cfg.method == "cem":
                elite = macro[torch.topk(cost, cfg.elites, largest=False).indices]
                mean, std = elite.mean(0), elite.std(0, unbiased=False).clamp_min(cfg.min_std)
            else:  # MPPI: exponentially weighted average of all samples
                w = torch.softmax(-(cost - cost.min()) / cfg.temperature, dim=0)
                mean = torch.einsum("n,nha->ha", w, macro)
                std = torch.einsum("n,nha->ha", w, (macro - mean) ** 2).sqrt().clamp_min(cfg.min_std)
        best = mean.clamp(-lim, lim)                                          # (H, A)
        batch = self.expand(best).expand(cfg.samples, -1, -1)                 # fixed N: the rollout's shape
        final = self.model(z, batch)[0]                                       # (H, D)
        self.warm.keep(best, std)
        cost = float(self.costs(final[None], g, best[None])[0])
        return Plan(actions=self.expand(best).cpu().numpy().astype(np.float64), latents=final.cpu().numpy(),
                    cost=cost, goal_distance=float(torch.linalg.vector_norm(z[-1] - g)), iterations=iterations)


def engine_planner(engine, config: PlannerConfig) -> DevicePlanner:
    """A DevicePlanner on a WorldModelEngine's rollout session, on the device that session runs on:
    CUDA (IO-bound to torch CUDA tensors) when ONNX Runtime placed it there, else the CPU (the same
    code on host tensors). Raises RuntimeError when the session is on CUDA and torch cannot use it."""
    session, spec = engine.sessions["rollout"], engine.spec
    device = "cuda" if on_cuda(session) else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("search: device needs torch with CUDA when the rollout runs on CUDA "
                           f"(torch {torch.__version__} sees no GPU); use search: host")
    rollout = OrtDeviceRollout(session, config.samples, spec.history, spec.latent_dim, spec.horizon,
                               spec.frameskip, spec.action_dim, device)
    return DevicePlanner(rollout, config, device)
