"""The JEPA world model: an image encoder and an action-conditioned latent predictor.

Read top to bottom: the config, the encoder (frame -> latent vector), the
predictor (recent latents + an action chunk -> next latent), and the world
model's three verbs, ``encode``, ``next`` and ``rollout``. Nothing here knows
about training (see ``train.py``) or ONNX (see ``export.py``).

Shapes: B batch, K history length, D latent size, H horizon (model steps),
S = frameskip (env steps per model step), A action size.

One model step is ``frameskip`` control periods of the robot, and the
predictor sees the S actions of those periods: a planner that holds each
action for S periods looks S times further ahead for the same cost.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn

from jepa_pilot.common.config import Config, setting

__all__ = ["ModelConfig", "ConvEncoder", "Predictor", "WorldModel"]


@dataclasses.dataclass(frozen=True)
class ModelConfig(Config):
    image_size: int = setting(64, "square input frame size in pixels (frames are resized to it)", low=16, high=512)
    latent_dim: int = setting(32, "size D of the latent vector", low=2, high=1024)
    channels: tuple = setting((16, 32, 32, 32), "encoder conv widths; each conv halves the resolution")
    encoder_hidden: int = setting(256, "width of the encoder's final MLP", low=8, high=4096)
    history: int = setting(2, "latents K the predictor sees (the current one and K-1 before it)", low=1, high=8)
    frameskip: int = setting(4, "control periods per model step (actions held or chunked)", low=1, high=128)
    action_dim: int = setting(2, "action size A (normalised to [-1, 1])", low=1, high=64)
    predictor_hidden: int = setting(256, "predictor MLP width", low=8, high=4096)
    predictor_layers: int = setting(3, "predictor MLP depth (linear layers)", low=2, high=8)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.image_size % 2 ** len(self.channels):
            self._fail("image_size", self.image_size, f"must be divisible by 2^{len(self.channels)} (one halving per conv)")


class ConvEncoder(nn.Module):
    """(B, 3, H, W) RGB in [0, 1] -> (B, D). Strided convs keep the layout, an MLP reads it out."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers, width = [], 3
        for out in cfg.channels:  # each: (B, c, s, s) -> (B, out, s/2, s/2)
            layers += [nn.Conv2d(width, out, 4, stride=2, padding=1), nn.GroupNorm(8, out), nn.SiLU()]
            width = out
        self.convs = nn.Sequential(*layers)
        side = cfg.image_size // 2 ** len(cfg.channels)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(width * side * side, cfg.encoder_hidden), nn.SiLU(),
                                  nn.Linear(cfg.encoder_hidden, cfg.latent_dim))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = (frames - 0.5) / 0.25      # (B, 3, H, W), roughly zero-mean unit-scale
        return self.head(self.convs(x))  # (B, D)


class Predictor(nn.Module):
    """(B, K, D) recent latents + (B, S, A) action chunk -> (B, D) next latent, as a residual step."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        width = cfg.history * cfg.latent_dim + cfg.frameskip * cfg.action_dim
        layers: list[nn.Module] = []
        for _ in range(cfg.predictor_layers - 1):
            layers += [nn.Linear(width, cfg.predictor_hidden), nn.SiLU()]
            width = cfg.predictor_hidden
        layers.append(nn.Linear(width, cfg.latent_dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, z_hist: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        x = torch.cat([z_hist.flatten(1), chunk.flatten(1)], dim=1)  # (B, K*D + S*A)
        return z_hist[:, -1] + self.mlp(x)                             # (B, D)


class WorldModel(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = ConvEncoder(cfg)
        self.predictor = Predictor(cfg)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., 3, H, W) in [0, 1] -> (..., D)."""
        lead = frames.shape[:-3]
        z = self.encoder(frames.reshape(-1, *frames.shape[-3:]))
        return z.reshape(*lead, -1)

    def next(self, z_hist: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        """(B, K, D) + (B, S, A) -> (B, D): one model step."""
        return self.predictor(z_hist, chunk)

    def rollout(self, z_hist: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
        """(B, K, D) + (B, H, S, A) -> (B, H, D): H model steps on the model's own predictions."""
        out = []
        for t in range(chunks.shape[1]):
            z = self.next(z_hist, chunks[:, t])                      # (B, D)
            z_hist = torch.cat([z_hist[:, 1:], z[:, None]], dim=1)   # (B, K, D)
            out.append(z)
        return torch.stack(out, dim=1)
