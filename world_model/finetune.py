"""Fine-tune a deployed bundle on new data, gate it, export it atomically.

``finetune(bundle, live, base, out, FinetuneConfig())`` runs train -> gate -> export.
By default only the predictor learns; ``encoder=True`` fine-tunes the encoder too.

* Start from the bundle: :func:`load_predictor` rebuilds the predictor in PyTorch
  from the ``model.predictor.*`` initializers of ``rollout.onnx`` (and, for an
  encoder fine-tune, :func:`load_world_model` the encoder from ``encoder.onnx``)
  and checks them against ONNX Runtime (``export.parity``).
* **Predictor only** (:class:`PredictorTuning`): the encoder stays as deployed.
  Each episode is encoded once by ``encoder.onnx`` in ONNX Runtime, the predictor
  learns in that latent space with the R-step open-loop rollout MSE (as planners
  use the model), and the new bundle keeps the encoder file byte for byte.
  Windows of latents are the trainer's windows (:class:`LatentWindows`).
* **Encoder too** (:class:`EncoderTuning`): the training objective itself
  (``losses.jepa_loss``): an EMA target encoder started from the deployed one,
  the VICReg variance and covariance terms and a new inverse-dynamics head
  against collapse. The head starts untrained, so the encoder stays frozen for
  the first ``head_warmup`` of the steps while head and predictor learn, then learns at the lower
  ``encoder_lr``. Frames are held in memory (at most ``base_episodes`` of the
  base dataset). Both graphs are exported; the runtime re-encodes the goal when
  it switches to the new bundle.
* Batches mix live windows (optionally weighted per episode) with base windows,
  the data the bundle was trained on (``base_fraction``), against forgetting.
* Gate (:func:`gate`): on the most recent live episodes (held out) and on the
  base dataset's validation split (the one its training held out), the candidate
  must beat the current model by ``margin`` on live data and may lose at most
  ``base_limit`` on base data. The score is the held-out rollout MSE when the
  latent space stays; when the encoder changes, latents of the two models are
  not comparable, so each model's rollout MSE is divided by its copy-last MSE
  (predicting no change) in its own latent space, and the candidate's latent
  may lose at most ``rank_limit`` of its effective rank on base frames
  (a collapsing encoder makes everything easy to predict). Mixing and guarding
  base data assume it still holds: a change of the dynamics everywhere
  (tests/test_finetune.py rotates the actions) is detected (``drift_factor``),
  and then base data is neither mixed in nor checked.
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
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper
from tqdm import tqdm

from jepa_pilot.common.bundle import Bundle, BundleError, load_bundle, sha256
from jepa_pilot.common.config import Config, setting
from jepa_pilot.data import Dataset, split_episodes, square_frames
from jepa_pilot.world_model.export import PARITY_RTOL, OnnxGraphs, _export, _Rollout, parity
from jepa_pilot.world_model.losses import LossConfig, inverse_dynamics_head, jepa_loss
from jepa_pilot.world_model.model import ModelConfig, WorldModel
from jepa_pilot.world_model.train import _to_torch
from jepa_pilot.world_model.windows import EpisodeWindows

__all__ = ["FinetuneConfig", "FinetuneError", "GateResult", "FinetuneResult", "LatentWindows", "load_predictor",
           "load_world_model", "rollout_mse", "relative_rollout_error", "relative_scores", "effective_rank", "PredictorTuning",
           "EncoderTuning", "gate", "export_candidate", "finetune"]

PREFIX = "model.predictor."  # initializer names of the predictor in rollout.onnx


class FinetuneError(ValueError):
    """Data that cannot fine-tune this bundle (another robot, action size or scale, period; too few episodes)."""


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(Config):
    """How `jepa-pilot finetune` trains a candidate and how the gate judges it."""

    steps: int = setting(300, "optimiser steps", low=1)
    batch_size: int = setting(64, "windows per step (live and base together)", low=2)
    lr: float = setting(1e-3, "learning rate of the predictor (Adam, cosine decay to 0)", low=0.0, high=1.0)
    base_fraction: float = setting(0.5, "share of each batch drawn from the base dataset", low=0.0, high=0.9)
    margin: float = setting(0.1, "gate: the live score must drop by this fraction", low=0.0, high=0.99)
    base_limit: float = setting(0.1, "gate: the base score may grow by at most this fraction", low=0.0)
    drift_factor: float = setting(10.0, "the world counts as changed when the current model's live score is this "
                                  "many times its base score: base data is then neither mixed in nor checked",
                                  low=1.0)
    val_fraction: float = setting(0.2, "most recent live episodes held out for the gate", low=0.01, high=0.9)
    val_windows: int = setting(256, "held-out windows scored per dataset (fixed draw)", low=8)
    encoder: bool = setting(False, "also fine-tune the encoder (the JEPA loss: EMA target, VICReg, inverse "
                            "dynamics); both graphs are exported and the gate's score is scale-free")
    encoder_lr: float = setting(1e-4, "encoder fine-tune: learning rate of the encoder", low=0.0, high=1.0)
    head_warmup: float = setting(0.1, "encoder fine-tune: share of the steps, at the start, with the encoder "
                                 "frozen while the new inverse-dynamics head learns", low=0.0, high=0.9)
    rank_limit: float = setting(0.25, "encoder fine-tune gate: the latent's effective rank on base frames may "
                                "shrink by at most this fraction", low=0.0, high=1.0)
    base_episodes: int = setting(200, "encoder fine-tune: base training episodes held in memory as frames "
                                 "(a seeded draw)", low=1)
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
    current_live: float  # held-out score (``metric``), per dataset and model
    candidate_live: float
    current_base: float
    candidate_base: float
    world_changed: bool = False  # the current model is drift_factor x worse on live data (see gate)
    metric: str = "rollout MSE"  # or "rollout/copy-last MSE" when the encoder changes
    current_rank: float | None = None  # effective rank of the latent on base frames (encoder fine-tunes)
    candidate_rank: float | None = None


@dataclasses.dataclass(frozen=True)
class FinetuneResult:
    gate: GateResult
    bundle: Path | None  # the new bundle; None when the gate rejected the candidate
    model: WorldModel    # the candidate (CPU), accepted or not
    steps: int
    wall_s: float


# --- the bundle in PyTorch ------------------------------------------------------------
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


def _onnx_graph(path: Path) -> onnx.GraphProto:
    try:
        return onnx.load(str(path)).graph
    except Exception as exc:  # protobuf's DecodeError and friends
        raise BundleError(f"{path}: not a readable ONNX graph ({exc})") from None


def _check_parity(model: WorldModel, bundle: Bundle, which: str) -> None:
    error = parity(model.eval(), _graphs(bundle), bundle.spec.horizon)[which]
    if not error <= PARITY_RTOL:
        raise BundleError(f"{bundle.root}: {which}.onnx does not compute the {'predictor' if which == 'rollout' else which} "
                          f"its weights describe (relative error {error:.3g} > {PARITY_RTOL:g} against PyTorch)")


def load_predictor(bundle_dir: str | Path) -> WorldModel:
    """A bundle's predictor as a torch WorldModel (CPU, eval mode), checked against ONNX Runtime.

    Only ``model.predictor`` holds the bundle's weights; ``model.encoder`` is a fresh,
    meaningless initialisation (:func:`load_world_model` loads both).
    Raises BundleError naming the bundle if the rollout graph is not the predictor it carries.
    """
    bundle = load_bundle(bundle_dir)
    try:
        model = WorldModel(ModelConfig.from_dict(bundle.spec.recipe["model"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{bundle.root}: bundle.yaml has no usable recipe.model ({exc})") from None
    path = bundle.path("rollout")
    weights = {i.name[len(PREFIX):]: torch.from_numpy(numpy_helper.to_array(i).copy())
               for i in _onnx_graph(path).initializer if i.name.startswith(PREFIX)}
    try:
        model.predictor.load_state_dict(weights)
    except RuntimeError as exc:  # missing, unexpected or misshapen weights
        raise BundleError(f"{path}: its {PREFIX}* initializers are not the predictor of bundle.yaml's recipe: "
                          f"{exc}") from None
    _check_parity(model, bundle, "rollout")
    return model


def _encoder_weights(graph: onnx.GraphProto, encoder: nn.Module) -> dict[str, torch.Tensor]:
    """The encoder's state dict from the initializers of encoder.onnx. Conv and linear weights keep
    their module names; the exporter inlines each GroupNorm's scale and shift as unnamed (C, 1, 1)
    constants, the Mul and the Add after its InstanceNormalization, in the order of the layers."""
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    state = {name: consts[name] for name in encoder.state_dict() if name in consts}
    affine = {"Mul": [], "Add": []}
    for node in graph.node:
        if node.op_type in affine:
            affine[node.op_type] += [consts[n] for n in node.input if n in consts and consts[n].ndim == 3]
    norms = [name for name, m in encoder.named_modules() if isinstance(m, nn.GroupNorm)]
    if not len(affine["Mul"]) == len(affine["Add"]) == len(norms):
        raise BundleError(f"encoder.onnx holds {len(affine['Mul'])} normalisation scales and {len(affine['Add'])} "
                          f"shifts, the recipe's encoder has {len(norms)} GroupNorm layers")
    for name, scale, shift in zip(norms, affine["Mul"], affine["Add"]):
        state[f"{name}.weight"], state[f"{name}.bias"] = scale.reshape(-1), shift.reshape(-1)
    return {name: torch.from_numpy(np.array(value, np.float32)) for name, value in state.items()}


def load_world_model(bundle_dir: str | Path) -> WorldModel:
    """A bundle's encoder and predictor as a torch WorldModel (CPU, eval mode), both checked against
    ONNX Runtime; BundleError naming the file when a graph is not the model its weights describe."""
    model, bundle = load_predictor(bundle_dir), load_bundle(bundle_dir)
    path = bundle.path("encoder")
    try:
        model.encoder.load_state_dict(_encoder_weights(_onnx_graph(path), model.encoder))
    except (RuntimeError, BundleError) as exc:
        raise BundleError(f"{path}: its weights are not the encoder of bundle.yaml's recipe: {exc}") from None
    _check_parity(model, bundle, "encoder")
    return model


# --- data ------------------------------------------------------------------------------
class LatentWindows(EpisodeWindows):
    """EpisodeWindows over latents: the same ``sample`` and ``gather`` on (T+1, D) latent sequences
    instead of frames, with optional per-episode weights (a window's chance is its episode's weight)."""

    def __init__(self, latents: list[np.ndarray], actions: list[np.ndarray], length: int, frameskip: int,
                 weights: np.ndarray | None = None) -> None:
        self.length, self.frameskip = length, frameskip
        self.span = (length - 1) * frameskip
        self.frames, self.actions = latents, actions  # gather cuts ``frames``: here (T+1, D) latents
        self.starts = np.array([len(a) - self.span + 1 for a in actions])
        self.indices = list(range(len(actions)))
        _weigh(self, weights)


def _weigh(windows: EpisodeWindows, weights: np.ndarray | None) -> EpisodeWindows:
    try:
        return windows.weigh(weights)
    except ValueError as exc:
        raise FinetuneError(str(exc)) from None


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
class _Split:
    """Which episodes train and which the gate holds out, of the live and the base dataset."""

    live: Dataset
    base: Dataset
    live_train: list[int]
    live_val: list[int]
    base_train: list[int]
    base_val: list[int]
    live_weights: np.ndarray | None  # one per live_train episode
    model: ModelConfig
    length: int  # frames per window: K + R

    @classmethod
    def of(cls, bundle: Bundle, live_dir: Path, base_dir: Path, cfg: FinetuneConfig,
           live_weights: np.ndarray | None) -> "_Split":
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
            live_weights = live_weights[:len(live) - n_val]
        model = ModelConfig.from_dict(bundle.spec.recipe["model"])
        length = model.history + bundle.spec.recipe.get("loss", {}).get("rollout_steps", 4)
        split = len(live) - n_val
        return cls(live, base, list(range(split)), list(range(split, len(live))), base_train, base_val,
                   live_weights, model, length)

    def val_rng(self, cfg: FinetuneConfig) -> np.random.Generator:
        return np.random.default_rng([cfg.seed, 12345])  # the held-out windows: one fixed draw

    def weighted(self, windows: EpisodeWindows) -> EpisodeWindows:
        """Live training windows with the live weights of the episodes they hold."""
        if self.live_weights is None:
            return windows
        return _weigh(windows, self.live_weights[[self.live_train.index(i) for i in windows.indices]])


def _too_short(dataset: Dataset, indices: list[int], split: _Split) -> str:
    return (f"no episode {indices[0]}..{indices[-1]} of {dataset.root} is long enough for a window of "
            f"{(split.length - 1) * split.model.frameskip} steps")


def _mixed_batches(live: EpisodeWindows, base: EpisodeWindows, cfg: FinetuneConfig):
    """Endless (x, chunks) numpy batches: live windows and a ``base_fraction`` share of base windows."""
    rng, n_base = np.random.default_rng(cfg.seed), int(cfg.batch_size * cfg.base_fraction)
    while True:
        parts = [w.sample(n, rng) for w, n in ((live, cfg.batch_size - n_base), (base, n_base)) if n]
        yield tuple(np.concatenate(x) for x in zip(*parts))


# --- scores ----------------------------------------------------------------------------
def rollout_mse(model: WorldModel, z: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
    """z (B, K+R, D) latents, chunks (B, K+R-1, S, A) -> open-loop R-step rollout MSE, mean over steps."""
    k = model.cfg.history
    rolled = model.rollout(z[:, :k], chunks[:, k - 1:])  # (B, R, D)
    return F.mse_loss(rolled, z[:, k:])


def relative_rollout_error(model: WorldModel, z: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
    """The rollout MSE divided by the MSE of predicting no change (the last seen latent), one scale-free
    number that compares models whose latent spaces differ (1: no better than copy-last)."""
    k = model.cfg.history
    copy_last = F.mse_loss(z[:, k - 1:k].expand_as(z[:, k:]), z[:, k:])
    return rollout_mse(model, z, chunks) / copy_last


def effective_rank(z: torch.Tensor) -> float:
    """(N, D) -> the participation ratio of the covariance's eigenvalues, (sum l)^2 / sum l^2:
    D for a latent spread evenly over its dimensions, 1 for one that varies along one line only."""
    eig = torch.linalg.eigvalsh(torch.cov(z.T.double())).clamp_min(0)
    return float(eig.sum() ** 2 / (eig ** 2).sum().clamp_min(1e-300))


def _adam_steps(cfg: FinetuneConfig, groups: list[dict], progress: bool, loss_of) -> None:
    """``cfg.steps`` Adam steps on ``loss_of(step) -> (loss, after)``, cosine decay to 0, gradients clipped
    to norm 1; ``after()`` runs after each step (the EMA target)."""
    optimizer = torch.optim.Adam(groups)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.steps)
    params = [p for g in groups for p in g["params"]]
    bar = tqdm(range(cfg.steps), disable=not progress, unit="step", mininterval=2.0, desc="finetune")
    for step in bar:
        loss = loss_of(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{float(loss.detach()):.4f}", refresh=False)


class _Tuning:
    """What one kind of fine-tune trains on and how it scores: training windows of live data (weighted)
    and of ``base_train`` episodes, and one fixed draw of held-out windows per dataset (``val``)."""

    metric = ""

    def __init__(self, split: _Split, cfg: FinetuneConfig, device: torch.device, base_train: list[int]) -> None:
        self.split, self.device = split, device
        self.live = split.weighted(self._windows(split.live, split.live_train))
        self.base = self._windows(split.base, base_train)
        rng = split.val_rng(cfg)
        self.val = {name: self._tensors(self._windows(data, idx).sample(cfg.val_windows, rng))
                    for name, data, idx in (("live", split.live, split.live_val), ("base", split.base, split.base_val))}

    def _windows(self, dataset: Dataset, indices: list[int]) -> EpisodeWindows:
        raise NotImplementedError

    def _tensors(self, batch: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class PredictorTuning(_Tuning):
    """The predictor learns in the deployed encoder's latent space: every episode encoded once by
    encoder.onnx; score: the held-out rollout MSE."""

    metric = "rollout MSE"

    def __init__(self, bundle: Bundle, split: _Split, cfg: FinetuneConfig, device: torch.device) -> None:
        self.graphs = _graphs(bundle)
        super().__init__(split, cfg, device, split.base_train)

    def load(self, bundle_dir: Path) -> WorldModel:
        return load_predictor(bundle_dir)

    def _windows(self, dataset: Dataset, indices: list[int]) -> LatentWindows:
        """Encode each episode long enough for a window once; cut them as LatentWindows."""
        cfg, latents, actions, kept = self.split.model, [], [], []
        for i in indices:
            episode = dataset[i]
            if episode.steps >= (self.split.length - 1) * cfg.frameskip:
                frames = square_frames(episode.images, cfg.image_size).transpose(0, 3, 1, 2)  # (T+1, 3, S, S)
                frames = frames.astype(np.float32) / 255.0
                latents.append(np.concatenate([self.graphs.encode_prepared(frames[j:j + 256])
                                               for j in range(0, len(frames), 256)]))  # (T+1, D)
                actions.append(episode.actions)
                kept.append(i)
        if not kept:
            raise FinetuneError(_too_short(dataset, indices, self.split))
        windows = LatentWindows(latents, actions, self.split.length, cfg.frameskip)
        windows.indices = kept
        return windows

    def _tensors(self, batch: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(torch.from_numpy(x).to(self.device) for x in batch)  # (B, L, D), (B, L-1, S, A)

    @torch.no_grad()
    def score(self, model: WorldModel, which: str) -> float:
        return float(rollout_mse(model.eval(), *self.val[which]))

    def rank(self, model: WorldModel) -> float | None:
        return None  # the latent space is the deployed one

    def train(self, model: WorldModel, cfg: FinetuneConfig, progress: bool) -> None:
        batches = _mixed_batches(self.live, self.base, cfg)
        model.train()
        _adam_steps(cfg, [{"params": list(model.predictor.parameters()), "lr": cfg.lr}], progress,
                    lambda step: rollout_mse(model, *self._tensors(next(batches))))
        model.eval()


class EncoderTuning(_Tuning):
    """Encoder and predictor learn with the training objective (``losses.jepa_loss``) on frames; score:
    the held-out rollout MSE relative to copy-last, each model in its own latent space."""

    metric = "rollout/copy-last MSE"

    def __init__(self, bundle: Bundle, split: _Split, cfg: FinetuneConfig, device: torch.device) -> None:
        self.loss = LossConfig.from_dict(bundle.spec.recipe.get("loss"))
        self.ema = float(bundle.spec.recipe.get("train", {}).get("ema", 0.99))
        rng = np.random.default_rng([cfg.seed, 777])  # frames held in memory: a draw of the base episodes
        super().__init__(split, cfg, device, sorted(rng.permutation(split.base_train)[:cfg.base_episodes].tolist()))

    def load(self, bundle_dir: Path) -> WorldModel:
        return load_world_model(bundle_dir)

    def _windows(self, dataset: Dataset, indices: list[int]) -> EpisodeWindows:
        try:
            return EpisodeWindows(dataset, indices, self.split.model.image_size, self.split.length,
                                  self.split.model.frameskip)
        except ValueError:
            raise FinetuneError(_too_short(dataset, indices, self.split)) from None

    def _tensors(self, batch: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        return _to_torch(*batch, self.device)  # (B, L, 3, H, W) in [0, 1], (B, L-1, S, A): as training does

    @torch.no_grad()
    def score(self, model: WorldModel, which: str) -> float:
        frames, chunks = self.val[which]
        return float(relative_rollout_error(model.eval(), model.encode(frames), chunks))

    @torch.no_grad()
    def rank(self, model: WorldModel) -> float:
        return effective_rank(model.eval().encode(self.val["base"][0].flatten(0, 1)))

    def train(self, model: WorldModel, cfg: FinetuneConfig, progress: bool) -> None:
        target = copy.deepcopy(model.encoder).requires_grad_(False)
        head = inverse_dynamics_head(model.cfg).to(self.device)  # the bundle does not carry the training's head
        encoder = {"params": list(model.encoder.parameters()), "lr": cfg.encoder_lr}
        groups = [{"params": [*model.predictor.parameters(), *head.parameters()], "lr": cfg.lr}, encoder]
        batches = _mixed_batches(self.live, self.base, cfg)
        model.train()

        def loss_of(step: int) -> torch.Tensor:
            if step > 0:  # the EMA target follows the encoder's last step
                with torch.no_grad():
                    for t, o in zip(target.parameters(), model.encoder.parameters()):
                        t.lerp_(o, 1.0 - self.ema)
            model.encoder.requires_grad_(step >= int(cfg.head_warmup * cfg.steps))  # frozen while the new head learns
            loss, _ = jepa_loss(model, target, head, *self._tensors(next(batches)), self.loss)
            return loss

        _adam_steps(cfg, groups, progress, loss_of)
        model.eval()


def relative_scores(bundle_dir: str | Path, live_dir: str | Path, base_dir: str | Path,
                    cfg: FinetuneConfig | None = None) -> dict[str, float]:
    """A bundle's held-out rollout/copy-last MSE on the live and base windows an encoder fine-tune's gate
    scores (the same draw for every bundle with the same data and ``cfg``): one number that compares
    bundles whatever their latent space."""
    cfg = (cfg or FinetuneConfig()).replace(encoder=True)
    bundle = load_bundle(bundle_dir)
    tuning = EncoderTuning(bundle, _Split.of(bundle, Path(live_dir), Path(base_dir), cfg, None), cfg,
                           torch.device("cpu"))
    model = tuning.load(bundle_dir)
    return {which: tuning.score(model, which) for which in ("live", "base")}


def gate(current_live: float, candidate_live: float, current_base: float, candidate_base: float,
         margin: float = 0.1, base_limit: float = 0.1, world_changed: bool = False,
         base_reference: float | None = None, metric: str = "rollout MSE",
         ranks: tuple[float, float] | None = None, rank_limit: float = 0.25) -> GateResult:
    """Accept only if candidate_live <= (1 - margin) * current_live and
    candidate_base <= (1 + base_limit) * current_base (NaN anywhere rejects); with ``ranks``
    (current, candidate effective rank of the latent), also candidate >= (1 - rank_limit) * current.

    ``world_changed``: the current model is far worse on live data than on the base data
    (FinetuneConfig.drift_factor), so what it knew is no longer true there (a rotated or weaker
    actuator): the base check is waived, and the reason says so, comparing with ``base_reference``
    (default ``current_base``), the base score of a model of the unchanged world."""
    live_ok = candidate_live <= (1 - margin) * current_live
    base_ok = world_changed or candidate_base <= (1 + base_limit) * current_base
    rank_ok = ranks is None or ranks[1] >= (1 - rank_limit) * ranks[0]
    change = lambda new, old: f"{(new / old - 1) if old else float('inf'):+.1%}"  # noqa: E731
    numbers = (f"held-out {metric} on live data {current_live:.4g} -> {candidate_live:.4g} "
               f"({change(candidate_live, current_live)}, needs -{margin:.0%} or better), on base data "
               f"{current_base:.4g} -> {candidate_base:.4g} ({change(candidate_base, current_base)}, "
               f"allowed +{base_limit:.0%})")
    if ranks is not None:
        numbers += (f", effective rank of the latent on base frames {ranks[0]:.1f} -> {ranks[1]:.1f} "
                    f"(allowed -{rank_limit:.0%})")
    why = [w for ok, w in ((live_ok, f"no {margin:.0%} improvement on live data"),
                           (base_ok, f"base data worse by more than {base_limit:.0%}"),
                           (rank_ok, f"the latent lost more than {rank_limit:.0%} of its effective rank"))
           if not ok]
    if world_changed:
        reference = current_base if base_reference is None else base_reference
        numbers += (f"; the world changed (live error {current_live / max(reference, 1e-12):.0f}x the base "
                    f"error of the unchanged world's model): base data not mixed in, base check waived")
    reason = f"accepted: {numbers}." if not why else f"rejected ({' and '.join(why)}): {numbers}."
    current_rank, candidate_rank = ranks or (None, None)
    return GateResult(not why, reason, current_live, candidate_live, current_base, candidate_base, world_changed,
                      metric, current_rank, candidate_rank)


def export_candidate(model: WorldModel, parent: Bundle, out: str | Path, training: dict, metrics: dict,
                     encoder: bool = False) -> Path:
    """The parent bundle with ``model``'s predictor (and, with ``encoder``, its encoder) as a new bundle at
    ``out``, all or nothing; without ``encoder`` the parent's encoder.onnx is kept byte for byte, and so are
    its landmarks (a new encoder makes them stale: they are left out)."""
    out, spec = Path(out), parent.spec
    if out.exists():
        raise FileExistsError(f"{out} already exists: fine-tuning writes a new bundle folder")
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    try:
        tmp.mkdir(parents=True)
        model = model.cpu().eval()
        if encoder:
            s = spec.image_size
            _export(model.encoder, (torch.rand(2, 3, s, s),), ["frames"], "latent", tmp / "encoder.onnx")
        else:
            shutil.copyfile(parent.path("encoder"), tmp / "encoder.onnx")
        inputs = (torch.randn(2, spec.history, spec.latent_dim),
                  torch.rand(2, spec.horizon * spec.frameskip, spec.action_dim) * 2 - 1)
        _export(_Rollout(model), inputs, ["z_hist", "actions"], "latents", tmp / "rollout.onnx")
        files = {n: {"path": f"{n}.onnx", "sha256": sha256(tmp / f"{n}.onnx")} for n in ("encoder", "rollout")}
        if not encoder and parent.has("landmarks"):  # the same encoder: its landmarks still hold
            shutil.copyfile(parent.path("landmarks"), tmp / "landmarks.npz")
            files["landmarks"] = {"path": "landmarks.npz", "sha256": sha256(tmp / "landmarks.npz")}
        digest = hashlib.sha256((files["encoder"]["sha256"] + files["rollout"]["sha256"]).encode()).hexdigest()
        new = dataclasses.replace(spec, model_id=f"{spec.robot}-{digest[:8]}", files=files, training=training,
                                  metrics=metrics)
        (tmp / "bundle.yaml").write_text(new.to_yaml())
        errors = parity(model, _graphs(load_bundle(tmp)), spec.horizon)
        for name in ("encoder", "rollout") if encoder else ("rollout",):  # a kept encoder is the parent's
            if not errors[name] <= PARITY_RTOL:
                raise RuntimeError(f"{tmp}: ONNX Runtime and PyTorch disagree beyond {PARITY_RTOL:g} on {name}: "
                                   f"{errors[name]:.3g}")
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
    """Train a candidate, gate it against the bundle's model, export it to ``out_dir`` if accepted.

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
    parent = load_bundle(bundle_dir)
    tuning = (EncoderTuning if cfg.encoder else PredictorTuning)(
        parent, _Split.of(parent, Path(live_dir), Path(base_dir), cfg, live_weights), cfg, device)
    current = tuning.load(bundle_dir).to(device)
    current_live, current_base = tuning.score(current, "live"), tuning.score(current, "base")
    # How well a model of the base world fits the base data: the first bundle's own base score, carried
    # down the predictor fine-tunes (a bundle adapted to a changed robot fits the base data worse, and that
    # is right). It carries only within one metric: a rollout MSE belongs to one latent space, so the first
    # predictor fine-tune after an encoder fine-tune starts afresh; the scale-free ratio carries across both.
    carried = parent.spec.metrics.get("finetune", {})
    same = carried.get("metric", "rollout MSE") == tuning.metric
    reference = carried.get("base_reference", current_base) if same else current_base
    changed = current_live > cfg.drift_factor * reference  # the base data no longer describes the world
    candidate = copy.deepcopy(current)
    tuning.train(candidate, cfg.replace(base_fraction=0.0) if changed else cfg, progress)
    rank = tuning.rank(current)
    ranks = None if rank is None else (rank, tuning.rank(candidate))
    result = gate(current_live, tuning.score(candidate, "live"), current_base, tuning.score(candidate, "base"),
                  cfg.margin, cfg.base_limit, world_changed=changed, base_reference=reference,
                  metric=tuning.metric, ranks=ranks, rank_limit=cfg.rank_limit)
    path = None
    if result.accepted:
        training = {"parent": parent.spec.model_id, "dataset": str(base_dir),
                    "live_data": live_source or str(live_dir), "base_data": str(base_dir), "steps": cfg.steps,
                    "wall_s": time.monotonic() - start, "device": str(device), "finetune": cfg.to_dict()}
        metrics = {"finetune": {**dataclasses.asdict(result), "base_reference": reference}}
        path = export_candidate(candidate, parent, out, training, metrics, encoder=cfg.encoder)
    return FinetuneResult(result, path, candidate.cpu(), cfg.steps, time.monotonic() - start)
