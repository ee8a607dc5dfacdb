"""Counterfactual queries: "what if I did this instead?" For one state and K candidate action
sequences, the world model's predicted trajectories, rewards, returns and disagreement."""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robot_wm.goal import MAX_REWARD_WEIGHT, Goal, check_goal
from robot_wm.model.ensemble import MAX_STATE_Z, WorldModel
from robot_wm.model.imagine import beyond_reach, goal_distance, imagine, member_returns
from sim.spec import as_floats


@dataclass
class WhatIfResult:
    states: np.ndarray         # (K, H+1, S) ensemble-mean predicted trajectory
    member_states: np.ndarray  # (E, K, H+1, S) every member's trajectory
    rewards: np.ndarray        # (K, H) ensemble-mean predicted reward
    returns: np.ndarray        # (K,) the planner's score: discounted imagined reward + terminal value, mean over members
    return_spread: np.ndarray  # (K,) std over members of that score
    reward_return: np.ndarray  # (K,) its imagined-reward part
    terminal_value: np.ndarray  # (K,) its value part, discount^H * V(last state) (zeros without a value)
    disagreement: np.ndarray   # (K, H) mean over state dims of the std over members, per step
    goal_cost: np.ndarray      # (K,) its goal part, the discounted distance to the goal (zeros without a goal)

    def ranking(self) -> np.ndarray:
        """Candidate indices, best predicted return first."""
        return np.argsort(-self.returns, kind="stable")


MAX_HORIZON = 10_000  # steps ahead per query: ten 1,000-step episodes (as `whatif --horizon`)
MAX_IMAGINED_STEPS = 1_000_000  # K x H per query: a few seconds on 2 cores, not minutes


def check_query(model: WorldModel, state, actions) -> tuple[np.ndarray, np.ndarray]:
    """Validate a query; errors name the bad value and what was expected."""
    s, a = model.spec.obs_dim, model.spec.act_dim
    # float64 first: 1e300 became inf in float32 and was reported as "NaN/Inf", not out of bounds (probe 15)
    state, actions = as_floats(state, "state", np.float64), as_floats(actions, "actions", np.float64)
    if state.shape != (s,):
        raise ValueError(f"state has shape {state.shape}, expected ({s},)")
    if not np.all(np.isfinite(state)):
        raise ValueError(f"state holds NaN/Inf: {state.tolist()}")
    if actions.ndim == 2:
        actions = actions[None]
    if actions.ndim != 3 or actions.shape[-1] != a or actions.shape[1] < 1 or actions.shape[0] < 1:  # (0, H, A): NaN
        raise ValueError(f"actions have shape {actions.shape}, expected (K, H, {a})")
    if actions.shape[1] > MAX_HORIZON or actions.shape[0] * actions.shape[1] > MAX_IMAGINED_STEPS:
        raise ValueError(f"actions have shape {actions.shape}: at most {MAX_HORIZON} steps ahead and "
                         f"{MAX_IMAGINED_STEPS:,} imagined steps (K x H) per query")
    if not np.all(np.isfinite(actions)):
        raise ValueError("actions hold NaN/Inf")
    lo, hi = model.action_low.cpu().numpy(), model.action_high.cpu().numpy()
    bad = (actions < lo - 1e-6) | (actions > hi + 1e-6)
    if bad.any():
        k, t, j = np.argwhere(bad)[0]
        raise ValueError(f"action[{k}, {t}, {j}] = {actions[k, t, j]:.4g} is outside the bounds "
                         f"[{lo[j]:.4g}, {hi[j]:.4g}]")
    if np.abs(state).max() > np.finfo(np.float32).max:
        raise ValueError(f"state holds values beyond float32 (largest {np.abs(state).max():.4g})")
    far = beyond_reach(model, torch.as_tensor(state, dtype=torch.float64, device=model.action_low.device))
    if far.any():  # the planner scores no plan from it either
        j = int(far.to(torch.uint8).argmax())
        centre, scale = (float(x[j]) for x in model.state_reach())
        raise ValueError(f"state[{j}] = {state[j]:.4g} lies more than {MAX_STATE_Z:g} of the data's std "
                         f"({scale:.4g}) from its mean ({centre:.4g}): no state the model can score (the "
                         "planner falls back from it)")
    return state.astype(np.float32), actions.astype(np.float32)


