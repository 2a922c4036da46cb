"""`jepa-pilot demo`: the whole ROS 2 graph driving the built-in simulated robot.

Starts launch/sim.launch.yaml (the MuJoCo sim node and a driver, each in its
own process, talking over real DDS on localhost), watches what the robot
publishes for a while, then prints what happened and writes a GIF of the
camera view and a plot of the path.

No world model drives yet: the driver is the random-walk explorer, and the
demo says so. (The latent planner replaces it once a model bundle ships.)
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from jepa_pilot.cli.launch import LaunchError, find_package_share, parse_launch_file
from jepa_pilot.cli.supervisor import Launcher
from jepa_pilot.cli.up import child_environment, describe_dds


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the ROS 2 graph driving the built-in simulated robot",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="two_rooms", help="simulator env (see `jepa-pilot envs`; default two_rooms)")
    p.add_argument("--seconds", type=float, default=30.0, help="simulated seconds to run (default 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of the robot's start and the driver (default 0)")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="folder for the GIF, plot and node logs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jepa_pilot.nodes.monitor import watch  # rclpy lives in nodes/

    args.out.mkdir(parents=True, exist_ok=True)
    launch_file = find_package_share("jepa_pilot") / "launch" / "sim.launch.yaml"
    try:
        specs = parse_launch_file(launch_file, {"env": args.env, "seed": str(args.seed)})
    except LaunchError as exc:
        print(f"jepa-pilot demo: error: {exc}")
        return 2
    env = child_environment(os.environ)
    print("JEPA Pilot demo — no world model yet: the random-walk explorer drives the robot.")
    print(f"graph: {', '.join(s.label for s in specs)} from {launch_file}")
    print(describe_dds(os.environ, env))
    log_path = args.out / "nodes.log"
    with open(log_path, "w") as log, Launcher(specs, env=env, stream=log) as launcher:
        with tqdm(total=args.seconds, unit="sim s", bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f} sim s", mininterval=1.0) as bar:
            def progress(t: float) -> None:
                bar.update(min(t, args.seconds) - bar.n)
            monitor = watch(args.seconds, wall_timeout=args.seconds * 3 + 60, on_progress=progress,
                            alive=launcher.alive)
        graph_ok = launcher.alive()
    return report(monitor, args, graph_ok, log_path)


def report(monitor, args: argparse.Namespace, graph_ok: bool, log_path: Path) -> int:
    """Print what the robot did, write the GIF and plot; 0 if the graph worked."""
    wall_rate, sim_rate = monitor.image_rates()
    path = np.array([(x, y) for _, x, y in monitor.poses]) if monitor.poses else np.zeros((0, 2))
    travelled = float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum()) if len(path) > 1 else 0.0
    if monitor.joints:
        joints = np.array(monitor.joints)
        travelled = float(np.abs(np.diff(joints, axis=0)).sum())
    print(f"\nimages received   {len(monitor.image_times)} ({wall_rate:.1f}/s wall, {sim_rate:.1f}/s sim time)")
    unit = "rad of joint motion" if monitor.joints else "m"
    print(f"robot moved       {travelled:.2f} {unit}")
    if len(path) and args.env.startswith("two_rooms"):
        rooms = sorted({"left" if x < 0 else "right" for x in path[:, 0]})
        print(f"rooms visited     {', '.join(rooms)}")
        from jepa_pilot import sim

        plot_path(path, sim.default_config(args.env), args.out / "path.png")
        print(f"path plot         {args.out / 'path.png'}")
    if monitor.frames:
        write_gif(monitor.frames, args.out / "camera.gif")
        print(f"camera video      {args.out / 'camera.gif'}")
    print(f"node logs         {log_path}")
    problems = []
    if not graph_ok:
        problems.append("a node exited early")
    if len(monitor.image_times) < 2:
        problems.append("no camera images arrived")
    if travelled < 0.05:
        problems.append("the robot did not move")
    if problems:
        print(f"\nFAILED: {'; '.join(problems)} (see {log_path})")
        return 1
    print("\nOK: the ROS 2 graph drove the simulated robot.")
    return 0


def write_gif(frames: list[np.ndarray], path: Path, scale: int = 4, fps: float = 10.0) -> None:
    from PIL import Image

    images = [Image.fromarray(np.kron(f, np.ones((scale, scale, 1), dtype=np.uint8))) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


def plot_path(path: np.ndarray, world, out: Path) -> None:
    """The base's odometry path over the two rooms' walls (``world``: the env's TwoRoomsConfig)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(path[:, 0], path[:, 1], lw=1)
    ax.plot(*path[0], "go", label="start")
    ax.plot(*path[-1], "rs", label="end")
    door_low, door_high = world.door_y - world.door_width / 2, world.door_y + world.door_width / 2
    ax.plot([0, 0], [-1, door_low], "k", [0, 0], [door_high, 1], "k", lw=2, alpha=0.4)
    ax.set(xlim=(-1, 1), ylim=(-1, 1), aspect="equal", xlabel="x (m)", ylabel="y (m)", title="base path (odom)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
