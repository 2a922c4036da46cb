"""The soak benchmark: what it measures per process group, its memory verdict, its plot (unit), and
a short `jepa-pilot bench soak` through the real graph (ros)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from jepa_pilot.evaluation.soak import CLOCK_TICK, group_usage, plot, stolen_seconds, verdict

ALLOC_MB = 64


def sample(minute: float, **rss: float) -> dict:
    return {"minute": minute, "nodes": {name: {"rss_mb": mb, "cpu_pct": 10.0} for name, mb in rss.items()},
            "frame_to_plan_ms_p99": 100.0, "camera_at_harness": {"lost": 0}, "goals": 1, "reached": 1}


@pytest.mark.unit
def test_group_usage_counts_the_memory_and_cpu_of_another_process_group():
    child = subprocess.Popen([sys.executable, "-c", f"import time; x = bytearray({ALLOC_MB} << 20); x[::4096] = "
                              f"b'1' * len(x[::4096]); sum(range(3_000_000)); print('ready', flush=True); "
                              f"time.sleep(60)"], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert child.stdout.readline().strip() == b"ready"
        rss, cpu = group_usage(child.pid)
        mine, _ = group_usage(os.getpgid(0))
        assert rss > ALLOC_MB and cpu > 0.0
        assert mine > 0 and rss != mine  # its own group, not this one
    finally:
        child.kill()
        child.wait()
    time.sleep(0.1)
    assert group_usage(child.pid) == (0.0, 0.0)  # gone: nothing left in that group


@pytest.mark.unit
def test_stolen_seconds_reads_the_hypervisors_steal_time(tmp_path):
    (tmp_path / "stat").write_text("cpu  4705 150 1120 16250 520 0 30 350 0 0\ncpu0 2000 75 560 8000 260 0 15 175 0 0\n")
    assert stolen_seconds(tmp_path) == pytest.approx(350 / CLOCK_TICK)  # the machine's line, not a core's
    (tmp_path / "stat").write_text("cpu  4705 150 1120 16250\n")  # a kernel too old to count steal
    assert stolen_seconds(tmp_path) == 0.0


@pytest.mark.unit
def test_verdict_fails_a_node_that_grows_after_the_warm_up_and_passes_a_flat_one():
    samples = [sample(m, planner=100.0 + 4.0 * min(m, 5) + 0.2 * max(m - 5, 0), sim=300.0)
               for m in range(1, 61)]  # planner: +20 MB in the warm-up, then +11 MB in 55 minutes
    result = verdict(samples, warmup_min=5, max_growth=0.05)
    assert not result["passed"] and result["memory"]["planner"]["growth"] == pytest.approx(11.0 / 120.0, abs=1e-3)
    assert result["problems"] == ["planner grew 9.2 % after the warm-up (120.0 -> 131.0 MB; limit 5 %)"]
    assert result["memory"]["sim"]["growth"] == 0.0
    assert result["memory"]["planner"]["slope_mb_per_hour"] == pytest.approx(12.0, abs=0.1)
    assert verdict(samples, warmup_min=5, max_growth=0.10)["passed"]  # within a looser bound


@pytest.mark.unit
def test_verdict_fails_on_a_dead_node_and_on_too_few_samples():
    samples = [sample(m, sim=300.0) for m in range(1, 11)]
    assert verdict(samples, 5, 0.05)["passed"]
    died = verdict(samples, 5, 0.05, died={"encoder": -9})
    assert not died["passed"] and died["problems"] == ["encoder exited with code -9"]
    short = verdict(samples[:5], 5, 0.05)
    assert not short["passed"] and "fewer than 2 samples" in short["problems"][0]


@pytest.mark.unit
def test_plot_writes_an_image(tmp_path):
    samples = [sample(m, planner=100.0 + m, sim=300.0) for m in range(1, 8)]
    path = tmp_path / "soak.png"
    plot(samples, verdict(samples, 2, 0.05), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.ros
def test_a_short_soak_through_the_graph_samples_every_node(tmp_path):
    out = tmp_path / "soak.json"
    done = subprocess.run(["jepa-pilot", "bench", "soak", "--minutes", "0.6", "--every", "8", "--warmup", "0.2",
                           "--json", str(out), "--log", str(tmp_path / "nodes.log")],
                          capture_output=True, text=True, timeout=300)
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    nodes = {"sim", "encoder", "planner", "predictor", "goal"}
    assert len(result["samples"]) >= 3
    for record in result["samples"]:
        assert set(record["nodes"]) == nodes
        assert all(v["rss_mb"] > 10 and v["cpu_pct"] >= 0 for v in record["nodes"].values())
    last = result["samples"][-1]
    assert "latency_ms_p99" in last["nodes"]["planner"] and "dropped" in last["nodes"]["encoder"]
    assert last["nodes"]["sim"]["real_time_factor"] > 0  # the sim node's /diagnostics came through
    assert result["goals"] >= 1
    # The exit code follows the verdict, and the verdict follows the rule.
    grew = [n for n, m in result["memory"].items() if m["growth"] > result["max_growth"]]
    assert result["passed"] == (not grew)
    assert done.returncode == (0 if result["passed"] else 1), done.stdout[-2000:]
    assert (tmp_path / "soak.png").exists()
