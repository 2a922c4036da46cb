"""planner_node: latent MPC. Plans toward the goal latent on each new latent and commands the robot.

Subscribes /jepa/latent (jepa_pilot/Latent; handed in by the encoder instead in one process:
           nodes/pilot_node.py), /jepa/goal_latent (Latent, latched),
           /jepa/estop (std_msgs/Bool: true latches a stop until false)
           /jepa/explore (std_msgs/Bool: true takes or renews an exploration lease of
           ``explore_lease`` s: random actions instead of plans; the online learner's)
Publishes  the robot profile's command topic and type (/cmd_vel TwistStamped, Twist, Float64MultiArray)
           /jepa/plan (jepa_pilot/PlanStatus: status, reason, planned actions, cost, distances, time)
           /diagnostics (command rate, latency frame stamp -> command, planning time, status)
Services   ~/clear_goal (std_srvs/Trigger): drop the goal, zero command, IDLE

Every decision is control.mpc.LatentMPC's (supervisor, latent history, CEM/MPPI
planner, warm start); this node converts messages, calls it and publishes.
Latents are planned on in a thread of their own (common/worker.py): the newest
latent waits while a plan runs, and replaces an older one still waiting
(``latents_replaced`` in /diagnostics). Planning runs outside the lock on a
snapshot, so the executor's one thread keeps serving the wall-clock watchdog
(``watchdog_rate_hz``), the e-stop and the services during a long plan; a
failure in the planning thread ends the process as a failed callback does.
Latents and goals of another model id are dropped with a message.
Hot-swap: a goal latent of the staged model is kept for the switch, which
happens on the first latent of that model; a plan still running on the old
model when it comes is dropped, so no command mixes the two.
However the process ends (signal, exception, lifecycle deactivate or shutdown),
the robot is left with a zero command (``safe_stop``, called by nodes/runner.py).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from std_msgs.msg import Bool, Header
from std_srvs.srv import Trigger

from jepa_pilot.common.config import setting
from jepa_pilot.common.timing import RateMeter, SampleWindow
from jepa_pilot.control.action_space import RobotProfile
from jepa_pilot.control.landmarks import LandmarkGraph
from jepa_pilot.control.mpc import LatentMPC, Status, Step, robot_fit
from jepa_pilot.control.planner import PlannerConfig
from jepa_pilot.control.supervisor import SupervisorConfig
from jepa_pilot.msg import Latent, PlanStatus
from jepa_pilot.nodes.jepa_io import plan_status_msg
from jepa_pilot.nodes.model_node import ModelNode, ModelNodeConfig
from jepa_pilot.nodes.qos import qos
from jepa_pilot.nodes.commands import CommandOutput
from jepa_pilot.nodes.ros_io import from_time
from jepa_pilot.nodes.runner import node_worker, run_node
from jepa_pilot.perception.bound import on_cuda
from jepa_pilot.perception.latents import latent_problem


@dataclasses.dataclass(frozen=True)
class PlannerNodeConfig(ModelNodeConfig, SupervisorConfig, PlannerConfig):
    robot: str = setting("two_rooms", "robot profile: a name in config/robots/ or a YAML path")
    command_type: str = setting("profile", "command message: the profile's, twist_stamped or twist",
                                choices=("profile", "twist_stamped", "twist"))
    command_topic: str = setting("", "command topic ('' : the profile's, e.g. /cmd_vel)")
    watchdog_rate_hz: float = setting(20.0, "wall-clock checks per second for stale latents and overruns",
                                      low=1.0, high=1000.0)
    search: str = setting("host", "where candidates are sampled, rolled out and scored: host (NumPy; each "
                          "rollout's inputs and outputs cross to the provider) or device (on the device the "
                          "rollout runs on: for a GPU, where the whole search is one exported graph, cached, "
                          "replayed as a CUDA graph; needs torch)", choices=("host", "device"))

    def part(self, cls):
        """The PlannerConfig or SupervisorConfig inside this config."""
        return cls.from_dict({f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})


CONFIG = PlannerNodeConfig  # parameters this node declares (checked against launch files by tests)


class PlannerNode(ModelNode):
    def __init__(self) -> None:
        super().__init__("planner", PlannerNodeConfig)
        self.mpc: LatentMPC | None = None
        self.rate, self.latency, self.plan_time = RateMeter(), SampleWindow(), SampleWindow()
        self.dropped_latents = 0
        self.goal_header, self.latest_header, self.status_time = None, None, 0.0
        self.out: CommandOutput | None = None
        self.pending_goal: tuple | None = None  # (model id, z, stamp, header): a goal of the staged model
        self.plan_sinks: list = []  # composed process: nodes the plans are handed to (nodes/pilot_node.py)
        self.planning = node_worker(self, self._plan_on, "planning")

    def configure(self, engine) -> None:
        cfg, spec = self.cfg, engine.spec
        self.profile = RobotProfile.load(cfg.robot)
        self.space = self.profile.action_space
        self.kind, warning = robot_fit(self.profile, spec, cfg.command_type)  # raises ValueError: no fit
        if warning:
            self.get_logger().warning(warning)
        self.mpc = self._new_mpc(engine)
        self.out = CommandOutput(self, self.profile, self.kind, cfg.command_topic or None, lifecycle=True)
        self._lifecycle_pubs.append(self.out.publisher)
        topic = self.out.topic
        self.plan_pub = self.publisher(PlanStatus, "/jepa/plan", qos("reliable"))
        self.get_logger().info(f"commanding {self.profile.name} on {topic} ({self.kind}), "
                               f"{cfg.method} {cfg.samples}x{cfg.iterations}")

    def _new_mpc(self, engine) -> LatentMPC:
        cfg, spec = self.cfg, engine.spec
        planner = None
        if cfg.search == "device":
            from jepa_pilot.control.device_planner import engine_planner  # torch: only on this path
            from jepa_pilot.world_model.finetune import load_world_model
            planner = engine_planner(engine, cfg.part(PlannerConfig), load_world_model)
            captured = f", the search graph: {planner.captured}" if planner.device.type == "cuda" else ""
            self.get_logger().info(f"search on the device: torch tensors on {planner.device}{captured}")
        metric = LandmarkGraph.of_bundle(engine.bundle)  # the bundle's map of its latent space, if it ships one
        if metric is not None and planner is not None:
            self.get_logger().warning("the bundle's landmarks are not used by search:=device (latent distance)")
        elif metric is not None:
            self.get_logger().info(f"planning along the bundle's {len(metric.centres)} landmarks")
        return LatentMPC(engine, spec.history, spec.model_step, cfg.part(PlannerConfig), cfg.part(SupervisorConfig),
                         explore_period=spec.control_period, planner=planner, metric=metric)

    def rollout_batches(self) -> tuple[int, ...]:
        if self.cfg.search == "device":
            return (self.cfg.samples,)  # the device rollout's one batch (on CUDA the search graph warms itself)
        return (self.cfg.samples, 1)  # each iteration's candidates, then the chosen plan

    def check_fit(self, engine) -> None:
        super().check_fit(engine)
        if self.cfg.search == "device" and on_cuda(engine.sessions["rollout"]):
            from jepa_pilot.control.search_graph import export_search  # torch: only on this path
            from jepa_pilot.world_model.finetune import load_world_model

            export_search(engine.bundle, self.cfg.part(PlannerConfig), load_world_model)  # the switch finds it
        robot_fit(self.profile, engine.spec, self.cfg.command_type)
        LandmarkGraph.of_bundle(engine.bundle)  # refused now if they belong to another encoder, not at the switch

    def switched(self, old) -> None:
        """A fresh MPC on the new model; the e-stop carries over, the goal comes in the new latent space."""
        previous, goal = self.mpc, self.pending_goal
        self.mpc, self.pending_goal = self._new_mpc(self.engine), None
        self.mpc.carry_over(previous)
        if goal is not None and goal[0] == self.engine.model_id:
            self.mpc.set_goal(goal[1], goal[2])
            self.goal_header = goal[3]
        elif previous.goal is not None:  # no goal in the new space yet: hold until it comes
            self.goal_header = None
            self.get_logger().warning(f"no goal in model {self.engine.model_id} yet: robot held")
            self._act(self.mpc.clear_goal(), None, force=True)

    def activate(self) -> list:
        return [self.subscribe(Latent, "/jepa/latent", self.on_latent, qos("reliable", depth=1)),
                self.create_subscription(Latent, "/jepa/goal_latent", self._on_goal, qos("latched")),
                self.create_subscription(Bool, "/jepa/estop", self._on_estop, qos("reliable")),
                self.create_subscription(Bool, "/jepa/explore", self._on_explore, qos("latched")),
                self.create_service(Trigger, "~/clear_goal", self._on_clear_goal),
                self.create_timer(1.0 / self.cfg.watchdog_rate_hz, self._watchdog, clock=self.steady)]

    def deactivate(self) -> None:
        if self.out.hold():  # leave the robot stopped
            self.get_logger().info("inactive: zero command sent")

    def safe_stop(self) -> None:
        """The process ends (signal, exception, shutdown): a zero command first if the robot was moving;
        none after it, even from a plan that finishes meanwhile."""
        locked = self.lock.acquire(timeout=0.5)  # a stuck callback must not keep the robot moving
        try:
            if self.out is not None and self.out.close():
                self.get_logger().info("stopping: zero command sent")
        finally:
            if locked:
                self.lock.release()
        self.planning.close(timeout=1.0)  # a waiting latent is dropped; a plan in progress commands nothing now

    def on_params(self, cfg) -> None:
        with self.lock:
            if self.mpc is not None:
                self.mpc.set_config(cfg.part(SupervisorConfig))

    # --- inputs -----------------------------------------------------------------------
    def _usable(self, msg: Latent, what: str, engine=None) -> np.ndarray | None:
        problem = latent_problem((engine or self.engine).spec, msg.model_id, msg.shape, len(msg.data))
        if problem:
            self.dropped_latents += 1
            self.get_logger().warning(f"{what} dropped: {problem}", throttle_duration_sec=2.0)
        return None if problem else np.asarray(msg.data, dtype=np.float32)

    def _on_goal(self, msg: Latent) -> None:
        with self.lock:
            staged = self.staging.peek() if self.active else None
            if staged is not None and msg.model_id == staged.model_id:
                z = self._usable(msg, "goal latent", staged)
                self.pending_goal = None if z is None else (msg.model_id, z, self.stamp_of(msg), msg.header)
                self.get_logger().info(f"goal in model {msg.model_id} kept for the switch to it")
                return
            z = self._usable(msg, "goal latent") if self.active else None
            if z is None:
                return
            refused = self.mpc.set_goal(z, self.stamp_of(msg))
            self.goal_header = self.goal_header if refused else msg.header
        self.get_logger().info(refused or f"new goal (stamp {self.stamp_of(msg):.3f}, "
                                          f"frame {msg.header.frame_id!r})")

    def _on_estop(self, msg: Bool) -> None:
        with self.lock:
            if not self.active or msg.data == self.mpc.estop:
                return
            step = self.mpc.set_estop(msg.data)
            if step is not None:
                self.get_logger().warning("e-stop engaged: robot held at zero until /jepa/estop is false")
                self._act(step, None, force=True)
            else:
                self.get_logger().info("e-stop released: resuming with the next latent")

    def _on_explore(self, msg: Bool) -> None:
        with self.lock:
            if not self.active:
                return
            was = self.mpc.exploring(self.wall())
            self.mpc.set_explore(msg.data, self.wall())
        if msg.data != was:
            self.get_logger().warning("exploring: random actions until /jepa/explore is false or not renewed"
                                      if msg.data else "exploration ended: planning again")

    def _on_clear_goal(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self.lock:
            if not self.active:
                response.success, response.message = False, f"planner is {self.state_label}"
                return response
            had = self.mpc.goal is not None
            self._act(self.mpc.clear_goal(), None, force=True)
            self.goal_header = None
        response.success, response.message = True, "goal cleared, robot stopped" if had else "no goal"
        self.get_logger().info(response.message)
        return response

    def on_latent(self, msg: Latent) -> None:
        """A latent (subscribed, or handed in by the encoder): the planning thread takes the newest."""
        self.planning.put(msg)

    def _plan_on(self, msg: Latent) -> None:
        """In the planning thread: one control step on ``msg``."""
        with self.lock:
            if self.active and msg.model_id != self.engine.model_id:
                self.switch_engine(msg.model_id)  # the first latent of the staged model: switch now
            z = self._usable(msg, "latent") if self.active else None
            if z is None:
                return
            mpc = self.mpc
            self.latest_header = msg.header
            step = self.mpc.on_latent(z, self.stamp_of(msg), self.ros_now(), self.wall())
            if step.job is None:
                self._act(step, msg.header)
                return
        result = mpc.plan(step.job)  # outside the lock: the watchdog and the e-stop stay responsive
        self.plan_time.add(result.planning_time)
        with self.lock:  # decide and publish: an e-stop, the watchdog or a transition cannot interleave
            if not self.active or self.mpc is not mpc:  # deactivated, shut down or model switched meanwhile
                return
            step = self.mpc.on_plan(result, self.ros_now(), self.wall())
            if step is not None:  # None: the goal changed while planning
                self._act(step, msg.header)

    def _watchdog(self) -> None:
        with self.lock:
            if not self.active:
                return
            step = self.mpc.watchdog(self.ros_now(), self.wall())
            if step is not None:
                self._act(step, None)

    # --- outputs ----------------------------------------------------------------------
    def _act(self, step: Step, header, force: bool = False) -> None:
        """Command the robot and publish the status. From the watchdog (header None), the status is
        published when it changes, and at most twice a second while it holds."""
        decision, new_status = step.decision, step.decision.status != step.previous.status
        if step.changed and decision.status == Status.STOPPED:
            self.get_logger().warning(f"robot stopped: {decision.reason}", throttle_duration_sec=1.0)
        elif new_status:
            self.get_logger().info(f"{decision.status.name.lower()}: {decision.reason or 'driving'}")
        if step.command is not None:
            self._command(step.command, header if step.decision.drive else None)
        if header is None and not (force or new_status or self.wall() - self.status_time > 0.5):
            return
        self.status_time = self.wall()
        if header is None:  # from the watchdog: now, in the newest latent's frame
            header = Header(stamp=self.get_clock().now().to_msg(),
                            frame_id=self.latest_header.frame_id if self.latest_header else "")
        msg = plan_status_msg(step, header, self.engine.model_id, self.cfg.method, self.space.dim, self.goal_header)
        self.plan_pub.publish(msg)
        for sink in self.plan_sinks:
            sink(msg)

    def _command(self, action: np.ndarray, header=None) -> None:
        """Publish a normalised action in the robot's command type; ``header``: the latent it acts on."""
        if not self.out.send(action):
            return
        self.rate.tick(self.wall())
        now = self.ros_now()
        if header is not None and now is not None:
            self.latency.add(now - from_time(header.stamp))

    # --- diagnostics --------------------------------------------------------------------
    def diagnostic_values(self) -> dict:
        (l50, l99), (p50, p99) = self.latency.percentiles(50, 99), self.plan_time.percentiles(50, 99)
        return {**self.mpc.report(), "command_rate_hz": self.rate.rate(self.wall()), "latency_ms_p50": l50 * 1e3,
                "latency_ms_p99": l99 * 1e3, "plan_ms_p50": p50 * 1e3, "plan_ms_p99": p99 * 1e3,
                "dropped_latents": self.dropped_latents, "latents_replaced": self.planning.replaced}

    def diagnostic_level(self) -> tuple[int, str]:
        status, reason = self.mpc.last.status, self.mpc.last.reason
        level = DiagnosticStatus.WARN if status == Status.STOPPED else DiagnosticStatus.OK
        return level, f"{status.name.lower()}{': ' + reason if reason else ''}"


def main(args=None) -> int:
    return run_node(lambda: PlannerNode().start(), "planner", args)


if __name__ == "__main__":
    raise SystemExit(main())
