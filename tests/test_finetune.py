"""Fine-tuning a deployed bundle's predictor: rebuild from ONNX, learn changed dynamics, gate, atomic export, CLI.

The data are short episodes of the real two-rooms simulator (collected once per
session); the bundle is the shipped ``models/two_rooms``.
"""
from __future__ import annotations

import json

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from jepa_pilot.cli.main import main
from jepa_pilot.common.bundle import BundleError, load_bundle
from jepa_pilot.data import Dataset, DatasetInfo, DatasetWriter, Episode
from jepa_pilot.data.collect import CollectConfig, collect
from jepa_pilot.perception.engine import WorldModelEngine
from jepa_pilot.world_model import finetune as ft
from jepa_pilot.world_model.export import PARITY_RTOL, OnnxGraphs, parity
from jepa_pilot.world_model.windows import EpisodeWindows

from bundle_edits import rehash, scale_output  # tests/

pytestmark = pytest.mark.slow  # the real simulator, training and ONNX export

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "two_rooms"
R_MINUS_90 = np.array([[0.0, 1.0], [-1.0, 0.0]], np.float32)  # (vx, vy) -> (vy, -vx)


def sim_data(root: Path, seed: int, episodes: int) -> Path:
    collect(CollectConfig(env="two_rooms", episodes=episodes, steps=50, seed=seed), root, progress=False,
            log=lambda line: None)
    return root


@pytest.fixture(scope="session")
def base(tmp_path_factory) -> Path:
    """Stands in for the bundle's training set: the same simulator and explorer."""
    return sim_data(tmp_path_factory.mktemp("base"), 0, 20)


@pytest.fixture(scope="session")
def fresh(tmp_path_factory) -> Path:
    return sim_data(tmp_path_factory.mktemp("fresh"), 1, 48)


@pytest.fixture(scope="session")
def rotated(fresh, tmp_path_factory) -> Path:
    """The fresh episodes as a robot with axes rotated by 90° records them: commanded a' = R(-90°) a."""
    data = Dataset(fresh)
    writer = DatasetWriter(tmp_path_factory.mktemp("rotated"), data.info)
    for ep in data:
        writer.add(Episode(ep.images, ep.actions @ R_MINUS_90.T, ep.timestamps, ep.states))
    return writer.root


def copy_bundle(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SHIPPED, tmp_path / "bundle"))


def test_load_predictor_reproduces_the_shipped_rollout():
    model = ft.load_predictor(SHIPPED)
    graphs = OnnxGraphs(load_bundle(SHIPPED))
    assert parity(model, graphs, horizon=10, batch=7, seed=3)["rollout"] <= PARITY_RTOL
    assert not model.training


def test_load_predictor_refuses_a_rollout_graph_that_is_not_its_predictor(tmp_path):
    bundle = copy_bundle(tmp_path)
    scale_output(bundle, "rollout", "latents")
    with pytest.raises(BundleError, match="sha256 does not match"):
        ft.load_predictor(bundle)
    rehash(bundle)
    with pytest.raises(BundleError, match=f"{bundle}: rollout.onnx does not compute the predictor"):
        ft.load_predictor(bundle)
    (bundle / "rollout.onnx").write_bytes(b"not a graph")
    rehash(bundle)
    with pytest.raises(BundleError, match="rollout.onnx: not a readable ONNX graph"):
        ft.load_predictor(bundle)


def test_load_world_model_reproduces_the_shipped_encoder_and_refuses_another(tmp_path):
    model = ft.load_world_model(SHIPPED)
    errors = parity(model, OnnxGraphs(load_bundle(SHIPPED)), horizon=10, batch=7, seed=4)
    assert errors["encoder"] <= PARITY_RTOL and errors["rollout"] <= PARITY_RTOL
    assert not torch.allclose(model.encoder.convs[1].weight, torch.ones(16))  # the GroupNorm scales were read
    bundle = copy_bundle(tmp_path)
    scale_output(bundle, "encoder", "latent")
    rehash(bundle, "encoder")
    with pytest.raises(BundleError, match=f"{bundle}: encoder.onnx does not compute the encoder"):
        ft.load_world_model(bundle)


