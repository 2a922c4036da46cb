"""Online learning, the learner's side: when to fine-tune, in a process of its own, and which bundle is current.

The trainer node records the robot's transitions into a
:class:`~jepa_pilot.data.replay.ReplayBuffer` and ticks an
:class:`OnlineLearner`, which

* learns only when there is something to learn: a :class:`SurpriseMonitor`
  compares the current model's surprise while the robot moves with the base
  model's at the start (``drift_ratio``); a world that looks as the model
  expects starts no fine-tune, so it can cause no update;
* then starts a fine-tune when enough new steps were recorded and the last one is
  far enough back: a **child process** running ``jepa-pilot finetune`` (the
  same fine-tune, gate and atomic export as offline) on a snapshot of the
  buffer (hard links: the buffer may drop shards meanwhile), with the
  buffer's recency/surprise weights, at the idle CPU priority (it runs only
  on CPU time nothing else wants) and with few threads so the control loop
  keeps its rate; the child dies with its parent;
* reads the child's verdict: an accepted bundle becomes the current one in
  the :class:`BundleHistory` (which keeps the last ``keep_bundles``) and is
  returned for the node to announce; a rejected one is counted, with why;
* asks for exploration (``explore_seconds``, off by default) when a verdict
  says the world changed (the current model is ``drift_factor`` times worse on
  live data than the first model was on its own data): data recorded while
  the robot pursues goals with a wrong model covers few actions, and a model
  fine-tuned on it stays wrong where the planner needs it. The request is
  made once per change, after ``confirm_after`` verdicts in a row found it
  changed (one stretch of odd data, a robot pushing against a wall, can
  make one verdict cry change); a new change is looked for only after
  ``rearm_after`` verdicts in a row found the world unchanged (a model
  adapted to a change can sit near the drift threshold, and a verdict that
  flips back and forth must not keep the robot exploring);
* after a change, fine-tunes only on what was recorded since the surprise
  rose (the monitor's ``onset``) or since the start of the last fine-tune
  that found the world unchanged, whichever is later (the data from before
  shows a world that is gone, and training on both teaches neither); the
  mark moves, forward only, at each new change.

No ROS and no torch here: the node converts messages, the child trains.
"""
from __future__ import annotations

import collections
import ctypes
import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from jepa_pilot.common.config import Config, setting

__all__ = ["OnlineConfig", "encoder_space", "finetune_command", "finetune_environment", "BundleHistory", "SurpriseMonitor", "FinetuneJob", "OnlineLearner", "Update"]

ACCEPTED, REJECTED = 0, 3  # exit codes of `jepa-pilot finetune`


@dataclasses.dataclass(frozen=True)
class OnlineConfig(Config):
    """When and how the online learner fine-tunes."""

    update_every: float = setting(120.0, "wall seconds at least between two fine-tunes", low=1.0)
    min_new_steps: int = setting(300, "recorded steps since the last fine-tune before the next", low=1)
    keep_bundles: int = setting(5, "accepted bundles kept on disk (the oldest are deleted)", low=1, high=1000)
    finetune_steps: int = setting(1000, "optimiser steps per fine-tune", low=1)
    margin: float = setting(0.1, "a candidate must beat the current model on recent data by this fraction",
                            low=0.0, high=1.0)
    base_limit: float = setting(0.1, "and may be worse on the base data by at most this fraction", low=0.0)
    finetune_threads: int = setting(1, "PyTorch threads of the fine-tune process", low=1, high=256)
    finetune_encoder: bool = setting(False, "fine-tune the encoder too (jepa-pilot finetune --encoder: several "
                                     "times slower, frames held in memory; the goal is re-encoded on the swap)")
    nice: int = setting(10, "how much lower the fine-tune process's CPU priority is", low=0, high=19)
    explore_seconds: float = setting(0.0, "wall seconds of random actions asked of the planner (/jepa/explore) "
                                     "when a fine-tune finds the world changed (0: never)", low=0.0)
    confirm_after: int = setting(2, "fine-tunes in a row that find the world changed before it counts as changed",
                                 low=1)
    rearm_after: int = setting(3, "fine-tunes in a row that find the world unchanged before a new change is "
                               "looked for", low=1)
    drift_ratio: float = setting(1.25, "fine-tune only while the current model's recent median surprise (robot "
                                 "moving) is at least this many times the base model's reference (0: whenever due)",
                                 low=0.0)
    reference_samples: int = setting(300, "surprise samples, robot moving, of the base model that set the reference",
                                     low=10)
    drift_window: int = setting(300, "the latest surprise samples, robot moving, of the current model compared "
                                "with the reference", low=10)


