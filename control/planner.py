"""Sampling planners in latent space: CEM and MPPI over a small rollout protocol.

A planner needs only a model with ``rollout(z_hist, actions) -> latents``
(``RolloutModel``): the ONNX bundle engine in deployment, a toy model in
tests. Each call to ``plan`` searches action sequences whose forecast comes
close to the goal latent, returns the plan, and keeps it to warm-start the
next call (shifted by the one control period that will have been executed).

Plans are searched over *macro actions*, one per model step, each held for
``frameskip`` control periods: 10 model steps of 4 periods look 40 periods
ahead for the cost of 10 predictor steps. The cost of a sequence is the
smallest distance to the goal along it (reaching the goal on the way
counts; end-only costs stall at walls: docs/design.md), plus optional weight on
the final distance and a smoothness penalty on action changes. The distance
is the latent distance, or a ``GoalMetric``'s cost-to-go where one is given
(:class:`~jepa_pilot.control.landmarks.LandmarkGraph`: the way around walls).

Planning effort follows time, not calls: ``plan(..., periods)`` says how many
control periods passed since the previous plan. The warm start is shifted
by them (one macro step per ``frameskip`` periods), its spread is widened
back by their share of a period, and a warm-started search runs
``iterations`` per control period of them (at least one, at most
``iterations``): a camera at three times the control rate gets one
iteration per frame, the same search per second as three per period. A
cold plan (new goal, after a stop) always runs all ``iterations``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Protocol

import numpy as np

from jepa_pilot.common.config import Config, setting

__all__ = ["RolloutModel", "GoalMetric", "PlannerConfig", "Plan", "WarmStart", "Planner", "make_planner"]


class RolloutModel(Protocol):
    horizon: int        # model steps H the rollout returns
    frameskip: int      # control periods S per model step
    action_dim: int     # A

    def rollout(self, z_hist: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """(K, D) latest latents + (N, H*S, A) actions in [-1, 1] -> (N, H, D)."""


class GoalMetric(Protocol):
    def to_goal(self, goal: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """The cost-to-go towards ``goal`` (D,): (..., D) latents -> (...) costs, 0 at the goal."""


@dataclasses.dataclass(frozen=True)
class PlannerConfig(Config):
    method: str = setting("cem", "optimiser", choices=("cem", "mppi"))
    samples: int = setting(256, "action sequences evaluated per iteration", low=4, high=65536)
    iterations: int = setting(3, "optimiser iterations per control period (a cold plan runs them all; "
                              "a warm-started plan made sooner runs its share, at least one)", low=1, high=100)
    elites: int = setting(25, "CEM: best sequences the next distribution is fitted to", low=1, high=65536)
    temperature: float = setting(0.5, "MPPI: softmax temperature on (cost - min cost)", low=1e-6, high=1e6)
    init_std: float = setting(0.7, "initial std of the macro actions (normalised units)", low=0.01, high=2.0)
    min_std: float = setting(0.05, "std floor, so the search never freezes", low=0.0, high=2.0)
    terminal_weight: float = setting(0.0, "extra weight on the distance at the end of the plan", low=0.0)
    smoothness: float = setting(0.0, "weight on squared changes between consecutive macro actions", low=0.0)
    action_limit: float = setting(1.0, "|action| bound in normalised units (<= 1)", low=0.0, high=1.0)
    seed: int = setting(0, "random seed", low=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.elites > self.samples:
            self._fail("elites", self.elites, f"at most samples = {self.samples}")


@dataclasses.dataclass(frozen=True)
class Plan:
    actions: np.ndarray      # (H*S, A) the plan at control-period resolution; actions[0] is executed
    latents: np.ndarray      # (H, D) its forecast
    cost: float              # cost of the returned plan
    goal_distance: float     # latent distance from the current latent to the goal
    iterations: int


class WarmStart:
    """The previous plan's macro actions (mean, std; arrays of any kind that index like NumPy's),
    kept to start the next search from: the bookkeeping both planners share."""

    def __init__(self, horizon: int, frameskip: int, floor: float) -> None:
        self.horizon, self.frameskip, self.floor = horizon, frameskip, floor  # floor: of the widened spread
        self.mean = self.std = self.widened = None
        self.offset = 0.0   # control periods executed since the macro grid was last aligned
        self.warm = False   # mean and std come from a previous plan

    def reset(self, mean, std) -> None:
        self.mean, self.std, self.widened, self.offset, self.warm = mean, std, std, 0.0, False

    def begin(self, periods: float, iterations: int) -> int:
        """A plan starts ``periods`` control periods after the previous one (a cold plan: after the
        previous frame). Warm: widen the kept spread back by that share of a period and shift the
        kept plan by what was executed meanwhile (one macro step per S periods, the last repeated).
        Returns how many of ``iterations`` (per control period) to run, cold or warm: their share
        of ``periods``, at least one, at most all. A search is spread over the frames it has, so a
        new goal does not cost a faster camera a late command: the next frames go on searching."""
        budget = int(np.clip(round(iterations * periods), 1, iterations))
        if not self.warm:
            return budget
        self.std = self.std + (self.widened - self.std) * min(max(float(periods), 0.0), 1.0)  # fully per period
        self.offset += min(max(float(periods), 0.0), self.horizon * self.frameskip)
        steps = int((self.offset + 1e-9) // self.frameskip)
        if steps:
            self.offset -= steps * self.frameskip
            self.mean = self.mean[np.minimum(np.arange(self.horizon) + steps, self.horizon - 1).tolist()]
        return budget

    def keep(self, best, std) -> None:
        """The plan just made starts the next search: its mean and its spread ``std``, widened back
        to at least ``floor`` over one control period (new uncertainty as the robot moves)."""
        self.mean, self.std, self.widened, self.warm = best, std, std.clip(min=self.floor), True


class Planner:
    """CEM or MPPI over macro actions, warm-started from the previous plan."""

    def __init__(self, model: RolloutModel, config: PlannerConfig | None = None,
                 metric: GoalMetric | None = None) -> None:
        self.model, self.config, self.metric = model, config or PlannerConfig(), metric
        self.rng = np.random.default_rng(self.config.seed)
        self.shape = (model.horizon, model.action_dim)  # macro actions (H, A)
        self.warm = WarmStart(model.horizon, model.frameskip, self.config.init_std * 0.5)
        self.reset()

    def reset(self) -> None:
        """Forget the previous plan (new goal, or the robot was moved)."""
        self.warm.reset(np.zeros(self.shape), np.full(self.shape, self.config.init_std))

    def expand(self, macro: np.ndarray) -> np.ndarray:
        """(..., H, A) macro actions -> (..., H*S, A), each held for S control periods."""
        return np.repeat(macro, self.model.frameskip, axis=-2)

    def costs(self, latents: np.ndarray, goal: np.ndarray, macro: np.ndarray) -> np.ndarray:
        """(N, H, D) forecasts, (D,) goal, (N, H, A) macro actions -> (N,) costs."""
        dist = (self.metric.to_goal(goal)(latents) if self.metric is not None
                else np.linalg.norm(latents - goal, axis=-1))                # (N, H)
        cost = dist.min(axis=1) + self.config.terminal_weight * dist[:, -1]
        if self.config.smoothness:
            cost += self.config.smoothness * np.square(np.diff(macro, axis=1)).sum(axis=(1, 2))
        return cost

    def plan(self, z_hist: np.ndarray, goal: np.ndarray, periods: float = 1.0) -> Plan:
        """Search from the latest latents ``z_hist`` (K, D) towards ``goal`` (D,), ``periods`` control
        periods after the previous plan (the robot executed that much of it meanwhile)."""
        cfg, lim = self.config, self.config.action_limit
        iterations = self.warm.begin(periods, cfg.iterations)
        mean, std = self.warm.mean.copy(), self.warm.std.copy()
        for _ in range(iterations):
            noise = self.rng.standard_normal((cfg.samples, *self.shape))
            macro = np.clip(mean + std * noise, -lim, lim)                  # (N, H, A)
            macro[0] = np.clip(mean, -lim, lim)                             # always try the current mean
            latents = self.model.rollout(z_hist, self.expand(macro).astype(np.float32))  # (N, H, D)
            cost = self.costs(latents, goal, macro)
            if cfg.method == "cem":
                elite = macro[np.argsort(cost)[:cfg.elites]]
                mean, std = elite.mean(0), np.maximum(elite.std(0), cfg.min_std)
            else:  # MPPI: exponentially weighted average of all samples
                w = np.exp(-(cost - cost.min()) / cfg.temperature)
                w /= w.sum()
                mean = np.einsum("n,nha->ha", w, macro)
                std = np.maximum(np.sqrt(np.einsum("n,nha->ha", w, (macro - mean) ** 2)), cfg.min_std)
        best = np.clip(mean, -lim, lim)
        final = self.model.rollout(z_hist, self.expand(best[None]).astype(np.float32))[0]
        self.warm.keep(best, std)
        return Plan(actions=self.expand(best), latents=final,
                    cost=float(self.costs(final[None], goal, best[None])[0]),
                    goal_distance=float(np.linalg.norm(z_hist[-1] - goal)), iterations=iterations)


def make_planner(model: RolloutModel, **settings) -> Planner:
    return Planner(model, PlannerConfig.from_dict(settings))
