"""Import a rosbag2 recording (MCAP) into the dataset format, without ROS.

``import_bag("run1/", "datasets/robot", BagImportConfig(robot="two_rooms"))``
reads a bag written by ``ros2 bag record -s mcap`` (the folder with
``metadata.yaml``, or one ``.mcap`` file) with ``rosbags`` and writes
episodes of (frame, action, timestamp) (see :mod:`jepa_pilot.data.dataset`).

Frames: ``sensor_msgs/Image`` in rgb8, bgr8, rgba8, bgra8 or mono8, or
``sensor_msgs/CompressedImage`` (jpeg, png), converted to RGB and optionally
resized. A frame with an unknown encoding, impossible sizes, truncated data,
a size other than the first frame's, or that does not decode is skipped and
counted; nothing in a bag makes the import crash.

Commands: ``geometry_msgs/TwistStamped`` or ``Twist`` for a base (the robot
profile's action fields, e.g. linear.x and linear.y), ``std_msgs/Float64MultiArray``
joint velocities for an arm. They become normalised actions with the
profile's :class:`~jepa_pilot.control.action_space.ActionSpace`; values
beyond its limits are clipped and counted, non-finite ones dropped.

Timing: every message is placed on one clock, the header stamps when every
frame and command has one (``clock="auto"``), else the log (receive) times.
Frames are resampled to a fixed ``period`` (default: the median frame
period): each point of a grid of that period keeps the frame nearest to it,
if one lies within half a period. A gap of more than
``max_gap`` periods without a valid frame ends an episode; episodes with
fewer than ``min_steps`` steps are dropped. Action t (between kept frames t
and t+1) is the last command received before frame t+1, or zero when that
command is older than ``command_timeout`` at frame t+1 (the robot's command
timeout would have stopped it) or there is none.
"""
from __future__ import annotations

import collections
import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from tqdm import tqdm

from jepa_pilot.common.config import Config, setting
from jepa_pilot.control.action_space import ActionSpace, RobotProfile
from jepa_pilot.data.dataset import DatasetInfo, DatasetWriter, Episode
from jepa_pilot.perception.preprocess import decode_image, raw_image_problem, resize

__all__ = ["BagError", "BagImportConfig", "ImportReport", "import_bag", "image_to_rgb", "resample", "actions_for",
           "command_action", "TWIST_STAMPED", "TWIST", "JOINT_ARRAY"]

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
TWIST_STAMPED = "geometry_msgs/msg/TwistStamped"
TWIST = "geometry_msgs/msg/Twist"
JOINT_ARRAY = "std_msgs/msg/Float64MultiArray"
WARNINGS_PER_REASON = 3  # bad items reported one by one; the rest are only counted
RECOVER_HINT = (" (a recording that was cut off can be repaired with the mcap CLI: "
                "`mcap recover in.mcap -o fixed.mcap`)")


class BagError(ValueError):
    """A bag that cannot be imported: missing, unreadable, without the topics or of the wrong types."""


@dataclasses.dataclass(frozen=True)
class BagImportConfig(Config):
    """How `jepa-pilot import-bag` turns a bag into episodes."""

    image_topic: str = setting("/camera/image_raw", "sensor_msgs/Image or CompressedImage topic")
    command_topic: str = setting("/cmd_vel", "TwistStamped or Twist (base), Float64MultiArray (arm) topic")
    robot: str = setting("two_rooms", "robot profile (config/robots/<name>.yaml or a YAML path): "
                         "which command fields are actions and their limits")
    period: float = setting(0.0, "seconds between kept frames; 0: the median frame period", low=0.0, high=60.0)
    command_timeout: float = setting(0.5, "seconds after which the last command counts as stopped "
                                     "(action zero)", low=0.001, high=60.0)
    max_gap: float = setting(3.0, "periods without a valid frame that end an episode", low=1.0, high=1000.0)
    min_steps: int = setting(10, "episodes with fewer steps are dropped", low=1)
    clock: str = setting("auto", "timestamps: header stamps, log (receive) times, or auto (header "
                         "stamps when every message has one)", choices=("auto", "header", "log"))
    image_size: tuple = setting((), "(width, height) in pixels to resize frames to; empty: keep the bag's",
                                low=1, high=4096)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.image_size and len(self.image_size) != 2:
            self._fail("image_size", self.image_size, "expected (width, height) or empty")


