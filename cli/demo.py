"""`jepa-pilot demo`: the whole ROS 2 graph drives the built-in simulated robot to goal images.

Starts launch/sim.launch.yaml with the world-model nodes (jepa:=true): the
MuJoCo sim node, the encoder, the planner and the predictor, each in its own
process, over real DDS on localhost, with the shipped bundle. Then, for each
goal: the robot is reset to a start (for the two-rooms worlds, in one room),
the camera image of a goal state (in the other room) becomes the goal, and the
graph drives until the true position is within --success-radius of the goal's
(success, the definition `jepa-pilot eval` uses) or --timeout simulated seconds
pass. Prints per goal: success, time to goal, closest distance and whether the
planner said REACHED; then the frame-to-plan loop latency (p50/p99). Writes
demo.json, a GIF (camera with the planned path | goal image) and a latency plot.

--driver explorer runs the sim graph with the random-walk explorer instead
(for envs without a shipped bundle).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from jepa_pilot.cli.launch import LaunchError
from jepa_pilot.cli.supervisor import Launcher
from jepa_pilot.cli.up import child_environment, describe_dds
from jepa_pilot.common.machine import command_line, machine


def register(sub) -> None:
    p = sub.add_parser("demo", help="the ROS 2 graph drives the simulated robot to goal images (world model)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="two_rooms", help="simulator env (default two_rooms)")
    p.add_argument("--driver", choices=("jepa", "explorer"), default="jepa",
                   help="jepa: world-model planner to goal images (default); explorer: random walk")
    p.add_argument("--bundle", help="model bundle: a name in models/ or a path (default: the env's name)")
    p.add_argument("--goals", type=int, default=5, help="goal images, start and goal in different rooms (default 5)")
    p.add_argument("--timeout", type=float, default=30.0, help="simulated seconds per goal (default 30)")
    p.add_argument("--success-radius", type=float,
                   help="success: the true distance to the goal that counts as reached, in m (default: the env's "
                        "own, 0.05 for the reacher's fingertip; else 0.1)")
    p.add_argument("--goal-tolerance", type=float,
                   help="the planner's goal_tolerance (default: config/sim.yaml's 1.5, about 7 cm for two_rooms); "
                        "calibrate per bundle with eval-model's goal_tolerance (reacher: 0.266)")
    p.add_argument("--seconds", type=float, default=30.0, help="explorer driver: simulated seconds to run")
    p.add_argument("--seed", type=int, default=0, help="seed of starts and goals (default 0)")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="folder for the GIF, plots, JSON and logs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    from jepa_pilot.evaluation.rosgraph import sim_graph  # rclpy: only when a graph runs

    jepa = args.driver == "jepa"
    try:
        tolerance = {} if args.goal_tolerance is None else {"planner": {"goal_tolerance": args.goal_tolerance}}
        specs = sim_graph(args.env, args.seed, jepa=jepa, bundle=args.bundle, **tolerance)
    except LaunchError as exc:
        print(f"jepa-pilot demo: error: {exc}")
        return 2
    env = child_environment(os.environ)
    print("JEPA Pilot demo: " + ("the world-model planner drives the robot to goal images." if jepa else
                                 "no world model: the random-walk explorer drives the robot."))
    print(f"graph: {', '.join(s.label for s in specs)} from launch/sim.launch.yaml")
    print(describe_dds(os.environ, env))
    log_path = args.out / "nodes.log"
    with open(log_path, "w") as log, Launcher(specs, env=env, stream=log) as launcher:
        if jepa:
            code = drive_to_goals(args, launcher)
        else:
            code = explore(args, launcher)
    print(f"node logs         {log_path}")
    return code


# --- the world model drives ---------------------------------------------------------
def drive_to_goals(args: argparse.Namespace, launcher) -> int:
    from jepa_pilot import sim
    from jepa_pilot.evaluation.closed_loop import LoopConfig, goal_pairs
    from jepa_pilot.evaluation.metrics import summarize
    from jepa_pilot.evaluation.rosgraph import run_goals

    world = sim.make(args.env)
    radius = args.success_radius if args.success_radius is not None else (
        getattr(world, "success_radius", None) or LoopConfig.success_radius)
    pairs = goal_pairs(world, args.goals, args.seed)
    max_steps = int(round(args.timeout / world.config.control_period))
    bar = tqdm(total=len(pairs), unit="goal", desc="goals")

    def report_goal(i: int, r) -> None:
        bar.update(1)
        t = f"{r.time_to_goal:5.1f} s" if r.time_to_goal is not None else "   -   "
        bar.write(f"goal {i + 1}: {'reached' if r.success else 'MISSED '}  time to goal {t}  "
                  f"closest {r.closest_distance:.3f} m  planner said REACHED: {'yes' if r.planner_reached else 'no'}"
                  + (f"  stops: {'; '.join(r.notes)}" if r.notes else ""))

    try:
        records, drawings, watcher = run_goals(world, pairs, max_steps, radius, alive=launcher.alive,
                                               on_goal=report_goal)
    except RuntimeError as exc:
        bar.close()
        print(f"FAILED: {exc}")
        return 1
    bar.close()
    latency = watcher.latencies() * 1e3
    planning = np.array([m.planning_time for _, m in watcher.plans if m.planning_time > 0]) * 1e3
    summary = {
        "command": command_line(args.argv),
        "env": args.env, "success_radius": radius, "machine": machine(), **summarize(records),
        "loop_latency_ms": {"p50": _pct(latency, 50), "p99": _pct(latency, 99), "samples": int(latency.size)},
        "planning_ms": {"p50": _pct(planning, 50), "p99": _pct(planning, 99), "samples": int(planning.size)},
        "records": [r.to_dict() for r in records],
    }
    (args.out / "demo.json").write_text(json.dumps(summary, indent=1) + "\n")
    reached = sum(r.success for r in records)
    print(f"\nreached {reached}/{len(records)} goals; loop latency (frame -> plan) p50 "
          f"{summary['loop_latency_ms']['p50']:.0f} ms, p99 {summary['loop_latency_ms']['p99']:.0f} ms; "
          f"planning p50 {summary['planning_ms']['p50']:.0f} ms")
    write_goal_video(watcher, drawings, world, args.out / "demo.gif")
    plot_latency(latency, planning, args.out / "latency.png")
    print(f"video             {args.out / 'demo.gif'}\nlatency plot      {args.out / 'latency.png'}"
          f"\nresults           {args.out / 'demo.json'}")
    if not launcher.alive():
        print("FAILED: a node exited early")
        return 1
    return 0 if reached else 1


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


def _project(world, points: np.ndarray) -> np.ndarray:
    """(N, 2) world x, y on the floor -> (N, 2) pixel u, v of the overhead camera."""
    position, rotation = world.camera_pose()
    fx, fy, cx, cy = world.camera_intrinsics()
    p = (np.c_[points, np.zeros(len(points))] - position) @ rotation  # camera optical frame
    return np.c_[fx * p[:, 0] / p[:, 2] + cx, fy * p[:, 1] / p[:, 2] + cy]


def write_goal_video(watcher, drawings, world, path: Path, scale: int = 4) -> None:
    """Each frame: the camera view | the goal image; for a holonomic base, the first 2 s of the plan.

    The path integrates the planned velocities from the true position (no walls: a sketch of intent).
    """
    from PIL import Image, ImageDraw

    plans = {round(_stamp(m), 6): m for _, m in watcher.plans}
    step = np.asarray(world.action_scale, np.float64) * world.config.control_period
    sketch = world.embodiment == "holonomic_base"
    frames = []
    for i, d in enumerate(drawings):
        goal = Image.fromarray(np.kron(d["goal_image"], np.ones((scale, scale, 1), np.uint8)))
        for frame, (_, stamp) in zip(watcher.frames, watcher.image_times):
            if not d["goal_stamp"] <= stamp <= d["end_stamp"]:
                continue
            view = Image.fromarray(np.kron(frame, np.ones((scale, scale, 1), np.uint8)))
            draw = ImageDraw.Draw(view)
            plan, state = plans.get(round(stamp, 6)), _state_at(watcher.states, stamp)
            if sketch and plan is not None and state is not None and len(plan.actions):
                actions = np.asarray(plan.actions, np.float64).reshape(-1, plan.action_dim)[:20]  # first 2 s
                route = state[:2] + np.cumsum(actions * step, axis=0)
                uv = _project(world, np.vstack([state[:2], route])) * scale + scale / 2
                draw.line([tuple(p) for p in uv], fill=(30, 90, 230), width=2)
            draw.text((4, 4), f"goal {i + 1}", fill=(0, 0, 0))
            canvas = Image.new("RGB", (view.width * 2 + 8, view.height), (255, 255, 255))
            canvas.paste(view, (0, 0))
            canvas.paste(goal, (view.width + 8, 0))
            frames.append(canvas)
    if frames:
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _state_at(states, stamp: float):
    for t, state in reversed(states):
        if t <= stamp + 1e-6:
            return state
    return None


def plot_latency(latency_ms: np.ndarray, planning_ms: np.ndarray, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    axes[0].plot(latency_ms, ".", ms=3, label="frame -> plan (wall)")
    axes[0].plot(planning_ms, ".", ms=3, label="planning alone")
    axes[0].set(xlabel="control step", ylabel="ms", title="loop latency over the run")
    axes[0].legend()
    bins = np.linspace(0, max(np.percentile(latency_ms, 99.5) if latency_ms.size else 1, 1), 40)
    axes[1].hist(latency_ms, bins=bins, alpha=0.7, label="frame -> plan")
    axes[1].hist(planning_ms, bins=bins, alpha=0.7, label="planning")
    for q in (50, 99):
        axes[1].axvline(_pct(latency_ms, q), color="k", lw=0.8, ls=":")
    axes[1].set(xlabel="ms", title="distribution (dotted: p50, p99)")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


# --- no model: the random-walk explorer drives ------------------------------------------
def explore(args: argparse.Namespace, launcher) -> int:
    from jepa_pilot import sim
    from jepa_pilot.evaluation.rosgraph import frame_loss, watch

    world = sim.make(args.env)
    with tqdm(total=args.seconds, unit="sim s", bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f} sim s",
              mininterval=1.0) as bar:
        watcher = watch(world, args.seconds, wall_timeout=args.seconds * 3 + 60,
                        on_progress=lambda t: bar.update(min(t, args.seconds) - bar.n), alive=launcher.alive)
    positions = np.array([world.task_position(state) for _, state in watcher.states]).reshape(-1, 2)
    travelled = float(np.linalg.norm(np.diff(positions, axis=0), axis=1).sum()) if len(positions) > 1 else 0.0
    loss = frame_loss([s for _, s in watcher.image_times])
    print(f"\nimages received   {loss['received']} of {loss['expected']} published ({loss['lost']} lost)")
    print(f"robot moved       {travelled:.2f} m ({'fingertip' if world.embodiment == 'arm' else 'base'})")
    if len(positions) and hasattr(world, "walls"):
        print(f"rooms visited     {', '.join(sorted({'left' if x < 0 else 'right' for x in positions[:, 0]}))}")
    if len(positions):
        plot_path(positions, world, args.out / "path.png")
        print(f"path plot         {args.out / 'path.png'}")
    if watcher.frames:
        from PIL import Image

        images = [Image.fromarray(np.kron(f, np.ones((4, 4, 1), np.uint8))) for f in watcher.frames]
        images[0].save(args.out / "camera.gif", save_all=True, append_images=images[1:], duration=100, loop=0)
        print(f"camera video      {args.out / 'camera.gif'}")
    problems = [p for p, bad in (("a node exited early", not launcher.alive()),
                                 ("no camera images arrived", len(watcher.image_times) < 2),
                                 ("the robot did not move", travelled < 0.05)) if bad]
    if problems:
        print(f"\nFAILED: {'; '.join(problems)}")
        return 1
    print("\nOK: the ROS 2 graph drove the simulated robot.")
    return 0


def plot_path(path: np.ndarray, world, out: Path) -> None:
    """The task position's path (base or fingertip) over the env's walls, if it has any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    for cx, cy, hx, hy in getattr(world, "walls", lambda: [])():
        ax.add_patch(plt.Rectangle((cx - hx, cy - hy), 2 * hx, 2 * hy, color="k", alpha=0.4))
    ax.plot(path[:, 0], path[:, 1], lw=1)
    ax.plot(*path[0], "go", label="start")
    ax.plot(*path[-1], "rs", label="end")
    ax.set(xlim=(-1.1, 1.1), ylim=(-1.1, 1.1), aspect="equal", xlabel="x (m)", ylabel="y (m)",
           title="task position path (true state)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
