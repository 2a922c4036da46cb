"""ROS parameters from a config dataclass: one definition for CLI, tests and ROS.

``ConfigParameters(node, SimNodeConfig)`` declares one parameter per field,
with the field's description, range and choices in its descriptor
(``ros2 param describe`` shows them), builds the validated config from the
values given at launch, and validates later ``set_parameters`` calls through
the same ``Config.__post_init__``: an invalid value is rejected with the
config's message and the node keeps its old, valid config.
"""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.node import Node
from rclpy.parameter import Parameter

from jepa_pilot.common.config import Config, ConfigError

__all__ = ["ConfigParameters", "ConfigError"]

C = TypeVar("C", bound=Config)


def _descriptor(kind: type, spec) -> ParameterDescriptor:
    doc = spec.doc + (f" (one of: {', '.join(map(str, spec.choices))})" if spec.choices else "")
    desc = ParameterDescriptor(description=doc, read_only=not spec.dynamic, dynamic_typing=True)
    if spec.low is not None and spec.high is not None:
        if kind is float:
            desc.floating_point_range = [FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high))]
        elif kind is int:
            desc.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high))]
    return desc


class ConfigParameters(Generic[C]):
    """Binds a config dataclass to a node's parameters; ``.config`` is always valid."""

    def __init__(self, node: Node, cls: type[C], on_change: Callable[[C], None] | None = None) -> None:
        self._node, self._on_change = node, on_change
        values = {}
        for field, kind, spec in cls.settings():
            default = list(field.default) if isinstance(field.default, tuple) else field.default
            values[field.name] = node.declare_parameter(field.name, default, _descriptor(kind, spec)).value
        # dynamic_typing lets `rate: 10` stand for 10.0; the config checks types and ranges.
        self.config: C = cls.from_dict(values)
        node.add_on_set_parameters_callback(self._validate)

    def _validate(self, params: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in params if p.name in self.config.to_dict()}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            new = self.config.replace(**changes)
        except (ConfigError, TypeError) as exc:
            self._node.get_logger().warning(f"rejected parameter change {changes}: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        self.config = new
        if self._on_change is not None:
            self._on_change(new)
        return SetParametersResult(successful=True)
