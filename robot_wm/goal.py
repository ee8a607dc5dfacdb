"""A goal for goal-conditioned planning, checked: numpy only, so that the torch-free runtime shares it."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sim.spec import as_floats

MAX_GOAL_ABS = 1e6
"""Largest magnitude of a goal value or weight: the weighted squared distance must stay far inside float32
(a goal of 1e20 overflows it, and the planner would silently stop seeing the goal)."""
MAX_REWARD_WEIGHT = 1e6
"""The largest weight of the task's return beside a goal (``goal.reward_weight``, ``what_if``)."""


class Goal(NamedTuple):
    state: np.ndarray    # (S,) float32 target state
    weights: np.ndarray  # (S,) float32 per-dimension weights of the distance, >= 0, not all zero

    def distance(self, state) -> float:
        """The weighted distance of one state to the goal (the planner's per-step goal cost)."""
        diff = np.asarray(state, dtype=np.float64) - self.state
        return float(np.sqrt(np.sum(self.weights * diff**2)))


def check_goal(state, weights, state_dim: int, where: str = "goal") -> Goal:
    """``state`` and ``weights`` as float32 vectors of ``state_dim`` finite values of magnitude at most
    ``MAX_GOAL_ABS`` (weights >= 0, at least one > 0), or a ValueError naming what is wrong."""
    out = []
    for name, v in (("state", state), ("weights", weights)):
        # strings, Unicode digits and booleans were taken as numbers from a goal file (probe 32)
        wide = as_floats(v, f"{where}.{name}", np.float64).reshape(-1)
        if wide.shape != (state_dim,):
            raise ValueError(f"{where}.{name} has {wide.size} values, expected {state_dim} (the robot's state size)")
        if not np.all(np.isfinite(wide)):
            raise ValueError(f"{where}.{name} is not finite: {wide.tolist()}")
        if np.any(np.abs(wide) > MAX_GOAL_ABS):  # 1e39 read as inf in float32: named as given (probe 30)
            raise ValueError(f"{where}.{name} {wide.tolist()} has values beyond +-{MAX_GOAL_ABS:g}: the distance to "
                             "such a goal cannot be computed in float32")
        out.append(wide.astype(np.float32))
    # a subnormal weight (1e-45) passed "> 0" and the goal was ignored: "final goal distance 0.0000" (probe 32)
    out[1] = np.where(out[1] < np.finfo(np.float32).tiny, np.minimum(out[1], 0), out[1]).astype(np.float32)
    if np.any(out[1] < 0) or not np.any(out[1] > 0):
        tiny = "" if np.any(out[1] < 0) else " (weights below 1.2e-38 are 0 as float32)"  # 1e-300 showed as 0.0
        raise ValueError(f"{where}.weights {out[1].tolist()} must be >= 0 with at least one > 0{tiny}")
    return Goal(*out)
