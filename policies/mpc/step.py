"""The planning step: one pure tensor function (state, previous plan, noise) -> (action, next plan,
diagnostics). Eager torch, torch.compile and the ONNX export all run exactly this code.

CEM, MPPI and iCEM share it and differ only in how elites are weighted (uniform vs softmax), in the
noise (white vs colored, via a fixed time-filter matrix) and in carrying elites between iterations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

ScoreFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]
"""(state, action sequences (N, H, A), *context) -> (predicted return (N,), ensemble spread (N,)); the
context is what the step was given besides the state (a goal and its weights, or nothing)."""


@dataclass(frozen=True)
class StepSpec:
    optimizer: str = "icem"
    horizon: int = 12
    samples: int = 256
    iterations: int = 2
    elites: int = 16
    keep_elites: int = 4
    temperature: float = 0.5
    momentum: float = 0.1
    init_std: float = 0.5
    min_std: float = 0.05
    noise_beta: float = 2.0
    uncertainty_weight: float = 0.0
    discount: float = 1.0
    policy_samples: int = 0
    delay: int = 0
    value_pessimism: float = 0.0
    value_guard: float = 0.0
    value_guard_window: int = 20

    def __post_init__(self) -> None:
        """The Python API builds specs directly: samples=0 was a torch 'index out of range', optimizer='bogus' and
        temperature=nan planned silently (tenth probe). Checked by ``PlannerConfig``'s own rules, plus room for the
        policy proposals."""
        from pydantic import ValidationError

        from robot_wm.config import PlannerConfig

        fields = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "policy_samples"}
        try:
            PlannerConfig.model_validate({**fields, "policy_fraction": 0.0})
        except ValidationError as e:
            err = e.errors()[0]
            name = ".".join(map(str, err["loc"])) or "spec"
            shown = f"{name}={fields[name]!r}" if name in fields else name
            raise ValueError(f"StepSpec {shown}: {err['msg']}") from None
        if not isinstance(self.policy_samples, int) or isinstance(self.policy_samples, bool) or \
                not 0 <= self.policy_samples <= self.samples - self.keep_elites - 2:
            raise ValueError(f"StepSpec policy_samples={self.policy_samples!r}: expected a whole number from 0 to "
                             f"samples - keep_elites - 2 = {self.samples - self.keep_elites - 2}")

    @classmethod
    def from_config(cls, cfg) -> StepSpec:
        return cls(**{k: getattr(cfg, k) for k in cls.__dataclass_fields__})

    def noise_shape(self, act_dim: int) -> tuple[int, int, int, int]:
        return (self.iterations, self.samples, self.horizon, act_dim)

    @property
    def carried(self) -> int:
        return self.keep_elites if self.optimizer == "icem" else 0


class PlanOutput(NamedTuple):
    action: torch.Tensor       # (A,) the command to send: the refined plan's action ``delay`` steps ahead
    next_plan: torch.Tensor    # (H, A) warm start for the next step: the plan shifted by one
    best_return: torch.Tensor  # () objective of the plan being executed (predicted return - penalty)
    spread: torch.Tensor       # () ensemble spread of that plan's return
    valid: torch.Tensor        # () bool: False when state or scores were non-finite (fallback used)
    elite_plans: torch.Tensor  # (K, H, A) the last iteration's elites, best first (for visualisation)
    scores: torch.Tensor       # (N,) the last iteration's objective of every sampled sequence
    action_std: torch.Tensor   # (A,) the refit sampling std of the first action (what the planner is unsure of)
    guard: torch.Tensor | None = None  # (4,) the value guard after this step (``policies.mpc.guard``), when guarded


def colored_filter(horizon: int, beta: float) -> torch.Tensor:
    """(H, H) matrix turning white noise along time into 1/f^beta noise with unit variance per step
    (the iCEM noise), as a constant matmul so that it exports to any runtime."""
    if beta == 0:
        return torch.eye(horizon)
    freqs = torch.fft.rfftfreq(horizon)
    freqs[0] = freqs[1] if horizon > 1 else 1.0
    gain = freqs ** (-beta / 2)
    basis = torch.eye(horizon)
    m = torch.fft.irfft(torch.fft.rfft(basis, dim=0) * gain[:, None], n=horizon, dim=0)  # column j: filtered e_j
    norm = m.norm(dim=1, keepdim=True)
    if not (torch.isfinite(norm).all() and (norm > 0).all()):  # past ~20 the squares overflow, past ~100 NaN
        raise ValueError(f"planner.noise_beta={beta:g} gives a non-finite noise filter over {horizon} steps: "
                         "expected an exponent in [0, 4]")
    return m / norm


def initial_plan(low: torch.Tensor, high: torch.Tensor, horizon: int) -> torch.Tensor:
    return ((low + high) / 2).expand(horizon, -1).clone()


def plan_step(state: torch.Tensor, prev_plan: torch.Tensor, noise: torch.Tensor, score_fn: ScoreFn,
              spec: StepSpec, low: torch.Tensor, high: torch.Tensor, noise_filter: torch.Tensor,
              proposals: torch.Tensor | None = None, context: tuple[torch.Tensor, ...] = (),
              value_weight: torch.Tensor | None = None) -> PlanOutput:
    """Refine ``prev_plan`` (H, A) for ``state`` with ``spec.iterations`` rounds of sampling.

    ``noise`` (I, N, H, A) is standard normal; ``noise_filter`` is ``colored_filter(...)`` (or the
    identity). Every sampled sequence is clamped to [low, high]. Each round scores the current mean
    and the carried elites alongside the new samples, so the best score never decreases.
    ``proposals`` (P, H, A), e.g. policy rollouts, join every round's candidates in place of P samples.
    ``context`` (e.g. a goal state and its weights) is passed to every ``score_fn`` call after the sequences, and
    ``value_weight`` (a () tensor, the value guard's) as the keyword ``value_weight`` where it is given.
    The refit mean is the plan executed; it is scored once more at the end (one sequence), so that
    ``best_return`` and ``spread`` describe what the robot does, not the best sample seen.

    With ``spec.delay`` = d > 0 the first d actions of ``prev_plan`` are the commands in flight (sent, not yet
    acting): every candidate keeps them, and the command returned is the plan's action d. The shifted plan
    then carries the command just sent at position d - 1, so the in-flight commands need no input of their own.
    """
    n, k, keep = spec.samples, spec.elites, spec.carried
    props = prev_plan.new_zeros((0, *prev_plan.shape)) if proposals is None else proposals.clamp(low, high)
    n = n - props.shape[0]
    half = (high - low) / 2
    mean = prev_plan.clamp(low, high)
    d = spec.delay
    inflight = mean[:d]
    std = (spec.init_std * half).expand_as(mean)
    min_std = spec.min_std * half
    kept = mean.new_zeros((0, *mean.shape))
    kw = {} if value_weight is None else {"value_weight": value_weight}
    for i in range(spec.iterations):
        fixed = 1 + (keep if i > 0 else 0)
        eps = torch.einsum("th,nha->nta", noise_filter, noise[i, : n - fixed])
        cand = torch.cat([(mean + std * eps).clamp(low, high), props, mean.unsqueeze(0), kept])
        if d:  # the commands in flight are not the planner's to change
            cand = torch.cat([inflight.expand(cand.shape[0], d, -1), cand[:, d:]], 1)
        ret, spread = score_fn(state, cand, *context, **kw)
        obj = ret - spec.uncertainty_weight * spread
        obj = torch.where(torch.isfinite(obj), obj, torch.full_like(obj, -math.inf))
        top_obj, top_idx = obj.topk(k)
        elite = cand[top_idx]
        if spec.optimizer == "mppi":
            w = torch.softmax((top_obj - top_obj[0]) / spec.temperature, dim=0)
            w = torch.where(torch.isfinite(w), w, torch.full_like(w, 1.0 / k))
        else:
            w = torch.full_like(top_obj, 1.0 / k)
        w = w[:, None, None]
        new_mean = (w * elite).sum(0)
        new_std = ((w * (elite - new_mean) ** 2).sum(0)).sqrt()
        # Clamp: a float32 weighted mean of in-bound elites can land one ulp outside the bounds.
        mean = (spec.momentum * mean + (1 - spec.momentum) * new_mean).clamp(low, high)
        if d:  # exactly the in-flight commands (a weighted mean of equal values may differ in the last bit)
            mean = torch.cat([inflight, mean[d:]])
        std = torch.maximum(spec.momentum * std + (1 - spec.momentum) * new_std, min_std)
        if keep:
            kept = elite[:keep]
    plan_ret, plan_spread = score_fn(state, mean.unsqueeze(0), *context, **kw)
    plan_obj = plan_ret[0] - spec.uncertainty_weight * plan_spread[0]
    valid = torch.isfinite(state).all() & torch.isfinite(plan_obj) & torch.isfinite(mean).all()
    fallback = prev_plan.nan_to_num(0.0).clamp(low, high)
    plan = torch.where(valid, mean, fallback)
    next_plan = torch.cat([plan[1:], plan[-1:]])
    return PlanOutput(plan[d], next_plan, plan_obj, plan_spread[0], valid, elite, obj, std[d])
