"""ONNX Runtime sessions run through IO binding: the GPU path's building blocks.

A plain ``session.run`` copies every input from the host to the device and
every output back, and allocates both each call. With IO binding the
buffers are allocated once and bound by address:

* :class:`BoundSession` owns its buffers (one OrtValue per input and output,
  on the session's device): ``run(name=array)`` uploads each input once, in
  place, and returns the first output on the host.
* :func:`bind_tensors` binds buffers someone else owns by their address
  (torch tensors in control/device_planner.py): the rollout reads and writes
  device memory the planner samples in and scores, nothing crosses to the host.

Fixed addresses are also what CUDA graphs need: a session made with
``cuda_graph=True`` (:func:`cuda_session`) is captured by ONNX Runtime on its
first runs and replayed after, so it must always be run through the same
binding, one run at a time (perception/engine.py encodes single frames so,
under a lock). On the CPU the same code runs with host buffers,
which is how it is tested without a GPU.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, TypeVar

import numpy as np
import onnxruntime as ort

__all__ = ["CUDA_OPTIONS", "BoundSession", "bind_tensors", "captured_or_plain", "cuda_session", "on_cuda",
           "queued_run"]

# The CUDA provider's options on every path (the engine's too). TF32 off: with it on, ONNX Runtime
# rounds matmul inputs to a 10-bit mantissa and a rollout drifts past 1e-3 from the CPU provider
# over its steps; these models are far too small for TF32 to pay for that.
CUDA_OPTIONS = {"use_tf32": "0"}


def on_cuda(session: ort.InferenceSession) -> bool:
    return session.get_providers()[0] == "CUDAExecutionProvider"


def cuda_session(path: str | Path, cuda_graph: bool = False, device_id: int = 0,
                 stream=None) -> ort.InferenceSession:
    """A session on the CUDA provider (RuntimeError when it cannot run there), optionally captured as
    a CUDA graph: then every run must go through one binding of fixed shapes and addresses.

    ``stream`` (a torch.cuda.Stream, or anything with ``cuda_stream``): ONNX Runtime computes on it
    instead of a stream of its own, so work queued there before a run is done before the run starts
    without the host waiting (control.device_planner.OrtDeviceRollout)."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise RuntimeError("ONNX Runtime has no CUDA provider here (the onnxruntime-gpu package is not installed)")
    options = {"device_id": str(device_id), **CUDA_OPTIONS, **({"enable_cuda_graph": "1"} if cuda_graph else {})}
    if stream is not None:
        options |= {"has_user_compute_stream": "1", "user_compute_stream": str(stream.cuda_stream)}
    session = ort.InferenceSession(str(path), providers=[("CUDAExecutionProvider", options)])
    if not on_cuda(session):
        raise RuntimeError(f"{path}: ONNX Runtime fell back to {session.get_providers()[0]}")
    return session


def queued_run() -> ort.RunOptions:
    """Run options for a session that computes on the caller's stream (cuda_session(stream=)): the
    run is queued there and ONNX Runtime does not wait for it to finish; the caller's next work on
    that stream comes after it anyway, and reading a result on the host waits for the stream."""
    options = ort.RunOptions()
    options.add_run_config_entry("disable_synchronize_execution_providers", "1")
    return options


Built = TypeVar("Built")


def captured_or_plain(build: Callable[[bool], Built], trial: Callable[[Built], object],
                      trials: int = 3) -> tuple[Built, str]:
    """``build(True)`` (on a session made with ``cuda_graph=True``), run ``trials`` times by ``trial``:
    ONNX Runtime captures the graph on those runs. Where that raises, ``build(False)`` on a plain
    session instead. Returns what was built and ``"cuda graph"``, or why it is not one."""
    try:
        built = build(True)
        for _ in range(trials):
            trial(built)
        return built, "cuda graph"
    except Exception as exc:  # noqa: BLE001 - the reason is returned, reported by the caller
        return build(False), f"no cuda graph ({type(exc).__name__}: {str(exc).strip()[:300]})"


class BoundSession:
    """``session`` with float32 buffers of fixed ``shapes`` (every input and output name) bound once,
    on the session's device."""

    def __init__(self, session: ort.InferenceSession, shapes: Mapping[str, tuple[int, ...]], device_id: int = 0):
        self.session, self.shapes = session, {n: tuple(v) for n, v in shapes.items()}
        self.inputs = [a.name for a in session.get_inputs()]
        self.outputs = [a.name for a in session.get_outputs()]
        missing = [n for n in self.inputs + self.outputs if n not in shapes]
        if missing:
            raise ValueError(f"no shape given for {missing}: a bound session needs every input and output's")
        device = "cuda" if on_cuda(session) else "cpu"
        self.values = {n: ort.OrtValue.ortvalue_from_shape_and_type(tuple(shapes[n]), np.float32, device, device_id)
                       for n in self.inputs + self.outputs}
        self.binding = session.io_binding()
        for name in self.inputs:
            self.binding.bind_ortvalue_input(name, self.values[name])
        for name in self.outputs:
            self.binding.bind_ortvalue_output(name, self.values[name])

    def run(self, **feeds: np.ndarray) -> np.ndarray:
        """Upload the inputs given (the others keep their last values), run, return the first output."""
        for name, array in feeds.items():
            value = self.values[name]
            array = np.ascontiguousarray(array, np.float32)
            if array.shape != tuple(value.shape()):
                raise ValueError(f"{name}: shape {array.shape}, the binding's is {tuple(value.shape())}")
            value.update_inplace(array)
        self.session.run_with_iobinding(self.binding)
        return self.binding.copy_outputs_to_cpu()[0]


def bind_tensors(session: ort.InferenceSession, tensors: Mapping[str, object]):
    """An IO binding of ``session`` to float32 buffers owned by the caller (torch tensors: anything
    with ``data_ptr()``, ``shape``, ``is_cuda`` and ``is_contiguous()``), every input and output by
    name. The caller keeps the tensors alive, and fills and reads them in place."""
    binding = session.io_binding()
    names = {a.name: "input" for a in session.get_inputs()} | {a.name: "output" for a in session.get_outputs()}
    for name, kind in names.items():
        t = tensors.get(name)
        if t is None or not t.is_contiguous():
            raise ValueError(f"{name}: bind_tensors needs a contiguous tensor for every input and output")
        args = ("cuda" if t.is_cuda else "cpu", t.device.index or 0, np.float32, tuple(t.shape), t.data_ptr())
        (binding.bind_input if kind == "input" else binding.bind_output)(name, *args)
    return binding
