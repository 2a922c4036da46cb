"""The evaluation harness for the ROS 2 graph: start it, watch it, give it goals, collect results.

The one module outside ``nodes/`` that imports rclpy. It is not part of the
robot graph: `jepa-pilot demo`, `jepa-pilot eval --policies ros`,
`jepa-pilot eval-adapt` and `jepa-pilot bench` use it to

* build the sim graph from ``launch/sim.launch.yaml`` with overrides
  (:func:`sim_graph`), started by :class:`jepa_pilot.cli.supervisor.Launcher`;
* watch what the robot publishes (:class:`GraphWatcher`): camera frames with
  their wall-clock arrival, the true state from ``/odom`` or ``/joint_states``,
  the sim clock, the planner's ``/jepa/plan``, the predictor's
  ``/jepa/surprise``, the model ids on ``/jepa/latent`` and the trainer's
  ``/jepa/model_update`` announcements and the trainer's exploration
  requests on ``/jepa/explore``;
* set a node's parameters through its ``set_parameters`` service
  (:meth:`GraphWatcher.set_parameters`: the sim node's world changes);
* drive goal episodes (:func:`run_goals`): reset the sim node to the start,
  take the camera image of the goal state, set it as the goal (encoder
  ``set_goal``), and apply the success definition of
  :mod:`jepa_pilot.evaluation.metrics` to the true state, step by step in
  simulated time, exactly as the direct loop does.
"""
from __future__ import annotations

import contextlib
import math
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from geometry_msgs.msg import TwistStamped
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool

from jepa_pilot.cli.launch import find_package_share, parse_launch_file
from jepa_pilot.evaluation.metrics import EpisodeRecord, GoalTracker
from jepa_pilot.msg import Latent, ModelUpdate, PlanStatus, Surprise
from jepa_pilot.nodes.qos import qos
from jepa_pilot.nodes.ros_io import ImageError, from_time, msg_to_image, to_time
from jepa_pilot.srv import GetGoalImage, ResetSim, SetGoal

__all__ = ["sim_graph", "GraphWatcher", "ServiceTimeout", "service_node", "call_service", "watching", "wait_until_up", "run_goals", "watch",
           "frame_loss", "RELAY_MODES"]

# What the camera relay of a GraphWatcher does to the frames it forwards (fault injection).
RELAY_MODES = ("pass", "silent", "drop_half", "burst")
BURST = 10  # frames forwarded per camera frame in "burst" mode
RESEND_S = 3.0  # a service request not answered within this is sent again


class ServiceTimeout(RuntimeError):
    """A service of the graph was not available or did not answer; ``node`` is the node that serves it
    (the first name of ``/node/service``)."""

    def __init__(self, service: str, what: str) -> None:
        super().__init__(f"service {service} {what}")
        self.service, self.node = service, service_node(service)


def service_node(service: str) -> str:
    """The node that serves ``/node/service`` (its first name)."""
    return service.strip("/").split("/")[0]


def call_service(client, request, spin_until, timeout: float, resend: bool = True):
    """The first answer to ``request`` on ``client``, spinning with ``spin_until(done, seconds)``;
    ServiceTimeout if the service is not there or does not answer within ``timeout`` s. With ``resend``
    (idempotent services only) the request is sent again every RESEND_S: a reply can be lost while DDS is
    still matching the client's reader, most often on a client's first call."""
    if not spin_until(client.service_is_ready, timeout):
        raise ServiceTimeout(client.srv_name, "is not available")
    futures, end = [], time.monotonic() + timeout
    answered = lambda: any(f.done() for f in futures)  # noqa: E731
    while time.monotonic() < end and not answered():
        futures.append(client.call_async(request))
        spin_until(answered, min(RESEND_S, end - time.monotonic()) if resend else end - time.monotonic())
    for future in futures:
        if not future.done():
            client.remove_pending_request(future)
    done = [f for f in futures if f.done()]
    if not done:
        raise ServiceTimeout(client.srv_name, f"did not answer ({len(futures)} request(s) in {timeout:g} s)")
    return done[0].result()


