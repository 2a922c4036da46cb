"""Data room: the dataset format, the exploration policy, sim collection, rosbag2 (MCAP) import."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from jepa_pilot.control.exploration import WaypointConfig, WaypointExplorer, proportional_steer
from jepa_pilot.data.bag import BagError, BagImportConfig, actions_for, import_bag, resample
from jepa_pilot.common.config import ConfigError
from jepa_pilot.data.dataset import Dataset, DatasetError, DatasetInfo, DatasetWriter, Episode

INFO = DatasetInfo(robot="two_rooms", image_height=8, image_width=6, state_names=("x", "y"))


def make_episode(steps: int = 5, seed: int = 0, **changes) -> Episode:
    rng = np.random.default_rng(seed)
    arrays = dict(images=rng.integers(0, 256, (steps + 1, 8, 6, 3), dtype=np.uint8),
                  actions=rng.uniform(-1, 1, (steps, 2)).astype(np.float32),
                  timestamps=np.arange(steps + 1) * 0.1, states=rng.normal(size=(steps + 1, 2)))
    arrays.update(changes)
    return Episode(**arrays)


# --- the dataset format ---------------------------------------------------------------
@pytest.mark.unit
def test_dataset_round_trip_and_append(tmp_path):
    writer = DatasetWriter(tmp_path, INFO)
    written = [make_episode(5, 0), make_episode(3, 1)]
    for episode in written:
        writer.add(episode)
    data = Dataset(tmp_path)
    assert data.info == INFO and len(data) == 2
    for got, want in zip(data, written):
        np.testing.assert_array_equal(got.images, want.images)
        np.testing.assert_array_equal(got.actions, want.actions)
        np.testing.assert_array_equal(got.timestamps, want.timestamps)
        np.testing.assert_array_equal(got.states, want.states)
    meta = yaml.safe_load((tmp_path / "dataset.yaml").read_text())
    assert meta["format"] == "jepa_pilot.dataset/1" and meta["episodes"] == 2
    DatasetWriter(tmp_path, INFO.replace(notes="more")).add(make_episode(4, 2))  # compatible: appended
    assert len(Dataset(tmp_path)) == 3 and Dataset(tmp_path)[2].steps == 4


@pytest.mark.unit
@pytest.mark.parametrize("changes, message", [
    (dict(images=np.zeros((6, 8, 7, 3), np.uint8)), "images must be uint8 (6, 8, 6, 3)"),
    (dict(images=np.zeros((6, 8, 6, 3), np.float32)), "images must be uint8"),
    (dict(actions=np.full((5, 2), np.nan, np.float32)), "finite and normalised"),
    (dict(actions=np.full((5, 2), 1.5, np.float32)), "finite and normalised"),
    (dict(actions=np.zeros((5, 3), np.float32)), "actions have 3 dimensions, the dataset 2"),
    (dict(timestamps=np.array([0, 0.1, 0.3, 0.2, 0.4, 0.5])), "strictly increasing"),
    (dict(timestamps=np.arange(5) * 0.1), "timestamps must be (6,)"),
    (dict(states=None), "states must be (6, 2), got None"),
])
def test_dataset_rejects_malformed_episodes(tmp_path, changes, message):
    writer = DatasetWriter(tmp_path, INFO)
    with pytest.raises(DatasetError) as err:
        writer.add(make_episode(**changes))
    assert message in str(err.value)
    assert writer.count == 0 and not list((tmp_path / "episodes").glob("*.npz"))


@pytest.mark.unit
def test_dataset_reader_validates_what_it_loads(tmp_path):
    with pytest.raises(DatasetError, match="no dataset.yaml"):
        Dataset(tmp_path / "nothing")
    writer = DatasetWriter(tmp_path, INFO)
    with pytest.raises(DatasetError, match="no episodes"):
        Dataset(tmp_path)
    writer.add(make_episode())
    # An episode file broken behind the writer's back is caught on load, naming the file.
    bad = make_episode()
    np.savez_compressed(tmp_path / "episodes" / "000001.npz", images=bad.images,
                        actions=np.full((5, 2), np.nan, np.float32), timestamps=bad.timestamps, states=bad.states)
    (tmp_path / "episodes" / "000002.npz").write_bytes(b"not a zip")
    data = Dataset(tmp_path)
    data[0]
    with pytest.raises(DatasetError, match=r"000001.npz: actions must be finite"):
        data[1]
    with pytest.raises(DatasetError, match=r"000002.npz: unreadable episode"):
        data[2]
    meta = tmp_path / "dataset.yaml"
    meta.write_text(meta.read_text().replace("jepa_pilot.dataset/1", "other/2"))
    with pytest.raises(DatasetError, match="format is not 'jepa_pilot.dataset/1'"):
        Dataset(tmp_path)


@pytest.mark.unit
def test_writer_refuses_to_mix_kinds_of_data(tmp_path):
    DatasetWriter(tmp_path, INFO).add(make_episode())
    with pytest.raises(DatasetError, match="holds a different kind of data"):
        DatasetWriter(tmp_path, INFO.replace(action_names=("v", "omega")))
    with pytest.raises(DatasetError, match="holds a different kind of data"):
        DatasetWriter(tmp_path, INFO.replace(image_width=64))


@pytest.mark.unit
def test_the_state_units_say_which_dimensions_one_frame_shows(tmp_path):
    """The probe scores positions and angles, named by unit, not guessed from the names (a "v..."
    position, like PointMaze's, is still a position)."""
    info = INFO.replace(state_names=("valve", "x", "vx", "yaw", "omega"), state_units=("rad", "m", "m/s", "rad", "rad/s"))
    assert info.position_dims == [0, 1, 3]
    assert INFO.position_dims == [0, 1]  # no units recorded: every dimension
    with pytest.raises(ConfigError, match=r"state_units.*one unit per state name \(2: x, y\)"):
        INFO.replace(state_units=("m",))
    DatasetWriter(tmp_path, info)
    assert yaml.safe_load((tmp_path / "dataset.yaml").read_text())["state_units"] == \
        ["rad", "m", "m/s", "rad", "rad/s"]


# --- the exploration policy (pure) ------------------------------------------------------
def drive_point(explorer: WaypointExplorer, start, steps: int, speed: float = 0.5, dt: float = 0.1) -> np.ndarray:
    """A holonomic point robot that does exactly what it is told: path (steps + 1, 2)."""
    path = [np.asarray(start, dtype=np.float64)]
    for _ in range(steps):
        path.append(path[-1] + explorer(path[-1]) * speed * dt)
    return np.array(path)


@pytest.mark.unit
def test_waypoint_explorer_reaches_its_waypoints_and_is_seeded():
    goal = np.array([0.6, -0.4])
    config = WaypointConfig(seek_prob=1.0, seek_noise=0.0, speed_min=1.0)
    explorer = WaypointExplorer(2, lambda s, rng: [goal], proportional_steer([0.5, 0.5]), lambda s: s[:2],
                                config, np.random.default_rng(0))
    path = drive_point(explorer, [-0.5, 0.5], 40)
    reached = int(np.argmax(np.linalg.norm(path - goal, axis=1) <= config.tolerance))
    assert 0 < reached < 35 and explorer.seeking is False  # then it random-walks on
    mixed = WaypointConfig(seek_prob=0.5)
    def run(seed: int) -> np.ndarray:
        route = lambda s, rng: [rng.uniform(-1, 1, 2)]  # noqa: E731
        explorer = WaypointExplorer(2, route, proportional_steer([0.5, 0.5]), lambda s: s[:2], mixed,
                                    np.random.default_rng(seed))
        return drive_point(explorer, [0.0, 0.0], 300)
    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))
    actions = np.diff(run(1), axis=0) / 0.05
    assert np.abs(actions).max() <= 1.0 + 1e-9 and actions.std(axis=0).min() > 0.2


