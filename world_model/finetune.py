"""Fine-tune a deployed bundle's predictor on new data, gate it, export it atomically.

``finetune(bundle, live, base, out, FinetuneConfig())`` runs train -> gate -> export:

* Start from the bundle: :func:`load_predictor` rebuilds the predictor in PyTorch
  from the ``model.predictor.*`` initializers of ``rollout.onnx`` and checks its
  rollout against ONNX Runtime's (``export.parity``).
* The encoder stays frozen as deployed: each episode is encoded once by
  ``encoder.onnx`` in ONNX Runtime, the predictor learns in that latent space,
  and the new bundle keeps the encoder file byte for byte.
* Windows of latents are the trainer's windows (:class:`LatentWindows` reuses
  ``EpisodeWindows``' sampling and gather rule).
* Loss: the R-step open-loop rollout MSE, as planners use the model. Batches mix
  live windows (optionally weighted per episode) with base windows, the data the
  bundle was trained on (``base_fraction``), against forgetting.
* Gate (:func:`gate`): on the most recent live episodes (held out) and on the
  base dataset's validation split (the one its training held out), the candidate
  must beat the current predictor by ``margin`` on live data and may lose at most
  ``base_limit`` on base data. Mixing and guarding base data assume it still
  holds: a change of the dynamics everywhere (tests/test_finetune.py rotates the
  actions) fails the default gate on base data; there, set ``base_fraction`` 0
  and a large ``base_limit``.
* Export (:func:`export_candidate`): into ``<out>.tmp-<pid>``, then load_bundle,
  shapes and ONNX-vs-torch parity, then one ``os.rename``: ``out`` is never a
  partial bundle.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import shutil
import time
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from tqdm import tqdm

from jepa_pilot.common.bundle import Bundle, BundleError, load_bundle, sha256
from jepa_pilot.common.config import Config, setting
from jepa_pilot.data import Dataset, split_episodes, square_frames
from jepa_pilot.world_model.export import PARITY_RTOL, OnnxGraphs, _export, _Rollout, parity
from jepa_pilot.world_model.model import ModelConfig, WorldModel
from jepa_pilot.world_model.windows import EpisodeWindows

__all__ = ["FinetuneConfig", "FinetuneError", "GateResult", "FinetuneResult", "LatentWindows", "load_predictor",
           "rollout_mse", "gate", "export_candidate", "finetune"]

PREFIX = "model.predictor."  # initializer names of the predictor in rollout.onnx


class FinetuneError(ValueError):
    """Data that cannot fine-tune this bundle (another robot, action size or scale, period; too few episodes)."""


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(Config):
    """How `jepa-pilot finetune` trains a candidate predictor and how the gate judges it."""

    steps: int = setting(300, "optimiser steps", low=1)
    batch_size: int = setting(64, "windows per step (live and base together)", low=2)
    lr: float = setting(1e-3, "learning rate (Adam, cosine decay to 0)", low=0.0, high=1.0)
    base_fraction: float = setting(0.5, "share of each batch drawn from the base dataset", low=0.0, high=0.9)
    margin: float = setting(0.1, "gate: live rollout error must drop by this fraction", low=0.0, high=0.99)
    base_limit: float = setting(0.1, "gate: base rollout error may grow by at most this fraction", low=0.0)
    drift_factor: float = setting(10.0, "the world counts as changed when the current model's live error is this "
                                  "many times its base error: base data is then neither mixed in nor checked",
                                  low=1.0)
    val_fraction: float = setting(0.2, "most recent live episodes held out for the gate", low=0.01, high=0.9)
    val_windows: int = setting(256, "held-out windows scored per dataset (fixed draw)", low=8)
    seed: int = setting(0, "seed of sampling", low=0)
    threads: int = setting(0, "CPU threads (0: PyTorch's default)", low=0, high=256)
    device: str = setting("auto", "where to train", choices=("auto", "cpu", "cuda"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.base_fraction and not int(self.batch_size * self.base_fraction):
            self._fail("base_fraction", self.base_fraction, f"gives no base window in a batch of {self.batch_size}")


@dataclasses.dataclass(frozen=True)
class GateResult:
    accepted: bool
    reason: str          # one sentence with the numbers
    current_live: float  # held-out rollout MSE, per dataset and model
    candidate_live: float
    current_base: float
    candidate_base: float
    world_changed: bool = False  # the current model is drift_factor x worse on live data (see gate)


@dataclasses.dataclass(frozen=True)
class FinetuneResult:
    gate: GateResult
    bundle: Path | None  # the new bundle; None when the gate rejected the candidate
    model: WorldModel    # the candidate (CPU), accepted or not; only its predictor is meaningful
    steps: int
    wall_s: float


def _graphs(bundle: Bundle) -> OnnxGraphs:
    """ONNX Runtime sessions of the bundle, their declared shapes checked against bundle.yaml."""
    try:
        graphs = OnnxGraphs(bundle)
    except Exception as exc:  # ORT raises its own types for corrupt or invalid graphs
        raise BundleError(f"{bundle.root}: ONNX Runtime cannot load its graphs: {exc}") from None
    for name, want in bundle.spec.io_shapes().items():
        session = graphs.sessions[name]
        have = {a.name: a.shape for a in [*session.get_inputs(), *session.get_outputs()]}
        for arg, shape in want.items():
            got = have.get(arg)
            if got is None or len(got) != len(shape) or any(isinstance(w, int) and g != w
                                                             for w, g in zip(shape, got)):
                raise BundleError(f"{bundle.path(name)}: {arg} has shape {got}, bundle.yaml says {shape}")
    return graphs


def load_predictor(bundle_dir: str | Path) -> WorldModel:
    """A bundle's predictor as a torch WorldModel (CPU, eval mode), checked against ONNX Runtime.

    Only ``model.predictor`` holds the bundle's weights; ``model.encoder`` is a fresh,
    meaningless initialisation (the deployed encoder is ``encoder.onnx``, run in ONNX Runtime).
    Raises BundleError naming the bundle if the rollout graph is not the predictor it carries.
    """
    bundle = load_bundle(bundle_dir)
    path = bundle.path("rollout")
    try:
        model = WorldModel(ModelConfig.from_dict(bundle.spec.recipe["model"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{bundle.root}: bundle.yaml has no usable recipe.model ({exc})") from None
    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # protobuf's DecodeError and friends
        raise BundleError(f"{path}: not a readable ONNX graph ({exc})") from None
    weights = {i.name[len(PREFIX):]: torch.from_numpy(numpy_helper.to_array(i).copy())
               for i in graph.initializer if i.name.startswith(PREFIX)}
    try:
        model.predictor.load_state_dict(weights)
    except RuntimeError as exc:  # missing, unexpected or misshapen weights
        raise BundleError(f"{path}: its {PREFIX}* initializers are not the predictor of bundle.yaml's recipe: "
                          f"{exc}") from None
    # export.parity's rollout entry (its encoder entry compares a torch encoder nobody trained: ignored)
    error = parity(model.eval(), _graphs(bundle), bundle.spec.horizon)["rollout"]
    if not error <= PARITY_RTOL:
        raise BundleError(f"{bundle.root}: rollout.onnx does not compute the predictor its weights describe "
                          f"(relative error {error:.3g} > {PARITY_RTOL:g} against PyTorch)")
    return model


class LatentWindows(EpisodeWindows):
    """EpisodeWindows over latents: the same ``sample`` and ``gather`` on (T+1, D) latent sequences
    instead of frames, with optional per-episode weights (a window's chance is its episode's weight)."""

    def __init__(self, latents: list[np.ndarray], actions: list[np.ndarray], length: int, frameskip: int,
                 weights: np.ndarray | None = None) -> None:
        self.length, self.frameskip = length, frameskip
        self.span = (length - 1) * frameskip
        self.frames, self.actions = latents, actions  # gather cuts ``frames``: here (T+1, D) latents
        self.starts = np.array([len(a) - self.span + 1 for a in actions])
        self.p = None  # chance of each episode, or None: as many as it holds windows (EpisodeWindows.sample)
        if weights is not None:
            p = weights * self.starts  # (episodes,)
            if not p.sum() > 0:
                raise FinetuneError("episode weights are zero on every episode long enough for a window")
            self.p = p / p.sum()

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if self.p is None:
            return super().sample(batch, rng)
        episodes = rng.choice(len(self.starts), size=batch, p=self.p)
        return self.gather(episodes, rng.integers(0, self.starts[episodes]))


def _encode(graphs: OnnxGraphs, images: np.ndarray, size: int) -> np.ndarray:
    """(T+1, H, W, 3) uint8 -> (T+1, D) latents of the deployed encoder, frames prepared as in training."""
    frames = square_frames(images, size).transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # (T+1, 3, S, S)
    return np.concatenate([graphs.encode_prepared(frames[j:j + 256]) for j in range(0, len(frames), 256)])


def _windows(graphs: OnnxGraphs, dataset: Dataset, indices: list[int], cfg: ModelConfig, length: int,
             weights: np.ndarray | None = None) -> LatentWindows:
    """Encode each episode long enough for a window once; cut them as LatentWindows."""
    span, latents, actions, kept = (length - 1) * cfg.frameskip, [], [], []
    for i in indices:
        episode = dataset[i]
        if episode.steps >= span:
            latents.append(_encode(graphs, episode.images, cfg.image_size))
            actions.append(episode.actions)
            kept.append(i)
    if not kept:
        raise FinetuneError(f"no episode {indices[0]}..{indices[-1]} of {dataset.root} is long enough for a "
                            f"window of {span} steps")
    return LatentWindows(latents, actions, length, cfg.frameskip, None if weights is None else weights[kept])


def _check_data(dataset: Dataset, bundle: Bundle, what: str) -> None:
    """The data must be of the bundle's robot, action size, action scale and control period (the last two
    to 1 %). Action names may differ: the simulator says vx, a bag import linear.x (as control/mpc.py)."""
    info, spec = dataset.info, bundle.spec
    close = lambda a, b: len(a) == len(b) and np.allclose(a, b, rtol=0.01, atol=0)  # noqa: E731
    for name, got, want, same in (
            ("robot", info.robot, spec.robot, info.robot == spec.robot),
            ("action size", info.action_dim, spec.action_dim, info.action_dim == spec.action_dim),
            ("action scale", list(info.action_scale), list(spec.action_scale),
             close(info.action_scale, spec.action_scale)),
            ("control period", info.control_period, spec.control_period,
             close([info.control_period], [spec.control_period]))):
        if not same:
            raise FinetuneError(f"{what} dataset {dataset.root} has {name} {got!r}, bundle {spec.model_id} {want!r}")


@dataclasses.dataclass
class _Data:
    live: LatentWindows
    base: LatentWindows
    live_val: tuple[torch.Tensor, torch.Tensor]  # fixed held-out windows: (V, L, D) latents, (V, L-1, S, A)
    base_val: tuple[torch.Tensor, torch.Tensor]


def _load_data(bundle: Bundle, live_dir: Path, base_dir: Path, cfg: FinetuneConfig,
               live_weights: np.ndarray | None, device: torch.device) -> _Data:
    live, base = Dataset(live_dir), Dataset(base_dir)
    _check_data(live, bundle, "live")
    _check_data(base, bundle, "base")
    n_val = max(1, round(len(live) * cfg.val_fraction))
    if len(live) <= n_val:
        raise FinetuneError(f"live dataset {live_dir} has {len(live)} episode(s): the gate holds out the "
                            f"{n_val} most recent, training needs at least one more")
    recipe = bundle.spec.recipe.get("train", {})
    base_train, base_val = split_episodes(len(base), recipe.get("val_fraction", 0.1), recipe.get("seed", 0))
    if not base_val or not base_train:
        raise FinetuneError(f"base dataset {base_dir}: {len(base)} episode(s) give no training/validation split")
    if live_weights is not None:
        live_weights = np.asarray(live_weights, np.float64)
        if live_weights.shape != (len(live),) or not np.all(np.isfinite(live_weights) & (live_weights >= 0)):
            raise FinetuneError(f"live_weights: expected {len(live)} finite weights >= 0, one per live episode")
    graphs, model = _graphs(bundle), ModelConfig.from_dict(bundle.spec.recipe["model"])
    length = model.history + bundle.spec.recipe.get("loss", {}).get("rollout_steps", 4)
    rng = np.random.default_rng([cfg.seed, 12345])  # the held-out windows: one fixed draw

    def fixed(windows: LatentWindows) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(torch.from_numpy(x).to(device) for x in windows.sample(cfg.val_windows, rng))

    split = len(live) - n_val
    return _Data(_windows(graphs, live, list(range(split)), model, length, live_weights),
                 _windows(graphs, base, base_train, model, length),
                 fixed(_windows(graphs, live, list(range(split, len(live))), model, length)),
                 fixed(_windows(graphs, base, base_val, model, length)))


def rollout_mse(model: WorldModel, z: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
    """z (B, K+R, D) latents, chunks (B, K+R-1, S, A) -> open-loop R-step rollout MSE, mean over steps."""
    k = model.cfg.history
    rolled = model.rollout(z[:, :k], chunks[:, k - 1:])  # (B, R, D)
    return F.mse_loss(rolled, z[:, k:])


def _train(model: WorldModel, data: _Data, cfg: FinetuneConfig, progress: bool) -> None:
    params = list(model.predictor.parameters())
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.steps)
    rng, n_base = np.random.default_rng(cfg.seed), int(cfg.batch_size * cfg.base_fraction)
    device = next(model.parameters()).device
    model.train()
    bar = tqdm(range(cfg.steps), disable=not progress, unit="step", mininterval=2.0, desc="finetune")
    for _ in bar:
        parts = [w.sample(n, rng) for w, n in ((data.live, cfg.batch_size - n_base), (data.base, n_base)) if n]
        z, chunks = (torch.from_numpy(np.concatenate(x)).to(device) for x in zip(*parts))  # (B, L, D), (B, L-1, S, A)
        loss = rollout_mse(model, z, chunks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{float(loss.detach()):.4f}", refresh=False)
    model.eval()


@torch.no_grad()
def _score(model: WorldModel, windows: tuple[torch.Tensor, torch.Tensor]) -> float:
    return float(rollout_mse(model.eval(), *windows))


def gate(current_live: float, candidate_live: float, current_base: float, candidate_base: float,
         margin: float = 0.1, base_limit: float = 0.1, world_changed: bool = False,
         base_reference: float | None = None) -> GateResult:
    """Accept only if candidate_live <= (1 - margin) * current_live and
    candidate_base <= (1 + base_limit) * current_base (NaN anywhere rejects).

    ``world_changed``: the current model is far worse on live data than on the base data
    (FinetuneConfig.drift_factor), so what it knew is no longer true there (a rotated or weaker
    actuator): the base check is waived, and the reason says so, comparing with ``base_reference``
    (default ``current_base``), the base error of a model of the unchanged world."""
    live_ok = candidate_live <= (1 - margin) * current_live
    base_ok = world_changed or candidate_base <= (1 + base_limit) * current_base
    change = lambda new, old: f"{(new / old - 1) if old else float('inf'):+.1%}"  # noqa: E731
    numbers = (f"held-out rollout MSE on live data {current_live:.4g} -> {candidate_live:.4g} "
               f"({change(candidate_live, current_live)}, needs -{margin:.0%} or better), on base data "
               f"{current_base:.4g} -> {candidate_base:.4g} ({change(candidate_base, current_base)}, "
               f"allowed +{base_limit:.0%})")
    why = [w for ok, w in ((live_ok, f"no {margin:.0%} improvement on live data"),
                           (base_ok, f"base data worse by more than {base_limit:.0%}")) if not ok]
    if world_changed:
        reference = current_base if base_reference is None else base_reference
        numbers += (f"; the world changed (live error {current_live / max(reference, 1e-12):.0f}x the base "
                    f"error of the unchanged world's model): base data not mixed in, base check waived")
    reason = f"accepted: {numbers}." if not why else f"rejected ({' and '.join(why)}): {numbers}."
    return GateResult(not why, reason, current_live, candidate_live, current_base, candidate_base, world_changed)


def export_candidate(model: WorldModel, parent: Bundle, out: str | Path, training: dict, metrics: dict) -> Path:
    """The parent bundle with ``model``'s predictor as a new bundle at ``out``, all or nothing."""
    out, spec = Path(out), parent.spec
    if out.exists():
        raise FileExistsError(f"{out} already exists: fine-tuning writes a new bundle folder")
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    try:
        tmp.mkdir(parents=True)
        shutil.copyfile(parent.path("encoder"), tmp / "encoder.onnx")
        model = model.cpu().eval()
        inputs = (torch.randn(2, spec.history, spec.latent_dim),
                  torch.rand(2, spec.horizon * spec.frameskip, spec.action_dim) * 2 - 1)
        _export(_Rollout(model), inputs, ["z_hist", "actions"], "latents", tmp / "rollout.onnx")
        files = {n: {"path": f"{n}.onnx", "sha256": sha256(tmp / f"{n}.onnx")} for n in ("encoder", "rollout")}
        digest = hashlib.sha256((files["encoder"]["sha256"] + files["rollout"]["sha256"]).encode()).hexdigest()
        new = dataclasses.replace(spec, model_id=f"{spec.robot}-{digest[:8]}", files=files, training=training,
                                  metrics=metrics)
        (tmp / "bundle.yaml").write_text(new.to_yaml())
        error = parity(model, _graphs(load_bundle(tmp)), spec.horizon)["rollout"]  # the rollout entry, as above
        if not error <= PARITY_RTOL:
            raise RuntimeError(f"{tmp}: ONNX Runtime and PyTorch disagree beyond {PARITY_RTOL:g}: {error:.3g}")
        if out.exists():
            raise FileExistsError(f"{out} appeared while fine-tuning: not overwritten")
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def finetune(bundle_dir: str | Path, live_dir: str | Path, base_dir: str | Path, out_dir: str | Path,
             cfg: FinetuneConfig | None = None, live_weights: np.ndarray | None = None,
             progress: bool = True, live_source: str | None = None) -> FinetuneResult:
    """Train a candidate predictor, gate it against the bundle's, export it to ``out_dir`` if accepted.

    ``live_weights``: one sampling weight per live episode (recency, surprise...).
    ``live_source``: what bundle.yaml records as the live data (default ``live_dir``).
    """
    cfg, out, start = cfg or FinetuneConfig(), Path(out_dir), time.monotonic()
    if out.exists():
        raise FileExistsError(f"{out} already exists: fine-tuning writes a new bundle folder")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if cuda else "cpu")
    current = load_predictor(bundle_dir)
    parent = load_bundle(bundle_dir)
    data = _load_data(parent, Path(live_dir), Path(base_dir), cfg, live_weights, device)
    current.to(device)
    current_live, current_base = _score(current, data.live_val), _score(current, data.base_val)
    # How well a model of the base world fits the base data: the first bundle's own base error, carried
    # down the fine-tunes (a bundle adapted to a changed robot fits the base data worse, and that is right).
    reference = parent.spec.metrics.get("finetune", {}).get("base_reference", current_base)
    changed = current_live > cfg.drift_factor * reference  # the base data no longer describes the world
    candidate = copy.deepcopy(current).to(device)
    _train(candidate, data, cfg.replace(base_fraction=0.0) if changed else cfg, progress)
    result = gate(current_live, _score(candidate, data.live_val), current_base, _score(candidate, data.base_val),
                  cfg.margin, cfg.base_limit, world_changed=changed, base_reference=reference)
    path = None
    if result.accepted:
        training = {"parent": parent.spec.model_id, "dataset": str(base_dir),
                    "live_data": live_source or str(live_dir), "base_data": str(base_dir), "steps": cfg.steps,
                    "wall_s": time.monotonic() - start, "device": str(device), "finetune": cfg.to_dict()}
        metrics = {"finetune": {**dataclasses.asdict(result), "base_reference": reference}}
        path = export_candidate(candidate, parent, out, training, metrics)
    return FinetuneResult(result, path, candidate.cpu(), cfg.steps, time.monotonic() - start)
