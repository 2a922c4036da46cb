"""`jepa-pilot bench`: measured numbers, printed and written as JSON.

  sim    MuJoCo stepping and rendering cost per env (no ROS)
  dds    camera images through the sim node and DDS (localhost), at real time and flat out
  model  a bundle's encoder and rollout latency with ONNX Runtime (--bundle, --providers)
  faults the sim graph driving to goals while faults are injected: nodes killed and restarted or
         frozen, the camera silent, bursting or dropping frames, the clock jumping back, the goal
         replaced; whether the robot stopped when it had to, how fast, and whether it resumed
  swap   what loading a bundle (as a hot-swap does, in a background thread) costs a control loop in
         the same process: the lateness of a 5 ms ticker thread while bundles load, against idle
  finetune  fine-tuning on live data of a changed robot (eval-adapt's changes), predictor only and with
         the encoder, as the online trainer runs it: time, steps/s, peak memory, the gate's verdict, and a
         score that compares latent spaces (rollout/copy-last MSE on held-out frames)
  loop   the sim graph's control loop at --camera-hz (30) driving to goals for --minutes (5), idle and
         beside a one-core CPU hog, --repeats (3) runs of each in turn: frame -> latent -> plan latency,
         command rate, planning time, dropped frames, stale stops, CPU per node, goals reached; the median
         of each over the runs, and each run's own; a latency plot
  soak   the sim graph driving to random goals for --minutes (60) at a 30 Hz camera; every node's memory,
         CPU, p99 latency and dropped messages each minute (--every); fails (exit 1) if a node's
         memory grows more than --max-growth after --warmup minutes, or a node dies
  gpu    a bundle's encoder, rollout (N 256, 4096) and full plan (default, 4096 samples) on every path
         this machine offers: ORT CPU, ORT CUDA, ORT CUDA with IO binding and CUDA graphs, the PyTorch
         CUDA-graph floor, plus a DINO-WM-sized planning reference; paths that cannot run say why
  planning  closed-loop success to goal images in --env (two_rooms) over --seeds (101,102,103) x
         --episodes (100), every --policies (latent, true_state, shortest_path, random; as `jepa-pilot
         eval` plays them): per seed, and the mean and spread; then the latent planner at each of
         --budgets (samples x iterations) on the first seed's first --budget-episodes (50), with a plot
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from jepa_pilot.cli.supervisor import Launcher
from jepa_pilot.cli.up import child_environment
from jepa_pilot.common.machine import command_line, machine

SOAK_SIM_STEP = 0.01  # s: the soak's sim node steps at 100 Hz

# name -> (sim node parameters, simulated seconds to run, wall-clock cap)
DDS_SCENARIOS = {
    "realtime_64px_10hz": (dict(control_period=0.1, camera_rate_hz=10.0, real_time_factor=1.0), 6.0, 30.0),
    "flat_out_64px": (dict(control_period=0.01, camera_rate_hz=100.0, real_time_factor=100.0), 1e9, 6.0),
    "flat_out_256px": (dict(control_period=0.01, camera_rate_hz=100.0, real_time_factor=100.0,
                            image_width=256, image_height=256), 1e9, 6.0),
}


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks: measured numbers, printed and written as JSON (sim, dds, model, swap, finetune, faults, "
                                         "loop, soak, gpu, planning)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("sim", "dds", "model", "swap", "finetune", "faults", "loop", "soak", "gpu",
                                     "planning"),
                   help="which benchmark")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--repeats", type=int, default=3, help="runs per measurement; medians are reported (default 3)")
    p.add_argument("--env", action="append", help="env(s) to measure (default: all for sim, two_rooms for dds)")
    p.add_argument("--bundle", help="model, swap, gpu, planning: bundle to measure (a name in models/ or a path; "
                                    "default two_rooms, planning: the env's name)")
    p.add_argument("--providers", default="cuda,cpu", help="model, swap: ONNX Runtime providers in order")
    p.add_argument("--faults", help="faults: comma-separated names (default: all; see evaluation/faults.py)")
    p.add_argument("--scale", type=float, default=1.0, help="faults: multiply each fault's duration (default 1)")
    p.add_argument("--log", type=Path, default=Path("out/bench/nodes.log"), help="faults, soak: the nodes' output")
    p.add_argument("--minutes", type=float, help="loop, soak: how long to drive (default: loop 5 per run, soak 60)")
    p.add_argument("--every", type=float, default=60.0, help="soak: seconds between samples (default 60)")
    p.add_argument("--warmup", type=float, default=5.0,
                   help="soak: minutes before memory is judged (default 5)")
    p.add_argument("--max-growth", type=float, default=0.05,
                   help="soak: the most a node's memory may grow after the warm-up, as a fraction (default 0.05)")
    p.add_argument("--camera-hz", type=float, default=30.0,
                   help="loop, soak: camera rate; the sim steps at 100 Hz (default 30)")
    p.add_argument("--compose", action="store_true",
                   help="loop: the encoder, planner and predictor in one process (compose:=true)")
    p.add_argument("--plot", type=Path, help="loop, soak, planning: the plot (default: next to --json, .png)")
    p.add_argument("--seeds", default="101,102,103", help="planning: comma-separated seeds of the start/goal pairs "
                                                          "(default 101,102,103: none was used to develop on)")
    p.add_argument("--episodes", type=int, default=100, help="planning: episodes per seed and policy (default 100)")
    p.add_argument("--policies", default="latent,true_state,shortest_path,random",
                   help="planning: direct policies, as `jepa-pilot eval` names them (default: all four)")
    p.add_argument("--budgets", default="32x1,64x2,128x3,256x3,512x5",
                   help="planning: samples x iterations to sweep (default 32x1,64x2,128x3,256x3,512x5; "
                        "256x3 is the planner node's); empty: no sweep")
    p.add_argument("--budget-episodes", type=int, default=50, help="planning: episodes per budget (default 50)")
    p.add_argument("--goal-tolerance", type=float,
                   help="planning: the planner's goal_tolerance (default: config/sim.yaml's; calibrate per bundle "
                        "with eval-model's goal_tolerance)")
    p.add_argument("--scenarios", default="rotation,gain,harmless",
                   help="finetune: world changes (eval-adapt's; default rotation,gain,harmless)")
    p.add_argument("--base-data", type=Path, default=Path("out/adapt/base"),
                   help="finetune: the base dataset (collected there as eval-adapt does if missing)")
    p.add_argument("--live-episodes", type=int, default=40,
                   help="finetune: episodes of 100 steps of the changed robot (default 40: 6.7 min at 10 Hz)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    benches = {"sim": bench_sim, "dds": bench_dds, "model": bench_model, "swap": bench_swap, "finetune": bench_finetune,
               "faults": bench_faults, "loop": bench_loop, "soak": bench_soak, "gpu": bench_gpu, "planning": bench_planning}
    if args.bundle is None and args.what != "planning":
        args.bundle = "two_rooms"
    results = benches[args.what](args)
    results = {"benchmark": args.what, "command": command_line(args.argv), "machine": machine(), "repeats": args.repeats,
               **results}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    if results.get("passed") is False:
        print(f"jepa-pilot bench {args.what}: FAILED: " + "; ".join(results["problems"]))
        return 1
    return 0


def bench_sim(args: argparse.Namespace) -> dict:
    from jepa_pilot.sim import benchmark

    out = benchmark.run(envs=args.env, repeats=args.repeats)
    print(f"{'env':<16}{'physics steps/s':>16}{'env.step/s':>12}{'render ms 64px':>16}{'step+render/s':>15}")
    for name, r in out["envs"].items():
        print(f"{name:<16}{r['physics_steps_per_s']:>16,.0f}{r['env_steps_per_s']:>12,.0f}"
              f"{r['render_ms_64x64']:>16.2f}{r['step_render_per_s']:>15,.0f}")
    return out


def bench_dds(args: argparse.Namespace) -> dict:
    from jepa_pilot import sim
    from jepa_pilot.evaluation.rosgraph import frame_loss, sim_graph, watch

    env_name = (args.env or ["two_rooms"])[0]
    world = sim.make(env_name)
    results = {}
    print(f"{'scenario':<22}{'images/s (wall)':>16}{'images/s (sim)':>15}{'real-time factor':>18}{'lost':>10}")
    for name, (params, sim_seconds, wall_cap) in DDS_SCENARIOS.items():
        runs = []
        for _ in range(args.repeats):
            specs = sim_graph(env_name, jepa=False, explore=False, sim=params)
            with open(os.devnull, "w") as quiet, Launcher(specs, env=child_environment(os.environ),
                                                          stream=quiet) as launcher:
                watcher = watch(world, sim_seconds, wall_timeout=wall_cap, keep_frames=False, alive=launcher.alive)
            walls, stamps = [w for w, _ in watcher.image_times], [s for _, s in watcher.image_times]
            span_wall = walls[-1] - walls[0] if len(walls) > 1 else float("nan")
            span_sim = stamps[-1] - stamps[0] if len(stamps) > 1 else float("nan")
            loss = frame_loss(stamps, params["camera_rate_hz"])
            runs.append({"images": len(stamps), "wall_rate": (len(stamps) - 1) / span_wall,
                         "sim_rate": (len(stamps) - 1) / span_sim, "rtf": span_sim / span_wall, **loss})
        med = {k: statistics.median(r[k] for r in runs) for k in ("wall_rate", "sim_rate", "rtf", "lost", "loss_rate")}
        results[name] = {"params": params, "median": med, "runs": runs}
        print(f"{name:<22}{med['wall_rate']:>16.1f}{med['sim_rate']:>15.1f}{med['rtf']:>18.2f}{med['lost']:>10.0f}")
    return {"env": env_name, "loss_definition": frame_loss.__doc__.split(chr(10))[0], "scenarios": results}


def bench_finetune(args: argparse.Namespace) -> dict:
    from jepa_pilot.evaluation import finetune_bench
    from jepa_pilot.evaluation.adapt import ensure_base_data, parse_scenarios
    from jepa_pilot.perception.latents import resolve_bundle
    from jepa_pilot.world_model.online import OnlineConfig

    ensure_base_data(args.base_data)
    return finetune_bench.run(resolve_bundle(args.bundle), args.base_data, parse_scenarios(args.scenarios),
                              args.live_episodes, 100, 1, OnlineConfig())


def bench_model(args: argparse.Namespace) -> dict:
    import numpy as np

    from jepa_pilot.common.timing import median_ms
    from jepa_pilot.perception.engine import WorldModelEngine
    from jepa_pilot.perception.latents import resolve_bundle

    engine = WorldModelEngine(resolve_bundle(args.bundle), providers=args.providers.split(","))
    spec, rng = engine.spec, np.random.default_rng(0)

    frames = lambda n: rng.random((n, 3, spec.image_size, spec.image_size), dtype=np.float32)  # noqa: E731
    image = rng.integers(0, 255, (spec.image_size, spec.image_size, 3), dtype=np.uint8)
    z = np.zeros((spec.history, spec.latent_dim), np.float32)
    out = {"bundle": str(args.bundle), "model_id": spec.model_id, "providers": engine.providers,
           "horizon": spec.horizon, "frameskip": spec.frameskip, "encoder_ms": {}, "rollout_ms": {}}
    out["encoder_ms"]["raw_frame_batch1"] = median_ms(lambda: engine.encode(image), 200 * args.repeats)
    for n in (1, 16):
        x = frames(n)
        out["encoder_ms"][f"batch{n}"] = median_ms(lambda: engine.encode_prepared(x), 200 * args.repeats)
    for n in (64, 256, 1024):
        a = rng.uniform(-1, 1, (n, spec.horizon * spec.frameskip, spec.action_dim)).astype(np.float32)
        out["rollout_ms"][f"N{n}"] = median_ms(lambda: engine.rollout(z, a), 30 * args.repeats)
    print(f"{spec.model_id} on {engine.providers[0]} (horizon {spec.horizon} model steps)")
    print("encoder ms:  " + ", ".join(f"{k} {v:.2f}" for k, v in out["encoder_ms"].items()))
    print("rollout ms:  " + ", ".join(f"{k} {v:.1f}" for k, v in out["rollout_ms"].items()))
    return out


def bench_swap(args: argparse.Namespace) -> dict:
    """A ticker thread wakes every 5 ms, as an executor's timer would, and records how late it woke;
    meanwhile a loader thread loads, checks and warms the bundle 10 x --repeats times with
    ``perception.swap.load_engine`` (what a node does on a model update; 1 ORT thread, as the sim graph's
    nodes). If building ONNX Runtime sessions held Python's GIL, the ticker would wake late by as much."""
    import threading
    import time

    import numpy as np

    from jepa_pilot.perception.swap import load_engine

    tick, loads = 0.005, 10 * args.repeats

    def ticker(stop: threading.Event, late: list[float]) -> None:
        due = time.perf_counter()
        while not stop.is_set():
            due += tick
            time.sleep(max(due - time.perf_counter(), 0.0))
            late.append(time.perf_counter() - due)
            due = max(due, time.perf_counter() - tick)  # a long stall counts once, not as a burst of late ticks

    def measure(work) -> tuple[list[float], object]:
        stop, late = threading.Event(), []
        thread = threading.Thread(target=ticker, args=(stop, late), daemon=True)
        thread.start()
        out = work()
        stop.set()
        thread.join()
        return late, out

    def load_all() -> list[float]:
        times = []
        for _ in range(loads):
            start = time.perf_counter()
            load_engine(args.bundle, args.providers.split(","), 1, check=lambda engine: None)
            times.append(time.perf_counter() - start)
        return times

    def in_thread(fn):  # the loader is a thread of its own, as perception.swap.Staging's
        result: list = []
        thread = threading.Thread(target=lambda: result.append(fn()))
        thread.start()
        thread.join()
        return result[0]

    idle, _ = measure(lambda: time.sleep(2.0))
    busy, load_s = measure(lambda: in_thread(load_all))
    ms = lambda xs, q: round(float(np.percentile(xs, q)) * 1e3, 3)  # noqa: E731
    out = {"bundle": str(args.bundle), "providers": args.providers, "tick_ms": tick * 1e3, "loads": loads,
           "load_ms_median": ms(load_s, 50), "load_ms_max": ms(load_s, 100),
           "idle": {"ticks": len(idle), "late_ms_p50": ms(idle, 50), "late_ms_p99": ms(idle, 99),
                    "late_ms_max": ms(idle, 100)},
           "loading": {"ticks": len(busy), "late_ms_p50": ms(busy, 50), "late_ms_p99": ms(busy, 99),
                       "late_ms_max": ms(busy, 100)}}
    print(f"{loads} loads of {args.bundle}: {out['load_ms_median']:.1f} ms median, {out['load_ms_max']:.1f} ms max")
    for name in ("idle", "loading"):
        r = out[name]
        print(f"{tick * 1e3:g} ms ticker, {name:<8} late p50 {r['late_ms_p50']:.2f} ms, p99 {r['late_ms_p99']:.2f} ms, "
              f"max {r['late_ms_max']:.2f} ms ({r['ticks']} ticks)")
    return out