# --- resampling and action alignment (pure) ----------------------------------------------
@pytest.mark.unit
def test_resample_downsamples_bridges_short_gaps_and_splits_at_long_ones():
    rng = np.random.default_rng(0)
    camera = np.arange(90) / 30 + rng.uniform(-0.003, 0.003, 90)  # 30 Hz with jitter, 3 s
    kept = resample(camera, period=0.1, max_gap=3)
    assert len(kept) == 1
    np.testing.assert_allclose(np.diff(camera[kept[0]]), 0.1, atol=0.01)
    times = np.concatenate([np.arange(10) * 0.1, [1.1, 1.2], np.arange(20, 30) * 0.1])  # 1.0 lost, then 0.8 s gap
    first, second = resample(times, period=0.1, max_gap=3)
    np.testing.assert_allclose(times[first], [*np.arange(10) * 0.1, 1.1, 1.2])
    np.testing.assert_allclose(times[second], np.arange(20, 30) * 0.1)


@pytest.mark.unit
def test_actions_are_the_last_command_before_the_next_frame_or_zero_after_the_timeout():
    frames = np.array([0.0, 0.1, 0.2, 0.3, 1.5])
    command_times = np.array([0.05, 0.1, 0.19])
    commands = np.array([[0.1, 0.0], [0.2, 0.0], [0.3, 0.0]], np.float32)
    actions, zeros = actions_for(frames, command_times, commands, timeout=0.5)
    # frame 1 at 0.1: the command at exactly 0.1 is not before it.
    np.testing.assert_allclose(actions[:, 0], [0.1, 0.3, 0.3, 0.0])
    assert zeros == 1
    assert actions_for(frames, np.zeros(0), np.zeros((0, 2), np.float32), 0.5)[1] == 4


