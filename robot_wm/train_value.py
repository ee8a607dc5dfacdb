"""Temporal-difference learning of the Q ensemble and the policy on replay transitions.

Targets: ``y = R_n + discount^m * min over two heads of Q_target(s_{t+m}, a')`` with ``a' ~ pi(s_{t+m})``
(two random heads when there are more, as TD-MPC2 does), where ``R_n`` is the discounted sum of the next
``m = min(n, steps left in the episode)`` rewards: n-step returns carry reward back n times faster per
update than one-step ones. The policy maximises the mean over heads of Q(s, pi(s))
plus a small entropy bonus. The target heads follow the online ones by Polyak averaging. Targets are
clipped to the returns the task can pay (``ActorCritic.clip``), as the planner's value is.
Suite episodes end by time limit only, so every stored transition bootstraps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from robot_wm.data.episode import Episode
from robot_wm.model.imagine import known_state
from robot_wm.model.value import ActorCritic


@dataclass
class TDData:
    """What TD learning trains on, one row per stored transition (s_t, a_t)."""

    obs: np.ndarray       # (N, S) s_t
    action: np.ndarray    # (N, A) a_t
    ret: np.ndarray       # (N,) discounted reward of the next m steps
    next_obs: np.ndarray  # (N, S) s_{t+m}, the state to bootstrap from
    discount: np.ndarray  # (N,) discount^m

    def __len__(self) -> int:
        return len(self.action)

    @classmethod
    def from_episodes(cls, episodes: list[Episode], n: int, discount: float) -> TDData:
        """n-step rows of every episode, cut short at its end (time-limit ends bootstrap: nothing in a
        suite episode terminates). A diverged episode's last stored transition is a valid one."""
        if n < 1:
            raise ValueError(f"n-step horizon n={n} must be at least 1")
        if not 0 < discount <= 1:  # 1.5 was accepted (tenth probe)
            raise ValueError(f"discount={discount!r} must be in (0, 1]")
        rows = []
        for ep in (e for e in episodes if len(e)):
            t_len = len(ep)
            t = np.arange(t_len)
            m = np.minimum(n, t_len - t)
            padded = np.concatenate([ep.reward.astype(np.float64), np.zeros(n)])
            ret = sum(discount**k * padded[t + k] * (k < m) for k in range(n))
            rows.append((ep.obs[:-1], ep.action, ret, ep.obs[t + m], discount ** m.astype(np.float64)))
        if not rows:
            raise ValueError("no transitions: the dataset is empty")
        cols = [np.concatenate(c) for c in zip(*rows)]
        return cls(*(np.asarray(c, dtype=np.float32) for c in cols))

    @classmethod
    def concat(cls, parts: list[TDData]) -> TDData:
        """The rows of ``parts``, in order, in one copy."""
        return cls(*(np.concatenate(c) for c in zip(*((p.obs, p.action, p.ret, p.next_obs, p.discount) for p in parts))))

    def states(self) -> np.ndarray:
        """(N + 1, S): every row's state and the last row's bootstrap state, what the value's normaliser is fitted
        on by default."""
        return np.concatenate([self.obs, self.next_obs[-1:]])


IMAGINED_CHUNK = 16384
"""Starts rolled out at once by ``with_imagined``."""


