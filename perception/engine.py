"""Run a model bundle with ONNX Runtime: encode frames, roll action sequences forward.

``WorldModelEngine`` is what nodes and planners use in deployment. Its
``rollout(z_hist, actions)`` is the small protocol planners depend on, so a
toy model can stand in for it in tests.

Providers: CUDA then CPU by default (TensorRT when asked for); the ones
actually in use are in ``providers`` — report them, since ONNX Runtime
silently falls back to the CPU when CUDA cannot load. TensorRT keeps the
engines it builds on disk (``TRT_CACHE``/<model id>), so only the first run
ever builds them; ``warm()`` runs each graph once (the hot-swap loader warms
a bundle before the graph switches to it).

On CUDA a single frame (a camera's, a goal image) is encoded by a session of
its own, IO-bound and captured as a CUDA graph (perception/bound.py): the
frame is uploaded once into a fixed device buffer and one graph replay makes
its latent. It is built with the engine, one encode at a time under a lock;
``single_frame`` says whether it was captured, or why not. Batches go
through the plain session.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort

from jepa_pilot.perception.bound import CUDA_OPTIONS, BoundSession, captured_or_plain, cuda_session
from jepa_pilot.perception.bundle import Bundle, BundleError, load_bundle
from jepa_pilot.perception.preprocess import prepare, to_model_input

__all__ = ["PROVIDERS", "WorldModelEngine", "resolve_providers"]

PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider",
             "cpu": "CPUExecutionProvider"}
TRT_CACHE = Path("~/.cache/jepa_pilot/tensorrt").expanduser()  # TensorRT engines, one folder per model id


def resolve_providers(wanted: Sequence[str]) -> list[str]:
    """Short names (tensorrt, cuda, cpu) -> the available ORT providers, in order; CPU always last."""
    unknown = [w for w in wanted if w not in PROVIDERS]
    if unknown:
        raise ValueError(f"unknown provider(s) {unknown}; choose from {', '.join(PROVIDERS)}")
    available = set(ort.get_available_providers())
    chosen = [PROVIDERS[w] for w in wanted if PROVIDERS[w] in available]
    if chosen and chosen[0] != PROVIDERS["cpu"] and hasattr(ort, "preload_dlls"):
        try:  # the CUDA and cuDNN libraries from the nvidia-* pip packages (or torch's), if they are there
            ort.preload_dlls()
        except Exception:  # noqa: BLE001 - missing ones show as the CPU provider in use (reported)
            pass
    return [p for p in chosen if p != PROVIDERS["cpu"]] + [PROVIDERS["cpu"]]


class WorldModelEngine:
    def __init__(self, bundle: Bundle | str | Path, providers: Sequence[str] = ("cuda", "cpu"),
                 threads: int = 0) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.spec = self.bundle.spec
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # ORT's worker threads spin after each run by default, waiting for the next one: CPU that the
        # camera, the simulator and the other nodes of a robot need. They sleep instead.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        names = resolve_providers(providers)
        cache = TRT_CACHE / self.spec.model_id
        if PROVIDERS["tensorrt"] in names:
            cache.mkdir(parents=True, exist_ok=True)
        options_of = {PROVIDERS["tensorrt"]: {"trt_engine_cache_enable": "True", "trt_timing_cache_enable": "True",
                                              "trt_engine_cache_path": str(cache), "trt_timing_cache_path": str(cache)},
                      PROVIDERS["cuda"]: CUDA_OPTIONS}
        chosen = [(n, options_of[n]) if n in options_of else n for n in names]
        self.sessions = {}
        for name in ("encoder", "rollout"):
            try:
                self.sessions[name] = ort.InferenceSession(str(self.bundle.path(name)), options, providers=chosen)
            except Exception as exc:  # ORT raises its own types for corrupt or invalid graphs
                raise BundleError(f"{self.bundle.path(name)}: ONNX Runtime cannot load it: {exc}") from None
            self._check_io(name)
        self.providers = self.sessions["encoder"].get_providers()
        self._single, self.single_frame, self._lock = None, "plain session (not on CUDA)", threading.Lock()
        if self.providers[0] == PROVIDERS["cuda"]:
            self._single, self.single_frame = self._single_frame_encoder()

    def _single_frame_encoder(self) -> tuple[BoundSession, str]:
        """The encoder for one frame on CUDA: bound, captured on three trial frames where it can be."""
        s, path = self.spec.image_size, self.bundle.path("encoder")
        shapes, frame = {"frames": (1, 3, s, s), "latent": (1, self.spec.latent_dim)}, np.zeros((1, 3, s, s), np.float32)
        try:
            return captured_or_plain(lambda graph: BoundSession(cuda_session(path, graph), shapes),
                                     lambda bound: bound.run(frames=frame))
        except Exception as exc:  # ORT raises its own types
            raise BundleError(f"{path}: ONNX Runtime cannot bind it on CUDA: {exc}") from None

    @property
    def model_id(self) -> str:
        return self.spec.model_id

    # The rollout protocol planners depend on (control.planner.RolloutModel).
    @property
    def horizon(self) -> int:
        return self.spec.horizon

    @property
    def frameskip(self) -> int:
        return self.spec.frameskip

    @property
    def action_dim(self) -> int:
        return self.spec.action_dim

    def _check_io(self, name: str) -> None:
        """The graph's declared inputs/outputs must match bundle.yaml (names and fixed dims)."""
        session, want = self.sessions[name], self.spec.io_shapes()[name]
        have = {a.name: a.shape for a in [*session.get_inputs(), *session.get_outputs()]}
        for arg, shape in want.items():
            got = have.get(arg)
            if got is None or len(got) != len(shape) or any(
                    isinstance(w, int) and g != w for w, g in zip(shape, got)):
                raise BundleError(f"{self.bundle.path(name)}: {arg} has shape {got}, bundle.yaml says {shape} "
                                  f"(encoder and predictor from different bundles?)")

    def warm(self, rollout_batches: Sequence[int] = (1,)) -> None:
        """Run each graph once, the rollout once per batch size: the first call of a shape allocates
        (and TensorRT builds its engine for it, or loads it from its cache)."""
        spec = self.spec
        self.encode_prepared(np.zeros((1, 3, spec.image_size, spec.image_size), np.float32))
        for n in dict.fromkeys(rollout_batches):
            self.rollout(np.zeros((spec.history, spec.latent_dim), np.float32),
                         np.zeros((n, spec.horizon * spec.frameskip, spec.action_dim), np.float32))

    # --- encoder ----------------------------------------------------------------
    def encode_prepared(self, frames: np.ndarray) -> np.ndarray:
        """(N, 3, S, S) float32 in [0, 1] -> (N, D)."""
        frames = np.ascontiguousarray(frames, np.float32)
        if self._single is not None and frames.shape == self._single.shapes["frames"]:
            with self._lock:  # one buffer, one graph: one frame at a time
                return self._single.run(frames=frames)
        return self.sessions["encoder"].run(None, {"frames": frames})[0]

    def encode(self, images: np.ndarray | Sequence[np.ndarray], encoding: str = "rgb8") -> np.ndarray:
        """One (H, W, C) uint8 frame -> (D,), or a batch (N, H, W, C) / list of frames -> (N, D).

        Any supported encoding and size; frames are converted and resized as in training.
        """
        single = isinstance(images, np.ndarray) and images.ndim in (2, 3) and images.dtype == np.uint8 \
            and (images.ndim == 2 or images.shape[-1] in (1, 3, 4))
        batch = [images] if single else list(images)
        prepared = np.stack([prepare(im, self.spec.image_size, encoding) for im in batch])
        z = self.encode_prepared(to_model_input(prepared))
        if not np.isfinite(z).all():
            raise ValueError("encoder produced non-finite latents for this input")
        return z[0] if single else z

    # --- predictor --------------------------------------------------------------
    def rollout(self, z_hist: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """(N, K, D) latest latents (oldest first) + (N, H*S, A) actions -> (N, H, D) forecast.

        One action per control period (S = frameskip per model step, H = horizon
        model steps); latent h is the state after actions[:, :(h+1)*S].
        ``z_hist`` may be (K, D) for one history shared by all N sequences.
        """
        actions = np.ascontiguousarray(actions, np.float32)
        steps = self.spec.horizon * self.spec.frameskip
        if actions.ndim != 3 or actions.shape[1:] != (steps, self.spec.action_dim):
            raise ValueError(f"actions must be (N, {steps}, {self.spec.action_dim}) "
                             f"(horizon {self.spec.horizon} x frameskip {self.spec.frameskip}), got {actions.shape}")
        z_hist = np.asarray(z_hist, np.float32)
        if z_hist.ndim == 2:
            z_hist = np.broadcast_to(z_hist, (len(actions), *z_hist.shape))
        return self.sessions["rollout"].run(None, {"z_hist": np.ascontiguousarray(z_hist), "actions": actions})[0]