def run_cli(command: str, argv: list[str]) -> int:
    """Run one `jepa-pilot` subcommand module (``jepa_pilot.cli.<command>``) as the CLI does."""
    import argparse
    import importlib

    parser = argparse.ArgumentParser(prog="jepa-pilot")
    importlib.import_module(f"jepa_pilot.cli.{command}").register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


# --- rosbag2 (MCAP) import -------------------------------------------------------------
T0 = 1_700_000_000  # s, stamp of frame 0
MISSING = set(range(25, 35))  # frames not recorded: a 1.1 s gap
TRUNCATED = 5
NAN_COMMAND = 12
FAST_COMMAND = 15  # linear.x = 0.8 m/s, beyond the two_rooms profile's 0.5
LAST_COMMAND = 49  # none after: the last frames get zero actions


def frame_rgb(k: int) -> np.ndarray:
    """The known content of frame k: (4, 6, 3) RGB, different per channel, row and frame."""
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 0] = 3 * k
    image[..., 1] = np.arange(4)[:, None] * 40 + 10
    image[..., 2] = 250 - k
    return image


def command_for(k: int) -> tuple[float, float]:
    """(linear.x, linear.y) sent 50 ms after frame k."""
    if k == NAN_COMMAND:
        return math.nan, 0.1
    return (0.8 if k == FAST_COMMAND else 0.01 * (k % 40) - 0.2), -0.005 * (k % 30)