def bench_faults(args: argparse.Namespace) -> dict:
    from jepa_pilot import sim
    from jepa_pilot.evaluation.closed_loop import sim_planner_settings
    from jepa_pilot.evaluation.faults import FAULTS, FaultRun, combine_runs, pairs_for, run_fault, summary_line
    from jepa_pilot.evaluation.rosgraph import sim_graph, wait_until_up, watching

    chosen = [f for f in FAULTS if not args.faults or f.name in args.faults.split(",")]
    if args.faults and len(chosen) != len(args.faults.split(",")):
        raise SystemExit(f"jepa-pilot bench faults: unknown fault in {args.faults!r}; "
                         f"known: {', '.join(f.name for f in FAULTS)}")
    env = sim.make("two_rooms")
    _, supervisor = sim_planner_settings()
    stop_limit = env.config.control_period + supervisor.max_latent_age
    relay = "/camera/relayed"  # the encoder sees the camera through the harness, which injects camera faults
    specs = sim_graph("two_rooms", jepa=True, encoder={"image_topic": relay})
    nodes = [spec.name for spec in specs]
    start, goals = pairs_for(env)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    results = []
    with open(args.log, "w") as log, Launcher(specs, env=child_environment(os.environ), stream=log) as launcher, \
            watching(env, keep_frames=False, relay_to=relay) as watcher:
        wait_until_up(watcher, launcher.alive)
        run = FaultRun(launcher, watcher, goals)
        for fault in chosen:
            runs = [run_fault(fault, run, start, goals[0], stop_limit, nodes, args.scale) for _ in range(args.repeats)]
            results.append({**combine_runs(runs), "runs": runs})
            print(summary_line(results[-1]), flush=True)
    print(f"node logs: {args.log}")
    return {"env": "two_rooms", "stop_limit_s": stop_limit, "scale": args.scale, "faults": results}


