"""ROS tier: the world-model nodes (encoder, planner, predictor) with the real sim node, each in its
own process over real DDS, driving the two_rooms robot with the shipped bundle."""
from __future__ import annotations

import math
import os
import shutil
import time
import types
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import TwistStamped  # noqa: E402
from lifecycle_msgs.srv import GetState  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402

from jepa_pilot.common.paths import package_share  # noqa: E402
from jepa_pilot.msg import Forecast, Latent, PlanStatus, Surprise  # noqa: E402
from jepa_pilot.nodes.qos import qos  # noqa: E402
from jepa_pilot.nodes.ros_io import from_time, image_to_msg, msg_to_image, to_time  # noqa: E402
from jepa_pilot.perception.bundle import load_bundle  # noqa: E402
from jepa_pilot.srv import GetGoalImage, ResetSim, SetGoal  # noqa: E402
from rosgraph import NodeProcess, Probe  # noqa: E402

pytestmark = pytest.mark.ros

# The shipped bundle (JEPA_PILOT_TEST_BUNDLE overrides it, e.g. to try a freshly exported one).
BUNDLE = Path(os.environ.get("JEPA_PILOT_TEST_BUNDLE") or package_share() / "models" / "two_rooms")
MAX_LATENT_AGE = 0.3
START, NEAR_GOAL, FAR_GOAL = (-0.5, -0.5, 0.0, 0.0), (-0.5, -0.15, 0.0, 0.0), (0.5, 0.5, 0.0, 0.0)
PLANNING, REACHED, STOPPED = PlanStatus.STATUS_PLANNING, PlanStatus.STATUS_REACHED, PlanStatus.STATUS_STOPPED


def model_params(**extra) -> dict:
    return dict(bundle=str(BUNDLE), providers=["cpu"], threads=1, use_sim_time=True, **extra)


def watch(probe: Probe, work: Path, nodes: dict) -> types.SimpleNamespace:
    """What the world-model graph of ``nodes`` (NodeProcess by name) publishes, recorded by ``probe``,
    and publishers of what it takes; returns once the graph is up (else fails with the nodes' logs)."""
    g = types.SimpleNamespace(
        work=work, nodes=nodes, probe=probe, model_id=load_bundle(BUNDLE).spec.model_id,
        images=probe.subscribe(Image, "/camera/image_raw", qos("sensor_data")),
        latents=probe.subscribe(Latent, "/jepa/latent", qos("reliable")),
        plans=probe.subscribe_timed(PlanStatus, "/jepa/plan", qos("reliable", depth=100)),
        cmds=probe.subscribe_timed(TwistStamped, "/cmd_vel", qos("reliable", depth=100)),
        odom=probe.subscribe_timed(Odometry, "/odom", qos("reliable")),
        forecasts=probe.subscribe(Forecast, "/jepa/forecast", qos("reliable")),
        surprises=probe.subscribe(Surprise, "/jepa/surprise", qos("reliable")),
        diagnostics=probe.subscribe(DiagnosticArray, "/diagnostics", qos("reliable", depth=100)),
        clock=probe.subscribe(Clock, "/clock", qos("reliable")),
        rosout=probe.subscribe(Log, "/rosout", qos("reliable", depth=100)),
        goal_image=probe.node.create_publisher(Image, "/jepa/goal_image", qos("latched")),
        camera=probe.node.create_publisher(Image, "/camera/image_raw", qos("sensor_data")),
        estop=probe.node.create_publisher(Bool, "/jepa/estop", qos("reliable")),
        intruder=probe.node.create_publisher(Latent, "/jepa/latent", qos("reliable")),
    )
    alive = lambda: all(n.proc.poll() is None for n in nodes.values())  # noqa: E731
    ok = probe.spin_until(lambda: (len(g.latents) >= 3 and g.odom and g.clock) or not alive(), 90)
    logs = "\n".join(f"--- {n.name}\n{n.log()[-3000:]}" for n in nodes.values())
    assert ok and alive(), f"the graph did not come up; logs:\n{logs}"
    return g


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    if not (BUNDLE / "bundle.yaml").is_file():
        pytest.skip(f"no model bundle at {BUNDLE} (make train, or set JEPA_PILOT_TEST_BUNDLE)")
    work = tmp_path_factory.mktemp("ros_jepa")
    nodes = dict(
        sim=NodeProcess("sim_node", "sim", dict(env="two_rooms", seed=1, cmd_timeout=0.5), work),
        encoder=NodeProcess("encoder_node", "encoder", model_params(), work),
        planner=NodeProcess("planner_node", "planner", model_params(max_latent_age=MAX_LATENT_AGE,
                                                                    max_plan_time=1.0), work),
        predictor=NodeProcess("predictor_node", "predictor", model_params(), work))
    g = watch(Probe("probe_jepa"), work, nodes)
    yield g
    g.probe.close()
    for node in nodes.values():
        node.stop()