def sim_graph(env: str, seed: int = 0, jepa: bool = True, bundle: str | None = None, explore: bool | None = None,
              learn: bool = False, base_data: str = "", compose: bool = False, **node_params: dict):
    """The node specs of launch/sim.launch.yaml for ``env``, with parameter overrides per node
    (``planner={...}``, ``sim={...}``, ``encoder={...}``, ``trainer={...}``).

    The world-model nodes get ``bundle`` (default: the bundle named like the env, as `eval` does);
    ``learn`` adds the trainer node, fine-tuning on ``base_data`` ('': the launch file's default);
    ``compose`` runs the encoder, planner and predictor in one process (nodes/pilot_node.py).
    """
    args = {"env": env, "seed": str(seed), "jepa": str(jepa).lower(), "learn": str(learn).lower(),
            "compose": str(compose).lower()}
    if base_data:
        args["base_data"] = str(base_data)
    if jepa:
        args["bundle"] = str(bundle or env)
    if explore is not None:
        args["explore"] = str(explore).lower()
    specs = parse_launch_file(find_package_share("jepa_pilot") / "launch" / "sim.launch.yaml", args)
    for spec in specs:
        spec.params.update(node_params.get(spec.name) or {})
    return specs


def true_state(env, pose=None, joints=None) -> np.ndarray:
    """What the robot reports -> an env state vector with its positions filled (velocities 0).

    Enough for ``env.goal_distance``, which looks at task positions only.
    """
    state = np.zeros(env.state_dim)
    if env.embodiment == "arm":
        state[:2] = joints[:2]
    else:
        state[:2] = pose[:2]
        if env.embodiment == "diff_drive_base":
            state[2] = pose[2]
    return state


def frame_loss(stamps: list[float], rate_hz: float | None = None) -> dict:
    """Frames lost between publisher and subscriber, from the stamps received.

    The sim node stamps a frame every 1/rate_hz simulated seconds (its
    ``camera_rate_hz``; None: the median spacing of the stamps), on its step
    grid, so each spacing is within a step of that period. A gap of about k
    periods between consecutive stamps received means k - 1 frames lost on
    the way (a reset may bring the next frame early: never counted as lost).
    """
    stamps = sorted(set(stamps))
    if len(stamps) < 2:
        return {"received": len(stamps), "expected": len(stamps), "lost": 0, "loss_rate": 0.0}
    gaps = np.diff(stamps)
    periods = gaps * (rate_hz if rate_hz is not None else 1.0 / float(np.median(gaps)))
    lost = int(np.maximum(np.round(periods) - 1, 0).sum())
    expected = len(stamps) + lost
    return {"received": len(stamps), "expected": expected, "lost": lost, "loss_rate": lost / expected}


