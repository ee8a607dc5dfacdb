"""A goal for goal-conditioned planning, checked: numpy only, so that the torch-free runtime shares it."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Goal(NamedTuple):
    state: np.ndarray    # (S,) float32 target state
    weights: np.ndarray  # (S,) float32 per-dimension weights of the distance, >= 0, not all zero

    def distance(self, state) -> float:
        """The weighted distance of one state to the goal (the planner's per-step goal cost)."""
        diff = np.asarray(state, dtype=np.float64) - self.state
        return float(np.sqrt(np.sum(self.weights * diff**2)))


def check_goal(state, weights, state_dim: int, where: str = "goal") -> Goal:
    """``state`` and ``weights`` as float32 vectors of ``state_dim`` finite values (weights >= 0, at
    least one > 0), or a ValueError naming what is wrong."""
    out = []
    for name, v in (("state", state), ("weights", weights)):
        try:
            arr = np.asarray(v, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"{where}.{name} {v!r} is not numeric; expected {state_dim} numbers") from None
        if arr.shape != (state_dim,):
            raise ValueError(f"{where}.{name} has {arr.size} values, expected {state_dim} (the robot's state size)")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{where}.{name} is not finite: {arr.tolist()}")
        out.append(arr)
    if np.any(out[1] < 0) or not np.any(out[1] > 0):
        raise ValueError(f"{where}.weights {out[1].tolist()} must be >= 0 with at least one > 0")
    return Goal(*out)
