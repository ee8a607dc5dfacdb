"""Run a policy for one episode and record it; collect episodes into a dataset on disk."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from robot_wm.data.episode import Episode
from sim.env import STEP_UNIT, Env
from sim.spec import as_floats

log = logging.getLogger(__name__)


StepHook = Callable[[int, np.ndarray, np.ndarray, float, np.ndarray], None]
"""on_step(t, obs, action, reward, next_obs), called after every stored control step."""


def run_episode(env: Env, policy, seed: int, on_step: StepHook | None = None,
                meta: dict | None = None) -> Episode | None:
    """One episode of ``policy`` in ``env``. A diverged physics step is dropped (never stored as a
    transition) and ends the episode; ``meta['diverged']`` records it. Returns None if the very
    first step diverged (nothing to store)."""
    obs = env.reset(seed)
    policy.reset()
    observations, states, actions, rewards = [obs], [env.get_state()], [], []
    diverged, plan_time = False, 0.0
    for t in range(env.max_control_steps):
        t0 = time.perf_counter()
        # a string '0.5' was driven as 0.5 and None reported as "not finite" (tenth probe)
        who = f"the action of policy {getattr(policy, 'name', type(policy).__name__)!r}"
        action = as_floats(policy.act(obs), who, np.float64)
        if action.shape != env.action_spec.low.shape:  # [[0.3]] was driven a whole episode, then refused (probe 17)
            raise ValueError(f"{who} has shape {action.shape}, expected {env.action_spec.low.shape}")
        plan_time += time.perf_counter() - t0
        res = env.step(action)
        if res.diverged:
            diverged = True
            log.warning("episode (seed %d) diverged at step %d: transition dropped, episode ended", seed, t)
            break
        observations.append(res.observation)
        states.append(env.get_state())
        actions.append(np.clip(action, env.action_spec.low, env.action_spec.high))
        rewards.append(res.reward)
        if on_step is not None:
            on_step(t, obs, actions[-1], res.reward, res.observation)
        obs = res.observation
        if res.done:
            break
    if not actions:
        return None
    steps = len(actions)
    info = {
        "task": env.name, "seed": seed, "policy": getattr(policy, "name", type(policy).__name__),
        "diverged": diverged, "control_steps": steps,
        "env_steps": steps * env.env_steps_per_control_step, "step_unit": STEP_UNIT,
        "physics_steps": steps * env.physics_steps_per_control_step, "action_repeat": env.action_repeat,
        "return": float(np.sum(rewards)),
        "plan_hz": steps / plan_time if plan_time > 0 else float("inf"),
        **env.episode_info(),
    }
    return Episode(np.array(observations), np.array(actions), np.array(rewards), np.array(states),
                   {**info, **(meta or {})})
