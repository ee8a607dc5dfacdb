"""Roll action sequences out through the ensemble: the shared core of the planner, the
counterfactual ("what if?") API and the multi-step error metric."""

from __future__ import annotations

from typing import NamedTuple

import torch

from robot_wm.model.ensemble import MAX_STATE_Z, WorldModel
from robot_wm.model.folded import FoldedModel


class Imagined(NamedTuple):
    rewards: torch.Tensor        # (E, N, H) per member
    states: torch.Tensor | None  # (E, N, H+1, S) per member, when asked for
    last: torch.Tensor           # (E, N, S) the final imagined state of every member and sequence

    def returns(self, discount: float = 1.0) -> torch.Tensor:
        """Discounted return per member and sequence, (E, N)."""
        h = self.rewards.shape[-1]
        w = discount ** torch.arange(h, dtype=self.rewards.dtype, device=self.rewards.device)
        return (self.rewards * w).sum(-1)


def imagine(model: WorldModel | FoldedModel, obs: torch.Tensor, actions: torch.Tensor, keep_states: bool = False) -> Imagined:
    """obs (S,) or (N, S); actions (N, H, A). Each sequence runs through every member (mean prediction)."""
    e = model.members
    n, h, _ = actions.shape
    s = obs.expand(e, n, obs.shape[-1]) if obs.ndim == 1 else obs.unsqueeze(0).expand(e, n, obs.shape[-1])
    per_step = actions.transpose(0, 1).unsqueeze(1).expand(h, e, n, actions.shape[-1])  # one view, (H, E, N, A)
    rewards, states = [], [s] if keep_states else None
    for t in range(h):
        s, r = model.step(s, per_step[t])
        rewards.append(r)
        if keep_states:
            states.append(s)
    return Imagined(torch.stack(rewards, -1), torch.stack(states, 2) if keep_states else None, s)


def beyond_reach(model: WorldModel | FoldedModel, obs: torch.Tensor) -> torch.Tensor:
    """obs (..., S) -> (..., S) bool: the dimensions more than ``MAX_STATE_Z`` scales from the model's ``state_reach``
    (or not finite)."""
    centre, scale = model.state_reach()
    return ~((obs - centre).abs() <= MAX_STATE_Z * scale)


def known_state(model: WorldModel | FoldedModel, obs: torch.Tensor) -> torch.Tensor:
    """obs (..., S) -> (...) bool: no dimension ``beyond_reach``: a state the planner scores plans from."""
    return ~beyond_reach(model, obs).any(-1)


def member_returns(imagined: Imagined, discount: float, value=None, pessimism: float = 0.0,
                   value_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per member and sequence (E, N): the discounted imagined reward, and the terminal value
    ``discount^H * V(last state)`` (zeros without a ``value``, an ``ActorCritic``; ``pessimism``: ``value.value``'s),
    times ``value_weight`` where given (the value guard's 0 or 1)."""
    ret = imagined.returns(discount)
    if value is None:
        return ret, torch.zeros_like(ret)
    term = discount ** imagined.rewards.shape[-1] * value.value(imagined.last, pessimism)
    return ret, term if value_weight is None else term * value_weight


def state_disagreement(imagined: Imagined, scale: torch.Tensor) -> torch.Tensor:
    """Per sequence (N,): how much the members disagree on where it leads, the std over members of each
    imagined state dimension in units of ``scale`` (the data's std), averaged over dimensions and summed
    over the horizon. Nonzero before any reward is seen: the novelty an exploring planner seeks."""
    return (imagined.states[:, :, 1:] / scale).std(0, unbiased=False).mean(-1).sum(-1)


def goal_distance(states: torch.Tensor, goal: torch.Tensor, weights: torch.Tensor, discount: float) -> torch.Tensor:
    """(..., H, S) states after each action -> (...): the weighted distance to ``goal`` (S,),
    sqrt(sum_d weights_d (s_d - goal_d)^2), summed over the horizon with ``discount^t``. Zero when every
    state is at the goal (on the weighted dimensions), growing with the distance and the time away."""
    dist = ((states - goal) ** 2 * weights).sum(-1).clamp_min(0).sqrt()
    h = states.shape[-2]
    return (dist * discount ** torch.arange(h, dtype=dist.dtype, device=dist.device)).sum(-1)


def score_sequences(model: WorldModel | FoldedModel, obs: torch.Tensor, actions: torch.Tensor,
                    discount: float = 1.0, value=None, novelty_weight: float = 0.0,
                    obs_scale: torch.Tensor | None = None, goal: torch.Tensor | None = None,
                    goal_weights: torch.Tensor | None = None, reward_weight: float = 1.0,
                    pessimism: float = 0.0, value_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The planner's objective: over members, the mean of imagined return plus terminal value, and its
    spread (std over members), each (N,); NaN from a state outside the model's reach (``known_state``). A ``novelty_weight`` (exploring episodes only) adds that many
    times the members' ``state_disagreement`` (in units of ``obs_scale``) to the objective.

    With a ``goal`` (S,) and its ``goal_weights`` (S,), each member's total is ``reward_weight`` x (return
    + value) minus ``goal_distance`` of its imagined states (``reward_weight`` 0: the goal alone).
    ``value_weight`` (a () tensor) scales the terminal value: the value guard's 0 plans on imagined reward alone."""
    imagined = imagine(model, obs, actions, keep_states=novelty_weight > 0 or goal is not None)
    if goal is None or reward_weight > 0:
        ret, term = member_returns(imagined, discount, value, pessimism, value_weight)
        total = ret + term
    if goal is not None:
        cost = goal_distance(imagined.states[:, :, 1:], goal, goal_weights, discount)
        total = reward_weight * total - cost if reward_weight > 0 else -cost
    objective = total.mean(0)
    if novelty_weight > 0:
        objective = objective + novelty_weight * state_disagreement(imagined, obs_scale)
    # from a state no robot can be in, no future is scored: the planner reports valid=False and falls back
    objective = torch.where(known_state(model, obs), objective, torch.full_like(objective, float("nan")))
    return objective, total.std(0, unbiased=False)
