"""ROS tier: online learning across processes. The sim robot's action axes are turned 90 degrees and
the random-walk explorer drives it; the trainer node records what it sees and does, fine-tunes in a
child process, announces the accepted bundle, and the world-model nodes swap to it; a rollback
brings the base bundle back."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from jepa_pilot.common.paths import package_share  # noqa: E402
from jepa_pilot.data.collect import CollectConfig, collect  # noqa: E402
from jepa_pilot.data.dataset import Dataset  # noqa: E402
from jepa_pilot.msg import Latent, ModelReady, ModelUpdate  # noqa: E402
from jepa_pilot.nodes.qos import qos  # noqa: E402
from jepa_pilot.perception.bundle import load_bundle  # noqa: E402
from rosgraph import NodeProcess, Probe  # noqa: E402

pytestmark = pytest.mark.ros

BUNDLE = Path(os.environ.get("JEPA_PILOT_TEST_BUNDLE") or package_share() / "models" / "two_rooms")
BASE_ID = load_bundle(BUNDLE).spec.model_id


def model_params(**extra) -> dict:
    return dict(bundle=str(BUNDLE), providers=["cpu"], threads=1, use_sim_time=True, **extra)


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    work = tmp_path_factory.mktemp("ros_trainer")
    base = work / "base"
    collect(CollectConfig(env="two_rooms", episodes=12, steps=50, seed=0), base, progress=False)
    trainer = dict(bundle=str(BUNDLE), robot="two_rooms", base_data=str(base), work_dir=str(work / "learn"),
                   update_every=1.0, min_new_steps=250, shard_steps=50, finetune_steps=200, use_sim_time=True,
                   drift_ratio=0.0)  # the explorer runs no plans, so nothing measures surprise: learn when due
    nodes = {"sim": NodeProcess("sim_node", "sim", dict(env="two_rooms", seed=1, real_time_factor=3.0,
                                                        action_rotation_deg=90.0), work),
             "explorer": NodeProcess("explorer_node", "explorer", dict(robot="two_rooms", use_sim_time=True), work),
             "encoder": NodeProcess("encoder_node", "encoder", model_params(), work),
             "planner": NodeProcess("planner_node", "planner", model_params(), work),
             "predictor": NodeProcess("predictor_node", "predictor", model_params(), work),
             "trainer": NodeProcess("trainer_node", "trainer", trainer, work)}
    probe = Probe("probe_trainer")
    g = dict(work=work, nodes=nodes, probe=probe, trainer_params=trainer,
             latents=probe.subscribe(Latent, "/jepa/latent", qos("reliable")),
             updates=probe.subscribe(ModelUpdate, "/jepa/model_update", qos("latched")),
             ready=probe.subscribe(ModelReady, "/jepa/model_ready", qos("latched", depth=20)),
             diagnostics=probe.subscribe(DiagnosticArray, "/diagnostics", qos("reliable", depth=100)))
    alive = lambda: all(n.proc.poll() is None for n in nodes.values())  # noqa: E731
    assert probe.spin_until(lambda: len(g["latents"]) >= 3 or not alive(), 90) and alive(), logs(g)
    yield g
    probe.close()
    for node in nodes.values():
        node.stop()


def logs(g) -> str:
    return "\n".join(f"--- {n.name}\n{n.log()[-2500:]}" for n in g["nodes"].values())


def trainer_values(g) -> dict:
    for array in reversed(g["diagnostics"]):
        for status in array.status:
            if status.name == "jepa_pilot: trainer":
                return {kv.key: kv.value for kv in status.values}
    return {}


def test_the_trainer_learns_the_turned_axes_and_the_graph_swaps_to_its_bundle(graph):
    g = graph
    probe = g["probe"]
    assert probe.spin_until(lambda: any(u.model_id != BASE_ID for u in g["updates"]), 400), \
        f"{trainer_values(g)}\n{logs(g)}"
    update = next(u for u in g["updates"] if u.model_id != BASE_ID)
    assert update.parent_id == BASE_ID and "accepted" in update.reason and "world changed" in update.reason
    new = load_bundle(update.bundle).spec
    assert new.model_id == update.model_id and new.training["parent"] == BASE_ID
    assert probe.spin_until(lambda: any(m.model_id == update.model_id for m in g["latents"][-3:]), 60), logs(g)
    # The encoder switched only after every node said ready; those answers reach this probe on their own
    # topic, so they may arrive just after the first new latent.
    ready = lambda: {m.node: m for m in g["ready"] if m.model_id == update.model_id}  # noqa: E731
    assert probe.spin_until(lambda: {"encoder", "planner", "predictor"} <= set(ready()), 10), \
        f"{[(m.node, m.model_id, m.ready, m.message) for m in g['ready']]}\n{logs(g)}"
    assert all(m.ready for m in ready().values()), ready()
    values = trainer_values(g)
    assert values["accepted"] == "1" and values["current_model"] == update.model_id, values
    assert float(values["recorded_steps_per_s"]) > 0 and float(values["finetune_steps_per_s"]) > 0, values
    assert values["drift"] == "fine-tunes whenever due (drift_ratio 0)", values
    # What it learned from is on disk as a dataset: the live transitions it recorded.
    replay = Dataset(Path(g["trainer_params"]["work_dir"]) / "replay")
    assert replay.info.source == "live" and len(replay) >= 5
    episode = replay[0]
    assert episode.images.shape[1:] == (64, 64, 3) and abs(episode.actions).max() > 0.1


def test_rollback_brings_the_previous_bundle_back(graph):
    g = graph
    probe = g["probe"]
    current = g["latents"][-1].model_id
    assert current != BASE_ID, "the first test did not swap"
    answer = probe.call(Trigger, "/trainer/rollback", Trigger.Request(), timeout=30, resend=False)
    assert answer.success and BASE_ID in answer.message
    assert probe.spin_until(lambda: g["latents"][-1].model_id == BASE_ID, 60), logs(g)


def test_a_killed_trainer_takes_its_fine_tune_with_it_and_writes_no_bundle(graph):
    g = graph
    trainer = g["nodes"]["trainer"]
    bundles = Path(g["trainer_params"]["work_dir"]) / "bundles"
    before = {p.name for p in bundles.iterdir()}
    job_log = Path(g["trainer_params"]["work_dir"]) / "job" / "finetune.log"
    started = lambda: trainer_values(g).get("finetuning") == "True"  # noqa: E731
    assert g["probe"].spin_until(started, 120), trainer_values(g)
    children = [int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == trainer.proc.pid]
    assert children, f"no fine-tune process under the trainer; {job_log.read_text()[-500:]}"
    os.kill(trainer.proc.pid, signal.SIGKILL)
    trainer.proc.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(c) for c in children):
        time.sleep(0.1)
    assert not any(_alive(c) for c in children), "the fine-tune outlived its trainer"
    after = {p.name for p in bundles.iterdir()}
    assert {n for n in after - before if not n.endswith(".json")} <= {n for n in after if ".tmp-" in n}, after - before


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[1])
    except (OSError, ValueError):
        return -1


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    except OSError:
        return False
