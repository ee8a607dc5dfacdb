"""The one environment interface every task implements (DMC tasks and bring-your-own MJCF robots)."""

from __future__ import annotations

import abc
import logging
import threading

import mujoco
import numpy as np

from sim.randomize import Randomizer, check_bodies, is_nominal
from sim.spec import BoxSpec, StepResult, as_floats

log = logging.getLogger(__name__)

# Full physics state as understood by mujoco.rollout and mj_getState/mj_setState.
STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS

MAX_FRAME = 8192
"""Largest rendered frame side, in pixels (an OpenGL framebuffer's usual limit)."""


def check_episode_seed(seed) -> None:
    """An episode seed: None or a whole number from 0 to 2**32 - 1 (``reset(1.5)`` was numpy's cast error)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)
                             or not 0 <= seed < 2**32):
        raise ValueError(f"episode seed={seed!r}: expected None or a whole number from 0 to {2**32 - 1}")


STEP_UNIT = "suite_step"
"""The one unit every step count is in (budgets, ``eval_at``, episode files, metrics, benchmarks): an
*environment step* is one dm_control suite step (``env.step()`` of the suite, whatever physics steps it
holds), or one control period of an MJCF robot (``env.substeps`` physics steps). An agent action held for
action repeat R counts R steps, so a standard suite episode is 1,000 steps on every task, as the field
counts them. Episode files carry this tag in their metadata; files without it counted physics steps."""


class Env(abc.ABC):
    """A MuJoCo task seen through fixed-size float observations and bounded actions.

    One control step (an agent decision) applies the action for ``action_repeat`` environment steps
    (see ``STEP_UNIT``) and sums their rewards. An episode lasts ``max_control_steps`` control steps
    unless it diverges.
    """

    name: str
    action_repeat: int
    max_control_steps: int
    randomizer: Randomizer | None = None
    """Domain randomisation / a fixed perturbation (``randomize``); None: the nominal model."""

    def randomize(self, cfg) -> None:
        """Randomise every following episode by ``cfg`` (an ``env.randomize`` section; None or all
        nominal: no randomisation). Unknown body names are refused here, naming them."""
        if self.randomizer is not None:  # back to the nominal model first: a new randomizer reads it as nominal
            self.randomizer.restore(self.data)
        if cfg is not None and cfg.mass_bodies:  # a typo was accepted while the mass scale was 1 (tenth probe)
            check_bodies(self.model, cfg.mass_bodies)
        if cfg is not None and (hi := cfg.action_delay[1]) >= (n := self.max_control_steps):
            # a delay of 50 in a 25-step episode: no command ever acted, and eval stored its 0.0 (probe 28)
            raise ValueError(f"env.randomize.action_delay={list(cfg.action_delay)}: an episode of {self.name} is {n} "
                             f"control steps, so a delay of {hi} would let no command act; expected at most {n - 1}")
        self.randomizer = None if is_nominal(cfg) else Randomizer(self.model, cfg)

    def _randomize_episode(self, seed: int | None) -> None:
        """Draw and apply this episode's parameters; each ``reset`` calls it before resetting the physics."""
        if self.randomizer is not None:
            self.randomizer.begin_episode(seed, self.data)

    def fingerprint(self) -> dict:
        """What identifies this robot beyond its task name: a run records it when created and refuses another
        (a user's MJCF file and reward module are found from the working directory). Suite tasks: nothing."""
        return {}

    def episode_info(self) -> dict:
        """What the episode's metadata must record about the environment: this episode's draw."""
        if self.randomizer is None:
            return {}
        bodies = {"mass_bodies": list(self.randomizer.cfg.mass_bodies)} if self.randomizer.cfg.mass_bodies else {}
        return {"randomization": {**self.randomizer.draw.as_dict(), **bodies}}

    def _seen(self, obs: np.ndarray) -> np.ndarray:
        return obs if self.randomizer is None else self.randomizer.observe(obs)

    @property
    @abc.abstractmethod
    def observation_spec(self) -> BoxSpec: ...

    @property
    @abc.abstractmethod
    def action_spec(self) -> BoxSpec: ...

    @property
    @abc.abstractmethod
    def model(self) -> mujoco.MjModel: ...

    @property
    @abc.abstractmethod
    def data(self) -> mujoco.MjData: ...

    @property
    def physics_timestep(self) -> float:
        return float(self.model.opt.timestep)

    @property
    def env_steps_per_control_step(self) -> int:
        """Environment steps (``STEP_UNIT``) per agent decision: the action repeat."""
        return self.action_repeat

    @property
    @abc.abstractmethod
    def physics_steps_per_env_step(self) -> int:
        """MuJoCo physics steps in one environment step (the suite's n_sub_steps, or ``env.substeps``)."""

    @property
    def physics_steps_per_control_step(self) -> int:
        return self.physics_steps_per_env_step * self.action_repeat

    @property
    @abc.abstractmethod
    def control_timestep(self) -> float:
        """Seconds between two agent decisions (action repeat included)."""

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> np.ndarray: ...

    @abc.abstractmethod
    def _env_step(self, action: np.ndarray) -> tuple[float, bool]:
        """Apply ``action`` for one environment step; return (reward, diverged)."""

    @abc.abstractmethod
    def _observation(self) -> np.ndarray: ...

    @abc.abstractmethod
    def reward_of_state(self, state: np.ndarray, ctrl: np.ndarray | None = None) -> float:
        """Task reward of a full physics state (``STATE_SPEC``) under control ``ctrl`` (control
        costs need it; the state spec leaves it out), computed on scratch data so the episode is
        untouched. Used by the oracle planner to score ``mujoco.rollout`` states."""

    @abc.abstractmethod
    def observation_of_state(self, state: np.ndarray) -> np.ndarray:
        """The observation (as ``reset``/``step`` return it) of a full physics state, on scratch data:
        the oracle planner feeds it to the learned value at the end of its horizon."""

    def step(self, action: np.ndarray) -> StepResult:
        """One control step. Calls from several threads take turns (four threads stepped one episode 128 times
        in 125 steps, probe 16): one simulator is one state."""
        with self.__dict__.setdefault("_step_lock", threading.Lock()):  # atomic under the GIL
            return self._step(action)

    def _step(self, action: np.ndarray) -> StepResult:
        if self._t is None:  # after a divergence it said "before reset()" (probe 15)
            raise RuntimeError(f"{self.name}: " + (f"the episode {self._ended}; call reset() to start the next"
                                                   if self._ended else "step() called before reset()"))
        if self._t >= self.max_control_steps:  # stepping on past the time limit was accepted (probe 15)
            raise RuntimeError(f"{self.name}: the episode ended at its time limit ({self.max_control_steps} control "
                               "steps); call reset() to start the next")
        a = as_floats(action, f"{self.name}: the action", np.float64).reshape(-1)  # '0.5' was 0.5 (probe 14)
        spec = self.action_spec
        if a.shape != spec.shape:
            raise ValueError(f"{self.name}: action has shape {a.shape}, expected {spec.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{self.name}: action is not finite: {a.tolist()}")
        a = np.clip(a, spec.low, spec.high)
        if self.randomizer is not None:
            a = self.randomizer.delay(a, (spec.low + spec.high) / 2)
        total = 0.0
        for _ in range(self.action_repeat):
            reward, diverged = self._env_step(a)
            if diverged:
                log.warning("%s: physics diverged at control step %d; episode ends here", self.name, self._t)
                at, self._t = self._t, None
                self._ended = f"ended when the physics diverged at control step {at}"
                return StepResult(self._last_obs, 0.0, diverged=True, info={"diverged_at": at})
            total += reward
        self._t += 1
        obs = self._seen(self._observation())
        if not np.all(np.isfinite(obs)):
            log.warning("%s: non-finite observation at control step %d; episode ends here", self.name, self._t)
            self._ended, self._t = f"ended at a non-finite observation at control step {self._t}", None
            return StepResult(self._last_obs, 0.0, diverged=True)
        self._last_obs = obs
        return StepResult(obs, total, truncated=self._t >= self.max_control_steps)

    # Physics state (qpos/qvel and everything else mujoco needs to resume exactly).
    def get_state(self) -> np.ndarray:
        state = np.empty(mujoco.mj_stateSize(self.model, STATE_SPEC))
        mujoco.mj_getState(self.model, self.data, state, STATE_SPEC)
        return state

    def set_state(self, state: np.ndarray, control_step: int | None = None) -> None:
        """Restore a full physics state; ``control_step``: the episode's clock too (the time limit then counts from
        it: `drive --step 124` of a 125-step episode ran on for 125 more, probe 17)."""
        if control_step is not None and (isinstance(control_step, bool) or not isinstance(control_step, int)
                                         or not 0 <= control_step <= self.max_control_steps):
            raise ValueError(f"{self.name}: control_step={control_step!r}, expected a whole number from 0 to "
                             f"{self.max_control_steps}")
        state = as_floats(state, f"{self.name}: the physics state", np.float64).reshape(-1)  # complex, NaN (probe 15)
        if not np.all(np.isfinite(state)):
            raise ValueError(f"{self.name}: the physics state holds {int((~np.isfinite(state)).sum())} non-finite values")
        if state.size != (size := mujoco.mj_stateSize(self.model, STATE_SPEC)):  # MuJoCo's TypeError named neither
            raise ValueError(f"physics state of {state.size} values: this model's full physics state has {size}")
        mujoco.mj_setState(self.model, self.data, state, STATE_SPEC)
        mujoco.mj_forward(self.model, self.data)
        if control_step is not None and self._t is not None:
            self._t = control_step

    @property
    def qpos(self) -> np.ndarray:
        return self.data.qpos.copy()

    @property
    def qvel(self) -> np.ndarray:
        return self.data.qvel.copy()

    def render(self, height: int = 240, width: int = 320, camera: int | str = -1) -> np.ndarray:
        """RGB frame (H, W, 3) uint8. Headless machines need ``MUJOCO_GL=egl`` (or osmesa)."""
        for name, v in (("height", height), ("width", width)):  # MuJoCo's FatalError, numpy's own (probe 15)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or not 1 <= v <= MAX_FRAME:
                raise ValueError(f"{self.name}: render {name}={v!r}: expected a whole number of pixels from 1 to "
                                 f"{MAX_FRAME}")
        with renderer_for(self.model, height, width) as renderer:
            renderer.update_scene(self.data, camera=camera)
            return renderer.render().copy()

    _t: int | None = None
    _ended: str | None = None  # how the last episode ended early, for the next step's message

    def _begin_episode(self) -> np.ndarray:
        self._t, self._ended = 0, None
        self._last_obs = self._seen(self._observation())
        return self._last_obs


def renderer_for(model: mujoco.MjModel, height: int, width: int) -> mujoco.Renderer:
    """A renderer of ``height`` x ``width``, the model's offscreen buffer (often 640 x 480) grown to fit: past
    it MuJoCo refused, and the Rerun camera was disabled with a hint to set MUJOCO_GL (eighth probe)."""
    g = model.vis.global_
    g.offheight, g.offwidth = max(g.offheight, height), max(g.offwidth, width)
    return mujoco.Renderer(model, height=height, width=width)


def physics_diverged(model: mujoco.MjModel, data: mujoco.MjData) -> bool:
    """True when MuJoCo flagged bad qpos/qvel/qacc or the state holds NaN/Inf."""
    for w in (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL, mujoco.mjtWarning.mjWARN_BADQACC):
        if data.warning[w].number > 0:
            return True
    return not (np.all(np.isfinite(data.qpos)) and np.all(np.isfinite(data.qvel)))
