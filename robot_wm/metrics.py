"""Multi-step prediction error on held-out episode segments."""

from __future__ import annotations

import numpy as np
import torch

from robot_wm.data.episode import Episode
from robot_wm.model.ensemble import WorldModel
from robot_wm.model.imagine import imagine
from robot_wm.model.normalizer import Normalizer


@torch.no_grad()
def multistep_error(model: WorldModel, segments: list[Episode], horizons: tuple[int, ...],
                    units: Normalizer | None = None) -> dict[int, float]:
    """Mean squared error (in normalised observation units) of the ensemble-mean prediction after
    k open-loop steps driven by the recorded actions, from every start that fits. NaN where no
    held-out segment is long enough. ``units``: the normaliser that sets the units (the model's own by
    default); give two models the same one to compare them (each training refits its own)."""
    device = model.action_low.device
    out = {}
    for k in sorted(set(horizons)):
        starts, acts, targets = [], [], []
        for ep in segments:
            for t in range(len(ep) - k + 1):
                starts.append(ep.obs[t])
                acts.append(ep.action[t:t + k])
                targets.append(ep.obs[t + k])
        if not starts:
            out[k] = float("nan")
            continue
        obs = torch.as_tensor(np.array(starts), device=device)
        pred = imagine(model, obs, torch.as_tensor(np.array(acts), device=device), keep_states=True).states[:, :, -1].mean(0)
        err = (pred - torch.as_tensor(np.array(targets), device=device)) / (model.obs_norm if units is None else units).std
        out[k] = float((err**2).mean())
    return out
