"""`jepa-pilot up`: start a ROS 2 graph from a YAML launch file, without `ros2 launch`.

The launch files in ``launch/`` are ordinary ROS 2 YAML launch files, so on a
robot ``ros2 launch jepa_pilot X.launch.yaml`` starts the same graph. This
command reads the same file and parameter files, starts the same installed
executables (``<prefix>/lib/<pkg>/<exec>`` from AMENT_PREFIX_PATH) with the
same ``--ros-args`` and supervises them itself (see :mod:`jepa_pilot.cli.launch`
for the launch-file subset it reads).
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Mapping

from jepa_pilot.cli.supervisor import Launcher
from jepa_pilot.cli.launch import (
    PACKAGE,
    LaunchError,
    declared_args,
    find_package_share,
    parse_launch_arguments,
    parse_launch_file,
    read_launch_file,
)

PROFILE_SUFFIX = ".launch.yaml"

DESCRIPTION = """\
Start the nodes of a ROS 2 YAML launch file as ros2 launch would (the
installed executables, found through AMENT_PREFIX_PATH, with the same
--ros-args) and supervise them: each node's output is printed prefixed with
[node_name]; Ctrl-C (or --duration) sends
SIGINT to every node, then SIGTERM and SIGKILL to any that do not stop in
time (a second Ctrl-C skips the wait). If a node exits with an error, the
others are stopped and the command fails.

TARGET is a profile name X, meaning <share>/launch/X.launch.yaml of the
jepa_pilot package (from AMENT_PREFIX_PATH, else this source checkout), or a
path to any YAML launch file. The same file works with `ros2 launch` on a
machine with ROS installed. Options go before TARGET or after the last
name:=value argument.

