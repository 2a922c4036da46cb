"""Faults injected into the running sim graph while it drives to a goal, and what the robot did.

Each fault starts mid-drive (the robot driving towards a goal image in the
other room), lasts ``duration`` seconds (of wall and of sim time), then clears. Measured on the
wall clock from what the harness (:mod:`jepa_pilot.evaluation.rosgraph`) sees:

* ``stopped``: the robot came to rest after the fault began: a zero command
  on /cmd_vel, or its odometry speed under 0.02 m/s (a dead or frozen planner
  sends nothing; the simulator's command timeout stops the base);
* ``stop_s``: seconds from the fault to that moment;
* ``commands_while_stopped``: commands that moved the robot after the stop
  deadline (one control period plus the planner's ``max_latent_age``) and
  before the fault cleared: must be zero;
* ``resume_s``: seconds from the fault clearing to the next command that moves
  the robot;
* ``crashed``: nodes not running at the end that the fault did not kill.

``must_stop`` says whether the fault leaves the planner without fresh
information, so that the robot has to stop; figures that do not apply are None.
"""
from __future__ import annotations

import dataclasses
import signal
import time
from typing import Callable

import numpy as np

from jepa_pilot.evaluation.rosgraph import ServiceTimeout

__all__ = ["Fault", "FAULTS", "FaultRun", "measure", "run_fault", "combine_runs", "summary_line", "pairs_for"]

STOP_SPEED = 0.02  # m/s: the base counts as at rest below this


@dataclasses.dataclass(frozen=True)
class Fault:
    name: str
    must_stop: bool
    inject: Callable[["FaultRun"], None]
    clear: Callable[["FaultRun"], None]
    duration: float = 2.0      # wall seconds between inject and clear
    node: str | None = None    # the node the fault acts on (kill, freeze)


class FaultRun:
    """What a fault acts on: the launcher of the graph, the harness's watcher, the goal states."""

    def __init__(self, launcher, watcher, goals: list) -> None:
        self.launcher, self.watcher, self.goals = launcher, watcher, goals

    def kill(self, node: str) -> None:
        self.launcher.signal_node(node, signal.SIGKILL)

    def restart(self, node: str) -> None:
        self.watcher.spin_until(lambda: not self.launcher.alive(node), 10)
        self.launcher.restart(node)

    def freeze(self, node: str, frozen: bool) -> None:
        self.launcher.signal_node(node, signal.SIGSTOP if frozen else signal.SIGCONT)

    def camera(self, mode: str) -> None:
        self.watcher.relay_mode = mode

    def clock_back(self) -> None:
        """A sim reset to where the robot is, with sim time back to 0."""
        self.watcher.reset_sim(self.watcher.states[-1][1], restart_clock=True)

    def new_goal(self) -> None:
        self.watcher.set_goal(self.goals[1])


def _kill(node: str, must_stop: bool) -> Fault:
    return Fault(f"kill_{node}", must_stop, lambda r: r.kill(node), lambda r: r.restart(node), node=node)


def _freeze(node: str) -> Fault:
    return Fault(f"freeze_{node}", True, lambda r: r.freeze(node, True), lambda r: r.freeze(node, False), node=node)


def _camera(name: str, mode: str, must_stop: bool, duration: float) -> Fault:
    return Fault(name, must_stop, lambda r: r.camera(mode), lambda r: r.camera("pass"), duration)


FAULTS = [
    _kill("sim", True), _kill("encoder", True), _kill("planner", True), _kill("predictor", False),
    _freeze("encoder"), _freeze("planner"),
    _camera("camera_silent", "silent", True, 2.0),
    _camera("frames_10x", "burst", False, 5.0),
    _camera("frames_half_dropped", "drop_half", False, 5.0),
    Fault("clock_jumps_back", False, lambda r: r.clock_back(), lambda r: None, 2.0),
    Fault("goal_replaced", False, lambda r: r.new_goal(), lambda r: None, 2.0),
]


def _first(events, since: float, until: float = float("inf"), test=bool):
    return next((t for t, v in events if since <= t <= until and test(v)), None)


