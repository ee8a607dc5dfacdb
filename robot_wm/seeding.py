"""One seed makes a run repeatable on the same machine."""

from __future__ import annotations

import random

import numpy as np
import torch

from robot_wm.cpus import at_most_cpus


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Seed Python, numpy and torch; ``threads`` torch threads, at most this machine's CPUs (probe 14: threads=1024
    under a memory limit spent it on thread stacks, and MuJoCo's compile failed with "unknown exception")."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(at_most_cpus(threads, "threads"))


def episode_seed(run_seed: int, index: int, eval: bool = False) -> int:
    """Distinct, reproducible environment seeds for training and evaluation episodes, within the 32 bits an
    environment takes (unchanged from before for run seeds below 42,949; wrapped above, where the product
    overflowed and `seed=4294967295` failed at its first episode)."""
    return (run_seed * 100_003 + (50_000 if eval else 0) + index) % 2**32