DDS discovery stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST)
unless ROS_AUTOMATIC_DISCOVERY_RANGE is already set; ROS_DOMAIN_ID is used
as set."""

EPILOG = """\
examples:
  jepa-pilot up --list                     profiles and the arguments they take
  jepa-pilot up sim                        start launch/sim.launch.yaml
  jepa-pilot up sim env:=reacher seed:=3   override launch arguments
  jepa-pilot up sim --duration 30          stop everything after 30 s
  jepa-pilot up sim --dry-run              print the node commands, start nothing
  jepa-pilot up ./my.launch.yaml           any YAML launch file
  ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET jepa-pilot up sim   let other machines see it"""


def _positive_seconds(text: str) -> float:
    """argparse type: a number of seconds greater than zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``up`` subcommand."""
    parser = subparsers.add_parser(
        "up",
        usage="%(prog)s [options] TARGET [name:=value ...]\n       %(prog)s --list",
        help="start a ROS 2 graph from a launch file (like ros2 launch)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", nargs="?", metavar="TARGET",
                        help="profile name (see --list) or path to a .launch.yaml file")
    parser.add_argument("launch_args", nargs="*", metavar="name:=value",
                        help="launch argument overrides, as for ros2 launch")
    parser.add_argument("--duration", type=_positive_seconds, metavar="S",
                        help="stop every node (SIGINT) after S seconds")
    parser.add_argument("--grace", type=_positive_seconds, default=10.0, metavar="S",
                        help="seconds nodes get to exit after SIGINT before SIGTERM (default: 10)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the exact commands that would run and exit")
    parser.add_argument("--list", action="store_true",
                        help="list the profiles and the arguments they declare")
    parser.set_defaults(func=run)


def profiles() -> dict[str, Path]:
    """Profile name -> launch file, from ``<share>/launch/*.launch.yaml``."""
    launch_dir = find_package_share(PACKAGE) / "launch"
    return {
        path.name[: -len(PROFILE_SUFFIX)]: path
        for path in sorted(launch_dir.glob(f"*{PROFILE_SUFFIX}"))
    }


def resolve_target(target: str) -> Path:
    """The launch file for a profile name or a path (anything with a '/' or a .yaml suffix)."""
    if os.sep in target or target.endswith((".yaml", ".yml")):
        path = Path(target)
        if not path.is_file():
            raise LaunchError(f"launch file {target} does not exist")
        return path
    available = profiles()
    if target not in available:
        names = ", ".join(available) or "none"
        raise LaunchError(
            f"unknown profile '{target}' (available: {names}); "
            "give a profile name or a path to a .launch.yaml file"
        )
    return available[target]


def child_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The nodes' environment: ``base`` with DDS discovery on localhost unless set."""
    env = dict(base)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return env


def describe_dds(base: Mapping[str, str], env: Mapping[str, str]) -> str:
    """One line naming the DDS scope and domain the nodes get, and where they come from."""
    given = "ROS_AUTOMATIC_DISCOVERY_RANGE" in base
    range_source = "from the environment" if given else "default of jepa-pilot up"
    domain = env.get("ROS_DOMAIN_ID")
    line = (
        f"DDS: ROS_AUTOMATIC_DISCOVERY_RANGE={env['ROS_AUTOMATIC_DISCOVERY_RANGE']} ({range_source}), "
        f"ROS_DOMAIN_ID={domain if domain else '0 (default)'}"
    )
    if "ROS_LOCALHOST_ONLY" in env:
        line += f", ROS_LOCALHOST_ONLY={env['ROS_LOCALHOST_ONLY']}"
    return line


def check_runnable_here(path: Path, launch_args: Mapping[str, str]) -> None:
    """Raise a clear LaunchError if the launch file includes Python/XML launch files.

    Such files (e.g. ros_gz_sim's ``gz_sim.launch.py`` in ``gazebo.launch.yaml``)
    only real ``ros2 launch`` can run.
    """
    plan = read_launch_file(path, launch_args, resolve_external=False)
    if not plan.external_includes:
        return
    packages = {inc.package or "" for inc in plan.external_includes} | {
        spec.package for spec in plan.nodes}
    gazebo = any(pkg.startswith(("ros_gz", "gz_", "ros_ign")) for pkg in packages)
    needs = "real ros2 launch and Gazebo (ros_gz)" if gazebo else "real ros2 launch"
    files = ", ".join(inc.file for inc in plan.external_includes)
    raise LaunchError(
        f"{path.name} needs {needs}: it includes {files}, which jepa-pilot up cannot run "
        f"(it runs only YAML launch files). On a machine with ROS 2{' and Gazebo' if gazebo else ''}: "
        f"ros2 launch {PACKAGE} {path.name}"
    )


def print_profiles() -> None:
    """Print each profile with its file and the arguments it declares."""
    available = profiles()
    if not available:
        print(f"no profiles (*{PROFILE_SUFFIX}) in {find_package_share(PACKAGE) / 'launch'}")
        return
    for name, path in available.items():
        print(f"{name}  ({path})")
        try:
            args = declared_args(path)
        except LaunchError as err:
            print(f"    cannot read: {err}")
            continue
        usages = [f"{arg.name}:={'<required>' if arg.default is None else arg.default}" for arg in args]
        width = max((len(u) for u in usages), default=0)
        for usage, arg in zip(usages, args):
            print(f"    {usage.ljust(width)}  {arg.description}".rstrip())


def print_commands(specs: list) -> None:
    """Print each node's command; inline parameters go to files in a new temporary folder, kept."""
    folder = None
    for spec in specs:
        params_file = None
        if spec.params:
            folder = folder or Path(tempfile.mkdtemp(prefix="jepa-pilot-up-"))
            params_file = spec.write_params_file(folder / f"{spec.full_name.strip('/').replace('/', '__')}.params.yaml")
        print(shlex.join(spec.command(params_file)))


def run(args: argparse.Namespace) -> int:
    """Run ``jepa-pilot up``; returns the exit status."""
    try:
        if args.list:
            print_profiles()
            return 0
        if args.target is None:
            raise LaunchError("give a profile name or a launch file (see `jepa-pilot up --list`)")
        path = resolve_target(args.target)
        launch_args = parse_launch_arguments(args.launch_args)
        check_runnable_here(path, launch_args)
        specs = parse_launch_file(path, launch_args)
        if not specs:
            raise LaunchError(f"{path}: no node to start (check the if/unless conditions)")
        for spec in specs:
            spec.validate()
        if args.dry_run:
            print_commands(specs)
            return 0
        env = child_environment(os.environ)
        print(f"[launch] {path}: {len(specs)} node(s); {describe_dds(os.environ, env)}", flush=True)
        return Launcher(specs, env=env, grace=args.grace).run(duration=args.duration)
    except LaunchError as err:
        print(f"jepa-pilot up: error: {err}", file=sys.stderr)
        return 2
