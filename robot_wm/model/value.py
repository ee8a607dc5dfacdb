"""The long view: an ensemble of Q functions and a squashed-Gaussian policy, in state space, learned
from the same replay data as the world model (``robot_wm.train_value``).

The planner consults both (``policies.mpc.planner.LearnedScore``): the value of the last imagined state,
``V(s) = mean over heads of Q(s, pi(s))``, scores what lies past the horizon, and policy rollouts through
the world model are part of every iteration's candidates.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robot_wm.model.ensemble import EnsembleLinear
from robot_wm.model.normalizer import Normalizer

LOG_STD_MIN, LOG_STD_MAX = -5.0, 1.0


@dataclass(frozen=True)
class ValueSpec:
    obs_dim: int
    act_dim: int
    q_heads: int = 2
    hidden: int = 256
    layers: int = 2
    discount: float = 0.99
    """Per control step (one agent decision)."""
    value_scale: float = 1.0
    """Q = value_scale x the heads' output: the networks work on returns of order one."""

    def __post_init__(self) -> None:
        if self.q_heads < 2:
            raise ValueError(f"q_heads={self.q_heads}: TD targets take the min of two heads, so at least 2")
        if not 0 < self.discount < 1:
            raise ValueError(f"discount={self.discount} must lie in (0, 1)")
        if not (self.value_scale > 0 and math.isfinite(self.value_scale)):
            raise ValueError(f"value_scale={self.value_scale} must be positive and finite")


def episode_discount(control_steps: int) -> float:
    """Discount from the episode length in control steps (TD-MPC2's rule): an effective horizon of a
    fifth of the episode, clipped to [0.95, 0.995]. cartpole at action repeat 8 (125 steps): 0.96."""
    frac = control_steps / 5
    return float(min(max((frac - 1) / frac, 0.95), 0.995)) if frac > 1 else 0.95


def _ln_act(x: torch.Tensor) -> torch.Tensor:
    return F.silu(F.layer_norm(x, x.shape[-1:]))


class QEnsemble(nn.Module):
    """Heads run as one batched matmul per layer: (Q, B, S+A) normalised inputs -> (Q, B) outputs.
    Layer norm after every hidden layer (what BRO found keeps a critic stable at high update ratios)."""

    def __init__(self, spec: ValueSpec):
        super().__init__()
        dims = [spec.obs_dim + spec.act_dim] + [spec.hidden] * spec.layers
        self.hidden = nn.ModuleList(EnsembleLinear(spec.q_heads, i, o) for i, o in pairwise(dims))
        self.out = EnsembleLinear(spec.q_heads, spec.hidden, 1)
        nn.init.zeros_(self.out.weight)  # every head starts at Q = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = _ln_act(layer(x))
        return self.out(x)[..., 0]


