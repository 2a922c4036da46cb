"""Gazebo assets (gazebo/): the real SDFormat parser, the bridge schema, and the contract with the sim node.

Gazebo cannot run here. What can be checked without it:
- every SDF file passes the SDFormat parser (`ign sdf -k`, libsdformat 12);
- the ros_gz_bridge config is valid for ros_gz_bridge's schema;
- the topics, ROS types, directions, QoS and frame ids that Gazebo + the
  bridge offer (worked out from the SDF, gazebo/bridge.yaml and the bridge's
  parameters in launch/gazebo.launch.yaml, see gazebo_assets.py) equal the
  robot contract (nodes/contract.py) the built-in sim node implements;
- the world and robots mirror the built-in two_rooms envs (geometry, camera,
  colours, limits), so a model trained there sees similar frames.
What is not checked: Gazebo's physics and rendering themselves.
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from gazebo_assets import (BridgeConfigError, bridge_qos, camera_endpoints, contract_qos, load_sdf, load_yaml,
                           model_endpoints, numbers, plugins, read_bridge_config, ros_offer, SYSTEMS, text,
                           world_endpoints, world_transform)
from jepa_pilot.cli.launch import read_launch_file
from jepa_pilot.common.paths import source_root
from jepa_pilot.control.action_space import RobotProfile
from jepa_pilot.nodes.contract import ROBOT_TOPICS, robot_topics

# Tiers: runs of the SDFormat parser (`ign sdf`) are slow; the rest reads files and is unit.

ROOT = source_root()
GAZEBO = ROOT / "gazebo"
WORLD = GAZEBO / "worlds" / "two_rooms.sdf"
MODEL_DIRS = sorted(p.parent for p in (GAZEBO / "models").glob("*/model.sdf"))
SDF_FILES = sorted(GAZEBO.rglob("*.sdf"))
LAUNCH = ROOT / "launch" / "gazebo.launch.yaml"
SDF_VERSION = "1.9"  # the newest spec libsdformat 12 (Debian) checks
IGN_NOISE = "Library error: libignition-tools-backward.so not found"  # ignition-tools' harmless startup line


# ----------------------------------------------------------- the real parser


@pytest.fixture(scope="module")
def ign_sdf():
    """Runs `ign sdf ARGS` with the models on the resource path; (returncode, output)."""
    ign = shutil.which("ign")
    if ign is None:
        message = ("`ign` (the SDFormat checker) is missing: apt-get install libsdformat-dev ignition-tools. "
                   "make test installs them (if .stamps/apt predates them: rm .stamps/apt)")
        if os.environ.get("MAKELEVEL"):  # under make test: the Makefile should have installed it
            pytest.fail(message)
        pytest.skip(message)
    env = dict(os.environ)
    models = str(GAZEBO / "models")
    for var in ("SDF_PATH", "GZ_SIM_RESOURCE_PATH", "IGN_GAZEBO_RESOURCE_PATH"):
        env[var] = os.pathsep.join(filter(None, [models, env.get(var)]))

    def run(*args: str) -> tuple[int, str, str]:
        done = subprocess.run([ign, "sdf", *args], capture_output=True, text=True, env=env, timeout=60)
        return done.returncode, done.stdout, done.stderr
    code, out, err = run("--versions")
    if code != 0 or not out.strip():
        pytest.fail(f"`ign sdf` does not work (is libsdformat-dev installed?): {out}{err}")
    return run


@pytest.mark.unit
def test_there_are_gazebo_assets():
    assert WORLD.is_file() and MODEL_DIRS and (GAZEBO / "bridge.yaml").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("path", SDF_FILES, ids=lambda p: str(p.relative_to(GAZEBO)))
def test_sdf_files_pass_the_sdformat_parser(path, ign_sdf):
    assert load_sdf(path).get("version") == SDF_VERSION, \
        f"{path.name}: write SDF {SDF_VERSION} (what `ign sdf` here checks; Gazebo converts it forward)"
    code, out, err = ign_sdf("-k", str(path))
    errors = [line for line in (out + err).splitlines() if "rror" in line and IGN_NOISE not in line]
    assert code == 0 and "Valid." in out and not errors, f"ign sdf -k {path.name} (exit {code}):\n{out}{err}"


@pytest.mark.slow
def test_parser_keeps_the_frame_id_elements(ign_sdf):
    """libsdformat 12 does not know <gz_frame_id>, //sensor/frame_id or <camera_info_topic>: it must pass them on."""
    code, out, err = ign_sdf("-p", str(WORLD))
    assert code == 0, err
    sensor = ET.fromstring(out[out.index("<sdf"):]).find(".//sensor[@name='overhead']")
    source = load_sdf(WORLD).find(".//sensor[@name='overhead']")
    for tag in ("gz_frame_id", "frame_id", "camera/camera_info_topic", "topic"):
        assert text(sensor, tag) == text(source, tag) is not None, f"the parser dropped or changed <{tag}>"


