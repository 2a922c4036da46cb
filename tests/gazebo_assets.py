"""What the Gazebo assets offer ROS, read from the SDF files, the bridge config and the launch file.

Gazebo cannot run on these machines, so tests/test_gazebo.py works out what
Gazebo Sim + ros_gz_bridge would publish and subscribe from the files that
configure them, with the rules of the Gazebo sources cited below, and
compares that with the robot contract (nodes/contract.py) that the built-in
sim node implements. Pure parsing: xml.etree, yaml, numpy.
"""
from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import yaml

# --------------------------------------------------------------------------
# SDF
# --------------------------------------------------------------------------

# Systems this project uses: current (gz-sim 8+) library name -> plugin class.
# Fortress' ignition-gazebo-* names are not loaded by Harmonic and later.
SYSTEMS = {
    "gz-sim-physics-system": "gz::sim::systems::Physics",
    "gz-sim-sensors-system": "gz::sim::systems::Sensors",
    "gz-sim-scene-broadcaster-system": "gz::sim::systems::SceneBroadcaster",
    "gz-sim-user-commands-system": "gz::sim::systems::UserCommands",
    "gz-sim-diff-drive-system": "gz::sim::systems::DiffDrive",
    "gz-sim-velocity-control-system": "gz::sim::systems::VelocityControl",
    "gz-sim-odometry-publisher-system": "gz::sim::systems::OdometryPublisher",
    "gz-sim-joint-state-publisher-system": "gz::sim::systems::JointStatePublisher",
}


def load_sdf(path: Path) -> ET.Element:
    """The root ``<sdf>`` element of an SDF file."""
    root = ET.parse(path).getroot()
    if root.tag != "sdf":
        raise ValueError(f"{path}: root element is <{root.tag}>, not <sdf>")
    return root


def text(element: ET.Element | None, tag: str, default: str | None = None) -> str | None:
    """The stripped text of ``element``'s child ``tag``, or ``default``."""
    child = None if element is None else element.find(tag)
    return default if child is None or child.text is None else child.text.strip()


def numbers(value: str | None) -> list[float]:
    return [float(v) for v in (value or "").split()]


def pose_matrix(element: ET.Element | None) -> np.ndarray:
    """4x4 transform of an element's ``<pose>`` (x y z roll pitch yaw; R = Rz(yaw) Ry(pitch) Rx(roll))."""
    pose = None if element is None else element.find("pose")
    if pose is not None and (pose.get("relative_to") or pose.get("degrees")):
        raise ValueError("poses with relative_to or degrees are not supported by these checks")
    x, y, z, roll, pitch, yaw = numbers(pose.text) if pose is not None and pose.text else [0.0] * 6
    cr, sr, cp, sp, cy, sy = math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch), math.cos(yaw), \
        math.sin(yaw)
    matrix = np.eye(4)
    matrix[:3, :3] = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]]) @ \
        np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]]) @ np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    matrix[:3, 3] = (x, y, z)
    return matrix


def world_transform(*chain: ET.Element) -> np.ndarray:
    """Transform of the last element of model > link > (visual | collision | sensor) in the world."""
    matrix = np.eye(4)
    for element in chain:
        matrix = matrix @ pose_matrix(element)
    return matrix


@dataclasses.dataclass(frozen=True)
class Plugin:
    filename: str
    name: str
    element: ET.Element

    @property
    def system(self) -> str:
        """The class name without namespace, e.g. ``DiffDrive``."""
        return self.name.rsplit("::", 1)[-1]

    def get(self, tag: str, default: str | None = None) -> str | None:
        return text(self.element, tag, default)


def plugins(element: ET.Element) -> list[Plugin]:
    return [Plugin(p.get("filename", ""), p.get("name", ""), p) for p in element.findall("plugin")]


# --------------------------------------------------------------------------
# What Gazebo publishes and subscribes (gz transport topics)
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GzEndpoint:
    """One gz-transport topic a world or model publishes ("pub") or subscribes to ("sub")."""

    topic: str
    gz_type: str
    kind: str
    source: str
    frame_id: str | None = None        # header frame_id of published messages (None: no header / not set)
    child_frame_id: str | None = None  # odometry only


def camera_frame_ids(sensor: ET.Element, scoped_name: str) -> dict[str, str]:
    """The header frame_id of a camera's images and camera_info, per Gazebo release.

    Harmonic (gz-sensors 8, src/CameraSensor.cc PopulateInfo and Sensor.cc):
    ``<camera><optical_frame_id>``, else ``<gz_frame_id>``, else the sensor's
    scoped name. Ionic and later (gz-sensors 9+, SDFormat 15, gz-sensors#444):
    ``//sensor/frame_id`` overrides ``<gz_frame_id>`` (deprecated there);
    ``<optical_frame_id>`` (deprecated in SDFormat 15) still comes first.
    """
    optical = text(sensor.find("camera"), "optical_frame_id")
    gz_frame = text(sensor, "gz_frame_id")
    frame = text(sensor, "frame_id")
    return {
        "harmonic": optical or gz_frame or scoped_name,
        "ionic+": optical or frame or gz_frame or scoped_name,
    }


