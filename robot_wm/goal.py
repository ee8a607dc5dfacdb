"""A goal for goal-conditioned planning, checked: numpy only, so that the torch-free runtime shares it."""

from __future__ import annotations

import reprlib
from typing import NamedTuple

import numpy as np

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


def _not_a_number(v) -> str | None:
    """What in ``v`` (a list of values, or an array) is no number: a string, a boolean, ... (None: all numbers)."""
    if isinstance(v, np.ndarray):
        return None if v.dtype.kind in "iuf" else f"values of type {v.dtype}"
    if isinstance(v, list | tuple):
        for x in v[:100_000]:
            if isinstance(x, bool | np.bool_ | str | bytes) or not isinstance(x, int | float | np.integer | np.floating):
                return f"{reprlib.repr(x):.40} ({type(x).__name__})"
    return None


def check_goal(state, weights, state_dim: int, where: str = "goal") -> Goal:
    """``state`` and ``weights`` as float32 vectors of ``state_dim`` finite values of magnitude at most
    ``MAX_GOAL_ABS`` (weights >= 0, at least one > 0), or a ValueError naming what is wrong."""
    out = []
    for name, v in (("state", state), ("weights", weights)):
        if kind := _not_a_number(v):  # "1", "\u0661" and true were taken as 1.0 from a goal file (probe 32)
            raise ValueError(f"{where}.{name} is not a list of numbers: it holds {kind}; expected {state_dim}")
        try:
            with np.errstate(over="ignore"):  # 1e308 becomes inf here and is named as not finite below
                arr = np.asarray(v, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError, OverflowError, RecursionError):
            raise ValueError(f"{where}.{name} {reprlib.repr(v)} is not a list of numbers; expected {state_dim}") from None
        if arr.shape != (state_dim,):
            raise ValueError(f"{where}.{name} has {arr.size} values, expected {state_dim} (the robot's state size)")
        if not np.all(np.isfinite(arr)):  # 1e39 given reads as inf in float32: the given values are named (probe 30)
            with np.errstate(invalid="ignore", over="ignore"):
                wide = np.asarray(v, dtype=np.float64).reshape(-1)
            if np.all(np.isfinite(wide)):
                raise ValueError(f"{where}.{name} {wide.tolist()} has values beyond +-{MAX_GOAL_ABS:g}: the distance "
                                 "to such a goal cannot be computed in float32")
            raise ValueError(f"{where}.{name} is not finite: {arr.tolist()}")
        if np.any(np.abs(arr) > MAX_GOAL_ABS):
            raise ValueError(f"{where}.{name} {arr.tolist()} has values beyond +-{MAX_GOAL_ABS:g}: the distance to "
                             "such a goal cannot be computed in float32")
        out.append(arr)
    # a subnormal weight (1e-45) passed "> 0" and the goal was ignored: "final goal distance 0.0000" (probe 32)
    out[1] = np.where(out[1] < np.finfo(np.float32).tiny, np.minimum(out[1], 0), out[1]).astype(np.float32)
    if np.any(out[1] < 0) or not np.any(out[1] > 0):
        tiny = "" if np.any(out[1] < 0) else " (weights below 1.2e-38 are 0 as float32)"  # 1e-300 showed as 0.0
        raise ValueError(f"{where}.weights {out[1].tolist()} must be >= 0 with at least one > 0{tiny}")
    return Goal(*out)
