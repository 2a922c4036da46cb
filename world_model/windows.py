"""Training windows cut from dataset episodes, held in memory.

A window is L = K + R frames, ``frameskip`` (S) control steps apart, with
the R + K - 1 action chunks between consecutive frames::

    frames (B, L, H, W, 3) uint8      chunks (B, L-1, S, A) float32
    frame j+1 follows frame j after actions chunks[j] (S control steps)
"""
from __future__ import annotations

import numpy as np

from jepa_pilot.data import Dataset, square_frames

__all__ = ["EpisodeWindows"]


class EpisodeWindows:
    """Episodes of one dataset, resized to the model's frame size, sampled as windows."""

    def __init__(self, dataset: Dataset, indices: list[int], image_size: int, length: int, frameskip: int):
        self.length, self.frameskip = length, frameskip
        self.span = (length - 1) * frameskip  # control steps a window covers
        self.frames, self.actions, self.states, self.indices = [], [], [], []
        for i in indices:
            ep = dataset[i]
            if ep.steps < self.span:
                continue  # too short for one window
            self.frames.append(square_frames(ep.images, image_size))
            self.actions.append(ep.actions)
            self.states.append(ep.states)
            self.indices.append(i)  # the dataset episodes held, in order
        if not self.frames:
            raise ValueError(f"no episode in {dataset.root} is long enough for a window of {self.span} steps "
                             f"({length} frames x frameskip {frameskip})")
        self.starts = np.array([len(a) - self.span + 1 for a in self.actions])  # valid starts per episode
        self.p: np.ndarray | None = None  # chance of each episode (weigh), or None: as many as it holds windows

    def weigh(self, weights: np.ndarray | None) -> "EpisodeWindows":
        """Sample an episode with a chance of its weight times the windows it holds (one weight per
        episode held, ``self.indices``); None: every window equally likely."""
        self.p = None
        if weights is not None:
            p = np.asarray(weights, np.float64) * self.starts  # (episodes,)
            if not p.sum() > 0:
                raise ValueError("episode weights are zero on every episode long enough for a window")
            self.p = p / p.sum()
        return self

    def __len__(self) -> int:
        return int(self.starts.sum())

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Random windows: episodes weighted by how many windows they hold (times their weight, see weigh)."""
        if self.p is not None:
            episodes = rng.choice(len(self.starts), size=batch, p=self.p)
            return self.gather(episodes, rng.integers(0, self.starts[episodes]))
        flat = rng.integers(0, len(self), size=batch)
        ends = np.cumsum(self.starts)
        episodes = np.searchsorted(ends, flat, side="right")
        offsets = flat - (ends[episodes] - self.starts[episodes])
        return self.gather(episodes, offsets)

    def gather(self, episodes: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s, length = self.frameskip, self.length
        frames = np.stack([self.frames[e][o:o + self.span + 1:s] for e, o in zip(episodes, offsets)])
        chunks = np.stack([self.actions[e][o:o + self.span].reshape(length - 1, s, -1)
                           for e, o in zip(episodes, offsets)])
        return frames, chunks.astype(np.float32)
