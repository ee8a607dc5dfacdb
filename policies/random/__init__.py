"""Uniform random actions within the bounds: the data-collection and lower-bound baseline."""

from __future__ import annotations

import numpy as np

from sim.spec import BoxSpec


class RandomPolicy:
    name = "random"

    def __init__(self, action_spec: BoxSpec, seed: int = 0):
        self.spec = action_spec
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(self.spec.low, self.spec.high).astype(np.float64)
