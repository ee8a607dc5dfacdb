"""Plain data types shared by every environment: array specs and step results."""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field

import numpy as np


MAX_CONTROL_PERIOD_S = 60.0
"""The longest control period (seconds per agent action) an environment may have and a deployed planner may
declare: an MJCF timestep of 1000 s trained and exported, then deploy refused its own file (probe 13)."""


def _not_a_number(x) -> str | None:
    """The first value in the (nested) list ``x`` that numpy takes as a number but is none, as words: a boolean
    beside numbers (``[True, 1]`` is an int array), a string (None: none in the first 100,000 values)."""
    stack, seen = [x], 0
    while stack and seen < 100_000:
        v, seen = stack.pop(), seen + 1
        if isinstance(v, list | tuple):
            stack.extend(reversed(v[:100_000]))
        elif isinstance(v, bool | np.bool_ | str | bytes):
            return f"{reprlib.repr(v):.40} ({type(v).__name__})"
    return None


def as_floats(x, what: str, dtype=np.float32) -> np.ndarray:
    """``x`` as an array of ``dtype``, or a ValueError naming ``what`` (numpy's own message for a string, an
    object or a ragged list names neither the value nor what was expected)."""
    if isinstance(x, list | tuple) and (odd := _not_a_number(x)):  # a goal file's "1" and true (probe 32)
        raise ValueError(f"{what} holds {odd}: expected numbers (int or float)")
    if np.ma.isMaskedArray(x) and np.ma.is_masked(x):  # its raw values under the mask were planned from (probe 32)
        raise ValueError(f"{what} is a masked array with {int(np.ma.count_masked(x))} masked value(s): give the values "
                         "(a missing sensor reading is no number to plan from)")
    try:
        complex_ = np.iscomplexobj(x)  # numpy would drop the imaginary part with a warning
        kind = None if complex_ else np.asarray(x).dtype.kind
        with np.errstate(over="ignore"):  # 1e300 to float32 is inf, which the callers name (a raw warning: probe 29)
            arr = None if complex_ or kind not in "iuf" else np.asarray(x, dtype=dtype)
    except (TypeError, ValueError, OverflowError, RecursionError) as e:  # RecursionError: a list nested 100,000 deep
        raise ValueError(f"{what} must be an array of numbers of one shape, got {type(x).__name__}: "
                         f"{str(e)[:200] or type(e).__name__}") from None
    if complex_:
        raise ValueError(f"{what} is complex: expected real numbers")
    if arr is None:  # strings ('1'), objects and bools were converted (ninth probe)
        raise ValueError(f"{what} holds {np.asarray(x).dtype} values: expected numbers (int or float)")
    return arr


def midpoint(low, high) -> np.ndarray:
    """The middle of [low, high] as float32, summed in float64: bounds of 3e38 and 3.4e38 made a middle of inf in float32
    (probe 37)."""
    return ((np.asarray(low, dtype=np.float64) + np.asarray(high, dtype=np.float64)) / 2).astype(np.float32)


@dataclass(frozen=True)
class BoxSpec:
    """A float vector with per-dimension bounds (``-inf``/``inf`` when unbounded)."""

    shape: tuple[int, ...]
    low: np.ndarray
    high: np.ndarray
    name: str = ""

    @property
    def dim(self) -> int:
        return int(np.prod(self.shape))

    def contains(self, x: np.ndarray) -> bool:
        x = np.asarray(x)
        return x.shape == self.shape and bool(np.all(x >= self.low) and np.all(x <= self.high))

    def check(self, x: np.ndarray, what: str) -> np.ndarray:
        """Return ``x`` as float64 of this shape, or raise a ValueError naming the bad value."""
        arr = as_floats(x, what, np.float64)
        if arr.shape != self.shape:
            raise ValueError(f"{what} has shape {arr.shape}, expected {self.shape} ({self.name})")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what} is not finite: {arr.tolist()}")
        return arr


@dataclass
class StepResult:
    """What one control step returns. ``diverged`` marks a step whose physics blew up:
    its observation is the last valid one and it must never be stored as a transition."""

    observation: np.ndarray
    reward: float
    terminated: bool = False
    truncated: bool = False
    diverged: bool = False
    info: dict = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated or self.diverged