def write_bag(path: Path) -> Path:
    """A rosbag2 MCAP bag as `ros2 bag record -s mcap` writes it: 60 frames at 10 Hz and /cmd_vel."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    t = store.types
    Image, Header, Time = t["sensor_msgs/msg/Image"], t["std_msgs/msg/Header"], t["builtin_interfaces/msg/Time"]
    TwistStamped, Twist, Vector3 = (t["geometry_msgs/msg/TwistStamped"], t["geometry_msgs/msg/Twist"],
                                    t["geometry_msgs/msg/Vector3"])

    def header(seconds: float, frame: str) -> object:
        ns = round(seconds * 1e9)
        return Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id=frame)

    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as bag:
        camera = bag.add_connection("/camera/image_raw", Image.__msgtype__, typestore=store)
        cmd_vel = bag.add_connection("/cmd_vel", TwistStamped.__msgtype__, typestore=store)
        for k in range(60):
            stamp = T0 + 0.1 * k
            if k not in MISSING:
                rgb = frame_rgb(k)
                encoding, pixels = ("bgr8", rgb[..., ::-1]) if k % 2 else ("rgb8", rgb)
                data = np.ascontiguousarray(pixels).reshape(-1)
                if k == TRUNCATED:
                    data = data[:-10]
                msg = Image(header=header(stamp, "camera"), height=4, width=6, encoding=encoding,
                            is_bigendian=0, step=18, data=data)
                bag.write(camera, round((stamp + 0.01) * 1e9), store.serialize_cdr(msg, Image.__msgtype__))
            if k <= LAST_COMMAND:
                vx, vy = command_for(k)
                msg = TwistStamped(header=header(stamp + 0.05, "base_link"),
                                   twist=Twist(linear=Vector3(x=vx, y=vy, z=0.0), angular=Vector3(x=0.0, y=0.0, z=0.0)))
                bag.write(cmd_vel, round((stamp + 0.052) * 1e9), store.serialize_cdr(msg, TwistStamped.__msgtype__))
    return path


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    return write_bag(tmp_path_factory.mktemp("bags") / "run1")


def expected_action(k_next: int) -> np.ndarray:
    """The normalised action of the step ending at frame ``k_next``: the last good command before it."""
    k = k_next - 1
    while k == NAN_COMMAND:
        k -= 1
    if k > LAST_COMMAND and (k_next - LAST_COMMAND) * 0.1 - 0.05 > 0.5:
        return np.zeros(2)
    vx, vy = command_for(min(k, LAST_COMMAND))
    return np.clip(np.array([vx, vy]) / 0.5, -1, 1)


@pytest.mark.unit
def test_bag_is_a_rosbag2_mcap_that_the_ros2_decoder_reads(bag):
    """The test bag is real: ros2msg schemas with full definitions, CDR messages, metadata.yaml."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap" and meta["message_count"] == 50 + 50
    (mcap_file,) = bag.glob("*.mcap")
    with open(mcap_file, "rb") as f:
        decoded = list(make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages())
    schemas = {d.schema.name: (d.schema.encoding, d.schema.data.decode()) for d in decoded}
    assert schemas["sensor_msgs/msg/Image"][0] == "ros2msg"
    assert "builtin_interfaces/Time stamp" in schemas["sensor_msgs/msg/Image"][1]
    first = next(d.decoded_message for d in decoded if d.channel.topic == "/camera/image_raw")
    assert (first.encoding, first.header.stamp.sec) == ("rgb8", T0)


@pytest.mark.unit
def test_import_bag_converts_frames_commands_and_timing(bag, tmp_path):
    lines: list[str] = []
    report = import_bag(bag, tmp_path / "data", BagImportConfig(robot="two_rooms", min_steps=10),
                        progress=False, log=lines.append)
    assert report.clock == "header stamps" and report.period == pytest.approx(0.1)
    assert report.frames_read == 50 and dict(report.frames_bad) == {"truncated data": 1}
    assert report.commands_read == 50 and dict(report.commands_bad) == {"non-finite value in linear.x": 1}
    assert report.commands_clipped == 1
    assert report.episodes == 2 and report.frames_kept == 49 and report.steps == 47
    assert report.steps_stretched == 1  # across the truncated frame
    assert any("truncated data (62 of 72 bytes)" in line for line in lines)

    data = Dataset(tmp_path / "data")
    info = data.info
    assert (info.source, info.action_names, info.action_scale) == ("bag", ("linear.x", "linear.y"), (0.5, 0.5))
    assert (info.image_width, info.image_height, info.control_period) == (6, 4, pytest.approx(0.1))
    episodes = list(data)
    frames = [[k for k in range(25) if k != TRUNCATED], list(range(35, 60))]
    for episode, ks in zip(episodes, frames):
        np.testing.assert_allclose(episode.timestamps, T0 + 0.1 * np.array(ks), rtol=0, atol=1e-6)
        for image, k in zip(episode.images, ks):  # rgb8 and bgr8 frames alike come out RGB
            np.testing.assert_array_equal(image, frame_rgb(k))
        want = np.array([expected_action(k) for k in ks[1:]])
        np.testing.assert_allclose(episode.actions, want, atol=1e-6)
    assert episodes[0].actions[frames[0].index(FAST_COMMAND + 1) - 1, 0] == 1.0  # 0.8 m/s clipped to 0.5
    zero_steps = int((np.abs(episodes[1].actions).sum(axis=1) == 0).sum())
    assert report.actions_zero == zero_steps == 5  # frames 55..59: the last command (49) is > 0.5 s old


