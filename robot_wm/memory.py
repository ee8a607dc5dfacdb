"""Memory estimates from the config alone, checked before anything is built or written: a planner or a
model that cannot fit is refused with the fields that size it, instead of failing minutes later."""

from __future__ import annotations

from itertools import pairwise

import torch

from robot_wm.config import RunConfig
from robot_wm.sysmem import MEMORY_SHARE, available_memory


def planner_memory_bytes(cfg: RunConfig, obs_dim: int, act_dim: int) -> int:
    """An upper estimate of the memory one planning step needs, from the config alone (``planner_step_bytes``)."""
    p, m, v = cfg.planner, cfg.model, cfg.value
    return planner_step_bytes(p.samples, p.horizon, p.iterations, obs_dim, act_dim, m.elites, m.hidden,
                              v.q_heads if v.enabled else 0, v.hidden)


def planner_step_bytes(samples: int, horizon: int, iterations: int, obs_dim: int, act_dim: int, members: int,
                       hidden: int, q_heads: int = 0, value_hidden: int = 0) -> int:
    """An upper estimate of the memory one planning step needs (float32): the noise and its coloured copy
    (iterations x samples x horizon x action), the candidates and elites, and for every planning member its live
    layer activations and the imagined states and rewards over the horizon, plus the Q heads' activations of the
    value (``q_heads`` 0: none); and the coloured-noise filter (horizon x horizon, a few copies: at horizon 100,000 it
    asked for 40 GB before any check). Torch-free: export writes it into a planner's metadata."""
    n, h = samples, horizon
    per_sample = (2 * iterations * h * act_dim + 3 * h * act_dim + members * (3 * hidden + 2 * (obs_dim + 1) * h)
                  + members * q_heads * 3 * value_hidden)
    return 4 * n * per_sample + 4 * 3 * h * h


def _mlp_params(dims: list[int]) -> int:
    return sum((i + 1) * o for i, o in pairwise(dims))


def training_memory_bytes(cfg: RunConfig, obs_dim: int, act_dim: int) -> int:
    """An estimate of what training holds (float32): every weight of the world-model ensemble and of the
    value (its Q heads, their target copy and the policy) four times over (weights, gradients, Adam's two
    moments), plus each batch's activations kept for the backward pass."""
    m, v = cfg.model, cfg.value
    world = m.ensemble_size * _mlp_params([obs_dim + act_dim] + [m.hidden] * m.layers + [2 * (obs_dim + 1)])
    acts = m.ensemble_size * m.batch_size * (m.hidden * m.layers + 2 * (obs_dim + 1)) * 2
    if v.enabled:
        q = v.q_heads * _mlp_params([obs_dim + act_dim] + [v.hidden] * v.layers + [1])
        pi = _mlp_params([obs_dim] + [v.hidden] * v.layers + [2 * act_dim])
        world += 2 * q + pi  # the target Q heads carry no gradients or moments: counted twice, not once more
        acts += v.batch_size * (v.q_heads + 1) * v.hidden * v.layers * 2
    return 4 * (4 * world + acts)


def _largest(cfg: RunConfig, fields: list[str], estimate, obs_dim: int, act_dim: int) -> str:
    """"FIELD (the default is D)" for the field of ``fields`` whose default alone lowers ``estimate`` most: the
    advice named model.hidden where model.layers=200000 was the cause (tenth probe)."""
    from robot_wm.config import flat

    defaults, best = flat(RunConfig()), None
    for name in fields:
        section, key = name.split(".")
        part = getattr(cfg, section).model_copy(update={key: defaults[name]})
        need = estimate(cfg.model_copy(update={section: part}), obs_dim, act_dim)
        if best is None or need < best[0]:
            best = (need, name)
    return f"{best[1]} (the default is {defaults[best[1]]})"


def check_memory(cfg: RunConfig, obs_dim: int, act_dim: int, available: int | None = None,
                 parts: tuple[str, ...] = ("planner", "training")) -> None:
    """Refuse a planner (``planner_memory_bytes``) or a training (``training_memory_bytes``) whose estimate
    exceeds MEMORY_SHARE of the memory available, naming the fields that size it. ``parts``: what the command
    runs (an `eval` refused by the training estimate could not lower what it named: review of session 20)."""
    if cfg.device.startswith("cuda") and available is None and torch.cuda.is_available():
        available = torch.cuda.mem_get_info()[0]
    available = available_memory() if available is None else available
    if available is None:
        return
    p, m, v = cfg.planner, cfg.model, cfg.value
    shape = f"{obs_dim}-dimensional state, {act_dim}-dimensional action"
    budget = f"more than {MEMORY_SHARE:.0%} of the {available / 1e9:.1f} GB available on {cfg.device}"
    need = planner_memory_bytes(cfg, obs_dim, act_dim) if "planner" in parts else 0
    if need > MEMORY_SHARE * available:
        names = ["planner.samples", "planner.horizon", "planner.iterations", "model.elites", "model.hidden",
                 "model.layers", *(["value.q_heads", "value.hidden", "value.layers"] if v.enabled else [])]
        fields = ", ".join(f"{n}={getattr(getattr(cfg, n.split('.')[0]), n.split('.')[1])}" for n in names)
        raise ValueError(f"the planner would need about {need / 1e9:.1f} GB ({fields}; {shape}), {budget}: lower "
                         f"{_largest(cfg, names, planner_memory_bytes, obs_dim, act_dim)} or the others")
    need = training_memory_bytes(cfg, obs_dim, act_dim) if "training" in parts else 0
    if need > MEMORY_SHARE * available:
        names = ["model.ensemble_size", "model.hidden", "model.layers", "model.batch_size",
                 *(["value.q_heads", "value.hidden", "value.layers", "value.batch_size"] if v.enabled else [])]
        fields = ", ".join(f"{n}={getattr(getattr(cfg, n.split('.')[0]), n.split('.')[1])}" for n in names)
        raise ValueError(f"training would need about {need / 1e9:.1f} GB ({fields}; {shape}), {budget}: lower "
                         f"{_largest(cfg, names, training_memory_bytes, obs_dim, act_dim)} or the others")