@pytest.mark.unit
def test_plugins_use_current_gazebo_system_names():
    for path in SDF_FILES:
        for element in load_sdf(path).iter():
            for plugin in plugins(element):
                assert SYSTEMS.get(plugin.filename) == plugin.name, \
                    f"{path.name}: unknown or mismatched system {plugin.filename} / {plugin.name}"


# ------------------------------------------------------------ the bridge schema


@pytest.mark.unit
def test_bridge_config_is_valid():
    entries = read_bridge_config(load_yaml(GAZEBO / "bridge.yaml"))
    assert {e.ros_topic for e in entries} >= {"/camera/image_raw", "/camera/camera_info", "/cmd_vel", "/odom",
                                              "/joint_states", "/clock"}


GOOD = {"ros_topic_name": "/odom", "gz_topic_name": "/model/r/odometry", "ros_type_name": "nav_msgs/msg/Odometry",
        "gz_type_name": "gz.msgs.Odometry", "direction": "GZ_TO_ROS"}


@pytest.mark.unit
@pytest.mark.parametrize("change, error", [
    ({"topic_name": "/odom"}, "mutually exclusive"),
    ({"gz_type_name": None}, "both ros_type_name and gz_type_name"),
    ({"direction": "GZ2ROS"}, "invalid direction"),
    ({"directon": "GZ_TO_ROS"}, r"unknown key\(s\) \['directon'\]"),
    ({"gz_type_name": "gz.msgs.Twist"}, "no conversion nav_msgs/msg/Odometry <-> gz.msgs.Twist"),
    ({"publisher_queue": 0}, "publisher_queue must be a positive integer"),
    ({"lazy": "yes"}, "lazy must be true or false"),
    ({"ros_topic_name": None, "gz_topic_name": None}, "needs topic_name"),
])
def test_bridge_config_errors(change, error):
    entry = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(BridgeConfigError, match=error):
        read_bridge_config([entry])
    with pytest.raises(BridgeConfigError, match="bridged twice"):
        read_bridge_config([GOOD, GOOD])
    assert read_bridge_config([{"topic_name": "/clock", "ros_type_name": "rosgraph_msgs/msg/Clock",
                                "gz_type_name": "gz.msgs.Clock"}])[0].direction == "BIDIRECTIONAL"


# -------------------------------------------------- the contract with the sim


def gazebo_launch(robot: str):
    """The spawn and bridge nodes of launch/gazebo.launch.yaml for one robot, and the model file it spawns."""
    plan = read_launch_file(LAUNCH, {"robot": robot}, resolve_external=False)
    nodes = {(n.package, n.executable): n for n in plan.nodes}
    spawn, bridge = nodes[("ros_gz_sim", "create")], nodes[("ros_gz_bridge", "parameter_bridge")]
    return spawn, bridge, Path(spawn.params["file"])


