"""The MPC controller: keeps the warm-start plan and the noise generator around ``plan_step``."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from policies.mpc.step import PlanOutput, ScoreFn, StepSpec, colored_filter, initial_plan, plan_step
from robot_wm.model.ensemble import WorldModel
from robot_wm.model.folded import FoldedModel
from robot_wm.model.imagine import score_sequences


class LearnedScore(nn.Module):
    """Scores sequences by rolling them out through the world model's members, in the model's folded
    form (``net``: same predictions, cheaper). ``model`` stays the full model, for visualisation."""

    def __init__(self, model: WorldModel, discount: float = 1.0):
        super().__init__()
        self.model, self.net, self.discount = model, FoldedModel.of(model), discount

    def forward(self, state: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return score_sequences(self.net, state, actions, self.discount)


class PlanStep(nn.Module):
    """``plan_step`` bound to a score function, spec and bounds: forward(state, prev_plan, noise)."""

    def __init__(self, score: ScoreFn, spec: StepSpec, low, high):
        super().__init__()
        self.score, self.spec = score, spec
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32).detach().clone())
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32).detach().clone())
        beta = spec.noise_beta if spec.optimizer == "icem" else 0.0
        self.register_buffer("noise_filter", colored_filter(spec.horizon, beta))

    def forward(self, state: torch.Tensor, prev_plan: torch.Tensor, noise: torch.Tensor) -> PlanOutput:
        return plan_step(state, prev_plan, noise, self.score, self.spec, self.low, self.high, self.noise_filter)


class MPCPlanner:
    """Replans every control step from the shifted previous plan. ``act`` never returns a
    non-finite or out-of-bounds action: invalid steps fall back to the shifted plan and are counted."""

    def __init__(self, step: PlanStep, seed: int = 0, name: str = "learned", compile: bool = False):
        self.name, self.step = name, step
        self.device = step.low.device
        self.act_dim = step.low.numel()
        model = getattr(step.score, "model", None)  # a learned score knows the state size it expects
        self.state_dim: int | None = model.spec.obs_dim if isinstance(model, WorldModel) else None
        self._fn = torch.compile(step, dynamic=False) if compile else step
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        self.fallbacks = 0
        self.last: PlanOutput | None = None
        self.reset()

    @classmethod
    def learned(cls, model: WorldModel, spec: StepSpec, seed: int = 0, compile: bool = False) -> MPCPlanner:
        step = PlanStep(LearnedScore(model, spec.discount), spec, model.action_low, model.action_high)
        return cls(step.to(model.action_low.device), seed, "learned", compile)

    def reset(self) -> None:
        self.plan = initial_plan(self.step.low, self.step.high, self.step.spec.horizon)

    def noise(self) -> torch.Tensor:
        shape = self.step.spec.noise_shape(self.act_dim)
        return torch.randn(shape, generator=self.gen, device=self.device)

    @torch.inference_mode()
    def act(self, obs: np.ndarray) -> np.ndarray:
        try:
            arr = np.asarray(obs, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"observation {obs!r} is not numeric; expected {self.state_dim} floats") from None
        if arr.ndim != 1 or (self.state_dim is not None and arr.shape != (self.state_dim,)):
            raise ValueError(f"observation has shape {arr.shape}, expected ({self.state_dim or 'S'},)")
        state = torch.as_tensor(arr, device=self.device)
        out = self._fn(state, self.plan, self.noise())
        self.plan, self.last = out.next_plan, out
        if not bool(out.valid):
            self.fallbacks += 1
        return out.action.double().cpu().numpy()
