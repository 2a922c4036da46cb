"""sim_node: the built-in MuJoCo simulator, seen through ROS 2 like a robot under Gazebo.

Publishes  /camera/image_raw (sensor_msgs/Image rgb8), /camera/camera_info,
           /odom (nav_msgs/Odometry, bases) or /joint_states (arms),
           /clock (rosgraph_msgs/Clock: other nodes run with use_sim_time:=true),
           /diagnostics (real-time factor, loop load, command statistics).
Subscribes /cmd_vel (geometry_msgs/TwistStamped, or Twist with cmd_vel_stamped:=false)
           or /arm_controller/commands (std_msgs/Float64MultiArray joint velocities).
Services   ~/reset (jepa_pilot/srv/ResetSim), ~/get_goal_image (jepa_pilot/srv/GetGoalImage).

The simulator steps in simulated time, one control period per timer tick,
paced to wall time by real_time_factor: a tick that comes late (a busy
machine) takes the steps it owes, up to CATCH_UP_S of wall time at once, so
the simulated world does not slow down with the computer; sim time starts at 0 and goes back
only on a reset with restart_clock (a plain reset moves the robot, not the clock). Commands pass through a
CommandGate: broken ones are dropped with a throttled warning, values beyond
the robot's limits are clamped, and the robot stops when none arrive for
cmd_timeout seconds of sim time.

A Gymnasium env (env:=gym:ENV_ID, see jepa_pilot.sim.gym_env) is driven like
an arm: its normalised actions are Float64MultiArray commands on
/arm_controller/commands in the env's own units (joint names: its action names,
a0, a1...), and /joint_states carries its state's positions and rates. It steps
at its own period, which control_period must equal.

The world changes of an adaptation benchmark (action_rotation_deg, action_gain,
light_scale; see jepa_pilot.sim.base) are dynamic parameters: `ros2 param set`
changes the running world from the next step, without a reset, with one warning.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Twist, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray

from jepa_pilot import sim
from jepa_pilot.common.config import Config, ConfigError, setting
from jepa_pilot.common.timing import LoopMonitor, Pacer
from jepa_pilot.control.action_space import ActionSpace
from jepa_pilot.control.command_gate import CommandGate, CommandGateConfig
from jepa_pilot.nodes.contract import robot_topics
from jepa_pilot.nodes.params import ConfigParameters
from jepa_pilot.nodes.runner import run_node
from jepa_pilot.nodes.qos import QOS_NAMES, qos
from jepa_pilot.nodes.ros_io import (camera_info, diagnostics, from_time, image_to_msg, to_time, twist_to_dict,
                                     yaw_quaternion)
from jepa_pilot.sim.base import CHANGE_SETTINGS, GAIN_RANGE, LIGHT_RANGE, ROTATION_RANGE_DEG
from jepa_pilot.sim.gym_env import gym_only_problem, is_gym
from jepa_pilot.srv import GetGoalImage, ResetSim


@dataclasses.dataclass(frozen=True)
class SimNodeConfig(Config):
    env: str = setting("two_rooms", "registered simulator env (jepa-pilot envs lists them), or gym:ENV_ID")
    env_kwargs: str = setting("{}", "gym:ENV_ID only: JSON keyword arguments for gymnasium.make")
    seed: int = setting(0, "seed of the first reset", low=0, high=2**31 - 1)
    image_width: int = setting(64, "camera image width in pixels", low=16, high=1024)
    image_height: int = setting(64, "camera image height in pixels", low=16, high=1024)
    control_period: float = setting(0.1, "simulated seconds per step (one timer tick)", low=0.001, high=1.0)
    camera_rate_hz: float = setting(10.0, "camera images per simulated second (<= 1/control_period)",
                                    low=0.1, high=1000.0)
    state_rate_hz: float = setting(30.0, "/clock and /odom (or /joint_states) messages per simulated second, "
                                   "at most one per step and one with every image (each costs every "
                                   "use_sim_time node a callback)", low=0.1, high=1000.0)
    real_time_factor: float = setting(1.0, "simulated seconds per wall second", low=0.01, high=100.0,
                                      dynamic=True)
    cmd_timeout: float = setting(0.5, "s (sim) without a valid command before the robot stops",
                                 low=0.01, high=60.0, dynamic=True)
    cmd_max_age: float = setting(0.5, "s: stamped commands older than this are dropped", low=0.0,
                                 high=60.0, dynamic=True)
    cmd_vel_stamped: bool = setting(True, "subscribe TwistStamped on /cmd_vel (false: Twist)")
    base_frame: str = setting("base_link", "robot body frame (child of odom; frame of stamped commands)")
    odom_frame: str = setting("odom", "odometry frame")
    image_qos: str = setting("sensor_data", "QoS of the camera publishers", choices=QOS_NAMES)
    action_rotation_deg: float = setting(0.0, "world change: commanded base (vx, vy) rotated by this many "
                                         "degrees, counter-clockwise (holonomic bases only)",
                                         low=ROTATION_RANGE_DEG[0], high=ROTATION_RANGE_DEG[1], dynamic=True)
    action_gain: float = setting(1.0, "world change: factor on every command the robot applies",
                                 low=GAIN_RANGE[0], high=GAIN_RANGE[1], dynamic=True)
    light_scale: float = setting(1.0, "world change: factor on the scene light (images only)",
                                 low=LIGHT_RANGE[0], high=LIGHT_RANGE[1], dynamic=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not is_gym(self.env) and self.env not in sim.registered():
            self._fail("env", self.env, f"unknown env; registered: {', '.join(sim.registered())}, or gym:ENV_ID")
        if self.camera_rate_hz * self.control_period > 1.0 + 1e-9:
            self._fail("camera_rate_hz", self.camera_rate_hz,
                       f"at most one image per step: <= {1.0 / self.control_period:g} Hz")
        if is_gym(self.env):
            changed = [n for n, v in self.world_changes().items() if v != SimNodeConfig.__dataclass_fields__[n].default]
            if changed:
                self._fail(changed[0], getattr(self, changed[0]), "world changes exist only in the built-in envs")
            return
        option, why_not = gym_only_problem(self.env, env_kwargs=self.env_kwargs)
        if why_not:
            self._fail(option, getattr(self, option), why_not)
        try:  # the env's config knows which changes its robot accepts (no rotation for an arm)
            sim.default_config(self.env, **self.world_changes())
        except ConfigError as exc:
            raise ConfigError(f"{type(self).__name__}: env {self.env}: {exc}") from None

    def world_changes(self) -> dict[str, float]:
        """The world-change settings, as ``MujocoEnv.set_changes`` takes them."""
        return {name: getattr(self, name) for name in CHANGE_SETTINGS}

    def gate_config(self) -> CommandGateConfig:
        return CommandGateConfig(timeout=self.cmd_timeout, max_age=self.cmd_max_age, frame_id=self.base_frame)


CONFIG = SimNodeConfig  # parameters this node declares (checked against launch files by tests)


def make_env(cfg: SimNodeConfig):
    """The env of ``cfg``; a Gymnasium env must step at ``cfg.control_period`` (ConfigError if not)."""
    size = dict(image_width=cfg.image_width, image_height=cfg.image_height)
    if not is_gym(cfg.env):
        return sim.make(cfg.env, control_period=cfg.control_period, **size)
    try:  # each command held for control_period: a whole number of the env's own steps
        return sim.make(cfg.env, env_kwargs=cfg.env_kwargs, control_period=cfg.control_period, **size)
    except ConfigError as exc:
        raise ConfigError(f"SimNodeConfig.{exc}") from None
CATCH_UP_S = 0.2  # wall s of steps one late tick may catch up at most (further behind, the sim slows down)


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__("sim")
        self.params = ConfigParameters(self, SimNodeConfig, on_change=self._on_params)
        cfg = self.params.config
        self.env = make_env(cfg)
        self.embodiment = "arm" if is_gym(cfg.env) else self.env.embodiment  # how ROS commands it
        fields = self.env.action_names if is_gym(cfg.env) else self.env.robot_state().joint_names
        self.space = ActionSpace.for_embodiment(self.embodiment, self.env.action_scale, fields)
        self.gate = CommandGate(self.space, cfg.gate_config())
        self.monitor = LoopMonitor(cfg.control_period / cfg.real_time_factor)  # wall-clock budget per step
        self.pacer = self._pacer()
        self.sim_time, self.next_image_time, self.next_state_time = 0.0, 0.0, 0.0
        self._change_world(cfg)
        self.obs, _ = self.env.reset(seed=cfg.seed)

        # Topics, types and QoS come from the robot contract (nodes/contract.py),
        # which the Gazebo bridge config is checked against.
        contract = robot_topics(self.embodiment)

        def qos_of(topic: str):
            return qos(cfg.image_qos if topic.startswith("/camera/") else contract[topic].qos)

        self.image_pub = self.create_publisher(Image, "/camera/image_raw", qos_of("/camera/image_raw"))
        self.info_pub = self.create_publisher(CameraInfo, "/camera/camera_info", qos_of("/camera/camera_info"))
        self.clock_pub = self.create_publisher(Clock, "/clock", qos_of("/clock"))
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos("reliable"))
        if self.space.is_twist:
            self.odom_pub = self.create_publisher(Odometry, "/odom", qos_of("/odom"))
            msg_type = TwistStamped if cfg.cmd_vel_stamped else Twist
            self.create_subscription(msg_type, "/cmd_vel", self._on_twist, qos_of("/cmd_vel"))
        else:
            self.joint_pub = self.create_publisher(JointState, "/joint_states", qos_of("/joint_states"))
            self.create_subscription(Float64MultiArray, "/arm_controller/commands", self._on_joints,
                                     qos_of("/arm_controller/commands"))
        self.create_service(ResetSim, "~/reset", self._on_reset)
        self.create_service(GetGoalImage, "~/get_goal_image", self._on_goal_image)
        self.timer = self.create_timer(cfg.control_period / cfg.real_time_factor, self._tick)
        self.create_timer(1.0, self._publish_diagnostics)
        self._publish_state()
        self.get_logger().info(
            f"{cfg.env} ({self.env.embodiment}, actions {', '.join(self.space.fields)}): "
            f"{cfg.image_width}x{cfg.image_height} camera at {cfg.camera_rate_hz:g} Hz, "
            f"step {cfg.control_period:g} s, real-time factor {cfg.real_time_factor:g}")

    # --- commands ---------------------------------------------------------------
    def _on_twist(self, msg) -> None:
        if isinstance(msg, TwistStamped):
            self._submit(twist_to_dict(msg.twist), from_time(msg.header.stamp), msg.header.frame_id)
        else:
            self._submit(twist_to_dict(msg), None, None)

    def _on_joints(self, msg: Float64MultiArray) -> None:
        self._submit(list(msg.data), None, None)

    def _submit(self, command, stamp, frame_id) -> None:
        verdict = self.gate.submit(command, self.sim_time, stamp, frame_id)
        # One call site per severity: rclpy's throttling is per call site.
        if not verdict.accepted:
            self.get_logger().error(f"command dropped: {verdict.reason}", throttle_duration_sec=1.0)
        elif verdict.clamped:
            self.get_logger().warning(f"command {verdict.reason}", throttle_duration_sec=1.0)

    # --- stepping ---------------------------------------------------------------
    def _pacer(self) -> Pacer:
        return Pacer(self.monitor.period, burst=max(2, round(CATCH_UP_S / self.monitor.period)))

    def _tick(self) -> None:
        """The steps the wall clock says are owed: one per tick, more after a late tick."""
        for _ in range(self.pacer.due(time.monotonic())):
            self._step()

    def _step(self) -> None:
        start = time.perf_counter()
        next_time = self.sim_time + self.params.config.control_period
        render = next_time + 1e-9 >= self.next_image_time  # render only frames that get published
        self.obs, *_ = self.env.step(self.gate.action(self.sim_time), render=render)
        self.sim_time = next_time
        self._publish_state()
        if self.monitor.record(time.perf_counter() - start, time.monotonic(), self.sim_time):
            self.get_logger().warning(
                f"cannot keep real time: a step took longer than its period "
                f"({self.monitor.period * 1e3:.0f} ms); real-time factor {self.monitor.real_time_factor():.2f}",
                throttle_duration_sec=5.0)

    def _publish_state(self) -> None:
        cfg, stamp, now = self.params.config, to_time(self.sim_time), self.sim_time
        image_due = self.obs.image is not None and now + 1e-9 >= self.next_image_time
        if image_due or now + 1e-9 >= self.next_state_time:
            self.next_state_time = max(self.next_state_time + 1.0 / cfg.state_rate_hz, now)
            self._publish_clock_and_robot(stamp)
        if image_due:
            self.next_image_time = max(self.next_image_time + 1.0 / cfg.camera_rate_hz, now)
            frame = self.env.camera_frame_id
            self.image_pub.publish(image_to_msg(self.obs.image, now, frame))
            self.info_pub.publish(camera_info(cfg.image_width, cfg.image_height,
                                              *self.env.camera_intrinsics(), now, frame))

    def _publish_clock_and_robot(self, stamp) -> None:
        cfg = self.params.config
        self.clock_pub.publish(Clock(clock=stamp))
        state = self.env.robot_state()
        if self.space.is_twist:
            odom = Odometry(child_frame_id=cfg.base_frame)
            odom.header.stamp, odom.header.frame_id = stamp, cfg.odom_frame
            x, y, yaw = state.base_pose
            odom.pose.pose.position.x, odom.pose.pose.position.y = float(x), float(y)
            q = odom.pose.pose.orientation
            q.x, q.y, q.z, q.w = yaw_quaternion(float(yaw))
            vx, vy, wz = map(float, state.base_twist)
            odom.twist.twist.linear.x, odom.twist.twist.linear.y, odom.twist.twist.angular.z = vx, vy, wz
            self.odom_pub.publish(odom)
        else:
            joints = JointState(name=list(state.joint_names), position=state.joint_positions.tolist(),
                                velocity=state.joint_velocities.tolist())
            joints.header.stamp = stamp
            self.joint_pub.publish(joints)

    # --- services and parameters --------------------------------------------------
    def _on_reset(self, request: ResetSim.Request, response: ResetSim.Response) -> ResetSim.Response:
        try:
            state = np.asarray(request.state, dtype=np.float64) if len(request.state) else None
            self.obs, _ = self.env.reset(seed=int(request.seed), state=state)
        except ValueError as exc:
            response.success, response.message = False, f"reset refused: {exc}"
            self.get_logger().error(response.message, throttle_duration_sec=1.0)
            return response
        self.gate.reset()
        if request.restart_clock:
            self.sim_time = 0.0
        self.next_image_time = self.next_state_time = self.sim_time  # the new view and state on the next tick
        response.success, response.message = True, f"reset with seed {request.seed}"
        response.state = self.obs.state.tolist()
        return response

    def _on_goal_image(self, request: GetGoalImage.Request,
                       response: GetGoalImage.Response) -> GetGoalImage.Response:
        try:
            if len(request.state):
                state = np.asarray(request.state, dtype=np.float64)
            else:
                state = self.env.sample_state(np.random.default_rng(request.seed))
            image = self.env.render_goal(state)
        except ValueError as exc:
            response.success, response.message = False, f"goal refused: {exc}"
            self.get_logger().error(response.message, throttle_duration_sec=1.0)
            return response
        response.success, response.message, response.state = True, "ok", state.tolist()
        response.image = image_to_msg(image, self.sim_time, self.env.camera_frame_id)
        return response

    def _on_params(self, cfg: SimNodeConfig) -> None:
        self.gate.config = cfg.gate_config()
        self.monitor.period = cfg.control_period / cfg.real_time_factor
        self.pacer = self._pacer()
        self.timer.timer_period_ns = int(self.monitor.period * 1e9)
        self.timer.reset()
        self._change_world(cfg)

    def _change_world(self, cfg: SimNodeConfig) -> None:
        """Give the env the world changes of ``cfg`` (from its next step); warn once about any that differ."""
        changed = self.env.set_changes(**cfg.world_changes())
        if changed:
            self.get_logger().warning("world changed from the next step: " + ", ".join(
                f"{name} {old:g} -> {new:g}" for name, (old, new) in changed.items()))

    def _publish_diagnostics(self) -> None:
        p50, p99 = self.monitor.work_percentiles()
        rtf = self.monitor.real_time_factor()
        behind = rtf == rtf and rtf < 0.8 * self.params.config.real_time_factor  # rtf == rtf: not NaN
        values = {"sim_time": self.sim_time, "real_time_factor": rtf, "step_ms_p50": p50 * 1e3,
                  "step_ms_p99": p99 * 1e3, "overruns": self.monitor.overruns, **self.gate.counts,
                  **self.env.changes}
        self.diag_pub.publish(diagnostics(
            "jepa_pilot: sim", self.params.config.env, DiagnosticStatus.WARN if behind else DiagnosticStatus.OK,
            f"behind real time (factor {rtf:.2f})" if behind else "running", values, to_time(self.sim_time)))


def main(args=None) -> int:
    return run_node(SimNode, "sim", args)


if __name__ == "__main__":
    raise SystemExit(main())
