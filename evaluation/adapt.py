"""The adaptation benchmark: change the robot under the running graph, then measure how it copes and recovers.

A **scenario** is one world change of the sim node (:data:`SCENARIOS`: the
commanded velocity turned 90 degrees, halved, or a harmless change of the
light), on two_rooms, through the whole ROS graph with online learning
(``launch/sim.launch.yaml`` ``jepa:=true learn:=true``: sim, encoder,
planner, predictor, goal and trainer nodes). Each scenario gets a fresh
graph and a fresh trainer ``work_dir``, so scenarios are independent. Its
**phases**:

1. ``before``: N goals on the unchanged robot;
2. the change, through the sim node's ``set_parameters`` service;
3. ``after_change``: the same N goals at once, the model still the trained one;
4. ``learning``: goals from an endless stream of other pairs while the
   trainer records, fine-tunes and the graph swaps to what it accepts (one
   update or several), until ``learn_minutes`` of wall time since the change
   have passed (checked between goals, so the phase ends at most one goal
   late);
5. ``after_learning``: the same N goals again, once the trainer no longer
   asks for exploration (the wait, at most ``explore_seconds``, is in the
   JSON's ``waited_for_exploration_s``).

The three measured phases drive the same N (start, goal) pairs
(``goal_pairs`` with the seed), so their success rates differ by the robot
and the model, not by the goals. Success is the project's one definition
(:mod:`jepa_pilot.evaluation.metrics`). Per phase (:func:`phase_summary`):
the success rate, the median of the ``/jepa/surprise`` distances received
during it, the minutes of live data (simulated minutes since the change, at
the phase's end), the trainer's count of accepted updates and its last
verdict (its ``/diagnostics``). The series (each goal's outcome, surprise in
bins of wall time, the updates) feed :func:`plot`.

The trainer runs with benchmark settings (:func:`trainer_params`): a
fine-tune every ``update_every`` wall seconds once ``MIN_NEW_STEPS`` new
steps are recorded, and ``explore_seconds`` of exploration (the planner's
random walk, :mod:`jepa_pilot.control.mpc`) once a fine-tune finds the
world changed; goals keep coming meanwhile and are mostly missed (the
spans are in the JSON's ``exploration`` and shaded orange in the plot).
It records from the start, so a fine-tune on unchanged data may already
run in ``before``.

Everything here but :func:`run_scenario` (and :class:`AdaptRun`, which it
drives) takes plain data; only they start and watch a graph, through
:mod:`jepa_pilot.evaluation.rosgraph`, imported when called so the rest
imports without ROS.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import os
import shutil
import time
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

import numpy as np

from jepa_pilot.common.config import Config, setting
from jepa_pilot.evaluation.closed_loop import LoopConfig, goal_pairs
from jepa_pilot.evaluation.metrics import EpisodeRecord, summarize

__all__ = ["SCENARIOS", "PHASES", "MEASURED", "AdaptConfig", "AdaptRun", "parse_scenarios", "trainer_params",
           "check_base_data", "ensure_base_data", "phase_summary", "surprise_series", "rolling_mean",
           "update_events", "exploration_spans", "recovery", "run_baseline", "settings", "run_scenario", "summary_line", "plot"]

ENV = "two_rooms"  # the env of the shipped bundle the graph starts with
# name -> the sim node's parameters that make the change, and whether an accepted update should follow
SCENARIOS: dict[str, dict[str, float]] = {"rotation": {"action_rotation_deg": 90.0}, "gain": {"action_gain": 0.5},
                                          "harmless": {"light_scale": 1.1}}
EXPECTS_UPDATE = {"rotation": True, "gain": True, "harmless": False}
PHASES = ("before", "after_change", "learning", "after_learning")
MEASURED = ("before", "after_change", "after_learning")  # the same goals in each
MIN_NEW_STEPS = 300           # trainer: recorded steps since the last fine-tune before the next
BASE_COLLECT = dict(env=ENV, episodes=200, steps=100, seed=0)  # the default base dataset (CollectConfig)
BASE_NOTE = ("collected by jepa-pilot collect (WaypointExplorer on the true state), the collector of the shipped "
             "two_rooms bundle's training data (scripts/train_default.sh: 1000 episodes x 100 steps, seed 0); "
             "episode i is seeded by (seed, i) in both, so these are seeded like its first 200 episodes")
SURPRISE_BIN_S = 10.0         # wall seconds per bin of the surprise series
ROLLING_GOALS = 5             # goals in the plot's rolling success rate
RECOVERY_POINTS = 0.05        # success after learning within this of before counts as recovered
STREAM_CHUNK = 50             # pairs per seed of the learning phase's stream
MISSED = 1.5                  # a gap between two driving commands over 1.5 control periods misses one
SWAP_WINDOW_S = 2.0           # wall seconds either side of a swap searched for missed periods
TRAINER_KEYS = ("buffer_steps", "finetunes", "accepted", "rejected", "current_model", "last_verdict", "drift")


@dataclasses.dataclass(frozen=True)
class AdaptConfig(Config):
    goals: int = setting(10, "goals in each measured phase (before, after_change, after_learning)", low=1)
    learn_minutes: float = setting(10.0, "wall minutes after the change that the learning phase lasts", low=0.1)
    seed: int = setting(0, "seed of the goal pairs and of the graph", low=0)
    update_every: float = setting(30.0, "trainer: the fewest wall seconds between two fine-tunes", low=1.0)
    finetune_steps: int = setting(1000, "trainer: optimiser steps per fine-tune", low=1)
    explore_seconds: float = setting(360.0, "trainer: wall seconds of exploration once the world is found "
                                     "changed (0: never)", low=0.0)


def parse_scenarios(text: str | None) -> list[str]:
    """A comma list of scenario names (None or '': all), in the order given; ValueError on an unknown one."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    return list(dict.fromkeys(names))