# --- helpers ------------------------------------------------------------------------------
def now(g) -> float:
    return from_time(g.clock[-1].clock)


def reset(g, state=START) -> None:
    response = g.probe.call(ResetSim, "/sim/reset", ResetSim.Request(seed=0, state=list(state)))
    assert response.success, response.message


def goal_image(g, state, scale: int = 1) -> Image:
    response = g.probe.call(GetGoalImage, "/sim/get_goal_image", GetGoalImage.Request(state=list(state)))
    assert response.success, response.message
    if scale == 1:
        return response.image
    big = np.repeat(np.repeat(msg_to_image(response.image), scale, axis=0), scale, axis=1)
    return image_to_msg(big, from_time(response.image.header.stamp), response.image.header.frame_id)


def set_goal(g, state, scale: int = 2) -> Image:
    """Through the encoder's ~/set_goal service (the image upscaled: the encoder resizes it)."""
    image = goal_image(g, state, scale)
    image.header.stamp = to_time(now(g) + 0.001)  # a stamp of its own, to recognise the goal in /jepa/plan
    response = g.probe.call(SetGoal, "/encoder/set_goal", SetGoal.Request(image=image))
    assert response.success, response.message
    return image


def pursuing(g, image: Image, status: int | None = None, after: float = 0.0):
    """Plans for the goal ``image`` (received after wall time ``after``), optionally of one status."""
    return [(t, m) for t, m in g.plans if t > after and m.goal_header.stamp == image.header.stamp
            and (status is None or m.status == status)]


def wait_sim(g, seconds: float) -> None:
    """Spin until ``seconds`` of simulated time have passed (the wall-clock limit only catches a
    simulator that stopped)."""
    end = now(g) + seconds
    assert g.probe.spin_until(lambda: now(g) >= end, timeout=20 + 10 * seconds), "the sim clock stopped"


def commands_after(g, stamp: float) -> list:
    """Commands stamped (on the sim clock) strictly after ``stamp``."""
    return [m for _, m in g.cmds if from_time(m.header.stamp) > stamp]


def diagnostic(g, node: str):
    """The newest /diagnostics status of ``node`` and its values as a dict; (None, {}) if none yet."""
    for array in reversed(g.diagnostics):
        for status in array.status:
            if status.name == f"jepa_pilot: {node}":
                return status, {kv.key: kv.value for kv in status.values}
    return None, {}


def position(g) -> np.ndarray:
    p = g.odom[-1][1].pose.pose.position
    return np.array([p.x, p.y])


def speed(odom: Odometry) -> float:
    return math.hypot(odom.twist.twist.linear.x, odom.twist.twist.linear.y)


def is_zero(cmd: TwistStamped) -> bool:
    return cmd.twist.linear.x == 0.0 and cmd.twist.linear.y == 0.0


