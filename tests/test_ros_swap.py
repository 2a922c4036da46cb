"""ROS tier: hot-swapping the model bundle of a running graph (encoder, planner, predictor and the sim
node, each in its own process over real DDS) while the robot drives to a goal."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import TwistStamped  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402

from jepa_pilot.common.paths import package_share  # noqa: E402
from jepa_pilot.msg import Latent, ModelReady, ModelUpdate, PlanStatus  # noqa: E402
from jepa_pilot.nodes.qos import qos  # noqa: E402
from jepa_pilot.nodes.ros_io import from_time, to_time  # noqa: E402
from jepa_pilot.perception.bundle import load_bundle  # noqa: E402
from jepa_pilot.srv import GetGoalImage, ResetSim, SetGoal  # noqa: E402
from bundle_edits import rehash, scale_output  # noqa: E402
from rosgraph import NodeProcess, Probe  # noqa: E402

pytestmark = pytest.mark.ros

BUNDLE = Path(os.environ.get("JEPA_PILOT_TEST_BUNDLE") or package_share() / "models" / "two_rooms")
START, FAR_GOAL = (-0.5, -0.5, 0.0, 0.0), (0.5, 0.5, 0.0, 0.0)
MODEL_NODES = ("encoder", "planner", "predictor")


def model_params(**extra) -> dict:
    return dict(bundle=str(BUNDLE), providers=["cpu"], threads=1, use_sim_time=True, **extra)


def renamed_bundle(where: Path, model_id: str, corrupt: bool = False, encoder_scale: float = 1.0,
                   landmarks: bool = True) -> Path:
    """A copy of the shipped bundle under another model id (optionally with a corrupted rollout graph, or
    an encoder whose latents are ``encoder_scale`` times the shipped one's: another latent space, in which
    the shipped landmarks, if kept, are stale)."""
    out = where / model_id
    shutil.copytree(BUNDLE, out)
    spec = yaml.safe_load((out / "bundle.yaml").read_text())
    spec["model_id"] = model_id
    if not landmarks and spec["files"].pop("landmarks", None):
        (out / "landmarks.npz").unlink()
    (out / "bundle.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    if corrupt:
        data = bytearray((out / "rollout.onnx").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (out / "rollout.onnx").write_bytes(bytes(data))
    if encoder_scale != 1.0:
        scale_output(out, "encoder", "latent", encoder_scale)
        rehash(out, "encoder")
    return out


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    work = tmp_path_factory.mktemp("ros_swap")
    nodes = [NodeProcess("sim_node", "sim", dict(env="two_rooms", seed=1), work),
             NodeProcess("encoder_node", "encoder", model_params(), work),
             NodeProcess("planner_node", "planner", model_params(max_plan_time=1.0, max_latent_age=1.0), work),
             NodeProcess("predictor_node", "predictor", model_params(), work)]
    probe = Probe("probe_swap")
    timed = lambda msg_type, topic, profile: _timed(probe, msg_type, topic, profile)  # noqa: E731
    g = dict(work=work, nodes=nodes, probe=probe,
             latents=timed(Latent, "/jepa/latent", qos("reliable")),
             goals=timed(Latent, "/jepa/goal_latent", qos("latched")),
             plans=timed(PlanStatus, "/jepa/plan", qos("reliable", depth=100)),
             cmds=timed(TwistStamped, "/cmd_vel", qos("reliable", depth=100)),
             ready=probe.subscribe(ModelReady, "/jepa/model_ready", qos("latched", depth=20)),
             diagnostics=probe.subscribe(DiagnosticArray, "/diagnostics", qos("reliable", depth=100)),
             clock=probe.subscribe(Clock, "/clock", qos("reliable")),
             update=probe.node.create_publisher(ModelUpdate, "/jepa/model_update", qos("latched")))
    alive = lambda: all(n.proc.poll() is None for n in nodes)  # noqa: E731
    ok = probe.spin_until(lambda: (len(g["latents"]) >= 3 and g["clock"]) or not alive(), 90)
    assert ok and alive(), "\n".join(f"--- {n.name}\n{n.log()[-3000:]}" for n in nodes)
    yield g
    probe.close()
    for node in nodes:
        node.stop()


def _timed(probe, msg_type, topic, profile) -> list:
    """(wall arrival, message) pairs."""
    out = []
    probe.node.create_subscription(msg_type, topic, lambda m: out.append((time.monotonic(), m)), profile)
    return out


def logs(g) -> str:
    return "\n".join(f"--- {n.name}\n{n.log()[-2500:]}" for n in g["nodes"])


def drive_far(g) -> float:
    """Reset to START with a goal in the other room; wait until the planner drives. Returns the goal stamp."""
    probe = g["probe"]
    assert probe.call(ResetSim, "/sim/reset", ResetSim.Request(seed=0, state=list(START))).success
    shot = probe.call(GetGoalImage, "/sim/get_goal_image", GetGoalImage.Request(state=list(FAR_GOAL)))
    stamp = from_time(g["clock"][-1].clock) + 0.001
    shot.image.header.stamp = to_time(stamp)
    assert probe.call(SetGoal, "/encoder/set_goal", SetGoal.Request(image=shot.image)).success
    since = time.monotonic()
    assert probe.spin_until(lambda: sum(t > since and m.status == PlanStatus.STATUS_PLANNING
                                        for t, m in g["plans"]) >= 3, 30), logs(g)
    return stamp


def announce(g, bundle: Path, model_id: str) -> float:
    since = time.monotonic()
    g["update"].publish(ModelUpdate(model_id=model_id, bundle=str(bundle), reason="test"))
    return since


def reports(g, model_id: str) -> dict:
    return {m.node: m for m in g["ready"] if m.model_id == model_id}


def ids_in_order(pairs, since: float) -> list[str]:
    """The model ids of the messages that arrived after ``since``, consecutive repeats collapsed."""
    out = []
    for t, m in pairs:
        if t > since and (not out or out[-1] != m.model_id):
            out.append(m.model_id)
    return out


def test_a_new_bundle_is_swapped_in_while_driving_and_models_never_mix(graph):
    g, old = graph, graph["latents"][-1][1].model_id
    goal_stamp = drive_far(g)
    new = "two_rooms-swapped"
    since = announce(g, renamed_bundle(g["work"], new), new)
    assert g["probe"].spin_until(lambda: set(reports(g, new)) >= set(MODEL_NODES), 60), logs(g)
    assert all(m.ready for m in reports(g, new).values()), [m.message for m in reports(g, new).values()]
    switched = lambda: any(t > since and m.model_id == new and m.status == PlanStatus.STATUS_PLANNING  # noqa: E731
                           for t, m in g["plans"])
    assert g["probe"].spin_until(switched, 30), logs(g)
    g["probe"].spin_for(2.0)
    # One switch, old -> new, in the latents and in the plans: nothing of the old model after the new one.
    assert ids_in_order(g["latents"], since) in ([old, new], [new])  # [new]: swapped before the next frame
    assert ids_in_order(g["plans"], since) in ([old, new], [new])
    # The goal was re-encoded by the new model, and the planner still pursues the same goal.
    assert any(t > since and m.model_id == new for t, m in g["goals"])
    first_new = next(t for t, m in g["plans"] if t > since and m.model_id == new)
    pursued = [m for t, m in g["plans"] if t >= first_new and m.status == PlanStatus.STATUS_PLANNING]
    assert pursued and all(abs(from_time(m.goal_header.stamp) - goal_stamp) < 1e-6 for m in pursued)
    moving = [t for t, c in g["cmds"] if t > first_new and (c.twist.linear.x or c.twist.linear.y)]
    assert len(moving) >= 3, "the robot is not driven after the swap"

    def swaps(node: str) -> str | None:
        for array in reversed(g["diagnostics"]):
            for status in array.status:
                if status.name == f"jepa_pilot: {node}":
                    return {kv.key: kv.value for kv in status.values}.get("swaps")
        return None

    assert g["probe"].spin_until(lambda: all(swaps(n) == "1" for n in MODEL_NODES), 10), \
        {n: swaps(n) for n in MODEL_NODES}


def test_a_corrupt_bundle_is_refused_and_the_current_model_keeps_driving(graph):
    g = graph
    current = g["latents"][-1][1].model_id
    drive_far(g)
    bad = "two_rooms-corrupt"
    since = announce(g, renamed_bundle(g["work"], bad, corrupt=True), bad)
    assert g["probe"].spin_until(lambda: set(reports(g, bad)) >= set(MODEL_NODES), 60), logs(g)
    for node, report in reports(g, bad).items():
        assert not report.ready and "rollout.onnx" in report.message and "sha256" in report.message, node
    refused = time.monotonic()
    # The current model keeps driving: plans go on after the refusal (waited for, not timed: a loaded
    # machine may pause the graph), and nothing of the refused model ever shows up.
    planning = lambda: sum(t > refused and m.status == PlanStatus.STATUS_PLANNING  # noqa: E731
                           for t, m in g["plans"]) >= 10
    assert g["probe"].spin_until(planning, 30), logs(g)
    assert ids_in_order(g["latents"], since) == [current], logs(g)
    assert {m.model_id for t, m in g["plans"] if t > since} == {current}, logs(g)
    assert all(n.proc.poll() is None for n in g["nodes"]), logs(g)


def test_a_bundle_with_another_encoder_re_encodes_the_goal(graph):
    g = graph
    current = g["latents"][-1][1].model_id
    started = time.monotonic()
    goal_stamp = drive_far(g)
    old = [m for t, m in g["goals"] if t > started and m.model_id == current]
    assert old, logs(g)
    stale = "two_rooms-encoder-x1.5-stale"  # the new encoder with the old encoder's landmarks: refused
    announce(g, renamed_bundle(g["work"], stale, encoder_scale=1.5), stale)
    assert g["probe"].spin_until(lambda: "planner" in reports(g, stale), 60), logs(g)
    report = reports(g, stale)["planner"]
    assert not report.ready and "another encoder" in report.message, report
    new = "two_rooms-encoder-x1.5"  # frames map to 1.5x the shipped latents: a new latent space
    since = announce(g, renamed_bundle(g["work"], new, encoder_scale=1.5, landmarks=False), new)
    goal = lambda: next((m for t, m in g["goals"] if t > since and m.model_id == new), None)  # noqa: E731
    assert g["probe"].spin_until(lambda: goal() is not None, 60), logs(g)
    # The same goal image, encoded again by the new encoder (not the old latent relabelled).
    assert abs(from_time(goal().header.stamp) - goal_stamp) < 1e-6
    np.testing.assert_allclose(np.array(goal().data), 1.5 * np.array(old[-1].data), rtol=1e-4, atol=1e-5)
    planned = lambda: any(t > since and m.model_id == new for t, m in g["plans"])  # noqa: E731
    assert g["probe"].spin_until(planned, 30), logs(g)
    assert ids_in_order(g["latents"], since) in ([current, new], [new])
    assert ids_in_order(g["plans"], since) in ([current, new], [new])