def trainer_params(cfg: AdaptConfig, work_dir: Path) -> dict:
    """The trainer node's parameters for the benchmark (the rest as in config/sim.yaml)."""
    return {"work_dir": str(work_dir), "update_every": cfg.update_every, "min_new_steps": MIN_NEW_STEPS,
            "finetune_steps": cfg.finetune_steps, "explore_seconds": cfg.explore_seconds}


# --- base data ---------------------------------------------------------------------
def check_base_data(path: str | Path) -> Path:
    """A given base dataset: it must be a dataset folder."""
    path = Path(path).expanduser()
    if not (path / "dataset.yaml").is_file():
        raise ValueError(f"--base-data {path}: not a dataset (no dataset.yaml)")
    return path


def ensure_base_data(path: Path, log: Callable[[str], None] = print) -> bool:
    """Collect the default base dataset into ``path`` unless a finished collection is there; whether it
    collected. Collects into a temporary folder renamed at the end, so an interrupted run leaves none."""
    from jepa_pilot.data.collect import CollectConfig, collect

    if (path / "collect.json").is_file():
        return False
    if path.exists() and any(path.iterdir()):
        raise ValueError(f"{path}: not a finished collection (no collect.json); delete it or give --base-data")
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    log(f"collecting the base dataset into {path}: {BASE_COLLECT}")
    collect(CollectConfig(**BASE_COLLECT), partial, workers=2, log=log)
    if path.exists():
        path.rmdir()
    os.replace(partial, path)
    return True


# --- the pure parts: summaries, series, recovery -------------------------------------
def _finite(value):
    return None if isinstance(value, float) and not np.isfinite(value) else value


def _in_window(series: list[tuple[float, float]], window: tuple[float, float]) -> list[float]:
    return [v for wall, v in series if window[0] <= wall < window[1]]


def _count(values: dict, key: str) -> int | None:
    text = values.get(key)
    return int(text) if text is not None and str(text).isdigit() else None


def phase_summary(records: list[EpisodeRecord], surprises: list[tuple[float, float]], window: tuple[float, float],
                  live_minutes: float, trainer: dict[str, str]) -> dict:
    """One phase's numbers from its episode records, the (wall, distance) surprises received in the wall-time
    ``window`` [start, end), the simulated minutes since the change and the trainer's /diagnostics values."""
    received = _in_window(surprises, window)
    summary = {k: _finite(v) for k, v in summarize(records).items()}
    return {"success_rate": summary.pop("success_rate"),
            "surprise_median": float(np.median(received)) if received else None,
            "minutes_of_live_data": round(max(live_minutes, 0.0), 4),
            "updates_accepted": _count(trainer, "accepted"),
            "last_verdict": trainer.get("last_verdict"),
            "surprises_received": len(received), **summary,
            "trainer": {k: trainer.get(k) for k in TRAINER_KEYS},
            "records": [r.to_dict() for r in records]}


