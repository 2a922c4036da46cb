"""`jepa-pilot eval-model BUNDLE --data DIR`: how good is a world model, before planning with it."""
from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import yaml


def register(sub) -> None:
    from jepa_pilot.evaluation import model_eval

    p = sub.add_parser("eval-model", help="evaluate a model bundle on held-out episodes (probe R², rollout "
                                          "error vs copy-last, latent std, latency)",
                       description=model_eval.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path, help="model bundle folder")
    p.add_argument("--data", type=Path, required=True,
                   help="dataset; if it is the training set, only its validation episodes are used")
    p.add_argument("--out", type=Path, help="folder for eval.json and eval.png (default: the bundle folder)")
    p.add_argument("--record", action="store_true", help="also record the metrics in the bundle's bundle.yaml")
    p.add_argument("--providers", default="cuda,cpu", help="ONNX Runtime providers in order (default cuda,cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jepa_pilot.data import Dataset, DatasetError
    from jepa_pilot.perception.bundle import BundleError
    from jepa_pilot.perception.engine import WorldModelEngine
    from jepa_pilot.evaluation.model_eval import evaluate, held_out_episodes, plot_evaluation

    try:
        engine = WorldModelEngine(args.bundle, providers=args.providers.split(","))
        dataset = Dataset(args.data)
        fit, held_out = held_out_episodes(dataset, engine.spec.recipe, engine.spec.training.get("dataset"))
        with env_geometry(dataset.info.robot) as geometry:
            report = evaluate(engine, dataset, held_out, fit, **geometry)
    except (BundleError, DatasetError, ValueError) as exc:
        print(f"jepa-pilot eval-model: error: {exc}")
        return 2
    out = args.out or args.bundle
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(report, indent=1))
    plot_evaluation(report, out / "eval.png")
    print(summary(report))
    print(f"wrote {out / 'eval.json'} and {out / 'eval.png'}")
    if args.record:
        meta_path = args.bundle / "bundle.yaml"
        meta = yaml.safe_load(meta_path.read_text())
        meta.setdefault("metrics", {})["eval"] = {k: report[k] for k in report if k not in ("latent_std",)}
        meta["metrics"]["eval"]["latent_std"] = {k: v for k, v in report["latent_std"].items() if k != "per_dim"}
        meta_path.write_text(yaml.safe_dump(meta, sort_keys=False))
    return 0


@contextlib.contextmanager
def env_geometry(robot: str):
    """``evaluate``'s keywords from the env the data came from: ``path_length(a, b)``, the shortest way
    where it knows its map (the two-rooms worlds, PointMaze); ``task_position(state)``, what its
    success definition measures; ``success_radius``, its own or `jepa-pilot eval`'s default. None
    for what it lacks; nothing for data from elsewhere."""
    from jepa_pilot import sim
    from jepa_pilot.evaluation.closed_loop import LoopConfig
    from jepa_pilot.sim.gym_env import is_gym

    if robot not in sim.registered() and not is_gym(robot):
        yield {}  # data from a robot or an env this install does not build
        return
    with sim.make(robot) as env:
        state = env.state()
        known = getattr(env, "path_length", None) is not None and env.path_length(state, state) is not None
        yield {"path_length": env.path_length if known else None, "task_position": env.task_position,
               "success_radius": getattr(env, "success_radius", None) or LoopConfig.success_radius}


def summary(r: dict) -> str:
    lines = [f"{r['model_id']} on {r['episodes']} held-out episodes ({r['frames']} frames, {r['windows']} windows)"]
    if "probe_r2" in r:
        lines.append("probe R²        " + ", ".join(f"{k} {v:.3f}" for k, v in r["probe_r2"].items())
                     + f"  (position: {r['probe_r2_position']:.3f})")
        lines.append(f"latent vs true distance (Spearman) {r['latent_vs_true_distance_spearman']:.3f}")
    if "latent_distance_at_5cm" in r:
        lines.append(f"latent distance between frames 5 cm apart (median) {r['latent_distance_at_5cm']:.3f}")
    if (r.get("goal_tolerance") or {}).get("latent") is not None:
        g = r["goal_tolerance"]
        lines.append(f"goal_tolerance  {g['latent']:.3f} (99 % of frame pairs closer in the latent lie within "
                     f"the success radius {g['success_radius']:g} m: pass it to the planner)")
    if "cost_vs_shortest_way_spearman" in r:
        lines.append("cost vs shortest way (Spearman) " + ", ".join(
            f"{k.replace('_', ' ')} {v:.3f}" for k, v in r["cost_vs_shortest_way_spearman"].items()))
    ratio = r["rollout"]["ratio"]
    lines.append("rollout/copy-last " + " ".join(f"{x:.2f}" for x in ratio) + f"  (k = 1..{len(ratio)})")
    std = r["latent_std"]
    lines.append(f"latent std      min {std['min']:.3f}, max {std['max']:.3f}, collapsed dims {std['collapsed_dims']}")
    lat = r["latency_ms"]
    lines.append(f"latency         encoder {lat['encoder_batch1']:.2f} ms (batch 1), rollout "
                 f"{lat['rollout_256']:.1f} ms (256 sequences) on {r['providers'][0]}")
    return "\n".join(lines)
