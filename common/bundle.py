"""Model bundles: the encoder and rollout ONNX graphs of one latent space, and what they need.

A bundle is a folder::

    bundle.yaml      # this module's BundleSpec: id, shapes, actions, timing, recipe, metrics, hashes
    encoder.onnx     # frames (N, 3, S, S) float32 RGB in [0, 1]        -> latent (N, D)
    rollout.onnx     # z_hist (N, K, D), actions (N, H*S, A) in [-1, 1] -> latents (N, H, D)
                     #   one action per control period; a latent every S = frameskip periods
    landmarks.npz    # optional: the planner's map of the latent space (control/landmarks.py)

One bundle is one latent space: encoder and predictor never mix across
bundles, so ``load_bundle`` checks every file's sha256 and the shapes the
graphs declare against ``bundle.yaml``, and says what is wrong.

This module is the format, below the two rooms that use it: the trainer
(``world_model/export.py``, torch) writes bundles, the runtime
(``perception/``, ONNX Runtime) reads them. Pure Python: yaml and hashlib.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import yaml

__all__ = ["FORMAT", "FILES", "OPTIONAL_FILES", "BundleError", "BundleSpec", "Bundle", "load_bundle", "sha256"]

FORMAT = "jepa_pilot.bundle/1"
FILES = ("encoder", "rollout")
OPTIONAL_FILES = ("landmarks",)  # checked like the others where bundle.yaml lists them


class BundleError(ValueError):
    """A bundle that is missing, corrupt or inconsistent (the message says which file and why)."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class BundleSpec:
    """The contents of ``bundle.yaml``."""

    model_id: str
    robot: str
    image_size: int
    latent_dim: int
    history: int
    horizon: int
    frameskip: int
    control_period: float
    action_names: tuple[str, ...]
    action_scale: tuple[float, ...]
    files: dict[str, dict[str, str]]           # name -> {path, sha256}
    recipe: dict[str, Any] = dataclasses.field(default_factory=dict)
    training: dict[str, Any] = dataclasses.field(default_factory=dict)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def model_step(self) -> float:
        """Seconds of robot time per predictor step."""
        return self.frameskip * self.control_period

    def io_shapes(self) -> dict[str, dict[str, list]]:
        """Graph name -> input/output name -> shape ("N" = any batch size)."""
        s, d, k, h, a = self.image_size, self.latent_dim, self.history, self.horizon, self.action_dim
        return {"encoder": {"frames": ["N", 3, s, s], "latent": ["N", d]},
                "rollout": {"z_hist": ["N", k, d], "actions": ["N", h * self.frameskip, a], "latents": ["N", h, d]}}

    def to_yaml(self) -> str:
        data = {"format": FORMAT, **dataclasses.asdict(self)}
        data["action_names"], data["action_scale"] = list(self.action_names), list(self.action_scale)
        data["io"] = self.io_shapes()
        return yaml.safe_dump(data, sort_keys=False)

    @classmethod
    def from_yaml(cls, path: Path) -> "BundleSpec":
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise BundleError(f"{path.parent}: not a model bundle (no bundle.yaml)") from None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise BundleError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict) or raw.pop("format", None) != FORMAT:
            raise BundleError(f"{path}: not a {FORMAT} file")
        raw.pop("io", None)
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in names if n not in raw and n not in ("recipe", "training", "metrics"))
        if missing:
            raise BundleError(f"{path}: missing {', '.join(missing)}")
        try:
            spec = cls(**{k: v for k, v in raw.items() if k in names})
            spec = dataclasses.replace(spec, action_names=tuple(spec.action_names),
                                       action_scale=tuple(float(x) for x in spec.action_scale))
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{path}: {exc}") from None
        spec._check(path)
        return spec

    def _check(self, path: Path) -> None:
        """Types and ranges of the fields (a bundle.yaml is outside input); BundleError naming the field."""
        def fail(field: str, expected: str) -> None:
            raise BundleError(f"{path}: {field} = {getattr(self, field)!r}: expected {expected}")

        for field in ("image_size", "latent_dim", "history", "horizon", "frameskip"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fail(field, "an integer >= 1")
        period = self.control_period
        if isinstance(period, bool) or not isinstance(period, (int, float)) or not 0 < period < float("inf"):
            fail("control_period", "a number of seconds > 0")
        if not self.action_names or not all(isinstance(n, str) for n in self.action_names):
            fail("action_names", "a non-empty list of names")
        if len(self.action_scale) != len(self.action_names) or not all(0 < s < float("inf")
                                                                        for s in self.action_scale):
            fail("action_scale", f"{len(self.action_names)} finite numbers > 0, one per action name")
        if not isinstance(self.files, dict):
            fail("files", "a mapping of encoder and rollout to {path, sha256}")
        for name in (*FILES, *(n for n in OPTIONAL_FILES if n in self.files)):
            entry = self.files.get(name)
            if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("path", "sha256")):
                raise BundleError(f"{path}: files.{name} needs a path and a sha256 (strings)")
            file = Path(entry["path"])
            if not entry["path"] or file.is_absolute() or ".." in file.parts or "\0" in entry["path"]:
                raise BundleError(f"{path}: files.{name}.path {entry['path']!r} must be a relative path "
                                  f"inside the bundle folder")


@dataclasses.dataclass(frozen=True)
class Bundle:
    root: Path
    spec: BundleSpec

    def path(self, name: str) -> Path:
        return self.root / self.spec.files[name]["path"]

    def has(self, name: str) -> bool:
        """Whether bundle.yaml lists file ``name`` (the FILES always; OPTIONAL_FILES where shipped)."""
        return name in self.spec.files


def load_bundle(root: str | Path, verify_hashes: bool = True) -> Bundle:
    """Open a bundle folder: spec parsed, every file present and (by default) its sha256 checked."""
    root = Path(root)
    if not root.is_dir():
        raise BundleError(f"model bundle {root} does not exist (or is not a folder)")
    spec = BundleSpec.from_yaml(root / "bundle.yaml")
    bundle = Bundle(root, spec)
    for name in (*FILES, *(n for n in OPTIONAL_FILES if bundle.has(n))):
        path = bundle.path(name)
        if not path.is_file():
            raise BundleError(f"{root}: {name} file {path.name} is missing")
        if verify_hashes and sha256(path) != spec.files[name]["sha256"]:
            raise BundleError(f"{path}: sha256 does not match bundle.yaml (corrupt, or from another bundle)")
    return bundle
