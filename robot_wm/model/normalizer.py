"""Per-dimension affine normalisers fitted on data and saved with the model (as buffers)."""

from __future__ import annotations

import torch
from torch import nn


class Normalizer(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.mean.numel():
            raise ValueError(f"normaliser expects (N, {self.mean.numel()}) data, got {tuple(x.shape)}")
        if len(x) == 0 or not torch.isfinite(x).all():
            raise ValueError("normaliser data must be non-empty and finite")
        self.mean.copy_(x.mean(0))
        # A constant dimension keeps unit scale so it is passed through, not blown up.
        std = x.std(0, unbiased=False) if len(x) > 1 else torch.ones_like(self.std)
        self.std.copy_(torch.where(std < self.eps, torch.ones_like(std), std))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean
