"""The planning benchmark: success to goal images over seeds, and against the planning budget.

``run_seeds`` plays every policy on the same (start, goal) pairs of each seed
(:func:`~jepa_pilot.evaluation.closed_loop.goal_pairs`) and reports, per policy,
each seed's summary (:func:`~jepa_pilot.evaluation.metrics.summarize`: one
success definition on every path) and across seeds the mean, spread (min,
max, standard deviation) of the success rate, the median of the seeds'
median time to goal, and the median decision time.

``run_budgets`` plays the latent planner at several planning budgets
(samples per iteration x iterations per decision) on the pairs of one seed:
what more search buys, and what it costs per decision.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from jepa_pilot.control.planner import PlannerConfig
from jepa_pilot.control.supervisor import SupervisorConfig
from jepa_pilot.evaluation.closed_loop import LoopConfig, goal_pairs, make_policy, run_episode
from jepa_pilot.evaluation.metrics import summarize

__all__ = ["parse_budgets", "run_seeds", "run_budgets", "across_seeds", "plot_budgets"]

Progress = Callable[[list, str], Iterable]  # (pairs, label) -> the pairs, e.g. through a tqdm bar


def parse_budgets(text: str) -> list[tuple[int, int]]:
    """``"64x2,256x3"`` -> [(64, 2), (256, 3)] (samples x iterations); ValueError saying what is wrong."""
    budgets = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            samples, iterations = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise ValueError(f"budget {part!r}: expected SAMPLESxITERATIONS, e.g. 256x3") from None
        if samples < 1 or iterations < 1:
            raise ValueError(f"budget {part!r}: samples and iterations must be at least 1")
        budgets.append((samples, iterations))
    if not budgets:
        raise ValueError("no planning budgets given (e.g. 64x2,256x3)")
    return budgets


def _episodes(env, policy, pairs, cfg: LoopConfig, progress: Progress | None, label: str) -> list:
    return [run_episode(env, policy, start, goal, cfg) for start, goal in (progress(pairs, label) if progress else pairs)]


def run_seeds(env, policies: Sequence[str], seeds: Sequence[int], cfg: LoopConfig, planner: PlannerConfig,
              supervisor: SupervisorConfig, bundle: str | None = None, landmarks: bool = True,
              progress: Progress | None = None) -> dict:
    """{"seeds": {seed: {policy: summary}}, "policies": {policy: across-seed summary}}."""
    per_seed: dict[str, dict[str, dict]] = {}
    for seed in seeds:
        run = LoopConfig.from_dict(cfg.to_dict(), seed=seed)
        pairs = goal_pairs(env, run.episodes, seed)
        per_seed[str(seed)] = {}
        for name in policies:
            policy = make_policy(name, env, planner.replace(seed=seed), supervisor, seed, bundle=bundle,
                                 landmarks=landmarks)
            per_seed[str(seed)][name] = summarize(_episodes(env, policy, pairs, run, progress, f"{name} seed {seed}"))
    return {"seeds": per_seed, "policies": {name: across_seeds([per_seed[s][name] for s in per_seed])
                                            for name in policies}}


def across_seeds(summaries: Sequence[dict]) -> dict:
    """Success mean and spread over seeds; the median of the seeds' medians for times."""
    rates = [s["success_rate"] for s in summaries]
    middle = lambda key: (statistics.median(v for v in (s[key] for s in summaries) if v is not None)  # noqa: E731
                          if any(s[key] is not None for s in summaries) else None)
    return {"seeds": len(summaries), "episodes_per_seed": summaries[0]["episodes"] if summaries else 0,
            "success_mean": float(np.mean(rates)), "success_min": float(min(rates)),
            "success_max": float(max(rates)), "success_std": float(np.std(rates)),
            "time_to_goal_median_s": middle("time_to_goal_median_s"), "decision_ms_median": middle("decision_ms_median")}


def run_budgets(env, budgets: Sequence[tuple[int, int]], cfg: LoopConfig, planner: PlannerConfig,
                supervisor: SupervisorConfig, bundle: str | None = None, landmarks: bool = True,
                progress: Progress | None = None) -> list[dict]:
    """The latent planner at each (samples, iterations) on the pairs of ``cfg.seed``; elites are capped
    at a quarter of the samples where the default would not fit."""
    pairs = goal_pairs(env, cfg.episodes, cfg.seed)
    out = []
    for samples, iterations in budgets:
        settings = planner.replace(samples=samples, iterations=iterations, elites=min(planner.elites, max(samples // 4, 1)))
        policy = make_policy("latent", env, settings, supervisor, cfg.seed, bundle=bundle, landmarks=landmarks)
        summary = summarize(_episodes(env, policy, pairs, cfg, progress, f"budget {samples}x{iterations}"))
        out.append({"samples": samples, "iterations": iterations, "elites": settings.elites,
                    "budget": samples * iterations, **summary})
    return out


def plot_budgets(budgets: list[dict], path, title: str) -> None:
    """Success and decision time against samples x iterations (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [b["budget"] for b in budgets]
    fig, left = plt.subplots(figsize=(6.4, 3.8))
    left.plot(x, [100 * b["success_rate"] for b in budgets], "o-", color="tab:blue")
    for b in budgets:
        left.annotate(f"{b['samples']}x{b['iterations']}", (b["budget"], 100 * b["success_rate"]),
                      textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    left.set(xscale="log", xlabel="planning budget (samples x iterations per decision)", ylabel="success (%)",
             ylim=(0, 105), title=title)
    right = left.twinx()
    right.plot(x, [b["decision_ms_median"] for b in budgets], "s--", color="tab:red")
    right.set_ylabel("decision time, median (ms)", color="tab:red")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