def drive_far(g) -> Image:
    """Start at START with a goal in the other room, and wait until the planner drives."""
    reset(g)
    image = set_goal(g, FAR_GOAL)
    assert g.probe.spin_until(lambda: len(pursuing(g, image, PLANNING)) >= 3, 20), "the planner does not plan"
    return image


# --- tests --------------------------------------------------------------------------------
def test_latents_carry_the_frame_header_and_model_id(g):
    g.latents.clear()
    assert g.probe.spin_until(lambda: len(g.latents) >= 5, 10)
    latents = g.latents[-5:]
    stamps = lambda msgs: {(m.header.stamp.sec, m.header.stamp.nanosec) for m in msgs}  # noqa: E731
    # The probe's own copy of a frame may arrive after the latent made from it: wait for it.
    g.probe.spin_until(lambda: stamps(latents) <= stamps(g.images), 5)
    assert stamps(latents) <= stamps(g.images)
    for latent in latents:
        assert latent.header.frame_id == "camera_optical_frame"
        assert latent.model_id == g.model_id and list(latent.shape) == [len(latent.data)] == [32]
        assert all(math.isfinite(v) for v in latent.data)
    names = lambda: {s.name: s for array in g.diagnostics for s in array.status}  # noqa: E731
    wanted = {f"jepa_pilot: {n}" for n in ("encoder", "planner", "predictor")}
    assert g.probe.spin_until(lambda: wanted <= set(names()), 5)
    names = names()
    for node in ("encoder", "planner", "predictor"):
        values = {kv.key: kv.value for kv in names[f"jepa_pilot: {node}"].values}
        assert values["model_id"] == g.model_id and values["provider"] == "CPUExecutionProvider", values
        assert values["state"] == "active"


def test_the_graph_drives_the_robot_to_a_nearby_goal_image(g):
    reset(g)
    g.probe.spin_for(0.5)
    start = position(g)
    goal = goal_image(g, NEAR_GOAL)
    goal.header.stamp = to_time(now(g) + 0.002)
    g.goal_image.publish(goal)  # the latched goal topic
    reached = lambda: pursuing(g, goal, REACHED)  # noqa: E731
    g.probe.spin_until(reached, 30)
    plans = [m for _, m in pursuing(g, goal)]
    assert plans, "no plan for the goal"
    true_distance = np.linalg.norm(position(g) - np.asarray(NEAR_GOAL[:2]))
    start_distance = np.linalg.norm(start - np.asarray(NEAR_GOAL[:2]))
    assert true_distance < 0.5 * start_distance, f"robot at {position(g)}, started at {start}"
    distances = [m.goal_distance for m in plans]
    assert min(distances[-3:]) < 0.6 * distances[0], distances
    assert reached(), f"never REACHED; last status {plans[-1].status}: {plans[-1].reason}"
    planned = [m for m in plans if m.status == PLANNING]
    assert planned and planned[0].horizon * planned[0].action_dim == len(planned[0].actions)
    # The predictor forecast the executed plans from their latents and measured surprise.
    plan_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in planned}
    forecasts = [f for f in g.forecasts if (f.header.stamp.sec, f.header.stamp.nanosec) in plan_stamps]
    assert forecasts and forecasts[-1].model_id == g.model_id
    assert len(forecasts[-1].latents) == forecasts[-1].horizon * 32 and forecasts[-1].step_period == pytest.approx(0.4)
    # Each surprise compares a latent with the forecast made one model step (0.4 s) before it.
    forecast_stamps = np.array([from_time(f.header.stamp) for f in g.forecasts])
    surprises = [s for s in g.surprises if s.model_id == g.model_id]
    assert surprises and all(s.horizon_s == pytest.approx(0.4) for s in surprises)
    for s in surprises:
        gap = np.abs(forecast_stamps - (from_time(s.header.stamp) - 0.4)).min()
        assert gap < 0.05 + 1e-6, f"surprise at {from_time(s.header.stamp):.2f} without a forecast 0.4 s before"