def camera_endpoints(world: ET.Element) -> list[GzEndpoint]:
    """Image and camera_info topics of every camera sensor in a world's models."""
    world_name = world.get("name")
    out = []
    for model in world.findall("model"):
        for link in model.findall("link"):
            for sensor in link.findall("sensor"):
                if sensor.get("type") != "camera":
                    continue
                scope = f"{model.get('name')}::{link.get('name')}::{sensor.get('name')}"
                # gz-sim Sensors system: no <topic> -> the scoped default topic.
                image = text(sensor, "topic") or (f"/world/{world_name}/model/{model.get('name')}/link/"
                                                  f"{link.get('name')}/sensor/{sensor.get('name')}/image")
                derived = image.rsplit("/", 1)[0] + "/camera_info"  # CameraSensor::AdvertiseInfo
                info = text(sensor.find("camera"), "camera_info_topic") or derived
                frames = camera_frame_ids(sensor, scope)
                frame = frames["harmonic"] if len(set(frames.values())) == 1 else \
                    "releases disagree: " + ", ".join(f"{k} {v}" for k, v in frames.items())
                source = f"camera sensor {scope}"
                out += [GzEndpoint(image, "gz.msgs.Image", "pub", source, frame),
                        GzEndpoint(info, "gz.msgs.CameraInfo", "pub", source + " (camera_info)", frame)]
                if info != derived:  # a release that ignores <camera_info_topic> would publish elsewhere
                    out.append(GzEndpoint(info, "gz.msgs.CameraInfo", "pub",
                                          f"{source}: <camera_info_topic> {info} differs from the default "
                                          f"{derived} that releases without it use", "inconsistent"))
    return out


def world_endpoints(world: ET.Element) -> list[GzEndpoint]:
    """What gz-sim's server itself publishes: the clock."""
    name = world.get("name")
    return [GzEndpoint("/clock", "gz.msgs.Clock", "pub", "gz-sim server"),
            GzEndpoint(f"/world/{name}/clock", "gz.msgs.Clock", "pub", "gz-sim server")]


def canonical_link(model: ET.Element) -> str:
    return model.get("canonical_link") or model.find("link").get("name")


def model_endpoints(model: ET.Element, model_name: str, world_name: str) -> tuple[list[GzEndpoint], list[str]]:
    """Topics the systems of a robot model publish and subscribe, and the plugins these rules do not know.

    ``model_name`` is the name the model is spawned with (it replaces the SDF
    name). Defaults follow the systems' documentation in gz-sim
    (src/systems/<system>/<System>.hh).
    """
    out, unknown = [], []
    prefix = f"/model/{model_name}"
    for plugin in plugins(model):
        where = f"{plugin.system} of {model_name}"
        if plugin.system == "DiffDrive":
            out.append(GzEndpoint(plugin.get("topic", f"{prefix}/cmd_vel"), "gz.msgs.Twist", "sub", where))
            out.append(GzEndpoint(plugin.get("odom_topic", f"{prefix}/odometry"), "gz.msgs.Odometry", "pub", where,
                                  plugin.get("frame_id", f"{model_name}/odom"),
                                  plugin.get("child_frame_id", f"{model_name}/{canonical_link(model)}")))
        elif plugin.system == "VelocityControl":
            out.append(GzEndpoint(plugin.get("topic", f"{prefix}/cmd_vel"), "gz.msgs.Twist", "sub", where))
        elif plugin.system == "OdometryPublisher":
            out.append(GzEndpoint(plugin.get("odom_topic", f"{prefix}/odometry"), "gz.msgs.Odometry", "pub", where,
                                  plugin.get("odom_frame", f"{model_name}/odom"),
                                  plugin.get("robot_base_frame", f"{model_name}/base_footprint")))
        elif plugin.system == "JointStatePublisher":
            out.append(GzEndpoint(plugin.get("topic", f"/world/{world_name}/model/{model_name}/joint_state"),
                                  "gz.msgs.Model", "pub", where))
        else:
            unknown.append(plugin.name)
    return out, unknown


# --------------------------------------------------------------------------
# ros_gz_bridge configuration
# --------------------------------------------------------------------------

BRIDGE_KEYS = {"topic_name", "ros_topic_name", "gz_topic_name", "ros_type_name", "gz_type_name",
               "direction", "publisher_queue", "subscriber_queue", "lazy"}