def with_imagined(rows: TDData, model, ac: ActorCritic, steps: int, seed: int) -> tuple[TDData, int]:
    """``rows`` and, with ``steps`` > 0, the ``imagined_rows`` of ``steps`` steps from ceil(len(rows) / steps) of
    their states drawn at random (about as many rows as stored ones; ``value.imagined_steps``); and how many were
    imagined."""
    if not steps:
        return rows, 0
    pick = np.random.default_rng(seed).choice(len(rows), -(-len(rows) // steps))
    # in chunks of starts: every member predicts every row, so memory grows with members x starts; the torch seed is
    # kept clear of the ones train_value gets (seed + round + 1)
    chunks = [imagined_rows(model, ac, rows.obs[pick[i:i + IMAGINED_CHUNK]], steps, seed=seed + 1_000_003 + i)
              for i in range(0, len(pick), IMAGINED_CHUNK)]
    return TDData.concat([rows, *chunks]), sum(len(c) for c in chunks)


@torch.no_grad()
def imagined_rows(model, ac: ActorCritic, starts: np.ndarray, horizon: int, seed: int) -> TDData:
    """Dyna: one-step TD rows imagined by the world ``model`` (a ``WorldModel``, its elites) from the states
    ``starts`` (N, S), ``horizon`` steps each, the actions drawn from the policy with its own noise and each step
    predicted by one member drawn at random (the ensemble's spread becomes the rows' spread). The rewards are
    the model's. A start beyond the model's reach (``known_state``), a step that leaves it or is not finite, and
    every later step of that rollout, give no rows: the value learns nothing from states the model cannot speak for."""
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon={horizon!r} must be a whole number >= 1 (imagined steps per start)")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    device = ac.action_low.device
    s = torch.as_tensor(starts, dtype=torch.float32, device=device)
    n, e = len(s), model.members
    alive = known_state(model, s)  # a start beyond reach (a robot's odd state) gives no row at all
    cols: list[list[torch.Tensor]] = [[], [], [], [], []]
    d = torch.full((n,), ac.spec.discount, device=device)
    for _ in range(horizon):
        a, _ = ac.policy(s, torch.randn(n, ac.spec.act_dim, generator=gen).to(device))
        nxt, r = model.step(s.expand(e, n, s.shape[-1]), a.expand(e, n, a.shape[-1]))
        pick = torch.randint(e, (n,), generator=gen).to(device)
        nxt, r = nxt[pick, torch.arange(n)], r[pick, torch.arange(n)]
        alive &= known_state(model, nxt) & torch.isfinite(r)
        for c, x in zip(cols, (s, a, r, nxt, d)):
            c.append(x[alive])
        s = torch.where(alive[:, None], nxt, s)
    return TDData(*(torch.cat(c).cpu().numpy().astype(np.float32) for c in cols))


@dataclass
class ValueReport:
    updates: int
    q_loss: float       # mean squared TD error over the last 10% of updates, in units of value_scale^2
    pi_loss: float
    mean_q: float       # mean Q(s, a) over the last batch, return units
    train_s: float


def td_targets(ret: torch.Tensor, next_q: torch.Tensor, discount: torch.Tensor | float) -> torch.Tensor:
    """TD target per row: n-step reward ``ret`` (B,), bootstrap value ``next_q`` (B,), its discount -> (B,)."""
    return ret + discount * next_q


def _pick_two(heads: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randperm(heads, generator=gen)[:2]


@dataclass
class ValueOptimizers:
    """The Adam optimizers of one ``ActorCritic``'s Q ensemble and policy, kept from one training round to the
    next: a fresh Adam's first steps move every weight by about the learning rate whatever its gradient, and a
    round is only ~100 updates on cartpole."""

    ac: ActorCritic
    q: torch.optim.Adam
    pi: torch.optim.Adam

    @classmethod
    def new(cls, ac: ActorCritic, lr: float) -> ValueOptimizers:
        return cls(ac, torch.optim.Adam(ac.q.parameters(), lr=lr, foreach=True),
                   torch.optim.Adam(ac.pi.parameters(), lr=lr, foreach=True))


def train_value(ac: ActorCritic, data: TDData, cfg, updates: int, seed: int, progress: bool = True,
                norm_from: np.ndarray | None = None, optimizers: ValueOptimizers | None = None) -> ValueReport:
    """``updates`` gradient steps on minibatches of ``data`` (in place). ``cfg`` is a ``ValueConfig``.
    The state normaliser is fitted on the states ``norm_from`` (N, S) (default: ``data``'s, those of a
    weighted mixture repeat the robot's). ``optimizers``: continue those of earlier rounds (made for
    ``ac``); fresh ones otherwise."""
    if optimizers is not None and optimizers.ac is not ac:
        raise ValueError("optimizers were made for another ActorCritic: their moments belong to its weights")
    if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:  # -5 gave a report of NaN losses
        raise ValueError(f"updates={updates!r} must be a whole number >= 0")
    device = ac.action_low.device
    obs, act, rew, nxt, disc = (torch.as_tensor(x, device=device) for x in (data.obs, data.action, data.ret,
                                                                            data.next_obs, data.discount))
    ac.obs_norm.fit(torch.as_tensor(data.states() if norm_from is None else norm_from, device=device))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    opts = optimizers or ValueOptimizers.new(ac, cfg.lr)
    opt_q, opt_pi = opts.q, opts.pi
    scale = ac.spec.value_scale
    n, batch = len(obs), min(cfg.batch_size, len(obs))
    q_hist, pi_hist, mean_q = [], [], float("nan")
    t0 = time.perf_counter()
    ac.train()
    for _ in tqdm(range(updates), desc="train value", leave=False, disable=not progress):
        idx = torch.randint(n, (batch,), generator=gen).to(device)
        o, a, r, o2, d = obs[idx], act[idx], rew[idx], nxt[idx], disc[idx]
        with torch.no_grad():
            eps = torch.randn(o2.shape[0], a.shape[-1], generator=gen).to(device)
            a2, _ = ac.policy(o2, eps)
            q2 = ac.q_values(o2, a2, target=True)[_pick_two(ac.spec.q_heads, gen)].min(0).values
            y = ac.clip(td_targets(r, q2, d))
        q = ac.q_values(o, a)
        q_loss = (((q - y) / scale) ** 2).mean()
        opt_q.zero_grad(set_to_none=True)
        q_loss.backward()
        opt_q.step()

        eps = torch.randn(o.shape[0], a.shape[-1], generator=gen).to(device)
        a_pi, logp = ac.policy(o, eps)
        q_pi = ac.q_values(o, a_pi).mean(0) / scale
        pi_loss = (cfg.entropy_coef * logp - q_pi).mean()
        opt_pi.zero_grad(set_to_none=True)
        opt_q.zero_grad(set_to_none=True)
        pi_loss.backward()
        opt_pi.step()
        ac.update_target(cfg.tau)
        q_hist.append(float(q_loss.detach()))
        pi_hist.append(float(pi_loss.detach()))
        mean_q = float(q.detach().mean())
    ac.eval()
    tail = max(1, len(q_hist) // 10)
    q_tail, pi_tail = (float(np.mean(h[-tail:])) if h else float("nan") for h in (q_hist, pi_hist))
    return ValueReport(updates, q_tail, pi_tail, mean_q, time.perf_counter() - t0)
