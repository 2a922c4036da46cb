"""`jepa-pilot finetune BUNDLE --data DIR|BAG --base DIR --out NEW_BUNDLE`: adapt a bundle to new data.

Trains the predictor of a deployed bundle on new (live) data mixed with the
data it was trained on (base), its encoder frozen as deployed; a gate compares
the candidate with the bundle's model on held-out episodes of both; an
accepted candidate is written as a new bundle (same encoder.onnx, new
rollout.onnx, new model id, parent recorded), all at once or not at all.
With --encoder the encoder learns too, with the training loss's anti-collapse
terms (EMA target, VICReg, a new inverse-dynamics head); the gate then scores
each model's rollout error relative to predicting no change, in its own latent
space, and refuses a latent that lost effective rank; both graphs are written.
Design: jepa_pilot/world_model/finetune.py.

  BUNDLE   a bundle folder or a shipped name (see models/)
  --data   a dataset folder, or a rosbag2 recording (.mcap file or folder with
           metadata.yaml), imported first with the bundle's robot profile, its
           default topics and the bundle's control period (other topics:
           run `jepa-pilot import-bag` first)
  --base   default: the dataset bundle.yaml records under training.dataset

exit status: 0 accepted (bundle written), 3 rejected by the gate (nothing
written), 2 bad input (missing bundle, data of another robot or action set...).

example:
  jepa-pilot finetune two_rooms --data datasets/robot --base datasets/two_rooms --out models/two_rooms_ft
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

from jepa_pilot.cli.train import register_missing
from jepa_pilot.common.bundle import BundleSpec, load_bundle

ACCEPTED, REJECTED, BAD_INPUT = 0, 3, 2


def register(sub) -> None:
    try:
        from jepa_pilot.world_model.finetune import FinetuneConfig
    except ModuleNotFoundError as exc:  # torch: `pip install jepa-pilot` without the learn extra
        if (exc.name or "jepa_pilot").startswith("jepa_pilot"):
            raise
        register_missing(sub, exc.name, {"finetune": "fine-tune a bundle"})
        return
    from jepa_pilot.common.config import add_config_arguments

    p = sub.add_parser("finetune", help="fine-tune a bundle (predictor; --encoder: both) on new data; gate; export "
                                        "a new bundle (exit 0 accepted, 3 rejected)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", help="model bundle folder or shipped name")
    p.add_argument("--data", type=Path, required=True, help="live data: dataset folder or rosbag2 (.mcap) recording")
    p.add_argument("--base", type=Path, help="base dataset (default: the bundle's training.dataset)")
    p.add_argument("--out", type=Path, required=True, help="new bundle folder to write (must not exist)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--live-weights", type=Path, metavar="JSON",
                   help="a JSON list: one sampling weight per live episode, in file-name order (the online "
                        "trainer passes recency and surprise)")
    p.add_argument("--json", type=Path, help="also write the verdict (accepted, reason, metrics, model_id) here")
    add_config_arguments(p.add_argument_group("fine-tuning settings (FinetuneConfig)"), FinetuneConfig)
    p.set_defaults(func=run)


def _base(args: argparse.Namespace, training: dict) -> Path:
    if args.base:
        return args.base
    recorded = training.get("dataset")
    if recorded and Path(recorded).is_dir():
        return Path(recorded)
    raise ValueError(f"--base is required: the bundle's training dataset {recorded!r} (bundle.yaml "
                     f"training.dataset) is not here" if recorded else
                     "--base is required: bundle.yaml records no training dataset")


def _live(data: Path, spec: BundleSpec, tmp: Path, quiet: bool) -> Path:
    """``data`` itself if it is a dataset; a bag imported into ``tmp`` otherwise."""
    from jepa_pilot.data.bag import BagImportConfig, import_bag

    if data.suffix != ".mcap" and not (data / "metadata.yaml").is_file():
        return data  # a dataset folder (or not: Dataset will say what is wrong)
    config = BagImportConfig(robot=spec.robot, period=spec.control_period)
    report = import_bag(data, tmp / "live", config, progress=not quiet)
    if not report.episodes:
        raise ValueError(f"{data}: no episode of at least {config.min_steps} steps in the recording")
    return tmp / "live"


def run(args: argparse.Namespace) -> int:
    from jepa_pilot.common.config import config_from_args
    from jepa_pilot.perception.latents import resolve_bundle
    from jepa_pilot.world_model.finetune import FinetuneConfig, finetune

    try:
        cfg = config_from_args(FinetuneConfig, args)
        bundle = load_bundle(resolve_bundle(args.bundle))
        base = _base(args, bundle.spec.training)
        if args.out.exists():
            raise ValueError(f"--out {args.out} already exists: give a new bundle folder")
        with tempfile.TemporaryDirectory(prefix="jepa-finetune-") as tmp:
            live = _live(args.data, bundle.spec, Path(tmp), args.quiet)
            weights = json.loads(args.live_weights.read_text()) if args.live_weights else None
            result = finetune(bundle.root, live, base, args.out, cfg, live_weights=weights,
                              progress=not args.quiet, live_source=str(args.data))
    except (ValueError, OSError) as exc:  # BundleError, DatasetError, ConfigError, FinetuneError, BagError
        print(f"jepa-pilot finetune: error: {exc}")
        if args.json:  # the online trainer reports why, not just the exit status
            args.json.write_text(json.dumps({"accepted": False, "reason": f"not fine-tuned: {exc}"}))
        return BAD_INPUT
    print(f"{bundle.spec.model_id}, {result.steps} steps in {result.wall_s:.0f} s: {result.gate.reason}")
    if args.json:
        model_id = BundleSpec.from_yaml(result.bundle / "bundle.yaml").model_id if result.bundle else None
        args.json.write_text(json.dumps({**dataclasses.asdict(result.gate), "parent_id": bundle.spec.model_id,
                                         "model_id": model_id, "bundle": str(result.bundle or ""),
                                         "steps": result.steps, "wall_s": result.wall_s}, indent=1))
    if result.bundle is None:
        print(f"nothing written to {args.out}")
        return REJECTED
    print(f"new bundle {BundleSpec.from_yaml(result.bundle / 'bundle.yaml').model_id} at {result.bundle}")
    return ACCEPTED
