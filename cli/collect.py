"""`jepa-pilot collect`: exploration episodes from the built-in simulator -> a dataset folder.

Rolls out a random walk mixed with noisy waypoint seeking on the true state
(two rooms: goals in either room, reached through the door; ~30 % of
episodes start near the door; reacher: goals in joint space) and writes
camera frames, normalised actions, simulated timestamps and true states
(format: jepa_pilot.data.dataset). Prints the coverage at the end and writes
it, with the settings, to OUT/collect.json. The same seed writes the same
files whatever --workers is.

example:
  jepa-pilot collect --env two_rooms --episodes 2000 --steps 100 --out datasets/two_rooms --workers 2
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("collect", help="collect exploration episodes in the built-in simulator",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="two_rooms",
                   help="simulator env: two_rooms, two_rooms_diff or reacher (default two_rooms)")
    p.add_argument("--episodes", type=int, default=100, help="number of episodes (default 100)")
    p.add_argument("--steps", type=int, default=100, help="actions per episode; frames = steps + 1 (default 100)")
    p.add_argument("--out", type=Path, required=True, help="new dataset folder to write")
    p.add_argument("--seed", type=int, default=0, help="base seed; episode i uses SeedSequence([seed, i]) (default 0)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--door-start", type=float, default=0.3,
                   help="two rooms: fraction of episodes starting near the door (default 0.3)")
    p.add_argument("--image-size", type=int, default=0,
                   help="square frame size in pixels (default 0: the env's own, 64)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jepa_pilot.data.collect import CollectConfig, collect

    try:
        config = CollectConfig(env=args.env, episodes=args.episodes, steps=args.steps, seed=args.seed,
                               door_start_prob=args.door_start, image_size=args.image_size)
        if args.workers < 1:
            raise ValueError(f"--workers = {args.workers}: expected at least 1")
        start = time.perf_counter()
        summary = collect(config, args.out, workers=args.workers)
    except ValueError as exc:  # a bad setting (ConfigError), an unknown env, a used folder (DatasetError)
        print(f"jepa-pilot collect: error: {exc}")
        return 2
    seconds = time.perf_counter() - start
    print(f"wrote {config.episodes} episodes, {summary['frames']} frames to {args.out} "
          f"in {seconds:.1f} s ({summary['frames'] / seconds:.0f} frames/s, {args.workers} worker(s))")
    return 0
