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
        with shortest_ways(dataset.info.robot) as path_length:
            report = evaluate(engine, dataset, held_out, fit, path_length=path_length)
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
def shortest_ways(robot: str):
    """``path_length(a, b)`` of the env the data came from, where it knows its map (the two-rooms
    worlds, PointMaze), else None."""
    from jepa_pilot import sim
    from jepa_pilot.sim.gym_env import is_gym

    if robot not in sim.registered() and not is_gym(robot):
        yield None  # data from a robot or an env this install does not build
        return
    with sim.make(robot) as env:
        state = env.state()
        known = getattr(env, "path_length", None) is not None and env.path_length(state, state) is not None
        yield env.path_length if known else None


def summary(r: dict) -> str:
    lines = [f"{r['model_id']} on {r['episodes']} held-out episodes ({r['frames']} frames, {r['windows']} windows)"]
    if "probe_r2" in r:
        lines.append("probe R²        " + ", ".join(f"{k} {v:.3f}" for k, v in r["probe_r2"].items())
                     + f"  (position: {r['probe_r2_position']:.3f})")
        lines.append(f"latent vs true distance (Spearman) {r['latent_vs_true_distance_spearman']:.3f}")
    if "latent_distance_at_5cm" in r:
        lines.append(f"latent distance between frames 5 cm apart (median) {r['latent_distance_at_5cm']:.3f} "
                     f"(a planner goal_tolerance of about 5 cm)")
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