def test_estop_holds_the_robot_until_released(g):
    goal = drive_far(g)
    pressed = time.monotonic()
    g.estop.publish(Bool(data=True))
    assert g.probe.spin_until(lambda: pursuing(g, goal, STOPPED, after=pressed), 20), "no STOPPED status"
    (_, stopped), *_ = pursuing(g, goal, STOPPED, after=pressed)
    assert "e-stop" in stopped.reason
    wait_sim(g, 1.5)
    after = commands_after(g, from_time(stopped.header.stamp))  # published after the e-stop took effect
    assert after and all(is_zero(m) for m in after), "non-zero commands during the e-stop"
    assert speed(g.odom[-1][1]) < 1e-3
    released = time.monotonic()
    g.estop.publish(Bool(data=False))
    assert g.probe.spin_until(lambda: pursuing(g, goal, PLANNING, after=released), 20), "did not resume"
    assert g.probe.spin_until(lambda: any(not is_zero(m) for t, m in g.cmds if t > released), 20)


def test_watchdog_stops_the_robot_when_latents_stop_and_resumes_with_a_new_encoder(g):
    goal = drive_far(g)
    encoder = g.nodes["encoder"]
    encoder.proc.kill()
    killed = time.monotonic()
    encoder.stop()
    last_latent = max(from_time(m.header.stamp) for m in g.latents)
    assert g.probe.spin_until(lambda: pursuing(g, goal, STOPPED, after=killed), 20), "the watchdog did not stop"
    (_, stopped), *_ = pursuing(g, goal, STOPPED, after=killed)
    assert "latent" in stopped.reason, stopped.reason
    # Held within the limit plus generous slack, in simulated seconds after the newest latent.
    assert from_time(stopped.header.stamp) - last_latent < MAX_LATENT_AGE + 2.0, stopped.reason
    wait_sim(g, 1.0)
    after = commands_after(g, from_time(stopped.header.stamp))
    assert after and all(is_zero(m) for m in after), "non-zero commands after the watchdog stopped the robot"
    assert speed(g.odom[-1][1]) < 1e-3, "the robot still moves"
    restarted = time.monotonic()
    g.nodes["encoder"] = NodeProcess("encoder_node", "encoder", model_params(), g.work)
    assert g.probe.spin_until(lambda: pursuing(g, goal, PLANNING, after=restarted), 40), \
        f"did not resume; encoder log:\n{g.nodes['encoder'].log()}"
    assert g.probe.spin_until(lambda: any(not is_zero(m) for t, m in g.cmds if t > restarted), 20)


def test_bad_camera_frames_are_dropped_and_the_encoder_keeps_running(g):
    good = msg_to_image(g.images[-1])

    def frame(encoding="rgb8", width=64, height=64, data=None, step=None, frame_id="bad_frame"):
        msg = Image(encoding=encoding, width=width, height=height, step=step if step is not None else width * 3)
        msg.header.stamp, msg.header.frame_id = to_time(now(g)), frame_id
        msg.data = data if data is not None else good.tobytes()
        return msg

    g.rosout.clear()

    def drops():
        return [m.msg for m in g.rosout if m.name == "encoder" and "frame dropped" in m.msg]

    # The encoder keeps only the newest frame (depth 1) and the sim publishes too, so a
    # bad frame can be overtaken in the queue: offer them until one is seen (bounded).
    for _ in range(30):
        for bad in (frame(encoding="yuv422"), frame(encoding="32FC1"), frame(data=good.tobytes()[:1000]),
                    frame(width=0, height=0, data=b""), frame(step=10)):
            g.camera.publish(bad)
            g.probe.spin_for(0.05)
        if drops():
            break
    resized = np.ascontiguousarray(good[::2, :48])  # 48 x 32: another size, resized by the encoder
    g.camera.publish(image_to_msg(resized, now(g), "small_frame"))
    g.latents.clear()
    assert g.probe.spin_until(lambda: len(g.latents) >= 5, 10)
    assert g.nodes["encoder"].proc.poll() is None
    seen = drops()
    assert seen, [m.msg for m in g.rosout]
    assert any(word in " ".join(seen) for word in ("unsupported encoding", "truncated", "empty", "step"))
    # /diagnostics counts them by reason; they are the input's fault, not the engine's.
    assert g.probe.spin_until(lambda: int(diagnostic(g, "encoder")[1].get("dropped", 0)) > 0, 10)
    status, values = diagnostic(g, "encoder")
    reasons = {k: int(v) for k, v in values.items() if k.startswith("dropped_")}
    assert sum(reasons.values()) == int(values["dropped"]) > 0, values
    assert {"dropped_unsupported_encoding", "dropped_truncated_data", "dropped_empty_image",
            "dropped_step"} & set(reasons), reasons
    assert values["engine_errors"] == "0" and status.level != status.ERROR, values