class GraphWatcher(Node):
    """Records, with wall-clock arrival times, what the robot and the planner publish."""

    def __init__(self, env, keep_frames: bool = True, relay_to: str | None = None) -> None:
        super().__init__("jepa_pilot_harness")
        # One executor for the session (rclpy.spin_once(node) adds and removes the node on every call).
        self.spinner = SingleThreadedExecutor()
        self.spinner.add_node(self)
        self.env, self.keep_frames = env, keep_frames
        self.call_timeout = 30.0  # seconds a service may take to appear, then to answer
        self.frames: list[np.ndarray] = []                 # (H, W, 3) uint8, if keep_frames
        self.image_times: list[tuple[float, float]] = []   # (wall arrival, header stamp)
        self.states: list[tuple[float, np.ndarray]] = []   # (stamp, env state) from /odom or /joint_states
        self.plans: list[tuple[float, PlanStatus]] = []    # (wall arrival, message)
        self.commands: list[tuple[float, bool]] = []       # (wall arrival, moves the robot) from /cmd_vel
        # (wall arrival, publication time, header stamp[, ...]): the publisher's own send time (the DDS source
        # timestamp, this machine's system clock, in s), free of this process's own delivery delays;
        # plans add (drove, planning time s)
        self.sent: dict[str, list[tuple]] = {"image": [], "latent": [], "plan": []}
        self.speeds: list[tuple[float, float]] = []        # (wall arrival, base speed m/s) from /odom
        self.diagnostics: dict[str, dict[str, str]] = {}   # node -> its latest /diagnostics values
        # Kept for the whole session (forget leaves them): a run's series.
        self.surprises: list[tuple[float, float]] = []     # (wall arrival, distance) from /jepa/surprise
        self.models_seen: dict[str, tuple[float, float]] = {}  # model id -> (wall, stamp) of its first /jepa/latent
        self.updates: list[tuple[float, ModelUpdate]] = []  # (wall arrival, message) from /jepa/model_update
        self.explore: list[tuple[float, bool]] = []  # (wall arrival, value) of each change on /jepa/explore
        self.sim_time, self.bad_images = 0.0, 0
        self.relay_mode, self._relayed = "pass", 0
        self.relay = self.create_publisher(Image, relay_to, qos("sensor_data")) if relay_to else None
        self.create_subscription(TwistStamped, "/cmd_vel", self._on_command, qos("reliable", depth=100))
        self.create_subscription(Image, "/camera/image_raw", self._on_image, qos("sensor_data"))
        self.create_subscription(Odometry, "/odom", self._on_odom, qos("reliable"))
        self.create_subscription(JointState, "/joint_states", self._on_joints, qos("reliable"))
        self.create_subscription(Clock, "/clock", self._on_clock, qos("best_effort"))
        self.create_subscription(PlanStatus, "/jepa/plan", self._on_plan, qos("reliable"))
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, qos("reliable"))
        self.create_subscription(Surprise, "/jepa/surprise", self._on_surprise, qos("reliable", depth=50))
        self.create_subscription(Latent, "/jepa/latent", self._on_latent, qos("reliable"))
        self.create_subscription(ModelUpdate, "/jepa/model_update", self._on_model_update, qos("latched"))
        self.create_subscription(Bool, "/jepa/explore", self._on_explore, qos("latched"))
        self.parameter_clients: dict[str, object] = {}  # node name -> its set_parameters client
        self.reset_client = self.create_client(ResetSim, "/sim/reset")
        self.goal_image_client = self.create_client(GetGoalImage, "/sim/get_goal_image")
        self.set_goal_client = self.create_client(SetGoal, "/encoder/set_goal")
        self.estop_pub = self.create_publisher(Bool, "/jepa/estop", qos("reliable"))

    # --- recording ----------------------------------------------------------------
    def _on_image(self, msg: Image, info) -> None:
        self.image_times.append((time.monotonic(), from_time(msg.header.stamp)))
        self.sent["image"].append((time.monotonic(), _source_time(info), from_time(msg.header.stamp)))
        if self.relay is not None:
            self._forward(msg)
        if self.keep_frames:
            try:
                self.frames.append(msg_to_image(msg)[..., :3].copy())
            except ImageError as exc:
                self.bad_images += 1
                self.get_logger().warning(f"unreadable frame: {exc}", throttle_duration_sec=5.0)

    def _forward(self, msg: Image) -> None:
        """The camera relay: forward the frame, or not, or ``BURST`` copies stamped across its period."""
        self._relayed += 1
        if self.relay_mode == "silent" or (self.relay_mode == "drop_half" and self._relayed % 2):
            return
        copies = BURST if self.relay_mode == "burst" else 1
        period = self.env.control_period
        for k in range(copies):
            if k:
                msg.header.stamp = to_time(from_time(msg.header.stamp) + period / copies)
            self.relay.publish(msg)

    def _on_command(self, msg: TwistStamped) -> None:
        t = msg.twist
        self.commands.append((time.monotonic(), any(abs(v) > 1e-9 for v in (t.linear.x, t.linear.y, t.angular.z))))

    def _on_odom(self, msg: Odometry) -> None:
        v = msg.twist.twist.linear
        self.speeds.append((time.monotonic(), math.hypot(v.x, v.y)))
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        yaw = math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))
        self.states.append((from_time(msg.header.stamp), true_state(self.env, pose=(p.x, p.y, yaw))))

    def _on_joints(self, msg: JointState) -> None:
        self.states.append((from_time(msg.header.stamp), true_state(self.env, joints=list(msg.position))))

    def _on_clock(self, msg: Clock) -> None:
        self.sim_time = from_time(msg.clock)

    def _on_plan(self, msg: PlanStatus, info) -> None:
        self.plans.append((time.monotonic(), msg))
        self.sent["plan"].append((time.monotonic(), _source_time(info), from_time(msg.header.stamp),
                                  msg.status == PlanStatus.STATUS_PLANNING, float(msg.planning_time)))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:  # "jepa_pilot: planner" -> "planner"
            node = status.name.removeprefix("jepa_pilot: ")
            self.diagnostics[node] = {kv.key: kv.value for kv in status.values}

    def _on_surprise(self, msg: Surprise) -> None:
        self.surprises.append((time.monotonic(), float(msg.distance)))

    def _on_latent(self, msg: Latent, info) -> None:
        self.sent["latent"].append((time.monotonic(), _source_time(info), from_time(msg.header.stamp)))
        if msg.model_id not in self.models_seen:
            self.models_seen[msg.model_id] = (time.monotonic(), from_time(msg.header.stamp))

    def _on_explore(self, msg: Bool) -> None:
        if not self.explore or self.explore[-1][1] != msg.data:
            self.explore.append((time.monotonic(), bool(msg.data)))

    def _on_model_update(self, msg: ModelUpdate) -> None:
        self.updates.append((time.monotonic(), msg))

    def forget(self, before: float) -> None:
        """Drop what arrived before wall time ``before``, and every recorded state (a long run between
        episodes: what a run keeps would otherwise grow without bound)."""
        for series in (self.image_times, self.plans, self.commands, self.speeds, *self.sent.values()):
            series[:] = [entry for entry in series if entry[0] >= before]
        self.frames.clear()
        self.states.clear()

    # --- waiting --------------------------------------------------------------------
    def spin_until(self, done, timeout: float, alive=lambda: True) -> bool:
        """Spin until ``done()`` (True), ``timeout`` wall seconds pass or ``alive()`` turns false."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and alive():
            if done():
                return True
            self.spinner.spin_once(timeout_sec=0.02)
        return bool(done())

    def call(self, client, request, timeout: float | None = None):
        """The answer of a service of the graph; ServiceTimeout if it is not there or does not answer.
        The graph's services are idempotent (reset, goal image, set goal, parameters): resent."""
        return call_service(client, request, self.spin_until, self.call_timeout if timeout is None else timeout)

    def clients_of(self, nodes: list[str]) -> list:
        """The harness's service clients whose services ``nodes`` serve."""
        clients = [self.reset_client, self.goal_image_client, self.set_goal_client, *self.parameter_clients.values()]
        return [c for c in clients if service_node(c.srv_name) in nodes]

    def set_parameters(self, node_name: str, **values) -> None:
        """Set parameters of node ``node_name`` (e.g. ``set_parameters("sim", action_gain=0.5)``) through
        its ``set_parameters`` service; raises RuntimeError naming each value the node refused."""
        name = node_name.strip("/")
        if name not in self.parameter_clients:
            self.parameter_clients[name] = self.create_client(SetParameters, f"/{name}/set_parameters")
        request = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                                    for k, v in values.items()])
        answer = self.call(self.parameter_clients[name], request)
        refused = [f"{k}={v!r}: {r.reason}" for (k, v), r in zip(values.items(), answer.results) if not r.successful]
        if refused or len(answer.results) != len(values):
            raise RuntimeError(f"/{name} refused " + ("; ".join(refused) or f"the parameters {values}"))

    # --- goal episodes ----------------------------------------------------------------
    def reset_sim(self, state, restart_clock: bool = False) -> None:
        """Put the simulated robot in ``state`` (and, with ``restart_clock``, sim time back to 0)."""
        request = ResetSim.Request(seed=0, state=np.asarray(state).tolist(), restart_clock=restart_clock)
        reset = self.call(self.reset_client, request)
        if not reset.success:
            raise RuntimeError(reset.message)

    def set_goal(self, goal) -> tuple[float, object]:
        """The camera image of state ``goal`` becomes the goal; returns (its stamp, the GetGoalImage answer).
        The stamp is one of its own (just after now): plans name the goal they serve by it."""
        shot = self.call(self.goal_image_client, GetGoalImage.Request(state=np.asarray(goal).tolist()))
        if not shot.success:
            raise RuntimeError(shot.message)
        stamp = self.sim_time + 1e-3
        shot.image.header.stamp = to_time(stamp)
        answer = self.call(self.set_goal_client, SetGoal.Request(image=shot.image))
        if not answer.success:
            raise RuntimeError(f"goal refused: {answer.message}")
        return stamp, shot

    def run_goal(self, start, goal, max_steps: int, radius: float, alive=lambda: True) -> tuple[EpisodeRecord, dict]:
        """One episode through the graph; returns its record and what the demo draws (image, stamps).

        The robot is held with the e-stop from before the reset until the new goal is set, so
        the planner cannot drive it on towards the previous goal from the new start.
        """
        self.estop_pub.publish(Bool(data=True))
        self.reset_sim(start)
        begin = self.sim_time
        stamp, shot = self.set_goal(goal)
        self.estop_pub.publish(Bool(data=False))
        period = self.env.control_period
        tracker = GoalTracker(self.env, start, goal, radius, max_steps, period)
        seen = len(self.states)

        def over() -> bool:
            nonlocal seen
            for t, state in self.states[seen:]:
                if t > begin + 1e-6:
                    tracker.observe(round((t - begin) / period), state)
            seen = len(self.states)
            return tracker.done

        if not self.spin_until(over, timeout=max_steps * period * 5 + 30, alive=alive):
            raise RuntimeError("the graph stopped moving in simulated time (a node died or stalled)")
        mine = [m for _, m in self.plans if abs(from_time(m.goal_header.stamp) - stamp) < 1e-6]
        record = tracker.record(
            planner_reached=any(m.status == PlanStatus.STATUS_REACHED for m in mine),
            decision_times=[m.planning_time for m in mine if m.status == PlanStatus.STATUS_PLANNING],
            notes=[m.reason for m in mine if m.status == PlanStatus.STATUS_STOPPED
                   and m.reason != "e-stop engaged"])  # the harness's own hold before the goal started
        image = np.frombuffer(bytes(shot.image.data), np.uint8).reshape(shot.image.height, shot.image.width, 3)
        end = begin + tracker.steps * period  # the stamp of the last state the episode was judged on
        return record, {"goal_image": image, "goal_stamp": stamp, "end_stamp": end}

    def latencies(self, since: float = 0.0) -> np.ndarray:
        """Frame-to-plan latency (s): wall arrival of a plan minus that of the frame with its stamp
        (the plans that arrived after wall time ``since``)."""
        frames = {round(stamp, 6): wall for wall, stamp in self.image_times}
        out = [wall - frames[key] for wall, m in self.plans if wall >= since
               and (key := round(from_time(m.header.stamp), 6)) in frames and m.status == PlanStatus.STATUS_PLANNING]
        return np.array(out)


