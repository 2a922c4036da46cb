"""Gymnasium envs through the adapter (``gym:ENV_ID``): PointMaze, a Gymnasium MuJoCo env, and a
small env defined here whose state cannot be set; collection from each."""
from __future__ import annotations

import json

import gymnasium
import numpy as np
import pytest

from jepa_pilot import sim
from jepa_pilot.cli.main import main
from jepa_pilot.common.config import ConfigError
from jepa_pilot.data import Dataset
from jepa_pilot.data.collect import CollectConfig, collect, walk_momentum
from jepa_pilot.evaluation.closed_loop import (LoopConfig, RandomPolicy, ShortestPathPolicy, goal_pairs,
                                               run_episode)

pytestmark = pytest.mark.sim

MAZE = "gym:PointMaze_UMaze-v3"
# In the UMaze's top corridor, 1 m of free space towards +x (cells are 1 m; the corridor runs x in [-1.5, 1.5]).
TOP_LEFT = np.array([-1.0, 1.0, 0.0, 0.0])


class Blink(gymnasium.Env):
    """A tiny non-MuJoCo env: a dot on a 20 x 30 frame moved by a 1-D action in [-2, 2]."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        self.action_space = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)
        self.observation_space = gymnasium.spaces.Box(-1.0, 30.0, (2,), np.float64)
        self.x = 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(5, 25))
        return np.array([self.x, 0.0]), {}

    def step(self, action):
        self.x = float(np.clip(self.x + action[0], 0, 29))
        return np.array([self.x, float(action[0])]), 1.0, False, False, {"where": self.x}

    def render(self):
        frame = np.zeros((20, 30, 3), np.uint8)
        frame[8:12, int(self.x)] = 255
        return frame


gymnasium.register("JepaPilotBlink-v0", entry_point=Blink, max_episode_steps=50)


@pytest.fixture(scope="module")
def maze():
    with sim.make(MAZE, env_kwargs='{"continuing_task": false}') as env:
        yield env


def red_pixels(frame: np.ndarray) -> int:
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    return int(((r > 150) & (g < 80) & (b < 80)).sum())


def test_pointmaze_is_seen_as_the_built_in_envs_are(maze):
    assert maze.name == MAZE and maze.embodiment == "gym"
    assert (maze.state_names, maze.state_units) == (("x", "y", "vx", "vy"), ("m", "m", "m/s", "m/s"))
    assert maze.control_period == pytest.approx(0.01) and maze.can_set_state
    np.testing.assert_array_equal(maze.action_scale, [1.0, 1.0])
    a, _ = maze.reset(seed=4)
    b, _ = maze.reset(seed=4)
    np.testing.assert_array_equal(a.state, b.state)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.image.shape == (64, 64, 3) and a.image.dtype == np.uint8
    obs, _ = maze.reset(state=TOP_LEFT)
    for _ in range(30):
        obs, reward, terminated, truncated, info = maze.step([1.0, 0.0])
    assert obs.state[0] > TOP_LEFT[0] + 0.1 and abs(obs.state[1] - TOP_LEFT[1]) < 0.05, obs.state
    assert not info["clipped"] and maze.step([2.0, 0.0])[4]["clipped"]
    with pytest.raises(ValueError, match="2 finite numbers"):
        maze.step([np.nan, 0.0])


def test_pointmaze_goal_images_show_the_ball_there_and_never_the_goal_marker(maze):
    obs, _ = maze.reset(state=TOP_LEFT)
    goal = np.array([1.0, -1.0, 0.0, 0.0])
    image = maze.render_goal(goal)
    np.testing.assert_array_equal(maze.state(), obs.state)  # the episode is put back
    np.testing.assert_array_equal(maze.render(), obs.image)
    assert np.abs(image.astype(int) - obs.image).sum() > 0
    np.testing.assert_array_equal(image, maze.reset(state=goal)[0].image)
    model = maze.gym.unwrapped.point_env.model
    marker = maze.gym.unwrapped.target_site_id
    maze.gym.unwrapped.goal = goal[:2]
    maze.gym.unwrapped.update_target_site_pos()
    assert red_pixels(maze.render()) == 0
    model.site_rgba[marker, 3] = 0.7  # the env's own marker, shown again: the check sees it
    try:
        assert red_pixels(maze.render()) > 0
    finally:
        model.site_rgba[marker, 3] = 0.0


def test_pointmaze_success_is_the_envs_own_condition(maze):
    unwrapped = maze.gym.unwrapped
    goal = np.array([1.0, -1.0])
    for offset in (0.44, 0.46):
        ours = maze.goal_distance(np.r_[goal + [offset, 0.0], 0, 0], np.r_[goal, 0, 0]) <= maze.success_radius
        assert ours == bool(unwrapped.compute_terminated(goal + [offset, 0.0], goal, {})), offset
    maze.reset(seed=2)
    own = maze.goal_state()
    np.testing.assert_array_equal(own[:2], unwrapped.goal)
    assert own[2:].tolist() == [0.0, 0.0]


def test_pointmaze_states_are_drawn_in_free_cells_and_walls_are_refused(maze):
    rng = np.random.default_rng(0)
    states = np.array([maze.sample_state(rng) for _ in range(200)])
    for state in states:
        maze.validate_state(state)
    assert states[:, :2].min(0).tolist() < [-1.0, -1.0] and states[:, :2].max(0).tolist() > [1.0, 1.0]
    with pytest.raises(ValueError, match=r"ball at \(0.00, 0.00\) m is not in a free cell"):
        maze.reset(state=[0.0, 0.0, 0.0, 0.0])  # the U's middle wall
    with pytest.raises(ValueError, match="shape"):
        maze.render_goal([1.0, 1.0])


def test_a_gymnasium_mujoco_env_gets_joint_states_it_can_be_put_in():
    with sim.make("gym:InvertedPendulum-v5", image_width=32, image_height=24) as env:
        assert env.state_names == ("slider", "hinge", "dslider", "dhinge")
        assert env.state_units == ("m", "rad", "m/s", "rad/s")
        np.testing.assert_array_equal(env.action_scale, [3.0, ])
        obs, _ = env.reset(state=[0.2, 0.1, 0.0, 0.0])
        assert obs.image.shape == (24, 32, 3)
        np.testing.assert_allclose(obs.state, [0.2, 0.1, 0.0, 0.0])
        tilted = env.render_goal([0.2, 0.6, 0.0, 0.0])
        assert np.abs(tilted.astype(int) - obs.image).sum() > 0
        np.testing.assert_allclose(env.state(), obs.state)


def test_an_env_whose_state_cannot_be_set_is_driven_and_collected_but_not_given_goals(tmp_path):
    with sim.make("gym:JepaPilotBlink-v0", image_width=16, image_height=16) as env:
        assert not env.can_set_state and env.control_period == pytest.approx(0.05)
        obs, _ = env.reset(seed=1)
        assert obs.image.shape == (16, 16, 3)  # the env's 20 x 30 frame, resized
        obs, reward, *_ = env.step([1.0])
        assert reward == 1.0 and obs.state[1] == pytest.approx(2.0)  # action 1 is the env's +2
        with pytest.raises(ValueError, match="no state access"):
            env.render_goal(obs.state)
    summary = collect(CollectConfig(env="gym:JepaPilotBlink-v0", episodes=2, steps=10, seed=0, image_size=16),
                      tmp_path / "d", progress=False, log=lambda line: None)
    data = Dataset(tmp_path / "d")
    assert data.info.robot == "gym:JepaPilotBlink-v0" and data.info.control_period == pytest.approx(0.05)
    assert data[0].images.shape == (11, 16, 16, 3) and "x in [" in summary["coverage"]["grid"]


def test_collecting_pointmaze_is_seeded_and_walks_on_the_envs_time_scale(tmp_path):
    assert walk_momentum(0.1, 1.0) == pytest.approx(0.9) and walk_momentum(0.01, 1.0) == pytest.approx(0.99)
    config = CollectConfig(env=MAZE, episodes=2, steps=40, seed=3, env_kwargs='{"continuing_task": true}')
    first = collect(config, tmp_path / "a", progress=False, log=lambda line: None)
    collect(config, tmp_path / "b", progress=False, log=lambda line: None)
    assert first["explorer"]["momentum"] == pytest.approx(0.99) and first["env"]["env_kwargs"] == config.env_kwargs
    a, b = Dataset(tmp_path / "a"), Dataset(tmp_path / "b")
    assert a.info.state_units == ("m", "m", "m/s", "m/s") and a.info.position_dims == [0, 1]
    for i in range(2):
        np.testing.assert_array_equal(a[i].images, b[i].images)
        np.testing.assert_array_equal(a[i].actions, b[i].actions)
    moved = np.linalg.norm(a[0].states[-1, :2] - a[0].states[0, :2])
    assert moved > 0.05, "the walk moved the ball"
    assert json.loads((tmp_path / "a" / "collect.json").read_text())["collect"]["env"] == MAZE


def test_gym_names_and_settings_get_clear_errors():
    with pytest.raises(ConfigError, match="NoSuchEnv"):
        sim.make("gym:NoSuchEnv-v0")
    with pytest.raises(ConfigError, match="env_kwargs.*a JSON object"):
        sim.make(MAZE, env_kwargs="[1, 2]")
    with pytest.raises(ConfigError, match="only for gym:ENV_ID envs"):
        CollectConfig(env="two_rooms", env_kwargs='{"a": 1}')
    with pytest.raises(ConfigError, match="world changes exist only in the built-in envs"):
        CollectConfig(env=MAZE, action_gain=1.5)
    with pytest.raises(ValueError, match="or gym:ENV_ID"):
        sim.make("no_such_env")


def test_eval_on_pointmaze_draws_the_envs_own_tasks_and_scores_with_its_own_radius(tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", "--env", MAZE, "--env-kwargs", '{"continuing_task": false}', "--policies", "random",
                 "--episodes", "3", "--max-steps", "20", "--seed", "5", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["config"]["success_radius"] == 0.45 and result["env"] == MAZE
    records = result["policies"]["random"]["records"]
    with sim.make(MAZE) as env:  # the same pairs, drawn again by the env's own reset
        pairs = goal_pairs(env, 3, 5)
        for (start, goal), record in zip(pairs, records):
            assert record["start"] == start.tolist() and record["goal"] == goal.tolist()
            assert env.goal_distance(start, goal) > 0.5  # PointMaze never resets within half a cell of its goal
        env.gym.reset(seed=int(np.random.default_rng(5).integers(2 ** 31)))
        np.testing.assert_array_equal(pairs[0][1][:2], env.gym.unwrapped.goal)
    assert main(["eval", "--env", "two_rooms", "--env-kwargs", '{"a": 1}', "--policies", "random"]) == 2
    assert "only for gym:ENV_ID envs" in capsys.readouterr().out


def test_pointmaze_routes_go_round_the_walls_and_the_shortest_path_reference_follows_them(tmp_path):
    """The family's map: a route from one arm of the U to the other turns at the two far corners;
    the shortest_path policy drives it (and random does not) within the same budget."""
    with sim.make(MAZE) as env:
        start, goal = np.array([-1.0, -1.0, 0.0, 0.0]), np.array([-1.0, 1.0, 0.0, 0.0])  # the two arm ends
        route = env.route(start, goal)
        np.testing.assert_allclose(route[:-1], [[1.0, -1.0], [1.0, 1.0]])  # round the wall, corner by corner
        np.testing.assert_allclose(route[-1], goal[:2])
        assert env.route(start, start)[-1].tolist() == start[:2].tolist()
        with pytest.raises(ValueError, match="not in a free cell"):
            env.route(start, np.array([0.0, 0.0, 0.0, 0.0]))  # the wall in the middle of the U
        np.testing.assert_allclose(env.steer(np.array([0.0, 0.0, 1.0, 0.0]), np.array([1.0, 0.0])),
                                   [env._access.kp - env._access.kd, 0.0])  # PD: pulled on, braked by the speed
        cfg = LoopConfig(episodes=1, max_steps=300, success_radius=0.45)
        records = [run_episode(env, policy, start, goal, cfg) for policy in (ShortestPathPolicy(env), RandomPolicy(2, 0))]
        assert records[0].success and not records[1].success
        assert records[0].steps_to_goal > 100  # 0.01 s steps: the way round is some 6 m
    with sim.make("gym:JepaPilotBlink-v0") as blink, pytest.raises(ValueError, match="knows no route"):
        ShortestPathPolicy(blink)


def test_action_repeat_holds_each_action_for_several_env_steps():
    with sim.make(MAZE) as once, sim.make(MAZE, action_repeat=5) as held:
        assert held.control_period == pytest.approx(5 * once.control_period)
        state = np.array([0.0, -1.0, 0.0, 0.0])
        once.reset(state=state)
        held.reset(state=state)
        for _ in range(5):
            after_once, *_ = once.step(np.array([0.6, 0.0]), render=False)
        after_held, *_ = held.step(np.array([0.6, 0.0]), render=False)
        np.testing.assert_allclose(after_held.state, after_once.state)
        assert after_held.time == pytest.approx(0.05)
    with pytest.raises(ConfigError, match="action_repeat.*only for gym:ENV_ID"):
        sim.make("two_rooms", action_repeat=2)
    with pytest.raises(ConfigError, match="action_repeat"):
        CollectConfig(env="two_rooms", action_repeat=3)


def test_collecting_pointmaze_seeks_waypoints_along_routes(tmp_path):
    summary = collect(CollectConfig(env=MAZE, episodes=2, steps=100, seed=1, action_repeat=5), tmp_path / "d",
                      progress=False, log=lambda line: None)
    assert 0.2 < summary["coverage"]["seek_fraction"] <= 1.0 and summary["explorer"]["tolerance"] == 0.3
    data = Dataset(tmp_path / "d")
    assert data.info.control_period == pytest.approx(0.05)
    positions = np.concatenate([data[i].states[:, :2] for i in range(2)])
    with sim.make(MAZE) as env:
        for p in positions[::10]:  # every state the explorer drove through is in a free cell
            env.validate_state(np.array([*p, 0.0, 0.0]))
