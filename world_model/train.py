"""Train the world model on a dataset: `jepa-pilot train --data DIR --config FILE --out RUN`.

Single process (CPU or CUDA), or several with PyTorch DDP:
``torchrun --nproc_per_node=2 -m jepa_pilot.world_model.train --data DIR --config FILE --out RUN``
(gloo on CPU, NCCL on CUDA; the global batch is split across processes).

A run folder holds ``recipe.yaml`` (the full config), ``checkpoints/last.pt``
(model, EMA target, optimiser, the RNG states of torch and of every process's
data sampler), ``model.pt`` (the final weights), ``metrics.json`` and ``loss.png``.

Resume: ``--stop-at N`` ends a run at step N with a checkpoint; ``--resume``
continues it. The learning-rate schedule follows the recipe's ``train.steps``
(not the steps of one invocation), so a run stopped and resumed on one CPU
process ends with the same weights and optimiser state, bit for bit, as one
uninterrupted run (tests/test_world_model.py checks it).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import pickle
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from tqdm import tqdm

from jepa_pilot.common.config import Config, ConfigError, add_config_arguments, overrides_from_args, setting
from jepa_pilot.data import Dataset, split_episodes
from jepa_pilot.data.probe import linear_probe_r2
from jepa_pilot.world_model.losses import LossConfig, inverse_dynamics_head, jepa_loss
from jepa_pilot.world_model.model import ModelConfig, WorldModel
from jepa_pilot.world_model.windows import EpisodeWindows

__all__ = ["TrainConfig", "Recipe", "CheckpointError", "load_checkpoint", "train", "main"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded safely: unreadable, or holding more than tensors and plain data."""


def _plain(value):
    """``value`` with numpy scalars and arrays as Python numbers and lists, so that a checkpoint holds only
    what ``torch.load(weights_only=True)`` accepts: tensors, dicts, lists, tuples, numbers, strings, None."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return value


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint written by this module, loaded with ``weights_only=True``: no code in it is ever run
    (a pickled object of any other kind is refused with CheckpointError)."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise CheckpointError(f"{path}: not a checkpoint that loads with weights_only=True (tensors and plain "
                              f"data only; nothing in it is executed): {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: a checkpoint holds a dict, got {type(state).__name__}")
    return state


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    steps: int = setting(4000, "optimiser steps", low=1)
    batch_size: int = setting(32, "windows per step (global, split across DDP processes)", low=1)
    lr: float = setting(1e-3, "peak learning rate (AdamW, cosine decay after warm-up)", low=0.0, high=1.0)
    weight_decay: float = setting(1e-4, "AdamW weight decay", low=0.0, high=1.0)
    warmup_steps: int = setting(200, "linear learning-rate warm-up steps", low=0)
    ema: float = setting(0.99, "EMA momentum of the target encoder", low=0.0, high=1.0)
    val_fraction: float = setting(0.1, "fraction of episodes held out for validation", low=0.0, high=0.9)
    val_every: int = setting(500, "steps between validations", low=1)
    val_windows: int = setting(512, "windows in the fixed validation set", low=8)
    checkpoint_every: int = setting(500, "steps between checkpoints", low=1)
    seed: int = setting(0, "seed of initialisation, data split and sampling", low=0)
    threads: int = setting(0, "CPU threads per process (0: PyTorch's default)", low=0, high=256)
    device: str = setting("auto", "where to train", choices=("auto", "cpu", "cuda"))


@dataclasses.dataclass(frozen=True)
class TimeScale(Config):
    """The model's time scale in seconds, so that one recipe serves envs that step every 0.01 s
    and every 0.1 s: the env steps per model step follow the data's control period."""

    model_step_s: float = setting(0.0, "seconds one model step spans: model.frameskip becomes "
                                  "round(model_step_s / the data's control period), at least 1; "
                                  "0: model.frameskip as written", low=0.0, high=60.0)
    horizon_s: float = setting(0.0, "seconds the exported rollout looks ahead: export's horizon becomes "
                               "round(horizon_s / model step), at least 1; 0: export's --horizon (default 10)",
                               low=0.0, high=600.0)

    def frameskip(self, control_period: float) -> int:
        return max(1, round(self.model_step_s / control_period))

    def horizon(self, model_step: float) -> int:
        return max(1, round(self.horizon_s / model_step))


