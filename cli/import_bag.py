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
  jepa-pilot import-bag rosbag2_2026_11_28 --out datasets/robot --robot two_rooms --size 64 64
"""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("import-bag", help="convert a rosbag2 MCAP recording into a dataset",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bag", type=Path, help="rosbag2 folder (with metadata.yaml) or .mcap file")
    p.add_argument("--out", type=Path, required=True, help="dataset folder to write (or append to)")
    p.add_argument("--image-topic", default="/camera/image_raw", help="camera topic (default /camera/image_raw)")
    p.add_argument("--command-topic", default="/cmd_vel", help="command topic (default /cmd_vel)")
    p.add_argument("--robot", default="two_rooms",
                   help="robot profile: a name in config/robots/ or a YAML path (default two_rooms)")
    p.add_argument("--period", type=float, default=0.0,
                   help="seconds between kept frames (default: the median frame period)")
    p.add_argument("--command-timeout", type=float, default=0.5,
                   help="seconds after which the last command counts as stopped (default 0.5)")
    p.add_argument("--max-gap", type=float, default=3.0,
                   help="periods without frames that end an episode (default 3)")
    p.add_argument("--min-steps", type=int, default=10, help="drop episodes with fewer steps (default 10)")
    p.add_argument("--clock", choices=("auto", "header", "log"), default="auto",
                   help="timestamps: header stamps, log times, or auto: header when all are stamped (default)")
    p.add_argument("--size", type=int, nargs=2, metavar=("WIDTH", "HEIGHT"),
                   help="resize frames (cv2 INTER_AREA) to this size (default: keep the bag's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jepa_pilot.data.bag import BagImportConfig, import_bag

    try:
        config = BagImportConfig(image_topic=args.image_topic, command_topic=args.command_topic,
                                 robot=args.robot, period=args.period, command_timeout=args.command_timeout,
                                 max_gap=args.max_gap, min_steps=args.min_steps, clock=args.clock,
                                 image_size=tuple(args.size or ()))
        report = import_bag(args.bag, args.out, config, progress=not args.quiet)
    except ValueError as exc:  # BagError, ConfigError (bad setting, unknown profile), DatasetError
        print(f"jepa-pilot import-bag: error: {exc}")
        return 2
    print("\n".join(report.lines()))
    if not report.episodes:
        print(f"no episode of at least {args.min_steps} steps: nothing written")
        return 1
    print(f"wrote {report.episodes} episodes to {args.out}")
    return 0
