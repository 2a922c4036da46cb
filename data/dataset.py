"""The project's dataset format: episodes of (image, action, timestamp[, state]).

One format for the sim collector, rosbag2 imports and the live trainer::

    DIR/
      dataset.yaml          # DatasetInfo: what the episodes hold (see below)
      episodes/
        000000.npz          # one episode, numpy compressed archive:
        000001.npz          #   images     (T+1, H, W, 3) uint8 RGB, frame t
        ...                 #   actions    (T, A) float32 in [-1, 1], taken between frame t and t+1
                            #   timestamps (T+1,) float64 seconds, increasing
                            #   states     (T+1, S) float64 true state (optional; evaluation only)

Every reader validates what it loads and raises :class:`DatasetError`
naming the file and what is wrong; a writer never overwrites an episode.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import yaml

from jepa_pilot.common.config import Config, ConfigError, setting
from jepa_pilot.perception.preprocess import resize

__all__ = ["FORMAT", "DatasetError", "DatasetInfo", "Episode", "Dataset", "DatasetWriter", "split_episodes",
           "square_frames"]

FORMAT = "jepa_pilot.dataset/1"
POSITION_UNITS = ("m", "cm", "mm", "rad", "deg")  # a state dimension in these is seen in one frame


class DatasetError(ValueError):
    """A dataset or episode file that is missing, malformed or inconsistent."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo(Config):
    """What every episode of a dataset holds (``dataset.yaml``)."""

    robot: str = setting("two_rooms", "env name or robot profile the data comes from")
    source: str = setting("sim", "where the data comes from", choices=("sim", "bag", "live"))
    image_height: int = setting(64, "frame height in pixels", low=1, high=4096)
    image_width: int = setting(64, "frame width in pixels", low=1, high=4096)
    action_names: tuple = setting(("vx", "vy"), "one name per action dimension")
    action_scale: tuple = setting((0.5, 0.5), "physical value of action +1 per dimension")
    control_period: float = setting(0.1, "seconds between frames (nominal)", low=1e-4, high=60.0)
    state_names: tuple = setting((), "true-state dimensions (empty: no states stored)")
    state_units: tuple = setting((), "one unit per state name: m, rad (positions and angles, what one frame "
                                     "shows) or m/s, rad/s (rates); empty: not known")
    notes: str = setting("", "free text: policy, seed, bag path, ...")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.action_names or len(self.action_names) != len(self.action_scale):
            self._fail("action_scale", self.action_scale, "one scale per action name")
        if self.state_units and len(self.state_units) != len(self.state_names):
            self._fail("state_units", self.state_units,
                       f"one unit per state name ({len(self.state_names)}: {', '.join(self.state_names)})")

    @property
    def position_dims(self) -> list[int]:
        """The state dimensions one frame can show: those in a length or angle unit (m, rad...).

        A probe from a single latent scores these; rates (m/s, rad/s) are not in one image. With
        no units recorded every dimension counts."""
        if not self.state_units:
            return list(range(len(self.state_names)))
        return [i for i, unit in enumerate(self.state_units) if unit in POSITION_UNITS]

    @property
    def action_dim(self) -> int:
        return len(self.action_names)


@dataclasses.dataclass(frozen=True)
class Episode:
    images: np.ndarray               # (T+1, H, W, 3) uint8
    actions: np.ndarray              # (T, A) float32 in [-1, 1]
    timestamps: np.ndarray           # (T+1,) float64
    states: np.ndarray | None = None  # (T+1, S) float64

    @property
    def steps(self) -> int:
        return len(self.actions)

    def check(self, info: DatasetInfo, where: str = "episode") -> None:
        """Raise DatasetError saying what does not match ``info`` or is malformed."""
        def fail(what: str) -> None:
            raise DatasetError(f"{where}: {what}")

        t = self.actions.shape[0] if self.actions.ndim == 2 else -1
        if t < 1:
            fail(f"actions must be (T, {info.action_dim}) with T >= 1, got {self.actions.shape}")
        if self.actions.shape[1] != info.action_dim:
            fail(f"actions have {self.actions.shape[1]} dimensions, the dataset {info.action_dim}")
        if not np.isfinite(self.actions).all() or np.abs(self.actions).max() > 1.0 + 1e-6:
            fail("actions must be finite and normalised to [-1, 1]")
        want = (t + 1, info.image_height, info.image_width, 3)
        if self.images.dtype != np.uint8 or self.images.shape != want:
            fail(f"images must be uint8 {want}, got {self.images.dtype} {self.images.shape}")
        if self.timestamps.shape != (t + 1,) or not np.all(np.diff(self.timestamps) > 0):
            fail(f"timestamps must be ({t + 1},) and strictly increasing")
        if info.state_names:
            if self.states is None or self.states.shape != (t + 1, len(info.state_names)):
                got = None if self.states is None else self.states.shape
                fail(f"states must be ({t + 1}, {len(info.state_names)}), got {got}")


