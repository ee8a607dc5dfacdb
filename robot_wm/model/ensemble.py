"""PETS-style ensemble of probabilistic MLPs: each member predicts a Gaussian over the normalised
state change and the reward, given state and action. All members run as one batched matmul."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robot_wm.model.normalizer import Normalizer

ACTIVATIONS = {"silu": F.silu, "relu": F.relu}


MAX_STATE_Z = 1e4
"""A state whose normalised value (what the network sees: the data's mean and std, a constant dimension in units of
1) exceeds this in any dimension is none the model can say anything about (an overflowed integer, uninitialised
memory, a unit error of x10^4): the planner scores no plan from it, reports ``valid=False`` and the runtime falls back
(probe 15: states of 1e19 were planned as valid, with returns of 1e19). A dimension that barely moved in the data
has a small std, so a robot that sits far off it there is stopped too: the model would see a value of 10^4 or more."""


@dataclass(frozen=True)
class WorldModelSpec:
    obs_dim: int
    act_dim: int
    ensemble_size: int = 5
    hidden: int = 200
    layers: int = 3
    activation: str = "silu"  # a key of ACTIVATIONS; checkpoints written before this field are silu

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} is not one of {sorted(ACTIVATIONS)}")
        for k in ("obs_dim", "act_dim", "ensemble_size", "hidden", "layers"):  # obs_dim=0 was built (probe 17)
            if isinstance(v := getattr(self, k), bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"world model {k}={v!r}: expected a whole number >= 1")

    @property
    def out_dim(self) -> int:
        return self.obs_dim + 1  # state change + reward


class EnsembleLinear(nn.Module):
    def __init__(self, members: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(members, 1, d_out))
        bound = 1.0 / d_in**0.5
        nn.init.trunc_normal_(self.weight, std=bound, a=-2 * bound, b=2 * bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (E, B, d_in) -> (E, B, d_out)
        return torch.baddbmm(self.bias, x, self.weight)


class WorldModel(nn.Module):
    def __init__(self, spec: WorldModelSpec, action_low: torch.Tensor, action_high: torch.Tensor):
        super().__init__()
        self.spec = spec
        self.act = ACTIVATIONS[spec.activation]
        e, s, a = spec.ensemble_size, spec.obs_dim, spec.act_dim
        dims = [s + a] + [spec.hidden] * spec.layers
        self.hidden_layers = nn.ModuleList(EnsembleLinear(e, i, o) for i, o in zip(dims[:-1], dims[1:]))
        self.head = EnsembleLinear(e, spec.hidden, 2 * spec.out_dim)
        self.max_logvar = nn.Parameter(torch.full((spec.out_dim,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((spec.out_dim,), -10.0))
        self.obs_norm = Normalizer(s)
        self.target_norm = Normalizer(spec.out_dim)
        low, high = (torch.as_tensor(b if torch.is_tensor(b) else np.asarray(b, dtype=np.float32), dtype=torch.float32)
                     for b in (action_low, action_high))
        # inverted or NaN bounds were built, two values for one action a torch error (probe 17); a checkpoint's model
        # is built on the meta device and its bounds checked as it loads
        if low.shape != (a,) or high.shape != (a,) or not (low.is_meta or high.is_meta or (
                torch.isfinite(low).all() and torch.isfinite(high).all() and (low < high).all())):
            shown = lambda t: f"shape {list(t.shape)}" if t.is_meta else t.tolist()
            raise ValueError(f"action bounds low={shown(low)}, high={shown(high)}: expected {a} finite values each, "
                             "low below high")
        self.register_buffer("action_low", low.clone())
        self.register_buffer("action_high", high.clone())

    @property
    def members(self) -> int:
        return self.head.weight.shape[0]

    def input_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(shift, scale), each (S+A,): the network's input is ``(cat[obs, action] - shift) / scale``
        (observations by their normaliser, actions mapped from their bounds to [-1, 1])."""
        mid = (self.action_high + self.action_low) / 2
        half = (self.action_high - self.action_low) / 2
        return torch.cat([self.obs_norm.mean, mid]), torch.cat([self.obs_norm.std, half])

    def state_reach(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(centre, scale), each (S,): the states the model can be asked about lie within ``MAX_STATE_Z`` scales of the
        centre: the input normaliser's mean and std (``known_state``)."""
        return self.obs_norm.mean, self.obs_norm.std

    def inputs(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        shift, scale = self.input_affine()
        return (torch.cat([obs, action], dim=-1) - shift) / scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised inputs (E, B, S+A) -> mean and log-variance of normalised targets (E, B, S+1)."""
        for layer in self.hidden_layers:
            x = self.act(layer(x))
        mean, logvar = self.head(x).chunk(2, dim=-1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar

    def step(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean prediction per member: obs (E, B, S), action (E, B, A) -> next obs (E, B, S), reward (E, B)."""
        mean, _ = self(self.inputs(obs, action))
        target = self.target_norm.denormalize(mean)
        return obs + target[..., :-1], target[..., -1]

    def targets(self, obs: torch.Tensor, next_obs: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
        return torch.cat([next_obs - obs, reward.unsqueeze(-1)], dim=-1)

    def subset(self, members: list[int]) -> WorldModel:
        """A new model holding only the given members (e.g. the elites), sharing nothing."""
        spec = WorldModelSpec(**{**self.spec.__dict__, "ensemble_size": len(members)})
        out = WorldModel(spec, self.action_low, self.action_high)
        idx = torch.as_tensor(members, dtype=torch.long)
        state = {k: (v[idx] if k.endswith(("weight", "bias")) and v.ndim == 3 else v)
                 for k, v in self.state_dict().items()}
        out.load_state_dict(state)
        return out.to(self.action_low.device)
