"""Conversions between ROS messages and numpy / plain Python values.

No cv_bridge on the PyPI ROS wheels: images are decoded by the one decoder,
:func:`jepa_pilot.perception.preprocess.decode_image` (also used by the bag
importer), with the checks a camera driver from outside deserves.
"""
from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist, TwistStamped
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float64MultiArray

from jepa_pilot.control.action_space import TWIST_FIELDS
from jepa_pilot.perception.preprocess import ENCODINGS, ImageError, decode_image

__all__ = ["ENCODINGS", "ImageError", "image_to_msg", "msg_to_image", "to_time", "from_time",
           "twist_to_dict", "dict_to_twist", "yaw_quaternion", "camera_info", "COMMAND_TYPES", "command_msg", "publish_and_flush",
           "diagnostics"]


def to_time(seconds: float) -> Time:
    sec = math.floor(seconds)
    return Time(sec=int(sec), nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def from_time(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def image_to_msg(image: np.ndarray, stamp: float, frame_id: str, encoding: str = "rgb8") -> Image:
    """(H, W, C) uint8 -> sensor_msgs/Image."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ImageError(f"expected an (H, W[, C]) uint8 array, got {image.dtype} {image.shape}")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if ENCODINGS.get(encoding) != channels:
        raise ImageError(f"{encoding} needs {ENCODINGS.get(encoding)} channels, image has {channels}")
    msg = Image(encoding=encoding, height=image.shape[0], width=image.shape[1], is_bigendian=0)
    msg.header.stamp, msg.header.frame_id = to_time(stamp), frame_id
    msg.step = image.shape[1] * channels
    msg.data = np.ascontiguousarray(image).tobytes()
    return msg


def msg_to_image(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB, whatever the message's encoding.

    Raises ImageError for unsupported encodings, zero sizes, a step too small
    for the width, or data shorter than height * step (truncated frames).
    """
    return decode_image(msg.data, msg.encoding, msg.width, msg.height, msg.step)


def twist_to_dict(twist) -> dict[str, float]:
    """geometry_msgs/Twist -> {"linear.x": ..., ..., "angular.z": ...}."""
    return {f: float(getattr(getattr(twist, f[:-2]), f[-1])) for f in TWIST_FIELDS}


def dict_to_twist(values: dict[str, float], twist) -> None:
    """Fill a geometry_msgs/Twist in place from twist fields (missing fields -> 0)."""
    for f in TWIST_FIELDS:
        setattr(getattr(twist, f[:-2]), f[-1], float(values.get(f, 0.0)))


def yaw_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation by ``yaw`` about +z."""
    return 0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)


def camera_info(width: int, height: int, fx: float, fy: float, cx: float, cy: float,
                stamp: float, frame_id: str) -> CameraInfo:
    """A pinhole, distortion-free CameraInfo."""
    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    msg.header.stamp, msg.header.frame_id = to_time(stamp), frame_id
    msg.d = [0.0] * 5
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


# Robot profile command_type -> message type.
COMMAND_TYPES = {"twist_stamped": TwistStamped, "twist": Twist, "float64_multi_array": Float64MultiArray}


def command_msg(kind: str, space, action: np.ndarray, stamp: Time | None = None, frame_id: str = ""):
    """A normalised action -> the robot's command message of ``kind`` (a COMMAND_TYPES key),
    physical values through ``space`` (an ActionSpace, clipped to its limits)."""
    if kind == "float64_multi_array":
        return Float64MultiArray(data=space.to_physical(action).tolist())
    if kind == "twist":
        msg = Twist()
        dict_to_twist(space.to_twist(action), msg)
        return msg
    msg = TwistStamped()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    dict_to_twist(space.to_twist(action), msg.twist)
    return msg


def publish_and_flush(publisher, msg, timeout: float = 0.5) -> bool:
    """Publish ``msg`` and wait (up to ``timeout`` s) until every reliable subscriber has it.

    For the last message of a process, such as the zero command on the way out: without
    the wait the process can end before DDS has delivered it. Returns whether all acked.
    """
    from rclpy.duration import Duration

    publisher.publish(msg)
    return publisher.wait_for_all_acked(Duration(nanoseconds=int(timeout * 1e9)))


def diagnostics(name: str, hardware_id: str, level: bytes, message: str, values: dict, stamp: Time) -> DiagnosticArray:
    """One node's ``/diagnostics`` message: its status with ``values`` as key-values (floats to 4 digits)."""
    status = DiagnosticStatus(name=name, hardware_id=hardware_id, level=level, message=message)
    status.values = [KeyValue(key=k, value=f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in values.items()]
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array
