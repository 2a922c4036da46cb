"""Export a trained run to a model bundle: `jepa-pilot export RUN --out BUNDLE`.

Writes encoder.onnx, rollout.onnx (the predictor unrolled over the horizon,
one call for a whole batch of action sequences, batch size dynamic) and
bundle.yaml; then loads the bundle (hashes) and checks its graphs in ONNX
Runtime against PyTorch on fresh random inputs with a batch > 1 (relative
error <= 1e-4). The bundle format is common/bundle.py; the deployment
runtime that reads it (perception/) is not imported here.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from jepa_pilot.common.bundle import Bundle, BundleSpec, load_bundle, sha256
from jepa_pilot.data import Dataset, DatasetError
from jepa_pilot.world_model.model import ModelConfig, WorldModel
from jepa_pilot.world_model.train import CheckpointError, TimeScale, load_checkpoint

__all__ = ["load_run", "export_bundle", "parity", "OnnxGraphs", "main"]

PARITY_RTOL = 1e-4


class _Rollout(nn.Module):
    """(N, K, D) + (N, H*S, A) per-control-period actions -> (N, H, D), the graph planners call."""

    def __init__(self, model: WorldModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, z_hist: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        chunks = actions.reshape(actions.shape[0], -1, self.model.cfg.frameskip, actions.shape[-1])  # (N, H, S, A)
        return self.model.rollout(z_hist, chunks)


def load_run(run: Path) -> tuple[WorldModel, dict]:
    """The final (or, failing that, last checkpointed) weights of a training run."""
    path = run / "model.pt" if (run / "model.pt").exists() else run / "checkpoints" / "last.pt"
    if not path.exists():
        raise FileNotFoundError(f"{run}: no model.pt or checkpoints/last.pt (is it a training run folder?)")
    state = load_checkpoint(path)  # weights_only=True: nothing in the file is executed
    model = WorldModel(ModelConfig.from_dict(state["recipe"]["model"]))
    model.load_state_dict(state["model"])
    return model.eval(), state["recipe"]


def _export(module: nn.Module, inputs: tuple, names: list[str], output: str, path: Path) -> None:
    batch = torch.export.Dim("N", min=1, max=65536)
    module.eval()  # the wrappers are new modules: inference mode, like the model inside them
    torch.onnx.export(module, inputs, str(path), dynamo=True, external_data=False, verbose=False,
                      input_names=names, output_names=[output],
                      dynamic_shapes={n: {0: batch} for n in names})


class OnnxGraphs:
    """A bundle's two graphs in plain ONNX Runtime sessions on the CPU (what export checks)."""

    def __init__(self, bundle: Bundle) -> None:
        import onnxruntime as ort

        self.sessions = {name: ort.InferenceSession(str(bundle.path(name)), providers=["CPUExecutionProvider"])
                         for name in ("encoder", "rollout")}

    def encode_prepared(self, frames: np.ndarray) -> np.ndarray:
        """(N, 3, S, S) float32 in [0, 1] -> (N, D)."""
        return self.sessions["encoder"].run(None, {"frames": frames.astype(np.float32)})[0]

    def rollout(self, z_hist: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """(N, K, D) latents + (N, H*S, A) actions -> (N, H, D)."""
        feeds = {"z_hist": z_hist.astype(np.float32), "actions": actions.astype(np.float32)}
        return self.sessions["rollout"].run(None, feeds)[0]


def parity(model: WorldModel, engine, horizon: int, batch: int = 5, seed: int = 0) -> dict:
    """Max relative error of ONNX Runtime vs PyTorch, encoder and rollout, on fresh random inputs.

    ``engine``: anything with ``encode_prepared`` and ``rollout`` on numpy arrays
    (:class:`OnnxGraphs`, or perception's ``WorldModelEngine``)."""
    cfg, g = model.cfg, torch.Generator().manual_seed(seed)
    frames = torch.rand(batch, 3, cfg.image_size, cfg.image_size, generator=g)
    z_hist = torch.randn(batch, cfg.history, cfg.latent_dim, generator=g)
    actions = torch.rand(batch, horizon * cfg.frameskip, cfg.action_dim, generator=g) * 2 - 1
    with torch.no_grad():
        want_z, want_roll = model.encode(frames).numpy(), _Rollout(model)(z_hist, actions).numpy()
    got_z = engine.encode_prepared(frames.numpy())
    got_roll = engine.rollout(z_hist.numpy(), actions.numpy())
    rel = lambda got, want: float(np.abs(got - want).max() / (np.abs(want).max() + 1e-12))  # noqa: E731
    return {"encoder": rel(got_z, want_z), "rollout": rel(got_roll, want_roll), "batch": batch}


def run_dataset(run: Path, metrics: dict, data: Path | None = None) -> Dataset:
    """The dataset a run was trained on: ``data`` if given, else the one its metrics.json names.

    The bundle's robot, action names and scales and control period come from it, so there is
    no default to fall back on: a missing or mismatched dataset is a FileNotFoundError or
    DatasetError saying what to pass."""
    if data is None:
        recorded = metrics.get("dataset")
        if not recorded:
            raise FileNotFoundError(f"{run}: metrics.json names no dataset; pass --data DIR, the dataset it "
                                    f"was trained on (its robot, actions and control period go into the bundle)")
        data = Path(recorded)  # absolute since train resolves it; an older run's relative path is from its cwd
        if not (data / "dataset.yaml").is_file():
            raise FileNotFoundError(f"{run} was trained on {recorded}, which is not a dataset here; "
                                    f"pass --data DIR, the dataset it was trained on")
    return Dataset(data)


def export_bundle(run: Path, out: Path, horizon: int | None = None, robot: str | None = None,
                  model_id: str | None = None, data: Path | None = None) -> Path:
    """Write the bundle of ``run`` to ``out``. ``horizon`` (model steps the rollout graph unrolls)
    defaults to the recipe's ``time.horizon_s`` over its model step, else 10."""
    model, recipe = load_run(run)
    cfg = model.cfg
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else {}
    info = run_dataset(run, metrics, data).info
    if info.action_dim != cfg.action_dim:
        raise DatasetError(f"the dataset has {info.action_dim} action dimensions ({', '.join(info.action_names)}), "
                           f"the model {cfg.action_dim}: pass --data DIR, the dataset it was trained on")
    if horizon is None:
        scale = TimeScale.from_dict(recipe.get("time") or {})
        horizon = scale.horizon(cfg.frameskip * info.control_period) if scale.horizon_s else 10
    out.mkdir(parents=True, exist_ok=True)
    s = cfg.image_size
    _export(model.encoder, (torch.rand(2, 3, s, s),), ["frames"], "latent", out / "encoder.onnx")
    actions = torch.rand(2, horizon * cfg.frameskip, cfg.action_dim)
    _export(_Rollout(model), (torch.randn(2, cfg.history, cfg.latent_dim), actions),
            ["z_hist", "actions"], "latents", out / "rollout.onnx")
    files = {name: {"path": f"{name}.onnx", "sha256": sha256(out / f"{name}.onnx")} for name in ("encoder", "rollout")}
    robot = robot or info.robot
    digest = hashlib.sha256((files["encoder"]["sha256"] + files["rollout"]["sha256"]).encode()).hexdigest()
    spec = BundleSpec(
        model_id=model_id or f"{robot}-{digest[:8]}", robot=robot, image_size=s, latent_dim=cfg.latent_dim,
        history=cfg.history, horizon=horizon, frameskip=cfg.frameskip,
        control_period=info.control_period, action_names=tuple(info.action_names),
        action_scale=tuple(info.action_scale), files=files, recipe=recipe,
        training={**{k: metrics.get(k) for k in ("steps", "wall_s", "device", "world_size", "threads")},
                  "dataset": str(Path(data or metrics["dataset"]).resolve())},
        metrics={"training_final": {k: v for k, v in metrics.get("final", {}).items() if k.startswith("val_")}},
    )
    (out / "bundle.yaml").write_text(spec.to_yaml())
    errors = parity(model, OnnxGraphs(load_bundle(out)), horizon)
    if max(errors["encoder"], errors["rollout"]) > PARITY_RTOL:
        raise RuntimeError(f"ONNX Runtime and PyTorch disagree beyond {PARITY_RTOL:g}: {errors}")
    return out


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="jepa_pilot.world_model.export", description=__doc__)
    parser.add_argument("run", type=Path, help="training run folder (jepa-pilot train --out)")
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    parser.add_argument("--horizon", type=int, help="model steps the rollout graph unrolls (default: the recipe's "
                                                    "time.horizon_s over its model step, else 10)")
    parser.add_argument("--robot", help="robot/env name recorded in the bundle (default: the dataset's)")
    parser.add_argument("--data", type=Path, help="the dataset the run was trained on (default: the one its "
                                                  "metrics.json names); the bundle's robot, action names and "
                                                  "scales and control period come from it")
    return parser


def run_cli(args: argparse.Namespace) -> int:
    start = time.monotonic()
    try:
        out = export_bundle(args.run, args.out, args.horizon, args.robot, data=args.data)
    except (FileNotFoundError, RuntimeError, CheckpointError, DatasetError) as exc:
        print(f"jepa-pilot export: error: {exc}")
        return 2
    print(f"bundle {out} written in {time.monotonic() - start:.1f} s:")
    print((out / "bundle.yaml").read_text().split("recipe:")[0])
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
