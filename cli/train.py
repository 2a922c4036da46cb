"""`jepa-pilot train` and `jepa-pilot export`: learn a world model, ship it as an ONNX bundle."""
from __future__ import annotations


def register(sub) -> None:
    try:
        from jepa_pilot.world_model import export, train
    except ModuleNotFoundError as exc:  # torch: `pip install jepa-pilot` without the learn extra
        if (exc.name or "jepa_pilot").startswith("jepa_pilot"):
            raise
        register_missing(sub, exc.name, {"train": "train a world model", "export": "export a world model"})
        return
    p = sub.add_parser("train", help="train the JEPA world model on a dataset (CPU or CUDA; DDP with torchrun)",
                       description=train.__doc__, formatter_class=_raw())
    train.build_parser(p).set_defaults(func=train.run_cli)
    p = sub.add_parser("export", help="export a training run to a model bundle (ONNX + bundle.yaml)",
                       description=export.__doc__, formatter_class=_raw())
    export.build_parser(p).set_defaults(func=export.run_cli)


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def register_missing(sub, module: str, commands: dict[str, str]) -> None:
    """Commands (name -> what they do) that only say what to install, so `jepa-pilot --help` works
    without torch."""
    import argparse

    need = f"needs {module} (not installed): pip install 'jepa-pilot[learn]'"
    for name, does in commands.items():
        # prefix_chars="+": every argument after the command (--data, --help...) is taken, none is an error
        p = sub.add_parser(name, help=f"{does} ({need})", prefix_chars="+", add_help=False)
        p.add_argument("ignored", nargs="*", help=argparse.SUPPRESS)
        p.set_defaults(func=lambda args, name=name: _missing(name, need))


def _missing(name: str, need: str) -> int:
    print(f"jepa-pilot {name}: error: {need}")
    return 2
