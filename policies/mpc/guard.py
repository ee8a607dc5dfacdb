"""The value guard: the planner stops trusting its terminal value while its plans keep promising a future that never
comes (``planner.value_guard``).

A plan's objective J_t (imagined reward over the horizon plus the discounted value of its last state) should equal its
first step's predicted reward plus the discounted objective of the next step's plan: J_t = r_t + discount * J_{t+1}.
A value that rates a state "about to do well" above what any executed plan then achieves lets the planner find such a
plan every step and never carry it out (a cartpole that stays at the bottom, each step planning a swing-up that starts
after the horizon). Then J_t - r_t - discount * J_{t+1} stays positive: the guard averages it (exponentially, over
about ``window`` steps, in units of the most one control step can pay) and, above ``threshold``, plans without the value
for ``window`` steps, then trusts it again.

Recurrent state, one (4,) tensor carried from step to step like the warm-start plan (a graph input and output of the
exported planner): the last objective, the last first-step reward, the averaged shortfall, and the steps left
without the value.
"""

from __future__ import annotations

import torch

from robot_wm.export.format import GUARD_INITIAL


def initial_guard(device: torch.device | str = "cpu") -> torch.Tensor:
    """The guard at an episode's start: no previous plan, nothing owed, the value trusted."""
    return torch.tensor(GUARD_INITIAL, device=device)


def value_weight(guard: torch.Tensor) -> torch.Tensor:
    """() 1.0 while the value is trusted, 0.0 while the guard has switched it off."""
    return (guard[3] <= 0).to(guard.dtype)


def next_guard(guard: torch.Tensor, objective: torch.Tensor, first_reward: torch.Tensor, valid: torch.Tensor,
               discount: float, unit: float, window: int, threshold: float) -> torch.Tensor:
    """The guard after a step whose executed plan scored ``objective`` with first predicted reward ``first_reward``.
    A step that fell back (``valid`` False) or whose objective or reward is not finite is no evidence: it leaves the
    guard unchanged, except that a rest counts it (the rest is ``window`` control steps, whatever they were: fallback
    steps lengthened it before)."""
    last, last_reward, shortfall, off = guard.unbind()
    # a guard fed from outside (a raw onnxruntime caller) may hold anything: a NaN shortfall never tripped again, an
    # inf rest never ended (probe 25). What the runtime carries is never touched by this.
    shortfall = torch.where(torch.isfinite(shortfall), shortfall, torch.zeros_like(shortfall))
    off = torch.where(torch.isfinite(off), off.clamp(0, window), torch.zeros_like(off))
    # no evidence keeps the guard as it was, sanitised (a raw NaN or inf rest did not count down across fallbacks)
    kept = torch.stack([last, last_reward, shortfall, off])
    owed = torch.where(torch.isfinite(last), (last - last_reward - discount * objective) / unit, torch.zeros_like(last))
    shortfall = shortfall + (owed - shortfall) / window
    trip = shortfall > threshold
    nan, zero = torch.full_like(last, float("nan")), torch.zeros_like(last)
    trusted = torch.stack([torch.where(trip, nan, objective), torch.where(trip, zero, first_reward),
                           torch.where(trip, zero, shortfall), torch.where(trip, zero + window, zero)])
    resting = torch.stack([nan, zero, zero, off - 1])  # planning without the value: nothing to compare
    new = torch.where(off > 0, resting, trusted)
    evidence = valid & torch.isfinite(objective) & torch.isfinite(first_reward)
    return torch.where(evidence, new, torch.where(off > 0, resting, kept))
