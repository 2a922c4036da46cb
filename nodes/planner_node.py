"""planner_node: latent MPC. Plans toward the goal latent on each new latent and commands the robot.

Subscribes /jepa/latent (jepa_pilot/Latent), /jepa/goal_latent (Latent, latched),
           /jepa/estop (std_msgs/Bool: true latches a stop until false)
Publishes  /cmd_vel (geometry_msgs/TwistStamped; Twist with command_type:=twist; or the robot
           profile's command topic and type, e.g. Float64MultiArray for arms)
           /jepa/plan (jepa_pilot/PlanStatus: status, reason, planned actions, cost, distances, time)
           /diagnostics (command rate, latency frame stamp -> command, planning time, status)

The bundle's rollout runs in-process (WorldModelEngine + control.planner.Planner,
CEM or MPPI); the history is the last K latents one model step apart. What to
command and which status to report (goal reached, e-stop, stale latents,
planning overrun) is decided by control.supervisor.Supervisor. A watchdog on
the wall clock (``watchdog_rate_hz``) holds the robot at zero when latents
stop; planning runs in its own callback group, so the watchdog runs during a
long plan. Latents and goals of another model id are dropped with a message.
"""
from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from std_msgs.msg import Bool

from jepa_pilot.common.config import setting
from jepa_pilot.common.timing import RateMeter, SampleWindow
from jepa_pilot.control.action_space import RobotProfile
from jepa_pilot.control.planner import Planner, PlannerConfig
from jepa_pilot.control.supervisor import Decision, Status, Supervisor, SupervisorConfig
from jepa_pilot.msg import Latent, PlanStatus
from jepa_pilot.nodes.model_node import ModelNode, ModelNodeConfig
from jepa_pilot.nodes.qos import qos
from jepa_pilot.nodes.ros_io import COMMAND_TYPES, command_msg, from_time
from jepa_pilot.nodes.runner import run_node
from jepa_pilot.perception.latents import LatentHistory, latent_problem


@dataclasses.dataclass(frozen=True)
class PlannerNodeConfig(ModelNodeConfig, SupervisorConfig, PlannerConfig):
    robot: str = setting("two_rooms", "robot profile: a name in config/robots/ or a YAML path")
    command_type: str = setting("profile", "command message: the profile's, twist_stamped or twist",
                                choices=("profile", "twist_stamped", "twist"))
    command_topic: str = setting("", "command topic ('' : the profile's, e.g. /cmd_vel)")
    watchdog_rate_hz: float = setting(20.0, "wall-clock checks per second for stale latents and overruns",
                                      low=1.0, high=1000.0)

    def part(self, cls):
        """The PlannerConfig or SupervisorConfig inside this config."""
        return cls.from_dict({f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})


CONFIG = PlannerNodeConfig  # parameters this node declares (checked against launch files by tests)


