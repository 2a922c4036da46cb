"""`jepa-pilot eval`: closed-loop goal reaching in a simulator, directly and through ROS.

Every policy runs the same (start, goal) pairs (for the two-rooms worlds,
start and goal in different rooms) and is scored by one definition: an
episode succeeds when the true task position (the base, or an arm's
fingertip) comes within --success-radius metres of the goal's at any control step
within --max-steps. A Gymnasium env (--env gym:ENV_ID) draws start and goal
itself where it has goals of its own (PointMaze), and its own success radius
is the default (PointMaze: 0.45 m); --max-steps counts control periods, so
with --action-repeat N it is N env steps each. Policies:

  latent      the bundle + the latent planner, called directly (no ROS); its cost is the way
              along the bundle's landmarks where it ships them (--no-landmarks: the latent distance)
  true_state  the same planner on the true position with the env's kinematics (a reference)
  random      uniform random actions (a lower bound)
  shortest_path  the env's own shortest route on the true state, followed with its steering law
              (PointMaze: a scripted controller with the map; a reference)
  ros         the whole ROS 2 graph (sim, encoder, planner, predictor nodes) with the bundle,
              goals given as images through the encoder's set_goal service

The planner settings default to those of the planner node in config/sim.yaml,
and the ros policy is given the same ones. The JSON has, per policy:
success_rate, episodes, steps_to_goal_median, time_to_goal_median_s,
decision_ms_median (the planner's time per decision), closest_distance_median,
final_distance_median, planner_reached_rate, and every episode's record.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

POLICIES = ("latent", "true_state", "random", "shortest_path", "ros")


def register(sub) -> None:
    from jepa_pilot.common.config import add_config_arguments
    from jepa_pilot.evaluation.closed_loop import LoopConfig

    p = sub.add_parser("eval", help="closed-loop success rate to goal images: directly, through ROS, baselines",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="two_rooms", help="simulator env, or gym:ENV_ID (default two_rooms)")
    p.add_argument("--env-kwargs", default="{}", help="gym:ENV_ID only: JSON keyword arguments for gymnasium.make")
    p.add_argument("--action-repeat", type=int, default=1,
                   help="gym:ENV_ID only: env steps each action is held for (as the data was collected)")
    p.add_argument("--bundle", help="model bundle: a name in models/ or a path (default: the env's name)")
    add_config_arguments(p, LoopConfig, exclude=("success_radius",))  # --episodes, --seed, --max-steps
    p.add_argument("--success-radius", type=float,
                   help="true distance to the goal that counts as reached (m); default: the env's own where it "
                        "has one (PointMaze: 0.45), else 0.1")
    p.add_argument("--policies", default="latent,true_state,random",
                   help=f"comma-separated, of {', '.join(POLICIES)} (default: latent,true_state,random)")
    p.add_argument("--samples", type=int, help="planner samples per iteration (default: config/sim.yaml)")
    p.add_argument("--iterations", type=int, help="planner iterations per step (default: config/sim.yaml)")
    p.add_argument("--method", choices=("cem", "mppi"), help="planner (default: config/sim.yaml)")
    p.add_argument("--goal-tolerance", type=float,
                   help="latent distance the planner counts as reached (default: config/sim.yaml's 1.5, about 7 cm "
                        "for two_rooms); calibrate per bundle: eval-model's goal_tolerance")
    p.add_argument("--no-landmarks", action="store_true",
                   help="latent: plan on the straight latent distance even if the bundle ships landmarks")
    p.add_argument("--json", type=Path, help="write the results here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jepa_pilot import sim
    from jepa_pilot.common.config import ConfigError, config_from_args
    from jepa_pilot.common.machine import command_line, machine
    from jepa_pilot.evaluation.closed_loop import LoopConfig, goal_pairs, sim_planner_settings

    names = [n.strip() for n in args.policies.split(",") if n.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown or not names:
        print(f"jepa-pilot eval: error: unknown policies {unknown}; choose from {', '.join(POLICIES)}")
        return 2
    overrides = {k: v for k, v in (("samples", args.samples), ("iterations", args.iterations),
                                   ("method", args.method), ("goal_tolerance", args.goal_tolerance)) if v is not None}
    try:
        env = sim.make(args.env, env_kwargs=args.env_kwargs, action_repeat=args.action_repeat)
        radius = args.success_radius if args.success_radius is not None else getattr(env, "success_radius", None)
        cfg = config_from_args(LoopConfig, args, success_radius=LoopConfig.success_radius if radius is None else radius)
        planner, supervisor = sim_planner_settings(seed=cfg.seed, **overrides)
    except (ConfigError, ValueError) as exc:
        print(f"jepa-pilot eval: error: {exc}")
        return 2
    pairs = goal_pairs(env, cfg.episodes, cfg.seed)
    results = {"command": command_line(args.argv), "machine": machine(), "env": args.env, "bundle": args.bundle or args.env,
               "config": cfg.to_dict(),
               "planner": planner.to_dict(), "supervisor": supervisor.to_dict(), "policies": {}}
    for name in names:
        if name == "ros":
            records = run_through_ros(args, env, pairs, cfg, planner, supervisor)
        else:
            try:
                records = run_direct(name, args, env, pairs, cfg, planner, supervisor)
            except ValueError as exc:
                print(f"jepa-pilot eval: error: {exc}")
                return 2
        report(results, name, records)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def report(results: dict, name: str, records) -> None:
    """Add one policy's summary and episodes to ``results`` and print its line."""
    from jepa_pilot.evaluation.metrics import summarize

    summary = summarize(records)
    results["policies"][name] = {**summary, "records": [r.to_dict() for r in records]}
    fmt = lambda v, f: format(v, f) if v is not None else "-"  # noqa: E731
    print(f"{name:<11} success {summary['success_rate']:6.1%}  steps to goal {fmt(summary['steps_to_goal_median'], '.0f')}"
          f"  decision {fmt(summary['decision_ms_median'], '.1f')} ms"
          f"  closest (median) {fmt(summary['closest_distance_median'], '.3f')} m"
          f"  planner said REACHED {summary['planner_reached_rate']:.0%}")


def run_direct(name: str, args, env, pairs, cfg, planner, supervisor):
    """The episodes of one direct policy, with a progress bar."""
    from tqdm import tqdm

    from jepa_pilot.evaluation.closed_loop import make_policy, run_episode

    policy = make_policy(name, env, planner, supervisor, cfg.seed, bundle=args.bundle, landmarks=not args.no_landmarks)
    return [run_episode(env, policy, start, goal, cfg)
            for start, goal in tqdm(pairs, desc=name, unit="episode", mininterval=2.0)]


def run_through_ros(args, env, pairs, cfg, planner, supervisor):
    """The same episodes through the ROS graph (launch/sim.launch.yaml jepa:=true), same planner settings."""
    import os

    from tqdm import tqdm

    from jepa_pilot.cli.supervisor import Launcher
    from jepa_pilot.cli.up import child_environment
    from jepa_pilot.evaluation.rosgraph import run_goals, sim_graph

    specs = sim_graph(args.env, args.seed, jepa=True, bundle=args.bundle,
                      planner={**planner.to_dict(), **supervisor.to_dict()})
    bar = tqdm(total=len(pairs), desc="ros", unit="episode", mininterval=2.0)
    with open(os.devnull, "w") as quiet, Launcher(specs, env=child_environment(os.environ), stream=quiet) as launcher:
        records, _, _ = run_goals(env, pairs, cfg.max_steps, cfg.success_radius, alive=launcher.alive,
                                  on_goal=lambda i, r: bar.update(1))
    bar.close()
    return records