def bench_loop(args: argparse.Namespace) -> dict:
    from jepa_pilot.evaluation import loop_bench

    minutes = 5.0 if args.minutes is None else args.minutes
    if minutes <= 0 or not 1.0 <= args.camera_hz <= 100.0 or args.repeats < 1:
        raise SystemExit("jepa-pilot bench loop: --minutes must be > 0, --camera-hz in [1, 100], --repeats >= 1")
    args.log.parent.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list] = {"idle": [], "loaded": []}

    def report(s: dict) -> str:
        return (f"{s['command_rate_hz']} commands/s; frame->plan p50 {s['latency_ms_p50']} ms, p99 "
                f"{s['latency_ms_p99']} ms; planning p50 {s['plan_ms_p50']} ms; stale stops {s['stale_stops']}, "
                f"overrun stops {s['overrun_stops']}; goals {s['goals_reached']}/{s['goals']}")
    with open(args.log, "w") as log:
        for repeat in range(1, args.repeats + 1):  # idle and loaded in turn: a machine that drifts shows in both
            for name in runs:
                print(f"{name} {repeat}/{args.repeats}: {minutes:g} min at a {args.camera_hz:g} Hz camera"
                      + (", a one-core CPU hog beside it" if name == "loaded" else ""), flush=True)
                runs[name].append(loop_bench.run(
                    minutes * 60.0, args.camera_hz, name == "loaded", log, compose=args.compose,
                    on_goal=lambda n, ok: print(f"  goals {ok}/{n}", end="\r", flush=True)))
                print("  " + report(runs[name][-1]["summary"]))
    combined = {name: loop_bench.combine([r["summary"] for r in done]) for name, done in runs.items()}
    if args.repeats > 1:
        for name, s in combined.items():
            print(f"{name}, median of {args.repeats}: " + report(s))
    plot_path = args.plot or (args.json.with_suffix(".png") if args.json else Path("out/bench/loop.png"))
    loop_bench.plot({f"{name} {k}" if args.repeats > 1 else name: run for name, done in runs.items()
                     for k, run in enumerate(done, 1)}, plot_path)
    print(f"plot: {plot_path}")
    return {"env": "two_rooms", "sim_step_s": loop_bench.SIM_STEP, "minutes_per_run": minutes, "compose": args.compose,
            "definitions": loop_bench.__doc__.split("\n\n", 1)[1], "plot": str(plot_path), **combined}


