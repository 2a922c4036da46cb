"""`jepa-pilot bench loop`: the control loop at camera rate, on an idle machine and beside a CPU hog.

One run: the sim graph (sim node stepping at 100 Hz with its camera at
``camera_hz``; encoder, planner and predictor nodes; real DDS on this
machine) driving the robot to random goal images (the soak's start/goal
pairs) for ``seconds`` of wall time. ``loaded`` is the same run with a CPU
hog beside it: one process spinning on one core at normal priority.

Per camera frame, on this machine's system clock, from the times the
publishers sent the messages (the DDS source timestamps the harness reads;
its own delivery delays do not count):

* ``latency``: the sim node sends the frame -> the planner sends the plan
  made from the latent of that frame (PlanStatus header = the frame's
  stamp); plans that drove only (a command goes out with each);
* ``encode``: the frame sent -> its latent sent;
* ``plan_ms``: the planner's own time per plan (``PlanStatus.planning_time``).

For the run: the command rate (``/cmd_vel`` messages per wall second), the
command rate while driving (plans that drove per wall second, over the
spans of driving plans with no gap over 0.5 s: the resets between goals
left out),
frames that did not reach the harness against the camera rate, latents the
planner refused and frames the encoder refused (their ``/diagnostics``
counters), the planner's stops for stale latents and for overrun plans (its
counts by cause), CPU per node process group and of the harness itself, and the CPU the
hypervisor took from this machine (``stolen``: steal time; a virtual machine whose host is busy
runs slower, whatever the code; all in one unit, 100 % = one core), goals
finished within the run (reached or out of steps) and reached, the median
simulated time to reach one, and the sim's real-time factor at the end (a
sim that cannot keep up stretches every goal in wall time); the goal the
end of the run interrupted counts in neither (``goal_cut_short``). :func:`summarize` computes everything from the recorded
series (no ROS), so it is tested on its own.

Several runs (``--repeats``) are combined by :func:`combine`: each number
is the median over the runs (per node inside ``cpu_pct``), a node that died
in any run is reported, and every run's own summary is kept in ``runs``.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from jepa_pilot.evaluation.rosgraph import frame_loss
from jepa_pilot.evaluation.soak import group_usage, stolen_seconds

__all__ = ["SIM_STEP", "COUNTERS", "percentiles_ms", "frame_latencies", "driving_rate", "summarize", "combine", "hog",
           "run", "plot"]

SIM_STEP = 0.01  # s: the sim node steps at 100 Hz, the camera at camera_hz within it
# (node, /diagnostics key) -> the summary's name for the counter's change over the run
COUNTERS = {("planner", "stops_stale"): "stale_stops", ("planner", "stops_overrun"): "overrun_stops",
            ("planner", "dropped_latents"): "latents_refused_by_planner", ("encoder", "dropped"): "frames_refused_by_encoder"}
GAUGES = {("sim", "real_time_factor"): "sim_real_time_factor"}  # values at the end of the run (not differences)


def percentiles_ms(seconds, prefix: str) -> dict:
    """{prefix_ms_p50, prefix_ms_p99} of durations in seconds (None when there are none)."""
    values = np.asarray(seconds, dtype=float)
    if not len(values):
        return {f"{prefix}_ms_p50": None, f"{prefix}_ms_p99": None}
    p50, p99 = np.percentile(values, [50, 99]) * 1e3
    return {f"{prefix}_ms_p50": round(float(p50), 2), f"{prefix}_ms_p99": round(float(p99), 2)}


def frame_latencies(frames, later) -> list[tuple[float, float]]:
    """For each (time, stamp) in ``later`` whose stamp is a frame's in ``frames`` ((time, stamp) of the
    frames): (its time, its time minus the frame's), in seconds."""
    sent = {round(stamp, 6): t for t, stamp in frames}
    return [(t, t - sent[key]) for t, stamp in later if (key := round(stamp, 6)) in sent]


def driving_rate(times, camera_hz: float, gap: float = 0.5) -> float:
    """Plans that drove per wall second while the robot was driving: the spans of driving plans with
    no gap over ``gap`` s (between goals the harness resets the robot and nothing drives), each span
    from its first plan to one camera period after its last."""
    times = np.sort(np.asarray(times, dtype=float))
    if not len(times):
        return 0.0
    breaks = np.flatnonzero(np.diff(times) > gap)
    firsts, lasts = times[np.r_[0, breaks + 1]], times[np.r_[breaks, len(times) - 1]]
    return round(float(len(times) / np.sum(lasts - firsts + 1.0 / camera_hz)), 2)


def summarize(frames, latents, plans, commands, seconds: float, camera_hz: float,
              counters_before: dict, counters_after: dict, cpu_pct: dict, goals: int, reached: int,
              times_to_goal=()) -> dict:
    """One run's numbers. ``frames``, ``latents``: (time sent, stamp); ``plans``: (time sent, stamp, drove,
    planning_time) per PlanStatus; ``commands``: arrival times on /cmd_vel; counters: {summary name: value}
    at the start and the end. Frames lost are frames that never reached the harness."""
    drove = [(t, stamp) for t, stamp, driving, _ in plans if driving]
    latency = [lat for _, lat in frame_latencies(frames, drove)]
    out = {"camera_hz": camera_hz, "seconds": round(seconds, 1),
           "command_rate_hz": round(len(commands) / seconds, 2) if seconds > 0 else 0.0,
           "command_rate_driving_hz": driving_rate([t for t, _ in drove], camera_hz),
           **percentiles_ms(latency, "latency"),
           **percentiles_ms([lat for _, lat in frame_latencies(frames, latents)], "encode"),
           **percentiles_ms([t for _, _, driving, t in plans if driving], "plan"),
           "plans": len(plans), "plans_driving": len(drove), "frames_with_a_plan": len(latency),
           "camera_at_harness": frame_loss([stamp for _, stamp in frames], camera_hz),
           "goals": goals, "goals_reached": reached,
           "time_to_goal_s_p50": round(float(np.median(times_to_goal)), 2) if len(times_to_goal) else None,
           "cpu_pct": cpu_pct}
    for name in COUNTERS.values():
        before, after = counters_before.get(name), counters_after.get(name)
        out[name] = None if after is None else int(after - (before or 0))
    for name in GAUGES.values():
        out[name] = None if counters_after.get(name) is None else round(counters_after[name], 3)
    return out


def _median(values: list):
    """The median of the runs' values of one field: numbers -> a number (None if a run has none),
    dicts -> per key, anything else -> the common value (the list if the runs differ)."""
    if any(v is None for v in values):
        return None
    if isinstance(values[0], dict):
        return {k: _median([v.get(k) for v in values]) for k in dict.fromkeys(k for v in values for k in v)}
    if isinstance(values[0], (int, float)) and not isinstance(values[0], bool):
        return round(float(np.median(values)), 2)
    return values[0] if all(v == values[0] for v in values) else values


def combine(summaries: list[dict]) -> dict:
    """Several runs' summaries as one: the median of each field, the nodes that died in any run, and
    the runs themselves (``runs``)."""
    out = {key: _median([s.get(key) for s in summaries]) for key in summaries[0] if key != "nodes_died"}
    out["nodes_died"] = {name: code for s in summaries for name, code in s["nodes_died"].items()}
    return {**out, "repeats": len(summaries), "runs": summaries}


@contextlib.contextmanager
def hog(on: bool):
    """A process spinning on one core for the duration (nothing when ``on`` is false)."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) if on else None
    try:
        yield proc
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


def _counters(watcher) -> dict:
    out = {}
    for (node, key), name in {**COUNTERS, **GAUGES}.items():
        try:
            out[name] = float(watcher.diagnostics.get(node, {})[key])
        except (KeyError, ValueError):
            pass
    return out


def run(seconds: float, camera_hz: float, loaded: bool, log_file, on_goal: Callable[[int, int], None] = None,
        compose: bool = False) -> dict:
    """One run of the sim graph (see the module docstring); returns its summary and latency series."""
    from jepa_pilot import sim
    from jepa_pilot.cli.supervisor import Launcher
    from jepa_pilot.cli.up import child_environment
    from jepa_pilot.evaluation.closed_loop import LoopConfig, goal_pairs
    from jepa_pilot.evaluation.rosgraph import sim_graph, wait_until_up, watching

    env, loop = sim.make("two_rooms"), LoopConfig()
    specs = sim_graph("two_rooms", jepa=True, compose=compose,
                      sim=dict(control_period=SIM_STEP, camera_rate_hz=camera_hz))
    goals = reached = cut = 0
    times: list[float] = []  # simulated seconds to each goal reached
    with Launcher(specs, env=child_environment(os.environ), stream=log_file) as launcher, \
            watching(env, keep_frames=False) as watcher:
        wait_until_up(watcher, launcher.alive)
        watcher.spin_until(lambda: "planner" in watcher.diagnostics and "encoder" in watcher.diagnostics, 30)
        with hog(loaded):
            start, before = time.monotonic(), _counters(watcher)
            cpu0 = {name: group_usage(launcher.processes[name].pid)[1] for name in launcher.labels}
            harness0, stolen0 = time.process_time(), stolen_seconds()
            for start_state, goal in goal_pairs(env, 10_000, seed=0):
                left = start + seconds - time.monotonic()
                if left <= 0 or not launcher.alive():
                    break
                try:
                    record, _ = watcher.run_goal(start_state, goal, loop.max_steps, loop.success_radius,
                                                 alive=lambda: launcher.alive() and time.monotonic() < start + seconds)
                except RuntimeError:  # time ran out mid-goal (or a node died: the summary shows it)
                    cut = 1
                    break
                goals, reached = goals + 1, reached + bool(record.success)
                if record.success:
                    times.append(record.time_to_goal)
                if on_goal is not None:
                    on_goal(goals, reached)
            elapsed = time.monotonic() - start
            cpu = {name: round(100.0 * (group_usage(launcher.processes[name].pid)[1] - cpu0[name]) / elapsed, 1)
                   for name in launcher.labels}
            cpu["harness"] = round(100.0 * (time.process_time() - harness0) / elapsed, 1)
            cpu["stolen"] = round(100.0 * (stolen_seconds() - stolen0) / elapsed, 1)
        watcher.spin_until(lambda: False, 1.5)  # the counters' next /diagnostics (published every second)
        after = _counters(watcher)
        died = {name: p.returncode for name, p in launcher.processes.items() if p.poll() is not None}
        in_run = lambda wall: start <= wall <= start + elapsed  # noqa: E731  (arrival, monotonic)
        frames, latents = ([e[1:3] for e in watcher.sent[k] if in_run(e[0])] for k in ("image", "latent"))
        plans = [e[1:] for e in watcher.sent["plan"] if in_run(e[0])]
        commands = [w for w, _ in watcher.commands if in_run(w)]
    summary = summarize(frames, latents, plans, commands, elapsed, camera_hz, before, after, cpu, goals, reached,
                        times)
    summary["nodes_died"], summary["goal_cut_short"] = died, cut  # a goal the end of the run interrupted
    pairs = frame_latencies(frames, [(t, s) for t, s, driving, _ in plans if driving])
    t0 = frames[0][0] if frames else 0.0
    series = {"t_s": [round(t - t0, 3) for t, _ in pairs], "latency_ms": [round(lat * 1e3, 2) for _, lat in pairs]}
    return {"summary": summary, "series": series}


def plot(runs: dict, path: Path) -> None:
    """Frame-to-plan latency: its distribution (CDF) per run, and over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cdf, over) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, result in runs.items():
        lat = np.sort(result["series"]["latency_ms"])
        s = result["summary"]
        label = f"{name}: p50 {s['latency_ms_p50']} ms, p99 {s['latency_ms_p99']} ms"
        if len(lat):
            cdf.plot(lat, np.arange(1, len(lat) + 1) / len(lat), label=label)
        over.plot(result["series"]["t_s"], result["series"]["latency_ms"], ".", ms=2, label=name)
    camera = next(iter(runs.values()))["summary"]["camera_hz"] if runs else 30.0
    for ax in (cdf, over):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    cdf.axvline(1e3 / camera, color="k", ls="--", lw=0.8)
    cdf.set_xscale("log")
    cdf.set(xlabel="frame -> plan latency (ms, log); dashed: one camera period", ylabel="fraction of frames",
            title="latency distribution")
    over.set(xlabel="wall time in the run (s)", ylabel="frame -> plan latency (ms)", title="latency over time")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
