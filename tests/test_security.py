"""Security basics: nothing from a bundle, checkpoint, config or launch file is ever executed.

Bundles are ONNX graphs (run by ONNX Runtime, never imported) plus ``bundle.yaml`` (``yaml.safe_load``);
checkpoints are loaded with ``torch.load(weights_only=True)``; config and launch files with
``yaml.safe_load``. Each test plants a payload that would leave a marker file if it ran, and checks both
that the loader refuses it with its own error and that the marker is absent.
"""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from jepa_pilot.common.paths import package_share

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = sorted(p.name for p in REPO.iterdir() if (p / "__init__.py").is_file())  # sim/, nodes/, ...


def python_tag_payload(marker: Path) -> str:
    """A YAML value that would create ``marker`` if a loader constructed Python objects."""
    return f"!!python/object/apply:os.system ['touch {marker}']"


@pytest.mark.unit
@pytest.mark.parametrize("field", ["model_id", "recipe", "files"])
def test_bundle_yaml_with_a_python_object_tag_is_refused(tmp_path, field):
    from jepa_pilot.common.bundle import BundleError, load_bundle

    root = tmp_path / "bundle"
    shutil.copytree(package_share() / "models" / "two_rooms", root, ignore=shutil.ignore_patterns("*.png"))
    marker = tmp_path / "pwned"
    lines = [f"{field}: {python_tag_payload(marker)}" if line.startswith(f"{field}:") else line
             for line in (root / "bundle.yaml").read_text().splitlines()
             if not line.startswith("  ") or field not in ("recipe", "files")]  # drop the old nested block
    (root / "bundle.yaml").write_text("\n".join(lines) + "\n")
    assert "!!python/object/apply:os.system" in (root / "bundle.yaml").read_text()
    with pytest.raises(BundleError, match="not valid YAML.*python/object"):
        load_bundle(root)
    assert not marker.exists()


@pytest.mark.unit
def test_config_and_launch_files_with_a_python_object_tag_are_refused(tmp_path):
    from jepa_pilot.cli.launch import LaunchError, parse_launch_file
    from jepa_pilot.common.config import ConfigError
    from jepa_pilot.control.command_gate import CommandGateConfig

    marker = tmp_path / "pwned"
    config = tmp_path / "gate.yaml"
    config.write_text(f"timeout: {python_tag_payload(marker)}\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        CommandGateConfig.from_yaml(config)
    launch = tmp_path / "a.launch.yaml"
    launch.write_text(f"launch:\n- let: {{name: x, value: {python_tag_payload(marker)}}}\n")
    with pytest.raises(LaunchError, match="cannot be read as YAML"):
        parse_launch_file(launch)
    assert not marker.exists()


class _Payload:
    """Pickles to a call of ``Path.touch(marker)``: what an attacker's checkpoint could run on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _fake_run(tmp_path: Path, extra) -> Path:
    """A training-run folder whose checkpoints look right but also carry ``extra``."""
    import torch

    from jepa_pilot.world_model.model import ModelConfig, WorldModel

    cfg = ModelConfig(image_size=16, channels=(8, 8), latent_dim=4, encoder_hidden=8, history=1, frameskip=1,
                      action_dim=2, predictor_hidden=8, predictor_layers=2)
    state = {"recipe": {"model": cfg.to_dict()}, "model": WorldModel(cfg).state_dict(), "extra": extra}
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save(state, run / "checkpoints" / "last.pt")
    return run


@pytest.mark.unit
def test_checkpoint_with_a_pickled_object_is_refused(tmp_path):
    from jepa_pilot.world_model.export import load_run
    from jepa_pilot.world_model.train import CheckpointError, load_checkpoint

    marker = tmp_path / "pwned"
    run = _fake_run(tmp_path, _Payload(marker))
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_checkpoint(run / "checkpoints" / "last.pt")
    with pytest.raises(CheckpointError, match="last.pt"):
        load_run(run)
    assert not marker.exists()
    # Control: the same checkpoint with plain data in place of the object loads (so the refusal above is
    # about the object, not the file), and torch.load without weights_only would have run the payload.
    model, recipe = load_run(_fake_run(tmp_path / "plain", {"numbers": [1, 2.5], "text": "ok"}))
    assert recipe["model"]["latent_dim"] == 4 and not model.training
    import torch

    torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.unit
def test_garbage_checkpoint_is_a_checkpoint_error(tmp_path):
    from jepa_pilot.world_model.train import CheckpointError, load_checkpoint

    path = tmp_path / "last.pt"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="last.pt"):
        load_checkpoint(path)


def _unsafe_calls(tree: ast.AST) -> list[str]:
    """Calls that can execute code from data: eval/exec, pickle/marshal loads, yaml.load/unsafe_load,
    torch.load without weights_only=True, numpy loads with allow_pickle=True."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        keywords = {k.arg: k.value for k in node.keywords}

        def true(key: str) -> bool:
            value = keywords.get(key)
            return isinstance(value, ast.Constant) and value.value is True

        if isinstance(func, ast.Name) and name in ("eval", "exec", "__import__"):
            found.append(name)
        elif owner in ("pickle", "marshal", "dill", "cloudpickle") and name in ("load", "loads"):
            found.append(f"{owner}.{name}")
        elif owner == "yaml" and name in ("load", "unsafe_load", "full_load", "load_all"):
            found.append(f"yaml.{name}")
        elif owner == "torch" and name == "load" and not true("weights_only"):
            found.append("torch.load without weights_only=True")
        elif owner in ("np", "numpy") and name == "load" and "allow_pickle" in keywords \
                and not (isinstance(keywords["allow_pickle"], ast.Constant) and keywords["allow_pickle"].value is False):
            found.append("np.load(allow_pickle=...)")
    return found


@pytest.mark.unit
def test_the_package_has_no_code_executing_loaders():
    assert {"common", "perception", "world_model", "nodes"} <= set(PACKAGE_DIRS)
    problems = []
    for folder in PACKAGE_DIRS:
        for path in sorted((REPO / folder).rglob("*.py")):
            for call in _unsafe_calls(ast.parse(path.read_text(), str(path))):
                problems.append(f"{path.relative_to(REPO)}: {call}")
    assert not problems, "\n".join(problems)
    # The checker itself finds what it should.
    bad = "eval(x)\npickle.loads(b)\nyaml.load(t)\ntorch.load(p)\ntorch.load(p, weights_only=False)\n" \
          "np.load(f, allow_pickle=True)\nyaml.safe_load(t)\ntorch.load(p, weights_only=True)\nmodel.eval()\n"
    assert _unsafe_calls(ast.parse(bad)) == ["eval", "pickle.loads", "yaml.load", "torch.load without weights_only=True",
                                             "torch.load without weights_only=True", "np.load(allow_pickle=...)"]
