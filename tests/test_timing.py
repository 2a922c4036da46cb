"""common/timing.py's Pacer: the steps a wall-clock-paced loop (the sim node) owes at each tick."""
from __future__ import annotations

import pytest

from jepa_pilot.common.timing import Pacer

pytestmark = pytest.mark.unit


def test_ticks_on_time_step_once_and_a_late_tick_catches_up():
    pacer = Pacer(0.01, burst=5)
    assert [pacer.due(t) for t in (100.0, 100.01, 100.02, 100.03)] == [1, 1, 1, 1]
    assert pacer.due(100.0335) == 0           # early (timer jitter): nothing owed yet
    assert pacer.due(100.0405) == 1           # the step it owed
    assert pacer.due(100.0705) == 3           # 30 ms late: three steps at once
    assert pacer.done == 8


def test_a_loop_too_far_behind_gives_up_the_rest_and_paces_from_there():
    pacer = Pacer(0.01, burst=5)
    pacer.due(0.0)
    assert pacer.due(1.0) == 5                # 100 steps owed: only the burst
    assert [pacer.due(1.0 + 0.01 * k) for k in (1, 2, 3)] == [1, 1, 1]  # real time again, from here
    pacer.restart(0.02)                       # a new real-time factor
    assert [pacer.due(t) for t in (5.0, 5.02, 5.04)] == [1, 1, 1]
