"""The online learner (world_model/online.py): the accepted bundles kept and rolled back (unit), when a
fine-tune starts, and one real fine-tune in a child process on a live buffer, gated and exported (slow)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from jepa_pilot.common.paths import package_share
from jepa_pilot.data.dataset import Dataset, DatasetInfo, Episode
from jepa_pilot.data.replay import ReplayBuffer, ReplayConfig
from jepa_pilot.perception.bundle import load_bundle
from jepa_pilot.world_model.online import BundleHistory, OnlineConfig, OnlineLearner

BUNDLE = package_share() / "models" / "two_rooms"


def bundle_dir(root: Path, name: str) -> Path:
    (root / name).mkdir(parents=True)
    (root / name / "bundle.yaml").write_text(f"model_id: {name}\n")
    return root / name


@pytest.mark.unit
def test_history_keeps_the_last_bundles_rolls_back_and_survives_a_restart(tmp_path):
    root = tmp_path / "bundles"
    history = BundleHistory(root, "base", BUNDLE, keep=2)
    assert history.current["model_id"] == "base"
    for name in ("m1", "m2", "m3"):
        history.add(name, bundle_dir(root, name), "better")
    assert [e["model_id"] for e in history.entries] == ["m2", "m3"] and not (root / "m1").exists()
    (root / "0004-123.tmp-999").mkdir()  # an export cut short by a kill
    again = BundleHistory(root, "base", BUNDLE, keep=2)  # a restart
    assert not (root / "0004-123.tmp-999").exists()
    assert again.current["model_id"] == "m3"
    assert again.rollback()["model_id"] == "m2"
    assert (root / "m3.rolled-back").is_dir() and not (root / "m3").exists()
    assert BundleHistory(root, "base", BUNDLE, keep=2).current["model_id"] == "m2"
    assert again.rollback()["model_id"] == "base"
    assert again.rollback() is None  # the base bundle is never rolled back


def live_buffer(tmp_path: Path, steps: int, cfg: ReplayConfig | None = None) -> ReplayBuffer:
    info = DatasetInfo(robot="two_rooms", source="live", image_height=64, image_width=64)
    buffer = ReplayBuffer(tmp_path / "replay", info, cfg or ReplayConfig(shard_steps=50))
    rng = np.random.default_rng(0)
    for start in range(0, steps, 50):
        n = min(50, steps - start)
        buffer.add(Episode(images=rng.integers(0, 255, (n + 1, 64, 64, 3), dtype=np.uint8),
                           actions=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
                           timestamps=start * 0.1 + 0.1 * np.arange(n + 1)))
    return buffer


@pytest.mark.unit
def test_a_fine_tune_is_due_after_enough_new_steps_and_time_and_never_without_base_data(tmp_path):
    buffer = live_buffer(tmp_path, 100)
    history = BundleHistory(tmp_path / "bundles", "base", BUNDLE, keep=2)
    cfg = OnlineConfig(update_every=60.0, min_new_steps=150, drift_ratio=0.0)  # drift: the tests below
    learner = OnlineLearner(cfg, buffer, history, tmp_path / "base", tmp_path / "work")
    assert not learner.due(1000.0)  # the 100 steps were there before it started: none are new
    live_buffer(tmp_path, 200)  # 200 more steps in the same folder
    buffer = ReplayBuffer(tmp_path / "replay", buffer.info, ReplayConfig(shard_steps=50))
    learner.buffer = buffer
    assert learner.due(1000.0)
    learner.last_start = 990.0
    assert not learner.due(1000.0) and learner.due(1050.0)  # at most one per update_every
    blind = OnlineLearner(cfg, buffer, history, None, tmp_path / "work")
    blind.last_steps = 0
    assert not blind.due(1e9) and "no base dataset" in blind.last_reason


@pytest.mark.unit
def test_exploration_is_asked_once_per_change_of_the_world(tmp_path):
    buffer = live_buffer(tmp_path, 100)
    history = BundleHistory(tmp_path / "bundles", "base", BUNDLE, keep=2)
    learner = OnlineLearner(OnlineConfig(explore_seconds=300.0, confirm_after=1), buffer, history,
                            tmp_path / "base", tmp_path / "work")
    verdict = lambda changed: {"accepted": False, "reason": "test", "seconds": 1.0, "world_changed": changed}  # noqa: E731
    learner._finish(verdict(False), now=10.0)
    assert not learner.exploring(10.0)
    learner._finish(verdict(True), now=100.0)  # the world changed: explore for explore_seconds
    assert learner.exploring(100.0) and learner.exploring(399.0) and not learner.exploring(400.5)
    learner._finish(verdict(True), now=500.0)  # the same change, found again: no second round
    assert not learner.exploring(500.0)
    learner._finish({"accepted": False, "reason": "not fine-tuned: bad data", "seconds": 1.0}, now=600.0)  # no verdict
    learner._finish(verdict(True), now=700.0)
    assert not learner.exploring(700.0)
    # A model adapted to the change can sit near the drift threshold: a lone "unchanged" verdict
    # between "changed" ones is not a new change (the gain scenario flipped like this).
    learner._finish(verdict(False), now=800.0)
    learner._finish(verdict(True), now=850.0)
    assert not learner.exploring(850.0)
    for k in range(3):  # rearm_after (3) unchanged verdicts in a row: a new change is looked for again
        learner._finish(verdict(False), now=860.0 + k)
    learner._finish(verdict(True), now=900.0)  # a new change
    assert learner.exploring(900.0)
    # After a change, only data recorded since the start of the last fine-tune that found the world
    # unchanged is used; the mark moves (forward) only at a new change.
    marked = OnlineLearner(OnlineConfig(rearm_after=2, confirm_after=1), buffer, history, tmp_path / "base",
                           tmp_path / "work")
    for wall, changed, since in ((50.0, False, None), (110.0, False, None), (170.0, True, 110.0),
                                 (230.0, True, 110.0), (290.0, False, 110.0), (350.0, True, 110.0),
                                 (410.0, False, 110.0), (470.0, False, 110.0), (530.0, True, 470.0)):
        marked.job_wall = wall
        marked._finish(verdict(changed), now=wall + 20.0)
        assert marked.since == (since if since is not None else -float("inf")), (wall, marked.since)
    # By default a change counts after confirm_after (2) verdicts in a row: one odd verdict is not a change
    # (the harmless scenario had one, at 13x, among a dozen unchanged ones).
    wary = OnlineLearner(OnlineConfig(explore_seconds=300.0), buffer, history, tmp_path / "base", tmp_path / "work")
    for wall, changed, exploring in ((10.0, False, False), (70.0, True, False), (130.0, False, False),
                                     (190.0, True, False), (250.0, True, True)):
        wary.job_wall = wall
        wary._finish(verdict(changed), now=wall)
        assert wary.exploring(wall) is exploring, wall
    assert wary.since == 130.0
    off = OnlineLearner(OnlineConfig(), buffer, history, tmp_path / "base", tmp_path / "work")
    off._finish(verdict(True), now=100.0)
    assert not off.exploring(100.0)  # explore_seconds 0 (the default): never


@pytest.mark.unit
@pytest.mark.parametrize("encoder", [False, True])
def test_a_fine_tune_after_a_change_sees_only_the_shards_written_since_the_mark(tmp_path, encoder):
    from jepa_pilot.world_model.online import FinetuneJob

    buffer = live_buffer(tmp_path, 150)  # three shards
    walls = [e["wall"] for e in buffer._entries]
    history = BundleHistory(tmp_path / "bundles", "base", BUNDLE, keep=2)
    job = FinetuneJob(history.current, buffer, tmp_path / "base", tmp_path / "out", tmp_path / "job",
                      OnlineConfig(finetune_encoder=encoder), since=walls[1])
    try:
        linked = sorted(p.name for p in (tmp_path / "job" / "live" / "episodes").iterdir())
        assert linked == [p.name for p in buffer.paths()[1:]]
        assert len(json.loads((tmp_path / "job" / "weights.json").read_text())) == 2  # one weight per shard linked
        assert ("--encoder" if encoder else "--no-encoder") in job.proc.args  # finetune_encoder reaches the child
    finally:
        job.stop()


def fed_monitor(tmp_path: Path, ratio: float = 1.25, samples: int = 20):
    from jepa_pilot.world_model.online import SurpriseMonitor

    return SurpriseMonitor(ratio, samples, samples, "base", tmp_path / "work" / "surprise_reference.json")


def feed(monitor, wall: float, model: str, values, moving: bool = True) -> float:
    """One surprise per 0.1 s of wall time, each after a fresh command."""
    for value in values:
        monitor.on_command(wall, moving)
        monitor.add(wall + 0.05, model, value)
        wall += 0.1
    return wall


@pytest.mark.unit
def test_the_surprise_monitor_finds_drift_only_when_the_moving_robot_is_surprised(tmp_path):
    monitor = fed_monitor(tmp_path)
    rng = np.random.default_rng(0)
    calm = lambda n: 1.0 + 0.1 * rng.standard_normal(n)  # noqa: E731
    wall = feed(monitor, 0.0, "base", [0.01] * 50, moving=False)  # a held robot: nothing counts
    assert monitor.reference is None and not monitor.drifted() and "0 of 20" in monitor.describe()
    wall = feed(monitor, wall, "base", calm(20))
    assert monitor.reference == pytest.approx(1.0, abs=0.2) and monitor.drift() == pytest.approx(1.0)
    wall = feed(monitor, wall, "base", calm(20) * 1.1)  # the light changed a little: no reason to learn
    assert not monitor.drifted() and "no drift" in monitor.describe() and monitor.onset is None
    monitor.on_command(wall, True)
    monitor.add(wall + 2.0, "base", 50.0)  # the last command is stale: the robot may stand still
    assert monitor.drift() < 1.25
    changed_at = wall
    wall = feed(monitor, wall, "base", calm(20) * 2.0)  # the axes turned
    assert monitor.drifted() and monitor.drift() == pytest.approx(2.0, abs=0.3)
    # the oldest sample of the first window that drifted: at most one window (20 x 0.1 s) before the change
    assert changed_at - 2.0 <= monitor.onset <= changed_at
    onset = monitor.onset
    wall = feed(monitor, wall, "m1", calm(10) * 2.0)  # a new model is judged on its own samples only
    assert monitor.drift() is None and not monitor.drifted()
    wall = feed(monitor, wall, "m1", calm(10) * 2.0)
    assert monitor.drifted() and monitor.onset == onset  # the same drift, not a new onset
    feed(monitor, wall, "m1", calm(20))  # adapted
    assert not monitor.drifted()
    # A restarted trainer keeps the reference of its base model (a changed world is not the new normal).
    again = fed_monitor(tmp_path)
    assert again.reference == monitor.reference
    from jepa_pilot.world_model.online import SurpriseMonitor
    other = SurpriseMonitor(1.25, 20, 20, "another-base", tmp_path / "work" / "surprise_reference.json")
    assert other.reference is None
    always = fed_monitor(tmp_path / "always", ratio=0.0)
    assert always.drifted() and "whenever due" in always.describe()


@pytest.mark.unit
def test_a_drift_hovering_at_the_threshold_keeps_its_onset_until_it_falls_back_halfway(tmp_path):
    monitor = fed_monitor(tmp_path)
    wall = feed(monitor, 0.0, "base", [1.0] * 20)
    wall = feed(monitor, wall, "base", [1.3] * 20)
    first = monitor.onset
    assert monitor.drifted() and first is not None
    for level in (1.2, 1.3, 1.15, 1.3):  # crossing the 1.25 threshold, never below 1.125
        wall = feed(monitor, wall, "base", [level] * 20)
        assert monitor.drifted() is (level >= 1.25) and monitor.onset == first, level
    wall = feed(monitor, wall, "base", [1.1] * 20)  # back halfway: the next rise is a new change
    later = wall
    feed(monitor, wall, "base", [1.3] * 20)
    assert monitor.drifted() and later - 2.0 <= monitor.onset <= later


@pytest.mark.unit
def test_a_fine_tuned_encoder_is_judged_against_a_reference_of_its_own_latent_space(tmp_path):
    from jepa_pilot.world_model.online import SurpriseMonitor, encoder_space

    path = tmp_path / "work" / "surprise_reference.json"
    space = encoder_space(BUNDLE)
    assert len(space) == 64 and space == load_bundle(BUNDLE).spec.files["encoder"]["sha256"]
    assert encoder_space(tmp_path) == ""  # no bundle.yaml
    monitor = SurpriseMonitor(1.25, 20, 20, "base", path, space)
    wall = feed(monitor, 0.0, "base", [1.0] * 20)
    monitor.add_model("adapted-predictor", space)  # a predictor fine-tune: the base model's latent space
    wall = feed(monitor, wall, "adapted-predictor", [2.0] * 20)
    assert monitor.reference == 1.0 and monitor.drifted()
    monitor.add_model("adapted-encoder", "another-sha")  # distances in another latent space: not comparable
    wall = feed(monitor, wall, "adapted-encoder", [10.0] * 10)
    assert monitor.reference is None and monitor.drift() is None and "10 of 20" in monitor.describe()
    wall = feed(monitor, wall, "adapted-encoder", [10.0] * 10)
    assert monitor.reference == 10.0 and monitor.drift() == 1.0 and not monitor.drifted()
    wall = feed(monitor, wall, "adapted-encoder", [15.0] * 20)
    assert monitor.drifted()  # 1.5x its own space's reference
    wall = feed(monitor, wall, "base", [1.0] * 20)  # rolled back: the base space's reference again
    assert monitor.reference == 1.0 and not monitor.drifted()
    # Both references survive a restart; a model of an unnamed space counts as the base model's.
    again = SurpriseMonitor(1.25, 20, 20, "base", path, space)
    assert again.reference == 1.0 and set(again.references) == {space, "another-sha"}
    feed(again, wall, "dropped-in-by-hand", [1.1] * 20)
    assert again.reference == 1.0 and again.drift() == pytest.approx(1.1)


@pytest.mark.unit
def test_a_fine_tune_waits_for_drift_and_then_uses_only_the_data_since_it_began(tmp_path):
    buffer = live_buffer(tmp_path, 400)
    history = BundleHistory(tmp_path / "bundles", "base", BUNDLE, keep=2)
    learner = OnlineLearner(OnlineConfig(update_every=1.0, min_new_steps=50, reference_samples=20, drift_window=20),
                            buffer, history, tmp_path / "base", tmp_path / "work")
    learner.last_steps = 0
    assert not learner.due(100.0)  # no reference yet
    wall = feed(learner.monitor, time.time(), "base", [1.0] * 40)
    assert not learner.due(100.0) and learner.tick(100.0) is None and learner.job is None  # no drift
    feed(learner.monitor, wall, "base", [3.0] * 20)
    assert learner.due(100.0)
    learner.tick(100.0)  # the mark moves to the drift's onset, and the fine-tune starts on what came since
    try:
        assert learner.since == learner.monitor.onset and learner.job is not None
        status = learner.status()
        assert status["finetuning"] is True and status["finetunes"] == 1 and status["current_model"] == "base"
        assert status["drift"].startswith("surprise 3.00x the reference (fine-tuning")
        assert not list((tmp_path / "work" / "job" / "live" / "episodes").iterdir())  # every shard is older
    finally:
        learner.stop()