def bench_gpu(args: argparse.Namespace) -> dict:
    from jepa_pilot.evaluation import gpu_bench

    out = gpu_bench.run(args.bundle, calls=50 * args.repeats)
    cuda = out["cuda"]
    print(f"{out['model_id']}; CUDA: " + (cuda.get("device", "") if cuda["available"] else f"not measured ({cuda['why']})"))
    ms = lambda m: f"{m['ms_p50']:.3f}" if "ms_p50" in m else "failed"  # noqa: E731
    for name, path in out["paths"].items():
        if "encoder" in path:
            plans = ", ".join(f"{k} {ms(v)}" for k, v in path["plan"].items())
            rollouts = ", ".join(f"{k} {ms(v)}" for k, v in path["rollout"].items())
            print(f"  {name:22s} encoder {ms(path['encoder'])} ms; rollout {rollouts} ms; plan {plans} ms")
            if "plan_op_by_op" in path:
                print(f"  {'':22s} the same search op by op: " +
                      ", ".join(f"{k} {ms(v)}" for k, v in path["plan_op_by_op"].items()) + " ms")
    if "ms_p50" in out["dino_wm_reference"]:
        print(f"  DINO-WM-sized plan: {out['dino_wm_reference']['ms_p50']:.1f} ms")
    for where, why in gpu_bench.failures(out):
        print(f"  failed: {where}: {why}")
    return out