@pytest.mark.unit
@pytest.mark.parametrize("model_dir", MODEL_DIRS, ids=lambda p: p.name)
def test_gazebo_offers_what_the_sim_node_offers(model_dir):
    pytest.importorskip("rclpy")  # QoS profiles come from nodes/qos.py
    spawn, bridge, model_file = gazebo_launch(model_dir.name)
    assert model_file.resolve() == (model_dir / "model.sdf").resolve()
    world = load_sdf(WORLD).find("world")
    assert spawn.params["world"] == world.get("name"), "the spawner targets another world"
    embodiment = RobotProfile.load(model_dir.name).embodiment
    endpoints, unknown = model_endpoints(load_sdf(model_file).find("model"), spawn.params["name"], world.get("name"))
    assert not unknown, f"gazebo_assets.py has no topic rules for {unknown}"
    endpoints += camera_endpoints(world) + world_endpoints(world)
    entries = read_bridge_config(load_yaml(Path(bridge.params["config_file"])))
    offers, problems, idle = ros_offer(entries, endpoints, bridge.params)
    assert not problems, "\n".join(problems)

    mismatches = []
    for topic, want in robot_topics(embodiment).items():
        got = offers.get(topic)
        if got is None:
            mismatches.append(idle.get(topic, f"{topic}: not bridged"))
            continue
        expected = {"type": want.type, "direction": want.direction, "qos": contract_qos(want.qos),
                    "frame_id": want.frame_id if want.direction == "out" else None,
                    "child_frame_id": want.child_frame_id if want.direction == "out" else None}
        for key, value in expected.items():
            if getattr(got, key) != value:
                mismatches.append(f"{topic}: {key} is {getattr(got, key)!r} in Gazebo ({got.gz}), "
                                  f"{value!r} in the contract")
    for topic, got in offers.items():  # extra topics (e.g. wheel /joint_states) must not clash with the contract
        for other in (t for t in ROBOT_TOPICS if t.topic == topic):
            if (got.type, got.direction) != (other.type, other.direction):
                mismatches.append(f"{topic}: Gazebo offers {got.type} ({got.direction}), the contract has "
                                  f"{other.type} ({other.direction}) for {other.embodiments}")
    assert not mismatches, f"{model_dir.name} in Gazebo differs from the sim node:\n" + "\n".join(mismatches)


@pytest.mark.unit
def test_camera_qos_needs_the_launch_overrides():
    """Without the launch file's qos_overrides the bridge would publish camera images reliable."""
    [entry] = [e for e in read_bridge_config(load_yaml(GAZEBO / "bridge.yaml")) if e.ros_topic == "/camera/image_raw"]
    assert bridge_qos(entry, {})["publisher"]["reliability"] == "reliable"
    _, bridge, _ = gazebo_launch("two_rooms_diff")
    assert bridge_qos(entry, bridge.params)["publisher"] == {
        "history": "keep_last", "depth": 5, "reliability": "best_effort", "durability": "volatile"}


# ------------------------------------------------- a mirror of the built-in world


def mujoco_model(**config):
    """The MJCF of a two_rooms env, parsed (no renderer: the env's XML builder only)."""
    from jepa_pilot.sim.two_rooms import TwoRoomsConfig, TwoRoomsEnv

    env = object.__new__(TwoRoomsEnv)  # _model_xml() and walls() need only the config
    env._config = TwoRoomsConfig(**config)
    return env, ET.fromstring(env._model_xml())


def rgba(element) -> list[float]:
    return numbers(text(element, "material/diffuse"))


@pytest.mark.unit
def test_world_mirrors_the_two_rooms_env():
    env, mjcf = mujoco_model()
    world = load_sdf(WORLD).find("world")
    walls = world.find("model[@name='walls']")
    link = walls.find("link")
    for kind in ("collision", "visual"):
        boxes = []
        for element in link.findall(kind):
            centre = world_transform(walls, link, element)[:3, 3]
            size = numbers(text(element, "geometry/box/size"))
            boxes.append((centre[0], centre[1], size[0] / 2, size[1] / 2, centre[2], size[2]))
        height = float(mjcf.find(".//geom[@name='wall0']").get("size").split()[2]) * 2
        expected = [(x, y, hx, hy, height / 2, height) for x, y, hx, hy in env.walls()]
        assert sorted(np.round(boxes, 6).tolist()) == sorted(np.round(expected, 6).tolist()), kind
    wall_rgba = numbers(mjcf.find(".//geom[@name='wall0']").get("rgba"))
    assert all(rgba(v) == wall_rgba for v in link.findall("visual"))
    floor = world.find("model[@name='floor']/link/visual")
    mj_floor = mjcf.find(".//geom[@name='floor']")
    assert numbers(text(floor, "geometry/plane/size")) == [2 * s for s in numbers(mj_floor.get("size"))[:2]]
    assert rgba(floor) == numbers(mj_floor.get("rgba"))
    headlight = mjcf.find("visual/headlight")
    assert numbers(text(world, "scene/ambient"))[:3] == numbers(headlight.get("ambient"))
    assert numbers(text(world, "light/diffuse"))[:3] == numbers(headlight.get("diffuse"))


