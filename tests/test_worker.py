"""common/worker.py: the planner's newest-only worker thread."""
from __future__ import annotations

import threading

import pytest

from jepa_pilot.common.worker import LatestWorker

pytestmark = pytest.mark.unit

WAIT = 10.0  # s: generous bounds on thread hand-offs; the tests never judge speed


class Gate:
    """A work function that records items and blocks on each until released."""

    def __init__(self, fail_on=None) -> None:
        self.items, self.started, self.release, self.fail_on = [], threading.Event(), threading.Event(), fail_on

    def __call__(self, item) -> None:
        self.items.append(item)
        self.started.set()
        assert self.release.wait(WAIT)
        if item == self.fail_on:
            raise RuntimeError(f"failed on {item}")


def wait_until(done) -> None:
    event = threading.Event()
    for _ in range(1000):
        if done():
            return
        event.wait(0.01)
    raise AssertionError("timed out")


def test_items_put_while_busy_are_replaced_by_the_newest():
    gate = Gate()
    worker = LatestWorker(gate, "test")
    worker.put(1)
    assert gate.started.wait(WAIT)
    for item in (2, 3, 4):  # 1 is in work: 2 and 3 are replaced before their turn
        assert worker.put(item)
    assert worker.replaced == 2 and not worker.idle()
    gate.release.set()
    wait_until(worker.idle)
    assert gate.items == [1, 4] and worker.done == 2
    assert worker.close(WAIT)


def test_close_drops_the_waiting_item_and_lets_the_running_one_finish():
    gate = Gate()
    worker = LatestWorker(gate, "test")
    worker.put("running")
    assert gate.started.wait(WAIT)
    worker.put("waiting")
    closer = threading.Thread(target=worker.close, args=(WAIT,))
    closer.start()
    gate.release.set()
    closer.join(WAIT)
    assert gate.items == ["running"] and worker.done == 1
    assert not worker.put("late")  # closed: refused, nothing queued
    assert gate.items == ["running"]


def test_a_failure_is_handed_to_the_owner_and_later_items_are_refused():
    gate, errors = Gate(fail_on=2), []
    gate.release.set()
    worker = LatestWorker(gate, "test", on_error=errors.append)
    worker.put(1)
    wait_until(lambda: worker.done == 1)
    worker.put(2)
    wait_until(lambda: errors)
    assert isinstance(errors[0], RuntimeError) and worker.failed is errors[0]
    assert not worker.put(3) and gate.items == [1, 2]
    assert worker.close(WAIT)
