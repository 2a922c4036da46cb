"""Hot-swapping the model bundle of a running graph, without ROS.

A new bundle (from the online trainer, or dropped in by hand) is announced
to every world-model node at once. The switch has two phases, so that no
command is ever computed from latents of two models:

1. **prepare**: each node loads the bundle off its control path (a thread:
   building ONNX Runtime sessions takes tens of milliseconds), checks that it
   fits (same actions; the planner: the robot), warms the sessions with one
   call, and reports *ready* or *refused* with the reason. The current model
   keeps working meanwhile; a bundle that fails hashing or validation never
   gets further than this.
2. **commit**: the encoder switches once its own new engine is ready and
   every node it waits for (:class:`ReadyBoard`) reported ready: it publishes
   the goal re-encoded by the new model, then encodes frames with it. The
   consumers (planner, predictor) switch on the first latent of the new model
   id and, from then on, drop latents of the old one as they drop any latent
   of another model.

:class:`Staging` is one node's side of phase 1: the loading thread and the
engine it staged, taken by the node at its switch.
"""
from __future__ import annotations

import concurrent.futures
import sys
import threading
import time
import traceback
from typing import Callable


from jepa_pilot.perception.bundle import BundleError
from jepa_pilot.perception.engine import WorldModelEngine
from jepa_pilot.perception.latents import resolve_bundle

__all__ = ["load_engine", "Staging", "ReadyBoard"]


def load_engine(bundle: str, providers, threads: int, check: Callable[[WorldModelEngine], None],
                expected_id: str = "", rollout_batches: tuple[int, ...] = (1,)) -> WorldModelEngine:
    """Load, check and warm a bundle's engine. Raises BundleError or ValueError saying why not.

    ``check(engine)`` raises ValueError when the bundle does not fit the node;
    ``expected_id``: the model id the bundle was announced with (it must match);
    ``rollout_batches``: the rollout shapes to warm (WorldModelEngine.warm)."""
    engine = WorldModelEngine(resolve_bundle(bundle), providers, threads)
    if expected_id and engine.model_id != expected_id:
        raise BundleError(f"{bundle}: holds model {engine.model_id!r}, announced as {expected_id!r}")
    check(engine)
    engine.warm(rollout_batches)
    return engine


class Staging:
    """Loads announced bundles in a background thread and keeps the last one that loaded.

    ``load(bundle, model_id) -> engine`` raises on a bad bundle; ``report(model_id, ok, message)``
    is called from the loading thread when a load ends (the node publishes it).

    A loaded engine can be taken at once (a node switches when the first latent of the new
    model reaches it), but ``staged_id`` names it only after its report went out: the encoder
    commits what ``staged_id`` names, so no latent of a new model precedes the encoder's own
    ready report for it."""

    def __init__(self, load: Callable[[str, str], object], report: Callable[[str, bool, str], None]) -> None:
        self._load, self._report = load, report
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bundle-load")
        self._lock = threading.Lock()
        self._staged = None
        self._announced = ""  # model id of the staged engine, once its report went out
        self._loading = ""  # model id being loaded
        self._job: concurrent.futures.Future | None = None
        self.load_seconds = float("nan")

    @property
    def staged_id(self) -> str:
        with self._lock:
            staged = self._staged.model_id if self._staged is not None else ""
            return staged if staged == self._announced else ""

    def request(self, bundle: str, model_id: str, current_id: str) -> str:
        """Start loading ``bundle``; '' if started, else why not (already current, staged or loading)."""
        with self._lock:
            if model_id == current_id:
                return f"model {model_id} is already the current one"
            if model_id in (self._loading, self._staged.model_id if self._staged is not None else ""):
                return f"model {model_id} is already being loaded or ready"
            self._loading = model_id
        self._job = self._pool.submit(self._run, bundle, model_id)
        self._job.add_done_callback(_print_failure)
        return ""

    def wait(self, timeout: float) -> bool:
        """Wait until the last requested load has ended and been reported; False on timeout."""
        job = self._job
        return job is None or not concurrent.futures.wait([job], timeout).not_done

    def _run(self, bundle: str, model_id: str) -> None:
        start = time.perf_counter()
        try:
            engine = self._load(bundle, model_id)
        except Exception as exc:  # noqa: BLE001 - BundleError, ValueError, ORT errors: all refuse the bundle
            with self._lock:
                self._loading = ""
            self._report(model_id, False, f"refused {bundle}: {exc}")
            return
        seconds = time.perf_counter() - start
        with self._lock:
            self._staged, self._loading, self.load_seconds = engine, "", seconds
        self._report(model_id, True, f"loaded and warmed {bundle} in {seconds * 1e3:.0f} ms")
        with self._lock:
            self._announced = model_id

    def peek(self):
        """The staged engine, left staged (None if there is none)."""
        with self._lock:
            return self._staged

    def take(self, model_id: str):
        """The staged engine if it is model ``model_id`` (and nothing staged after), else None."""
        with self._lock:
            if self._staged is None or self._staged.model_id != model_id:
                return None
            engine, self._staged = self._staged, None
            return engine

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _print_failure(future: concurrent.futures.Future) -> None:
    """A load's own failures are reported; this is for a failing report (a bug): never silent."""
    if future.exception() is not None:
        traceback.print_exception(future.exception(), file=sys.stderr)


class ReadyBoard:
    """Who reported ready (or refused) for which model id; the encoder commits when all it waits for are."""

    def __init__(self, wait_for: tuple[str, ...]) -> None:
        self.wait_for = tuple(wait_for)
        self._reports: dict[str, tuple[str, bool, str]] = {}  # node -> (model id, ready, message)

    def report(self, node: str, model_id: str, ready: bool, message: str) -> None:
        self._reports[node] = (model_id, ready, message)

    def ready(self, model_id: str) -> bool:
        return all(self._reports.get(n, ("", False, ""))[:2] == (model_id, True) for n in self.wait_for)

    def waiting(self, model_id: str) -> str:
        """Why a commit to ``model_id`` waits: the nodes not ready for it, with their refusals."""
        parts = []
        for node in self.wait_for:
            got = self._reports.get(node)
            if got is None or got[0] != model_id:
                parts.append(f"{node}: no report yet")
            elif not got[1]:
                parts.append(f"{node}: {got[2]}")
        return "; ".join(parts)
