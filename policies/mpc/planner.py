"""The MPC controller: keeps the warm-start plan and the noise generator around ``plan_step``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from policies.mpc.guard import initial_guard, next_guard, value_weight
from policies.mpc.step import PlanOutput, ScoreFn, StepSpec, colored_filter, initial_plan, plan_step
from robot_wm.goal import Goal
from robot_wm.model.ensemble import WorldModel
from robot_wm.model.folded import FoldedModel
from robot_wm.model.imagine import score_sequences
from robot_wm.model.value import ActorCritic


class LearnedScore(nn.Module):
    """Scores sequences by rolling them out through the world model's members, in the model's folded
    form (``net``: same predictions, cheaper). ``model`` stays the full model, for visualisation.

    With a ``value`` (an ``ActorCritic``) the objective adds ``discount^H * V(last imagined state)`` per
    member, the discount becomes the value's, and ``propose`` rolls the policy out through the model.

    A ``novelty_weight`` (exploring training episodes; never exported) adds the members' disagreement on
    the imagined states (``state_disagreement``, in units of the data's std) to the objective.

    Called with a ``goal`` and its ``goal_weights`` (the step's context), the objective becomes
    ``reward_weight`` x (return + value) minus the distance of the imagined states to the goal."""

    def __init__(self, model: WorldModel, discount: float = 1.0, value: ActorCritic | None = None,
                 novelty_weight: float = 0.0, reward_weight: float = 1.0, pessimism: float = 0.0):
        super().__init__()
        for name, v in (("novelty_weight", novelty_weight), ("reward_weight", reward_weight), ("pessimism", pessimism)):
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}={v!r}: expected a finite number >= 0")  # nan planned silently (tenth probe)
        self.model, self.net, self.value = model, FoldedModel.of(model), value
        self.discount = value.spec.discount if value is not None else discount
        self.novelty_weight, self.reward_weight = float(novelty_weight), float(reward_weight)
        self.pessimism = float(pessimism)  # the value's: mean over heads less this many stds (planner.value_pessimism)
        self.register_buffer("obs_scale", model.obs_norm.std.detach().clone())

    def forward(self, state: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor | None = None,
                goal_weights: torch.Tensor | None = None,
                value_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return score_sequences(self.net, state, actions, self.discount, self.value, self.novelty_weight,
                               self.obs_scale, goal, goal_weights, self.reward_weight, self.pessimism, value_weight)

    def first_reward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """() the members' mean predicted reward of ``action`` (A,) from ``state`` (S,)."""
        e = self.net.members
        return self.net.step(state.expand(e, 1, state.shape[-1]), action.expand(e, 1, action.shape[-1]))[1].mean()

    @property
    def step_unit(self) -> float:
        """The most one control step can pay, as the value assumes (``value_scale x (1 - discount)``)."""
        return self.value.spec.value_scale * (1 - self.discount)

    def propose(self, state: torch.Tensor, eps: torch.Tensor, inflight: torch.Tensor | None = None) -> torch.Tensor:
        """Policy rollouts (P, H, A) from ``state`` through the members' mean prediction, the policy
        sampled with standard-normal ``eps`` (P, H, A); the first steps apply the commands ``inflight`` (D, A)
        already sent, the policy acts from there."""
        p, h, _ = eps.shape
        e, d = self.net.members, 0 if inflight is None else inflight.shape[0]
        s, actions = state.expand(p, state.shape[-1]), []
        for t in range(h):
            a = inflight[t].expand(p, -1) if t < d else self.value.act(s, eps[:, t])
            actions.append(a)
            s = self.net.step(s.expand(e, *s.shape), a.expand(e, *a.shape))[0].mean(0)
        return torch.stack(actions, 1)


def _f32(x) -> torch.Tensor:
    """A float32 copy of a bound (a tensor stays on its device; numpy arrays may be read-only)."""
    return x.detach().to(torch.float32).clone() if torch.is_tensor(x) else torch.tensor(np.array(x, dtype=np.float32))


def proposal_noise(spec: StepSpec, noise: torch.Tensor) -> torch.Tensor:
    """The slice of a step's noise (I, N, H, A) the policy proposals are drawn with: the first
    iteration's last ``policy_samples`` slots, which its samples leave free."""
    return noise[0, noise.shape[1] - spec.policy_samples:]


class PlanStep(nn.Module):
    """``plan_step`` bound to a score function, spec and bounds: forward(state, prev_plan, noise)."""

    def __init__(self, score: ScoreFn, spec: StepSpec, low, high):
        super().__init__()
        if spec.policy_samples and not callable(getattr(score, "propose", None)):
            raise ValueError(f"policy_samples={spec.policy_samples} but the score function has no policy to propose "
                             "sequences (plan with policy_samples=0)")
        self.score, self.spec = score, spec
        self.register_buffer("low", _f32(low))
        self.register_buffer("high", _f32(high))
        beta = spec.noise_beta if spec.optimizer == "icem" else 0.0
        self.register_buffer("noise_filter", colored_filter(spec.horizon, beta))

    @property
    def guarded(self) -> bool:
        """Whether the step takes and returns the value guard: ``planner.value_guard`` > 0 and a learned score with a
        value to guard (the oracle's true-simulator score predicts no first reward: never guarded)."""
        return (self.spec.value_guard > 0 and getattr(self.score, "value", None) is not None
                and callable(getattr(self.score, "first_reward", None)))

    def forward(self, state: torch.Tensor, prev_plan: torch.Tensor, noise: torch.Tensor,
                *context: torch.Tensor, guard: torch.Tensor | None = None) -> PlanOutput:
        """``guard`` (4,): the value guard's state where ``guarded`` (``policies.mpc.guard``; required there)."""
        if self.guarded != (guard is not None):
            raise ValueError("this planning step takes the value guard's state (guard=...)" if self.guarded else
                             "guard given to a planning step without a value guard (planner.value_guard=0 or no value)")
        inflight = prev_plan[: self.spec.delay].clamp(self.low, self.high) if self.spec.delay else None
        proposals = self.score.propose(state, proposal_noise(self.spec, noise), inflight) \
            if self.spec.policy_samples else None
        weight = None if guard is None else value_weight(guard)
        out = plan_step(state, prev_plan, noise, self.score, self.spec, self.low, self.high, self.noise_filter,
                        proposals, context, weight)
        if guard is None:
            return out
        acting = inflight[0] if inflight is not None else out.action  # the command that acts during this step
        r1 = self.score.first_reward(state, acting)
        return out._replace(guard=next_guard(guard, out.best_return, r1, out.valid, self.score.discount,
                                             self.score.step_unit, self.spec.value_guard_window, self.spec.value_guard))


class MPCPlanner:
    """Replans every control step from the shifted previous plan. ``act`` never returns a
    non-finite or out-of-bounds action: invalid steps fall back to the shifted plan and are counted.

    A goal (``set_goal``) is passed to the score function on every step; ``goal_fn`` sets one at every
    ``reset`` (a goal given by named joints depends on the episode's start).

    ``action_noise`` (exploring training episodes only; never exported) executes the plan's first action
    plus that many times the planner's refit sampling std of it times standard-normal noise, clamped to
    the bounds (TD-MPC2 samples its training actions so, with 1): large while the planner cannot tell
    its candidates apart, small once it can. The warm start stays the plan itself."""

    def __init__(self, step: PlanStep, seed: int = 0, name: str = "learned", compile: bool = False,
                 goal_fn: Callable[[], Goal] | None = None, action_noise: float = 0.0):
        if not (math.isfinite(action_noise) and action_noise >= 0):
            raise ValueError(f"action_noise={action_noise!r} must be a finite number >= 0")
        self.name, self.step, self.action_noise = name, step, float(action_noise)
        self.device = step.low.device
        self.act_dim = step.low.numel()
        model = getattr(step.score, "model", None)  # a learned score knows the state size it expects
        self.state_dim: int | None = model.spec.obs_dim if isinstance(model, WorldModel) else None
        self._fn = torch.compile(step, dynamic=False) if compile else step
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        self.fallbacks = 0
        self.last: PlanOutput | None = None
        self.last_noise: torch.Tensor | None = None  # what ``last`` was planned with (to replay proposals)
        self.last_warm_start: torch.Tensor | None = None  # and the plan it refined (it holds the commands in flight)
        self.goal_fn, self.goal, self.context = goal_fn, None, ()
        self.reset()

    @classmethod
    def learned(cls, model: WorldModel, spec: StepSpec, seed: int = 0, compile: bool = False,
                value: ActorCritic | None = None, novelty_weight: float = 0.0,
                goal_fn: Callable[[], Goal] | None = None, reward_weight: float = 1.0,
                action_noise: float = 0.0) -> MPCPlanner:
        """The learned planner; without ``value`` the PETS-style objective and no policy proposals; with a
        ``goal_fn``, toward its goal (``reward_weight`` x the task's return beside it)."""
        score, spec = learned_score(model, spec, value, novelty_weight, reward_weight)
        step = PlanStep(score, spec, model.action_low, model.action_high)
        return cls(step.to(model.action_low.device), seed, "learned" if value is not None else "pets", compile,
                   goal_fn, action_noise)

    def reset(self) -> None:
        self.plan = initial_plan(self.step.low, self.step.high, self.step.spec.horizon)
        self.guard = initial_guard(self.device) if self.step.guarded else None
        self.value_off_steps = 0  # steps of this episode planned without the value (the value guard had tripped)
        self.last_value_trusted = True
        if self.goal_fn is not None:
            self.set_goal(self.goal_fn())

    def set_goal(self, goal: Goal | None) -> None:
        """Plan toward ``goal`` (a checked ``Goal``) from the next step on; None: the task reward alone."""
        self.goal = goal
        self.context = () if goal is None else tuple(
            torch.as_tensor(v, dtype=torch.float32, device=self.device) for v in goal)

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
        noise = self.noise()
        # whether this step plans with the terminal value (False while the value guard has it off): the Rerun
        # observer scores its ghosts so
        self.last_value_trusted = self.guard is None or float(value_weight(self.guard)) != 0
        if self.guard is None:
            out = self._fn(state, self.plan, noise, *self.context)
        else:
            self.value_off_steps += int(not self.last_value_trusted)
            out = self._fn(state, self.plan, noise, *self.context, guard=self.guard)
            self.guard = out.guard
        self.plan, self.last, self.last_noise, self.last_warm_start = out.next_plan, out, noise, self.plan
        if not bool(out.valid):
            self.fallbacks += 1
            return out.action.double().cpu().numpy()
        action = out.action
        if self.action_noise:
            eps = torch.randn(action.shape, generator=self.gen, device=self.device)
            action = (action + self.action_noise * out.action_std * eps).clamp(self.step.low, self.step.high)
            if d := self.step.spec.delay:  # the plan carries what was sent, which is now in flight
                self.plan = torch.cat([self.plan[: d - 1], action[None], self.plan[d:]])
        return action.double().cpu().numpy()


def learned_score(model: WorldModel, spec: StepSpec, value: ActorCritic | None,
                  novelty_weight: float = 0.0, reward_weight: float = 1.0) -> tuple[LearnedScore, StepSpec]:
    """The score function and the spec it plans with: policy proposals only where there is a policy."""
    if value is None:
        spec = replace(spec, policy_samples=0)
    return LearnedScore(model, spec.discount, value, novelty_weight, reward_weight, spec.value_pessimism), spec
