"""Random actions within the bounds: the data-collection and lower-bound baseline.

``beta = 0`` draws every action uniformly and independently. ``beta > 0`` draws each episode's actions as
Gaussian 1/f^beta noise along time (1: pink, 2: red), unit std of the action half-range, clipped to the
bounds: the same coloured noise iCEM samples plans from (``colored_filter``). Correlated actions push a
pendulum or a finger far further than independent ones, which cancel out (Eberhard et al. 2023, "Pink noise
is all you need"): random pendulum-swingup episodes that saw the upright reward, uniform / pink / red: 9 / 13 / 18
of 200 (`bench/bench_seed_noise.py`).
"""

from __future__ import annotations

import numpy as np

from sim.spec import BoxSpec

MAX_BETA = 4.0


class RandomPolicy:
    name = "random"

    def __init__(self, action_spec: BoxSpec, seed: int = 0, beta: float = 0.0, length: int = 1000):
        if isinstance(beta, bool) or not (isinstance(beta, (int, float)) and 0 <= beta <= MAX_BETA):
            raise ValueError(f"beta={beta!r}: the noise colour must be a number in [0, {MAX_BETA:g}] (0: uniform)")
        if beta > 0 and not (isinstance(length, int) and 2 <= length <= 100_000):
            raise ValueError(f"length={length!r}: coloured noise needs a sequence length in [2, 100000] steps")
        if not (np.all(np.isfinite(action_spec.low)) and np.all(np.isfinite(action_spec.high))):
            raise ValueError(f"random actions need finite bounds; got low={action_spec.low}, high={action_spec.high}")
        self.spec = action_spec
        self.beta = float(beta)
        self.rng = np.random.default_rng(seed)
        self._filter = None
        if self.beta > 0:
            from policies.mpc.step import colored_filter  # torch only where coloured noise is asked for

            self._filter = colored_filter(length, self.beta).double().numpy()
        self._seq: np.ndarray | None = None
        self._t = 0

    def reset(self) -> None:
        self._seq, self._t = None, 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self._filter is None:
            return self.rng.uniform(self.spec.low, self.spec.high).astype(np.float64)
        if self._seq is None or self._t >= len(self._seq):  # a new stretch of noise (episode start or longer)
            low, high = np.asarray(self.spec.low, np.float64), np.asarray(self.spec.high, np.float64)
            z = self._filter @ self.rng.standard_normal((len(self._filter), low.size))
            self._seq, self._t = (low + high) / 2 + (high - low) / 2 * np.clip(z, -1.0, 1.0), 0
        action = self._seq[self._t]
        self._t += 1
        return action.copy()
