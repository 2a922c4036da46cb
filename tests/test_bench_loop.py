"""`jepa-pilot bench loop`: its numbers from recorded series (unit), the CPU hog (unit), and a short run of
the command through the real sim graph, idle and loaded (ros)."""
from __future__ import annotations

import json
import subprocess

import pytest

from jepa_pilot.evaluation import loop_bench
from jepa_pilot.evaluation.soak import group_usage


def series(frames: int = 60, hz: float = 30.0, skip: tuple = (7,)):
    """Frames at ``hz`` (frame ``skip`` never arrives); each latent 5 ms after its frame, each plan 20 ms
    after it (every 10th one a stop that did not drive, planning 12 ms); a command per plan."""
    images = [(100.0 + k / hz, k / hz) for k in range(frames) if k not in skip]
    latents = [(wall + 0.005, stamp) for wall, stamp in images]
    plans = [(wall + 0.020, stamp, k % 10 != 0, 0.012) for k, (wall, stamp) in enumerate(images)]
    plans.append((200.0, 99.0, True, 0.5))  # a plan of a frame the harness never saw: no latency
    return images, latents, plans, [wall for wall, *_ in plans]


@pytest.mark.unit
def test_summarize_measures_each_frame_from_its_arrival_to_its_latent_and_its_plan():
    images, latents, plans, commands = series()
    s = loop_bench.summarize(images, latents, plans, commands, seconds=2.0, camera_hz=30.0,
                             counters_before={"stale_stops": 2, "overrun_stops": 0},
                             counters_after={"stale_stops": 5, "overrun_stops": 1, "frames_refused_by_encoder": 4,
                                             "sim_real_time_factor": 0.9871},
                             cpu_pct={"planner": 90.0}, goals=3, reached=2, times_to_goal=[3.0, 5.0])
    assert s["latency_ms_p50"] == pytest.approx(20.0) and s["latency_ms_p99"] == pytest.approx(20.0)
    assert s["encode_ms_p50"] == pytest.approx(5.0)
    assert s["plan_ms_p50"] == pytest.approx(12.0) and s["plan_ms_p99"] > 12.0  # the 0.5 s plan drove too
    assert s["plans"] == 60 and s["plans_driving"] == 59 - 6 + 1 and s["frames_with_a_plan"] == 53
    assert s["command_rate_hz"] == 30.0  # 60 commands in 2 s
    # 53 driving plans over 59 camera periods, and the one at wall 200 s alone over one period
    assert s["command_rate_driving_hz"] == pytest.approx(54 / (60 / 30.0), abs=0.01)
    assert s["camera_at_harness"]["lost"] == 1  # frame 7
    assert (s["stale_stops"], s["overrun_stops"], s["frames_refused_by_encoder"]) == (3, 1, 4)
    assert s["latents_refused_by_planner"] is None  # never reported: unknown, not zero
    assert (s["goals"], s["goals_reached"], s["cpu_pct"]) == (3, 2, {"planner": 90.0})
    assert s["time_to_goal_s_p50"] == 4.0 and s["sim_real_time_factor"] == 0.987
    empty = loop_bench.summarize([], [], [], [], 0.0, 30.0, {}, {}, {}, 0, 0)
    assert empty["time_to_goal_s_p50"] is None and empty["sim_real_time_factor"] is None
    assert empty["latency_ms_p50"] is None and empty["command_rate_hz"] == empty["command_rate_driving_hz"] == 0.0