DIRECTIONS = ("BIDIRECTIONAL", "GZ_TO_ROS", "ROS_TO_GZ")
DEFAULT_QUEUE = 10
# ROS type -> gz types ros_gz_bridge converts it to (its README table; the part a robot base uses).
BRIDGE_TYPES = {
    "builtin_interfaces/msg/Time": {"gz.msgs.Time"},
    "geometry_msgs/msg/Pose": {"gz.msgs.Pose"},
    "geometry_msgs/msg/PoseStamped": {"gz.msgs.Pose"},
    "geometry_msgs/msg/Twist": {"gz.msgs.Twist"},
    "geometry_msgs/msg/TwistStamped": {"gz.msgs.Twist"},
    "geometry_msgs/msg/Wrench": {"gz.msgs.Wrench"},
    "nav_msgs/msg/Odometry": {"gz.msgs.Odometry", "gz.msgs.OdometryWithCovariance"},
    "rosgraph_msgs/msg/Clock": {"gz.msgs.Clock"},
    "sensor_msgs/msg/CameraInfo": {"gz.msgs.CameraInfo"},
    "sensor_msgs/msg/Image": {"gz.msgs.Image"},
    "sensor_msgs/msg/Imu": {"gz.msgs.IMU"},
    "sensor_msgs/msg/JointState": {"gz.msgs.Model"},
    "sensor_msgs/msg/LaserScan": {"gz.msgs.LaserScan"},
    "sensor_msgs/msg/PointCloud2": {"gz.msgs.PointCloudPacked"},
    "std_msgs/msg/Bool": {"gz.msgs.Boolean"},
    "std_msgs/msg/Float64": {"gz.msgs.Double"},
    "std_msgs/msg/String": {"gz.msgs.StringMsg"},
    "tf2_msgs/msg/TFMessage": {"gz.msgs.Pose_V"},
}


class BridgeConfigError(ValueError):
    """A ros_gz_bridge YAML config ros_gz_bridge would reject or silently misread."""


@dataclasses.dataclass(frozen=True)
class BridgeEntry:
    ros_topic: str
    gz_topic: str
    ros_type: str
    gz_type: str
    direction: str
    publisher_queue: int = DEFAULT_QUEUE
    subscriber_queue: int = DEFAULT_QUEUE
    lazy: bool = False


def read_bridge_config(data: Any) -> list[BridgeEntry]:
    """Validate a loaded bridge YAML as ros_gz_bridge/src/bridge_config.cpp does, and stricter.

    ros_gz_bridge logs and skips a bad entry (the topic is then silently not
    bridged) and ignores unknown keys (a typo like ``direction: GZ_TO_ROS``
    under ``directon`` bridges both ways): both are errors here.
    """
    if not isinstance(data, list) or not data:
        raise BridgeConfigError("the top level must be a non-empty YAML list of entries")
    entries, seen = [], set()
    for index, item in enumerate(data, 1):
        where = f"entry {index}"
        if not isinstance(item, dict):
            raise BridgeConfigError(f"{where}: must be a mapping, got {item!r}")
        unknown = sorted(set(item) - BRIDGE_KEYS)
        if unknown:
            raise BridgeConfigError(f"{where}: unknown key(s) {unknown} (known: {', '.join(sorted(BRIDGE_KEYS))})")
        values = {k: v for k, v in item.items() if k not in ("publisher_queue", "subscriber_queue", "lazy")}
        for key, value in values.items():
            if not isinstance(value, str) or not value:
                raise BridgeConfigError(f"{where}: {key} must be a non-empty string, got {value!r}")
        for other in ("ros_topic_name", "gz_topic_name"):
            if "topic_name" in item and other in item:
                raise BridgeConfigError(f"{where}: topic_name and {other} are mutually exclusive")
        if not {"topic_name", "ros_topic_name", "gz_topic_name"} & set(item):
            raise BridgeConfigError(f"{where}: needs topic_name, or ros_topic_name and/or gz_topic_name")
        for key in ("ros_type_name", "gz_type_name"):
            if key not in item:
                raise BridgeConfigError(f"{where}: both ros_type_name and gz_type_name must be set")
        direction = item.get("direction", "BIDIRECTIONAL")
        if direction not in DIRECTIONS:
            raise BridgeConfigError(f"{where}: invalid direction {direction!r} (one of {', '.join(DIRECTIONS)})")
        ros_type, gz_type = item["ros_type_name"], item["gz_type_name"]
        if gz_type not in BRIDGE_TYPES.get(ros_type, set()):
            raise BridgeConfigError(f"{where}: ros_gz_bridge has no conversion {ros_type} <-> {gz_type}")
        queues = {}
        for key in ("publisher_queue", "subscriber_queue"):
            value = item.get(key, DEFAULT_QUEUE)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BridgeConfigError(f"{where}: {key} must be a positive integer, got {value!r}")
            queues[key] = value
        lazy = item.get("lazy", False)
        if not isinstance(lazy, bool):
            raise BridgeConfigError(f"{where}: lazy must be true or false, got {lazy!r}")
        ros_topic = item.get("topic_name") or item.get("ros_topic_name") or item["gz_topic_name"]
        gz_topic = item.get("topic_name") or item.get("gz_topic_name") or item["ros_topic_name"]
        if ros_topic in seen:
            raise BridgeConfigError(f"{where}: ROS topic {ros_topic} is bridged twice")
        seen.add(ros_topic)
        entries.append(BridgeEntry(ros_topic, gz_topic, ros_type, gz_type, direction,
                                   queues["publisher_queue"], queues["subscriber_queue"], lazy))
    return entries