@pytest.mark.unit
def test_import_bag_reads_a_single_mcap_file_resizes_and_appends(bag, tmp_path):
    (mcap_file,) = bag.glob("*.mcap")
    config = BagImportConfig(image_size=(12, 8), period=0.2, min_steps=5)
    first = import_bag(mcap_file, tmp_path, config, progress=False, log=lambda _: None)
    again = import_bag(bag, tmp_path, config, progress=False, log=lambda _: None)  # same layout: appended
    assert first.episodes == again.episodes == 2
    data = Dataset(tmp_path)
    assert len(data) == 4 and data[0].images.shape[1:] == (8, 12, 3)
    np.testing.assert_allclose(np.diff(data[0].timestamps), 0.2, atol=1e-6)
    with pytest.raises(DatasetError, match="different kind of data"):
        import_bag(bag, tmp_path, BagImportConfig(min_steps=5), progress=False, log=lambda _: None)


@pytest.mark.unit
def test_import_bag_decodes_compressed_frames_and_unstamped_twists_on_log_time(tmp_path):
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    t = store.types
    Compressed, Twist, Vector3 = (t["sensor_msgs/msg/CompressedImage"], t["geometry_msgs/msg/Twist"],
                                  t["geometry_msgs/msg/Vector3"])
    Header, Time = t["std_msgs/msg/Header"], t["builtin_interfaces/msg/Time"]
    with Writer(tmp_path / "bag", version=9, storage_plugin=StoragePlugin.MCAP) as bag:
        camera = bag.add_connection("/camera/image_raw/compressed", Compressed.__msgtype__, typestore=store)
        cmd_vel = bag.add_connection("/cmd_vel", Twist.__msgtype__, typestore=store)
        for k in range(15):
            log_ns = 5 * 10**9 + k * 10**8
            png = cv2.imencode(".png", np.ascontiguousarray(frame_rgb(k)[..., ::-1]))[1].reshape(-1)
            data = np.frombuffer(b"garbage", np.uint8) if k == 7 else png  # frame 7 does not decode
            msg = Compressed(header=Header(stamp=Time(sec=0, nanosec=0), frame_id=""), format="png", data=data)
            bag.write(camera, log_ns, store.serialize_cdr(msg, Compressed.__msgtype__))
            twist = Twist(linear=Vector3(x=0.05 * k - 0.3, y=0.0, z=0.0), angular=Vector3(x=0.0, y=0.0, z=0.0))
            bag.write(cmd_vel, log_ns + 3 * 10**7, store.serialize_cdr(twist, Twist.__msgtype__))
    lines: list[str] = []
    config = BagImportConfig(image_topic="/camera/image_raw/compressed", min_steps=5)
    report = import_bag(tmp_path / "bag", tmp_path / "data", config, progress=False, log=lines.append)
    assert report.clock == "log (receive) times" and dict(report.frames_bad) == {"undecodable png data": 1}
    assert report.episodes == 2 and report.steps == 12  # split where frame 7 failed
    assert any("frame #7: undecodable png data" in line for line in lines)
    second = Dataset(tmp_path / "data")[1]
    for image, k in zip(second.images, range(8, 15)):
        np.testing.assert_array_equal(image, frame_rgb(k))
    np.testing.assert_allclose(second.actions[:, 0], [(0.05 * k - 0.3) / 0.5 for k in range(8, 14)], atol=1e-6)
    np.testing.assert_allclose(second.timestamps, 5 + 0.1 * np.arange(8, 15), atol=1e-9)