SECTIONS = {"model": ModelConfig, "loss": LossConfig, "train": TrainConfig, "time": TimeScale}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that defines a training run: one YAML file with model/loss/train (and time) sections."""

    model: ModelConfig
    loss: LossConfig
    train: TrainConfig
    time: TimeScale = TimeScale()

    @classmethod
    def load(cls, path: str | Path | None, control_period: float | None = None, **overrides: dict) -> "Recipe":
        """The recipe at ``path`` (None: the defaults) with ``overrides`` per section. A ``time``
        section with ``model_step_s`` sets model.frameskip from ``control_period``, the data's."""
        raw = yaml.safe_load(Path(path).read_text()) if path else {}
        raw = raw or {}
        unknown = set(raw) - set(SECTIONS)
        if unknown:
            raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}; expected {', '.join(SECTIONS)}")
        parts = {name: c.from_dict(raw.get(name), **overrides.get(name, {})) for name, c in SECTIONS.items()}
        time = parts["time"]
        if time.model_step_s:
            if "frameskip" in (raw.get("model") or {}):
                raise ConfigError(f"{path}: set model.frameskip or time.model_step_s, not both")
            if control_period is None:
                raise ConfigError(f"{path}: time.model_step_s needs the data's control period")
            parts["model"] = parts["model"].replace(frameskip=time.frameskip(control_period))
        return cls(**parts)

    def to_dict(self) -> dict:
        return {name: getattr(self, name).to_dict() for name in SECTIONS}


# --- distributed helpers -----------------------------------------------------
def _world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _setup(cfg: TrainConfig) -> torch.device:
    cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank, _ = _world()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
        return torch.device("cuda")
    return torch.device("cpu")


class _Objective(torch.nn.Module):
    """The loss as one module's forward, so DDP can synchronise its gradients."""

    def __init__(self, model: WorldModel, inverse_head: torch.nn.Module, loss_cfg: LossConfig) -> None:
        super().__init__()
        self.model, self.inverse_head, self.loss_cfg = model, inverse_head, loss_cfg
        self.target: torch.nn.Module | None = None

    def forward(self, frames: torch.Tensor, chunks: torch.Tensor):
        return jepa_loss(self.model, self.target, self.inverse_head, frames, chunks, self.loss_cfg)


def _to_torch(frames: np.ndarray, chunks: np.ndarray, device: torch.device):
    x = torch.from_numpy(frames).to(device).permute(0, 1, 4, 2, 3).float().div_(255.0)  # (B, L, 3, H, W)
    return x, torch.from_numpy(chunks).to(device)