@pytest.mark.unit
def test_overhead_camera_mirrors_the_built_in_camera():
    env, mjcf = mujoco_model()
    world = load_sdf(WORLD).find("world")
    model = world.find("model[@name='overhead_camera']")
    link = model.find("link")
    sensor = link.find("sensor")
    pose = world_transform(model, link, sensor)
    mj_camera = mjcf.find(".//camera[@name='overhead']")
    assert np.allclose(pose[:3, 3], numbers(mj_camera.get("pos")), atol=1e-5)
    # Gazebo cameras look along +x with image up +z and image right -y; the built-in image has right +x, up +y.
    axes = pose[:3, :3]
    assert np.allclose(axes[:, 0], [0, 0, -1], atol=1e-6), "the camera must look straight down"
    assert np.allclose(axes[:, 2], [0, 1, 0], atol=1e-6), "image up must be world +y"
    assert np.allclose(-axes[:, 1], [1, 0, 0], atol=1e-6), "image right must be world +x"
    sim = load_yaml(ROOT / "config" / "sim.yaml")["sim"]["ros__parameters"]
    camera = sensor.find("camera")
    assert int(text(camera, "image/width")) == sim["image_width"] == env.config.image_width
    assert int(text(camera, "image/height")) == sim["image_height"] == env.config.image_height
    # A square image: horizontal and vertical fields of view are the MuJoCo fovy.
    assert math.isclose(float(text(camera, "horizontal_fov")), math.radians(float(mj_camera.get("fovy"))),
                        rel_tol=1e-6)
    assert float(text(sensor, "update_rate")) == sim["camera_rate_hz"]
    assert text(camera, "image/format") == "R8G8B8"  # the bridge turns RGB_INT8 into rgb8, as the sim node sends


@pytest.mark.unit
@pytest.mark.parametrize("model_dir", MODEL_DIRS, ids=lambda p: p.name)
def test_robot_models_mirror_the_built_in_robots(model_dir):
    profile = RobotProfile.load(model_dir.name)
    drive = "differential" if profile.embodiment == "diff_drive_base" else "holonomic"
    env, mjcf = mujoco_model(drive=drive)
    config = ET.parse(model_dir / "model.config").getroot()
    assert text(config, "name") == model_dir.name and text(config, "sdf") == "model.sdf"
    model = load_sdf(model_dir / "model.sdf").find("model")
    base = model.find("link[@name='base_link']")
    body = base.find("visual[@name='body_visual']")
    mj_body, mj_base = mjcf.find(".//geom[@name='body']"), mjcf.find(".//body[@name='base']")
    radius, half_height = numbers(mj_body.get("size"))
    assert [float(text(body, "geometry/cylinder/radius")), float(text(body, "geometry/cylinder/length"))] == \
        [radius, 2 * half_height]
    assert math.isclose(world_transform(model, base, body)[2, 3], numbers(mj_base.get("pos"))[2])
    assert rgba(body) == numbers(mj_body.get("rgba"))
    mj_nose, nose = mjcf.find(".//geom[@name='nose']"), base.find("visual[@name='nose']")
    assert (mj_nose is None) == (nose is None), "the diff-drive base shows its heading with a nose"
    if nose is not None:
        assert np.allclose(world_transform(model, base, nose)[:3, 3] - world_transform(model, base)[:3, 3],
                           numbers(mj_nose.get("pos")), atol=1e-3)
        assert np.allclose(numbers(text(nose, "geometry/box/size")), [2 * s for s in numbers(mj_nose.get("size"))])
        assert rgba(nose) == numbers(mj_nose.get("rgba"))
    drives = {p.system: p for p in plugins(model)}
    if profile.embodiment == "diff_drive_base":
        diff = drives["DiffDrive"]
        assert float(diff.get("max_linear_velocity")) == profile.max_linear_speed == env.action_scale[0]
        assert float(diff.get("max_angular_velocity")) == profile.max_angular_speed == env.action_scale[1]
        assert float(diff.get("min_linear_velocity")) == -profile.max_linear_speed
        assert float(diff.get("min_angular_velocity")) == -profile.max_angular_speed
    else:
        assert profile.embodiment == "holonomic_base" and "VelocityControl" in drives