@dataclasses.dataclass(frozen=True)
class Update:
    """An accepted bundle to announce."""

    model_id: str
    bundle: Path
    parent_id: str
    reason: str


def encoder_space(bundle: Path) -> str:
    """The latent space a bundle encodes into: its encoder.onnx's sha256 in bundle.yaml ('' if unreadable)."""
    try:
        return str(yaml.safe_load((bundle / "bundle.yaml").read_text())["files"]["encoder"]["sha256"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return ""


class BundleHistory:
    """The bundles the learner accepted, oldest first, after the base bundle the graph started with.

    ``root/history.json`` lists them; each is a folder in ``root``. Survives restarts: the
    current bundle is the newest entry whose folder still exists, and the temporary folder of an
    export that was cut short is deleted."""

    def __init__(self, root: Path, base_id: str, base_path: Path, keep: int) -> None:
        self.root, self.keep = Path(root), keep
        self.root.mkdir(parents=True, exist_ok=True)
        for leftover in self.root.glob("*.tmp-*"):  # an export cut short (the trainer was killed): never whole
            shutil.rmtree(leftover, ignore_errors=True)
        self.base = {"model_id": base_id, "path": str(base_path), "reason": "the bundle the graph started with"}
        path = self.root / "history.json"
        entries = json.loads(path.read_text()) if path.is_file() else []
        self.entries = [e for e in entries if Path(e["path"]).is_dir()]

    @property
    def current(self) -> dict:
        return self.entries[-1] if self.entries else self.base

    def add(self, model_id: str, path: Path, reason: str) -> None:
        self.entries.append({"model_id": model_id, "path": str(path), "reason": reason, "wall": time.time()})
        while len(self.entries) > self.keep:
            shutil.rmtree(self.entries.pop(0)["path"], ignore_errors=True)
        self._save()

    def rollback(self) -> dict | None:
        """Forget the current bundle (its folder is kept, renamed ``*.rolled-back``); the new current
        one, or None when the graph already runs the base bundle."""
        if not self.entries:
            return None
        gone = self.entries.pop()
        folder = Path(gone["path"])
        if folder.is_dir():
            folder.rename(folder.with_name(folder.name + ".rolled-back"))
        self._save()
        return self.current

    def _save(self) -> None:
        tmp = self.root / "history.json.tmp"
        tmp.write_text(json.dumps(self.entries, indent=1))
        os.replace(tmp, self.root / "history.json")


class SurpriseMonitor:
    """Has the world drifted away from the model? Its surprise while the robot moves, against a reference.

    The surprise (``/jepa/surprise``: the latent distance between the predictor's
    one-step forecast and what the camera then showed) is measured on every frame
    by the deployed model, so its median over a few hundred samples is a steady
    signal; the held-out error of one fine-tune's recent shards is not. Samples
    count only while the robot moves (its last command is non-zero and fresh):
    a held or parked robot is never surprised.

    * **reference**: the median of the first ``reference_samples`` of the base
      model, taken on the assumption that the robot starts in the world its
      bundle was trained for; saved in ``path`` so a restarted trainer keeps it
      rather than taking a changed world as normal. One reference per latent
      space (the encoder's sha256, ``space``): a predictor fine-tune keeps the
      base model's; a distance in the latent space of a fine-tuned encoder is not
      comparable with it, so the first model of a new space sets that space's
      reference from its own first samples (after the gate found it fits the
      recent data better than its parent: drift is then judged from there);
    * **recent**: the latest ``window`` samples of the current model (the window
      restarts when another model's surprise arrives: a new model is judged on
      its own samples);
    * ``drift()``: recent median / reference, None until both are full;
      ``onset``: the wall time of the oldest sample in the window when drift was
      first seen after none; the median crosses once about half the window is
      new, so the change came after the onset, by about half a window. "None"
      means the drift fell back halfway to the reference (1.125 for a ratio of
      1.25): a drift that hovers at the threshold keeps its first onset rather
      than moving it forward at every crossing.
    """

    FRESH_S = 0.5  # a command older than this (wall seconds) no longer says the robot moves

    def __init__(self, ratio: float, reference_samples: int, window: int, base_id: str, path: Path,
                 base_space: str | None = None) -> None:
        self.ratio, self.need, self.base_id, self.path = ratio, reference_samples, base_id, Path(path)
        self.recent: collections.deque = collections.deque(maxlen=window)  # (wall, surprise) of self.model
        self.model, self.onset, self._drifting = "", None, False
        self.spaces = {base_id: base_space or base_id}  # model id -> latent space
        self._first: dict[str, list[float]] = {}        # space -> its first samples, until it has a reference
        saved = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.references: dict[str, dict] = saved.get("references", {})  # space -> median, samples, model_id
        self._command = (-float("inf"), False)  # (wall, moving) of the latest command

    def add_model(self, model_id: str, space: str) -> None:
        """Say which latent space ``model_id`` encodes into (before its surprise arrives); a model
        never named here counts as one of the base model's space."""
        self.spaces[model_id] = space

    def _space(self, model_id: str) -> str:
        return self.spaces.get(model_id or self.base_id, self.spaces[self.base_id])

    @property
    def reference(self) -> float | None:
        """The reference of the current model's latent space (the base model's before any sample)."""
        entry = self.references.get(self._space(self.model))
        return None if entry is None else float(entry["median"])

    def on_command(self, wall: float, moving: bool) -> None:
        self._command = (wall, bool(moving))

    def add(self, wall: float, model_id: str, surprise: float) -> None:
        """One surprise of ``model_id``'s forecast, received at ``wall``."""
        last, moving = self._command
        if not (moving and wall - last <= self.FRESH_S and math.isfinite(surprise)):
            return
        if model_id != self.model:
            self.model = model_id
            self.recent.clear()
        self.recent.append((wall, surprise))
        space = self._space(model_id)
        if space not in self.references:
            first = self._first.setdefault(space, [])
            first.append(surprise)
            if len(first) >= self.need:
                self.references[space] = {"median": float(np.median(first)), "samples": len(first),
                                          "model_id": model_id}
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text(json.dumps({"references": self.references}, indent=1))
        drift = self.drift()
        if drift is not None and self.ratio > 0:  # unknown while the window refills after a swap: state stands
            if drift >= self.ratio and not self._drifting:
                self.onset, self._drifting = self.recent[0][0], True
            elif drift < 1 + (self.ratio - 1) / 2:  # back halfway to the reference: a new rise is a new onset
                self._drifting = False

    def drift(self) -> float | None:
        reference = self.reference
        if not reference or len(self.recent) < self.recent.maxlen:
            return None
        return float(np.median([s for _, s in self.recent])) / reference

    def drifted(self) -> bool:
        """Whether the current model should be fine-tuned: always with ratio 0, else drift() >= ratio."""
        if self.ratio <= 0:
            return True
        drift = self.drift()
        return drift is not None and drift >= self.ratio

    def describe(self) -> str:
        if self.ratio <= 0:
            return "fine-tunes whenever due (drift_ratio 0)"
        if self.reference is None:
            taken = len(self._first.get(self._space(self.model), []))
            return f"taking the surprise reference ({taken} of {self.need} samples)"
        drift = self.drift()
        if drift is None:
            return f"judging model {self.model or '?'} ({len(self.recent)} of {self.recent.maxlen} samples)"
        return (f"surprise {drift:.2f}x the reference ({'fine-tuning' if drift >= self.ratio else 'no drift'}: "
                f"fine-tunes at {self.ratio:g}x or more)")


def _lower_priority(nice: int) -> Callable[[], None]:
    """preexec_fn of the fine-tune child: lower its priority, and have it killed when its parent dies.

    On Linux the child runs under SCHED_IDLE: the kernel gives it a core only when no normal process
    wants one, and a waking control-loop thread preempts it at once (a nice level alone still gets the
    child a share of the CPU, enough to delay the loop on two cores)."""
    def prepare() -> None:
        os.nice(nice)
        if hasattr(os, "SCHED_IDLE"):
            try:
                os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            except OSError:  # not allowed here: the nice level stands
                pass
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:  # not Linux / no glibc: the child then outlives a killed parent
            pass
    return prepare


def finetune_command(bundle: str | Path, live: Path, base: Path, out: Path, verdict: Path,
                     cfg: OnlineConfig) -> list[str]:
    """The `jepa-pilot finetune` child's command line, with the learner's settings."""
    return [sys.executable, "-m", "jepa_pilot.cli.main", "finetune", str(bundle), "--data", str(live),
            "--base", str(base), "--out", str(out), "--json", str(verdict), "--steps", str(cfg.finetune_steps),
            "--margin", str(cfg.margin), "--base-limit", str(cfg.base_limit), "--threads", str(cfg.finetune_threads),
            "--quiet", "--encoder" if cfg.finetune_encoder else "--no-encoder"]


def finetune_environment(cfg: OnlineConfig) -> dict[str, str]:
    """The child's environment: this one, with the math libraries held to ``finetune_threads``."""
    return {**os.environ, **{k: str(cfg.finetune_threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}


class FinetuneJob:
    """One `jepa-pilot finetune` child on a hard-linked snapshot of the buffer."""

    def __init__(self, current: dict, buffer, base_data: Path, out: Path, work: Path, cfg: OnlineConfig,
                 since: float = -float("inf")) -> None:
        """``since``: only the shards written at that wall time or later (ReplayBuffer.paths)."""
        self.out, self.result_path = out, work / "result.json"
        self.snapshot = work / "live"
        shutil.rmtree(work, ignore_errors=True)
        (self.snapshot / "episodes").mkdir(parents=True)
        shutil.copy(buffer.root / "dataset.yaml", self.snapshot / "dataset.yaml")
        paths = buffer.paths(since)
        for path in paths:
            os.link(path, self.snapshot / "episodes" / path.name)
        weights = buffer.weights(time.time(), since)
        (work / "weights.json").write_text(json.dumps([float(w) for w in weights]))
        self.steps, self.started = buffer.steps, time.monotonic()
        command = finetune_command(current["path"], self.snapshot, base_data, out, self.result_path, cfg)
        self.log = open(work / "finetune.log", "w")
        self.proc = subprocess.Popen([*command, "--live-weights", str(work / "weights.json")], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=finetune_environment(cfg),
                                     preexec_fn=_lower_priority(cfg.nice))

    def poll(self) -> dict | None:
        """None while running; then the verdict: accepted, reason, metrics, seconds."""
        code = self.proc.poll()
        if code is None:
            return None
        self.log.close()
        shutil.rmtree(self.snapshot, ignore_errors=True)
        result = json.loads(self.result_path.read_text()) if self.result_path.is_file() else {}
        accepted = code == ACCEPTED and self.out.is_dir()
        reason = result.get("reason") or f"the fine-tune process exited with code {code} (see {self.log.name})"
        return {**result, "accepted": accepted, "reason": reason, "exit_code": code,
                "seconds": time.monotonic() - self.started}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class OnlineLearner:
    """Decides when to fine-tune and keeps the current bundle; ``tick`` it about once a second."""

    def __init__(self, cfg: OnlineConfig, buffer, history: BundleHistory, base_data: Path | None, work: Path,
                 log: Callable[[str], None] = print) -> None:
        self.cfg, self.buffer, self.history, self.base_data = cfg, buffer, history, base_data
        self.work, self.log = Path(work), log
        self.job: FinetuneJob | None = None
        self.last_start, self.last_steps = -float("inf"), buffer.steps
        self.counts = {"finetunes": 0, "accepted": 0, "rejected": 0}
        self.last_reason = "no fine-tune yet" if base_data else "learning off: no base dataset (base_data)"
        self.last_result: dict = {}
        self.explore_until, self.armed = -float("inf"), True
        self.calm = self.alarm = 0  # verdicts in a row that found the world unchanged / changed
        self.since = -float("inf")           # wall time: fine-tune on shards written since (after a change)
        self.unchanged_at = -float("inf")    # wall time the last fine-tune that found the world unchanged began
        self.job_wall = -float("inf")        # wall time the running fine-tune began
        self.monitor = SurpriseMonitor(cfg.drift_ratio, cfg.reference_samples, cfg.drift_window,
                                       history.base["model_id"], self.work / "surprise_reference.json",
                                       encoder_space(Path(history.base["path"])))
        for entry in history.entries:  # kept from before a restart
            self.monitor.add_model(entry["model_id"], encoder_space(Path(entry["path"])) or entry["model_id"])

    def due(self, now: float) -> bool:
        return (self.job is None and self.base_data is not None and now - self.last_start >= self.cfg.update_every
                and self.buffer.steps - self.last_steps >= self.cfg.min_new_steps and self.monitor.drifted())

    def tick(self, now: float) -> Update | None:
        """Start a fine-tune when due; an Update when one finished with an accepted bundle."""
        if self.job is not None:
            result = self.job.poll()
            return None if result is None else self._finish(result, now)
        onset = self.monitor.onset
        if onset is not None and onset > self.since:  # surprise rose: the data from before shows another world
            self.since = onset
            self.log(f"the {self.monitor.describe()}: fine-tuning on data recorded since "
                     f"{time.strftime('%H:%M:%S', time.localtime(onset))}")
        if self.due(now):
            self.counts["finetunes"] += 1
            out = self.history.root / f"{self.counts['finetunes']:04d}-{int(time.time())}"
            self.job_wall = time.time()
            self.job = FinetuneJob(self.history.current, self.buffer, self.base_data, out,
                                   self.work / "job", self.cfg, self.since)
            self.last_start, self.last_steps = now, self.buffer.steps
            self.log(f"fine-tune {self.counts['finetunes']} started on {self.job.steps} recorded steps "
                     f"(model {self.history.current['model_id']})")
        return None

    def status(self) -> dict:
        """What the learner reports (the trainer's /diagnostics)."""
        last = self.last_result
        return {"current_model": self.history.current["model_id"], "finetuning": self.job is not None,
                **self.counts, "last_verdict": self.last_reason, "drift": self.monitor.describe(),
                "finetune_steps_per_s": last["steps"] / last["wall_s"] if last.get("wall_s") else 0.0}

    def exploring(self, now: float) -> bool:
        """Whether the planner should explore now (the trainer renews the request while it holds)."""
        return now < self.explore_until

    def _finish(self, result: dict, now: float) -> Update | None:
        job, self.job, self.last_result, job_wall = self.job, None, result, self.job_wall
        self.last_reason = result["reason"]
        if "world_changed" in result:  # (a fine-tune that failed says nothing about the world)
            self._track_world(result["world_changed"], now, job_wall)
        if not result["accepted"]:
            self.counts["rejected"] += 1
            self.log(f"candidate rejected after {result['seconds']:.0f} s: {result['reason']}")
            return None
        self.counts["accepted"] += 1
        parent = self.history.current["model_id"]
        model_id = result.get("model_id") or job.out.name
        self.history.add(model_id, job.out, result["reason"])
        self.monitor.add_model(model_id, encoder_space(job.out) or model_id)
        return Update(model_id, job.out, parent, f"online fine-tune: {result['reason']}")

    def _track_world(self, changed: bool, now: float, job_wall: float) -> None:
        """A verdict on the world: a new change moves the data mark and asks for exploration."""
        if not changed:
            self.calm, self.alarm, self.unchanged_at = self.calm + 1, 0, job_wall
            self.armed = self.armed or self.calm >= self.cfg.rearm_after
            return
        self.calm, self.alarm = 0, self.alarm + 1
        if not self.armed or self.alarm < self.cfg.confirm_after:
            return
        self.armed = False
        if self.unchanged_at > self.since:
            self.since = self.unchanged_at
            self.log("the world changed: fine-tuning from now on only on data recorded since "
                     f"{time.strftime('%H:%M:%S', time.localtime(self.since))}")
        if self.cfg.explore_seconds > 0:
            self.explore_until = now + self.cfg.explore_seconds
            self.log(f"the world changed: asking the planner to explore for {self.cfg.explore_seconds:g} s")

    def rollback(self) -> Update | None:
        """Back to the bundle before the current one (None: nothing to roll back)."""
        if self.history.rollback() is None:
            return None
        current = self.history.current
        return Update(current["model_id"], Path(current["path"]), "", "rollback")

    def stop(self) -> None:
        if self.job is not None:
            self.job.stop()
            self.job = None