def measure(fault: Fault, watcher, start: float, cleared: float, stop_limit: float, nodes: list[str],
            alive: Callable[[str], bool], resume_wait: float = 15.0) -> dict:
    """The figures of one fault from what ``watcher`` recorded (wall times ``start``, ``cleared``)."""
    zero_cmd = _first(watcher.commands, start, test=lambda moving: not moving)
    at_rest = _first(watcher.speeds, start, test=lambda speed: speed < STOP_SPEED)
    stops = [t for t in (zero_cmd, at_rest) if t is not None and t <= cleared + 1e-6]
    stopped_at = min(stops) if stops else None
    moving_after = [t for t, moving in watcher.commands if moving and start + stop_limit < t <= cleared]
    resume = _first(watcher.commands, cleared, cleared + resume_wait)
    return {
        "name": fault.name, "must_stop": fault.must_stop, "stopped": stopped_at is not None,
        "stop_s": None if stopped_at is None else round(stopped_at - start, 3),
        "commands_while_stopped": len(moving_after) if fault.must_stop else None,
        "resume_s": round(resume - cleared, 3) if fault.must_stop and resume is not None else None,
        "crashed": [n for n in nodes if not alive(n)],
    }


def run_fault(fault: Fault, run: FaultRun, start_state, goal_state, stop_limit: float, nodes: list[str],
              scale: float = 1.0) -> dict:
    """Drive from ``start_state`` towards ``goal_state``, inject ``fault`` once driving, clear it, measure."""
    w = run.watcher
    restarted = start_driving(run, start_state, goal_state, nodes)
    start = time.monotonic()
    fault.inject(run)
    hold(w, fault.duration * scale)
    cleared = time.monotonic()
    fault.clear(run)
    w.spin_until(lambda: _first(w.commands, cleared) is not None and all(run.launcher.alive(n) for n in nodes),
                 20 if fault.must_stop else 2)
    result = measure(fault, w, start, cleared, stop_limit, nodes, run.launcher.alive)
    result["duration_s"] = round(cleared - start, 3)
    result["restarted_to_start"] = restarted
    result["recovered_by_restart"] = recover(fault, run, result, nodes)
    return result


def hold(watcher, seconds: float) -> None:
    """Wait ``seconds`` of wall time and of sim time (a loaded machine runs the sim slower than real
    time, and the robot's own timeouts count sim time); at most 3 s longer on the wall clock, for
    faults that stop sim time (a killed sim node)."""
    begun, last, elapsed = time.monotonic(), watcher.sim_time, 0.0

    def sim_elapsed() -> float:  # forward sim time only: a clock reset to 0 does not count back
        nonlocal last, elapsed
        elapsed, last = elapsed + max(watcher.sim_time - last, 0.0), watcher.sim_time
        return elapsed

    watcher.spin_until(lambda: sim_elapsed() < 0, seconds)
    watcher.spin_until(lambda: sim_elapsed() >= seconds, begun + seconds + 3.0 - time.monotonic())


def start_driving(run: FaultRun, start_state, goal_state, nodes: list[str]) -> list[str]:
    """Reset the robot to ``start_state``, give it the goal and wait until it drives. If a node of the
    graph does not answer (a service times out) or the robot does not drive, that node (or the planner)
    is restarted once and everything is tried again; returns the nodes restarted. (A process frozen with
    SIGSTOP and thawed has been seen, rarely, to leave DDS links to it or from it dead.)"""
    w, restarted = run.watcher, []
    for attempt in range(2):
        try:
            w.estop_pub.publish(w.estop_pub.msg_type(data=True))
            w.reset_sim(start_state)
            w.set_goal(goal_state)
            w.estop_pub.publish(w.estop_pub.msg_type(data=False))
            begun = time.monotonic()
            if w.spin_until(lambda: sum(m for t, m in w.commands if t > begun) >= 5, 60):
                return restarted
            stuck, why = "planner", "the robot did not start driving towards the goal"
        except ServiceTimeout as exc:
            stuck, why = exc.node, str(exc)
        if attempt or stuck not in nodes:
            raise RuntimeError(f"{why} (restarted before: {', '.join(restarted) or 'none'})")
        print(f"{why}: restarting {stuck}", flush=True)
        _restart(run, [stuck], nodes)
        restarted.append(stuck)
    return restarted