def test_goal_images_are_resized_and_unreadable_ones_refused(g):
    image = goal_image(g, NEAR_GOAL, scale=2)
    assert g.probe.call(SetGoal, "/encoder/set_goal", SetGoal.Request(image=image)).success
    broken = goal_image(g, NEAR_GOAL)
    broken.data = bytes(broken.data)[:100]
    response = g.probe.call(SetGoal, "/encoder/set_goal", SetGoal.Request(image=broken))
    assert not response.success and "truncated" in response.message
    response = g.probe.call(SetGoal, "/encoder/set_goal", SetGoal.Request(image=Image(encoding="rgb8")))
    assert not response.success and "empty" in response.message


def broken_encoder_bundle(dest: Path) -> Path:
    """A copy of the bundle whose encoder loads but fails when run: its output goes through a
    Reshape to one more column than it has (ONNX Runtime raises on every frame)."""
    import onnx
    from onnx import helper, numpy_helper

    from jepa_pilot.perception.bundle import sha256

    shutil.copytree(BUNDLE, dest)
    model = onnx.load(str(dest / "encoder.onnx"))
    graph, out = model.graph, model.graph.output[0].name
    last = next(n for n in graph.node if out in n.output)
    last.output[list(last.output).index(out)] = "unbroken"
    graph.initializer.append(numpy_helper.from_array(np.array([0, 1], np.int64), "one_more_column"))
    graph.node.extend([helper.make_node("Shape", ["unbroken"], ["shape"]),
                       helper.make_node("Add", ["shape", "one_more_column"], ["wrong_shape"]),
                       helper.make_node("Reshape", ["unbroken", "wrong_shape"], [out])])
    onnx.save(model, str(dest / "encoder.onnx"))
    meta = yaml.safe_load((dest / "bundle.yaml").read_text())
    meta["files"]["encoder"]["sha256"] = sha256(dest / "encoder.onnx")
    (dest / "bundle.yaml").write_text(yaml.safe_dump(meta))
    return dest


