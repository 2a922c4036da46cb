"""The online trainer's replay buffer and transition recorder (data/replay.py), on real files."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from jepa_pilot.common.config import ConfigError
from jepa_pilot.data.bag import resample
from jepa_pilot.data.dataset import Dataset, DatasetError, DatasetInfo, Episode
from jepa_pilot.data.replay import ReplayBuffer, ReplayConfig, TransitionRecorder, live_info

pytestmark = pytest.mark.unit

INFO = DatasetInfo(robot="two_rooms", source="live", image_height=8, image_width=6, control_period=0.1)


def action_at(t: float) -> np.ndarray:
    """The command the tests send at time ``t``: distinct for every step."""
    return (0.9 * np.array([np.sin(3 * t), np.cos(3 * t)])).astype(np.float32)


def frame(k: int, epoch: int = 0, size: tuple[int, int] = (8, 6)) -> np.ndarray:
    """A uniform frame that says which frame (k) and which clock epoch it is (a resize keeps the values)."""
    return np.full((*size, 3), (k % 250, epoch, 7), dtype=np.uint8)


def record(rec: TransitionRecorder, start: float, steps: int, epoch: int = 0, commands: bool = True,
           period: float = 0.1) -> None:
    """Frames every ``period`` from ``start``, each preceded by a command 20 ms before it."""
    for k in range(steps + 1):
        t = start + k * period
        if commands:
            rec.on_command(t - 0.02, action_at(t))
        rec.on_frame(t, frame(k, epoch))


def make(tmp_path, log=None, **config) -> tuple[ReplayBuffer, TransitionRecorder]:
    log = log if log is not None else []
    buffer = ReplayBuffer(tmp_path, INFO, ReplayConfig(**config), log=log.append)
    return buffer, TransitionRecorder(buffer, log=log.append)


def episode(steps: int = 5, seed: int = 0, start: float = 0.0) -> Episode:
    rng = np.random.default_rng(seed)  # random pixels: shards of (nearly) equal, incompressible size
    return Episode(images=rng.integers(0, 256, (steps + 1, 8, 6, 3), dtype=np.uint8),
                   actions=rng.uniform(-1, 1, (steps, 2)).astype(np.float32),
                   timestamps=start + np.arange(steps + 1) * 0.1)


def index(root) -> list[dict]:
    return json.loads((root / "replay.json").read_text())["shards"]


# --- the recorder ------------------------------------------------------------------------------
def test_recorded_buffer_is_a_dataset_with_the_commanded_actions(tmp_path):
    buffer, rec = make(tmp_path, shard_steps=10)
    for k in range(26):  # camera frames twice the dataset's size: resized on the way in
        t = k * 0.1
        rec.on_command(t - 0.02, action_at(t))
        rec.on_frame(t, frame(k, size=(16, 12)))
    rec.flush()
    data = Dataset(tmp_path)
    assert data.info == INFO and data.info.source == "live"
    assert len(data) == buffer.shards == 3 and buffer.steps == 25 == rec.counts["recorded"]
    episodes = list(data)
    assert [e.steps for e in episodes] == [10, 10, 5]
    for e in episodes:
        assert e.images.shape == (e.steps + 1, 8, 6, 3) and e.images.dtype == np.uint8
        np.testing.assert_allclose(np.diff(e.timestamps), 0.1, atol=1e-9)
        # step t: the last command before frame t+1 (sent 20 ms before it)
        np.testing.assert_array_equal(e.actions, np.stack([action_at(t) for t in e.timestamps[1:]]))
        np.testing.assert_array_equal(e.images[:, 0, 0, 0], np.rint(e.timestamps / 0.1).astype(int))
    for a, b in zip(episodes, episodes[1:]):  # a full shard's last frame begins the next: no step lost
        assert a.timestamps[-1] == b.timestamps[0]
    assert [e["file"] for e in index(tmp_path)] == ["000000.npz", "000001.npz", "000002.npz"]
    assert rec.counts["shards_written"] == 3 and rec.counts["no_command"] == 0


def test_the_recording_rate_counts_the_steps_of_the_last_minute_only(tmp_path):
    buffer, rec = make(tmp_path, shard_steps=10)
    assert rec.recorded_per_s(0.0) == 0.0  # one call: no span yet
    record(rec, 0.0, 25)  # 25 steps written (two shards) or held in memory
    rec.flush()
    assert rec.counts["recorded"] == 25 and rec.recorded_per_s(10.0) == 2.5  # 25 steps in 10 s
    assert rec.recorded_per_s(50.0) == 0.5  # nothing more: 25 in 50 s
    assert rec.recorded_per_s(65.0) == 0.0  # the first calls left the minute: 0 new steps since 10 s


def test_live_info_describes_the_bundle_it_records_for():
    from jepa_pilot.common.bundle import load_bundle
    from jepa_pilot.common.paths import package_share

    spec = load_bundle(package_share() / "models" / "two_rooms").spec
    info = live_info(spec, "trainer_node")
    assert info.source == "live" and info.robot == spec.robot and info.action_dim == spec.action_dim
    assert (info.image_height, info.image_width) == (spec.image_size, spec.image_size)
    assert info.control_period == spec.control_period and spec.model_id in info.notes


def test_frames_at_30hz_are_kept_on_the_10hz_grid_as_the_bag_importer_keeps_them(tmp_path):
    buffer, rec = make(tmp_path, shard_steps=1000)
    rng = np.random.default_rng(1)
    times = np.arange(91) / 30 + rng.uniform(-0.004, 0.004, 91)
    for k, t in enumerate(times):
        rec.on_command(t - 0.005, action_at(t))
        rec.on_frame(t, frame(k))
    rec.flush()
    (kept,) = resample(times, 0.1, 3.0)
    got = Dataset(tmp_path)[0]
    np.testing.assert_array_equal(got.timestamps, times[kept])
    assert got.steps == 30 and np.all(np.abs(np.diff(got.timestamps) - 0.1) < 0.02)
    assert rec.counts["frames"] == 91 and buffer.steps == 30


def test_frames_without_fresh_commands_are_not_transitions(tmp_path):
    buffer, rec = make(tmp_path, command_timeout=0.25)
    record(rec, 0.0, 10, commands=False)
    assert rec.counts["no_command"] == 10 and rec.counts["recorded"] == 0
    rec.flush()
    assert buffer.shards == 0 and not list((tmp_path / "episodes").glob("*.npz"))
    # commands for 1 s, none for 0.6 s (beyond the timeout: the robot stopped), then 1 s again
    for k in range(11, 48):
        t = k * 0.1
        if not 21 < k < 28:
            rec.on_command(t - 0.02, action_at(t))
        rec.on_frame(t, frame(k))
    rec.flush()
    episodes = list(Dataset(tmp_path))
    # the last command (2.08 s) holds for steps ending within the timeout (2.2, 2.3 s); 2.4 to 2.7 have none
    assert [(round(e.timestamps[0], 3), round(e.timestamps[-1], 3)) for e in episodes] == [(1.0, 2.3), (2.7, 4.7)]
    for e in episodes:  # every recorded action is the last command sent before its step's end
        np.testing.assert_array_equal(e.actions, np.stack([action_at(min(t, 2.1) if t < 2.5 else t)
                                                           for t in e.timestamps[1:]]))
    assert rec.counts["no_command"] == 10 + 4 and rec.counts["recorded"] == 13 + 20


def test_a_clock_jump_back_splits_shards_and_nothing_pairs_across_it(tmp_path):
    buffer, rec = make(tmp_path)
    record(rec, 10.0, 15, epoch=0)
    record(rec, 0.5, 15, epoch=1)  # a sim reset: frames and commands start again at 0.5 s
    # a small reset on which the commands jump first: frames still in flight from before must not pair
    rec.on_command(1.6, action_at(1.6))
    rec.on_command(1.65, action_at(1.65))
    rec.on_frame(2.05, frame(99, epoch=1))  # stamped before the reset, arrives after
    rec.on_frame(2.15, frame(99, epoch=1))
    record(rec, 1.72, 15, epoch=2)
    rec.flush()
    episodes = list(Dataset(tmp_path))
    epochs = [set(e.images[:, 0, 0, 1].tolist()) for e in episodes]
    assert epochs == [{0}, {1}, {2}]  # no shard holds frames of two clocks
    assert not any((e.images[:, 0, 0, 0] == 99).any() for e in episodes)  # nor the frames in flight
    assert [e.steps for e in episodes] == [15, 15, 15]
    assert rec.counts["clock_jump"] == 2 and rec.counts["stale"] == 2  # one per reset, whichever stream shows it
    assert all(np.all(np.diff(e.timestamps) > 0) for e in episodes) and buffer.steps == 45


def test_an_e_stop_hold_ends_the_shard_and_nothing_is_recorded_until_released(tmp_path):
    buffer, rec = make(tmp_path)
    record(rec, 0.0, 10, epoch=0)
    rec.on_hold(True)  # the robot is held, then reset to elsewhere (a teleport: the clock goes on)
    record(rec, 1.1, 3, epoch=1)
    rec.on_hold(False)
    record(rec, 1.5, 10, epoch=2)
    rec.flush()
    episodes = list(Dataset(tmp_path))
    assert [set(e.images[:, 0, 0, 1].tolist()) for e in episodes] == [{0}, {2}]  # nothing from the hold
    assert [e.steps for e in episodes] == [10, 10]
    assert rec.counts["holds"] == 1 and rec.counts["held"] == 4


def test_a_camera_gap_ends_the_shard(tmp_path):
    buffer, rec = make(tmp_path)
    record(rec, 0.0, 10)
    for t in (1.1, 1.2, 1.3, 1.4):  # commands without frames for 0.5 s: more than max_gap (3) periods
        rec.on_command(t, action_at(t))
    record(rec, 1.5, 10)
    rec.flush()
    episodes = list(Dataset(tmp_path))
    assert [e.steps for e in episodes] == [10, 10] and rec.counts["gap"] == 1
    assert episodes[0].timestamps[-1] == pytest.approx(1.0) and episodes[1].timestamps[0] == pytest.approx(1.5)
    assert max(np.diff(e.timestamps).max() for e in episodes) < 0.15


def test_surprise_is_kept_with_the_step_that_ends_at_its_frame(tmp_path):
    buffer, rec = make(tmp_path, shard_steps=100)
    for k in range(6):
        t = k * 0.1
        rec.on_command(t - 0.02, action_at(t))
        rec.on_frame(t, frame(k))
        if k >= 2:  # the predictor's answer arrives after the next frame
            rec.on_surprise((k - 1) * 0.1, float(k - 1))
    rec.on_surprise(0.3 + 0.05, 9.0)  # between frames: beyond the tolerance, ignored
    rec.flush()
    assert index(tmp_path)[0]["surprise"] == [1.0, 2.0, 3.0, 4.0, None]
    assert rec.counts["surprise"] == 4


# --- the buffer --------------------------------------------------------------------------------
def test_size_limit_deletes_the_oldest_shards_first(tmp_path):
    log: list[str] = []
    size = ReplayBuffer(tmp_path / "probe", INFO).add(episode()).stat().st_size
    buffer = ReplayBuffer(tmp_path / "b", INFO, ReplayConfig(max_mb=3.5 * size / 2**20), log=log.append)
    for i in range(8):
        buffer.add(episode(seed=i))
        assert buffer.total_bytes <= buffer.config.max_bytes
        assert buffer.total_bytes == sum(p.stat().st_size for p in (tmp_path / "b" / "episodes").glob("*.npz"))
    names = [p.name for p in buffer.paths()]
    assert names == ["000005.npz", "000006.npz", "000007.npz"]
    assert sorted(p.name for p in (tmp_path / "b" / "episodes").glob("*.npz")) == names
    assert len(Dataset(tmp_path / "b")) == 3 and "deleted the oldest shard(s) 000000.npz" in log[0]
    tiny = ReplayBuffer(tmp_path / "b", INFO, ReplayConfig(max_mb=1e-4), log=log.append)  # below one shard
    assert tiny.shards == 0 and "below one shard" in log[-1]
    tiny = ReplayBuffer(tmp_path / "b", INFO, log=log.append)  # an empty folder still numbers on
    assert tiny.add(episode()).name == "000008.npz"


def test_reopen_after_a_crash_recovers_and_numbers_on(tmp_path):
    log: list[str] = []
    buffer = ReplayBuffer(tmp_path, INFO, log=log.append)
    for i in range(3):
        buffer.add(episode(seed=i), surprise=[0.5] * 5)
    shards = tmp_path / "episodes"
    # a crash after writing shard 3, before the index; one mid-write; a damaged shard; a shard deleted
    # before the index was rewritten
    np.savez_compressed(shards / "000003.npz", images=episode(4).images, actions=episode(4).actions,
                        timestamps=episode(4).timestamps)
    (shards / "000004.npz.tmp").write_bytes(b"half a shard")
    (shards / "000005.npz").write_bytes((shards / "000001.npz").read_bytes()[:200])
    (shards / "000000.npz").unlink()
    reopened = ReplayBuffer(tmp_path, INFO.replace(notes="restarted"), log=log.append)
    assert [p.name for p in reopened.paths()] == ["000001.npz", "000002.npz", "000003.npz"]
    assert not (shards / "000004.npz.tmp").exists() and not (shards / "000005.npz").exists()
    assert [e["surprise"] for e in index(tmp_path)] == [[0.5] * 5, [0.5] * 5, [None] * 4]
    assert any("000005.npz: unreadable shard" in line for line in log)
    assert any("recovered 000003.npz" in line for line in log) and any("gone from disk" in line for line in log)
    assert reopened.add(episode(seed=9)).name == "000004.npz"
    assert len(Dataset(tmp_path)) == 4 == reopened.shards


def test_a_kill_mid_shard_loses_only_that_shard(tmp_path):
    buffer, rec = make(tmp_path, shard_steps=10)
    record(rec, 0.0, 25)
    del rec, buffer  # killed: no flush
    buffer, rec = make(tmp_path, shard_steps=10)
    assert buffer.shards == 2 and buffer.steps == 20
    record(rec, 100.0, 10)
    assert [p.name for p in buffer.paths()] == ["000000.npz", "000001.npz", "000002.npz"]
    assert len(Dataset(tmp_path)) == 3


def test_weights_favour_recent_and_surprising_shards(tmp_path):
    buffer = ReplayBuffer(tmp_path, INFO, ReplayConfig(half_life=3600.0, surprise_weight=1.0))
    buffer.add(episode(seed=0), surprise=[1.0] * 5)
    buffer.add(episode(seed=1), surprise=[3.0, 3.0, None, 3.0, 3.0])
    now = time.time()
    np.testing.assert_allclose(buffer.weights(now), [1.5, 2.5], rtol=1e-3)  # 1 + mean / median (2)
    drawn = buffer.sample_episodes(2000, np.random.default_rng(0), now)
    assert 0.58 < sum(p.name == "000001.npz" for p in drawn) / 2000 < 0.67  # 2.5 / 4
    # recency: an index lost, the shards recovered with their file times as the time written
    (tmp_path / "replay.json").write_text("{not json")
    os.utime(tmp_path / "episodes" / "000000.npz", (now - 3600, now - 3600))
    os.utime(tmp_path / "episodes" / "000001.npz", (now, now))
    log: list[str] = []
    reopened = ReplayBuffer(tmp_path, INFO, ReplayConfig(half_life=3600.0), log=log.append)
    assert "unreadable index" in log[0]
    np.testing.assert_allclose(reopened.weights(now + 60), [0.5, 1.0], rtol=1e-3)  # one half-life older
    reopened.add(episode(steps=10, seed=2))  # a step weighs the same in a longer shard; the shard is drawn more
    np.testing.assert_allclose(reopened.weights(time.time()), [0.5, 1.0, 1.0], rtol=1e-3)
    drawn = reopened.sample_episodes(2000, np.random.default_rng(1), time.time())
    assert 0.52 < sum(p.name == "000002.npz" for p in drawn) / 2000 < 0.62  # 10 / (2.5 + 5 + 10)
    assert [p.name for p in reopened.paths()] == [p.name for p in Dataset(tmp_path).paths]
    # since: only the shards written from then on, weighed among themselves
    assert [p.name for p in reopened.paths(since=now - 1.0)] == ["000001.npz", "000002.npz"]
    np.testing.assert_allclose(reopened.weights(time.time(), since=now - 1.0), [1.0, 1.0], rtol=1e-3)
    assert reopened.paths(since=time.time() + 10) == [] and len(reopened.weights(0.0, since=time.time() + 10)) == 0


# --- bad inputs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("call, kind, message", [
    (lambda r: r.on_frame(0.1, np.zeros((8, 6), np.uint8)), "bad_frame", "(H, W, 3) uint8 RGB array, got uint8 (8, 6)"),
    (lambda r: r.on_frame(0.1, np.zeros((8, 6, 3), np.float32)), "bad_frame", "got float32"),
    (lambda r: r.on_frame(0.1, [[0, 0, 0]]), "bad_frame", "got list"),
    (lambda r: r.on_frame(float("nan"), frame(1)), "bad_frame", "stamp nan is not a finite number"),
    (lambda r: r.on_command("0.1", [0, 0]), "bad_command", "stamp '0.1' is not a finite number"),
    (lambda r: r.on_command(0.1, [0.0, float("nan")]), "bad_command", "not finite and normalised"),
    (lambda r: r.on_command(0.1, [0.0, 1.5]), "bad_command", "not finite and normalised"),
    (lambda r: r.on_command(0.1, [0.0, 0.5, 0.1]), "bad_command", "action must have shape (2,), got (3,)"),
    (lambda r: r.on_surprise(0.1, float("inf")), "bad_surprise", "surprise inf is not a finite number"),
    (lambda r: r.on_surprise(0.1, -1.0), "bad_surprise", "negative"),
])
def test_bad_inputs_are_dropped_and_counted_without_harm(tmp_path, call, kind, message):
    log: list[str] = []
    buffer, rec = make(tmp_path, log=log)
    record(rec, 0.0, 5)
    call(rec)
    record(rec, 0.6, 5)  # ... and recording goes on as if it had not come
    rec.flush()
    assert rec.counts[kind] == 1 and message in log[-1]
    assert [e.steps for e in Dataset(tmp_path)] == [11] and buffer.steps == 11


def test_the_buffer_refuses_other_data_and_bad_settings(tmp_path):
    ReplayBuffer(tmp_path, INFO).add(episode())
    with pytest.raises(DatasetError, match="holds a different kind of data"):
        ReplayBuffer(tmp_path, INFO.replace(image_width=7))
    with pytest.raises(DatasetError, match="holds live data; info.source is 'sim'"):
        ReplayBuffer(tmp_path / "other", INFO.replace(source="sim"))
    with pytest.raises(ConfigError, match="min_steps = 20: at most shard_steps"):
        ReplayConfig(shard_steps=10, min_steps=20)
    buffer = ReplayBuffer(tmp_path, INFO)
    with pytest.raises(DatasetError, match="finite and normalised"):
        buffer.add(Episode(images=episode().images, actions=np.full((5, 2), 2.0, np.float32),
                           timestamps=episode().timestamps))
    assert buffer.shards == 1 and sorted(os.listdir(tmp_path / "episodes")) == ["000000.npz"]
