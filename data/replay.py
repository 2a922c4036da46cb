"""The online trainer's replay buffer and live transition recorder (numpy only: no ROS, no torch).

:class:`ReplayBuffer` is a bounded dataset folder of the project's format
(:mod:`jepa_pilot.data.dataset`, ``source: live``) that the fine-tuner reads
with :class:`~jepa_pilot.data.dataset.Dataset` while it grows::

    DIR/
      dataset.yaml          # DatasetInfo (+ episodes, steps)
      replay.json           # index: per shard its file, steps, first/last stamp, wall time
                            #   written, bytes, per-step surprise (null: none)
      episodes/000123.npz   # one shard = one episode of consecutive transitions

Every file is written under a temporary name, synced and ``os.replace``d: a
crash leaves whole files only. Reopening deletes temporaries, forgets index
entries whose file is gone, adds the shards the index missed (after the
Dataset episode check; unreadable ones are deleted) and numbers on after the
highest shard. Beyond ``max_mb`` the oldest shards are deleted.

:class:`TransitionRecorder` turns the live streams (stamped on the robot's
clock) into shards with the bag importer's rules, calling its functions:
frames are kept on the control-period grid (:func:`~jepa_pilot.data.bag.resample`)
and step t's action is the last command before frame t+1
(:func:`~jepa_pilot.data.bag.actions_for`). Unlike an import, a step without a
fresh command is not recorded (zero is not what the robot was told): it ends
the shard, as do a camera gap, a clock jump back (a sim reset) and a hold (an
e-stop: while the robot is held it may be reset or moved by hand, so no
frame is recorded until it is released), so a shard never spans one. When the commands show the reset first, frames stamped up to
the last command before it + ``command_timeout`` are taken for frames still in
flight from before and dropped until the frames go back too. A process that
dies loses only the shard in memory. One writer per folder; readers may come
and go (a shard can be deleted between :meth:`ReplayBuffer.paths` and its load).
"""
from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import time
import zipfile
from pathlib import Path
from typing import IO, Any, Callable, Sequence

import numpy as np
import yaml

from jepa_pilot.common.config import Config, setting
from jepa_pilot.data.bag import actions_for, resample
from jepa_pilot.data.dataset import FORMAT, Dataset, DatasetError, DatasetInfo, Episode
from jepa_pilot.perception.preprocess import resize

__all__ = ["ReplayConfig", "ReplayBuffer", "TransitionRecorder", "live_info"]

INDEX, INDEX_FORMAT = "replay.json", "jepa_pilot.replay/1"
ENTRY = ("file", "steps", "first_stamp", "last_stamp", "wall", "bytes", "surprise")  # per shard in the index
COMMAND_HISTORY_S = 10.0  # commands this much older than the newest are forgotten (frames never lag so far)
WARNINGS_PER_KIND = 3     # bad inputs logged one by one; the rest only counted


@dataclasses.dataclass(frozen=True)
class ReplayConfig(Config):
    """The online trainer's replay buffer and transition recorder."""

    max_mb: float = setting(1024.0, "disk budget of the shards in MiB; the oldest go first", low=1e-4)
    shard_steps: int = setting(100, "steps per shard (one episode file)", low=1, high=100_000)
    min_steps: int = setting(1, "shards with fewer steps are not written", low=1, high=100_000)
    half_life: float = setting(3600.0, "wall seconds in which a shard's sampling weight halves", low=1.0)
    surprise_weight: float = setting(1.0, "extra sampling weight per (shard's mean surprise / the median)", low=0.0)
    command_timeout: float = setting(0.5, "seconds after which the last command counts as missing",
                                     low=0.001, high=60.0)
    max_gap: float = setting(3.0, "periods without a frame that end a shard", low=1.0, high=1000.0)
    surprise_tolerance: float = setting(0.01, "seconds between a surprise's stamp and a kept frame's",
                                        low=0.0, high=1.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_steps > self.shard_steps:
            self._fail("min_steps", self.min_steps, f"at most shard_steps ({self.shard_steps})")

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 2**20)


