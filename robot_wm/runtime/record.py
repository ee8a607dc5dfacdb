"""Recorded deployments: every deployed episode written in the run's episode format (``robot_wm.data``),
atomically, so the dataset reads robot data like simulated data (torch-free, as the whole runtime).

Per control step: the state the planner saw, the action sent, the reward when the robot supplies one
(``Robot.last_reward``), the planning latency and whether the loop fell back (and why). A robot that
knows its MuJoCo physics state (``SimRobot``) stores it; a real one stores none (width 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robot_wm.data.dataset import EpisodeDataset
from robot_wm.data.episode import Episode
from sim.env import STEP_UNIT  # mujoco + numpy only: the runtime stays torch-free


class DeploymentRecorder:
    """``begin`` an episode, ``step`` after every control tick, ``end`` to write it (also when the
    episode was cut short: what was recorded is kept)."""

    def __init__(self, root: str | Path, *, task: str, planner: str, action_repeat: int | None,
                 source: str = "robot", extra: dict | None = None):
        from robot_wm.run_dir import RunDir

        for d in (Path(root), *Path(root).resolve().parents):  # a run itself, or any folder inside one
            if RunDir(d).is_run():
                raise ValueError(f"--record {str(root)!r} is inside the run directory {str(d)!r}: its episodes are "
                                 "written under the run's lock by robot-wm alone. Record into a folder of its "
                                 f"own and bring it in with `robot-wm finetune {d} --data DIR`")
        self.data = EpisodeDataset(root)
        self.meta = {"task": task, "policy": "deployed", "planner_file": planner, "source": source,
                     "action_repeat": action_repeat, "step_unit": STEP_UNIT, **(extra or {})}
        self._reset()

    def _reset(self) -> None:
        self.obs, self.actions, self.rewards, self.states = [], [], [], []
        self.latency_ms, self.fallbacks, self.seed, self.reward_known = [], [], None, True

    def begin(self, robot, seed: int | None = None) -> None:
        self._reset()
        self.seed = seed
        self.obs.append(np.asarray(robot.read_state(), dtype=np.float32).copy())
        self.states.append(_physics_state(robot))

    def step(self, robot, action: np.ndarray, latency_s: float, fallback: str | None) -> None:
        """After ``send_action``: the action sent and what the robot reports now."""
        self.actions.append(np.asarray(action, dtype=np.float32).copy())
        reward = robot.last_reward() if callable(getattr(robot, "last_reward", None)) else None
        self.reward_known &= reward is not None and bool(np.isfinite(reward))
        self.rewards.append(float(reward) if reward is not None and np.isfinite(reward) else 0.0)
        self.obs.append(np.asarray(robot.read_state(), dtype=np.float32).copy())
        self.states.append(_physics_state(robot))
        self.latency_ms.append(round(latency_s * 1e3, 3))
        if fallback is not None:
            self.fallbacks.append({"step": len(self.actions) - 1, "reason": fallback})

    def end(self, **meta) -> Path | None:
        """Write the episode (None when no step was recorded)."""
        obs, extra = self.obs, {}
        bad = next((t for t, o in enumerate(obs) if o.shape != obs[0].shape or not np.all(np.isfinite(o))), None)
        if bad is not None:  # a sensor glitch: keep every transition before it (an episode file holds no NaN)
            extra["cut_at_bad_state"] = bad
            self.actions, self.rewards, self.states = self.actions[:bad - 1 if bad else 0], \
                self.rewards[:max(bad - 1, 0)], self.states[:bad]
            obs = obs[:bad]
        act = next((t for t, a in enumerate(self.actions) if a.shape != self.actions[0].shape
                    or not np.all(np.isfinite(a))), None)
        if act is not None:  # an action sent that no episode may hold: keep every transition before it
            extra["cut_at_bad_action"] = act
            self.actions, self.rewards, self.states, obs = (self.actions[:act], self.rewards[:act],
                                                           self.states[:act + 1], obs[:act + 1])
        if not self.actions:
            self._reset()
            return None
        steps, repeat = len(self.actions), self.meta.get("action_repeat") or 1
        widths = {s.shape[0] for s in self.states}
        states = np.stack(self.states) if len(widths) == 1 and np.all(np.isfinite(self.states)) \
            else np.zeros((steps + 1, 0))
        info = {**self.meta, "seed": self.seed, "control_steps": steps, "env_steps": steps * repeat,
                "reward_known": self.reward_known,
                "return": float(np.sum(self.rewards)) if self.reward_known else None,
                "latency_ms": self.latency_ms[:steps], "fallback_steps": [f for f in self.fallbacks if f["step"] < steps],
                "diverged": False, **extra, **meta}
        ep = Episode(np.stack(obs), np.stack(self.actions), np.asarray(self.rewards), states, info)
        path = self.data.append(ep)
        self._reset()
        return path


def _physics_state(robot) -> np.ndarray:
    get = getattr(robot, "physics_state", None)
    return np.asarray(get(), dtype=np.float64) if callable(get) else np.zeros(0)
