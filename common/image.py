"""Image helpers every room may use: one resize for training, deployment and the simulators."""
from __future__ import annotations

import numpy as np

__all__ = ["resize"]


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """(H, W, 3) -> (size, size, 3), or (height, width, 3) for ``size=(width, height)``.

    Area averaging when shrinking either side, bilinear otherwise (OpenCV's
    INTER_AREA / INTER_LINEAR: the same algorithm in training and deployment).
    """
    width, height = (size, size) if isinstance(size, (int, np.integer)) else size
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    import cv2  # only here: nothing else in this module, nor `jepa-pilot --help`, needs OpenCV

    interpolation = cv2.INTER_AREA if h > height or w > width else cv2.INTER_LINEAR
    return cv2.resize(image, (int(width), int(height)), interpolation=interpolation)