class Policy(nn.Module):
    """Normalised state (B, S) -> mean and log-std of the pre-squash Gaussian, each (B, A)."""

    def __init__(self, spec: ValueSpec):
        super().__init__()
        dims = [spec.obs_dim] + [spec.hidden] * spec.layers
        self.hidden = nn.ModuleList(nn.Linear(i, o) for i, o in pairwise(dims))
        self.out = nn.Linear(spec.hidden, 2 * spec.act_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self.hidden:
            x = _ln_act(layer(x))
        mu, log_std = self.out(x).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + (LOG_STD_MAX - LOG_STD_MIN) * torch.sigmoid(log_std)
        return mu, log_std


class ActorCritic(nn.Module):
    """Q ensemble (+ its slowly updated target copy) and policy, with their own state normaliser.
    Actions go in and come out in the environment's bounds."""

    def __init__(self, spec: ValueSpec, action_low: torch.Tensor, action_high: torch.Tensor):
        super().__init__()
        self.spec = spec
        self.obs_norm = Normalizer(spec.obs_dim)
        self.q = QEnsemble(spec)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.pi = Policy(spec)
        a = spec.act_dim
        self.register_buffer("action_low", torch.as_tensor(action_low, dtype=torch.float32).reshape(a).clone())
        self.register_buffer("action_high", torch.as_tensor(action_high, dtype=torch.float32).reshape(a).clone())
        # Derived from the bounds once (not saved): the planner calls the policy H times per step.
        self.register_buffer("_mid", (self.action_high + self.action_low) / 2, persistent=False)
        self.register_buffer("_half", (self.action_high - self.action_low) / 2, persistent=False)

    def q_values(self, obs: torch.Tensor, action: torch.Tensor, target: bool = False) -> torch.Tensor:
        """obs (..., S), action (..., A) -> Q per head (heads, ...), in return units."""
        x = torch.cat([self.obs_norm.normalize(obs), (action - self._mid) / self._half], dim=-1)
        lead = x.shape[:-1]
        flat = x.reshape(1, -1, x.shape[-1]).expand(self.spec.q_heads, -1, -1)
        q = (self.q_target if target else self.q)(flat) * self.spec.value_scale
        return q.reshape(self.spec.q_heads, *lead)

    def policy(self, obs: torch.Tensor, eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Action within the bounds and its log-probability, for obs (..., S). ``eps`` (..., A) standard
        normal samples the policy; None gives its mean (deterministic)."""
        u, log_std = self._pre_squash(obs, eps)
        squashed = torch.tanh(u)
        z = torch.zeros_like(u) if eps is None else eps
        log_prob = (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - torch.log1p(-squashed**2 + 1e-6).sum(-1)
        return self._mid + self._half * squashed, log_prob

    def act(self, obs: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        """The action of ``policy`` alone (what planning needs: fewer ops per imagined step)."""
        return self._mid + self._half * torch.tanh(self._pre_squash(obs, eps)[0])

    def _pre_squash(self, obs: torch.Tensor, eps: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian sample before tanh (its mean when ``eps`` is None), and the log-std."""
        mu, log_std = self.pi(self.obs_norm.normalize(obs))
        return (mu if eps is None else mu + log_std.exp() * eps), log_std

    def value(self, obs: torch.Tensor, pessimism: float = 0.0) -> torch.Tensor:
        """V(s) = mean over heads of Q(s, pi(s)) with the policy's mean action, less ``pessimism`` x their std over
        heads (``planner.value_pessimism``); obs (..., S) -> (...).
        The mean, not the min: the planner already pays for disagreement through the ensemble spread,
        and the min's pessimism compounds with it (TD-MPC2 also plans with the average of two heads).
        Clipped to the returns a task can pay (``clip``): a head that extrapolates past them in an
        imagined state the data never visited cannot pull the plan there."""
        q = self.q_values(obs, self.act(obs))
        return self.clip(q.mean(0) - pessimism * q.std(0) if pessimism else q.mean(0))

    def clip(self, q: torch.Tensor) -> torch.Tensor:
        """Values to [-value_scale, value_scale]: a discounted return of rewards of order one per
        environment step (what ``value_scale`` assumes) cannot leave that range."""
        return q.clamp(-self.spec.value_scale, self.spec.value_scale)

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        for p, t in zip(self.q.parameters(), self.q_target.parameters()):
            t.lerp_(p, tau)


def new_value(obs_dim: int, act_dim: int, low, high, cfg, control_steps: int, action_repeat: int,
              device: str = "cpu") -> ActorCritic:
    """An actor-critic for a task whose episodes last ``control_steps`` agent steps. The value scale
    assumes rewards of order one per environment step (as on the suite): a control step earns at most
    ``action_repeat``, a discounted return at most ``action_repeat / (1 - discount)``."""
    discount = cfg.discount if cfg.discount is not None else episode_discount(control_steps)
    spec = ValueSpec(obs_dim, act_dim, cfg.q_heads, cfg.hidden, cfg.layers, discount,
                     action_repeat / (1 - discount))
    low, high = (torch.tensor(np.array(x, dtype=np.float32)) for x in (low, high))
    return ActorCritic(spec, low, high).to(device)
