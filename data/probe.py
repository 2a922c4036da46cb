"""Linear probes: how much of a dataset's true state a latent holds, linearly.

Numpy only: the trainer (world_model/) and the bundle evaluation
(evaluation/model_eval.py) score latents with the same probe.
"""
from __future__ import annotations

import numpy as np

__all__ = ["linear_probe_r2", "fit_ridge"]


def fit_ridge(z: np.ndarray, y: np.ndarray, ridge: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge regression y ~ z on standardised inputs -> (mean, std, weights incl. bias row)."""
    mean, std = z.mean(0), z.std(0) + 1e-8
    x = np.hstack([(z - mean) / std, np.ones((len(z), 1))])
    w = np.linalg.solve(x.T @ x + ridge * len(z) * np.eye(x.shape[1]), x.T @ y)
    return mean, std, w


def linear_probe_r2(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray,
                    ridge: float = 1e-3, per_dim: bool = False):
    """R² on held-out data of a ridge fit (N, D) -> (N, Y); the mean over Y unless ``per_dim``."""
    mean, std, w = fit_ridge(z_train.astype(np.float64), y_train.astype(np.float64), ridge)
    pred = np.hstack([(z_test - mean) / std, np.ones((len(z_test), 1))]) @ w
    residual = ((y_test - pred) ** 2).sum(0)
    total = ((y_test - y_test.mean(0)) ** 2).sum(0) + 1e-12
    r2 = 1.0 - residual / total
    return r2 if per_dim else float(r2.mean())