def test_an_engine_error_is_reported_as_an_error_not_as_a_bad_frame(g, tmp_path):
    """Frames the engine fails on: /diagnostics ERROR with the error, logged with its traceback; a
    bad frame to the same node only counts under its reason; goal images are refused either way."""
    bundle = broken_encoder_bundle(tmp_path / "broken")
    node = NodeProcess("encoder_node", "encoder_broken", dict(model_params(image_topic="/camera/broken"),
                                                              bundle=str(bundle)), tmp_path)
    camera = g.probe.node.create_publisher(Image, "/camera/broken", qos("sensor_data"))
    good = g.images[-1]
    try:
        def values() -> dict:
            return diagnostic(g, "encoder_broken")[1]

        def offer_until(done, frame) -> bool:
            """Offer ``frame`` (best effort, depth 1) until ``done()``, bounded."""
            for _ in range(100):
                if done():
                    return True
                camera.publish(frame)
                g.probe.spin_for(0.2)
            return done()

        def settled(read) -> int:
            """``read()`` once it is the same in two diagnostics messages in a row."""
            last = None
            for _ in range(20):
                g.probe.spin_for(1.5)  # diagnostics come about once a second
                if read() == last:
                    return int(last)
                last = read()
            raise AssertionError(f"engine errors still counting: {values()}")

        assert offer_until(lambda: int(values().get("engine_errors", 0)) > 0, good), \
            f"no engine error counted: {values()}\n{node.log()[-3000:]}"
        status, errors = diagnostic(g, "encoder_broken")
        assert status.level == status.ERROR and "engine error" in status.message, status
        assert "Reshape" in errors["last_error"] and errors["dropped"] == "0", errors
        assert g.probe.spin_until(lambda: "Traceback" in node.log(), 10), node.log()[-3000:]
        assert "warm-up run failed" in node.log()  # at configure: warned, the node configured all the same
        assert node.proc.poll() is None

        before = settled(lambda: values()["engine_errors"])  # frames in flight, the latched goal image
        bad = Image(encoding="yuv422", width=4, height=4, step=8, data=bytes(32))
        assert offer_until(lambda: int(values().get("dropped_unsupported_encoding", 0)) > 0, bad), values()
        after = values()
        assert int(after["engine_errors"]) == before and int(after["dropped"]) >= 1, after  # not an engine error

        response = g.probe.call(SetGoal, "/encoder_broken/set_goal", SetGoal.Request(image=good))
        assert not response.success and "engine error" in response.message and "Reshape" in response.message
        broken = Image(encoding="rgb8", width=64, height=64, step=192, data=bytes(100))
        response = g.probe.call(SetGoal, "/encoder_broken/set_goal", SetGoal.Request(image=broken))
        assert not response.success and "truncated" in response.message and "engine" not in response.message
    finally:
        g.probe.node.destroy_publisher(camera)
        node.stop()


def test_latents_of_another_model_are_dropped(g):
    g.rosout.clear()
    intruder = Latent(model_id="another-model", shape=[32], data=[0.0] * 32)
    intruder.header.stamp, intruder.header.frame_id = to_time(now(g)), "intruder"
    planner_said = lambda: any("another-model" in m.msg and m.name == "planner" for m in g.rosout)  # noqa: E731
    end = time.monotonic() + 15
    # The planner reads latents at depth 1: while it plans, a newer frame's latent may replace an intruder,
    # and its warning is throttled (2 s); so keep intruding until it has said so.
    while not planner_said() and time.monotonic() < end:
        g.intruder.publish(intruder)
        g.probe.spin_for(0.2)
    assert planner_said()
    assert not [m for _, m in g.plans if m.header.frame_id == "intruder"]
    assert any("another-model" in m.msg and m.name == "predictor" for m in g.rosout)


def test_a_bundle_whose_encoder_and_rollout_disagree_fails_to_configure_without_crash_looping(g, tmp_path):
    bad = tmp_path / "bad_bundle"
    shutil.copytree(BUNDLE, bad)
    spec = yaml.safe_load((bad / "bundle.yaml").read_text())
    spec["latent_dim"] = 16
    (bad / "bundle.yaml").write_text(yaml.safe_dump(spec))
    node = NodeProcess("planner_node", "planner_bad", dict(bundle=str(bad), providers=["cpu"],
                                                          command_topic="/cmd_vel_bad"), tmp_path)
    try:
        assert g.probe.spin_until(lambda: "cannot configure" in node.log() or node.proc.poll() is not None, 30)
        g.probe.spin_for(2.0)
        assert node.proc.poll() is None, f"the node exited:\n{node.log()}"
        log = node.log()
        assert log.count("cannot configure") == 1 and "latent" in log and "bundle.yaml says" in log, log
        state = g.probe.call(GetState, "/planner_bad/get_state", GetState.Request())
        assert state.current_state.label == "unconfigured"
        errors = lambda: [s for a in g.diagnostics for s in a.status if s.name == "jepa_pilot: planner_bad"]  # noqa
        assert g.probe.spin_until(errors, 10), {s.name for a in g.diagnostics for s in a.status}
        errors = errors()
        assert errors and errors[-1].level == errors[-1].ERROR and "cannot configure" in errors[-1].message
    finally:
        node.stop()


