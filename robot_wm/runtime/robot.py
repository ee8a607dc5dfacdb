"""The robot seen by the control loop: read the state, send an action, tell the time.

A real robot driver implements ``Robot``; ``SimRobot`` implements it over a MuJoCo ``sim.Env`` and
stands in for the robot (it imports mujoco/dm_control, never torch).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Robot(Protocol):
    state_dim: int
    action_low: np.ndarray
    action_high: np.ndarray
    control_period: float  # seconds between two actions

    def read_state(self) -> np.ndarray:
        """The latest state estimate (what the planner was trained on)."""

    def send_action(self, action: np.ndarray) -> None:
        """Apply ``action`` (already clamped to the bounds) until the next one."""

    def time(self) -> float:
        """Robot clock in seconds."""

    # Optional (looked up with getattr, so a driver may leave it out):
    # def last_reward(self) -> float | None: the task reward the last action earned, where the robot
    #     can tell (a recorded deployment stores it; None: unknown).


class SimRobot:
    """A ``sim.Env`` behind the ``Robot`` interface. ``send_action`` advances the simulation by one
    control period (the loop does not need to sleep unless it runs in real time). It supplies the
    optional reward and its MuJoCo physics state; built from an env with ``env.randomize`` set, it
    stands in for a robot that differs from the training simulator."""

    def __init__(self, env):
        self.env = env
        spec = env.action_spec
        self.state_dim = env.observation_spec.dim
        self.action_low = np.asarray(spec.low, dtype=np.float32)
        self.action_high = np.asarray(spec.high, dtype=np.float32)
        self.control_period = float(env.control_timestep)
        self.done, self.ret, self.steps, self._obs, self._reward = True, 0.0, 0, None, None
        self.diverged = False  # the physics blew up on the last command (the episode ended there)

    def reset(self, seed: int) -> None:
        self._obs = self.env.reset(seed)
        self.done, self.ret, self.steps, self._reward, self.diverged = False, 0.0, 0, None, False

    def last_reward(self) -> float | None:
        return self._reward

    def physics_state(self) -> np.ndarray:
        return self.env.get_state()

    def episode_info(self) -> dict:
        """The simulator's record of the episode (e.g. its perturbation draw)."""
        return self.env.episode_info()

    def read_state(self) -> np.ndarray:
        return np.asarray(self._obs, dtype=np.float32)

    def send_action(self, action: np.ndarray) -> None:
        """Where the physics blew up on ``action`` the episode ends (``done``) and ``diverged`` says so: the command
        moved no robot, and a recorder ends the episode before it (its step was recorded as a transition of the last
        good state to itself, reward 0: probe 21). Not an error of the robot: the loop's safe stop then drove a dead
        simulator."""
        res = self.env.step(np.asarray(action, dtype=np.float64))
        if res.diverged:
            self.done = self.diverged = True
            return
        self._obs = res.observation
        self._reward = float(res.reward)
        self.ret += float(res.reward)
        self.steps += 1
        self.done = res.done

    def time(self) -> float:
        return float(self.env.data.time)
