"""World model: shapes, the objective, seeded and resumable training, DDP, ONNX export parity, bundles."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from jepa_pilot.common.config import ConfigError
from jepa_pilot.data import DatasetInfo, DatasetWriter, Episode
from jepa_pilot.perception.bundle import BundleError, load_bundle
from jepa_pilot.perception.engine import WorldModelEngine
from jepa_pilot.world_model.export import PARITY_RTOL, export_bundle, load_run, parity
from jepa_pilot.world_model.losses import LossConfig, inverse_dynamics_head, jepa_loss
from jepa_pilot.world_model.model import ModelConfig, WorldModel
from jepa_pilot.world_model.train import Recipe, TimeScale, train

# Tiers: the model's verbs and the objective are unit tests; anything that trains or exports is slow.

TINY = dict(image_size=16, latent_dim=8, channels=[8, 8], encoder_hidden=32, history=2, frameskip=2,
            action_dim=2, predictor_hidden=32, predictor_layers=2)


def square_world(rng: np.random.Generator, steps: int, size: int = 16) -> Episode:
    """A white square on black pushed around by 2-d actions: a world small enough to learn in seconds."""
    pos = rng.uniform(3, size - 4, 2)
    actions = np.clip(rng.normal(0, 0.7, (steps, 2)), -1, 1).astype(np.float32)
    states, images = [], []
    for t in range(steps + 1):
        img = np.zeros((size, size, 3), np.uint8)
        x, y = np.round(pos).astype(int)
        img[y - 1:y + 2, x - 1:x + 2] = 255
        images.append(img)
        states.append(pos.copy())
        if t < steps:
            pos = np.clip(pos + actions[t], 2, size - 3)
    return Episode(np.stack(images), actions, np.arange(steps + 1) * 0.1, np.array(states))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("squares")
    info = DatasetInfo(robot="squares", image_height=16, image_width=16, action_names=("dx", "dy"),
                       action_scale=(1.0, 1.0), state_names=("x", "y"))
    writer = DatasetWriter(root, info)
    rng = np.random.default_rng(0)
    for _ in range(12):
        writer.add(square_world(rng, 30))
    return root


def tiny_recipe(steps: int = 12, **train) -> Recipe:
    settings = dict(steps=steps, batch_size=8, val_every=6, checkpoint_every=6, val_windows=16,
                    warmup_steps=2, threads=1, device="cpu")
    return Recipe.load(None, model=TINY, loss={"rollout_steps": 3}, train={**settings, **train})


@pytest.mark.unit
def test_model_verbs_have_the_documented_shapes():
    cfg = ModelConfig.from_dict(TINY)
    model = WorldModel(cfg)
    z = model.encode(torch.rand(3, 5, 3, 16, 16))
    assert z.shape == (3, 5, 8)
    assert model.next(z[:, :2], torch.rand(3, 2, 2)).shape == (3, 8)
    assert model.rollout(z[:, :2], torch.rand(3, 4, 2, 2)).shape == (3, 4, 8)


@pytest.mark.unit
def test_a_recipes_time_section_sets_the_model_step_from_the_datas_control_period(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"time": {"model_step_s": 0.4, "horizon_s": 4.0}}))
    assert Recipe.load(recipe, 0.1).model.frameskip == 4
    slow = Recipe.load(recipe, 0.01)
    assert slow.model.frameskip == 40 and slow.time.horizon(40 * 0.01) == 10
    assert Recipe.load(recipe, 1.0).model.frameskip == 1  # never below one period
    with pytest.raises(ConfigError, match="needs the data's control period"):
        Recipe.load(recipe)
    recipe.write_text(yaml.safe_dump({"model": {"frameskip": 4}, "time": {"model_step_s": 0.4}}))
    with pytest.raises(ConfigError, match="model.frameskip or time.model_step_s, not both"):
        Recipe.load(recipe, 0.1)
    recipe.write_text(yaml.safe_dump({"model": {"frameskip": 5}}))
    assert Recipe.load(recipe, 0.01).model.frameskip == 5  # no time section: as written


@pytest.mark.unit
def test_model_config_rejects_sizes_the_encoder_cannot_halve():
    with pytest.raises(ValueError, match="divisible by 2\\^2"):
        ModelConfig.from_dict({**TINY, "image_size": 18})


@pytest.mark.unit
def test_objective_is_finite_and_its_anti_collapse_terms_react_to_collapse():
    cfg = ModelConfig.from_dict(TINY)
    model, head = WorldModel(cfg), inverse_dynamics_head(cfg)
    frames, chunks = torch.rand(4, 5, 3, 16, 16), torch.rand(4, 4, 2, 2) * 2 - 1
    total, terms = jepa_loss(model, model.encoder, head, frames, chunks, LossConfig(rollout_steps=3))
    assert torch.isfinite(total) and set(terms) == {"teacher_forcing", "rollout", "variance", "covariance",
                                                   "inverse_dynamics"}
    with torch.no_grad():  # a collapsed encoder (constant output) must pay the full variance hinge
        for p in model.encoder.head[-1].parameters():
            p.zero_()
    _, collapsed = jepa_loss(model, model.encoder, head, frames, chunks, LossConfig(rollout_steps=3))
    assert collapsed["variance"] == pytest.approx(1.0, abs=0.02)
    assert collapsed["variance"] > terms["variance"]


def weights(run: Path) -> dict:
    return torch.load(run / "model.pt", weights_only=False)["model"]


def checkpoint(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=False)


def assert_same_tensors(a, b, where: str = "") -> None:
    """Nested dicts/lists of tensors and numbers: equal bit for bit (torch.equal), same keys."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(a)} vs {sorted(b)}"
        for key in a:
            assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


