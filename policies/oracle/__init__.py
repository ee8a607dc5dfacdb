"""The oracle planner: the same optimizer, scored by the true MuJoCo simulator instead of the learned
model. Its return is the upper bound that tells how much is lost to model error."""

from __future__ import annotations

import os
from dataclasses import replace

import mujoco
import numpy as np
import torch
from mujoco import rollout

from policies.mpc.planner import MPCPlanner, PlanStep
from policies.mpc.step import StepSpec
from robot_wm.model.imagine import goal_distance
from sim.env import Env


class TrueModelScore:
    """Rolls candidate sequences out with ``mujoco.rollout`` (C++ threads) from the env's current
    physics state and scores each agent step by the task reward of its final state. With a learned
    ``value`` (an ``ActorCritic``) it adds ``discount^H * V(observation of the last true state)``, as
    the learned planner does, and the value's discount replaces ``discount``: the two planners then
    differ only in the dynamics, which is what the oracle measures."""

    def __init__(self, env: Env, discount: float = 1.0, threads: int | None = None, value=None,
                 reward_weight: float = 1.0, pessimism: float = 0.0):
        self.env, self.value, self.reward_weight, self.pessimism = env, value, reward_weight, float(pessimism)
        self.discount = value.spec.discount if value is not None else discount
        self.substeps = int(env.physics_steps_per_control_step)
        n = threads or min(4, os.cpu_count() or 1)
        self.datas = [mujoco.MjData(env.model) for _ in range(n)]
        self.state: np.ndarray | None = None

    def __call__(self, _obs: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor | None = None,
                 goal_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        acts = actions.detach().double().cpu().numpy()  # (N, H, A)
        n, h, _ = acts.shape
        control = np.repeat(acts, self.substeps, axis=1)  # hold each action for its physics steps
        states, _ = rollout.rollout(self.env.model, self.datas, self.state[None], control)
        ends = states[:, self.substeps - 1 :: self.substeps]  # (N, H, nstate): state after each agent step
        rewards = np.array([[self.env.reward_of_state(ends[i, t], acts[i, t]) for t in range(h)] for i in range(n)])
        ret = (rewards * self.env.action_repeat * self.discount ** np.arange(h)).sum(1)
        ret = torch.as_tensor(ret, dtype=actions.dtype)
        if self.value is not None:
            last = np.stack([self.env.observation_of_state(ends[i, -1]) for i in range(n)])
            with torch.no_grad():
                v = self.value.value(torch.as_tensor(last, dtype=torch.float32, device=self.value.action_low.device),
                                     self.pessimism)
            ret = ret + self.discount**h * v.to(ret)
        if goal is not None:  # the learned planner's goal objective, on the true observations
            seen = torch.as_tensor(np.stack([[self.env.observation_of_state(ends[i, t]) for t in range(h)]
                                             for i in range(n)]), dtype=actions.dtype)
            cost = goal_distance(seen, goal.to(seen), goal_weights.to(seen), self.discount)
            ret = self.reward_weight * ret - cost if self.reward_weight > 0 else -cost
        return ret, torch.zeros_like(ret)


class OraclePlanner(MPCPlanner):
    def act(self, obs: np.ndarray) -> np.ndarray:
        self.step.score.state = self.step.score.env.get_state()
        return super().act(obs)


def oracle_planner(env: Env, spec: StepSpec, seed: int = 0, value=None, goal_fn=None,
                   reward_weight: float = 1.0) -> OraclePlanner:
    """The true-dynamics planner; with ``value`` its objective adds the learned terminal value (the
    policy proposals stay off: they would need the learned dynamics); with ``goal_fn`` it plans toward
    that goal as the learned planner does."""
    spec_a = env.action_spec
    spec = replace(spec, policy_samples=0)
    score = TrueModelScore(env, spec.discount, value=value, reward_weight=reward_weight, pessimism=spec.value_pessimism)
    step = PlanStep(score, spec, spec_a.low, spec_a.high)
    return OraclePlanner(step, seed, name="oracle-value" if value is not None else "oracle", goal_fn=goal_fn)
