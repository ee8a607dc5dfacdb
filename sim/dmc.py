"""DeepMind Control Suite tasks behind the robot-wm ``Env`` interface."""

from __future__ import annotations

import math

import mujoco
import numpy as np
from dm_control import suite
from dm_control.rl import control

from sim.env import STATE_SPEC, Env, check_episode_seed
from sim.spec import BoxSpec

# Ours use dashes ('point-mass-easy') and the common short names; the suite's own spellings
# ('point_mass-easy', 'ball_in_cup-catch') are accepted too and resolve to the same task.
ALIASES = {"cup-catch": ("ball_in_cup", "catch")}


def _dashed(domain: str, task: str) -> str:
    return f"{domain}-{task}".replace("_", "-")


def dmc_task_names() -> list[str]:
    return sorted({_dashed(d, t) for d, t in suite.ALL_TASKS} | set(ALIASES))


def canonical_task(name: str) -> str | None:
    """Our name for a suite task given in any accepted spelling, or None if it is not a suite task.
    A task with a short alias is known by the alias (ball_in_cup-catch -> cup-catch)."""
    dashed = name.replace("_", "-")
    for alias, (domain, task) in ALIASES.items():
        if dashed in (alias, _dashed(domain, task)):
            return alias
    return dashed if dashed in dmc_task_names() else None


def task_key(name):
    """A task's one spelling, for comparing two names: a suite task's ``canonical_task``, any other name (an MJCF
    robot's "mjcf") as given; a value that is no string (a hand-edited episode's meta) as it is."""
    return (canonical_task(name) or name) if isinstance(name, str) else name


def _split(name: str) -> tuple[str, str]:
    canon = canonical_task(name)
    if canon in ALIASES:
        return ALIASES[canon]
    for domain, task in suite.ALL_TASKS:
        if canon == _dashed(domain, task):
            return domain, task
    raise KeyError(name)


class DMCEnv(Env):
    def __init__(self, name: str, action_repeat: int = 1, max_env_steps: int | None = None):
        domain, task = _split(name)
        self.name = canonical_task(name)
        self.action_repeat = int(action_repeat)
        self._env = suite.load(domain, task, task_kwargs={"random": 0})
        limit = self._env._step_limit  # dm_control's own episode length, in suite steps (= env steps)
        limit = int(limit) if math.isfinite(limit) else 1000
        self._n_sub = int(self._env._n_sub_steps)
        max_env_steps = limit if max_env_steps is None else int(max_env_steps)
        if max_env_steps > limit:  # past its limit dm_control resets itself: not a valid transition
            raise ValueError(f"env.max_env_steps={max_env_steps} exceeds {self.name}'s own episode length "
                             f"of {limit} env steps")
        if max_env_steps < self.action_repeat:
            raise ValueError(f"env.max_env_steps={max_env_steps} is shorter than one agent step "
                             f"(env.action_repeat={self.action_repeat})")
        self.max_control_steps = max_env_steps // self.action_repeat
        self._keys = list(self._env.observation_spec().keys())
        dim = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
        self._obs_spec = BoxSpec((dim,), np.full(dim, -np.inf), np.full(dim, np.inf), "observation")
        a = self._env.action_spec()
        self._act_spec = BoxSpec(a.shape, np.asarray(a.minimum, float), np.asarray(a.maximum, float), "action")
        self._scratch = self._env.physics.copy(share_model=True)
        self._ts = None

    @property
    def physics_steps_per_env_step(self) -> int:
        return self._n_sub

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
        check_episode_seed(seed)
        if seed is not None:
            self._env.task._random = np.random.RandomState(seed)
        self._randomize_episode(seed)
        self._ts = self._env.reset()
        return self._begin_episode()

    def _env_step(self, action: np.ndarray) -> tuple[float, bool]:
        try:
            self._ts = self._env.step(action)
        except control.PhysicsError:
            return 0.0, True
        return float(self._ts.reward or 0.0), False

    def _observation(self) -> np.ndarray:
        obs = self._ts.observation
        return np.concatenate([np.asarray(obs[k], dtype=np.float64).reshape(-1) for k in self._keys])

    def observation_of_state(self, state: np.ndarray) -> np.ndarray:
        p = self._scratch
        mujoco.mj_setState(p.model.ptr, p.data.ptr, np.asarray(state, dtype=np.float64), STATE_SPEC)
        p.forward()
        obs = self._env.task.get_observation(p)
        return np.concatenate([np.asarray(obs[k], dtype=np.float64).reshape(-1) for k in self._keys])

    def reward_of_state(self, state: np.ndarray, ctrl: np.ndarray | None = None) -> float:
        p = self._scratch
        mujoco.mj_setState(p.model.ptr, p.data.ptr, np.asarray(state, dtype=np.float64), STATE_SPEC)
        p.data.ptr.ctrl[:] = 0.0 if ctrl is None else ctrl
        p.forward()
        return float(self._env.task.get_reward(p))
