"""`jepa-pilot bench finetune`: what a fine-tune costs and what it buys, predictor only and with the encoder.

For each world change of the adaptation benchmark (``adapt.SCENARIOS``: the
action axes rotated 90°, the action gain halved, the light 10 % brighter),
collect live data of the changed robot with the dataset collector, then run
the online trainer's own child (``online.finetune_command``: `jepa-pilot
finetune` with the trainer's steps, threads, margin and base limit) on it, once
for the predictor only and once with ``--encoder``. Recorded per run: wall time,
steps per second of the child's whole run (loading, training, gate, export: the
trainer's ``finetune_steps_per_s``), the child's peak resident memory,
the gate's verdict and reason; and for the starting bundle and every accepted
one, the one score that compares latent spaces, the held-out rollout/copy-last
MSE on the same live and base frames (``finetune.relative_scores``).

No ROS here: the data come from the simulator directly, the fine-tunes run in
child processes at normal priority (the trainer runs them at idle priority,
which only makes them slower on a busy machine).
"""
from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

from jepa_pilot.evaluation.adapt import SCENARIOS

__all__ = ["MODES", "run"]

MODES = ("predictor", "encoder")


def _collect_live(where: Path, change: dict, episodes: int, steps: int, seed: int) -> Path:
    from jepa_pilot.data.collect import CollectConfig, collect

    collect(CollectConfig(env="two_rooms", episodes=episodes, steps=steps, seed=seed, **change), where,
            progress=False, log=lambda line: None)
    return where


# Runs the fine-tune as its child and reports the child's peak resident memory. A wrapper, because a child
# forked straight from this process would report this process's memory as its own until its exec.
_PEAK_RSS = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
             "print(f'peak_rss_kb {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}'); sys.exit(code)")


def _finetune(bundle: Path, live: Path, base: Path, out: Path, cfg) -> dict:
    """One `jepa-pilot finetune` child as the trainer starts it; its verdict, wall time and peak memory."""
    import sys

    from jepa_pilot.world_model.online import finetune_command, finetune_environment

    verdict = out.with_suffix(".json")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _PEAK_RSS, *finetune_command(bundle, live, base, out, verdict, cfg)],
                          env=finetune_environment(cfg), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.monotonic() - start
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"jepa-pilot finetune exited with {proc.returncode}:\n{proc.stdout[-2000:]}")
    peak_kb = int(proc.stdout.strip().splitlines()[-1].split()[-1])
    result = json.loads(verdict.read_text())
    return {"accepted": proc.returncode == 0, "reason": result["reason"], "metric": result.get("metric"),
            "world_changed": result.get("world_changed"), "wall_s": wall,
            "steps_per_s": cfg.finetune_steps / result["wall_s"], "peak_rss_mb": peak_kb / 1024,
            "model_id": result.get("model_id"), "current_rank": result.get("current_rank"),
            "candidate_rank": result.get("candidate_rank")}


def run(bundle: Path, base: Path, scenarios: list[str], episodes: int, steps: int, seed: int, cfg,
        log: Callable[[str], None] = print) -> dict:
    """Every scenario x mode; ``cfg``: the trainer's OnlineConfig (its finetune_encoder is set per mode)."""
    from jepa_pilot.world_model.finetune import relative_scores

    out: dict = {"bundle": str(bundle), "base_data": str(base), "live_data": {"env": "two_rooms",
                 "episodes": episodes, "steps": steps, "seed": seed}, "online_config": cfg.to_dict(),
                 "score": "held-out rollout MSE / copy-last MSE, each model in its own latent space",
                 "scenarios": {}}
    with tempfile.TemporaryDirectory(prefix="jepa-bench-finetune-") as tmp:
        for name in scenarios:
            live = _collect_live(Path(tmp) / name / "live", SCENARIOS[name], episodes, steps, seed)
            start = relative_scores(bundle, live, base)
            row = {"change": SCENARIOS[name], "start_score": start, "modes": {}}
            log(f"{name}: live data collected; the bundle's score live {start['live']:.4f}, base {start['base']:.4f}")
            for mode in MODES:
                result = _finetune(bundle, live, base, Path(tmp) / name / mode,
                                   cfg.replace(finetune_encoder=mode == "encoder"))
                if result["accepted"]:
                    result["score"] = relative_scores(Path(tmp) / name / mode, live, base)
                row["modes"][mode] = result
                log(f"  {mode:<9} {'accepted' if result['accepted'] else 'rejected'} in {result['wall_s']:.0f} s "
                    f"({result['steps_per_s'] or 0:.1f} steps/s, peak {result['peak_rss_mb']:.0f} MB)"
                    + (f", score live {result['score']['live']:.4f} base {result['score']['base']:.4f}"
                       if result["accepted"] else ""))
            out["scenarios"][name] = row
    return out
