"""`jepa-pilot landmarks BUNDLE --data DIR`: give a bundle a map of its latent space.

Encodes every frame of the dataset's episodes with the bundle's encoder,
clusters the latents into landmarks and links those the robot was seen to
pass between (jepa_pilot.control.landmarks), writes ``landmarks.npz`` into
the bundle and lists it, with its sha256, in ``bundle.yaml``. From then on
the planner's cost is the way to the goal along the landmarks (around
walls), not the straight latent distance; `jepa-pilot eval --no-landmarks`
compares the two. Only frames and their order are used: no true state.

example:
  jepa-pilot landmarks models/pointmaze_umaze --data datasets/pointmaze_umaze
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

FILE = "landmarks.npz"


def register(sub) -> None:
    p = sub.add_parser("landmarks", help="build a bundle's map of its latent space (the planner's cost around walls)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path, help="model bundle folder (written to: landmarks.npz, bundle.yaml)")
    p.add_argument("--data", type=Path, required=True, help="dataset of the bundle's robot (e.g. its training data)")
    p.add_argument("--landmarks", type=int, default=300, help="number of landmarks (k-means centres; default 300)")
    p.add_argument("--min-passes", type=int, default=2,
                   help="passes between two landmarks seen before they are linked (default 2)")
    p.add_argument("--seed", type=int, default=0, help="k-means seed (default 0)")
    p.add_argument("--providers", default="cuda,cpu", help="ONNX Runtime providers in order (default cuda,cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from jepa_pilot.common.bundle import sha256
    from jepa_pilot.control.landmarks import LandmarkError, LandmarkGraph
    from jepa_pilot.data import Dataset, DatasetError
    from jepa_pilot.perception.bundle import BundleError
    from jepa_pilot.perception.engine import WorldModelEngine

    if args.landmarks < 2 or args.min_passes < 1:
        print("jepa-pilot landmarks: error: --landmarks must be >= 2 and --min-passes >= 1")
        return 2
    begun = time.monotonic()
    try:
        engine = WorldModelEngine(args.bundle, providers=args.providers.split(","))
        dataset = Dataset(args.data)
        if list(dataset.info.action_names) != list(engine.spec.action_names):
            raise DatasetError(f"{args.data} has actions {list(dataset.info.action_names)}, the bundle "
                               f"{list(engine.spec.action_names)}: not this robot's data")
        episodes = []
        for episode in tqdm(dataset, desc="encode", unit="episode", mininterval=2.0):
            episodes.append(np.concatenate([engine.encode(episode.images[i:i + 256])
                                            for i in range(0, len(episode.images), 256)]))
        encoder = engine.spec.files["encoder"]["sha256"]
        graph = LandmarkGraph.build(episodes, args.landmarks, args.min_passes, args.seed, encoder)
    except (BundleError, DatasetError, LandmarkError, ValueError) as exc:
        print(f"jepa-pilot landmarks: error: {exc}")
        return 2
    graph.save(args.bundle / FILE)
    meta_path = args.bundle / "bundle.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    meta["files"]["landmarks"] = {"path": FILE, "sha256": sha256(args.bundle / FILE)}
    meta.setdefault("metrics", {})["landmarks"] = {**graph.summary(), "min_passes": args.min_passes, "seed": args.seed,
                         "dataset": str(args.data.resolve()), "frames": int(sum(len(e) for e in episodes))}
    meta_path.write_text(yaml.safe_dump(meta, sort_keys=False))
    s = meta["metrics"]["landmarks"]
    print(f"{s['landmarks']} landmarks, {s['links']} links from {s['frames']} frames; connected parts "
          f"{s['parts'][:5]}{' ...' if len(s['parts']) > 5 else ''} ({time.monotonic() - begun:.0f} s)")
    print(f"wrote {args.bundle / FILE} and listed it in {meta_path}")
    return 0
