"""One seed makes a run repeatable on the same machine."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int, threads: int | None = None) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)


def episode_seed(run_seed: int, index: int, eval: bool = False) -> int:
    """Distinct, reproducible environment seeds for training and evaluation episodes."""
    return run_seed * 100_003 + (50_000 if eval else 0) + index
