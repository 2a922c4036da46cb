"""Measuring loops: event rates and whether a periodic loop keeps its period."""
from __future__ import annotations

import collections

import numpy as np

__all__ = ["median_ms", "RateMeter", "LoopMonitor", "SampleWindow"]


class RateMeter:
    """Rate of events over a sliding window of the last ``window`` seconds."""

    def __init__(self, window: float = 2.0) -> None:
        self.window = window
        self._times: collections.deque[float] = collections.deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()

    def rate(self, now: float) -> float:
        """Events per second in the window ending at ``now`` (0 with fewer than two events)."""
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)


class LoopMonitor:
    """Tracks how long each iteration of a periodic loop takes against its period.

    ``record(work_seconds, wall_now, sim_now)`` after each iteration. The
    real-time factor is simulated time advanced per wall-clock second over
    the last ``window`` iterations (1.0 = keeping real time).
    """

    def __init__(self, period: float, window: int = 50) -> None:
        self.period = period
        self.overruns = 0
        self.iterations = 0
        self._work: collections.deque[float] = collections.deque(maxlen=window)
        self._clock: collections.deque[tuple[float, float]] = collections.deque(maxlen=window)

    def record(self, work: float, wall_now: float, sim_now: float) -> bool:
        """Record one iteration; True if it took longer than the period (an overrun)."""
        self.iterations += 1
        self._work.append(work)
        self._clock.append((wall_now, sim_now))
        overrun = work > self.period
        self.overruns += overrun
        return overrun

    def real_time_factor(self) -> float:
        if len(self._clock) < 2:
            return float("nan")
        (w0, s0), (w1, s1) = self._clock[0], self._clock[-1]
        return (s1 - s0) / max(w1 - w0, 1e-9)

    def work_percentiles(self) -> tuple[float, float]:
        """(p50, p99) seconds of work per iteration over the window."""
        if not self._work:
            return float("nan"), float("nan")
        p50, p99 = np.percentile(np.asarray(self._work), [50, 99])
        return float(p50), float(p99)


class Pacer:
    """How many fixed steps a loop paced to the wall clock owes at each tick.

    A timer that fires late (a busy machine) would otherwise lose the time:
    a simulator stepped once per tick then runs slower than real time, and
    the world it simulates slows down with the computer, which a real robot's
    world never does. ``due(now)`` returns the steps owed since the last call
    (0 for a tick that came early), at most ``burst``: a loop further behind
    gives up the rest of the lost time and falls behind real time.
    """

    def __init__(self, period: float, burst: int = 2) -> None:
        self.period, self.burst = period, max(int(burst), 1)
        self.origin: float | None = None  # wall time of step 0
        self.done = 0

    def restart(self, period: float | None = None) -> None:
        """Pace from the next tick on (a new period, or after a pause)."""
        self.period, self.origin = period or self.period, None

    def due(self, now: float) -> int:
        if self.origin is None:  # the first tick steps once
            self.origin, self.done = now - self.period, 0
        owed = round((now - self.origin) / self.period) - self.done
        if owed > self.burst:
            self.origin += (owed - self.burst) * self.period  # the time given up
            owed = self.burst
        steps = max(owed, 0)
        self.done += steps
        return steps


class SampleWindow:
    """The last ``size`` samples of a quantity (a latency, a planning time) and their percentiles."""

    def __init__(self, size: int = 200) -> None:
        self._values: collections.deque[float] = collections.deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._values)

    def add(self, value: float) -> None:
        self._values.append(float(value))

    def percentiles(self, *qs: float) -> tuple[float, ...]:
        """Percentiles (0-100) of the window; NaN when empty."""
        if not self._values:
            return tuple(float("nan") for _ in qs)
        return tuple(float(v) for v in np.percentile(np.asarray(self._values), qs))


def median_ms(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` calls, after one warm-up call."""
    import time

    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)
