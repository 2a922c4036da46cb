"""`jepa-pilot eval-adapt`: the adaptation benchmark. Change the robot mid-run; does the graph learn it?

On two_rooms, through the whole ROS 2 graph with online learning
(launch/sim.launch.yaml jepa:=true learn:=true: sim, encoder, planner,
predictor, goal and trainer nodes), each scenario in a fresh graph with a
fresh trainer work_dir (OUT/SCENARIO/learn, deleted first):

  rotation  the sim node's action_rotation_deg 90: every command turned a quarter turn
  gain      action_gain 0.5: the robot moves at half the commanded speed
  harmless  light_scale 1.1: a slightly brighter scene; no update should be accepted

Phases of a scenario:

  before          --goals goals on the unchanged robot
  (the change)    the sim parameter, set through /sim/set_parameters
  after_change    the same goals at once; the model is still the trained one
  learning        goals from a stream of other pairs while the trainer records and
                  fine-tunes and the graph swaps to each bundle it accepts, until
                  --learn-minutes of wall time since the change pass (checked between goals)
  after_learning  the same goals again, once the trainer no longer asks for exploration

Success is the project's one definition (true position within 0.1 m of the
goal's within 200 control steps). The trainer fine-tunes only while surprised
(its drift monitor: the current model's median surprise while the robot moves,
at least 1.25 times the base model's at the start), at most every --update-every
wall seconds and once 300 new steps are recorded, --finetune-steps optimiser steps
each, on its recordings mixed with the base dataset: --base-data, by default
OUT/base, collected if missing (200 episodes x 100 steps, seed 0: the
collector and seeds of the shipped bundle's training data). When a fine-tune
finds the world changed, the trainer asks the planner to explore (random
actions) for --explore-seconds; goals given meanwhile are mostly missed.

With --baseline, the same goals are first driven once in a graph without the
trainer (the JSON's "baseline": its "before" phase), so the command periods
with the trainer can be compared with those without it.

Outputs:
  --json (default OUT/adapt.json): command, machine, settings, the base data, and
      per scenario: the change; per phase success_rate, surprise_median (of the
      /jepa/surprise distances received during the phase), minutes_of_live_data
      (simulated minutes since the change, at the phase's end), updates_accepted
      (the trainer's count), last_verdict and the episodes; the updates (model id,
      reason, when announced and swapped in, the longest command period and the
      missed periods within 2 s of the swap); per phase also the command period
      p50/p99 while driven and the missed periods (gaps over 1.5 control periods)
      and minutes_exploring; exploration (wall-minute spans);
      trainer_memory_mb (its process group, fine-tune child included, after
      each goal); recovery_minutes (minutes of live
      data until the first update after the change was swapped in; null: none)
      and success_recovered (after_learning within 5 points of before); the series
  a PNG next to the JSON (same stem): per scenario, success over time (rolling
      mean over 5 goals) and surprise over time, the change and each update as
      vertical lines, exploration shaded orange, the phases shaded grey
  --log (default OUT/nodes.log): every node's output

Exit status 0; 1 if a scenario failed (a node died or stalled; see --log); 2 for bad options.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub) -> None:
    from jepa_pilot.common.config import add_config_arguments
    from jepa_pilot.evaluation.adapt import SCENARIOS, AdaptConfig

    p = sub.add_parser("eval-adapt", help="adaptation benchmark: change the robot mid-run, learn online, measure",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, help="write the results here (default: OUT/adapt.json); the plot beside it")
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help=f"comma-separated, of {', '.join(SCENARIOS)} (default: all)")
    add_config_arguments(p, AdaptConfig)  # --goals, --learn-minutes, --seed, --update-every, --finetune-steps, --explore-seconds
    p.add_argument("--base-data", type=Path, help="the base dataset the trainer mixes in (default: OUT/base, "
                                                  "collected if missing)")
    p.add_argument("--baseline", action="store_true",
                   help="first drive the measured goals once in a graph without the trainer (the JSON's baseline: "
                        "command periods to compare the scenarios' with)")
    p.add_argument("--out", type=Path, default=Path("out/adapt"), help="work folder (default: out/adapt)")
    p.add_argument("--log", type=Path, help="the nodes' output (default: OUT/nodes.log)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jepa_pilot.common.config import ConfigError, config_from_args
    from jepa_pilot.common.machine import command_line, machine
    from jepa_pilot.evaluation import adapt

    try:
        cfg = config_from_args(adapt.AdaptConfig, args)
        names = adapt.parse_scenarios(args.scenarios)
        base = adapt.check_base_data(args.base_data) if args.base_data else args.out / "base"
        collected = False if args.base_data else adapt.ensure_base_data(base)
    except (ConfigError, ValueError) as exc:
        print(f"jepa-pilot eval-adapt: error: {exc}")
        return 2
    json_path, log_path = args.json or args.out / "adapt.json", args.log or args.out / "nodes.log"
    results = {"command": command_line(args.argv), "machine": machine(),
               **adapt.settings(cfg, base, collected, given=bool(args.base_data)), "scenarios": {}}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        if args.baseline:
            results["baseline"] = run_one("baseline", cfg, base, args.out, log)
        for name in names:
            results["scenarios"][name] = run_one(name, cfg, base, args.out, log)
    return report(results, json_path, log_path)


def run_one(name: str, cfg, base: Path, out: Path, log) -> dict:
    """One scenario's results, or what stopped it (a node died or stalled, a refused change)."""
    from jepa_pilot.evaluation import adapt

    progress = lambda line: print(line, flush=True)  # noqa: E731
    try:
        if name == "baseline":
            return adapt.run_baseline(cfg, log, progress)
        return adapt.run_scenario(name, cfg, base, out, log, progress=progress)
    except RuntimeError as exc:
        print(f"[{name}] stopped: {exc}", flush=True)
        return {"change": {"node": "sim", "parameters": adapt.SCENARIOS.get(name, {})}, "error": str(exc)}


def report(results: dict, json_path: Path, log_path: Path) -> int:
    """Plot, write the JSON, print a line per scenario; 1 if a scenario failed."""
    from jepa_pilot.evaluation import adapt

    plot_path = json_path.with_suffix(".png")
    adapt.plot(results, plot_path)
    results["plot"] = str(plot_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    baseline = results.get("baseline", {}).get("phases", {}).get("before")
    if baseline:
        print(f"baseline (no trainer): {baseline['success_rate']:.0%} reached, command period p50/p99 "
              f"{baseline['command_period_ms_p50']} / {baseline['command_period_ms_p99']} ms, "
              f"{baseline['missed_periods']} missed")
    for name, scenario in results["scenarios"].items():
        print(adapt.summary_line(name, scenario))
    print(f"wrote {json_path} and {plot_path}; node logs: {log_path}")
    failed = [s for s in [*results["scenarios"].values(), results.get("baseline", {})] if "error" in s]
    return 1 if failed else 0