@pytest.mark.unit
def test_import_bag_for_an_arm_takes_joint_velocity_arrays(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    t = store.types
    Image, Header, Time = t["sensor_msgs/msg/Image"], t["std_msgs/msg/Header"], t["builtin_interfaces/msg/Time"]
    Array, Layout = t["std_msgs/msg/Float64MultiArray"], t["std_msgs/msg/MultiArrayLayout"]
    with Writer(tmp_path / "bag", version=9, storage_plugin=StoragePlugin.MCAP) as bag:
        camera = bag.add_connection("/camera/image_raw", Image.__msgtype__, typestore=store)
        arm = bag.add_connection("/arm_controller/commands", Array.__msgtype__, typestore=store)
        for k in range(12):
            log_ns = 10**9 + k * 10**8
            msg = Image(header=Header(stamp=Time(sec=1, nanosec=k * 10**8), frame_id="camera"), height=4, width=6,
                        encoding="rgb8", is_bigendian=0, step=18, data=frame_rgb(k).reshape(-1))
            bag.write(camera, log_ns, store.serialize_cdr(msg, Image.__msgtype__))
            values = [0.1 * k, -3.0] if k != 4 else [0.1, 0.2, 0.3]  # -3 rad/s is beyond 2; 3 values are wrong
            command = Array(layout=Layout(dim=[], data_offset=0), data=np.array(values))
            bag.write(arm, log_ns + 2 * 10**7, store.serialize_cdr(command, Array.__msgtype__))
    config = BagImportConfig(robot="reacher", command_topic="/arm_controller/commands", min_steps=5)
    report = import_bag(tmp_path / "bag", tmp_path / "data", config, progress=False, log=lambda _: None)
    assert report.clock == "log (receive) times"  # Float64MultiArray has no header
    assert dict(report.commands_bad) == {"3 joint values, expected 2": 1} and report.commands_clipped == 11
    episode = Dataset(tmp_path / "data")[0]
    assert Dataset(tmp_path / "data").info.action_names == ("shoulder", "elbow")
    shoulder = [0.1 * (3 if k == 4 else k) / 2.0 for k in range(11)]  # command 4 was dropped: 3 holds
    np.testing.assert_allclose(episode.actions[:, 0], shoulder, atol=1e-6)
    np.testing.assert_allclose(episode.actions[:, 1], -1.0)


@pytest.mark.unit
def test_bag_commands_are_normalised_by_the_profiles_action_space():
    """A diff-drive twist: linear.x and angular.z, through ActionSpace's own conversion and limits."""
    from types import SimpleNamespace

    from jepa_pilot.control.action_space import RobotProfile
    from jepa_pilot.data.bag import TWIST, TWIST_STAMPED, command_action

    space = RobotProfile.load("two_rooms_diff").action_space
    assert space.fields == ("linear.x", "angular.z")
    vector = lambda x=0.0, y=0.0, z=0.0: SimpleNamespace(x=x, y=y, z=z)  # noqa: E731
    fast = SimpleNamespace(linear=vector(x=0.5 * space.scale[0]), angular=vector(z=-3.0 * space.scale[1]))
    action, clipped = command_action(fast, TWIST, space)
    np.testing.assert_allclose(action, [0.5, -1.0])
    assert clipped and list(space.beyond_limits(space.twist_values(fast))) == [False, True]
    np.testing.assert_array_equal(action, space.to_normalised(space.twist_values(fast)))
    slow = SimpleNamespace(twist=SimpleNamespace(linear=vector(x=space.scale[0]), angular=vector(z=0.1)))
    assert command_action(slow, TWIST_STAMPED, space)[1] is False  # exactly at the limit is not clipped
    with pytest.raises(ValueError, match="a twist does not drive shoulder, elbow"):
        RobotProfile.load("reacher").action_space.twist_values(fast)


@pytest.mark.unit
@pytest.mark.parametrize("encoding, channels", [("rgba8", 4), ("bgra8", 4), ("mono8", 1)])
def test_image_encodings_become_rgb_with_row_padding(encoding, channels):
    from types import SimpleNamespace

    from jepa_pilot.data.bag import IMAGE, image_to_rgb

    rgb = frame_rgb(3)
    pixels = {"rgba8": np.dstack([rgb, np.full((4, 6), 255, np.uint8)]),
              "bgra8": np.dstack([rgb[..., ::-1], np.full((4, 6), 255, np.uint8)]),
              "mono8": rgb[..., 1:2]}[encoding]
    step = 6 * channels + 2  # padded rows
    rows = np.zeros((4, step), np.uint8)
    rows[:, :6 * channels] = pixels.reshape(4, -1)
    msg = SimpleNamespace(encoding=encoding, height=4, width=6, step=step, data=rows.reshape(-1))
    want = np.repeat(rgb[..., 1:2], 3, axis=2) if encoding == "mono8" else rgb
    np.testing.assert_array_equal(image_to_rgb(msg, IMAGE), want)
    with pytest.raises(ValueError, match="unsupported encoding '16UC1'"):
        image_to_rgb(SimpleNamespace(encoding="16UC1", height=4, width=6, step=12, data=rows), IMAGE)
    with pytest.raises(ValueError, match="step 5 < width 6"):
        image_to_rgb(SimpleNamespace(encoding=encoding, height=4, width=6, step=5, data=rows), IMAGE)


@pytest.mark.unit
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_one_decoder_for_raw_buffers_and_arrays(encoding):
    """decode_image (ROS topics, bags) and to_rgb (arrays handed to the engine) give the same RGB."""
    import array

    from jepa_pilot.perception.preprocess import decode_image, to_rgb

    rgb = frame_rgb(5)
    alpha = np.full((4, 6, 1), 7, np.uint8)
    pixels = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "rgba8": np.dstack([rgb, alpha]),
              "bgra8": np.dstack([rgb[..., ::-1], alpha]), "mono8": rgb[..., :1]}[encoding]
    pixels = np.ascontiguousarray(pixels)
    want = np.repeat(rgb[..., :1], 3, axis=2) if encoding == "mono8" else rgb
    np.testing.assert_array_equal(to_rgb(pixels, encoding), want)
    raw = pixels.tobytes()
    step = pixels.shape[1] * pixels.shape[2]
    for data in (raw, bytearray(raw), array.array("B", raw), np.frombuffer(raw, np.uint8), list(raw)):
        decoded = decode_image(data, encoding, 6, 4, step)
        assert decoded.shape == (4, 6, 3) and decoded.dtype == np.uint8
        np.testing.assert_array_equal(decoded, want)
    np.testing.assert_array_equal(decode_image(raw + b"extra", encoding.upper(), 6, 4, step), want)


