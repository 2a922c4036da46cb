"""QoS profiles by name, so reliability is a parameter and not code."""
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

__all__ = ["QOS_NAMES", "qos"]

QOS_NAMES = ("sensor_data", "reliable", "best_effort", "latched")


def qos(name: str, depth: int | None = None) -> QoSProfile:
    """sensor_data: best effort, keep last 5 (REP 2003 consumers); reliable: keep last 10;
    best_effort: keep last 1 (newest frame only); latched: reliable + transient_local, keep last 1."""
    if name == "sensor_data":
        profile = QoSProfile(**{k: getattr(qos_profile_sensor_data, k) for k in
                                ("history", "depth", "reliability", "durability")})
    elif name == "reliable":
        profile = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
    elif name == "best_effort":
        profile = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    elif name == "latched":
        profile = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
    else:
        raise ValueError(f"unknown QoS {name!r}; known: {', '.join(QOS_NAMES)}")
    if depth is not None:
        profile.depth = depth
    return profile
