"""Evaluate a model bundle on held-out episodes: `jepa-pilot eval-model BUNDLE --data DIR`.

Everything runs on the exported ONNX graphs (what deployment runs):

* linear-probe R² of the true state from the latent (ridge fit on half the
  held-out episodes, scored on the other half), per state dimension;
* k-step rollout error for k = 1..H against the copy-last-latent baseline;
* per-dimension latent std (a collapsed dimension has ~0 std);
* how well latent distance tracks true distance (Spearman rank correlation
  over random frame pairs): what a planner's goal cost relies on;
* the latent distance between frames of one episode 4-6 cm apart (median);
* a calibrated goal tolerance for the planner (``goal_tolerance``): the
  largest latent distance below which 99 % of frame pairs of one episode
  (up to 30 frames apart) lie within the success radius of each other;
* where the env knows the shortest way between two states (``path_length``:
  PointMaze), how well the planner's cost ranks it: the latent distance and,
  if the bundle ships them, the landmarks' cost-to-go (Spearman per goal
  frame, the median over 20 goals of 300 frames each);
* encoder latency (batch 1) and rollout latency (256 sequences), ONNX Runtime.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from jepa_pilot.common.timing import median_ms
from jepa_pilot.data import Dataset, split_episodes, square_frames
from jepa_pilot.data.probe import linear_probe_r2
from jepa_pilot.perception.engine import WorldModelEngine
from jepa_pilot.perception.preprocess import to_model_input

__all__ = ["held_out_episodes", "evaluate", "calibrated_goal_tolerance", "latent_distance_near", "plot_evaluation"]


def held_out_episodes(dataset: Dataset, recipe: dict, trained_on: str | None) -> tuple[list[int], list[int]]:
    """(episodes to fit the probe on, held-out episodes to score on).

    On the training set: the training split (up to 50 episodes) and the validation
    split. On another dataset: its first and second half.
    """
    if trained_on and Path(trained_on).resolve() == dataset.root.resolve():
        train = recipe.get("train", {})
        fit, val = split_episodes(len(dataset), train.get("val_fraction", 0.1), train.get("seed", 0))
        return fit[:50], val
    half = max(1, len(dataset) // 2)
    return list(range(half)), list(range(half, len(dataset))) or list(range(half))


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _encode_episode(engine: WorldModelEngine, images: np.ndarray) -> np.ndarray:
    frames = square_frames(images, engine.spec.image_size)
    return np.concatenate([engine.encode_prepared(to_model_input(frames[j:j + 256]))
                           for j in range(0, len(frames), 256)])


def evaluate(engine: WorldModelEngine, dataset: Dataset, episodes: list[int], fit_episodes: list[int],
             max_windows: int = 2000, seed: int = 0, path_length=None, task_position=None,
             success_radius: float | None = None) -> dict:
    """Metrics on ``episodes``; the linear probe is fitted on ``fit_episodes``. ``path_length(a, b)``:
    the shortest way between true states a and b, where the env knows it (else None).
    ``task_position(state)``: what the success definition measures (a base's (x, y), an arm's
    fingertip), for the distance metrics; without it, the dataset's position values.
    ``success_radius`` (m): the goal tolerance is calibrated to it where given."""
    spec, rng = engine.spec, np.random.default_rng(seed)
    k, h, s = spec.history, spec.horizon, spec.frameskip
    latents, states, actions_of, windows = [], [], [], []
    for i in episodes:
        ep = dataset[i]
        actions_of.append(ep.actions)
        latents.append(_encode_episode(engine, ep.images))
        states.append(ep.states)
        span = (k - 1 + h) * s
        for start in range(0, ep.steps - span + 1, s):
            windows.append((len(latents) - 1, start))
    if not windows:
        raise ValueError(f"no held-out episode is long enough for history {k} + horizon {h} x frameskip {s}")
    chosen = rng.choice(len(windows), size=min(max_windows, len(windows)), replace=False)
    z_hist, actions, truth = [], [], []
    for e, start in (windows[c] for c in chosen):
        idx = start + s * np.arange(k + h)
        z_hist.append(latents[e][idx[:k]])
        truth.append(latents[e][idx[k:]])
        actions.append(actions_of[e][start + (k - 1) * s: start + (k - 1 + h) * s])
    z_hist, truth, actions = np.stack(z_hist), np.stack(truth), np.stack(actions)
    pred = np.concatenate([engine.rollout(z_hist[j:j + 512], actions[j:j + 512]) for j in range(0, len(z_hist), 512)])
    model_err = ((pred - truth) ** 2).mean(axis=(0, 2))
    copy_err = ((z_hist[:, -1:] - truth) ** 2).mean(axis=(0, 2))
    all_z = np.concatenate(latents)
    std = all_z.std(0)
    report = {
        "model_id": spec.model_id, "providers": engine.providers, "episodes": len(episodes),
        "frames": int(len(all_z)), "windows": int(len(z_hist)),
        "rollout": {"k": list(range(1, h + 1)), "model_step_s": spec.model_step, "mse": model_err.tolist(),
                    "copy_last_mse": copy_err.tolist(), "ratio": (model_err / copy_err).tolist()},
        "latent_std": {"per_dim": std.tolist(), "min": float(std.min()), "max": float(std.max()),
                       "collapsed_dims": int((std < 1e-3 * max(std.max(), 1e-12)).sum())},
        "latency_ms": {
            "encoder_batch1": median_ms(lambda: engine.encode_prepared(
                to_model_input(np.zeros((1, spec.image_size, spec.image_size, 3), np.uint8))), 200),
            "rollout_256": median_ms(lambda: engine.rollout(
                np.zeros((spec.history, spec.latent_dim), np.float32),
                rng.uniform(-1, 1, (256, h * s, spec.action_dim)).astype(np.float32)), 50)},
    }
    if dataset.info.state_names:
        fit = [dataset[i] for i in fit_episodes]
        r2 = linear_probe_r2(np.concatenate([_encode_episode(engine, ep.images) for ep in fit]),
                             np.concatenate([ep.states for ep in fit]),
                             np.concatenate(latents), np.concatenate(states), per_dim=True)
        names = dataset.info.state_names
        report["probe_r2"] = dict(zip(names, map(float, r2)))
        dims = dataset.info.position_dims
        report["probe_r2_position"] = float(np.mean(r2[dims]))
        positions = [np.stack([task_position(x) for x in st]) if task_position else st[:, dims] for st in states]
        all_s = np.concatenate(positions)
        pairs = rng.integers(0, len(all_z), size=(4000, 2))
        report["latent_vs_true_distance_spearman"] = _spearman(
            np.linalg.norm(all_z[pairs[:, 0]] - all_z[pairs[:, 1]], axis=1),
            np.linalg.norm(all_s[pairs[:, 0]] - all_s[pairs[:, 1]], axis=1))
        near = latent_distance_near(latents, positions, 0.05)
        if near is not None:
            report["latent_distance_at_5cm"] = near
        if success_radius is not None:
            report["goal_tolerance"] = {"success_radius": success_radius,
                                        "latent": calibrated_goal_tolerance(latents, positions, success_radius)}
        if path_length is not None:
            report["cost_vs_shortest_way_spearman"] = cost_vs_shortest_way(
                engine, all_z, np.concatenate(states), path_length, rng)
    return report


def latent_distance_near(latents: list[np.ndarray], positions: list[np.ndarray], metres: float,
                         max_lag: int = 8) -> float | None:
    """Median latent distance of frame pairs of one episode (up to ``max_lag`` frames apart) whose true
    positions lie ``metres`` +- 20 % apart; None if no pair does."""
    found = []
    for z, pos in zip(latents, positions):
        for lag in range(1, min(max_lag, len(z) - 1) + 1):
            true = np.linalg.norm(pos[lag:] - pos[:-lag], axis=1)
            near = np.abs(true - metres) <= 0.2 * metres
            found.append(np.linalg.norm(z[lag:] - z[:-lag], axis=1)[near])
    found = np.concatenate(found) if found else np.zeros(0)
    return float(np.median(found)) if len(found) else None


def calibrated_goal_tolerance(latents: list[np.ndarray], positions: list[np.ndarray], radius: float,
                              max_lag: int = 30, miss: float = 0.01, min_pairs: int = 100) -> float | None:
    """The largest latent distance ``d`` such that, of the frame pairs of one episode (up to ``max_lag``
    frames apart) closer than ``d`` in the latent, at most ``miss`` lie ``radius`` or more apart in
    true position: a planner that stops when the latent distance to its goal is below ``d`` stops
    outside the success radius but rarely. Judged on at least ``min_pairs`` pairs; None if no such
    ``d`` exists (a latent blind to the position)."""
    dist, true = [], []
    for z, pos in zip(latents, positions):
        for lag in range(1, min(max_lag, len(z) - 1) + 1):
            dist.append(np.linalg.norm(z[lag:] - z[:-lag], axis=1))
            true.append(np.linalg.norm(pos[lag:] - pos[:-lag], axis=1))
    if not dist:
        return None
    dist, true = np.concatenate(dist), np.concatenate(true)
    order = np.argsort(dist)
    missed = np.cumsum(true[order] >= radius) / np.arange(1, len(order) + 1)  # among pairs closer than each
    ok = np.flatnonzero(missed[min_pairs - 1:] <= miss) + min_pairs - 1
    return float(dist[order][ok[-1]]) if len(ok) else None


def cost_vs_shortest_way(engine: WorldModelEngine, latents: np.ndarray, states: np.ndarray, path_length,
                         rng: np.random.Generator, goals: int = 20, frames: int = 300) -> dict:
    """Spearman rank correlation between the planner's cost of frames towards a goal frame and the
    shortest way there, per goal (median over ``goals``): the latent distance and, where the bundle
    ships landmarks, their cost-to-go."""
    from jepa_pilot.control.landmarks import LandmarkGraph

    graph = LandmarkGraph.of_bundle(engine.bundle)
    out: dict[str, list[float]] = {"latent_distance": [], **({"landmarks": []} if graph is not None else {})}
    for g in rng.choice(len(latents), size=goals, replace=False):
        pick = rng.choice(len(latents), size=frames, replace=False)
        way = np.array([path_length(states[i], states[g]) for i in pick], dtype=np.float64)
        out["latent_distance"].append(_spearman(np.linalg.norm(latents[pick] - latents[g], axis=1), way))
        if graph is not None:
            out["landmarks"].append(_spearman(graph.to_goal(latents[g])(latents[pick]), way))
    return {name: float(np.median(values)) for name, values in out.items()}


def plot_evaluation(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    r = report["rollout"]
    axes[0].plot(r["k"], r["mse"], "o-", label="world model")
    axes[0].plot(r["k"], r["copy_last_mse"], "s--", label="copy last latent")
    axes[0].set(xlabel=f"k (model steps of {r['model_step_s']:g} s)", ylabel="latent MSE",
                title="k-step rollout error (held out)")
    axes[0].legend()
    std = np.array(report["latent_std"]["per_dim"])
    axes[1].bar(range(len(std)), np.sort(std)[::-1])
    axes[1].set(xlabel="latent dimension (sorted)", ylabel="std", title="per-dimension latent std")
    if "probe_r2" in report:
        names, values = zip(*report["probe_r2"].items())
        axes[2].bar(names, values)
        axes[2].axhline(0.95, color="k", lw=0.8, ls=":")
        axes[2].set(ylim=(min(0.0, min(values)), 1.0), title="linear probe R² of the true state")
    fig.suptitle(f"{report['model_id']}")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
