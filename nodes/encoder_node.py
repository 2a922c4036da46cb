"""encoder_node: camera frames -> latent states, and goal images -> the goal latent.

Subscribes /camera/image_raw (sensor_msgs/Image; ``image_topic``, QoS ``image_qos``, depth 1:
           only the newest frame is worth encoding)
           /jepa/goal_image (sensor_msgs/Image, reliable + transient_local)
Publishes  /jepa/latent (jepa_pilot/Latent: the frame's header, model id, shape, data)
           /jepa/goal_latent (jepa_pilot/Latent, latched: reliable + transient_local)
           /diagnostics (rate, latency frame stamp -> publish, encode time, drops, provider, model id)
Services   ~/set_goal (jepa_pilot/srv/SetGoal): encode a goal image, publish its latent

Hot-swap (perception/swap.py): the encoder commits a new model once it is
staged here and every node of ``swap_wait_for`` reported ready for it on
/jepa/model_ready: it publishes the last goal re-encoded by the new model,
then encodes frames with it.

A lifecycle node (nodes/model_node.py): the bundle is loaded on configure.
Frames of any size are resized to the model's input. Bad frames (a ValueError
from decoding or preprocessing: unsupported encoding, truncated, zero size; or
a non-finite latent) are dropped with a throttled warning and counted by
reason. Anything else (ONNX Runtime failing, a bug) is an *engine error*:
logged with its traceback (throttled), counted, and /diagnostics reports ERROR
with the last one while they keep coming. A goal image is refused with the
reason in both cases.
"""
from __future__ import annotations

import collections
import dataclasses
import re
import time
import traceback

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from sensor_msgs.msg import Image

from jepa_pilot.common.config import setting
from jepa_pilot.common.timing import RateMeter, SampleWindow
from jepa_pilot.msg import Latent, ModelReady
from jepa_pilot.nodes.jepa_io import latent_msg
from jepa_pilot.nodes.model_node import ModelNode, ModelNodeConfig
from jepa_pilot.nodes.qos import QOS_NAMES, qos
from jepa_pilot.nodes.ros_io import msg_to_image
from jepa_pilot.nodes.runner import run_node
from jepa_pilot.perception.swap import ReadyBoard
from jepa_pilot.srv import SetGoal


@dataclasses.dataclass(frozen=True)
class EncoderConfig(ModelNodeConfig):
    image_topic: str = setting("/camera/image_raw", "camera image topic (sensor_msgs/Image)")
    image_qos: str = setting("sensor_data", "QoS of the image subscription, depth 1 (sensor_data and best_effort "
                             "take any publisher; reliable needs a reliable one)", choices=QOS_NAMES)
    swap_wait_for: tuple = setting(("planner", "predictor"), "nodes that must report ready for a new model "
                                   "before the encoder switches the graph to it (empty: switch when loaded here)")


CONFIG = EncoderConfig  # parameters this node declares (checked against launch files by tests)
ERROR_HOLD_S = 10.0  # /diagnostics stays ERROR this long (wall clock) after the last engine error


def drop_reason(exc: ValueError) -> str:
    """A short key for why a frame was dropped, from the start of the error message:
    'unsupported encoding 'yuv422' ...' -> 'unsupported_encoding', 'truncated data (...)' -> 'truncated_data'."""
    words = re.match(r"[a-z\- ]*", str(exc).lower()).group().split()[:3]
    return "_".join(words) or type(exc).__name__