def _source_time(info) -> float:
    """When the publisher sent the message (s, system clock), from rclpy's message info; the arrival time
    where the middleware gives none."""
    ns = info.get("source_timestamp", 0) if isinstance(info, dict) else 0
    return ns * 1e-9 if ns else time.time()


@contextlib.contextmanager
def watching(env, keep_frames: bool = True, relay_to: str | None = None):
    """A GraphWatcher in its own rclpy session (init, then shutdown on the way out)."""
    rclpy.init()
    try:
        watcher = GraphWatcher(env, keep_frames=keep_frames, relay_to=relay_to)
        yield watcher
        watcher.spinner.shutdown()
        watcher.destroy_node()
    finally:
        rclpy.try_shutdown()


def wait_until_up(watcher: GraphWatcher, alive=lambda: True, timeout: float = 180) -> None:
    """Until frames, the robot's state and the planner's status arrive (and the e-stop has a listener)."""
    ready = watcher.spin_until(lambda: watcher.image_times and watcher.states and any(
        m.status == PlanStatus.STATUS_IDLE for _, m in watcher.plans)
        and watcher.estop_pub.get_subscription_count() > 0, timeout=timeout, alive=alive)
    if not ready:
        raise RuntimeError("the graph did not come up (no images, robot state or planner status)")


