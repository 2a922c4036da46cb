"""`jepa-pilot envs`: list the built-in simulator envs and their settings, or show a Gymnasium env."""
from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("envs", help="list the built-in simulator envs, their actions and settings",
                       description="List the registered MuJoCo envs: embodiment, actions, state and config. "
                                   "NAME may also be gym:ENV_ID, a Gymnasium env that renders RGB frames "
                                   "(e.g. gym:PointMaze_UMaze-v3): shown as the pipeline sees it.")
    p.add_argument("name", nargs="?", help="show one env's settings with descriptions and ranges")
    p.add_argument("--env-kwargs", default="{}", help="gym:ENV_ID only: JSON keyword arguments for gymnasium.make")
    p.add_argument("--action-repeat", type=int, default=1, help="gym:ENV_ID only: env steps each action is held for")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jepa_pilot import sim

    names = [args.name] if args.name else sim.registered()
    for name in names:
        try:
            env = sim.make(name, env_kwargs=args.env_kwargs, action_repeat=args.action_repeat)
        except ValueError as exc:
            print(f"jepa-pilot envs: error: {exc}")
            return 2
        with env:
            actions = ", ".join(f"{n} (±{s:g} {u})" for n, s, u in
                                zip(env.action_names, env.action_scale, env.action_units))
            state = ", ".join(f"{n} {u}".strip() for n, u in zip(env.state_names, env.state_units))
            print(f"{name}: {env.embodiment}; actions {actions}; state ({state}); "
                  f"{env.control_period:g} s per step")
            if args.name:
                for field, _, spec in type(env.config).settings():
                    rng = f" [{spec.low:g}, {spec.high:g}]" if spec.low is not None and spec.high is not None else ""
                    choices = f" one of {', '.join(map(str, spec.choices))}" if spec.choices else ""
                    print(f"  {field.name:<20} = {getattr(env.config, field.name)!r:<14} {spec.doc}{rng}{choices}")
    if not args.name:
        print("gym:ENV_ID: any Gymnasium env that renders RGB frames (pip install gymnasium; "
              "gymnasium-robotics for PointMaze); `jepa-pilot envs gym:ENV_ID` shows one")
    return 0