class EncoderNode(ModelNode):
    def __init__(self) -> None:
        super().__init__("encoder", EncoderConfig)
        self.rate, self.latency, self.encode_time = RateMeter(), SampleWindow(), SampleWindow()
        self.frames = self.goals = self.engine_errors = 0
        self.drops: collections.Counter[str] = collections.Counter()  # bad frames by reason
        self.last_drop, self.last_error, self.error_wall, self.frame_size = "", "", None, None
        self.goal_image: Image | None = None  # the last goal, re-encoded when the model changes
        self.board = ReadyBoard(())
        self.latent_sinks: list = []  # composed process: nodes each latent is handed to (nodes/pilot_node.py)

    def configure(self, engine) -> None:
        self.latent_pub = self.publisher(Latent, "/jepa/latent", qos("reliable"))
        self.goal_pub = self.publisher(Latent, "/jepa/goal_latent", qos("latched"))
        self.get_logger().info(f"single frames: {engine.single_frame}")  # on CUDA: a captured graph, or why not

    def activate(self) -> list:
        cfg = self.cfg
        self.get_logger().info(f"encoding {cfg.image_topic} ({cfg.image_qos}) -> /jepa/latent")
        self.board = ReadyBoard(cfg.swap_wait_for)
        return [self.create_subscription(Image, cfg.image_topic, self._on_image, qos(cfg.image_qos, depth=1)),
                self.create_subscription(ModelReady, "/jepa/model_ready", self._on_ready, qos("latched", depth=20)),
                self.create_subscription(Image, "/jepa/goal_image", self._on_goal_image, qos("latched")),
                self.create_service(SetGoal, "~/set_goal", self._on_set_goal)]

    def _encode(self, msg: Image) -> np.ndarray:
        """Raises ValueError (ImageError, PreprocessError, non-finite latent) with the reason for a
        bad image; any other exception is an engine error."""
        return self.engine.encode(msg_to_image(msg))  # msg_to_image decodes any encoding to RGB

    def _engine_error(self, what: str, exc: Exception) -> str:
        """Count, remember and log (with the traceback, throttled) an error that is not the input's fault."""
        self.engine_errors += 1
        self.last_error, self.error_wall = f"{type(exc).__name__}: {exc}", self.wall()
        self.get_logger().error(f"engine error encoding {what} ({self.engine_errors} so far): {self.last_error}\n"
                                f"{traceback.format_exc()}", throttle_duration_sec=5.0)
        return f"engine error: {self.last_error}"

    # --- camera frames ----------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        self._commit()
        start = time.perf_counter()
        self.frames += 1
        try:
            z = self._encode(msg)
        except ValueError as exc:  # a bad frame: drop it, say why
            self.drops[drop_reason(exc)] += 1
            self.last_drop = str(exc)
            self.get_logger().warning(f"frame dropped ({sum(self.drops.values())} so far): {exc}",
                                      throttle_duration_sec=2.0)
            return
        except Exception as exc:  # noqa: BLE001 - the engine failed: report it, keep the node alive
            self._engine_error("a frame", exc)
            return
        if self.frame_size not in (None, (msg.width, msg.height)):
            self.get_logger().warning(f"frame size changed from {self.frame_size[0]}x{self.frame_size[1]} to "
                                      f"{msg.width}x{msg.height}: frames are resized to the model's "
                                      f"{self.engine.spec.image_size}x{self.engine.spec.image_size}",
                                      throttle_duration_sec=5.0)
        self.frame_size = (msg.width, msg.height)
        latent = latent_msg(z, msg.header, self.engine.model_id)
        self.latent_pub.publish(latent)
        self.encode_time.add(time.perf_counter() - start)
        self.rate.tick(self.wall())
        now = self.ros_now()
        if now is not None:
            self.latency.add(now - self.stamp_of(msg))
        for sink in self.latent_sinks:  # composed: the planner plans on it now, in this thread
            sink(latent)

    # --- goals ------------------------------------------------------------------------
    def _set_goal(self, msg: Image) -> tuple[bool, str]:
        try:
            z = self._encode(msg)
        except ValueError as exc:
            return False, f"goal image refused: {exc}"
        except Exception as exc:  # noqa: BLE001 - the engine failed: logged with its traceback
            return False, f"goal image refused: {self._engine_error('a goal image', exc)}"
        self.goal_pub.publish(latent_msg(z, msg.header, self.engine.model_id))
        self.goal_image = msg
        self.goals += 1
        return True, (f"goal set from a {msg.width}x{msg.height} {msg.encoding} image "
                      f"(model {self.engine.model_id})")

    def _on_goal_image(self, msg: Image) -> None:
        ok, message = self._set_goal(msg)
        if ok:
            self.get_logger().info(message)
        else:
            self.get_logger().error(message, throttle_duration_sec=1.0)

    def _on_set_goal(self, request: SetGoal.Request, response: SetGoal.Response) -> SetGoal.Response:
        response.success, response.message = self._set_goal(request.image)
        if response.success:
            self.get_logger().info(response.message)
        else:
            self.get_logger().error(response.message, throttle_duration_sec=1.0)
        return response

    # --- hot-swap ----------------------------------------------------------------------
    def _on_ready(self, msg: ModelReady) -> None:
        self.board.report(msg.node, msg.model_id, msg.ready, msg.message)

    def _commit(self) -> None:
        """Between two frames: switch to the staged model once every node it waits for is ready,
        publishing the goal in the new model's latent space before any frame encoded by it."""
        staged = self.staging.staged_id
        if not staged:
            return
        if not self.board.ready(staged):
            self.get_logger().info(f"model {staged} staged; waiting for {self.board.waiting(staged)}",
                                   throttle_duration_sec=5.0)
            return
        with self.lock:
            self.switch_engine(staged)
        if self.goal_image is not None:
            ok, message = self._set_goal(self.goal_image)
            if ok:
                self.get_logger().info(f"goal re-encoded: {message}")
            else:
                self.get_logger().error(f"goal not re-encoded, the planner holds the robot: {message}")

    # --- diagnostics -------------------------------------------------------------------
    def diagnostic_values(self) -> dict:
        (l50, l99), (e50, e99) = self.latency.percentiles(50, 99), self.encode_time.percentiles(50, 99)
        return {"rate_hz": self.rate.rate(self.wall()), "latency_ms_p50": l50 * 1e3, "latency_ms_p99": l99 * 1e3,
                "encode_ms_p50": e50 * 1e3, "encode_ms_p99": e99 * 1e3, "frames": self.frames,
                "dropped": sum(self.drops.values()), **{f"dropped_{k}": n for k, n in sorted(self.drops.items())},
                "last_drop": self.last_drop, "engine_errors": self.engine_errors, "last_error": self.last_error,
                "goals_set": self.goals}

    def diagnostic_level(self) -> tuple[int, str]:
        if self.error_wall is not None and self.wall() - self.error_wall < ERROR_HOLD_S:
            return DiagnosticStatus.ERROR, f"engine error ({self.engine_errors} so far): {self.last_error}"
        if self.rate.rate(self.wall()) == 0.0:
            return DiagnosticStatus.WARN, f"no frames on {self.cfg.image_topic}"
        return DiagnosticStatus.OK, "encoding"


def main(args=None) -> int:
    return run_node(lambda: EncoderNode().start(), "encoder", args)


if __name__ == "__main__":
    raise SystemExit(main())