def surprise_series(surprises: list[tuple[float, float]], t0: float, bin_s: float = SURPRISE_BIN_S) -> list[dict]:
    """Median surprise per ``bin_s`` wall seconds since ``t0``: minute (bin centre), median, count."""
    bins: dict[int, list[float]] = {}
    for wall, distance in surprises:
        if wall >= t0:
            bins.setdefault(int((wall - t0) // bin_s), []).append(distance)
    return [{"minute": round((k + 0.5) * bin_s / 60.0, 4), "median": float(np.median(v)), "count": len(v)}
            for k, v in sorted(bins.items())]


def rolling_mean(values: list[float], window: int = ROLLING_GOALS) -> list[float]:
    """The mean of each value and the ``window`` - 1 before it."""
    return [float(np.mean(values[max(0, i + 1 - window):i + 1])) for i in range(len(values))]


def update_events(updates: list[dict], seen: dict[str, tuple[float, float]], t0: float, change: dict) -> list[dict]:
    """The announced updates (dicts of wall, model_id, parent_id, reason) with when the graph swapped to each:
    ``seen`` maps a model id to the (wall, sim stamp) of its first latent; ``change`` has the change's wall and
    sim stamp. Minutes are wall minutes since ``t0``; live minutes, simulated minutes since the change."""
    events = []
    for u in updates:
        wall, stamp = seen.get(u["model_id"], (None, None))
        events.append({"model_id": u["model_id"], "parent_id": u["parent_id"], "reason": u["reason"],
                       "minute": round((u["wall"] - t0) / 60.0, 4), "after_change": u["wall"] >= change["wall"],
                       "swapped_minute": None if wall is None else round((wall - t0) / 60.0, 4),
                       "swapped_live_minutes": None if stamp is None else round((stamp - change["stamp"]) / 60.0, 4)})
    return events


def command_gaps(commands: list[tuple[float, bool]], since: float) -> list[tuple[float, float]]:
    """(wall, seconds since the previous command) for each moving command after ``since`` that follows a
    moving one: the command period while the robot is driven (holds, resets and idling are not counted)."""
    driven = [(t, moving) for t, moving in commands if t > since]
    return [(b, b - a) for (a, was), (b, now) in zip(driven, driven[1:]) if was and now]


def gap_summary(gaps: list[float], period: float) -> dict:
    """p50 / p99 of the command periods (ms) and the periods missed: gaps longer than MISSED x ``period``."""
    if not gaps:
        return {"command_period_ms_p50": None, "command_period_ms_p99": None, "missed_periods": 0}
    p50, p99 = np.percentile(gaps, [50, 99]) * 1e3
    return {"command_period_ms_p50": round(float(p50), 2), "command_period_ms_p99": round(float(p99), 2),
            "missed_periods": int(sum(g > MISSED * period for g in gaps))}


def exploration_spans(changes: list[tuple[float, bool]], t0: float, end: float) -> list[list[float]]:
    """[start, end] wall minutes (since ``t0``) of each span the trainer asked for exploration; ``changes``:
    (wall, value) of each change of /jepa/explore; a span still open at ``end`` ends there."""
    spans, opened = [], None
    for wall, on in changes:
        if on and opened is None:
            opened = wall
        elif not on and opened is not None:
            spans.append([opened, wall])
            opened = None
    if opened is not None:
        spans.append([opened, end])
    return [[round((a - t0) / 60.0, 4), round((b - t0) / 60.0, 4)] for a, b in spans]


def recovery(phases: dict, updates: list[dict]) -> dict:
    """Minutes of live data until the first update announced after the change was swapped in (None: none was),
    and whether success after learning came back within RECOVERY_POINTS of before (None: no rate)."""
    swapped = [u["swapped_live_minutes"] for u in updates
               if u["after_change"] and u["swapped_live_minutes"] is not None]
    before, after = phases["before"]["success_rate"], phases["after_learning"]["success_rate"]
    back = None if before is None or after is None else bool(after >= before - RECOVERY_POINTS - 1e-9)
    return {"recovery_minutes": min(swapped) if swapped else None, "success_recovered": back,
            "updates_after_change": sum(u["after_change"] for u in updates)}


def settings(cfg: AdaptConfig, base_data: Path, collected: bool, given: bool) -> dict:
    """What the JSON says about how the benchmark ran (beside command and machine)."""
    loop = LoopConfig()
    return {"benchmark": "adapt", "env": ENV, "bundle": ENV, "config": cfg.to_dict(),
            "trainer": {k: v for k, v in trainer_params(cfg, Path()).items() if k != "work_dir"},
            "success": f"true base position within {loop.success_radius:g} m of the goal's within "
                       f"{loop.max_steps} control steps (evaluation/metrics.py)",
            "pairs": f"the same {cfg.goals} goal_pairs (seed {cfg.seed}) in {', '.join(MEASURED)}; the learning "
                     f"phase draws other pairs (seeds {cfg.seed + 1}, {cfg.seed + 2}, ...)",
            "base_data": {"path": str(base_data), "given": given, "collected_now": collected,
                          **({} if given else {"collect": BASE_COLLECT, "note": BASE_NOTE})},
            "changes": {name: {"sim": params, "expects_update": EXPECTS_UPDATE[name]}
                        for name, params in SCENARIOS.items()}}


# --- driving one scenario's graph ----------------------------------------------------------
def pair_stream(env, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless (start, goal) pairs from seeds seed + 1, seed + 2, ...: none are the measured phases' pairs."""
    for k in itertools.count(1):
        yield from goal_pairs(env, STREAM_CHUNK, seed + k)


class AdaptRun:
    """One scenario's running graph: phases of goals, the change, what the trainer says; progress lines."""

    def __init__(self, name: str, cfg: AdaptConfig, watcher, alive: Callable[[], bool],
                 progress: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic,
                 trainer_rss: Callable[[], float] | None = None) -> None:
        self.name, self.cfg, self.watcher, self.alive, self.progress = name, cfg, watcher, alive, progress
        self.trainer_rss = trainer_rss  # MB of the trainer's process group (its fine-tune child included)
        self.gaps: list[tuple[float, float]] = []  # (wall, s) command periods while driven (command_gaps)
        self.memory: list[tuple[float, float]] = []  # (minute, trainer MB) after each goal
        self.clock = clock  # the watcher's wall clock
        self.loop = LoopConfig()
        self.period = watcher.env.config.control_period
        self.t0 = clock()
        self.base_model = next(iter(watcher.models_seen), "")
        self.change: dict = {}  # parameters, wall, stamp (sim time), minute
        self.phases: dict[str, dict] = {}
        self.goals: list[dict] = []  # each goal: wall minute at its end, phase, success
        self.told: set[tuple[str, str]] = set()  # (model id, event) already printed
        self.waited_s = 0.0  # wall seconds waited after learning for the exploration to end

    def minute(self) -> float:
        return round((self.clock() - self.t0) / 60.0, 4)

    def live_minutes(self) -> float:
        return (self.watcher.sim_time - self.change["stamp"]) / 60.0 if self.change else 0.0

    def trainer(self) -> dict[str, str]:
        return dict(self.watcher.diagnostics.get("trainer", {}))

    def run(self, pairs: list, stream: Iterable) -> dict:
        """The phases in order, the change after ``before``; the scenario's result. ``pairs``: the measured
        phases' goals; ``stream``: the learning phase's."""
        self.drive("before", pairs, len(pairs))
        self.apply_change(SCENARIOS[self.name])
        self.drive("after_change", pairs, len(pairs))
        self.drive("learning", stream, until=self.learning_over)
        self.wait_for_exploration()
        self.drive("after_learning", pairs, len(pairs))
        return self.result()

    def wait_for_exploration(self) -> None:
        """Until the trainer no longer asks the planner to explore (at most ``explore_seconds``): goals
        measured while the robot takes random actions would measure the exploration, not the model."""
        exploring = lambda: bool(self.watcher.explore) and self.watcher.explore[-1][1]  # noqa: E731
        if not exploring():
            return
        self.progress(f"[{self.name}] waiting for the exploration to end before after_learning")
        start = self.clock()
        self.watcher.spin_until(lambda: not exploring(), self.cfg.explore_seconds + 30.0, self.alive)
        self.waited_s = round(self.clock() - start, 1)

    def drive(self, phase: str, pairs: Iterable, total: int | None = None,
              until: Callable[[], bool] = lambda: False) -> None:
        """Drive goals of ``pairs`` until they run out or ``until()`` (asked before each goal)."""
        start, records = self.clock(), []
        self.progress(f"[{self.name}] {phase}: " + (f"{total} goals" if total else
                      f"until {self.cfg.learn_minutes:g} min after the change"))
        gaps_before = len(self.gaps)
        for begin, goal in pairs:
            if until():
                break
            started = self.clock()
            record, _ = self.watcher.run_goal(begin, goal, self.loop.max_steps, self.loop.success_radius, self.alive)
            self.gaps += command_gaps(self.watcher.commands, started)
            if self.trainer_rss is not None:
                self.memory.append((self.minute(), round(self.trainer_rss(), 1)))
            records.append(record)
            self.goals.append({"minute": self.minute(), "phase": phase, "success": record.success})
            self.watcher.forget(self.clock() - 5.0)  # a long run: keep what it still needs only
            self._report(phase, records, total)
        window = [round((start - self.t0) / 60.0, 4), self.minute()]
        explored = sum(max(min(b, window[1]) - max(a, window[0]), 0.0)
                       for a, b in exploration_spans(self.watcher.explore, self.t0, self.clock()))
        self.phases[phase] = {**phase_summary(records, self.watcher.surprises, (start, self.clock()),
                                              self.live_minutes(), self.trainer()),
                              "wall_minutes": window, "minutes_exploring": round(explored, 3),
                              **gap_summary([g for _, g in self.gaps[gaps_before:]], self.period)}
        done = self.phases[phase]
        surprise = "-" if done["surprise_median"] is None else f"{done['surprise_median']:.3g}"
        self.progress(f"[{self.name}] {phase} done: {sum(r.success for r in records)}/{len(records)} reached, "
                      f"surprise median {surprise}, {done['minutes_of_live_data']:.2f} min of live data, "
                      f"{done['updates_accepted']} update(s) accepted")

    def apply_change(self, values: dict[str, float]) -> None:
        self.watcher.set_parameters("sim", **values)
        self.change = {"parameters": dict(values), "wall": self.clock(),
                       "stamp": self.watcher.sim_time, "minute": self.minute()}
        self.progress(f"[{self.name}] changed the robot: /sim {values} at {self.change['minute']:.2f} min")

    def learning_over(self) -> bool:
        """``learn_minutes`` have passed since the change."""
        return self.clock() - self.change["wall"] >= self.cfg.learn_minutes * 60.0

    def _report(self, phase: str, records: list[EpisodeRecord], total: int | None) -> None:
        reached, t = sum(r.success for r in records), self.trainer()
        since = (self.clock() - self.change.get("wall", self.clock())) / 60.0
        of = f"/{total}" if total else f" ({since:.1f} of {self.cfg.learn_minutes:g} min)"
        verdict = (t.get("last_verdict") or "no status yet")[:100]
        outcome = "reached" if records[-1].success else "missed"
        trainer = (f"; trainer: {t.get('buffer_steps', '?')} steps, {t.get('finetunes', '?')} fine-tunes, "
                   f"{t.get('accepted', '?')} accepted, {t.get('rejected', '?')} rejected ({verdict})") if t else ""
        self.progress(f"[{self.name}] {phase} goal {len(records)}{of}: {outcome}, {reached}/{len(records)} so far"
                      + trainer)
        for _, msg in self.watcher.updates:
            for event, done in (("announced", True), ("swapped in", msg.model_id in self.watcher.models_seen)):
                if done and (msg.model_id, event) not in self.told:
                    self.told.add((msg.model_id, event))
                    self.progress(f"[{self.name}] update {msg.model_id} {event} ({msg.reason})")

    def result(self) -> dict:
        updates = [{"wall": wall, "model_id": m.model_id, "parent_id": m.parent_id, "reason": m.reason}
                   for wall, m in self.watcher.updates]
        events = update_events(updates, self.watcher.models_seen, self.t0, self.change)
        for event in events:  # the command periods around each swap: a missed one would show here
            if event["swapped_minute"] is not None:
                wall = self.t0 + event["swapped_minute"] * 60.0
                near = [g for t, g in self.gaps if abs(t - wall) <= SWAP_WINDOW_S]
                event["command_period_ms_max_near_swap"] = round(max(near) * 1e3, 2) if near else None
                event["missed_periods_near_swap"] = sum(g > MISSED * self.period for g in near)
        change = {"node": "sim", "parameters": self.change["parameters"], "minute": self.change["minute"],
                  "sim_time": self.change["stamp"]}
        return {"change": change, "base_model": self.base_model,
                "expects_update": EXPECTS_UPDATE.get(self.name), "phases": self.phases, "updates": events,
                "series": {"goals": self.goals, "surprise": surprise_series(self.watcher.surprises, self.t0)},
                "exploration": exploration_spans(self.watcher.explore, self.t0, self.clock()),
                "trainer_memory_mb": [list(m) for m in self.memory],
                "waited_for_exploration_s": self.waited_s, **recovery(self.phases, events),
                "wall_minutes": self.minute()}


def wait_for_learning(watcher, alive: Callable[[], bool], timeout: float = 120.0) -> None:
    """Until the trainer reports on /diagnostics and a latent (the base model's id) arrived."""
    if not watcher.spin_until(lambda: "trainer" in watcher.diagnostics and watcher.models_seen, timeout, alive):
        raise RuntimeError("the trainer did not report on /diagnostics, or no /jepa/latent arrived")


def run_scenario(name: str, cfg: AdaptConfig, base_data: Path, work: Path, log: IO[str],
                 progress: Callable[[str], None] = print) -> dict:
    """One scenario in a fresh graph with a fresh trainer work_dir (``work/name/learn``, deleted first)."""
    from jepa_pilot import sim
    from jepa_pilot.cli.supervisor import Launcher
    from jepa_pilot.cli.up import child_environment
    from jepa_pilot.evaluation.rosgraph import sim_graph, wait_until_up, watching
    from jepa_pilot.evaluation.soak import group_usage

    learn_dir = (work / name / "learn").resolve()  # the nodes' working folder need not be this one
    shutil.rmtree(learn_dir, ignore_errors=True)
    specs = sim_graph(ENV, cfg.seed, jepa=True, learn=True, base_data=str(Path(base_data).resolve()),
                      trainer=trainer_params(cfg, learn_dir))
    log.write(f"===== eval-adapt: scenario {name} =====\n")
    log.flush()
    with sim.make(ENV) as env, Launcher(specs, env=child_environment(os.environ), stream=log) as launcher, \
            watching(env, keep_frames=False) as watcher:
        wait_until_up(watcher, launcher.alive)
        wait_for_learning(watcher, launcher.alive)
        run = AdaptRun(name, cfg, watcher, launcher.alive, progress,
                       trainer_rss=lambda: group_usage(launcher.processes["trainer"].pid)[0])
        progress(f"[{name}] graph up (model {run.base_model}); trainer work_dir {learn_dir}")
        return {**run.run(goal_pairs(env, cfg.goals, cfg.seed), pair_stream(env, cfg.seed)),
                "work_dir": str(learn_dir)}


def run_baseline(cfg: AdaptConfig, log: IO[str], progress: Callable[[str], None] = print) -> dict:
    """The measured goals once on the unchanged robot in a graph without the trainer: what the command
    periods of the learning scenarios are compared with (the trainer's cost to the control loop)."""
    from jepa_pilot import sim
    from jepa_pilot.cli.supervisor import Launcher
    from jepa_pilot.cli.up import child_environment
    from jepa_pilot.evaluation.rosgraph import sim_graph, wait_until_up, watching

    log.write("===== eval-adapt: baseline (no trainer) =====\n")
    log.flush()
    with sim.make(ENV) as env, Launcher(sim_graph(ENV, cfg.seed, jepa=True), env=child_environment(os.environ),
                                        stream=log) as launcher, watching(env, keep_frames=False) as watcher:
        wait_until_up(watcher, launcher.alive)
        run = AdaptRun("baseline", cfg, watcher, launcher.alive, progress)
        run.drive("before", goal_pairs(env, cfg.goals, cfg.seed), cfg.goals)
        return {"trainer": False, "phases": run.phases}


# --- reporting ---------------------------------------------------------------------------
def summary_line(name: str, scenario: dict) -> str:
    """One line per scenario: success and surprise across the measured phases, updates, recovery."""
    if "error" in scenario:
        return f"{name}: FAILED: {scenario['error']}"
    phases = [scenario["phases"][p] for p in MEASURED]
    pct = lambda v: "-" if v is None else f"{v:.0%}"  # noqa: E731
    num = lambda v: "-" if v is None else f"{v:.3g}"  # noqa: E731
    rec = scenario["recovery_minutes"]
    swap = "none swapped in" if rec is None else f"the first swapped in after {rec:.1f} min of live data"
    return (f"{name}: success {' -> '.join(pct(p['success_rate']) for p in phases)}, surprise "
            f"{' -> '.join(num(p['surprise_median']) for p in phases)} (before, after change, after learning); "
            f"{scenario['updates_after_change']} update(s) after the change, {swap}; "
            f"success recovered: {scenario['success_recovered']}")


def plot(result: dict, path: Path) -> None:
    """Per scenario: success over time (rolling mean over ROLLING_GOALS goals) and median surprise over time
    against wall minutes; the exploration spans (orange), the change (red, dashed) and each update (green: where it was swapped in; dotted at
    its announcement if it never was) as vertical lines; the phases shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = {name: s for name, s in result["scenarios"].items() if "series" in s}
    fig, axes = plt.subplots(max(len(shown), 1), 2, figsize=(12, 3.2 * max(len(shown), 1)), squeeze=False)
    for (name, scenario), (success, surprise) in zip(shown.items(), axes):
        goals = scenario["series"]["goals"]
        success.plot([g["minute"] for g in goals], rolling_mean([float(g["success"]) for g in goals]), "o-", ms=3)
        surprise.plot(*_broken_at_gaps(scenario["series"]["surprise"]), "-", color="tab:purple")
        success.set_ylim(-0.05, 1.15)  # room for the phase names
        success.set_title(f"{name}: success (rolling mean of {ROLLING_GOALS} goals)", fontsize=9)
        surprise.set_title(f"{name}: median surprise per {SURPRISE_BIN_S:g} s", fontsize=9)
        for ax in (success, surprise):
            _mark(ax, scenario)
    if not shown:
        axes[0][0].text(0.5, 0.5, "no scenario finished", ha="center")
    for ax in axes[-1]:
        ax.set_xlabel("wall minutes since the graph was up")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _broken_at_gaps(bins: list[dict]) -> tuple[list[float], list[float]]:
    """Minutes and medians of the surprise bins, with a NaN wherever bins are missing (no plan was executed:
    the robot explored or stood still), so the line is not drawn across the gap."""
    xs: list[float] = []
    ys: list[float] = []
    for b in bins:
        if xs and b["minute"] - xs[-1] > 1.5 * SURPRISE_BIN_S / 60.0:
            xs.append(math.nan)
            ys.append(math.nan)
        xs.append(b["minute"])
        ys.append(b["median"])
    return xs, ys


def _mark(ax, scenario: dict) -> None:
    """The phases shaded and named, the change and the updates as vertical lines, a legend."""
    for i, phase in enumerate(PHASES):
        if phase in scenario["phases"]:
            start, end = scenario["phases"][phase]["wall_minutes"]
            ax.axvspan(start, end, color="0.94" if i % 2 else "0.87", zorder=0)
            ax.text((start + end) / 2, 0.98, phase.replace("_", " "), transform=ax.get_xaxis_transform(),
                    ha="center", va="top", fontsize=7, color="0.35")
    for i, (start, end) in enumerate(scenario.get("exploration", [])):
        ax.axvspan(start, end, color="tab:orange", alpha=0.15, zorder=0, label="exploring" if i == 0 else None)
    ax.axvline(scenario["change"]["minute"], color="tab:red", ls="--", label="change")
    for i, u in enumerate(scenario["updates"]):
        swapped = u["swapped_minute"] is not None
        ax.axvline(u["swapped_minute"] if swapped else u["minute"], color="tab:green", ls="-" if swapped else ":",
                   label="update" if i == 0 else None)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