@dataclasses.dataclass
class ImportReport:
    """What an import read, kept and dropped."""

    bag: str = ""
    clock: str = ""
    period: float = 0.0
    period_source: str = ""
    frames_read: int = 0
    frames_bad: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    frames_duplicate: int = 0      # same or earlier stamp than the frame before
    frames_resampled_away: int = 0
    frames_in_short_episodes: int = 0
    frames_kept: int = 0
    episodes: int = 0
    episodes_short: int = 0
    steps: int = 0
    steps_stretched: int = 0       # longer than 1.5 periods (a frame was missing)
    commands_read: int = 0
    commands_bad: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    commands_clipped: int = 0
    actions_zero: int = 0          # no command within command_timeout before the next frame
    paths: list = dataclasses.field(default_factory=list)

    def lines(self) -> list[str]:
        """A human-readable summary."""
        def reasons(counter: collections.Counter) -> str:
            return f" ({'; '.join(f'{n} {r}' for r, n in counter.most_common())})" if counter else ""

        bad, dropped = sum(self.frames_bad.values()), sum(self.commands_bad.values())
        return [
            f"bag               {self.bag}",
            f"clock             {self.clock}; period {self.period:.4g} s ({self.period_source})",
            f"frames            {self.frames_read} read, {self.frames_kept} kept; dropped: {bad} bad"
            f"{reasons(self.frames_bad)}, {self.frames_duplicate} duplicate stamps, "
            f"{self.frames_resampled_away} resampled away, {self.frames_in_short_episodes} in short episodes",
            f"episodes          {self.episodes} ({self.steps} steps, {self.steps_stretched} longer than "
            f"1.5 periods); {self.episodes_short} dropped as too short",
            f"commands          {self.commands_read} read, {self.commands_clipped} clipped to the limits, "
            f"{dropped} dropped{reasons(self.commands_bad)}",
            f"zero actions      {self.actions_zero} (no command within the timeout before the next frame)",
        ]