MAX_ACTIONS_BYTES = 64 << 20
"""A candidate file (``--actions``) larger than this is refused before it is read."""


WHATIF_STREAM = 0x77686174
"""Mixed into ``--seed`` for whatif's random candidates ("what")."""


def candidates(recorded: np.ndarray, low: np.ndarray, high: np.ndarray, random: int = 8, seed: int = 0,
               actions_file: str | None = None) -> tuple[list[str], np.ndarray]:
    """The what-if candidates of horizon H = ``len(recorded)``, named: ``recorded`` (the episode's own
    actions), ``file[i]`` (the first H steps of each sequence of an .npy file (K, >=H, A) or (>=H, A)),
    ``zero``, and ``random[i]`` (``random`` uniform draws in the bounds from ``seed``). Returns the names
    and the sequences (K, H, A)."""
    from robot_wm.io import load_npy

    h, a = len(recorded), len(low)
    if random < 0:
        raise ValueError(f"--random {random}: expected 0 or more")
    names, seqs = ["recorded"], [np.asarray(recorded, np.float64)]
    if actions_file:
        try:
            extra = load_npy(Path(actions_file), "--actions", MAX_ACTIONS_BYTES)
        except FileNotFoundError:
            raise ValueError(f"--actions {actions_file!r} does not exist") from None
        extra = extra[None] if extra.ndim == 2 else extra
        if extra.ndim != 3 or extra.shape[1] < h or extra.shape[2] != a or not len(extra):  # (0, H, A): none, no word
            raise ValueError(f"--actions {actions_file!r} holds {extra.shape} {extra.dtype}; expected "
                             f"(K, H, {a}) with K >= 1 sequences and H >= {h} (the horizon)")
        if len(extra) * h > MAX_IMAGINED_STEPS:  # 3,000,000 sequences took 27 s and 2 GB before check_query (probe 28)
            raise ValueError(f"--actions {actions_file!r} holds {len(extra):,} sequences: at most "
                             f"{MAX_IMAGINED_STEPS:,} imagined steps (K x H = {len(extra):,} x {h}) per query")
        used = extra[:, :h].astype(np.float64)  # checked here, naming the file and its own indices (probe 11)
        bad = ~np.isfinite(used) | (used < low - 1e-6) | (used > high + 1e-6)
        if bad.any():
            k, t, j = np.argwhere(bad)[0]
            raise ValueError(f"--actions {actions_file!r}: sequence {k}, step {t}, action {j} is {used[k, t, j]:.4g}; "
                             f"expected a finite number within the bounds [{low[j]:.4g}, {high[j]:.4g}]")
        names += [f"file[{i}]" for i in range(len(extra))]
        seqs += list(extra[:, :h].astype(np.float64))
    # a stream of its own: default_rng(seed) is the one a run's random seed episodes draw from, so random[0] was the
    # recorded actions of episode 0 exactly (probe 32)
    rng = np.random.default_rng([seed, WHATIF_STREAM])
    names += ["zero"] + [f"random[{i}]" for i in range(random)]
    seqs += [np.zeros((h, a))] + [rng.uniform(low, high, (h, a)) for _ in range(random)]
    return names, np.stack(seqs)


