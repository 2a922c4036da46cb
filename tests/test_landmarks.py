"""The landmark map of a latent space: built from trajectories alone, a cost that knows the way.

A toy world stands in for encoder and predictor: the latent is the 2-d position of a point in a
U-shaped corridor (a wall between the two arms, open at one end), and a rollout slides it along
the walls. Random walks in the corridor are the "recorded episodes" the map is built from.
"""
from __future__ import annotations

import numpy as np
import pytest

from jepa_pilot.common.bundle import load_bundle
from jepa_pilot.control.landmarks import LandmarkError, LandmarkGraph, kmeans, nearest
from jepa_pilot.control.planner import Planner, PlannerConfig


# The U: x in [0, 3], y in [0, 2]; a wall along y = 1 from x = 0 to x = 2 (the way round is at x > 2).
LOW, HIGH, WALL_END, WALL_HALF = np.array([0.0, 0.0]), np.array([3.0, 2.0]), 2.0, 0.1


def blocked(p: np.ndarray) -> np.ndarray:
    """(..., 2) -> (...) inside the wall or outside the corridor."""
    outside = ((p < LOW) | (p > HIGH)).any(-1)
    return outside | ((p[..., 0] < WALL_END) & (np.abs(p[..., 1] - 1.0) < WALL_HALF))


def move(p: np.ndarray, delta: np.ndarray) -> np.ndarray:
    new = p + delta
    stuck = blocked(new)
    new[stuck] = p[stuck]
    return new


class Corridor:
    """Rollout protocol: latent = position; each control period moves it by 0.1 * action, unless blocked."""

    horizon, frameskip, action_dim = 8, 2, 2

    def rollout(self, z_hist: np.ndarray, actions: np.ndarray) -> np.ndarray:
        p = np.broadcast_to(z_hist[-1], (len(actions), 2)).copy()
        out = []
        for t in range(actions.shape[1]):
            p = move(p, 0.1 * actions[:, t])
            if (t + 1) % self.frameskip == 0:
                out.append(p.copy())
        return np.stack(out, axis=1)


def walks(count: int = 60, steps: int = 300, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(count):
        p = np.array([rng.uniform(0.1, 2.9), rng.choice([0.5, 1.5])])[None]
        path, v = [p[0].copy()], np.zeros(2)
        for _ in range(steps):
            v = 0.9 * v + 0.1 * rng.normal(0, 1.0, 2)
            p = move(p, 0.1 * np.clip(v, -1, 1)[None])
            path.append(p[0].copy())
        episodes.append(np.array(path))
    return episodes


@pytest.fixture(scope="module")
def graph() -> LandmarkGraph:
    return LandmarkGraph.build(walks(), landmarks=80, min_passes=2, seed=0)


@pytest.mark.unit
def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(0)
    truth = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    points = np.concatenate([c + rng.normal(0, 0.1, (50, 2)) for c in truth])
    centres = kmeans(points, 3, rng)
    assert np.sort(np.linalg.norm(centres[nearest(truth, centres)] - truth, axis=1)).max() < 0.1


@pytest.mark.unit
def test_the_map_is_one_piece_and_links_only_what_the_robot_passed(graph):
    summary = graph.summary()
    assert summary["landmarks"] == 80 and summary["parts"][0] >= 75, summary
    ends = graph.centres[graph.links]                                         # (L, 2, 2)
    crossing = (np.sign(ends[:, 0, 1] - 1.0) != np.sign(ends[:, 1, 1] - 1.0)) & (ends.max(1)[:, 0] < WALL_END - 0.3)
    assert not crossing.any(), ends[crossing]  # no link across the wall


@pytest.mark.unit
def test_the_cost_is_zero_at_the_goal_and_larger_behind_the_wall(graph):
    goal = np.array([0.5, 0.5])
    cost = graph.to_goal(goal)
    behind, open_ = np.array([0.5, 1.5]), np.array([1.5, 0.5])  # both 1 m from the goal in a straight line
    assert cost(goal[None])[0] == pytest.approx(0.0, abs=1e-6)
    assert cost(behind[None])[0] > 2.5 * cost(open_[None])[0]
    along = np.array([[2.5, 1.5], [1.5, 1.5], [0.5, 1.5]])  # the far arm, walking away from the way round
    assert np.all(np.diff(cost(along)) > 0)


@pytest.mark.unit
def test_the_planner_goes_round_the_wall_with_the_map_and_stalls_without(graph):
    start, goal = np.array([0.5, 1.5]), np.array([0.5, 0.5])

    def drive(metric) -> np.ndarray:
        planner = Planner(Corridor(), PlannerConfig(samples=128, iterations=3, seed=0), metric=metric)
        p = start.copy()
        for _ in range(150):
            p = move(p[None], 0.1 * planner.plan(np.stack([p, p]), goal).actions[0][None])[0]
        return p

    assert np.linalg.norm(drive(graph) - goal) < 0.2
    assert drive(None)[1] > 1.0  # the straight latent distance holds it on the far side of the wall


@pytest.mark.unit
def test_a_file_round_trips_and_another_encoders_file_is_refused(graph, tmp_path):
    graph.encoder_sha256 = "a" * 64
    graph.save(tmp_path / "landmarks.npz")
    again = LandmarkGraph.load(tmp_path / "landmarks.npz", "a" * 64)
    assert np.array_equal(again.centres, graph.centres) and np.array_equal(again.links, graph.links)
    with pytest.raises(LandmarkError, match="another encoder"):
        LandmarkGraph.load(tmp_path / "landmarks.npz", "b" * 64)
    (tmp_path / "junk.npz").write_bytes(b"not a file of arrays")
    with pytest.raises(LandmarkError, match="not a landmarks file"):
        LandmarkGraph.load(tmp_path / "junk.npz")
    with pytest.raises(LandmarkError, match="too few"):
        LandmarkGraph.build([np.zeros((5, 2))], landmarks=10)


@pytest.mark.sim
def test_a_bundle_ships_its_landmarks_and_loading_checks_them(tmp_path):
    """`jepa-pilot landmarks` on the shipped two_rooms bundle with freshly collected frames: the file is
    listed with its sha256, the planner's policy loads it, and a changed file is refused."""
    import shutil

    from jepa_pilot.cli.main import main
    from jepa_pilot.common.bundle import BundleError
    from jepa_pilot.common.paths import package_share
    from jepa_pilot.data.collect import CollectConfig, collect

    collect(CollectConfig(env="two_rooms", episodes=4, steps=60, seed=3), tmp_path / "data", progress=False,
            log=lambda _: None)
    bundle = tmp_path / "two_rooms"
    shutil.copytree(package_share() / "models" / "two_rooms", bundle)
    assert main(["landmarks", str(bundle), "--data", str(tmp_path / "data"), "--landmarks", "20",
                 "--providers", "cpu"]) == 0
    loaded = load_bundle(bundle)
    graph = LandmarkGraph.of_bundle(loaded)
    assert loaded.has("landmarks") and graph.centres.shape == (20, 32) and len(graph.links) > 0
    assert loaded.spec.metrics["landmarks"]["frames"] == 4 * 61
    reacher = str(package_share() / "models" / "reacher")
    assert main(["landmarks", reacher, "--data", str(tmp_path / "data"), "--providers", "cpu"]) == 2  # not its data
    assert main(["landmarks", str(tmp_path / "none"), "--data", str(tmp_path / "data")]) == 2
    assert not (package_share() / "models" / "reacher" / "landmarks.npz").exists()
    with open(bundle / "landmarks.npz", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(bundle)
