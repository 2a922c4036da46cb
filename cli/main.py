"""`jepa-pilot`: the command-line entry point.

Each subcommand lives in its own module of this package and provides
``register(subparsers)``, which adds its parser and sets ``func`` to a
function ``(args) -> int``. ``main`` only assembles them.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in the order `--help` lists them.
COMMANDS = ("up", "demo", "collect", "import_bag", "train", "finetune", "landmarks", "eval_model", "eval_loop", "eval_adapt",
            "bench", "envs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jepa-pilot",
        description="JEPA Pilot: drive robots with a learned world model (ROS 2 + MuJoCo).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"jepa_pilot.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `name:=value` launch arguments may follow options (`up sim --dry-run env:=x`).
    if extra and hasattr(args, "launch_args") and all(":=" in e for e in extra):
        args.launch_args = [*args.launch_args, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what was typed, for the JSON results record
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
