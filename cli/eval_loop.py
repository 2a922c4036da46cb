"""`jepa-pilot eval`: closed-loop goal reaching in the built-in simulator, directly and through ROS.

Starts and goals lie in different rooms; success means getting within
--radius metres of the goal state (true state) within --max-steps control
periods. Policies, all on the same start/goal pairs:

  latent      the bundle + the latent planner, called directly (no ROS)
  true_state  the same planner on the true position with the arena's kinematics (upper bound)
  random      uniform random actions (lower bound)
  ros         the whole ROS 2 graph (sim, encoder, planner, predictor nodes) with the bundle,
              goals given as images through the encoder's set_goal service
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("eval", help="closed-loop success rate to goal images, with baselines (no ROS)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="two_rooms", help="simulator env (default two_rooms)")
    p.add_argument("--bundle", type=Path, help="model bundle (default models/ENV of the package)")
    p.add_argument("--episodes", type=int, default=50, help="episodes per policy (default 50)")
    p.add_argument("--seed", type=int, default=0, help="seed of starts, goals and planners (default 0)")
    p.add_argument("--max-steps", type=int, default=200, help="control periods per episode (default 200)")
    p.add_argument("--radius", type=float, default=0.1, help="success radius in metres (default 0.1)")
    p.add_argument("--policies", default="latent,true_state,random,ros", help="comma-separated policies to run "
                   "(default: all four)")
    p.add_argument("--samples", type=int, default=256, help="planner samples per iteration (default 256)")
    p.add_argument("--iterations", type=int, default=3, help="planner iterations per step (default 3)")
    p.add_argument("--method", default="cem", choices=("cem", "mppi"), help="planner (default cem)")
    p.add_argument("--json", type=Path, help="write the results here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from jepa_pilot import sim
    from jepa_pilot.control.planner import PlannerConfig
    from jepa_pilot.evaluation.closed_loop import (LatentPolicy, LoopConfig, RandomPolicy, TrueStatePolicy,
                                                   goal_pairs, run_episode)
    from jepa_pilot.perception.engine import WorldModelEngine
    from jepa_pilot.perception.latents import resolve_bundle

    cfg = LoopConfig(episodes=args.episodes, seed=args.seed, max_steps=args.max_steps, success_radius=args.radius)
    planner = PlannerConfig(method=args.method, samples=args.samples, iterations=args.iterations, seed=args.seed)
    env = sim.make(args.env)
    pairs = goal_pairs(env, cfg.episodes, cfg.seed)
    makers = {"latent": lambda: LatentPolicy(WorldModelEngine(resolve_bundle(str(args.bundle or args.env)),
                                                              providers=("cuda", "cpu")), planner),
              "true_state": lambda: TrueStatePolicy(env, planner),
              "random": lambda: RandomPolicy(env.action_dim, cfg.seed)}
    results = {"env": args.env, "config": cfg.to_dict(), "planner": planner.to_dict(), "policies": {}}
    for name in args.policies.split(","):
        if name == "ros":
            episodes = run_through_ros(args, pairs, cfg, planner, env.config.control_period)
        else:
            policy = makers[name]()
            episodes = [run_episode(env, policy, start, goal, cfg)
                        for start, goal in tqdm(pairs, desc=name, unit="episode", mininterval=2.0)]
        ok = [e for e in episodes if e["success"]]
        summary = {"success_rate": len(ok) / len(episodes),
                   "steps_to_goal_median": float(np.median([e["steps"] for e in ok])) if ok else None,
                   "decision_ms_median": float(np.median([e["decision_ms"] for e in episodes])),
                   "closest_distance_median": float(np.median([e["closest"] for e in episodes]))}
        results["policies"][name] = {**summary, "episodes": episodes}
        print(f"{name:<11} success {summary['success_rate']:6.1%}  steps to goal {summary['steps_to_goal_median']}"
              f"  decision {summary['decision_ms_median']:.1f} ms  closest (median) {summary['closest_distance_median']:.3f} m")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def run_through_ros(args: argparse.Namespace, pairs, cfg, planner, period: float) -> list[dict]:
    """The same episodes through the ROS graph (launch/sim.launch.yaml jepa:=true), same planner settings."""
    import os

    import numpy as np
    from tqdm import tqdm

    from jepa_pilot.cli.launch import find_package_share, parse_launch_file
    from jepa_pilot.cli.supervisor import Launcher
    from jepa_pilot.cli.up import child_environment
    from jepa_pilot.nodes.goal_runner import run_goals  # rclpy lives in nodes/

    launch = find_package_share("jepa_pilot") / "launch" / "sim.launch.yaml"
    specs = parse_launch_file(launch, {"env": args.env, "seed": str(args.seed), "jepa": "true",
                                       **({"bundle": str(args.bundle)} if args.bundle else {})})
    for spec in specs:
        if spec.name == "planner":  # the planner node takes the settings the direct policies use
            spec.params.update({k: planner.to_dict()[k] for k in ("method", "samples", "iterations", "seed")})
    bar = tqdm(total=len(pairs), desc="ros", unit="episode", mininterval=2.0)
    with open(os.devnull, "w") as quiet, Launcher(specs, env=child_environment(os.environ), stream=quiet) as launcher:
        results, runner = run_goals(pairs, timeout=cfg.max_steps * period, radius=cfg.success_radius,
                                    alive=launcher.alive, on_goal=lambda i, r: bar.update(1))
    bar.close()
    planning = {}
    for _, m in runner.plans:
        key = round(m.goal_header.stamp.sec + m.goal_header.stamp.nanosec * 1e-9, 6)
        planning.setdefault(key, []).append(m.planning_time * 1e3)
    return [{"success": r.success, "steps": round(r.time_to_goal / period) if r.success else cfg.max_steps,
             "final_distance": r.final_distance, "closest": r.final_distance,
             "decision_ms": float(np.median(planning.get(round(r.goal_stamp, 6), [float("nan")])))}
            for r in results]