class Dataset:
    """A dataset folder opened for reading; episodes load lazily and are validated."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        meta = self.root / "dataset.yaml"
        if not meta.is_file():
            raise DatasetError(f"{self.root}: not a dataset (no dataset.yaml)")
        try:
            raw = yaml.safe_load(meta.read_text()) or {}
        except yaml.YAMLError as exc:
            raise DatasetError(f"{meta}: not valid YAML: {exc}") from None
        if raw.pop("format", None) != FORMAT:
            raise DatasetError(f"{meta}: format is not {FORMAT!r}")
        raw.pop("episodes", None), raw.pop("steps", None), raw.pop("created", None)
        try:
            self.info = DatasetInfo.from_dict(raw)
        except ConfigError as exc:
            raise DatasetError(f"{meta}: {exc}") from None
        self.paths = sorted((self.root / "episodes").glob("*.npz"))
        if not self.paths:
            raise DatasetError(f"{self.root}: no episodes in {self.root / 'episodes'}")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Episode:
        path = self.paths[index]
        try:
            with np.load(path) as z:
                episode = Episode(images=z["images"], actions=z["actions"].astype(np.float32),
                                  timestamps=z["timestamps"].astype(np.float64),
                                  states=z["states"].astype(np.float64) if "states" in z else None)
        except (OSError, KeyError, ValueError) as exc:
            raise DatasetError(f"{path}: unreadable episode ({exc})") from None
        episode.check(self.info, str(path))
        return episode

    def __iter__(self) -> Iterator[Episode]:
        return (self[i] for i in range(len(self)))


class DatasetWriter:
    """Writes episodes to a new (or appends to an existing, compatible) dataset folder."""

    def __init__(self, root: str | Path, info: DatasetInfo) -> None:
        self.root, self.info = Path(root), info
        (self.root / "episodes").mkdir(parents=True, exist_ok=True)
        if (self.root / "dataset.yaml").exists():
            existing = Dataset(self.root).info if any((self.root / "episodes").glob("*.npz")) else info
            if existing.replace(notes="") != info.replace(notes=""):
                raise DatasetError(f"{self.root}: holds a different kind of data ({existing}); "
                                   "write to a new folder")
        self.count = len(list((self.root / "episodes").glob("*.npz")))
        self.steps = 0
        self._write_meta()

    def add(self, episode: Episode) -> Path:
        episode.check(self.info, f"episode {self.count}")
        path = self.root / "episodes" / f"{self.count:06d}.npz"
        tmp = path.with_suffix(".tmp.npz")
        arrays = dict(images=episode.images, actions=episode.actions.astype(np.float32),
                      timestamps=episode.timestamps.astype(np.float64))
        if episode.states is not None:
            arrays["states"] = episode.states.astype(np.float64)
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)  # never a half-written episode under its final name
        self.count += 1
        self.steps += episode.steps
        self._write_meta()
        return path

    def _write_meta(self) -> None:
        meta = {"format": FORMAT, **self.info.to_dict(), "episodes": self.count,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (self.root / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))


def split_episodes(count: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Episode indices -> (train, validation), a fixed random split of whole episodes.

    The trainer holds out the validation split; ``jepa-pilot eval-model``
    scores a bundle on the same split of its training set.
    """
    order = np.random.default_rng(seed).permutation(count)
    n_val = max(1, int(round(count * val_fraction))) if count > 1 and val_fraction > 0 else 0
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def square_frames(images: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) frames -> (T, size, size, 3), resized exactly as deployment resizes a camera
    frame (``perception.preprocess.resize``); frames already that size are returned as they are."""
    if images.shape[1:3] == (size, size):
        return images
    return np.stack([resize(f, size) for f in images])