def test_effective_rank_counts_the_directions_a_latent_spreads_over():
    g = torch.Generator().manual_seed(0)
    assert ft.effective_rank(torch.randn(4000, 8, generator=g)) == pytest.approx(8, rel=0.05)
    line = torch.randn(4000, 1, generator=g) * torch.randn(1, 8, generator=g)
    assert ft.effective_rank(line + 1e-3 * torch.randn(4000, 8, generator=g)) == pytest.approx(1, abs=0.01)


def test_latent_windows_cut_like_frame_windows_and_follow_episode_weights():
    steps, length, skip = (13, 21), 3, 4
    latents = [np.arange(t + 1, dtype=np.float32)[:, None] + 100 * e for e, t in enumerate(steps)]  # (T+1, 1)
    actions = [np.stack([np.arange(t), np.full(t, e)], 1).astype(np.float32) for e, t in enumerate(steps)]
    windows = ft.LatentWindows(latents, actions, length, skip)
    assert isinstance(windows, EpisodeWindows) and len(windows) == (13 - 8 + 1) + (21 - 8 + 1)
    z, chunks = windows.sample(50, np.random.default_rng(0))
    assert z.shape == (50, 3, 1) and chunks.shape == (50, 2, 4, 2)
    start = z[:, 0, 0] % 100
    np.testing.assert_array_equal(z[:, :, 0] % 100, start[:, None] + [0, 4, 8])  # frameskip apart
    np.testing.assert_array_equal(chunks[:, :, :, 0], start[:, None, None] + np.arange(8).reshape(2, 4))
    weighted = ft.LatentWindows(latents, actions, length, skip, weights=np.array([0.0, 1.0]))
    z, chunks = weighted.sample(50, np.random.default_rng(0))
    assert (z[:, 0, 0] >= 100).all() and (chunks[..., 1] == 1).all()
    with pytest.raises(ft.FinetuneError, match="weights are zero"):
        ft.LatentWindows(latents, actions, length, skip, weights=np.zeros(2))


@pytest.mark.parametrize("numbers, accepted, why", [
    ((1.0, 0.85, 1.0, 1.05), True, "accepted"),
    ((1.0, 0.95, 1.0, 1.0), False, "no 10% improvement on live data"),
    ((1.0, 0.5, 1.0, 1.2), False, "base data worse by more than 10%"),
    ((1.0, float("nan"), 1.0, 1.0), False, "no 10% improvement"),
])
def test_gate_accepts_only_a_clear_live_gain_without_base_regression(numbers, accepted, why):
    result = ft.gate(*numbers, margin=0.1, base_limit=0.1)
    assert result.accepted is accepted
    assert why in result.reason and f"{numbers[0]:.4g} -> {numbers[1]:.4g}" in result.reason
    assert (result.current_live, result.candidate_live, result.current_base, result.candidate_base) \
        == pytest.approx(numbers, nan_ok=True)


def test_the_gate_refuses_an_encoder_whose_latent_lost_effective_rank():
    kept = ft.gate(1.0, 0.5, 1.0, 1.0, metric="rollout/copy-last MSE", ranks=(8.0, 6.5), rank_limit=0.25)
    assert kept.accepted and "effective rank of the latent on base frames 8.0 -> 6.5" in kept.reason
    assert "held-out rollout/copy-last MSE on live data" in kept.reason and kept.metric == "rollout/copy-last MSE"
    collapsed = ft.gate(1.0, 0.5, 1.0, 1.0, ranks=(8.0, 5.9), rank_limit=0.25)
    assert not collapsed.accepted and "lost more than 25% of its effective rank" in collapsed.reason
    assert (collapsed.current_rank, collapsed.candidate_rank) == (8.0, 5.9)


def test_when_the_world_changed_the_gate_waives_the_base_check_and_says_so():
    result = ft.gate(1.0, 0.5, 0.01, 0.5, margin=0.1, base_limit=0.1, world_changed=True)
    assert result.accepted and "the world changed (live error 100x the base error" in result.reason
    assert not ft.gate(1.0, 0.95, 0.01, 0.01, world_changed=True).accepted  # live must still improve


