"""Soak: the sim graph driving to random goals for a long time, and every node's health each minute.

What a sample holds, per node process (its whole process group):

* ``rss_mb``: resident memory (``VmRSS`` of /proc, summed over the group);
* ``cpu_pct``: CPU time used since the previous sample over the wall time between them
  (100 % = one core);
* ``latency_ms_p99`` / ``step_ms_p99``: the node's own figure from ``/diagnostics``
  at the sample time (over the node's recent window), where it reports one;
  latencies are on the node's clock, sim time, so they come in whole sim steps;
* ``dropped``: messages the node refused since the previous sample (its
  ``/diagnostics`` counter: ``DROP_COUNTERS``);
* the node's rate from ``/diagnostics`` (``RATE_KEYS``: the sim's real-time
  factor, the encoder's latents/s, the planner's commands/s, the predictor's
  forecasts/s);

and for the whole loop, over the same minute: frame-to-plan latency p99 (wall
arrival of a plan at the harness minus that of the camera frame it acted on),
camera frames that did not reach the harness (itself a Python subscriber on the
same loaded machine, so an upper bound of what a node misses), goals given and
reached.

The verdict is about memory: after the warm-up, no node may grow by more than
``max_growth`` (its last sample against its first sample after the warm-up).
A node that dies fails the soak too.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from jepa_pilot.evaluation.rosgraph import frame_loss

__all__ = ["group_usage", "Soak", "verdict", "plot"]

CLOCK_TICK = os.sysconf("SC_CLK_TCK")
DROP_COUNTERS = {"encoder": "dropped", "planner": "dropped_latents", "predictor": "dropped"}
LATENCY_KEYS = ("latency_ms_p99", "step_ms_p99")
RATE_KEYS = {"sim": "real_time_factor", "encoder": "rate_hz", "planner": "command_rate_hz",
             "predictor": "forecast_rate_hz"}


def group_usage(pgid: int, proc: Path = Path("/proc")) -> tuple[float, float]:
    """(resident MB, CPU seconds used so far) of every process in process group ``pgid``."""
    rss_kb, ticks = 0, 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
            if int(fields[2]) != pgid:  # field 5 of stat: the process group
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
            status = (entry / "status").read_text()
            rss_kb += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        except (OSError, ValueError, IndexError):  # the process ended while being read
            continue
    return rss_kb / 1024.0, ticks / CLOCK_TICK


def stolen_seconds(proc: Path = Path("/proc")) -> float:
    """CPU seconds the hypervisor has taken from this machine since boot (steal time, all cores
    together; 0 on bare metal): time its runnable threads waited while the host ran others."""
    fields = (proc / "stat").read_text().split("\n", 1)[0].split()  # cpu user nice system idle iowait irq softirq steal
    return int(fields[8]) / CLOCK_TICK if len(fields) > 8 else 0.0


def _number(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


class Soak:
    """Samples a running graph every ``every`` wall seconds; call :meth:`poll` often (it is cheap)."""

    def __init__(self, launcher, watcher, camera_rate_hz: float, every: float = 60.0,
                 clock=time.monotonic, on_sample=None) -> None:
        self.launcher, self.watcher, self.rate, self.every = launcher, watcher, camera_rate_hz, every
        self.clock, self.on_sample = clock, on_sample
        self.samples: list[dict] = []
        self.goals = self.reached = 0
        self.start = self.last = clock()
        self._cpu = {name: self._usage(name)[1] for name in launcher.labels}
        self._counters: dict[str, float] = {}
        self._goals_seen = self._reached_seen = 0

    def _usage(self, name: str) -> tuple[float, float]:
        return group_usage(self.launcher.processes[name].pid)

    def episode_done(self, reached: bool) -> None:
        self.goals += 1
        self.reached += bool(reached)

    def poll(self) -> bool:
        """Sample if one is due; whether every node is still running."""
        if self.clock() - self.last >= self.every:
            self.sample()
        return self.launcher.alive()

    def sample(self) -> dict:
        now, since = self.clock(), self.last
        nodes = {name: self._node(name, now - since) for name in self.launcher.labels}
        w = self.watcher
        stamps = [stamp for wall, stamp in w.image_times if wall >= since]
        record = {"minute": round((now - self.start) / 60.0, 3), "nodes": nodes,
                  "frame_to_plan_ms_p99": _p99_ms(w, since),
                  "camera_at_harness": frame_loss(stamps, self.rate),
                  "goals": self.goals - self._goals_seen, "reached": self.reached - self._reached_seen}
        self._goals_seen, self._reached_seen, self.last = self.goals, self.reached, now
        self.samples.append(record)
        if self.on_sample is not None:
            self.on_sample(record)
        return record

    def _node(self, name: str, span: float) -> dict:
        rss, cpu = self._usage(name)
        out = {"rss_mb": round(rss, 2), "cpu_pct": round(100.0 * (cpu - self._cpu[name]) / max(span, 1e-9), 1)}
        self._cpu[name] = cpu
        values = self.watcher.diagnostics.get(name, {})
        for key in (*LATENCY_KEYS, RATE_KEYS.get(name, "")):
            if _number(values.get(key)) is not None:
                out[key] = _number(values[key])
        counter = _number(values.get(DROP_COUNTERS.get(name, "")))
        if counter is not None:
            out["dropped"] = int(counter - self._counters.get(name, 0.0))
            self._counters[name] = counter
        return out


def _p99_ms(watcher, since: float) -> float | None:
    """Frame-to-plan latency p99 (ms) of the plans that arrived after ``since`` (wall)."""
    lat = watcher.latencies(since)
    return round(float(np.percentile(lat, 99)) * 1e3, 2) if len(lat) else None


def verdict(samples: list[dict], warmup_min: float, max_growth: float, died: dict | None = None) -> dict:
    """Pass/fail on memory: each node's last RSS against its first after ``warmup_min`` minutes.
    Also the least-squares slope after the warm-up (MB per hour), for reading, not judging."""
    after = [s for s in samples if s["minute"] >= warmup_min - 1e-9]
    problems = [f"{name} exited with code {code}" for name, code in (died or {}).items()]
    growth = {}
    if len(after) < 2:
        problems.append(f"fewer than 2 samples after the {warmup_min:g}-minute warm-up: run longer")
    else:
        for name in after[0]["nodes"]:
            series = [(s["minute"], s["nodes"][name]["rss_mb"]) for s in after if name in s["nodes"]]
            minutes, rss = np.array(series).T
            rel = float(rss[-1] / rss[0] - 1.0)
            slope = float(np.polyfit(minutes, rss, 1)[0] * 60.0) if len(series) > 2 else None
            growth[name] = {"baseline_mb": float(rss[0]), "final_mb": float(rss[-1]), "growth": round(rel, 4),
                            "slope_mb_per_hour": None if slope is None else round(slope, 2)}
            if rel > max_growth:
                problems.append(f"{name} grew {100 * rel:.1f} % after the warm-up "
                                f"({rss[0]:.1f} -> {rss[-1]:.1f} MB; limit {100 * max_growth:g} %)")
    return {"passed": not problems, "problems": problems, "warmup_min": warmup_min, "max_growth": max_growth,
            "memory": growth}


def summary_line(record: dict) -> str:
    nodes = "  ".join(f"{name} {v['rss_mb']:.0f} MB {v['cpu_pct']:.0f}%" for name, v in record["nodes"].items())
    lat = record["frame_to_plan_ms_p99"]
    return (f"min {record['minute']:6.2f}  {nodes}  frame->plan p99 {'-' if lat is None else f'{lat:.0f} ms'}"
            f"  missed frames {record['camera_at_harness']['lost']}  goals {record['reached']}/{record['goals']}")


def plot(samples: list[dict], result: dict, path: Path) -> None:
    """Memory, CPU, latency p99 and drops against time, the warm-up shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s["minute"] for s in samples]
    names = list(samples[0]["nodes"]) if samples else []
    series = lambda name, key: [s["nodes"].get(name, {}).get(key, np.nan) for s in samples]  # noqa: E731
    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharex=True)
    (rss, cpu), (lat, drop) = axes
    for name in names:
        rss.plot(minutes, series(name, "rss_mb"), label=name)
        cpu.plot(minutes, series(name, "cpu_pct"), label=name)
        for key in LATENCY_KEYS:
            if any(key in s["nodes"].get(name, {}) for s in samples):
                lat.plot(minutes, series(name, key), label=f"{name} {key.split('_')[0]}")
        if name in DROP_COUNTERS:
            drop.plot(minutes, series(name, "dropped"), label=f"{name} refused")
    lat.plot(minutes, [np.nan if s["frame_to_plan_ms_p99"] is None else s["frame_to_plan_ms_p99"] for s in samples],
             "k--", label="frame->plan (harness)")
    drop.plot(minutes, [s["camera_at_harness"]["lost"] for s in samples], "k--", label="frames missed by harness")
    titles = ("resident memory (MB)", "CPU (% of one core)", "p99 latency (ms)", "dropped per sample")
    for ax, title in zip(axes.flat, titles):
        ax.set_title(title)
        ax.axvspan(0, result["warmup_min"], color="0.9")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("minutes")
    verdict_text = "passed" if result["passed"] else "FAILED: " + "; ".join(result["problems"])
    fig.suptitle(f"soak: {minutes[-1] if minutes else 0:.0f} min, memory {verdict_text}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