class PlannerNode(ModelNode):
    def __init__(self) -> None:
        super().__init__("planner", PlannerNodeConfig)
        self.lock = threading.Lock()
        self.supervisor = Supervisor(self.cfg.part(SupervisorConfig))
        self.rate, self.latency, self.plan_time = RateMeter(), SampleWindow(), SampleWindow()
        self.counts = dict(plans=0, overruns=0, dropped_latents=0, stops=0)
        self.last = Decision(Status.IDLE, "no goal")
        self.goal_header, self.latest_header, self.reset_planner, self.status_time = None, None, True, 0.0
        self.subs, self.timer = [], None

    def configure(self, engine) -> None:
        cfg, spec = self.cfg, engine.spec
        self.profile = RobotProfile.load(cfg.robot)
        self.space = self.profile.action_space
        if self.space.dim != spec.action_dim:
            raise ValueError(f"bundle actions ({', '.join(spec.action_names)}) do not fit robot {self.profile.name} "
                             f"({', '.join(self.space.fields)})")
        if not np.allclose(self.space.scale, spec.action_scale) and not np.allclose(spec.action_scale, 1.0):
            self.get_logger().warning(f"robot {self.profile.name} limits {self.space.scale} differ from the bundle's "
                                      f"training data {spec.action_scale}: the model's motion will be off")
        self.kind = self.profile.command_type if cfg.command_type == "profile" else cfg.command_type
        if cfg.command_type != "profile" and not self.space.is_twist:
            raise ValueError(f"command_type {cfg.command_type} does not fit robot {self.profile.name} "
                             f"({self.profile.embodiment}): use command_type profile")
        self.planner = Planner(engine, cfg.part(PlannerConfig))
        self.history = LatentHistory(spec.history, spec.model_step)
        topic = cfg.command_topic or self.profile.command_topic
        self.cmd_pub = self.publisher(COMMAND_TYPES[self.kind], topic, qos("reliable"))
        self.plan_pub = self.publisher(PlanStatus, "/jepa/plan", qos("reliable"))
        self.get_logger().info(f"commanding {self.profile.name} on {topic} ({self.kind}), "
                               f"{cfg.method} {cfg.samples}x{cfg.iterations}")

    def activate(self) -> None:
        planning, control = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()
        self.subs = [
            self.create_subscription(Latent, "/jepa/latent", self._on_latent, qos("reliable", depth=1),
                                     callback_group=planning),
            self.create_subscription(Latent, "/jepa/goal_latent", self._on_goal, qos("latched"),
                                     callback_group=control),
            self.create_subscription(Bool, "/jepa/estop", self._on_estop, qos("reliable"), callback_group=control)]
        self.timer = self.create_timer(1.0 / self.cfg.watchdog_rate_hz, self._watchdog, callback_group=control,
                                       clock=self.steady)

    def deactivate(self) -> None:
        for sub in self.subs:
            self.destroy_subscription(sub)
        if self.timer is not None:
            self.destroy_timer(self.timer)
        self.subs, self.timer = [], None
        if self.supervisor.goal is not None:
            self._command(None)  # leave the robot stopped

    def on_params(self, cfg) -> None:
        self.supervisor.config = cfg.part(SupervisorConfig)

    # --- inputs -----------------------------------------------------------------------
    def _usable(self, msg: Latent, what: str) -> np.ndarray | None:
        problem = latent_problem(self.engine.spec, msg.model_id, msg.shape, len(msg.data))
        if problem:
            self.counts["dropped_latents"] += 1
            self.get_logger().warning(f"{what} dropped: {problem}", throttle_duration_sec=2.0)
            return None
        return np.asarray(msg.data, dtype=np.float32)

    def _on_goal(self, msg: Latent) -> None:
        z = self._usable(msg, "goal latent")
        if z is None:
            return
        with self.lock:
            refused = self.supervisor.set_goal(z, self.stamp_of(msg))
            if not refused:
                self.goal_header, self.reset_planner = msg.header, True
        if refused:
            self.get_logger().info(refused)
        else:
            self.get_logger().info(f"new goal (stamp {self.stamp_of(msg):.3f}, frame {msg.header.frame_id!r})")

    def _on_estop(self, msg: Bool) -> None:
        with self.lock:
            if msg.data == self.supervisor.estop:
                return
            self.supervisor.set_estop(msg.data)
            if msg.data:
                self.get_logger().warning("e-stop engaged: robot held at zero until /jepa/estop is false")
                self._act(Decision(Status.STOPPED, "e-stop engaged", hold=True), None, force=True)
            else:
                self.get_logger().info("e-stop released: resuming with the next latent")

    def _on_latent(self, msg: Latent) -> None:
        z = self._usable(msg, "latent")
        if z is None:
            return
        stamp = self.stamp_of(msg)
        with self.lock:
            self.latest_header = msg.header
            self.history.add(stamp, z)
            decision = self.supervisor.on_latent(z, stamp, self.ros_now(), self.wall())
            goal, version, z_hist = self.supervisor.goal, self.supervisor.goal_version, self.history.window()
            # A new goal, or a plan made before a stop, is no warm start.
            reset = decision.plan and (self.reset_planner or self.last.status != Status.PLANNING)
            self.reset_planner = self.reset_planner and not reset
        plan, elapsed = None, 0.0
        if decision.plan:
            if reset:
                self.planner.reset()
            start = time.perf_counter()
            plan = self.planner.plan(z_hist, goal)
            elapsed = time.perf_counter() - start
            self.plan_time.add(elapsed)
            self.counts["plans"] += 1
        with self.lock:  # decide and publish under the lock: an e-stop or the watchdog cannot interleave
            if plan is not None:
                decision = self.supervisor.on_plan(elapsed, version, self.ros_now(), self.wall(),
                                                   decision.goal_distance)
                if decision is None:
                    return  # the goal changed while planning
                self.counts["overruns"] += decision.status == Status.STOPPED and "planning" in decision.reason
            self._act(decision, msg.header, plan, elapsed)

    def _watchdog(self) -> None:
        with self.lock:
            decision = self.supervisor.watchdog(self.ros_now(), self.wall())
            if decision is not None:
                self._act(decision, None)

    # --- outputs ----------------------------------------------------------------------
    def _act(self, decision: Decision, header, plan=None, planning_time: float = 0.0, force: bool = False) -> None:
        """Command the robot and publish the status. From the watchdog (header None), the status is
        published when it changes, and at most twice a second while it holds."""
        changed = (decision.status, decision.reason) != (self.last.status, self.last.reason)
        due = force or decision.status != self.last.status or self.wall() - self.status_time > 0.5
        if changed and decision.status == Status.STOPPED:
            self.counts["stops"] += 1
            self.get_logger().warning(f"robot stopped: {decision.reason}", throttle_duration_sec=1.0)
        elif changed and decision.status != self.last.status:
            self.get_logger().info(f"{decision.status.name.lower()}: {decision.reason or 'driving'}")
        self.last = decision
        if decision.drive and plan is not None:
            self._command(plan.actions[0], header)
        elif decision.hold:
            self._command(None)
        if header is None and not due:
            return
        self.status_time = self.wall()
        status = PlanStatus(model_id=self.engine.model_id, status=int(decision.status), reason=decision.reason,
                            planner=self.cfg.method, action_dim=self.space.dim, planning_time=planning_time,
                            goal_distance=decision.goal_distance)
        if header is not None:
            status.header = header
        else:
            status.header.stamp = self.get_clock().now().to_msg()
            status.header.frame_id = self.latest_header.frame_id if self.latest_header else ""
        if self.goal_header is not None:
            status.goal_header = self.goal_header
        if plan is not None:
            status.horizon, status.cost, status.iterations = len(plan.actions), plan.cost, plan.iterations
            status.actions = plan.actions.astype(np.float32).ravel().tolist()
        self.plan_pub.publish(status)

    def _command(self, action: np.ndarray | None, header=None) -> None:
        """Publish a normalised action (None: zero) in the robot's command type."""
        action = np.zeros(self.space.dim) if action is None else action
        self.cmd_pub.publish(command_msg(self.kind, self.space, action, self.get_clock().now().to_msg(),
                                         self.profile.base_frame))
        self.rate.tick(self.wall())
        now = self.ros_now()
        if header is not None and now is not None:
            self.latency.add(now - from_time(header.stamp))

    # --- diagnostics --------------------------------------------------------------------
    def diagnostic_values(self) -> dict:
        (l50, l99), (p50, p99) = self.latency.percentiles(50, 99), self.plan_time.percentiles(50, 99)
        return {"status": self.last.status.name, "reason": self.last.reason, "goal_distance": self.last.goal_distance,
                "command_rate_hz": self.rate.rate(self.wall()), "latency_ms_p50": l50 * 1e3,
                "latency_ms_p99": l99 * 1e3, "plan_ms_p50": p50 * 1e3, "plan_ms_p99": p99 * 1e3, **self.counts}

    def diagnostic_level(self) -> tuple[int, str]:
        level = DiagnosticStatus.WARN if self.last.status == Status.STOPPED else DiagnosticStatus.OK
        return level, f"{self.last.status.name.lower()}{': ' + self.last.reason if self.last.reason else ''}"


def main(args=None) -> int:
    return run_node(lambda: PlannerNode().start(), "planner", args, threads=2)


if __name__ == "__main__":
    raise SystemExit(main())
