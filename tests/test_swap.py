"""Unit tier: the pieces of a hot-swap without ROS: loading off the control path, refusing bad
bundles, the staged engine taken once, and who must be ready before the encoder commits."""
from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from jepa_pilot.common.paths import package_share
from jepa_pilot.perception.bundle import BundleError, load_bundle
from jepa_pilot.perception.swap import ReadyBoard, Staging, load_engine

pytestmark = pytest.mark.unit

BUNDLE = package_share() / "models" / "two_rooms"
MODEL_ID = load_bundle(BUNDLE).spec.model_id


def no_check(engine) -> None:
    pass


def staging() -> tuple[Staging, list, threading.Event]:
    reports, done = [], threading.Event()

    def report(model_id, ok, message):
        reports.append((model_id, ok, message))
        done.set()

    return Staging(lambda bundle, model_id: load_engine(bundle, ["cpu"], 1, no_check, model_id), report), reports, done


def test_load_engine_checks_the_announced_id_and_the_fit():
    engine = load_engine(str(BUNDLE), ["cpu"], 1, no_check, MODEL_ID)
    assert engine.model_id == MODEL_ID
    with pytest.raises(BundleError, match="announced as 'other'"):
        load_engine(str(BUNDLE), ["cpu"], 1, no_check, "other")

    def refuse(engine):
        raise ValueError("does not fit this robot")

    with pytest.raises(ValueError, match="does not fit"):
        load_engine(str(BUNDLE), ["cpu"], 1, refuse)


def test_a_staged_bundle_is_taken_once_and_only_by_its_id():
    stage, reports, done = staging()
    assert stage.request(str(BUNDLE), MODEL_ID, current_id="old") == ""
    assert stage.wait(60) and done.is_set()
    assert reports[0][:2] == (MODEL_ID, True) and "loaded and warmed" in reports[0][2]
    assert stage.staged_id == MODEL_ID
    assert "already" in stage.request(str(BUNDLE), MODEL_ID, current_id="old")
    assert stage.take("another") is None
    engine = stage.take(MODEL_ID)
    z = engine.encode(np.zeros((64, 64, 3), np.uint8))
    assert z.shape == (engine.spec.latent_dim,)
    assert stage.take(MODEL_ID) is None and stage.staged_id == ""
    assert "already the current" in stage.request(str(BUNDLE), MODEL_ID, current_id=MODEL_ID)
    stage.close()


def test_a_staged_model_is_named_for_commit_only_after_its_ready_report_went_out():
    """The encoder commits what staged_id names: were it named before the report, the graph could
    see latents of the new model before the encoder's ready report for it (a CI failure)."""
    seen = []
    stage = Staging(lambda bundle, model_id: load_engine(bundle, ["cpu"], 1, no_check, model_id),
                    lambda model_id, ok, message: seen.append((stage.staged_id, stage.peek() is not None)))
    assert stage.request(str(BUNDLE), MODEL_ID, current_id="old") == ""
    assert stage.wait(60)
    assert seen == [("", True)]  # during the report: loaded (takeable), not yet named
    assert stage.staged_id == MODEL_ID
    stage.close()


def test_a_corrupt_bundle_is_refused_with_the_reason_and_nothing_is_staged(tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(BUNDLE, bad)
    data = bytearray((bad / "rollout.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "rollout.onnx").write_bytes(bytes(data))
    stage, reports, done = staging()
    assert stage.request(str(bad), MODEL_ID, current_id="old") == ""
    assert stage.wait(60) and done.is_set()
    model_id, ok, message = reports[0]
    assert not ok and "rollout.onnx" in message and "sha256" in message
    assert stage.staged_id == "" and stage.take(MODEL_ID) is None
    stage.close()


def test_the_encoder_commits_only_when_every_node_it_waits_for_is_ready_for_that_model():
    board = ReadyBoard(("planner", "predictor"))
    assert not board.ready("m2") and board.waiting("m2") == "planner: no report yet; predictor: no report yet"
    board.report("planner", "m2", True, "loaded")
    board.report("predictor", "m1", True, "loaded")  # ready for another model
    assert not board.ready("m2")
    board.report("predictor", "m2", False, "refused: bad hash")
    assert not board.ready("m2") and board.waiting("m2") == "predictor: refused: bad hash"
    board.report("predictor", "m2", True, "loaded")
    assert board.ready("m2") and board.waiting("m2") == ""
    assert ReadyBoard(()).ready("anything")


def test_bench_swap_measures_a_control_thread_while_bundles_load(tmp_path, capsys):
    """`jepa-pilot bench swap`: the ticker ran through the loads and every load was timed."""
    import json

    from jepa_pilot.cli.main import main

    out = tmp_path / "swap.json"
    assert main(["bench", "swap", "--repeats", "1", "--providers", "cpu", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["benchmark"] == "swap" and result["loads"] == 10
    assert 0 < result["load_ms_median"] <= result["load_ms_max"]
    assert result["idle"]["ticks"] > 100 and result["loading"]["ticks"] > 0
    for phase in ("idle", "loading"):
        r = result[phase]
        assert 0 <= r["late_ms_p50"] <= r["late_ms_p99"] <= r["late_ms_max"]
    assert "10 loads of two_rooms" in capsys.readouterr().out