@pytest.mark.slow
def test_seeded_training_is_reproducible(dataset, tmp_path):
    a = train(tiny_recipe(), dataset, tmp_path / "a", progress=False)
    b = train(tiny_recipe(), dataset, tmp_path / "b", progress=False)
    same = lambda h: {k: v for k, v in h.items() if k != "wall_s"}  # noqa: E731
    assert same(a) == same(b)
    for name, value in weights(tmp_path / "a").items():
        assert torch.equal(value, weights(tmp_path / "b")[name]), name
    other = train(tiny_recipe(seed=1), dataset, tmp_path / "d", progress=False)
    assert same(other) != same(a)
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["history"][-1]["step"] == 12 and (tmp_path / "a" / "loss.png").stat().st_size > 0
    assert "val_probe_r2" in metrics["history"][-1] and len(metrics["history"][-1]["val_rollout_vs_copy_last"]) == 3


@pytest.mark.slow
def test_stop_and_resume_ends_bit_exactly_where_one_uninterrupted_run_does(dataset, tmp_path):
    """Stop at step 5 (off the checkpoint and validation grid), resume to 12: every parameter, the EMA
    target, the optimiser state (moments, step counts, lr) and the sampler RNG equal one 12-step run's."""
    recipe = tiny_recipe(steps=12, warmup_steps=3)  # warm-up to step 3, cosine decay to 0 at 12
    whole = train(recipe, dataset, tmp_path / "whole", progress=False)
    train(recipe, dataset, tmp_path / "split", progress=False, stop_at=5)
    stopped = checkpoint(tmp_path / "split")
    assert stopped["step"] == 5 and not (tmp_path / "split" / "model.pt").exists()
    resumed = train(recipe, dataset, tmp_path / "split", resume=True, progress=False)
    a, b = checkpoint(tmp_path / "whole"), checkpoint(tmp_path / "split")
    assert a["step"] == b["step"] == 12
    for part in ("model", "target", "inverse_head", "optimizer", "rng"):
        assert_same_tensors(a[part], b[part], part)
    assert a["optimizer"]["param_groups"][0]["lr"] > 0  # the schedule had not decayed to 0 before the end
    for name, value in weights(tmp_path / "whole").items():
        assert torch.equal(value, weights(tmp_path / "split")[name]), name
    drop_wall = lambda h: {k: v for k, v in h.items() if k != "wall_s"}  # noqa: E731
    assert drop_wall(whole) == drop_wall(resumed)


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_of_another_recipe(dataset, tmp_path):
    train(tiny_recipe(steps=6), dataset, tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="another recipe"):
        train(tiny_recipe(steps=6, lr=0.5), dataset, tmp_path / "r", resume=True, progress=False)