def bench_soak(args: argparse.Namespace) -> dict:
    from jepa_pilot import sim
    from jepa_pilot.evaluation.closed_loop import LoopConfig, goal_pairs
    from jepa_pilot.evaluation.rosgraph import sim_graph, wait_until_up, watching
    from jepa_pilot.evaluation.soak import Soak, plot, summary_line, verdict

    args.minutes = 60.0 if args.minutes is None else args.minutes
    if args.minutes <= args.warmup:
        raise SystemExit(f"jepa-pilot bench soak: --minutes {args.minutes:g} must be longer than --warmup "
                         f"{args.warmup:g} (memory is judged after the warm-up)")
    if not 1.0 <= args.camera_hz <= 100.0 or args.every <= 0 or args.max_growth <= 0:
        raise SystemExit("jepa-pilot bench soak: --camera-hz must be in [1, 100], --every and --max-growth > 0")
    env, loop = sim.make("two_rooms"), LoopConfig()
    # The sim steps at 100 Hz (a whole number of physics steps), the camera at --camera-hz within it.
    specs = sim_graph("two_rooms", jepa=True, sim=dict(control_period=SOAK_SIM_STEP, camera_rate_hz=args.camera_hz))
    pairs = goal_pairs(env, 10_000, seed=0)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    died: dict[str, int] = {}
    with open(args.log, "w") as log, Launcher(specs, env=child_environment(os.environ), stream=log) as launcher, \
            watching(env, keep_frames=False) as watcher:
        wait_until_up(watcher, launcher.alive)
        soak = Soak(launcher, watcher, args.camera_hz, args.every, on_sample=lambda r: print(summary_line(r), flush=True))
        end = soak.start + args.minutes * 60.0
        for start, goal in pairs:
            if soak.clock() >= end or not launcher.alive():
                break
            try:
                record, _ = watcher.run_goal(start, goal, loop.max_steps, loop.success_radius, alive=soak.poll)
            except RuntimeError as exc:  # a node died or stalled: recorded below
                print(f"episode ended early: {exc}")
                break
            soak.episode_done(record.success)
            watcher.forget(soak.last - 5.0)  # keep only what the next sample still needs
        while soak.clock() < end and soak.poll():  # the last goal may end early; sample to the end
            watcher.spin_until(lambda: False, 0.2)
        if soak.clock() - soak.last > 0.5 * args.every:
            soak.sample()
        died = {n: p.returncode for n, p in launcher.processes.items() if p.poll() is not None}
    result = verdict(soak.samples, args.warmup, args.max_growth, died)
    plot_path = args.plot or (args.json.with_suffix(".png") if args.json else Path("out/bench/soak.png"))
    plot(soak.samples, result, plot_path)
    print(f"{soak.reached}/{soak.goals} goals reached; memory after warm-up: " + ", ".join(
        f"{n} {100 * m['growth']:+.1f} %" for n, m in result["memory"].items()))
    print(f"plot: {plot_path}; node logs: {args.log}")
    return {"env": "two_rooms", "minutes": args.minutes, "every_s": args.every, "camera_hz": args.camera_hz,
            "goals": soak.goals, "reached": soak.reached, **result, "plot": str(plot_path),
            "samples": soak.samples}