def _restart(run: FaultRun, stuck: list[str], nodes: list[str], timeout: float = 90.0) -> None:
    """Kill and restart ``stuck``; wait until every node is alive, latents made after the restart flow,
    the planner reports on them and the harness's services of the restarted nodes are there again (the
    planner's watchdog reports twice a second with no latents at all: its reports alone say nothing)."""
    for node in stuck:
        run.launcher.signal_node(node, signal.SIGKILL)
        run.restart(node)
    w, since = run.watcher, time.monotonic()
    clients = w.clients_of(stuck)

    def back() -> bool:
        fresh = [t for t, *_ in w.sent["latent"] if t > since]
        return (all(run.launcher.alive(n) for n in nodes) and len(fresh) >= 10
                and sum(t > fresh[0] for t, _ in w.plans) >= 10 and all(c.service_is_ready() for c in clients))

    if not w.spin_until(back, timeout):
        raise RuntimeError(f"the graph did not come back within {timeout:.0f} s of restarting {', '.join(stuck)}")


def recover(fault: Fault, run: FaultRun, result: dict, nodes: list[str]) -> list[str]:
    """Nodes restarted by hand because the graph did not recover by itself (so the next fault starts
    from a working graph): crashed ones, and the fault's own node when the robot never resumed."""
    stuck = list(result["crashed"])
    if fault.must_stop and result["resume_s"] is None and fault.node and fault.node not in stuck:
        stuck.append(fault.node)
    if stuck:
        _restart(run, stuck, nodes)
    return stuck


def combine_runs(runs: list[dict]) -> dict:
    """Several runs of one fault: stopped only if every run stopped; median times (None if any run lacks
    one); the most moving commands while stopped of any run; every node that crashed in any run."""
    def median(key):
        values = [r[key] for r in runs]
        return None if any(v is None for v in values) else round(float(np.median(values)), 3)

    moving = [r["commands_while_stopped"] for r in runs]
    return {"name": runs[0]["name"], "must_stop": runs[0]["must_stop"], "stopped": all(r["stopped"] for r in runs),
            "stop_s": median("stop_s"), "resume_s": median("resume_s"),
            "commands_while_stopped": None if None in moving else max(moving),
            "crashed": sorted({n for r in runs for n in r["crashed"]}),
            "recovered_by_restart": sorted({n for r in runs for n in r.get("recovered_by_restart", [])}),
            "restarted_to_start": sorted({n for r in runs for n in r.get("restarted_to_start", [])})}


def summary_line(r: dict) -> str:
    fmt = lambda v: "-" if v is None else (f"{v:.2f} s" if isinstance(v, float) else str(v))  # noqa: E731
    return (f"{r['name']:<20} must stop {'yes' if r['must_stop'] else 'no ':<4} stopped {'yes' if r['stopped'] else 'no ':<4}"
            f" stop {fmt(r['stop_s']):>7}  resume {fmt(r['resume_s']):>7}"
            f"  moving cmds while stopped {fmt(r['commands_while_stopped']):>2}"
            f"  crashed {', '.join(r['crashed']) or '-'}"
            + "".join(f"  {label} {', '.join(r.get(key) or [])}" for key, label in
                      (("recovered_by_restart", "restarted after"), ("restarted_to_start", "restarted before"))
                      if r.get(key)))


def pairs_for(env) -> tuple[np.ndarray, list[np.ndarray]]:
    """A start in one room's far corner, and two goals in the other room (the second replaces the first)."""
    start = np.array([-0.7, -0.6, 0.0, 0.0])
    return start, [np.array([0.7, 0.6, 0.0, 0.0]), np.array([0.7, -0.6, 0.0, 0.0])]
