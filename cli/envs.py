"""`jepa-pilot envs`: list the built-in simulator envs and their settings."""
from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("envs", help="list the built-in simulator envs, their actions and settings",
                       description="List the registered MuJoCo envs: embodiment, actions, state and config.")
    p.add_argument("name", nargs="?", help="show one env's settings with descriptions and ranges")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jepa_pilot import sim

    names = [args.name] if args.name else sim.registered()
    for name in names:
        try:
            env = sim.make(name)
        except ValueError as exc:
            print(f"jepa-pilot envs: error: {exc}")
            return 2
        with env:
            actions = ", ".join(f"{n} (±{s:g} {u})" for n, s, u in
                                zip(env.action_names, env.action_scale, env.action_units))
            print(f"{name}: {env.embodiment}; actions {actions}; state ({', '.join(env.state_names)})")
            if args.name:
                for field, _, spec in type(env.config).settings():
                    rng = f" [{spec.low:g}, {spec.high:g}]" if spec.low is not None and spec.high is not None else ""
                    choices = f" one of {', '.join(map(str, spec.choices))}" if spec.choices else ""
                    print(f"  {field.name:<20} = {getattr(env.config, field.name)!r:<14} {spec.doc}{rng}{choices}")
    return 0