@pytest.mark.unit
@pytest.mark.parametrize("args, reason", [
    ((b"\0" * 72, "yuv422", 6, 4, 12), "unsupported encoding 'yuv422' (supported: rgb8, bgr8, rgba8, bgra8, mono8)"),
    ((b"", "rgb8", 0, 0, 0), "empty image (0x0)"),
    ((b"\0" * 72, "rgb8", 6, 4, 17), "step 17 < width 6 x 3 bytes"),
    ((b"\0" * 71, "rgb8", 6, 4, 18), "truncated data (71 of 72 bytes)"),
    ((b"\0" * 95, "rgba8", 6, 4, 24), "truncated data (95 of 96 bytes)"),
])
def test_the_decoder_says_why_a_buffer_is_refused(args, reason):
    from jepa_pilot.perception.preprocess import ImageError, decode_image, raw_image_problem

    with pytest.raises(ImageError) as err:
        decode_image(*args)
    assert str(err.value) == reason
    assert raw_image_problem(len(args[0]), *args[1:]) == reason


@pytest.mark.unit
def test_resize_shrinks_by_area_and_grows_bilinearly_to_any_size():
    """The training/deployment resize: square model sizes and (width, height) for bag imports."""
    from jepa_pilot.perception.preprocess import resize

    image = np.kron(frame_rgb(2), np.ones((4, 4, 1), np.uint8))  # 16 x 24: blocks of 4 x 4
    np.testing.assert_array_equal(resize(image, (6, 4)), frame_rgb(2))  # area averaging of uniform blocks
    assert resize(image, 8).shape == (8, 8, 3)
    assert resize(image, (24, 16)) is image
    grown = resize(frame_rgb(2), (12, 8))
    assert grown.shape == (8, 12, 3)
    assert len(np.unique(grown[..., 1])) > len(np.unique(frame_rgb(2)[..., 1]))  # interpolated, not repeated


