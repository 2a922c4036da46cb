"""Training curves as a PNG: the loss terms and the validation metrics over steps."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_history"]

TERMS = ("teacher_forcing", "rollout", "variance", "covariance", "inverse_dynamics")


def plot_history(history: list[dict], out: Path) -> None:
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for term in TERMS:
        axes[0].plot(steps, [h[term] for h in history], label=term)
        if f"val_{term}" in history[0]:
            axes[0].plot(steps, [h[f"val_{term}"] for h in history], "--", color=axes[0].lines[-1].get_color())
    axes[0].set(yscale="log", xlabel="step", title="loss terms (dashed: validation)")
    axes[0].legend(fontsize=7)
    if "val_rollout_vs_copy_last" in history[0]:
        ratios = np.array([h["val_rollout_vs_copy_last"] for h in history])
        for k in range(ratios.shape[1]):
            axes[1].plot(steps, ratios[:, k], label=f"k={k + 1}")
        axes[1].axhline(0.5, color="k", lw=0.8, ls=":", label="target 0.5")
        axes[1].set(yscale="log", xlabel="step", title="rollout error / copy-last (val)")
        axes[1].legend(fontsize=7)
    if "val_probe_r2" in history[0]:
        axes[2].plot(steps, [h["val_probe_r2"] for h in history])
        axes[2].axhline(0.95, color="k", lw=0.8, ls=":")
        axes[2].set(ylim=(min(0.5, min(h["val_probe_r2"] for h in history)), 1.0), xlabel="step",
                    title="linear probe R² of the true state (val)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