def test_rotated_dynamics_are_learned_and_exported(rotated, base, tmp_path):
    # The dynamics changed everywhere: the base data now contradicts the robot. The fine-tune sees it
    # (the current model is far worse on live than on base data), so it neither mixes nor guards the base.
    result = ft.finetune(SHIPPED, rotated, base, tmp_path / "new", ft.FinetuneConfig(threads=1), progress=False)
    g = result.gate
    assert g.accepted and result.bundle == tmp_path / "new", g.reason
    assert g.current_live > 10 * g.current_base and "the world changed" in g.reason
    assert g.candidate_live <= 0.3 * g.current_live, g.reason
    parent, new = load_bundle(SHIPPED), load_bundle(result.bundle)
    assert new.spec.model_id != parent.spec.model_id and new.spec.model_id.startswith("two_rooms-")
    assert new.spec.files["encoder"]["sha256"] == parent.spec.files["encoder"]["sha256"]
    assert new.has("landmarks") == parent.has("landmarks")  # the same encoder: its landmarks carried over
    assert new.spec.io_shapes() == parent.spec.io_shapes()
    assert (new.spec.action_names, new.spec.control_period) == (parent.spec.action_names, parent.spec.control_period)
    assert new.spec.training["parent"] == parent.spec.model_id and new.spec.metrics["finetune"]["accepted"]
    assert new.spec.metrics["finetune"]["base_reference"] == pytest.approx(g.current_base)
    engine = WorldModelEngine(result.bundle, providers=["cpu"])  # the runtime loads it (shapes checked)
    assert parity(result.model, engine, new.spec.horizon, seed=5)["rollout"] <= PARITY_RTOL
    z_hist, actions = np.random.default_rng(0).normal(size=(3, 2, 32)), np.zeros((3, 40, 2))
    actions[:, :, 0] = 1.0
    moved = engine.rollout(z_hist, actions) - OnnxGraphs(parent).rollout(z_hist, actions)
    assert np.abs(moved).max() > 0.1  # a new predictor, not the parent's
    # A second fine-tune from the adapted bundle still knows the world changed: it fits the base data worse
    # now, as it should, so the base error of the original model is the reference, not its own.
    again = ft.finetune(result.bundle, rotated, base, tmp_path / "again", ft.FinetuneConfig(threads=1, steps=50),
                        progress=False)
    assert "the world changed" in again.gate.reason, again.gate.reason


def test_rotated_dynamics_are_learned_with_the_encoder_too(rotated, base, tmp_path):
    cfg = ft.FinetuneConfig(threads=1, encoder=True, steps=100, head_warmup=0.3)
    result = ft.finetune(SHIPPED, rotated, base, tmp_path / "new", cfg, progress=False)
    g = result.gate
    assert g.accepted and g.metric == "rollout/copy-last MSE", g.reason
    assert g.world_changed and g.candidate_live <= 0.5 * g.current_live, g.reason
    assert g.candidate_rank >= 0.75 * g.current_rank > 1.0, g.reason  # no collapse
    parent, new = load_bundle(SHIPPED), load_bundle(result.bundle)
    assert new.spec.files["encoder"]["sha256"] != parent.spec.files["encoder"]["sha256"]  # a new latent space
    assert parent.has("landmarks") and not new.has("landmarks")  # the parent's landmarks are stale here
    assert new.spec.io_shapes() == parent.spec.io_shapes()
    assert new.spec.metrics["finetune"]["metric"] == "rollout/copy-last MSE"
    engine = WorldModelEngine(result.bundle, providers=["cpu"])  # the runtime runs both new graphs
    errors = parity(result.model, engine, new.spec.horizon, seed=6)
    assert errors["encoder"] <= PARITY_RTOL and errors["rollout"] <= PARITY_RTOL
    frames = np.random.default_rng(0).random((4, 3, 64, 64), dtype=np.float32)
    moved = engine.encode_prepared(frames) - OnnxGraphs(parent).encode_prepared(frames)
    assert np.abs(moved).max() > 1e-3  # the encoder learned: frames map elsewhere
    # The exported encoder reads back (a fine-tuned bundle can be fine-tuned again).
    again = ft.load_world_model(result.bundle)
    assert parity(again, engine, new.spec.horizon, seed=7)["encoder"] <= PARITY_RTOL