@pytest.mark.unit
def test_import_bag_explains_what_is_wrong_with_a_bag(bag, tmp_path):
    with pytest.raises(BagError, match="no such bag"):
        import_bag(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(BagError) as err:
        import_bag(bag, tmp_path / "out", BagImportConfig(image_topic="/front/image"))
    assert "no topic /front/image" in str(err.value)
    assert "/camera/image_raw (sensor_msgs/msg/Image), /cmd_vel (geometry_msgs/msg/TwistStamped)" in str(err.value)
    with pytest.raises(BagError, match="/cmd_vel carries geometry_msgs/msg/TwistStamped; commands for reacher"):
        import_bag(bag, tmp_path / "out", BagImportConfig(robot="reacher"))
    with pytest.raises(BagError, match="/camera/image_raw carries sensor_msgs/msg/Image; commands"):
        import_bag(bag, tmp_path / "out", BagImportConfig(command_topic="/camera/image_raw"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BagError, match="not an MCAP file"):
        import_bag(tmp_path / "notes.txt", tmp_path / "out")
    (mcap_file,) = bag.glob("*.mcap")
    cut = tmp_path / "cut.mcap"  # a recording that was killed: no summary, no end magic
    cut.write_bytes(mcap_file.read_bytes()[:5000])
    with pytest.raises(BagError, match="cannot read the bag.*mcap recover"):
        import_bag(cut, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.unit
def test_import_bag_cli(bag, tmp_path, capsys):
    assert run_cli("import_bag", ["import-bag", str(bag), "--out", str(tmp_path / "d"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 episodes" in out and "1 clipped to the limits" in out and "1 bad (1 truncated data)" in out
    assert run_cli("import_bag", ["import-bag", str(tmp_path / "nope"), "--out", str(tmp_path / "e")]) == 2
    assert "no such bag" in capsys.readouterr().out


# --- sim collection ----------------------------------------------------------------------
def files(root: Path) -> dict[str, bytes]:
    """Every file of a dataset folder, without dataset.yaml's creation time."""
    out = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    meta = yaml.safe_load(out.pop("dataset.yaml"))
    meta.pop("created")
    out["dataset.yaml"] = json.dumps(meta).encode()
    return out


@pytest.mark.sim
def test_collect_is_deterministic_for_a_seed_whatever_the_worker_count(tmp_path):
    from jepa_pilot.data.collect import CollectConfig, collect

    config = CollectConfig(env="two_rooms", episodes=4, steps=20, seed=7)
    for name, workers in (("a", 1), ("b", 1), ("c", 2)):
        collect(config, tmp_path / name, workers=workers, progress=False, log=lambda _: None)
    assert files(tmp_path / "a") == files(tmp_path / "b") == files(tmp_path / "c")
    collect(config.replace(seed=8), tmp_path / "d", progress=False, log=lambda _: None)
    assert files(tmp_path / "d")["episodes/000000.npz"] != files(tmp_path / "a")["episodes/000000.npz"]
    data = Dataset(tmp_path / "a")
    assert len(data) == 4 and data.info.state_names == ("x", "y", "vx", "vy")
    episode = data[0]
    np.testing.assert_allclose(episode.timestamps, np.arange(21) * 0.1, atol=1e-9)  # simulated time
    assert episode.images.shape == (21, 64, 64, 3) and episode.images.std() > 10
    with pytest.raises(DatasetError, match="already holds episodes"):
        collect(config, tmp_path / "a", progress=False)


@pytest.mark.sim
def test_collect_covers_both_rooms_and_crosses_the_door(tmp_path):
    from jepa_pilot.data.collect import CollectConfig, collect

    lines: list[str] = []
    summary = collect(CollectConfig(env="two_rooms", episodes=40, steps=100, seed=0, image_size=16),
                      tmp_path, workers=2, progress=False, log=lines.append)
    coverage = summary["coverage"]
    assert coverage["frames_room0"] > 0.25 and coverage["frames_room1"] > 0.25
    assert coverage["episodes_crossing_door"] >= 0.2
    assert coverage["grid_cells_visited"] >= 0.9
    assert json.loads((tmp_path / "collect.json").read_text())["coverage"] == coverage
    assert any(line.startswith("door crossings") for line in lines)
    # The stored states agree with the coverage: episodes really go from one room to the other.
    crossed = [np.any(np.sign(e.states[:, 0]) != np.sign(e.states[0, 0])) for e in Dataset(tmp_path)]
    assert np.mean(crossed) == pytest.approx(coverage["episodes_crossing_door"])


@pytest.mark.sim
def test_collect_cli_for_the_arm(tmp_path, capsys):
    argv = ["collect", "--env", "reacher", "--episodes", "2", "--steps", "10", "--out", str(tmp_path)]
    assert run_cli("collect", argv) == 0
    out = capsys.readouterr().out
    assert "wrote 2 episodes, 22 frames" in out and "joint angles" in out
    data = Dataset(tmp_path)
    assert data.info.action_names == ("dq_shoulder", "dq_elbow") and data[1].states.shape == (11, 4)
    assert run_cli("collect", ["collect", "--env", "nowhere", "--out", str(tmp_path / "x")]) == 2
    assert "unknown environment 'nowhere'" in capsys.readouterr().out