def run_goals(env, pairs, max_steps: int, radius: float, alive=lambda: True, on_goal=None):
    """Drive the running graph through ``pairs`` of (start, goal) states.

    Returns (records, drawings, watcher): one EpisodeRecord and one dict of what to
    draw per pair, and the watcher with everything it recorded.
    """
    with watching(env) as watcher:
        wait_until_up(watcher, alive)
        records, drawings = [], []
        for i, (start, goal) in enumerate(pairs):
            record, drawing = watcher.run_goal(start, goal, max_steps, radius, alive)
            records.append(record)
            drawings.append(drawing)
            if on_goal is not None:
                on_goal(i, record)
    return records, drawings, watcher


def watch(env, sim_seconds: float, wall_timeout: float, on_progress=None, keep_frames: bool = True,
          alive=lambda: True) -> GraphWatcher:
    """Record the running graph for ``sim_seconds`` of robot time (or until ``wall_timeout`` / death)."""
    with watching(env, keep_frames=keep_frames) as watcher:
        start, sim_start = time.monotonic(), None
        while time.monotonic() - start < wall_timeout and alive():
            watcher.spinner.spin_once(timeout_sec=0.05)
            if watcher.image_times and sim_start is None:
                sim_start = watcher.sim_time
            if sim_start is not None:
                if on_progress is not None:
                    on_progress(watcher.sim_time - sim_start)
                if watcher.sim_time - sim_start >= sim_seconds:
                    break
    return watcher
