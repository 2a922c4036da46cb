"""A map of the latent space, learned from the robot's own trajectories: a cost that knows the way.

The latent distance to the goal is a good cost in the open, and a bad one
behind a wall: the robot is drawn straight at the goal and stalls. A
:class:`LandmarkGraph` knows which latents lead to which:

* **landmarks** are k-means centres of the latents of recorded frames;
* two landmarks are **linked** where the robot was seen to pass from one
  to the other between two consecutive frames, at least ``min_passes``
  times (a rarer pass is taken for a latent that strayed, and left out);
* each link weighs the latent distance between its landmarks.

The cost-to-go of a latent ``z`` towards the goal latent ``g``
(:meth:`LandmarkGraph.to_goal`): with ``n`` the landmark nearest ``z`` and
``D[n]`` the shortest way along the links from ``n`` to the goal's
landmark plus that landmark's distance to ``g``::

    cost(z) = |z - g|             where n is the goal's landmark
              |z - c_n| + D[n]    elsewhere (landmarks with no way to the goal: the
                                  longest way of all, plus |z - g|)

It is zero at the goal, grows along the way the robot can drive, and is
larger behind a wall than in the open at the same straight-line distance.
Only camera frames (through the encoder) and their order are used: no
true state, no map. The planner takes it as its goal metric
(:class:`~jepa_pilot.control.planner.Planner`, ``metric=``); a bundle
ships it as ``landmarks.npz`` (`jepa-pilot landmarks`).
"""
from __future__ import annotations

import heapq
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

__all__ = ["LandmarkGraph", "LandmarkError", "kmeans"]


class LandmarkError(ValueError):
    """A landmarks file that is missing, corrupt or belongs to another encoder."""


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 25) -> np.ndarray:
    """(N, D) points -> (k, D) centres: k-means++ seeding, then Lloyd's iterations."""
    points = np.asarray(points, dtype=np.float32)
    centres = [points[rng.integers(len(points))]]
    closest = np.square(points - centres[0]).sum(1)
    for _ in range(1, k):  # each next seed drawn in proportion to its squared distance from the seeds
        centres.append(points[rng.choice(len(points), p=closest / closest.sum())])
        closest = np.minimum(closest, np.square(points - centres[-1]).sum(1))
    centres = np.stack(centres)                                            # (k, D)
    for _ in range(iterations):
        label = nearest(points, centres)                                   # (N,)
        sums = np.zeros_like(centres)
        np.add.at(sums, label, points)
        counts = np.bincount(label, minlength=k)[:, None]
        centres = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
    return centres


def nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(..., D) points, (M, D) centres -> (...) index of each point's nearest centre."""
    flat = np.asarray(points, dtype=centres.dtype).reshape(-1, points.shape[-1])
    d2 = flat @ (-2.0 * centres.T)              # (N, M): |x - c|^2 less |x|^2, the same for every centre
    d2 += np.square(centres).sum(1)
    return d2.argmin(1).reshape(points.shape[:-1])