@pytest.mark.unit
def test_runs_combine_into_medians_and_keep_every_run():
    images, latents, plans, commands = series()
    runs = [loop_bench.summarize(images, latents, plans, commands, seconds, 30.0, {"stale_stops": 0},
                                 {"stale_stops": stops}, {"planner": cpu}, goals, reached)
            for seconds, stops, cpu, goals, reached in ((2.0, 0, 40.0, 3, 2), (4.0, 5, 60.0, 5, 5), (1.0, 1, 50.0, 4, 3))]
    runs[1]["nodes_died"], runs[0]["nodes_died"] = {"planner": 1}, {}
    runs[2]["nodes_died"] = {}
    c = loop_bench.combine(runs)
    assert c["repeats"] == 3 and c["runs"] == runs
    assert c["command_rate_hz"] == 30.0  # 60 commands in 2 s: the median of 30, 15 and 60
    assert (c["stale_stops"], c["goals"], c["goals_reached"], c["cpu_pct"]) == (1, 4, 3, {"planner": 50.0})
    assert c["camera_hz"] == 30.0 and c["camera_at_harness"]["lost"] == 1
    assert c["nodes_died"] == {"planner": 1}  # a death in any run
    assert c["time_to_goal_s_p50"] is None  # no run timed a goal


@pytest.mark.unit
def test_the_hog_spins_while_held_and_is_gone_after():
    with loop_bench.hog(True) as proc:
        assert proc.poll() is None
        before = group_usage(proc.pid)[1]
        subprocess.run(["sleep", "0.5"])
        assert group_usage(proc.pid)[1] > before  # it burns CPU
    assert proc.poll() is not None
    with loop_bench.hog(False) as none:
        assert none is None


@pytest.mark.unit
def test_the_plot_writes_an_image(tmp_path):
    images, latents, plans, commands = series()
    summary = loop_bench.summarize(images, latents, plans, commands, 2.0, 30.0, {}, {}, {}, 0, 0)
    pairs = loop_bench.frame_latencies(images, [(w, s) for w, s, drove, _ in plans if drove])
    run = {"summary": summary, "series": {"t_s": [w - 100 for w, _ in pairs], "latency_ms": [x * 1e3 for _, x in pairs]}}
    loop_bench.plot({"idle": run, "loaded": run}, tmp_path / "loop.png")
    assert (tmp_path / "loop.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.ros
@pytest.mark.parametrize("compose", [False, True], ids=["processes", "composed"])
def test_a_short_loop_benchmark_through_the_graph_measures_both_runs(tmp_path, compose):
    out = tmp_path / "loop.json"
    repeats = 1 if compose else 2
    done = subprocess.run(["jepa-pilot", "bench", "loop", "--minutes", "0.3" if compose else "0.2",
                           "--repeats", str(repeats), "--json", str(out), "--log", str(tmp_path / "nodes.log"),
                           *(["--compose"] if compose else [])], capture_output=True, text=True, timeout=400)
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["command"].startswith("jepa-pilot bench loop") and result["machine"]["cpus"] >= 1
    for name in ("idle", "loaded"):
        assert result[name]["repeats"] == len(result[name]["runs"]) == repeats
        p50s = [r["latency_ms_p50"] for r in result[name]["runs"]]
        assert min(p50s) <= result[name]["latency_ms_p50"] <= max(p50s)
        for s in (result[name], *result[name]["runs"]):
            check_run(s, compose)
    assert result["compose"] is compose
    assert (tmp_path / "loop.png").exists()


def check_run(s: dict, compose: bool) -> None:
    """One run's summary, or the median of several: each holds what a run guarantees."""
    assert s["nodes_died"] == {} and s["camera_hz"] == 30.0, s
    assert s["frames_with_a_plan"] > 0 and s["latency_ms_p50"] > 0 and s["encode_ms_p50"] > 0, s
    assert s["latency_ms_p99"] >= s["latency_ms_p50"] >= s["encode_ms_p50"], s  # a plan follows its latent
    assert s["command_rate_hz"] > 0 and s["plan_ms_p50"] > 0 and s["goals"] + s["goal_cut_short"] >= 1, s
    assert s["stale_stops"] is not None and s["overrun_stops"] is not None, s  # the planner's counters came
    assert 0 < s["command_rate_driving_hz"] <= 1.05 * s["camera_hz"], s  # at most one plan per frame
    nodes = {"pilot_node"} if compose else {"encoder", "planner", "predictor"}
    assert set(s["cpu_pct"]) >= {"sim", "harness", "stolen", *nodes}, s
