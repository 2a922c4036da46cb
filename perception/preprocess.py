"""Camera frames -> model input. The one preprocessing path for training and deployment.

Frames arrive in any of the common ROS encodings and any size; the model
takes square RGB frames of its own size. Non-square frames are resized to
the square (the whole field of view is kept; a fixed camera distorts the same
way in training and deployment).
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["ENCODINGS", "PreprocessError", "to_rgb", "resize", "prepare", "to_model_input"]

# encoding -> channels
ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


class PreprocessError(ValueError):
    """A frame that cannot be turned into model input (and why)."""


def to_rgb(image: np.ndarray, encoding: str = "rgb8") -> np.ndarray:
    """(H, W[, C]) uint8 in ``encoding`` -> (H, W, 3) uint8 RGB."""
    if encoding not in ENCODINGS:
        raise PreprocessError(f"unsupported encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    if image.dtype != np.uint8:
        raise PreprocessError(f"expected uint8 pixels, got {image.dtype}")
    channels = 1 if image.ndim == 2 else image.shape[-1] if image.ndim == 3 else -1
    if channels != ENCODINGS[encoding] or min(image.shape[:2]) == 0:
        raise PreprocessError(f"{encoding} needs (H, W, {ENCODINGS[encoding]}) pixels, got shape {image.shape}")
    if encoding == "rgb8":
        return image
    code = {"bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB,
            "mono8": cv2.COLOR_GRAY2RGB}[encoding]
    return cv2.cvtColor(np.ascontiguousarray(image), code)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) -> (size, size, 3): area averaging when shrinking, bilinear when growing."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interpolation = cv2.INTER_AREA if h > size or w > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def prepare(image: np.ndarray, size: int, encoding: str = "rgb8") -> np.ndarray:
    """Any supported frame -> (size, size, 3) uint8 RGB."""
    return resize(to_rgb(image, encoding), size)


def to_model_input(frames: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 RGB -> (N, 3, S, S) float32 in [0, 1] (the encoder's input)."""
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
