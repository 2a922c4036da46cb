"""`jepa-pilot train` and `jepa-pilot export`: learn a world model, ship it as an ONNX bundle."""
from __future__ import annotations


def register(sub) -> None:
    from jepa_pilot.world_model import export, train

    p = sub.add_parser("train", help="train the JEPA world model on a dataset (CPU or CUDA; DDP with torchrun)",
                       description=train.__doc__, formatter_class=_raw())
    train.build_parser(p).set_defaults(func=train.run_cli)
    p = sub.add_parser("export", help="export a training run to a model bundle (ONNX + bundle.yaml)",
                       description=export.__doc__, formatter_class=_raw())
    export.build_parser(p).set_defaults(func=export.run_cli)


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter
