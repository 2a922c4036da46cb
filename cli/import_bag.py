"""`jepa-pilot import-bag`: a rosbag2 (MCAP) recording -> a dataset folder, without ROS.

Reads the camera and command topics of a bag recorded with
`ros2 bag record -s mcap` (its folder, or one .mcap file) and writes episodes
of RGB frames, normalised actions and timestamps (format:
jepa_pilot.data.dataset); a folder that already holds compatible data gets
the new episodes appended.

  frames    sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) or CompressedImage
            (jpeg, png); bad frames are skipped and counted
  commands  TwistStamped / Twist (bases) or Float64MultiArray (arms), normalised
            with the robot profile's limits; values beyond them are clipped
  timing    header stamps when every message has one, else log times; frames
            resampled to --period; action t = the last command before frame t+1,
            zero if older than --command-timeout; a gap of more than --max-gap
            periods without frames starts a new episode

example:
  jepa-pilot import-bag rosbag2_2026_11_28 --out datasets/robot --robot two_rooms --image-size 64 64

The options besides BAG, --out and --quiet are the fields of
jepa_pilot.data.bag.BagImportConfig, validated by it.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    from jepa_pilot.common.config import add_config_arguments
    from jepa_pilot.data.bag import BagImportConfig

    p = sub.add_parser("import-bag", help="convert a rosbag2 MCAP recording into a dataset",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bag", type=Path, help="rosbag2 folder (with metadata.yaml) or .mcap file")
    p.add_argument("--out", type=Path, required=True, help="dataset folder to write (or append to)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_arguments(p.add_argument_group("import settings (BagImportConfig)"), BagImportConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jepa_pilot.common.config import config_from_args
    from jepa_pilot.data.bag import BagImportConfig, import_bag

    try:
        config = config_from_args(BagImportConfig, args)
        report = import_bag(args.bag, args.out, config, progress=not args.quiet)
    except ValueError as exc:  # BagError, ConfigError (bad setting, unknown profile), DatasetError
        print(f"jepa-pilot import-bag: error: {exc}")
        return 2
    print("\n".join(report.lines()))
    if not report.episodes:
        print(f"no episode of at least {config.min_steps} steps: nothing written")
        return 1
    print(f"wrote {report.episodes} episodes to {args.out}")
    return 0