def _atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write ``path`` via ``path.tmp`` + fsync + os.replace: never a half-written file under its name."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ReplayBuffer:
    """A bounded dataset folder of shards with an index for weighted sampling (see the module docstring)."""

    def __init__(self, root: str | Path, info: DatasetInfo, config: ReplayConfig | None = None,
                 log: Callable[[str], None] = print) -> None:
        if info.source != "live":
            raise DatasetError(f"{root}: a replay buffer holds live data; info.source is {info.source!r}")
        self.root, self.info, self.config, self.log = Path(root), info, config or ReplayConfig(), log
        self.episodes = self.root / "episodes"
        self.episodes.mkdir(parents=True, exist_ok=True)
        self._check_info()
        for leftover in [*self.episodes.glob("*.tmp*"), *self.root.glob("*.tmp")]:
            leftover.unlink()
        self._entries, self._next = self._load_index()
        self._write_meta()  # Dataset() in _reconcile reads it
        self._reconcile()
        numbers = [int(p.stem) + 1 for p in self.episodes.glob("*.npz") if p.stem.isdigit()]
        self._next = max([self._next, *numbers])  # never a number again, so name order is age order
        self._evict()  # max_mb may be lower than last time
        self._save()

    # --- diagnostics and sampling ------------------------------------------------
    @property
    def total_bytes(self) -> int:
        return sum(e["bytes"] for e in self._entries)

    @property
    def steps(self) -> int:
        return sum(e["steps"] for e in self._entries)

    @property
    def shards(self) -> int:
        return len(self._entries)

    def paths(self, since: float = -math.inf) -> list[Path]:
        """The shard files written at wall time ``since`` or later, oldest first (a reader should skip one
        deleted meanwhile: DatasetError)."""
        return [self.episodes / e["file"] for e in self._entries if e["wall"] >= since]

    def sample_episodes(self, n: int, rng: np.random.Generator, now_wall: float) -> list[Path]:
        """``n`` shard paths drawn with replacement, each with chance ∝ steps · :meth:`weights`
        (every step weighs its shard's weight), from one snapshot of the index."""
        entries = list(self._entries)
        if not entries:
            return []
        p = self._weights(entries, now_wall) * [e["steps"] for e in entries]
        return [self.episodes / entries[i]["file"] for i in rng.choice(len(entries), size=n, p=p / p.sum())]

    def weights(self, now_wall: float, since: float = -math.inf) -> np.ndarray:
        """(shards,) weight of each step of each shard, aligned with :meth:`paths` (the order of
        ``Dataset(root).paths``), for a sampler that draws windows per episode by weight · windows::

            w_i = 2^(−(age_i − min age) / half_life) · (1 + surprise_weight · s_i / median(s))

        age_i: ``now_wall`` − the wall time shard i was written (>= 0), so the newest
        shard's recency factor is 1; s_i: the mean of its steps' surprise, the median
        over the shards with any (a shard without surprise, or a median of 0, gets
        the factor 1). Every weight is > 0. ``since``: only the shards :meth:`paths` gives for it.
        """
        return self._weights([e for e in self._entries if e["wall"] >= since], now_wall)

    def _weights(self, entries: list[dict], now_wall: float) -> np.ndarray:
        if not entries:
            return np.zeros(0)
        age = np.maximum(now_wall - np.array([e["wall"] for e in entries], dtype=np.float64), 0.0)
        mean = np.array([np.mean([s for s in e["surprise"] if s is not None] or [np.nan]) for e in entries])
        known = np.isfinite(mean)
        ratio = np.zeros(len(mean))
        median = float(np.median(mean[known])) if known.any() else 0.0
        if median > 0:
            ratio[known] = mean[known] / median
        return 0.5 ** ((age - age.min()) / self.config.half_life) * (1 + self.config.surprise_weight * ratio)

    # --- writing ---------------------------------------------------------------------
    def add(self, episode: Episode, surprise: Sequence[float | None] | None = None) -> Path:
        """Write one shard (``surprise``: one value or None per step); then enforce ``max_mb``."""
        episode.check(self.info, f"{self.root}: shard {self._next}")
        surprise = [None] * episode.steps if surprise is None else [None if s is None else float(s) for s in surprise]
        if len(surprise) != episode.steps:
            raise ValueError(f"{len(surprise)} surprise values for {episode.steps} steps")
        path = self.episodes / f"{self._next:06d}.npz"
        arrays = dict(images=episode.images, actions=episode.actions.astype(np.float32),
                      timestamps=episode.timestamps.astype(np.float64))
        _atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
        self._next += 1
        self._entries.append(self._entry(path, episode, surprise, time.time()))
        self._evict()
        self._save()
        return path

    def _entry(self, path: Path, episode: Episode, surprise: list, wall: float) -> dict:
        return dict(file=path.name, steps=episode.steps, first_stamp=float(episode.timestamps[0]),
                    last_stamp=float(episode.timestamps[-1]), wall=wall, bytes=path.stat().st_size,
                    surprise=surprise)

    def _evict(self) -> None:
        """Delete the oldest shards while the total exceeds ``max_mb`` (a warning, never an error)."""
        gone = []
        while self._entries and self.total_bytes > self.config.max_bytes:
            gone.append(self._entries.pop(0)["file"])
            try:
                (self.episodes / gone[-1]).unlink(missing_ok=True)
            except OSError as exc:
                self.log(f"warning: replay buffer: cannot delete {gone[-1]}: {exc}")
        if gone:
            alone = "; max_mb is below one shard's size" if not self._entries else ""
            self.log(f"warning: replay buffer {self.root} over {self.config.max_mb:g} MiB: deleted the oldest "
                     f"shard(s) {', '.join(gone)}{alone}")

    def _save(self) -> None:
        index = json.dumps({"format": INDEX_FORMAT, "next": self._next, "shards": self._entries}).encode()
        _atomic_write(self.root / INDEX, lambda f: f.write(index))
        self._write_meta()

    def _write_meta(self) -> None:
        meta = {"format": FORMAT, **self.info.to_dict(), "episodes": self.shards, "steps": self.steps,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        text = yaml.safe_dump(meta, sort_keys=False).encode()
        _atomic_write(self.root / "dataset.yaml", lambda f: f.write(text))

    # --- reopening -------------------------------------------------------------------
    def _check_info(self) -> None:
        """DatasetError if the folder already holds shards of another kind of data (notes may differ)."""
        if not any(self.episodes.glob("*.npz")):
            return
        existing = Dataset(self.root).info  # DatasetError for a missing or broken dataset.yaml
        if existing.replace(notes="") != self.info.replace(notes=""):
            raise DatasetError(f"{self.root}: holds a different kind of data ({existing}), not {self.info}; "
                               "use a new folder")

    def _load_index(self) -> tuple[list[dict], int]:
        """(the index's shard entries, the next shard number); nothing if there is none or it is unreadable."""
        path = self.root / INDEX
        if not path.exists():
            return [], 0
        try:
            data = json.loads(path.read_text())
            if data["format"] != INDEX_FORMAT:
                raise ValueError(f"format is not {INDEX_FORMAT!r}")
            if any(set(ENTRY) - set(e) for e in data["shards"]):
                raise ValueError(f"every shard entry needs {', '.join(ENTRY)}")
            return [{key: e[key] for key in ENTRY} for e in data["shards"]], int(data["next"])
        except (ValueError, KeyError, TypeError) as exc:
            self.log(f"warning: {path}: unreadable index ({exc}); rebuilt from the shards, their surprise is lost")
            return [], 0

    def _reconcile(self) -> None:
        """Match the index to the shards on disk: forget missing files, recover or delete unindexed ones."""
        on_disk = {p.name for p in self.episodes.glob("*.npz")}
        known = [e for e in self._entries if e["file"] in on_disk]
        if len(known) < len(self._entries):
            self.log(f"warning: replay buffer {self.root}: {len(self._entries) - len(known)} indexed shard(s) "
                     "are gone from disk; forgotten")
        names = {e["file"] for e in known}
        if on_disk - names:
            data = Dataset(self.root)
            for i, path in enumerate(data.paths):
                if path.name in names:
                    continue
                try:
                    episode = data[i]
                except (DatasetError, zipfile.BadZipFile, EOFError) as exc:
                    self.log(f"warning: {path}: unreadable shard ({exc}); deleted")
                    path.unlink()
                    continue
                known.append(self._entry(path, episode, [None] * episode.steps, path.stat().st_mtime))
                self.log(f"replay buffer: recovered {path.name}, missing from the index")
        self._entries = sorted(known, key=lambda e: e["file"])


def live_info(spec, recorder: str) -> DatasetInfo:
    """What a replay buffer recorded for the bundle ``spec`` (a BundleSpec) holds: its robot, frame size,
    actions and control period, ``source: live``."""
    return DatasetInfo(robot=spec.robot, source="live", image_height=spec.image_size, image_width=spec.image_size,
                       action_names=tuple(spec.action_names), action_scale=tuple(spec.action_scale),
                       control_period=spec.control_period,
                       notes=f"recorded live by {recorder} with model {spec.model_id}")


class TransitionRecorder:
    """Live commands, frames and surprise -> shards of a :class:`ReplayBuffer` (see the module docstring).

    Call from the stream callbacks, stamps in seconds of the robot's clock. A
    bad input is dropped and counted (``counts["bad_frame"]``, ...), the first
    few of each kind logged; ``counts`` also holds frames, recorded (steps
    written), shards_written, no_command, gap, clock_jump, duplicate, stale
    (frames from before a reset), holds and held (frames while held), short
    (steps of shards under min_steps), surprise (values attached), write_failed.
    """

    def __init__(self, buffer: ReplayBuffer, log: Callable[[str], None] = print) -> None:
        self.buffer, self.info, self.config, self.log = buffer, buffer.info, buffer.config, log
        self.counts: collections.Counter = collections.Counter()
        self._rate: collections.deque = collections.deque()  # (now, counts["recorded"]) per recorded_per_s call
        # the shard in memory: T+1 kept frames, T steps (step t: frame t -> t+1)
        self._times: list[float] = []
        self._images: list[np.ndarray] = []          # (H, W, 3) uint8 each
        self._actions: list[np.ndarray] = []         # (A,) float32 each
        self._surprise: list[float | None] = []      # step t: the surprise of frame t+1
        self._candidate: tuple[float, np.ndarray] | None = None  # the newest frame, not kept (yet)
        self._command_times: list[float] = []
        self._commands: list[np.ndarray] = []        # (A,) float32 each
        self._pending: collections.deque = collections.deque(maxlen=64)  # (stamp, surprise) for frames not kept
        self._last = {"frame": -math.inf, "command": -math.inf}
        self._hold = -math.inf         # commands jumped back, frames not yet: frames up to this are from before
        self._frames_ahead = False     # frames jumped back, commands not yet
        self._held = False             # an e-stop holds the robot: no frame is recorded

    def recorded_per_s(self, now: float, window: float = 60.0) -> float:
        """Steps recorded per second over about the last ``window`` seconds, from the counts seen at this
        call and the earlier ones in the window (``now``: a monotonic clock; call it regularly)."""
        self._rate.append((now, self.counts["recorded"]))
        while now - self._rate[0][0] > window:
            self._rate.popleft()
        (t0, n0), (t1, n1) = self._rate[0], self._rate[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def on_command(self, stamp: float, action: Any) -> None:
        """A command at ``stamp``: ``action`` normalised to [-1, 1]^A."""
        try:
            stamp, action = _number(stamp, "stamp"), self._action(action)
        except (TypeError, ValueError) as exc:
            return self._drop("bad_command", str(exc))
        if stamp < self._last["command"]:
            first = not self._frames_ahead
            if first:  # frames in flight from before the reset must not pair with these commands
                self._hold = self._last["command"] + self.config.command_timeout
            self._clock_jump(first, frames_ahead=False)
        self._last["command"] = stamp
        self._command_times.append(stamp)
        self._commands.append(action)
        cut = int(np.searchsorted(self._command_times, max(self._last["frame"] - self.config.command_timeout,
                                                           stamp - COMMAND_HISTORY_S)))
        del self._command_times[:cut], self._commands[:cut]  # commands no coming frame can use

    def on_hold(self, held: bool) -> None:
        """The robot is held (an e-stop engaged) or released. A hold ends the shard, and no frame is kept
        until the release: the robot may be reset or moved by hand meanwhile."""
        if held and not self._held:
            self.counts["holds"] += 1
            self._close()
            self._candidate = None
        self._held = bool(held)

    def on_frame(self, stamp: float, image: Any) -> None:
        """A camera frame at ``stamp``: (H, W, 3) uint8 RGB, resized here to the dataset's size if needed."""
        try:
            stamp, image = _number(stamp, "stamp"), self._fit(image)
        except ValueError as exc:
            return self._drop("bad_frame", str(exc))
        if stamp == self._last["frame"]:
            self.counts["duplicate"] += 1
            return
        if stamp < self._last["frame"]:
            first, self._hold = self._hold == -math.inf, -math.inf
            self._clock_jump(first, frames_ahead=first)
        self._last["frame"] = stamp
        if self._held:
            self.counts["held"] += 1
            return
        if stamp <= self._hold:
            self.counts["stale"] += 1
            return
        self._hold = -math.inf
        self.counts["frames"] += 1
        pool = ([self._candidate] if self._candidate else []) + [(stamp, image)]  # frames after the kept ones
        base = len(self._times)
        times = np.array(self._times + [t for t, _ in pool])
        for n, keep in enumerate(resample(times, self.info.control_period, self.config.max_gap)):
            if n:  # a camera gap
                self.counts["gap"] += 1
                self._close()
            for i in keep[keep >= base]:
                self._keep(*pool[i - base])
        self._candidate = None if self._times and self._times[-1] == stamp else (stamp, image)

    def on_surprise(self, stamp: float, value: float) -> None:
        """The predictor's surprise for the frame stamped ``stamp``; kept with the step that ends at it."""
        try:
            stamp, value = _number(stamp, "stamp"), _number(value, "surprise")
            if value < 0:
                raise ValueError(f"surprise {value} is negative (a distance)")
        except (TypeError, ValueError) as exc:
            return self._drop("bad_surprise", str(exc))
        ends = np.array(self._times[1:])
        t = int(np.argmin(np.abs(ends - stamp))) if len(ends) else -1
        if t >= 0 and abs(ends[t] - stamp) <= self.config.surprise_tolerance and self._surprise[t] is None:
            self._surprise[t] = value
            self.counts["surprise"] += 1
        else:
            self._pending.append((stamp, value))

    def flush(self) -> None:
        """Write the shard in memory (a clean stop); recording goes on from its last frame."""
        self._close(carry=True)

    # --- the shard in memory -----------------------------------------------------------
    def _keep(self, stamp: float, image: np.ndarray) -> None:
        """Append a kept frame; the step to it needs a fresh command, else the shard ends here."""
        if self._times:
            commands = np.array(self._commands, dtype=np.float32).reshape(-1, self.info.action_dim)
            action, missing = actions_for(np.array([self._times[-1], stamp]), np.array(self._command_times),
                                          commands, self.config.command_timeout)
            if missing:
                self.counts["no_command"] += 1
                self._close()
            else:
                self._actions.append(action[0])
                self._surprise.append(self._pending_surprise(stamp))
        self._times.append(stamp)
        self._images.append(image)
        if len(self._actions) >= self.config.shard_steps:
            self._close(carry=True)

    def _close(self, carry: bool = False) -> None:
        """Write the shard if it has min_steps; the next starts empty or, if ``carry``, at its last frame."""
        steps = len(self._actions)
        if steps >= self.config.min_steps:
            episode = Episode(images=np.stack(self._images), actions=np.stack(self._actions),
                              timestamps=np.array(self._times))
            try:
                self.buffer.add(episode, self._surprise)
                self.counts["shards_written"] += 1
                self.counts["recorded"] += steps
            except OSError as exc:
                self.counts["write_failed"] += 1
                self.log(f"warning: replay recorder: a shard of {steps} steps was not written: {exc}")
        else:
            self.counts["short"] += steps
        first = len(self._times) - 1 if carry else len(self._times)
        del self._times[:first], self._images[:first]
        self._actions, self._surprise = [], []

    def _clock_jump(self, first: bool, frames_ahead: bool) -> None:
        """The clock went back (a sim reset; counted once, when the ``first`` stream shows it): end the
        shard, forget everything from before."""
        self.counts["clock_jump"] += first
        self._close()
        self._candidate, self._frames_ahead = None, frames_ahead
        self._command_times, self._commands = [], []
        self._pending.clear()

    def _pending_surprise(self, stamp: float) -> float | None:
        for i, (at, value) in enumerate(self._pending):
            if abs(at - stamp) <= self.config.surprise_tolerance:
                del self._pending[i]
                self.counts["surprise"] += 1
                return value
        return None

    # --- inputs ----------------------------------------------------------------------------
    def _fit(self, image: Any) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (image_height, image_width, 3), resized as the dataset code resizes."""
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
                and image.shape[2] == 3 and image.size):
            raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got "
                             f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}")
        return np.array(resize(image, (self.info.image_width, self.info.image_height)))

    def _action(self, action: Any) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (self.info.action_dim,):
            raise ValueError(f"action must have shape ({self.info.action_dim},), got {a.shape}")
        if not np.isfinite(a).all() or np.abs(a).max() > 1.0 + 1e-6:
            raise ValueError(f"action {a.tolist()} is not finite and normalised to [-1, 1]")
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def _drop(self, kind: str, why: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= WARNINGS_PER_KIND:
            more = " (further ones only counted)" if self.counts[kind] == WARNINGS_PER_KIND else ""
            self.log(f"warning: replay recorder: {kind.replace('_', ' ')} dropped: {why}{more}")


def _number(value: Any, what: str) -> float:
    """A finite number as float; ValueError naming ``what`` otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise ValueError(f"{what} {value!r} is not a finite number")
    return float(value)
