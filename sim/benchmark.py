"""Speed of the built-in environments: physics, env steps and rendering.

``run()`` returns a JSON-ready dict and prints nothing; the CLI prints it
or writes it to a file. Each figure is the median over ``repeats`` timed
runs, measured on the calling thread with ``time.perf_counter``.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Any, Callable, Sequence

import mujoco
import numpy as np

from jepa_pilot.sim.base import MujocoEnv
from jepa_pilot.sim.registry import make, registered

__all__ = ["run"]

BASE_SIZE = (64, 64)  # (width, height) every env is rendered at, whatever the configured size


def _median_seconds(body: Callable[[], None], repeats: int, setup: Callable[[], None]) -> float:
    """Median wall time of ``body`` over ``repeats`` runs, each after an untimed ``setup``."""
    times = []
    for _ in range(repeats):
        setup()
        start = time.perf_counter()
        body()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _machine() -> dict[str, Any]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "python": platform.python_version(),
        "mujoco": mujoco.__version__,
        "numpy": np.__version__,
        "mujoco_gl": os.environ.get("MUJOCO_GL", ""),
    }


def _render_ms(env: MujocoEnv, frames: int, repeats: int) -> float:
    env.reset(seed=0)
    env.render()  # the first frame pays one-off setup costs
    seconds = _median_seconds(lambda: [env.render() for _ in range(frames)], repeats, lambda: None)
    return 1000 * seconds / frames


def _bench_env(name: str, steps: int, frames: int, repeats: int,
               image_size: tuple[int, int] | None) -> dict[str, Any]:
    size = {} if image_size is None else {"image_width": image_size[0], "image_height": image_size[1]}
    env = make(name, **size)
    try:
        cfg = env.config
        actions = np.random.default_rng(0).uniform(-1, 1, (steps, env.action_dim))
        n_physics = steps * env.n_substeps

        def start_moving() -> None:
            env.reset(seed=0)
            env.step(actions[0], render=False)  # sets the controls the physics loop keeps

        physics = _median_seconds(lambda: mujoco.mj_step(env.model, env.data, nstep=n_physics),
                                  repeats, start_moving)
        stepping = _median_seconds(lambda: [env.step(a, render=False) for a in actions],
                                   repeats, lambda: env.reset(seed=0))
        env.render()  # warm up before timing frames
        stepping_rendering = _median_seconds(lambda: [env.step(a) for a in actions],
                                             repeats, lambda: env.reset(seed=0))
        render_ms = _render_ms(env, frames, repeats)
        configured = (cfg.image_width, cfg.image_height)
        if configured == BASE_SIZE:
            render_ms_base = render_ms
        else:
            with make(name, image_width=BASE_SIZE[0], image_height=BASE_SIZE[1]) as small:
                render_ms_base = _render_ms(small, frames, repeats)
        return {
            "physics_timestep_s": cfg.physics_timestep,
            "control_period_s": cfg.control_period,
            "substeps": env.n_substeps,
            "physics_steps_per_s": n_physics / physics,
            "env_steps_per_s": steps / stepping,
            "realtime_factor": steps * cfg.control_period / stepping,
            f"render_ms_{BASE_SIZE[0]}x{BASE_SIZE[1]}": render_ms_base,
            "image_size": list(configured),
            "render_ms": render_ms,
            "step_render_per_s": steps / stepping_rendering,
        }
    finally:
        env.close()


def run(envs: Sequence[str] | None = None, steps: int = 100, frames: int = 50, repeats: int = 5,
        image_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Benchmark ``envs`` (default: all registered) and return the figures.

    Per env: ``physics_steps_per_s`` (a bare ``mj_step`` loop),
    ``env_steps_per_s`` (``step(render=False)``, ``steps`` random actions),
    ``render_ms_64x64`` and ``render_ms`` (ms per frame at 64x64 and at the
    configured ``image_size``, (width, height), default the env's own),
    ``step_render_per_s`` (``step()`` with its image at the configured size).
    """
    for label, value in (("steps", steps), ("frames", frames), ("repeats", repeats)):
        if value < 1:
            raise ValueError(f"{label} must be at least 1, got {value}")
    names = registered() if envs is None else list(envs)
    start = time.perf_counter()
    results = {name: _bench_env(name, steps, frames, repeats, image_size) for name in names}
    return {
        "machine": _machine(),
        "settings": {"steps": steps, "frames": frames, "repeats": repeats,
                     "image_size": None if image_size is None else list(image_size)},
        "envs": results,
        "total_s": time.perf_counter() - start,
    }