def test_without_autostart_a_node_waits_for_lifecycle_transitions(g, tmp_path):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    node = NodeProcess("predictor_node", "predictor_manual", model_params(autostart=False), tmp_path)
    try:
        def state() -> str:
            return g.probe.call(GetState, "/predictor_manual/get_state", GetState.Request()).current_state.label

        def change(transition: int) -> bool:
            request = ChangeState.Request(transition=Transition(id=transition))
            return g.probe.call(ChangeState, "/predictor_manual/change_state", request, resend=False).success

        assert state() == "unconfigured"
        assert change(Transition.TRANSITION_CONFIGURE) and state() == "inactive"
        assert change(Transition.TRANSITION_ACTIVATE) and state() == "active"
        assert g.probe.spin_until(lambda: "/jepa/plan" in dict(
            g.probe.node.get_subscriber_names_and_types_by_node("predictor_manual", "/")), 10)
        assert change(Transition.TRANSITION_DEACTIVATE) and state() == "inactive"
        assert change(Transition.TRANSITION_CLEANUP) and state() == "unconfigured"
        assert node.proc.poll() is None and "Traceback" not in node.log()
    finally:
        node.stop()


def test_status_values_are_the_plan_status_constants():
    """control.supervisor.Status mirrors jepa_pilot/msg/PlanStatus STATUS_*: same names, same values."""
    from jepa_pilot.control.supervisor import Status

    constants = {name[len("STATUS_"):]: getattr(PlanStatus, name) for name in dir(PlanStatus)
                 if name.startswith("STATUS_")}
    assert constants, "PlanStatus has no STATUS_ constants"
    assert {s.name: int(s) for s in Status} == constants


def landmarks_bundle(dest: Path, encoder_sha256: str) -> Path:
    """A copy of the bundle with a landmarks file built from random latents, stamped with ``encoder_sha256``."""
    from jepa_pilot.control.landmarks import LandmarkGraph
    from jepa_pilot.perception.bundle import sha256

    shutil.copytree(BUNDLE, dest)
    latent_dim = load_bundle(BUNDLE).spec.latent_dim
    walk = np.cumsum(np.random.default_rng(0).normal(0, 0.3, (400, latent_dim)), axis=0)
    LandmarkGraph.build([walk], landmarks=20, encoder_sha256=encoder_sha256).save(dest / "landmarks.npz")
    meta = yaml.safe_load((dest / "bundle.yaml").read_text())
    meta["files"]["landmarks"] = {"path": "landmarks.npz", "sha256": sha256(dest / "landmarks.npz")}
    (dest / "bundle.yaml").write_text(yaml.safe_dump(meta))
    return dest


def test_the_planner_plans_along_shipped_landmarks_and_refuses_another_encoders(g, tmp_path):
    encoder = load_bundle(BUNDLE).spec.files["encoder"]["sha256"]
    for name, stamp, expect in (("planner_marks", encoder, "planning along the bundle's 20 landmarks"),
                                ("planner_stale", "0" * 64, "built with another encoder")):
        bundle = landmarks_bundle(tmp_path / name, stamp)
        node = NodeProcess("planner_node", name, dict(bundle=str(bundle), providers=["cpu"],
                                                      command_topic=f"/cmd_vel_{name}"), tmp_path)
        try:
            assert g.probe.spin_until(lambda: expect in node.log() or node.proc.poll() is not None, 30), node.log()
            assert node.proc.poll() is None, f"the node exited:\n{node.log()}"
            state = g.probe.call(GetState, f"/{name}/get_state", GetState.Request())
            assert state.current_state.label == ("active" if stamp == encoder else "unconfigured"), node.log()
        finally:
            node.stop()
