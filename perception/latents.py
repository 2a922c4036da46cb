"""Latent streams, without ROS: the predictor's history window, forecasts and surprise.

The predictor takes the latest K latents *one model step apart* (frameskip
control periods, as in training: world_model/windows.py), not the last K
frames. :class:`LatentHistory` keeps the recent latents of a stream by stamp
and cuts those windows. :class:`ForecastTracker` keeps the forecasts made
from recent latents and measures *surprise*: the distance between what was
forecast one model step ago and the latent observed now.

Also :func:`resolve_bundle`: a bundle name (in the package's ``models/``) or
a path -> the bundle folder.
"""
from __future__ import annotations

import collections
from pathlib import Path

import numpy as np

from jepa_pilot.common.paths import package_share
from jepa_pilot.perception.bundle import BundleError

__all__ = ["LatentHistory", "ForecastTracker", "latent_problem", "resolve_bundle"]


class LatentHistory:
    """Recent latents of one stream, and the (K, D) windows the predictor takes.

    ``length`` K latents ``spacing`` seconds apart (the model step). A window
    ends at a given latent; for each earlier slot it takes the stored latent
    nearest to ``stamp - k * spacing`` if one lies within half a spacing, and
    otherwise repeats the oldest latent it could fill (at a start, or after a
    gap, the past is taken to be the present, as in training's first window).
    """

    def __init__(self, length: int, spacing: float, keep: float | None = None) -> None:
        if length < 1 or spacing <= 0:
            raise ValueError(f"LatentHistory needs length >= 1 and spacing > 0, got {length}, {spacing}")
        self.length, self.spacing = length, spacing
        self.keep = keep if keep is not None else (length + 1) * spacing + 1.0  # seconds kept
        self._items: collections.deque[tuple[float, np.ndarray]] = collections.deque()

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()

    def add(self, stamp: float, z: np.ndarray) -> None:
        """Add a latent; a stamp older than the newest (a clock reset) starts a new stream."""
        if self._items and stamp < self._items[-1][0]:
            self._items.clear()
        self._items.append((float(stamp), np.asarray(z, dtype=np.float32).ravel()))
        while self._items and stamp - self._items[0][0] > self.keep:
            self._items.popleft()

    def latest(self) -> tuple[float, np.ndarray] | None:
        return self._items[-1] if self._items else None

    def window(self, stamp: float | None = None, tolerance: float = 1e-6) -> np.ndarray | None:
        """(K, D) latents, oldest first, ending at the latent stamped ``stamp`` (default: the
        newest); None if there is no such latent."""
        if not self._items:
            return None
        stamps = np.array([s for s, _ in self._items])
        end = len(stamps) - 1 if stamp is None else int(np.argmin(np.abs(stamps - stamp)))
        if stamp is not None and abs(stamps[end] - stamp) > tolerance:
            return None
        out = [self._items[end][1]]
        for k in range(1, self.length):
            target = stamps[end] - k * self.spacing
            i = int(np.argmin(np.abs(stamps[:end + 1] - target)))
            if abs(stamps[i] - target) > self.spacing / 2:
                out.extend([out[-1]] * (self.length - k))  # no latent that far back: repeat the oldest
                break
            out.append(self._items[i][1])
        return np.stack(out[::-1])


class ForecastTracker:
    """Forecasts made from recent latents, and the surprise of each new latent.

    ``add(stamp, latents)`` records the forecast (H, D) made from the latent
    stamped ``stamp``: latents[k] is the state expected ``(k + 1) * step``
    seconds later. ``surprise(stamp, z)`` finds the forecast made ``steps``
    model steps before ``stamp`` (within ``tolerance`` seconds) and returns the
    distance between its prediction for now and the observed ``z``.
    """

    def __init__(self, step: float, tolerance: float, keep: int = 64) -> None:
        if step <= 0 or tolerance < 0:
            raise ValueError(f"ForecastTracker needs step > 0 and tolerance >= 0, got {step}, {tolerance}")
        self.step, self.tolerance = step, tolerance
        self._forecasts: collections.deque[tuple[float, np.ndarray]] = collections.deque(maxlen=keep)

    def add(self, stamp: float, latents: np.ndarray) -> None:
        if self._forecasts and stamp < self._forecasts[-1][0]:
            self._forecasts.clear()  # clock went back: a new stream
        self._forecasts.append((float(stamp), np.asarray(latents, dtype=np.float32)))

    def surprise(self, stamp: float, z: np.ndarray, steps: int = 1) -> float | None:
        """Distance between the forecast for ``stamp`` made ``steps`` model steps earlier and ``z``;
        None when no forecast was made then."""
        if not self._forecasts:
            return None
        target = stamp - steps * self.step
        made, latents = min(self._forecasts, key=lambda f: abs(f[0] - target))
        if abs(made - target) > self.tolerance or len(latents) < steps:
            return None
        return float(np.linalg.norm(latents[steps - 1] - np.asarray(z, dtype=np.float32).ravel()))


def latent_problem(spec, model_id: str, shape, values: int) -> str:
    """Why a latent (its model id, shape and number of values) cannot be used with the bundle
    ``spec`` (a BundleSpec), or ''. Latents of two bundles live in different spaces."""
    if model_id != spec.model_id:
        return f"model id {model_id!r} is not the bundle's {spec.model_id!r}"
    if list(shape) != [spec.latent_dim] or values != spec.latent_dim:
        return f"shape {list(shape)} with {values} values; the bundle's latent is [{spec.latent_dim}]"
    return ""


def resolve_bundle(name_or_path: str) -> Path:
    """A bundle name (a folder in the package's ``models/``) or a path -> the bundle folder.

    Raises BundleError naming the shipped bundles when the name is unknown.
    """
    if not name_or_path:
        raise BundleError("no model bundle given: set the 'bundle' parameter to a name in models/ or a path")
    path = Path(name_or_path).expanduser()
    if path.is_dir() or "/" in name_or_path or name_or_path.startswith("."):
        return path
    models = package_share() / "models"
    candidate = models / name_or_path
    if not candidate.is_dir():
        known = sorted(p.parent.name for p in models.glob("*/bundle.yaml")) if models.is_dir() else []
        raise BundleError(f"no model bundle {name_or_path!r} in {models}; shipped: {', '.join(known) or 'none'} "
                          f"(train one: README, 'Train your own world model')")
    return candidate