def torchrun(dataset: Path, config: Path, out: Path, *extra: str) -> None:
    """`torchrun --nproc_per_node=2 -m jepa_pilot.world_model.train` on CPU (gloo)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "jepa_pilot.world_model.train", "--data", str(dataset), "--config", str(config),
                           "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.slow
def test_torchrun_ddp_with_two_processes_on_gloo_resumes_bit_exactly(dataset, tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(tiny_recipe(steps=6).to_dict()))
    torchrun(dataset, config, tmp_path / "ddp")
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 6
    torchrun(dataset, config, tmp_path / "split", "--stop-at", "3")
    stopped = checkpoint(tmp_path / "split")
    assert stopped["step"] == 3 and len(stopped["rng"]) == 2  # both processes' sampler states
    assert stopped["rng"][0]["sampler"] != stopped["rng"][1]["sampler"]
    torchrun(dataset, config, tmp_path / "split", "--resume")
    a, b = checkpoint(tmp_path / "ddp"), checkpoint(tmp_path / "split")
    for part in ("model", "target", "inverse_head", "optimizer", "rng"):
        assert_same_tensors(a[part], b[part], part)


@pytest.fixture(scope="module")
def exported(dataset, tmp_path_factory) -> tuple[Path, Path]:
    """(training run, its exported bundle)."""
    run = tmp_path_factory.mktemp("run")
    train(tiny_recipe(), dataset, run, progress=False)
    return run, export_bundle(run, tmp_path_factory.mktemp("bundle") / "b", horizon=3)


@pytest.mark.slow
def test_a_relative_data_path_is_recorded_resolved_and_export_never_guesses(dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(dataset.parent)
    run = tmp_path / "run"
    recipe = tiny_recipe(steps=2)
    train(dataclasses.replace(recipe, time=TimeScale(horizon_s=0.6)), Path(dataset.name), run, progress=False)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dataset"] == str(dataset.resolve())
    monkeypatch.chdir(tmp_path)  # exported from another folder: the dataset is still found
    spec = load_bundle(export_bundle(run, tmp_path / "b")).spec
    assert (spec.robot, spec.action_names, spec.action_scale) == ("squares", ("dx", "dy"), (1.0, 1.0))
    assert spec.horizon == 3  # the recipe's 0.6 s over its model step, 2 periods of 0.1 s
    assert spec.training["dataset"] == str(dataset.resolve())
    metrics["dataset"] = str(tmp_path / "moved")  # the dataset is gone: no defaults, a clear error
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(FileNotFoundError, match="not a dataset here; pass --data DIR"):
        export_bundle(run, tmp_path / "c", horizon=3)
    assert not (tmp_path / "c").exists()
    assert load_bundle(export_bundle(run, tmp_path / "c", horizon=3, data=dataset)).spec.robot == "squares"
    other = tmp_path / "three_actions"
    writer = DatasetWriter(other, DatasetInfo(robot="squares", image_height=16, image_width=16,
                                              action_names=("dx", "dy", "dz"), action_scale=(1.0, 1.0, 1.0)))
    ep = square_world(np.random.default_rng(0), 3)
    writer.add(Episode(ep.images, np.zeros((3, 3), np.float32), ep.timestamps))
    with pytest.raises(ValueError, match="3 action dimensions .* the model 2"):
        export_bundle(run, tmp_path / "d", horizon=3, data=other)


@pytest.mark.slow
def test_onnx_runtime_matches_pytorch_on_fresh_inputs(exported):
    run, bundle = exported
    model, _ = load_run(run)
    engine = WorldModelEngine(bundle, providers=("cpu",))
    assert engine.providers == ["CPUExecutionProvider"]
    for seed, batch in ((1, 2), (2, 7)):
        errors = parity(model, engine, horizon=3, batch=batch, seed=seed)
        assert errors["encoder"] <= PARITY_RTOL and errors["rollout"] <= PARITY_RTOL, errors


@pytest.mark.slow
def test_bundle_records_shapes_and_the_engine_checks_inputs(exported):
    _, bundle = exported
    spec = load_bundle(bundle).spec
    assert (spec.latent_dim, spec.history, spec.horizon, spec.frameskip, spec.action_dim) == (8, 2, 3, 2, 2)
    assert spec.model_id.startswith("squares-") and spec.recipe["model"]["latent_dim"] == 8
    engine = WorldModelEngine(bundle, providers=("cpu",))
    out = engine.rollout(np.zeros((2, 8), np.float32), np.zeros((5, 6, 2), np.float32))
    assert out.shape == (5, 3, 8)
    with pytest.raises(ValueError, match=r"actions must be \(N, 6, 2\)"):
        engine.rollout(np.zeros((2, 8), np.float32), np.zeros((5, 3, 2), np.float32))


@pytest.mark.slow
def test_encoder_accepts_every_encoding_and_size_the_same_way(exported):
    engine = WorldModelEngine(exported[1], providers=("cpu",))
    rgb = square_world(np.random.default_rng(3), 1).images[0]
    z = engine.encode(rgb)
    assert z.shape == (8,)
    np.testing.assert_allclose(engine.encode(rgb[..., ::-1].copy(), "bgr8"), z, rtol=1e-5, atol=1e-6)
    rgba = np.concatenate([rgb, np.full((16, 16, 1), 255, np.uint8)], axis=2)
    np.testing.assert_allclose(engine.encode(rgba, "rgba8"), z, rtol=1e-5, atol=1e-6)
    big = np.kron(rgb, np.ones((4, 4, 1), np.uint8))  # 64x64 -> area-resized back to 16x16
    np.testing.assert_allclose(engine.encode(big), z, rtol=1e-4, atol=1e-5)
    assert engine.encode(rgb[..., 0], "mono8").shape == (8,)
    assert engine.encode(np.stack([rgb, rgb, rgb])).shape == (3, 8)
    with pytest.raises(ValueError, match="unsupported encoding"):
        engine.encode(rgb, "yuv422")


@pytest.mark.slow
def test_bundle_problems_get_clear_errors(exported, tmp_path):
    _, bundle = exported
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nowhere")
    broken = tmp_path / "missing"
    shutil.copytree(bundle, broken)
    (broken / "rollout.onnx").unlink()
    with pytest.raises(BundleError, match="rollout file rollout.onnx is missing"):
        load_bundle(broken)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(bundle, corrupt)
    with open(corrupt / "encoder.onnx", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(BundleError, match="sha256 does not match"):
        load_bundle(corrupt)
    mixed = tmp_path / "mixed"  # hashes made consistent, but bundle.yaml claims another latent size
    shutil.copytree(bundle, mixed)
    meta = yaml.safe_load((mixed / "bundle.yaml").read_text())
    meta["latent_dim"] = 16
    (mixed / "bundle.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(BundleError, match="bundle.yaml says"):
        WorldModelEngine(mixed, providers=("cpu",))
    (mixed / "bundle.yaml").write_text("format: something-else\n")
    with pytest.raises(BundleError, match="not a jepa_pilot.bundle/1 file"):
        load_bundle(mixed)


@pytest.mark.slow
def test_eval_model_reports_every_metric(exported, dataset, tmp_path):
    from jepa_pilot.cli.main import main

    assert main(["eval-model", str(exported[1]), "--data", str(dataset), "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    assert len(report["rollout"]["ratio"]) == 3 and set(report["probe_r2"]) == {"x", "y"}
    assert report["latent_std"]["collapsed_dims"] == 0 and report["latency_ms"]["encoder_batch1"] > 0
    rollout = report["rollout"]
    np.testing.assert_allclose(rollout["ratio"], np.array(rollout["mse"]) / np.array(rollout["copy_last_mse"]))
    assert report["episodes"] == 1  # the validation split of the training set (12 episodes x 0.1)
    assert (tmp_path / "eval.png").stat().st_size > 0


@pytest.mark.unit
def test_spearman_ranks_and_ignores_scale():
    from jepa_pilot.evaluation.model_eval import _spearman

    x = np.array([0.1, 0.5, 0.2, 3.0, 1.0])
    assert _spearman(x, x ** 3 + 7) == pytest.approx(1.0)  # any increasing map: perfect rank agreement
    assert _spearman(x, -x) == pytest.approx(-1.0)
    assert _spearman(x, np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == pytest.approx(0.8)  # rank differences 0,1,1,1,1: 1 - 6*4/(5*24)


@pytest.mark.unit
def test_the_calibrated_goal_tolerance_is_the_latent_distance_of_the_success_radius():
    from jepa_pilot.evaluation.model_eval import calibrated_goal_tolerance

    # A robot moving 1 cm a frame, seen by a latent 10 units per metre: the success radius 5 cm is 0.5 units.
    positions = [np.stack([np.arange(100) * 0.01, np.zeros(100)], axis=1)]
    latents = [positions[0] * 10.0]
    tolerance = calibrated_goal_tolerance(latents, positions, radius=0.05)
    assert 0.5 <= tolerance < 0.55, tolerance  # the 1 % of pairs it may let through lie just beyond 0.5
    assert calibrated_goal_tolerance(latents, positions, radius=0.1) > 2 * tolerance * 0.95
    # A latent that ignores the position cannot promise the radius at any distance beyond its noise.
    blind = [np.random.default_rng(0).normal(size=(100, 4))]
    assert calibrated_goal_tolerance(blind, positions, radius=0.05) is None
    assert calibrated_goal_tolerance([], [], radius=0.05) is None


@pytest.mark.slow
def test_non_finite_latents_are_refused(exported, tmp_path):
    """An encoder graph that outputs NaN (its last bias poisoned) must not pass latents on."""
    import onnx
    from onnx import numpy_helper

    from jepa_pilot.perception.bundle import sha256

    poisoned = tmp_path / "nan"
    shutil.copytree(exported[1], poisoned)
    graph = onnx.load(str(poisoned / "encoder.onnx"))
    output = graph.graph.output[0].name
    last = next(n for n in graph.graph.node if output in n.output)
    for init in graph.graph.initializer:  # the biases feeding the last node
        if init.name in last.input and len(init.dims) == 1:
            init.CopyFrom(numpy_helper.from_array(np.full(init.dims, np.nan, np.float32), init.name))
    onnx.save(graph, str(poisoned / "encoder.onnx"))
    meta = yaml.safe_load((poisoned / "bundle.yaml").read_text())
    meta["files"]["encoder"]["sha256"] = sha256(poisoned / "encoder.onnx")
    (poisoned / "bundle.yaml").write_text(yaml.safe_dump(meta))
    engine = WorldModelEngine(poisoned, providers=("cpu",))
    with pytest.raises(ValueError, match="non-finite latents"):
        engine.encode(square_world(np.random.default_rng(0), 1).images[0])
