"""trainer_node: the robot keeps learning its world model from what it sees and does.

Subscribes the camera (``image_topic``), the robot profile's command topic
           (/cmd_vel TwistStamped or Twist, or the arm's Float64MultiArray),
           /jepa/surprise (jepa_pilot/Surprise: what the model did not expect; sampling weights,
           and whether there is anything to learn: world_model/online.py SurpriseMonitor),
           /jepa/estop (std_msgs/Bool: nothing is recorded while the robot is held),
           /jepa/model_ready (jepa_pilot/ModelReady: how the graph took an update)
Publishes  /jepa/model_update (jepa_pilot/ModelUpdate, latched): each accepted bundle
           /jepa/explore (std_msgs/Bool, latched): true each second while it asks the planner
           to explore (``explore_seconds`` after a fine-tune found the world changed), then false
           /diagnostics (buffer, recording and fine-tune rates, transitions dropped by reason,
           fine-tunes started / accepted / rejected, the last verdict, the surprise drift)
Services   ~/rollback (std_srvs/Trigger): announce the bundle before the current one again

Frames and executed commands become transitions in a bounded replay buffer
on disk (data/replay.py: the bag importer's pairing rules; steps without a
fresh command, camera gaps and clock jumps are not recorded). The learner
(world_model/online.py) fine-tunes in a child process at a lower priority on
the buffer mixed with the base dataset, gates the candidate on recent and
base data, and only an accepted, fully written bundle is announced; the
world-model nodes swap to it between two control periods.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from jepa_pilot.common.config import ConfigError, setting
from jepa_pilot.control.action_space import RobotProfile
from jepa_pilot.control.mpc import robot_fit
from jepa_pilot.data.bag import JOINT_ARRAY, TWIST, TWIST_STAMPED, command_action
from jepa_pilot.data.replay import ReplayBuffer, ReplayConfig, TransitionRecorder, live_info
from jepa_pilot.msg import ModelReady, ModelUpdate, Surprise
from jepa_pilot.nodes.params import ConfigParameters
from jepa_pilot.nodes.qos import QOS_NAMES, qos
from jepa_pilot.nodes.ros_io import COMMAND_TYPES, diagnostics, from_time, msg_to_image
from jepa_pilot.nodes.runner import run_node
from jepa_pilot.perception.bundle import load_bundle
from jepa_pilot.perception.latents import resolve_bundle
from jepa_pilot.world_model.online import BundleHistory, OnlineConfig, OnlineLearner, Update

MSG_TYPES = {"twist_stamped": TWIST_STAMPED, "twist": TWIST, "float64_multi_array": JOINT_ARRAY}


@dataclasses.dataclass(frozen=True)
class TrainerConfig(OnlineConfig, ReplayConfig):
    bundle: str = setting("two_rooms", "the bundle the graph starts with: a name in models/ or a path")
    robot: str = setting("two_rooms", "robot profile: which command fields are actions, and their limits")
    base_data: str = setting("", "the dataset the bundle was trained on, mixed in against forgetting "
                             "('': the bundle's training.dataset if it exists; none: record only)")
    work_dir: str = setting("~/.ros/jepa_pilot/learn", "replay buffer, accepted bundles and fine-tune files")
    learn: bool = setting(True, "fine-tune (false: only record the replay buffer)")
    image_topic: str = setting("/camera/image_raw", "camera image topic (sensor_msgs/Image)")
    image_qos: str = setting("sensor_data", "QoS of the image subscription", choices=QOS_NAMES)

    def part(self, cls):
        return cls.from_dict({f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})


CONFIG = TrainerConfig  # parameters this node declares (checked against launch files by tests)


def base_dataset(cfg: TrainerConfig, spec) -> Path | None:
    """The base dataset: the parameter, else the one the bundle names if it is on this machine."""
    if cfg.base_data:
        return Path(cfg.base_data).expanduser()
    named = (spec.training or {}).get("dataset")
    return Path(named) if named and (Path(named) / "dataset.yaml").is_file() else None


class TrainerNode(Node):
    def __init__(self) -> None:
        super().__init__("trainer")
        cfg = self.cfg = ConfigParameters(self, TrainerConfig).config
        try:
            root = resolve_bundle(cfg.bundle)
            spec = load_bundle(root).spec
            self.profile = RobotProfile.load(cfg.robot)
            robot_fit(self.profile, spec)
        except ValueError as exc:  # BundleError, a profile that does not load or fit: bad parameters
            raise ConfigError(f"bundle {cfg.bundle!r} with robot {cfg.robot!r}: {exc}") from None
        self.space, self.kind = self.profile.action_space, self.profile.command_type
        work = Path(cfg.work_dir).expanduser()
        log = self.get_logger()
        self.buffer = ReplayBuffer(work / "replay", live_info(spec, "trainer_node"), cfg.part(ReplayConfig),
                                   log=log.warning)
        self.recorder = TransitionRecorder(self.buffer, log=log.warning)
        history = BundleHistory(work / "bundles", spec.model_id, root, cfg.keep_bundles)
        base = base_dataset(cfg, spec) if cfg.learn else None
        self.learner = OnlineLearner(cfg.part(OnlineConfig), self.buffer, history, base, work, log=log.info)
        self.ready: dict[str, str] = {}  # node -> its last answer to an update
        self.update_pub = self.create_publisher(ModelUpdate, "/jepa/model_update", qos("latched"))
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos("reliable"))
        self.explore_pub = self.create_publisher(Bool, "/jepa/explore", qos("latched"))
        self.exploring = False
        self.create_subscription(Image, cfg.image_topic, self._on_image, qos(cfg.image_qos, depth=10))
        self.create_subscription(COMMAND_TYPES[self.kind], self.profile.command_topic, self._on_command,
                                 qos("reliable", depth=50))
        self.create_subscription(Surprise, "/jepa/surprise", self._on_surprise, qos("reliable", depth=50))
        self.create_subscription(Bool, "/jepa/estop", lambda msg: self.recorder.on_hold(msg.data), qos("reliable"))
        self.create_subscription(ModelReady, "/jepa/model_ready", self._on_ready, qos("latched", depth=20))
        self.create_service(Trigger, "~/rollback", self._on_rollback)
        self.create_timer(1.0, self._tick)
        if history.entries:  # a restart: the graph may have started on the base bundle again
            self._announce(Update(history.current["model_id"], Path(history.current["path"]), "", "restart"))
        log.info(f"recording {cfg.image_topic} + {self.profile.command_topic} into {self.buffer.root} "
                 f"({self.buffer.steps} steps already); "
                 f"{'fine-tuning on ' + str(base) + ' + live data' if base else 'not fine-tuning: ' + self.learner.last_reason}")

    # --- recording ----------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        try:
            image = msg_to_image(msg)
        except ValueError as exc:
            self.recorder.counts["bad_frame"] += 1
            self.get_logger().warning(f"frame not recorded: {exc}", throttle_duration_sec=5.0)
            return
        self.recorder.on_frame(from_time(msg.header.stamp), image)

    def _on_command(self, msg) -> None:
        stamped = self.kind == "twist_stamped"
        stamp = from_time(msg.header.stamp) if stamped else self.get_clock().now().nanoseconds * 1e-9
        try:
            action, _ = command_action(msg, MSG_TYPES[self.kind], self.space)
        except ValueError as exc:
            self.recorder.counts["bad_command"] += 1
            self.get_logger().warning(f"command not recorded: {exc}", throttle_duration_sec=5.0)
            return
        self.recorder.on_command(stamp, action)
        self.learner.monitor.on_command(time.time(), bool(np.any(np.abs(action) > 1e-3)))

    def _on_surprise(self, msg: Surprise) -> None:
        self.recorder.on_surprise(from_time(msg.header.stamp), float(msg.distance))
        self.learner.monitor.add(time.time(), msg.model_id, float(msg.distance))

    # --- learning -----------------------------------------------------------------------
    def _tick(self) -> None:
        now = time.monotonic()
        update = self.learner.tick(now)
        if update is not None:
            self._announce(update)
        exploring = self.learner.exploring(now)
        if exploring or self.exploring:  # renew the planner's lease each tick; say false once at the end
            self.explore_pub.publish(Bool(data=exploring))
        self.exploring = exploring
        self._publish_diagnostics()

    def _announce(self, update: Update) -> None:
        msg = ModelUpdate(model_id=update.model_id, bundle=str(update.bundle), parent_id=update.parent_id,
                          reason=update.reason)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.update_pub.publish(msg)
        self.get_logger().warning(f"model update announced: {update.model_id} ({update.reason})")

    def _on_ready(self, msg: ModelReady) -> None:
        self.ready[msg.node] = f"{msg.model_id}: {'ready' if msg.ready else msg.message}"

    def _on_rollback(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        update = self.learner.rollback()
        if update is None:
            response.success, response.message = False, "nothing to roll back: the graph runs the base bundle"
        else:
            self._announce(update)
            response.success, response.message = True, f"rolled back to {update.model_id}"
        return response

    def _publish_diagnostics(self) -> None:
        counts = self.recorder.counts
        values = {"recorded_steps_per_s": self.recorder.recorded_per_s(time.monotonic()),
                  "buffer_mb": self.buffer.total_bytes / 2**20, "buffer_steps": self.buffer.steps,
                  "shards": self.buffer.shards, "exploring": self.exploring, **self.learner.status(),
                  **{f"recorded_{k}": v for k, v in sorted(counts.items())},
                  **{f"ready_{k}": v for k, v in sorted(self.ready.items())}}
        self.diag_pub.publish(diagnostics("jepa_pilot: trainer", self.get_fully_qualified_name(), DiagnosticStatus.OK,
                                          self.learner.last_reason, values, self.get_clock().now().to_msg()))

    def safe_stop(self) -> None:
        """The process ends: write the shard being recorded; stop a fine-tune in flight."""
        self.recorder.flush()
        self.learner.stop()
        if self.exploring:
            self.explore_pub.publish(Bool(data=False))


def main(args=None) -> int:
    return run_node(TrainerNode, "trainer", args)


if __name__ == "__main__":
    raise SystemExit(main())
