"""DeepMind Control Suite tasks behind the robot-wm ``Env`` interface."""

from __future__ import annotations

import math

import mujoco
import numpy as np
from dm_control import suite
from dm_control.rl import control

from sim.env import STATE_SPEC, Env
from sim.spec import BoxSpec

# Suite names use underscores (ball_in_cup); ours use dashes and the common short names.
ALIASES = {"cup-catch": ("ball_in_cup", "catch")}


def dmc_task_names() -> list[str]:
    names = {f"{d.replace('_', '-')}-{t.replace('_', '-')}" for d, t in suite.ALL_TASKS}
    return sorted(names | set(ALIASES))


def _split(name: str) -> tuple[str, str]:
    if name in ALIASES:
        return ALIASES[name]
    for domain, task in suite.ALL_TASKS:
        if name == f"{domain.replace('_', '-')}-{task.replace('_', '-')}":
            return domain, task
    raise KeyError(name)


class DMCEnv(Env):
    def __init__(self, name: str, action_repeat: int = 1, max_env_steps: int | None = None):
        domain, task = _split(name)
        self.name = name
        self.action_repeat = int(action_repeat)
        self._env = suite.load(domain, task, task_kwargs={"random": 0})
        limit = self._env._step_limit  # dm_control's own limit, in dm_control control steps
        limit = int(limit) if math.isfinite(limit) else 1000
        self._n_sub = int(self._env._n_sub_steps)
        max_env_steps = limit * self._n_sub if max_env_steps is None else int(max_env_steps)
        self.max_control_steps = max(1, max_env_steps // (self._n_sub * self.action_repeat))
        self._keys = list(self._env.observation_spec().keys())
        dim = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
        self._obs_spec = BoxSpec((dim,), np.full(dim, -np.inf), np.full(dim, np.inf), "observation")
        a = self._env.action_spec()
        self._act_spec = BoxSpec(a.shape, np.asarray(a.minimum, float), np.asarray(a.maximum, float), "action")
        self._scratch = self._env.physics.copy(share_model=True)
        self._ts = None

    @property
    def env_steps_per_control_step(self) -> int:
        """Physics steps per agent decision: the unit in which environment-step budgets count."""
        return self._n_sub * self.action_repeat

    @property
    def observation_spec(self) -> BoxSpec:
        return self._obs_spec

    @property
    def action_spec(self) -> BoxSpec:
        return self._act_spec

    @property
    def model(self) -> mujoco.MjModel:
        return self._env.physics.model.ptr

    @property
    def data(self) -> mujoco.MjData:
        return self._env.physics.data.ptr

    @property
    def control_timestep(self) -> float:
        return float(self._env.control_timestep()) * self.action_repeat

    @property
    def dm_env(self) -> control.Environment:
        return self._env

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self._env.task._random = np.random.RandomState(seed)
        self._ts = self._env.reset()
        return self._begin_episode()

    def _physics_step(self, action: np.ndarray) -> tuple[float, bool]:
        try:
            self._ts = self._env.step(action)
        except control.PhysicsError:
            return 0.0, True
        return float(self._ts.reward or 0.0), False

    def _observation(self) -> np.ndarray:
        obs = self._ts.observation
        return np.concatenate([np.asarray(obs[k], dtype=np.float64).reshape(-1) for k in self._keys])

    def reward_of_state(self, state: np.ndarray, ctrl: np.ndarray | None = None) -> float:
        p = self._scratch
        mujoco.mj_setState(p.model.ptr, p.data.ptr, np.asarray(state, dtype=np.float64), STATE_SPEC)
        p.data.ptr.ctrl[:] = 0.0 if ctrl is None else ctrl
        p.forward()
        return float(self._env.task.get_reward(p))