class LandmarkGraph:
    """Landmarks (M, D) and the links (L, 2) between them (see the module doc)."""

    def __init__(self, centres: np.ndarray, links: np.ndarray, encoder_sha256: str = "") -> None:
        self.centres = np.asarray(centres, dtype=np.float32)                # (M, D)
        self.links = np.asarray(links, dtype=np.int64).reshape(-1, 2)      # (L, 2), i < j
        self.encoder_sha256 = encoder_sha256
        m = len(self.centres)
        if m < 2 or self.centres.ndim != 2 or not np.isfinite(self.centres).all():
            raise LandmarkError(f"landmarks must be (M >= 2, D) finite numbers, got shape {self.centres.shape}")
        if len(self.links) and (self.links.min() < 0 or self.links.max() >= m):
            raise LandmarkError(f"links must name landmarks 0..{m - 1}")
        lengths = np.linalg.norm(self.centres[self.links[:, 0]] - self.centres[self.links[:, 1]], axis=1)
        self.neighbours: list[list[tuple[int, float]]] = [[] for _ in range(m)]
        for (i, j), length in zip(self.links.tolist(), lengths.tolist()):
            self.neighbours[i].append((j, length))
            self.neighbours[j].append((i, length))
        self._goal_key: bytes | None = None
        self._goal_cost: Callable[[np.ndarray], np.ndarray] | None = None

    # --- building ----------------------------------------------------------------------
    @classmethod
    def build(cls, episodes: Sequence[np.ndarray], landmarks: int = 300, min_passes: int = 2, seed: int = 0,
              encoder_sha256: str = "") -> "LandmarkGraph":
        """From the latents of each episode's frames, in order ((T_e, D) each)."""
        latents = [np.asarray(e, dtype=np.float32) for e in episodes if len(e)]
        if not latents:
            raise LandmarkError("no latents to build landmarks from")
        points = np.concatenate(latents)
        if len(points) < landmarks:
            raise LandmarkError(f"{len(points)} frames are too few for {landmarks} landmarks")
        centres = kmeans(points, landmarks, np.random.default_rng(seed))
        passes: dict[tuple[int, int], int] = {}
        for episode in latents:
            label = nearest(episode, centres)
            for a, b in zip(label[:-1].tolist(), label[1:].tolist()):
                if a != b:
                    key = (min(a, b), max(a, b))
                    passes[key] = passes.get(key, 0) + 1
        links = np.array([k for k, n in passes.items() if n >= min_passes], dtype=np.int64).reshape(-1, 2)
        return cls(centres, links, encoder_sha256)

    def save(self, path: str | Path) -> None:
        with open(path, "wb") as f:  # a file object: np.savez would add .npz to the name
            np.savez(f, centres=self.centres, links=self.links, encoder_sha256=np.array(self.encoder_sha256))

    @classmethod
    def load(cls, path: str | Path, encoder_sha256: str | None = None) -> "LandmarkGraph":
        """Read ``path``; LandmarkError if it is unreadable or was built with another encoder."""
        try:
            with np.load(path, allow_pickle=False) as f:
                graph = cls(f["centres"], f["links"], str(f["encoder_sha256"]))
        except (OSError, KeyError, ValueError) as exc:
            raise LandmarkError(f"{path}: not a landmarks file ({exc})") from None
        if encoder_sha256 is not None and graph.encoder_sha256 != encoder_sha256:
            raise LandmarkError(f"{path}: built with another encoder (sha256 {graph.encoder_sha256[:12]}, "
                                f"the bundle's is {encoder_sha256[:12]}): rebuild it with `jepa-pilot landmarks`")
        return graph

    @classmethod
    def of_bundle(cls, bundle) -> "LandmarkGraph | None":
        """The landmarks a model bundle ships (checked against its encoder), None if it ships none."""
        if not bundle.has("landmarks"):
            return None
        return cls.load(bundle.path("landmarks"), bundle.spec.files["encoder"]["sha256"])

    # --- the cost ----------------------------------------------------------------------
    def ways_to(self, target: int) -> np.ndarray:
        """(M,) shortest way along the links from each landmark to landmark ``target`` (inf: none)."""
        way = np.full(len(self.centres), np.inf)
        way[target], heap = 0.0, [(0.0, target)]
        while heap:
            d, i = heapq.heappop(heap)
            if d > way[i]:
                continue
            for j, length in self.neighbours[i]:
                if d + length < way[j]:
                    way[j] = d + length
                    heapq.heappush(heap, (d + length, j))
        return way

    def to_goal(self, goal: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """The cost-to-go towards ``goal`` (D,): a function (..., D) latents -> (...) costs. The last
        goal's function is kept: a goal held for many plans costs one shortest-way search."""
        goal = np.asarray(goal, dtype=np.float32)
        key = goal.tobytes()
        if key == self._goal_key:
            return self._goal_cost
        home = int(nearest(goal[None], self.centres)[0])
        way = self.ways_to(home) + float(np.linalg.norm(self.centres[home] - goal))
        finite = np.isfinite(way)
        way[~finite] = 2.0 * way[finite].max()  # no way known: worse than any known way

        def cost(latents: np.ndarray) -> np.ndarray:
            n = nearest(latents, self.centres)                                  # (...)
            to_landmark = np.linalg.norm(latents - self.centres[n], axis=-1)    # (...)
            direct = np.linalg.norm(latents - goal, axis=-1)
            return np.where(n == home, direct, to_landmark + way[n] + np.where(finite[n], 0.0, direct))

        self._goal_key, self._goal_cost = key, cost
        return cost

    def summary(self) -> dict:
        """Landmarks, links, and the sizes of the connected parts (largest first)."""
        left, parts = set(range(len(self.centres))), []
        while left:
            part = {int(i) for i in np.flatnonzero(np.isfinite(self.ways_to(min(left))))}
            parts.append(len(part))
            left -= part
        return {"landmarks": len(self.centres), "links": len(self.links), "parts": sorted(parts, reverse=True)}