def bench_planning(args: argparse.Namespace) -> dict:
    from tqdm import tqdm

    from jepa_pilot import sim
    from jepa_pilot.common.config import ConfigError
    from jepa_pilot.evaluation import planning_bench
    from jepa_pilot.evaluation.closed_loop import LoopConfig, sim_planner_settings

    env_name = (args.env or ["two_rooms"])[0]
    try:
        seeds = [int(v) for v in args.seeds.split(",") if v.strip()]
        budgets = planning_bench.parse_budgets(args.budgets) if args.budgets.strip() else []
        policies = [v.strip() for v in args.policies.split(",") if v.strip()]
        env = sim.make(env_name)
        radius = getattr(env, "success_radius", None) or LoopConfig.success_radius
        loop = LoopConfig(episodes=args.episodes, success_radius=radius)
        planner, supervisor = sim_planner_settings(**({} if args.goal_tolerance is None
                                                       else {"goal_tolerance": args.goal_tolerance}))
        progress = lambda pairs, label: tqdm(pairs, desc=label, unit="episode", mininterval=5.0)  # noqa: E731
        out = {"env": env_name, "bundle": args.bundle or env_name, "loop": loop.to_dict(),
               "planner": planner.to_dict(), "supervisor": supervisor.to_dict(),
               **planning_bench.run_seeds(env, policies, seeds, loop, planner, supervisor, args.bundle, progress=progress)}
        print(f"{'policy':<14}{'success mean':>13}{'min':>7}{'max':>7}{'to goal (s)':>13}{'decision (ms)':>15}")
        for name, p in out["policies"].items():
            fmt = lambda v, f: format(v, f) if v is not None else "-"  # noqa: E731
            print(f"{name:<14}{p['success_mean']:>13.1%}{p['success_min']:>7.0%}{p['success_max']:>7.0%}"
                  f"{fmt(p['time_to_goal_median_s'], '.1f'):>13}{fmt(p['decision_ms_median'], '.1f'):>15}")
        if budgets:
            sweep = LoopConfig(episodes=args.budget_episodes, seed=seeds[0], success_radius=radius)
            out["budgets"] = planning_bench.run_budgets(env, budgets, sweep, planner, supervisor, args.bundle,
                                                        progress=progress)
            for b in out["budgets"]:
                print(f"budget {b['samples']:>4} x {b['iterations']}: success {b['success_rate']:6.1%}, "
                      f"decision {b['decision_ms_median']:.1f} ms")
            plot = args.plot or (args.json.with_suffix(".png") if args.json else None)
            if plot:
                planning_bench.plot_budgets(out["budgets"], plot, f"{out['bundle']} on {env_name}, seed {seeds[0]}")
                print(f"wrote {plot}")
    except (ConfigError, ValueError) as exc:
        raise SystemExit(f"jepa-pilot bench planning: error: {exc}") from None
    return out