@torch.no_grad()
def what_if(model: WorldModel, state, actions, discount: float = 1.0, value=None, goal: Goal | None = None,
            reward_weight: float = 1.0, pessimism: float = 0.0) -> WhatIfResult:
    """Score candidate futures exactly as the planner does: with a ``value`` (an ``ActorCritic``) the
    terminal value is added per member (its heads' mean less ``pessimism`` x their std, as
    ``planner.value_pessimism``) and the value's discount replaces ``discount``; with a ``goal``
    the score is ``reward_weight`` x (reward + value) minus the goal distance (pass no value toward a goal
    alone, as the planner plans then)."""
    state, actions = check_query(model, state, actions)
    if value is not None:  # another task's value was torch's size mismatch, a model an AttributeError (probe 15)
        from robot_wm.model.value import ActorCritic

        if not isinstance(value, ActorCritic):
            raise ValueError(f"value={reprlib.repr(value)}: expected the run's ActorCritic (or None)")
        if (value.spec.obs_dim, value.spec.act_dim) != (model.spec.obs_dim, model.spec.act_dim):
            raise ValueError(f"the value is for states of {value.spec.obs_dim} and actions of {value.spec.act_dim} "
                             f"values, the model's are {model.spec.obs_dim} and {model.spec.act_dim}: a value of "
                             "another task?")
    # the eighth probe: discount=True was taken as 1, a goal of the wrong size was a torch traceback, a NaN goal
    # or reward_weight=nan gave NaN scores (or silently dropped the reward)
    if isinstance(discount, bool) or not (isinstance(discount, int | float | np.floating) and 0 < discount <= 1):
        raise ValueError(f"discount={discount!r}: expected a number in (0, 1]")
    if isinstance(pessimism, bool) or not (isinstance(pessimism, int | float | np.floating) and 0 <= pessimism <= 10):
        raise ValueError(f"pessimism={pessimism!r}: expected a number from 0 to 10 (planner.value_pessimism)")
    if isinstance(reward_weight, bool) or not (isinstance(reward_weight, int | float | np.floating)
                                               and 0 <= reward_weight <= MAX_REWARD_WEIGHT):
        raise ValueError(f"reward_weight={reward_weight!r}: expected a number from 0 to {MAX_REWARD_WEIGHT:g} (as "
                         "goal.reward_weight)")
    if goal is not None:
        try:
            if isinstance(goal, str | bytes):  # "up" unpacked into 'u' and 'p'
                raise TypeError
            g_state, g_weights = goal
        except (TypeError, ValueError):
            raise ValueError(f"goal={reprlib.repr(goal)}: expected a Goal (state, weights)") from None
        goal = check_goal(g_state, g_weights, model.spec.obs_dim)
    device = model.action_low.device
    out = imagine(model, torch.as_tensor(state, device=device), torch.as_tensor(actions, device=device),
                  keep_states=True)
    if value is not None:
        discount = value.spec.discount
    rew, term = member_returns(out, discount, value, float(pessimism))
    ret = rew + term
    states = out.states
    cost = torch.zeros_like(ret)
    if goal is not None:
        g, w = (torch.as_tensor(v, device=device) for v in goal)
        cost = goal_distance(states[:, :, 1:], g, w, discount)
        ret = reward_weight * ret - cost if reward_weight > 0 else -cost
    if not torch.isfinite(ret).all():  # a finite but huge state (1e38) overflowed the model: NaN scores, no error
        raise ValueError(f"the imagined futures from this state overflowed (largest state value "
                         f"{np.abs(state).max():.3g}): expected a state of the scale the model was trained on")
    return WhatIfResult(
        states=states.mean(0).cpu().numpy(),
        member_states=states.cpu().numpy(),
        rewards=out.rewards.mean(0).cpu().numpy(),
        returns=ret.mean(0).cpu().numpy(),
        return_spread=ret.std(0, unbiased=False).cpu().numpy(),
        reward_return=rew.mean(0).cpu().numpy(),
        terminal_value=term.mean(0).cpu().numpy(),
        disagreement=states[:, :, 1:].std(0, unbiased=False).mean(-1).cpu().numpy(),
        goal_cost=cost.mean(0).cpu().numpy(),
    )
