"""Fit the ensemble on a dataset: Gaussian NLL on bootstrapped minibatches, held-out validation,
early stopping, elite selection."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from robot_wm.config import ModelConfig
from robot_wm.data.dataset import EpisodeDataset, Transitions, concat
from robot_wm.model.checkpoint import TrainingDivergedError
from robot_wm.model.ensemble import WorldModel, WorldModelSpec


@dataclass
class TrainReport:
    epochs: int
    train_nll: list[float]           # per member, last epoch
    val_mse: list[float]             # per member, best snapshot (normalised targets)
    elites: list[int]
    history: list[dict] = field(default_factory=list)  # per epoch: train nll and val mse per member


DIVERGED_RATIO = 100.0
"""A round whose best member's validation error exceeds this many times that of predicting the training targets'
mean (at least 1, in normalised units) diverged. Against the mean predictor, not an absolute bound: a target that
barely moves in training (an object at rest) and moves once in the held-out segment gives a large error to any model."""


def new_model(obs_dim: int, act_dim: int, low, high, cfg: ModelConfig, device: str = "cpu") -> WorldModel:
    spec = WorldModelSpec(obs_dim, act_dim, cfg.ensemble_size, cfg.hidden, cfg.layers, cfg.activation)
    return WorldModel(spec, torch.tensor(np.asarray(low)), torch.tensor(np.asarray(high))).to(device)


def _tensors(t: Transitions, device: str) -> tuple[torch.Tensor, ...]:
    return tuple(torch.as_tensor(x, device=device) for x in (t.obs, t.action, t.reward, t.next_obs))


def train_model(model: WorldModel, dataset: EpisodeDataset, cfg: ModelConfig, seed: int,
                progress: bool = True) -> TrainReport:
    """Train ``model`` in place (continuing from its weights) and return the report."""
    return fit_model(model, *dataset.split(cfg.val_fraction), cfg, seed, progress)


def fit_model(model: WorldModel, train_t: Transitions, val_eps: list, cfg: ModelConfig, seed: int,
              progress: bool = True, norm_from: Transitions | None = None) -> TrainReport:
    """``train_model`` on given training transitions and held-out segments (e.g. a weighted mixture).
    The input and target normalisers are fitted on ``norm_from`` (default ``train_t``): a mixture's own
    statistics are those of its repeated robot rows, one gait, and planning off it went wrong (cheetah-run,
    docs/results.md: adaptation)."""
    device = model.action_low.device
    obs, act, rew, nxt = _tensors(train_t, device)
    n_obs, _, n_rew, n_nxt = _tensors(norm_from, device) if norm_from is not None else (obs, act, rew, nxt)
    model.obs_norm.fit(n_obs)
    model.target_norm.fit(model.targets(n_obs, n_nxt, n_rew))
    x, y = model.inputs(obs, act), model.target_norm.normalize(model.targets(obs, nxt, rew))
    if val_eps:
        vo, va, vr, vn = _tensors(concat(val_eps), device)
        vx, vy = model.inputs(vo, va), model.target_norm.normalize(model.targets(vo, vn, vr))
    else:
        vx, vy = x, y

    gen = torch.Generator(device="cpu").manual_seed(seed)
    e, n = model.members, len(x)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batch = min(cfg.batch_size, n)
    best, best_state, stale, history = float("inf"), None, 0, []
    bar = tqdm(range(cfg.max_epochs), desc="train model", leave=False, disable=not progress)
    for epoch in bar:
        model.train()
        boot = torch.randint(n, (e, n), generator=gen).to(device)  # one bootstrap resample per member
        nll_sum = torch.zeros(e, device=device)
        for start in range(0, n, batch):
            idx = boot[:, start:start + batch]
            mean, logvar = model(x[idx])
            inv_var = torch.exp(-logvar)
            nll = (((mean - y[idx]) ** 2) * inv_var + logvar).mean(dim=(1, 2))
            loss = nll.sum() + 0.01 * (model.max_logvar.sum() - model.min_logvar.sum())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            nll_sum += nll.detach() * idx.shape[1]
        val = validation_mse(model, vx, vy)
        history.append({"epoch": epoch, "train_nll": (nll_sum / n).tolist(), "val_mse": val.tolist()})
        score = float(val.mean())
        bar.set_postfix(val_mse=f"{score:.4f}")
        if best_state is None or score < best * (1 - 1e-3):
            best, best_state, stale = score, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    val = validation_mse(model, vx, vy)
    finite = val[torch.isfinite(val)]
    mean_only = float((vy**2).mean())  # predicting the training targets' mean: ~1, more where validation goes elsewhere
    best = float(finite.min()) if len(finite) else float("inf")
    if not best <= DIVERGED_RATIO * max(mean_only, 1.0):
        # model.lr=10 wrote a round with an error of 6e19 and 'n/a' multi-step errors, exit 0 (probe 13)
        raise TrainingDivergedError(
            f"training diverged: validation error {best:.3g} (normalised), against {mean_only:.3g} for predicting the "
            f"mean; nothing was saved. Lower the learning rate (model.lr={cfg.lr}) or check the data's scale (a reward "
            "or observe function of your own returning huge values)")
    elites = sorted(np.argsort(val.cpu().numpy())[: min(cfg.elites, e)].tolist())
    return TrainReport(len(history), history[-1]["train_nll"], val.tolist(), elites, history)


@torch.no_grad()
def validation_mse(model: WorldModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.eval()
    mean, _ = model(x.unsqueeze(0).expand(model.members, *x.shape))
    return ((mean - y) ** 2).mean(dim=(1, 2))
