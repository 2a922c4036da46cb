"""`jepa-pilot collect`: exploration episodes from a simulator -> a dataset folder.

Rolls out a random walk mixed with noisy waypoint seeking on the true state
(two rooms: goals in either room, reached through the door; ~30 % of
episodes start near the door; reacher: goals in joint space), or, in a
Gymnasium env (--env gym:ENV_ID), a momentum random walk whose memory is
--walk-memory-s seconds whatever the env's step, and writes
camera frames, normalised actions, simulated timestamps and true states
(format: jepa_pilot.data.dataset). Prints the coverage at the end and writes
it, with the settings, to OUT/collect.json. The same seed writes the same
files whatever --workers is. The options besides --out and --workers are
the fields of jepa_pilot.data.collect.CollectConfig, validated by it.

example:
  jepa-pilot collect --env two_rooms --episodes 2000 --steps 100 --out datasets/two_rooms --workers 2
  jepa-pilot collect --env gym:PointMaze_UMaze-v3 --env-kwargs '{"continuing_task": true}' \
      --episodes 500 --steps 200 --out datasets/pointmaze_umaze
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(sub) -> None:
    from jepa_pilot.common.config import add_config_arguments
    from jepa_pilot.data.collect import CollectConfig

    p = sub.add_parser("collect", help="collect exploration episodes in the built-in simulator or a Gymnasium env",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="new dataset folder to write")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    add_config_arguments(p.add_argument_group("collection settings (CollectConfig)"), CollectConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jepa_pilot.common.config import config_from_args
    from jepa_pilot.data.collect import CollectConfig, collect

    try:
        config = config_from_args(CollectConfig, args)
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