def test_unchanged_dynamics_are_rejected_and_nothing_is_written(fresh, base, tmp_path):
    result = ft.finetune(SHIPPED, fresh, base, tmp_path / "new", ft.FinetuneConfig(threads=1), progress=False)
    assert not result.gate.accepted and "no 10% improvement on live data" in result.gate.reason
    assert "world changed" not in result.gate.reason  # the base data still describes this world
    assert result.bundle is None and list(tmp_path.iterdir()) == []


def test_a_failed_export_leaves_neither_the_bundle_nor_a_temporary_folder(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("parity check failed (injected)")

    def fast_export(module, inputs, names, output, path):  # the parent's graph: a valid rollout.onnx, in no time
        shutil.copyfile(SHIPPED / "rollout.onnx", path)

    model, parent = ft.load_predictor(SHIPPED), load_bundle(SHIPPED)
    monkeypatch.setattr(ft, "_export", fast_export)
    monkeypatch.setattr(ft, "parity", fail)  # the last check before the rename: the temporary bundle is whole
    with pytest.raises(RuntimeError, match="injected"):
        ft.export_candidate(model, parent, tmp_path / "new", {}, {})
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "new").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        ft.export_candidate(model, parent, tmp_path / "new", {}, {})
    assert list(tmp_path.iterdir()) == [tmp_path / "new"]


def test_cli_refuses_bad_input_with_status_2(base, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the shipped bundle's training.dataset (datasets/two_rooms) is not here
    info = DatasetInfo(robot="two_rooms", action_names=("vx", "vy", "wz"), action_scale=(0.5, 0.5, 1.0))
    writer = DatasetWriter(tmp_path / "three_actions", info)
    rng = np.random.default_rng(0)
    for _ in range(3):
        writer.add(Episode(rng.integers(0, 255, (21, 64, 64, 3), np.uint8),
                           rng.uniform(-1, 1, (20, 3)).astype(np.float32), np.arange(21) * 0.1))
    common = ["--base", str(base), "--out", str(tmp_path / "new"), "--threads", "1", "--quiet"]
    cases = [(["finetune", str(tmp_path / "missing"), "--data", str(base), *common], "does not exist"),
             (["finetune", "two_roomz", "--data", str(base), *common], "no model bundle 'two_roomz'"),
             (["finetune", str(SHIPPED), "--data", str(writer.root), *common], "has action size 3, bundle"),
             (["finetune", str(SHIPPED), "--data", str(base), "--out", str(tmp_path / "new")], "--base is required")]
    for argv, message in cases:
        verdict = tmp_path / "verdict.json"
        assert main([*argv, "--json", str(verdict)]) == 2, argv
        out = capsys.readouterr().out
        assert out.startswith("jepa-pilot finetune: error: ") and message in out, out
        assert json.loads(verdict.read_text()) == {"accepted": False, "reason": f"not fine-tuned: {out[28:].strip()}"}
    assert not (tmp_path / "new").exists()


def test_bench_finetune_runs_the_trainers_child_in_both_modes_and_reads_its_verdict(base):
    from jepa_pilot.evaluation import finetune_bench
    from jepa_pilot.world_model.online import OnlineConfig

    out = finetune_bench.run(SHIPPED, base, ["rotation"], episodes=4, steps=50, seed=2,
                             cfg=OnlineConfig(finetune_steps=20), log=lambda line: None)
    row = out["scenarios"]["rotation"]
    assert row["change"] == {"action_rotation_deg": 90.0} and row["start_score"]["live"] > 0
    for mode, metric in (("predictor", "rollout MSE"), ("encoder", "rollout/copy-last MSE")):
        result = row["modes"][mode]
        assert result["metric"] == metric and result["reason"].startswith(("accepted", "rejected")), result
        assert 100 < result["peak_rss_mb"] < 4000 and result["steps_per_s"] > 0 and result["wall_s"] > 0
        assert ("score" in result) == result["accepted"]  # accepted bundles are scored on the same frames
        assert (result["candidate_rank"] is not None) == (mode == "encoder")
