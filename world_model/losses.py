"""The JEPA training objective, in latent space only (no pixel reconstruction).

For a window of L = K + R frames, ``S`` control steps apart, and the R action
chunks between them:

* targets come from an EMA copy of the encoder, without gradient;
* teacher forcing: each step predicted from the true (online) latents;
* rollout: R steps predicted from the model's own predictions, as planners use it;
* anti-collapse: a VICReg variance hinge and a (small) covariance penalty on
  the online latents, and an inverse-dynamics head that must recover the
  actions from consecutive latents, so the latent keeps what actions change.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from jepa_pilot.common.config import Config, setting
from jepa_pilot.world_model.model import ModelConfig, WorldModel

__all__ = ["LossConfig", "inverse_dynamics_head", "vicreg_terms", "jepa_loss"]


@dataclasses.dataclass(frozen=True)
class LossConfig(Config):
    rollout_steps: int = setting(4, "R: model steps predicted per window", low=1, high=32)
    teacher_forcing: float = setting(1.0, "weight of one-step predictions from true latents", low=0.0)
    rollout: float = setting(1.0, "weight of multi-step predictions from own predictions", low=0.0)
    variance: float = setting(1.0, "weight of the VICReg variance hinge (per-dimension std >= 1)", low=0.0)
    covariance: float = setting(0.01, "weight of the VICReg covariance penalty (too high spreads the "
                                      "latent evenly and hurts planning: see docs/design.md)", low=0.0)
    inverse_dynamics: float = setting(0.1, "weight of recovering the action chunk from consecutive latents",
                                      low=0.0)


def inverse_dynamics_head(cfg: ModelConfig) -> nn.Module:
    """(B, 2D) consecutive latents -> (B, S*A) the action chunk between them."""
    return nn.Sequential(nn.Linear(2 * cfg.latent_dim, cfg.predictor_hidden), nn.SiLU(),
                         nn.Linear(cfg.predictor_hidden, cfg.frameskip * cfg.action_dim))


def vicreg_terms(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) -> (variance hinge, covariance penalty)."""
    z = z - z.mean(0)
    std = torch.sqrt(z.var(0) + 1e-4)
    variance = F.relu(1.0 - std).mean()
    cov = (z.T @ z) / (len(z) - 1)
    off_diagonal = cov - torch.diag(torch.diag(cov))
    return variance, off_diagonal.pow(2).sum() / z.shape[1]


def jepa_loss(model: WorldModel, target_encoder: nn.Module, inverse_head: nn.Module,
              frames: torch.Tensor, chunks: torch.Tensor, cfg: LossConfig) -> tuple[torch.Tensor, dict]:
    """frames (B, L, 3, H, W) in [0, 1], chunks (B, L-1, S, A) -> (total loss, named terms)."""
    k = model.cfg.history
    z = model.encode(frames)                                   # (B, L, D) online
    with torch.no_grad():
        target = target_encoder(frames.flatten(0, 1)).reshape(z.shape)  # (B, L, D) EMA
    steps = range(k - 1, frames.shape[1] - 1)                  # predict frame j+1 from history ending at j
    forced = torch.stack([model.next(z[:, j - k + 1:j + 1], chunks[:, j]) for j in steps], 1)  # (B, R, D)
    rolled = model.rollout(z[:, :k], chunks[:, k - 1:])        # (B, R, D)
    terms = {"teacher_forcing": F.mse_loss(forced, target[:, k:]),
             "rollout": F.mse_loss(rolled, target[:, k:])}
    terms["variance"], terms["covariance"] = vicreg_terms(z.flatten(0, 1))
    pairs = torch.cat([z[:, :-1], z[:, 1:]], dim=-1)           # (B, L-1, 2D)
    terms["inverse_dynamics"] = F.mse_loss(inverse_head(pairs), chunks.flatten(2))
    total = sum(getattr(cfg, name) * value for name, value in terms.items())
    return total, {name: float(value.detach()) for name, value in terms.items()}