# --- messages -> arrays ----------------------------------------------------------
def _stamp(msg: Any) -> float:
    """Header stamp in seconds (0.0: unstamped)."""
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def image_to_rgb(msg: Any, msgtype: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an Image or CompressedImage; ValueError saying why not.

    Raw images go through the one decoder, :func:`jepa_pilot.perception.preprocess.decode_image`.
    """
    if msgtype != COMPRESSED:
        return decode_image(msg.data, msg.encoding, msg.width, msg.height, msg.step)
    import cv2  # only for compressed frames

    if "compresseddepth" in msg.format.lower():
        raise ValueError(f"unsupported compressed format {msg.format!r}")
    bgr = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"undecodable {msg.format or 'compressed'} data")
    return np.ascontiguousarray(bgr[..., ::-1])


def command_action(msg: Any, msgtype: str, space: ActionSpace) -> tuple[np.ndarray, bool]:
    """(normalised action, clipped?) from a command message; ValueError saying why not.

    The physical -> normalised conversion and the limits are the ActionSpace's own.
    """
    if msgtype == JOINT_ARRAY:
        values = np.asarray(msg.data, dtype=np.float64)
        if values.shape != (space.dim,):
            raise ValueError(f"{values.size} joint values, expected {space.dim}")
    else:
        values = space.twist_values(msg.twist if msgtype == TWIST_STAMPED else msg)
    if not np.all(np.isfinite(values)):
        bad = [name for name, value in zip(space.fields, values) if not math.isfinite(value)]
        raise ValueError(f"non-finite value in {', '.join(bad)}")
    return space.to_normalised(values), bool(space.beyond_limits(values).any())


# --- timing ------------------------------------------------------------------------
def resample(times: np.ndarray, period: float, max_gap: float) -> list[np.ndarray]:
    """Indices of the frames to keep, one array per episode.

    ``times`` are strictly increasing frame times (s). A gap of more than
    ``max_gap * period`` starts a new episode. Within one, each point of the
    grid ``t_first + n * period`` (up to the last frame) keeps the frame
    nearest to it if that is less than ``period / 2`` away and not already
    kept; a grid point without one leaves a longer step.
    """
    times = np.asarray(times, dtype=np.float64)
    breaks = np.flatnonzero(np.diff(times) > max_gap * period) + 1
    episodes = []
    for segment in np.split(np.arange(len(times)), breaks):
        t = times[segment]
        if len(t) == 1:
            episodes.append(segment)
            continue
        grid = t[0] + period * np.arange(int(np.floor((t[-1] - t[0]) / period + 1e-9)) + 1)
        after = np.clip(np.searchsorted(t, grid), 1, len(t) - 1)
        before = after - 1
        nearest = np.where(grid - t[before] <= t[after] - grid, before, after)
        close = np.abs(t[nearest] - grid) < period / 2
        episodes.append(segment[np.unique(nearest[close])])
    return episodes


def actions_for(frame_times: np.ndarray, command_times: np.ndarray, commands: np.ndarray,
                timeout: float) -> tuple[np.ndarray, int]:
    """Action t for each step between frames t and t+1, and how many are zero for want of a command.

    Action t is the last command (``commands[i]`` received at
    ``command_times[i]``, increasing) before ``frame_times[t + 1]``; zero if
    there is none or it is older than ``timeout`` seconds at that frame.
    """
    ends = np.asarray(frame_times[1:], dtype=np.float64)
    last = np.searchsorted(command_times, ends, side="left") - 1
    fresh = last >= 0
    fresh[fresh] = command_times[last[fresh]] >= ends[fresh] - timeout
    actions = np.zeros((len(ends), commands.shape[1]), dtype=np.float32)
    actions[fresh] = commands[last[fresh]]
    return actions, int((~fresh).sum())


# --- the bag -------------------------------------------------------------------------
def _open(path: Path):
    """An AnyReader for a rosbag2 folder or a single .mcap file (BagError when that fails)."""
    from rosbags.highlevel import AnyReader, AnyReaderError
    from rosbags.typesys import Stores, get_typestore

    if not path.exists():
        raise BagError(f"{path}: no such bag (expected a rosbag2 folder with metadata.yaml or an .mcap file)")
    if path.is_dir() and not (path / "metadata.yaml").exists():
        files = sorted(path.glob("*.mcap"))
        if len(files) != 1:
            raise BagError(f"{path}: not a rosbag2 bag (no metadata.yaml and {len(files)} .mcap files)")
        path = files[0]
    if path.is_file() and path.suffix != ".mcap":
        raise BagError(f"{path}: not an MCAP file (record with `ros2 bag record -s mcap`)")
    try:
        reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_JAZZY))
        reader.open()
    except (AnyReaderError, OSError, ValueError, KeyError) as exc:
        raise BagError(f"{path}: cannot read the bag: {exc}{RECOVER_HINT}") from None
    return reader


def _connection(reader, topic: str, kinds: tuple[str, ...], what: str):
    found = [c for c in reader.connections if c.topic == topic]
    if not found:
        have = ", ".join(f"{c.topic} ({c.msgtype})" for c in sorted(reader.connections, key=lambda c: c.topic))
        raise BagError(f"the bag has no topic {topic}; it has: {have or 'no topics'}")
    wrong = {c.msgtype for c in found} - set(kinds)
    if wrong:
        raise BagError(f"{topic} carries {', '.join(sorted(wrong))}; {what} must be {' or '.join(kinds)}")
    if len({c.msgtype for c in found}) > 1:
        raise BagError(f"{topic} carries several types: {', '.join(sorted({c.msgtype for c in found}))}")
    return found


def _deserialize(reader, raw: bytes, msgtype: str) -> tuple[Any, str]:
    """(message, "") or (None, why it does not deserialize)."""
    try:
        return reader.deserialize(raw, msgtype), ""
    except Exception as exc:  # noqa: BLE001 - a corrupt message is skipped, never fatal
        return None, f"undecodable message ({type(exc).__name__})"


@dataclasses.dataclass
class _Frame:
    ordinal: int       # position among the image topic's messages
    stamp: float       # header stamp, s (0: none)
    log_time: float    # s
    time: float = 0.0  # on the chosen clock


class _Warner:
    """Prints the first few problems of each kind, counts all."""

    def __init__(self, counter: collections.Counter, log: Callable[[str], None], what: str) -> None:
        self.counter, self.log, self.what = counter, log, what

    def __call__(self, reason: str, where: str) -> None:
        key = reason.split(" (")[0]
        self.counter[key] += 1
        if self.counter[key] <= WARNINGS_PER_REASON:
            more = " (further ones only counted)" if self.counter[key] == WARNINGS_PER_REASON else ""
            self.log(f"warning: {self.what} {where}: {reason}; skipped{more}")


def import_bag(bag: str | Path, out: str | Path, config: BagImportConfig | None = None,
               progress: bool = True, log: Callable[[str], None] = print) -> ImportReport:
    """Convert ``bag`` into episodes in the dataset folder ``out`` (appended if it holds compatible data).

    Reads the bag twice: once for the timing of every message and the
    commands, once to decode the kept frames, so memory holds about one
    episode of frames at a time. Raises BagError for a bag that cannot be
    used at all, ConfigError for an unknown robot profile.
    """
    config = config or BagImportConfig()
    importer = _Importer(Path(bag), Path(out), config, progress, log)
    reader = _open(Path(bag))
    try:
        importer.run(reader)
    finally:
        reader.close()
    return importer.report


class _Importer:
    """One import: the two passes over a bag and the episodes they make."""

    def __init__(self, bag: Path, out: Path, config: BagImportConfig, progress: bool,
                 log: Callable[[str], None]) -> None:
        self.bag, self.out, self.config, self.progress = bag, out, config, progress
        self.profile = RobotProfile.load(config.robot)
        self.space = self.profile.action_space
        self.report = ImportReport(bag=str(bag))
        self.bad_frame = _Warner(self.report.frames_bad, log, "frame")
        self.bad_command = _Warner(self.report.commands_bad, log, "command")
        self.size: tuple[int, int] | None = tuple(config.image_size) or None  # (width, height)
        self.writer: DatasetWriter | None = None

    def run(self, reader) -> None:
        cfg = self.config
        images = _connection(reader, cfg.image_topic, (IMAGE, COMPRESSED), "images")
        kinds = (JOINT_ARRAY,) if self.profile.embodiment == "arm" else (TWIST_STAMPED, TWIST)
        commands = _connection(reader, cfg.command_topic, kinds,
                               f"commands for {self.profile.name} ({self.profile.embodiment})")
        self.connections = images + commands  # both passes read the same set: the same order
        self.total = sum(c.msgcount for c in self.connections)
        frames = self._scan(reader, images[0].msgtype, commands[0].msgtype)
        plan = resample(self.times, self.report.period, cfg.max_gap)
        self.report.frames_resampled_away = len(frames) - sum(len(p) for p in plan)
        self._write(reader, plan, {frames[i].ordinal: (e, k) for e, p in enumerate(plan) for k, i in enumerate(p)})

    def _messages(self, reader, desc: str) -> Iterator[tuple[Any, int, bytes]]:
        """(connection, log time ns, raw message) of both topics; BagError where the file is damaged."""
        messages = reader.messages(connections=self.connections)
        with tqdm(total=self.total, unit="msg", desc=desc, disable=not self.progress) as bar:
            while True:
                try:
                    item = next(messages)
                except StopIteration:
                    return
                except Exception as exc:  # noqa: BLE001 - a damaged container raises all sorts
                    raise BagError(f"{self.bag}: damaged after {bar.n} messages ({type(exc).__name__}: {exc}); "
                                   f"{self.report.episodes} episodes were written{RECOVER_HINT}") from None
                bar.update()
                yield item

    def _scan(self, reader, image_type: str, command_type: str) -> list[_Frame]:
        """Pass 1: the timing of every valid frame, every command; the clock and the period."""
        cfg, report = self.config, self.report
        frames: list[_Frame] = []
        stamps, log_times, actions = [], [], []
        for conn, log_ns, raw in self._messages(reader, "scan"):
            log_time = log_ns * 1e-9
            msg, problem = _deserialize(reader, raw, conn.msgtype)
            if conn.topic == cfg.image_topic:
                report.frames_read += 1
                problem = problem or self._frame_problem(msg, image_type)
                if problem:
                    self.bad_frame(problem, f"#{report.frames_read - 1} at {log_time:.3f} s")
                    continue
                frames.append(_Frame(report.frames_read - 1, _stamp(msg), log_time))
                continue
            report.commands_read += 1
            if not problem:
                try:
                    action, clipped = command_action(msg, command_type, self.space)
                except ValueError as exc:
                    problem = str(exc)
            if problem:
                self.bad_command(problem, f"at {log_time:.3f} s")
                continue
            report.commands_clipped += clipped
            stamps.append(_stamp(msg) if command_type == TWIST_STAMPED else 0.0)
            log_times.append(log_time)
            actions.append(action)
        if len(frames) < 2:
            raise BagError(f"{self.bag}: {len(frames)} valid frames on {cfg.image_topic}; nothing to import")

        stamped = command_type == TWIST_STAMPED and all(f.stamp > 0 for f in frames) and all(s > 0 for s in stamps)
        if cfg.clock == "header" and not stamped:
            raise BagError(f"clock=header, but not every frame and command carries a header stamp "
                           f"({command_type} commands); use clock=log")
        header = cfg.clock == "header" or (cfg.clock == "auto" and stamped)
        report.clock = "header stamps" if header else "log (receive) times"
        for f in frames:
            f.time = f.stamp if header else f.log_time
        frames.sort(key=lambda f: f.time)
        unique = [frames[0]]
        for f in frames[1:]:
            if f.time > unique[-1].time:
                unique.append(f)
            else:
                report.frames_duplicate += 1
        self.times = np.array([f.time for f in unique])
        if cfg.period:
            report.period, report.period_source = cfg.period, "given"
        else:
            report.period, report.period_source = float(np.median(np.diff(self.times))), "median frame period"
        times = np.array(stamps if header else log_times, dtype=np.float64)
        order = np.argsort(times, kind="stable")
        self.command_times = times[order]
        self.commands = np.array(actions, dtype=np.float32).reshape(-1, self.space.dim)[order]
        return unique

    def _frame_problem(self, msg: Any, image_type: str) -> str | None:
        """What is wrong with a frame as far as can be told without decoding its pixels."""
        if image_type != IMAGE:
            return None if len(msg.data) else "empty compressed data"
        problem = raw_image_problem(len(msg.data), msg.encoding, msg.width, msg.height, msg.step)
        if problem is None and not self.config.image_size:
            self.size = self.size or (msg.width, msg.height)
            if (msg.width, msg.height) != self.size:
                problem = f"size {msg.width}x{msg.height} differs from the first frame's {self.size[0]}x{self.size[1]}"
        return problem

    def _write(self, reader, plan: list[np.ndarray], wanted: dict[int, tuple[int, int]]) -> None:
        """Pass 2: decode the kept frames; write the episodes in order as each completes."""
        buffers: dict[int, dict[int, np.ndarray | None]] = collections.defaultdict(dict)
        done = ordinal = 0
        for conn, _, raw in self._messages(reader, "decode"):
            if conn.topic != self.config.image_topic:
                continue
            slot = wanted.get(ordinal)
            ordinal += 1
            if slot is None:
                continue
            episode, k = slot
            try:
                buffers[episode][k] = self._fit(image_to_rgb(reader.deserialize(raw, conn.msgtype), conn.msgtype))
            except ValueError as exc:
                self.bad_frame(str(exc), f"#{ordinal - 1}")
                buffers[episode][k] = None
            while done < len(plan) and len(buffers[done]) == len(plan[done]):
                images = buffers.pop(done)
                run: list[int] = []
                for k, index in enumerate(plan[done]):  # a frame that failed to decode splits the episode
                    if images[k] is None:
                        self._finish(run, images, plan[done])
                        run = []
                    else:
                        run.append(k)
                self._finish(run, images, plan[done])
                done += 1

    def _fit(self, image: np.ndarray) -> np.ndarray:
        """Resize to ``image_size``; without one, check the frame has the first frame's size."""
        if self.config.image_size:
            return resize(image, tuple(self.config.image_size))  # as in training: area down, bilinear up
        self.size = self.size or (image.shape[1], image.shape[0])
        if image.shape[:2] != (self.size[1], self.size[0]):
            raise ValueError(f"size {image.shape[1]}x{image.shape[0]} differs from the first frame's "
                             f"{self.size[0]}x{self.size[1]}")
        return image

    def _finish(self, run: list[int], images: dict[int, np.ndarray | None], indices: np.ndarray) -> None:
        """Write the frames ``run`` (positions in ``indices``) as one episode if it is long enough."""
        report = self.report
        if len(run) - 1 < self.config.min_steps:
            report.episodes_short += bool(run)
            report.frames_in_short_episodes += len(run)
            return
        times = self.times[indices[run]]
        actions, zeros = actions_for(times, self.command_times, self.commands, self.config.command_timeout)
        stack = np.stack([images[k] for k in run])
        if self.writer is None:
            info = DatasetInfo(robot=self.profile.name, source="bag", image_height=stack.shape[1],
                               image_width=stack.shape[2], action_names=self.space.fields,
                               action_scale=self.space.scale, control_period=report.period,
                               notes=f"jepa-pilot import-bag {self.bag} ({self.config.image_topic}, "
                                     f"{self.config.command_topic}, {report.clock}, period {report.period:.4g} s)")
            self.writer = DatasetWriter(self.out, info)
        report.paths.append(str(self.writer.add(Episode(images=stack, actions=actions, timestamps=times))))
        report.episodes += 1
        report.steps += len(actions)
        report.frames_kept += len(run)
        report.actions_zero += zeros
        report.steps_stretched += int((np.diff(times) > 1.5 * report.period).sum())
