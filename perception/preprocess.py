"""Camera frames -> model input. The one preprocessing path for training and deployment.

Frames arrive in any of the common ROS encodings and any size; the model
takes square RGB frames of its own size. Non-square frames are resized to
the square (the whole field of view is kept; a fixed camera distorts the same
way in training and deployment).

This module is also the one decoder of raw image buffers (a
``sensor_msgs/Image``'s bytes, from a live topic or a bag):
:func:`decode_image`. Everything but :func:`resize` is numpy only; OpenCV is
imported when a frame actually has to be resized.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jepa_pilot.common.image import resize

__all__ = ["ENCODINGS", "PreprocessError", "ImageError", "raw_image_problem", "decode_image", "to_rgb",
           "resize", "prepare", "to_model_input"]

# encoding -> channels
ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
# encoding -> the channel indices that give R, G, B (alpha is dropped, grey repeated)
RGB_ORDER = {"rgb8": (0, 1, 2), "bgr8": (2, 1, 0), "rgba8": (0, 1, 2), "bgra8": (2, 1, 0), "mono8": (0, 0, 0)}
SUPPORTED = ", ".join(ENCODINGS)


class PreprocessError(ValueError):
    """A frame that cannot be turned into model input (and why)."""


class ImageError(PreprocessError):
    """A raw image buffer that cannot be decoded into pixels (and why)."""


def _channels(encoding: str) -> int | None:
    """Bytes per pixel of a supported encoding (ROS names, any case); None if unsupported."""
    return ENCODINGS.get(str(encoding).lower())


def raw_image_problem(size: int, encoding: str, width: int, height: int, step: int) -> str | None:
    """Why ``size`` bytes of ``encoding`` pixels, ``width`` x ``height`` with rows of ``step``
    bytes, cannot be decoded; None if they can. Checks what can be told without the pixels."""
    channels = _channels(encoding)
    if channels is None:
        return f"unsupported encoding {encoding!r} (supported: {SUPPORTED})"
    if height <= 0 or width <= 0:
        return f"empty image ({width}x{height})"
    if step < width * channels:
        return f"step {step} < width {width} x {channels} bytes"
    if size < step * height:
        return f"truncated data ({size} of {step * height} bytes)"
    return None


def _buffer(data: Any) -> np.ndarray:
    """Raw bytes (bytes, bytearray, array.array, memoryview, uint8 array or a list of ints) as flat uint8."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # not a buffer: a sequence of byte values
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def decode_image(data: Any, encoding: str, width: int, height: int, step: int) -> np.ndarray:
    """A raw image buffer -> (height, width, 3) uint8 RGB.

    ``step`` is the row length in bytes (rows may be padded); bytes beyond
    ``height * step`` are ignored. Raises :class:`ImageError` saying why for
    an unsupported encoding, a zero size, a step too small for the width or
    truncated data.
    """
    buffer = _buffer(data)
    problem = raw_image_problem(buffer.size, encoding, width, height, step)
    if problem:
        raise ImageError(problem)
    channels = _channels(encoding)
    rows = buffer[: height * step].reshape(height, step)
    pixels = rows[:, : width * channels].reshape(height, width, channels)
    return _reorder(pixels, encoding.lower())


def _reorder(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W, C) pixels of a supported encoding -> (H, W, 3) RGB (no copy for rgb8)."""
    if encoding == "rgb8":
        return pixels
    return np.ascontiguousarray(pixels[..., list(RGB_ORDER[encoding])])


def to_rgb(image: np.ndarray, encoding: str = "rgb8") -> np.ndarray:
    """(H, W[, C]) uint8 in ``encoding`` -> (H, W, 3) uint8 RGB."""
    channels = _channels(encoding)
    if channels is None:
        raise PreprocessError(f"unsupported encoding {encoding!r} (supported: {SUPPORTED})")
    if image.dtype != np.uint8:
        raise PreprocessError(f"expected uint8 pixels, got {image.dtype}")
    have = 1 if image.ndim == 2 else image.shape[-1] if image.ndim == 3 else -1
    if have != channels or min(image.shape[:2]) == 0:
        raise PreprocessError(f"{encoding} needs (H, W, {channels}) pixels, got shape {image.shape}")
    return _reorder(image.reshape(*image.shape[:2], channels), encoding.lower())


def prepare(image: np.ndarray, size: int, encoding: str = "rgb8") -> np.ndarray:
    """Any supported frame -> (size, size, 3) uint8 RGB."""
    return resize(to_rgb(image, encoding), size)


def to_model_input(frames: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 RGB -> (N, 3, S, S) float32 in [0, 1] (the encoder's input)."""
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