def _lr(step: int, cfg: TrainConfig) -> float:
    """Learning rate at ``step``: linear warm-up, then cosine decay to 0 at the recipe's ``cfg.steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


# --- the run -------------------------------------------------------------------
class Run:
    """State of one training run: model, EMA target, optimiser, data, RNG, history."""

    def __init__(self, recipe: Recipe, data: Path, out: Path, device: torch.device) -> None:
        self.recipe, self.out, self.device = recipe, out, device
        self.rank, self.world = _world()
        cfg = recipe.train
        torch.manual_seed(cfg.seed)
        self.dataset = Dataset(data)
        train_idx, val_idx = split_episodes(len(self.dataset), cfg.val_fraction, cfg.seed)
        length = recipe.model.history + recipe.loss.rollout_steps
        windows = lambda idx: EpisodeWindows(self.dataset, idx, recipe.model.image_size, length,  # noqa: E731
                                             recipe.model.frameskip)
        self.train_windows = windows(train_idx)
        self.val_windows = windows(val_idx) if val_idx else None
        self.model = WorldModel(recipe.model).to(device)
        self.target = copy.deepcopy(self.model.encoder).requires_grad_(False)
        self.objective = _Objective(self.model, inverse_dynamics_head(recipe.model), recipe.loss).to(device)
        self.objective.target = self.target
        self.ddp = torch.nn.parallel.DistributedDataParallel(self.objective) if self.world > 1 else self.objective
        self.optimizer = torch.optim.AdamW(self.objective.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.rng = np.random.default_rng([cfg.seed, self.rank])
        self.step, self.history, self.wall = 0, [], 0.0

    def train_step(self) -> dict:
        cfg = self.recipe.train
        for group in self.optimizer.param_groups:
            group["lr"] = _lr(self.step, cfg)
        frames, chunks = _to_torch(*self.train_windows.sample(cfg.batch_size // self.world, self.rng), self.device)
        loss, terms = self.ddp(frames, chunks)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.objective.parameters(), 1.0)
        self.optimizer.step()
        with torch.no_grad():  # target <- ema * target + (1 - ema) * online
            for t, o in zip(self.target.parameters(), self.model.encoder.parameters()):
                t.lerp_(o, 1.0 - cfg.ema)
        self.step += 1
        return {"loss": float(loss.detach()), **terms}

    @torch.no_grad()
    def validate(self) -> dict:
        """Validation loss, rollout error vs copy-last, and (with true states) a linear-probe R²."""
        if self.val_windows is None:
            return {}
        rng = np.random.default_rng(12345)  # the same windows every time
        frames, chunks = _to_torch(*self.val_windows.sample(self.recipe.train.val_windows, rng), self.device)
        self.objective.eval()
        loss, terms = self.objective(frames, chunks)
        k = self.model.cfg.history
        z = self.target(frames.flatten(0, 1)).reshape(*frames.shape[:2], -1)
        rolled = self.model.rollout(self.model.encode(frames[:, :k]), chunks[:, k - 1:])
        err = (rolled - z[:, k:]).pow(2).mean((0, 2))
        copy_last = (z[:, k - 1:k] - z[:, k:]).pow(2).mean((0, 2))
        self.objective.train()
        out = {"val_loss": float(loss), **{f"val_{n}": v for n, v in terms.items()},
               "val_rollout_vs_copy_last": (err / copy_last.clamp_min(1e-12)).tolist()}
        states = [s for s in self.val_windows.states if s is not None]
        if states and len(states) == len(self.val_windows.states):
            out["val_probe_r2"] = self._probe()
        return out

    def _probe(self) -> float:
        """R² of the position (or whole state) from the latent: ridge fit on <= 20 training episodes, scored on val."""
        def encode(windows: EpisodeWindows, count: int):
            zs = [self.model.encode(torch.from_numpy(f).to(self.device).permute(0, 3, 1, 2).float().div_(255.0))
                  for f in windows.frames[:count]]
            return torch.cat(zs).cpu().numpy(), np.concatenate(windows.states[:count])

        if any(s is None for s in self.train_windows.states[:20]):
            return float("nan")
        z_fit, s_fit = encode(self.train_windows, 20)
        z_val, s_val = encode(self.val_windows, len(self.val_windows.frames))
        dims = self.dataset.info.position_dims
        return linear_probe_r2(z_fit, s_fit[:, dims], z_val, s_val[:, dims])

    # --- checkpoints -------------------------------------------------------------
    def rng_state(self) -> dict:
        """This process's random state: the data sampler's, torch's CPU and (if used) CUDA generators."""
        state = {"sampler": self.rng.bit_generator.state, "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def set_rng_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["sampler"]
        torch.set_rng_state(state["torch"])
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)

    def state_dict(self, rng_states: list[dict]) -> dict:
        """Everything a resume needs; ``rng_states`` holds one entry per process, by rank."""
        return {"recipe": self.recipe.to_dict(), "step": self.step, "wall": self.wall,
                "model": self.model.state_dict(), "target": self.target.state_dict(),
                "inverse_head": self.objective.inverse_head.state_dict(),
                "optimizer": self.optimizer.state_dict(), "history": _plain(self.history),
                "rng": _plain(rng_states)}

    def save(self, path: Path) -> None:
        """Write a checkpoint (rank 0), with the RNG states of every process (a collective call under DDP)."""
        rng_states = [self.rng_state()]
        if self.world > 1:
            rng_states = [None] * self.world
            dist.all_gather_object(rng_states, self.rng_state())
        if self.rank != 0:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(self.state_dict(rng_states), tmp)
        os.replace(tmp, path)  # a crash mid-write never leaves a broken checkpoint

    def load(self, path: Path) -> None:
        state = load_checkpoint(path, self.device)
        if state["recipe"] != self.recipe.to_dict():
            raise ConfigError(f"{path} was trained with another recipe; resume with the run's recipe.yaml")
        self.model.load_state_dict(state["model"])
        self.target.load_state_dict(state["target"])
        self.objective.inverse_head.load_state_dict(state["inverse_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.wall, self.history = state["step"], state["wall"], state["history"]
        rngs = state["rng"]
        if len(rngs) == self.world:
            self.set_rng_state(rngs[self.rank])
        else:  # another process count: the batches differ from the uninterrupted run's anyway
            self.set_rng_state(rngs[0])
            self.rng = np.random.default_rng([self.recipe.train.seed, self.rank, self.step])
            if self.rank == 0:
                print(f"note: {path} was written by {len(rngs)} process(es), resuming with {self.world}: "
                      f"the data stream is reseeded, so the run is not bit-exact with an uninterrupted one")


def train(recipe: Recipe, data: Path, out: Path, resume: bool = False, progress: bool = True,
          stop_at: int | None = None) -> dict:
    """Run (or resume) training; returns the latest metrics. Rank 0 writes everything.

    ``stop_at``: end this invocation at that step with a checkpoint (the schedule
    still runs to ``recipe.train.steps``); ``resume=True`` continues from it.
    """
    cfg = recipe.train
    end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
    if end < 1:
        raise ConfigError(f"stop_at = {stop_at}: expected a step in [1, {cfg.steps}]")
    device = _setup(cfg)
    run = Run(recipe, data, out, device)
    last = out / "checkpoints" / "last.pt"
    if resume and last.exists():
        run.load(last)
    if run.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    bar = tqdm(total=cfg.steps, initial=run.step, disable=not progress or run.rank != 0, unit="step",
               mininterval=2.0)
    start = time.monotonic() - run.wall
    while run.step < end:
        terms = run.train_step()
        bar.update(1)
        bar.set_postfix(loss=f"{terms['loss']:.4f}", refresh=False)
        if run.step % cfg.val_every == 0 or run.step == cfg.steps:
            run.history.append({"step": run.step, "wall_s": time.monotonic() - start, **terms, **run.validate()})
            if run.rank == 0:
                bar.write(_summary(run.history[-1]))
        if run.step % cfg.checkpoint_every == 0 or run.step in (end, cfg.steps):
            run.wall = time.monotonic() - start
            run.save(last)
    bar.close()
    if run.rank == 0 and run.step == cfg.steps:
        torch.save({"recipe": recipe.to_dict(), "model": run.model.state_dict()}, out / "model.pt")
        _write_report(run, out)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return run.history[-1] if run.history else {}


def _summary(h: dict) -> str:
    parts = [f"step {h['step']}", f"loss {h['loss']:.4f}"]
    if "val_loss" in h:
        parts.append(f"val {h['val_loss']:.4f}")
        ratio = h["val_rollout_vs_copy_last"]
        parts.append(f"rollout/copy-last {ratio[0]:.2f}..{ratio[-1]:.2f}")
    if "val_probe_r2" in h:
        parts.append(f"probe R² {h['val_probe_r2']:.3f}")
    return " | ".join(parts)


def _write_report(run: Run, out: Path) -> None:
    from jepa_pilot.world_model.report import plot_history

    metrics = {"recipe": run.recipe.to_dict(), "dataset": str(run.dataset.root.resolve()), "steps": run.step,
               "wall_s": run.wall, "device": str(run.device), "world_size": run.world,
               "threads": torch.get_num_threads(), "final": run.history[-1] if run.history else {},
               "history": run.history}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    plot_history(run.history, out / "loss.png")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="jepa_pilot.world_model.train", description=__doc__,
                                               formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="dataset folder (jepa-pilot collect / import-bag)")
    parser.add_argument("--config", type=Path, help="recipe YAML with model/loss/train sections "
                                                    "(default: built-in defaults; see config/train/)")
    parser.add_argument("--out", type=Path, required=True, help="run folder to write")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    parser.add_argument("--stop-at", type=int, metavar="STEP",
                        help="end at this step with a checkpoint (the schedule still runs to train.steps); "
                             "continue later with --resume")
    add_config_arguments(parser.add_argument_group("training settings: override the recipe's train section"),
                         TrainConfig, defaults_from="the recipe's")
    return parser


def run_cli(args: argparse.Namespace) -> int:
    overrides = overrides_from_args(TrainConfig, args)
    try:
        dataset = Dataset(args.data)
        recipe = Recipe.load(args.config, dataset.info.control_period, model={"action_dim": dataset.info.action_dim},
                             train=overrides)
    except (ConfigError, ValueError) as exc:
        print(f"jepa-pilot train: error: {exc}")
        return 2
    try:
        final = train(recipe, args.data, args.out, resume=args.resume, stop_at=args.stop_at)
    except (ConfigError, CheckpointError) as exc:  # a bad --stop-at, a checkpoint of another recipe or unsafe
        print(f"jepa-pilot train: error: {exc}")
        return 2
    if _world()[0] == 0:
        if args.stop_at is not None and args.stop_at < recipe.train.steps:
            print(f"stopped at step {args.stop_at} of {recipe.train.steps}; continue with --resume")
        elif final:
            print(f"done: {_summary(final)}\nrun folder: {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
