"""A thread that works on the newest item only: the planner's way of keeping up with its camera.

A control loop fed faster than it can answer should answer the newest input
and skip the ones that went stale while it worked. :class:`LatestWorker`
holds one waiting item: ``put`` replaces an item still waiting (and counts
it in ``replaced``), the thread works on one item at a time, in order of
arrival. The caller's thread never waits for the work.

An exception out of ``work`` ends the thread; ``on_error(exc)`` is called
with it, in the worker's thread, so the owner can end the process as it
would for a failed callback. Items put after that are refused (``failed``).
"""
from __future__ import annotations

import threading
from typing import Callable

__all__ = ["LatestWorker"]

_NOTHING = object()


class LatestWorker:
    def __init__(self, work: Callable[[object], None], name: str,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self.work, self.on_error = work, on_error
        self.replaced, self.done = 0, 0   # items replaced before their turn; items worked on
        self.failed: BaseException | None = None
        self._cond = threading.Condition()
        self._waiting, self._closed, self._busy = _NOTHING, False, False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item) -> bool:
        """Queue ``item`` as the next to work on; False when closed or failed (nothing queued)."""
        with self._cond:
            if self._closed or self.failed is not None:
                return False
            self.replaced += self._waiting is not _NOTHING
            self._waiting = item
            self._cond.notify()
        return True

    def idle(self) -> bool:
        """Nothing waiting and nothing being worked on."""
        with self._cond:
            return self._waiting is _NOTHING and not self._busy

    def close(self, timeout: float | None = None) -> bool:
        """Drop a waiting item, let the one in work finish (up to ``timeout`` s); True when the thread ended."""
        with self._cond:
            self._closed, self._waiting = True, _NOTHING
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._waiting is _NOTHING and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                item, self._waiting, self._busy = self._waiting, _NOTHING, True
            try:
                self.work(item)
            except BaseException as exc:  # noqa: BLE001 - handed to the owner, which ends the process
                with self._cond:
                    self.failed, self._busy = exc, False
                if self.on_error is not None:
                    self.on_error(exc)
                return
            with self._cond:
                self._busy, self.done = False, self.done + 1