def bridge_qos(entry: BridgeEntry, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The QoS of the bridge's ROS publisher and/or subscription of one entry.

    ros_gz_bridge/src/factory.hpp creates them with ``QoS(KeepLast(queue))``
    (reliable, volatile) and QosOverridingOptions, so the node's
    ``qos_overrides.<topic>.publisher|subscription.<policy>`` parameters apply.
    """
    out = {}
    for side, queue, used in (("publisher", entry.publisher_queue, entry.direction != "ROS_TO_GZ"),
                              ("subscription", entry.subscriber_queue, entry.direction != "GZ_TO_ROS")):
        if not used:
            continue
        qos = {"history": "keep_last", "depth": queue, "reliability": "reliable", "durability": "volatile"}
        for policy in qos:
            key = f"qos_overrides.{entry.ros_topic}.{side}.{policy}"
            if key in params:
                qos[policy] = params[key]
        out[side] = qos
    return out


# --------------------------------------------------------------------------
# Gazebo + bridge, seen from ROS
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Offer:
    """A ROS topic as Gazebo + ros_gz_bridge offer it, in the terms of nodes/contract.py."""

    topic: str
    type: str
    direction: str               # "out": the robot publishes it; "in": the robot subscribes to it
    qos: dict[str, Any]
    frame_id: str | None
    child_frame_id: str | None
    gz: str                      # what it comes from / goes to on the Gazebo side


def ros_offer(entries: Iterable[BridgeEntry], endpoints: list[GzEndpoint],
              params: dict[str, Any]) -> tuple[dict[str, Offer], list[str], dict[str, str]]:
    """Join bridge entries with the Gazebo endpoints.

    Returns the offered ROS topics, the problems found (type or frame
    clashes), and the bridged ROS topics nothing in Gazebo serves (idle: an
    error for a contract topic; allowed for an extra one, as one bridge config
    serves several robots).
    """
    offers, problems, idle = {}, [], {}
    for entry in entries:
        for direction, kind, side in (("out", "pub", "publisher"), ("in", "sub", "subscription")):
            if (direction == "out") == (entry.direction == "ROS_TO_GZ"):
                continue
            matches = [e for e in endpoints if e.topic == entry.gz_topic and e.kind == kind]
            what = "publishes" if kind == "pub" else "subscribes to"
            if not matches:
                idle[entry.ros_topic] = f"{entry.ros_topic}: nothing in Gazebo {what} gz topic {entry.gz_topic}"
                continue
            if len({(e.frame_id, e.child_frame_id) for e in matches}) > 1:
                problems.append(f"{entry.ros_topic}: several Gazebo sources disagree on gz topic {entry.gz_topic}: "
                                + "; ".join(f"{e.source} ({e.frame_id})" for e in matches))
            for endpoint in matches:
                if endpoint.gz_type != entry.gz_type:
                    problems.append(f"{entry.ros_topic}: {endpoint.source} {what} {entry.gz_topic} as "
                                    f"{endpoint.gz_type}, the bridge expects {entry.gz_type}")
            first = matches[0]
            offers[entry.ros_topic] = Offer(
                entry.ros_topic, entry.ros_type, direction, bridge_qos(entry, params)[side],
                # Commands: the bridge drops the header; Gazebo accepts any frame.
                first.frame_id if direction == "out" else None,
                first.child_frame_id if direction == "out" else None,
                f"{entry.gz_topic} ({first.source})")
    return offers, problems, idle


def contract_qos(name: str) -> dict[str, Any]:
    """A QoS name of nodes/qos.py as the policies compared with the bridge's (needs rclpy)."""
    from jepa_pilot.nodes.qos import qos

    profile = qos(name)
    return {"history": profile.history.name.lower(), "depth": profile.depth,
            "reliability": profile.reliability.name.lower(), "durability": profile.durability.name.lower()}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(Path(path).read_text())
