"""Domain randomisation and fixed perturbations: per-episode scales of the MuJoCo model's physical
parameters, observation noise and an action delay, drawn from the episode seed.

``Randomizer(model, cfg)`` takes the ranges of an ``EnvConfig.randomize`` section (see
``robot_wm.config.RandomizeConfig``); a range whose ends are equal is a fixed perturbation (e.g. pole
mass x1.3 for every episode). Scales multiply the model's *nominal* values (read once, when the
environment is built), so episodes never compound each other's draws:

* ``mass``: body mass and rotational inertia (of ``mass_bodies``, or of every body), together, so the
  body's shape of inertia stays physical;
* ``friction``: every geom's sliding friction;
* ``damping``: every joint DoF's damping;
* ``actuator_gain``: every actuator's gain (and, for position-like actuators with an affine bias, the
  matching bias term, so a servo's stiffness scales as a whole);
* ``obs_noise``: standard deviation of Gaussian noise added to every observation the agent sees;
* ``action_delay``: control steps between a command and its effect (the first ones apply the middle
  of the action range).
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass

import mujoco
import numpy as np

SCALES = ("mass", "friction", "damping", "actuator_gain")


@dataclass(frozen=True)
class Draw:
    """What one episode got: the scales, the noise level and the delay (recorded in its metadata)."""

    mass: float = 1.0
    friction: float = 1.0
    damping: float = 1.0
    actuator_gain: float = 1.0
    obs_noise: float = 0.0
    action_delay: int = 0

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


NOMINAL: dict = {"mass": (1.0, 1.0), "mass_bodies": [], "friction": (1.0, 1.0), "damping": (1.0, 1.0),
                 "actuator_gain": (1.0, 1.0), "obs_noise": 0.0, "action_delay": (0, 0)}
"""An ``env.randomize`` section that changes nothing (``RandomizeConfig``'s defaults)."""


def is_nominal(cfg) -> bool:
    """True when ``cfg`` (a ``RandomizeConfig`` or None) changes nothing (which bodies a unit mass
    scale would touch does not matter)."""
    if cfg is None:
        return True
    return all(_plain(getattr(cfg, k)) == _plain(v) for k, v in NOMINAL.items() if k != "mass_bodies")


def _plain(v):
    """Lists and tuples compare alike (TOML gives lists, the config tuples)."""
    return tuple(v) if isinstance(v, (list, tuple)) else v


def check_bodies(model: mujoco.MjModel, bodies) -> list[str]:
    """The model's body names; refuses ``bodies`` (``env.randomize.mass_bodies``) naming others."""
    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, i) for i in range(model.nbody)]
    if unknown := [b for b in bodies if b not in names]:
        raise ValueError(f"env.randomize.mass_bodies names {unknown}, not bodies of this model; its bodies "
                         f"are {[n for n in names if n and n != 'world']}")
    return names


class Randomizer:
    """Applies per-episode draws to ``model`` (in place) and perturbs the agent's view of the episode."""

    def __init__(self, model: mujoco.MjModel, cfg):
        self.model, self.cfg = model, cfg
        names = check_bodies(model, cfg.mass_bodies)
        self.bodies = (np.array([names.index(b) for b in cfg.mass_bodies], dtype=int) if cfg.mass_bodies
                       else np.arange(1, model.nbody))  # body 0 is the world
        self.nominal = {"body_mass": model.body_mass.copy(), "body_inertia": model.body_inertia.copy(),
                        "geom_friction": model.geom_friction.copy(), "dof_damping": model.dof_damping.copy(),
                        "actuator_gainprm": model.actuator_gainprm.copy(),
                        "actuator_biasprm": model.actuator_biasprm.copy()}
        self.affine = model.actuator_biastype == mujoco.mjtBias.mjBIAS_AFFINE
        self.draw = Draw()
        self._rng = np.random.default_rng(0)
        self._queue: deque[np.ndarray] = deque()

    def begin_episode(self, seed: int | None, data: mujoco.MjData | None = None) -> Draw:
        """Draw this episode's parameters from ``seed`` (repeatable) and set them in the model."""
        self._rng = np.random.default_rng([0 if seed is None else int(seed), 0x5EED])
        c, r = self.cfg, self._rng
        scales = {k: float(r.uniform(*getattr(c, k))) for k in SCALES}
        lo, hi = c.action_delay
        self.draw = Draw(**scales, obs_noise=float(c.obs_noise), action_delay=int(r.integers(lo, hi + 1)))
        self._apply(data)
        self._queue = deque()
        return self.draw

    def restore(self, data: mujoco.MjData | None = None) -> None:
        """Put the model's nominal values back (no perturbation)."""
        self.draw = Draw()
        self._apply(data)

    def _apply(self, data: mujoco.MjData | None) -> None:
        m, n, d = self.model, self.nominal, self.draw
        m.body_mass[:] = n["body_mass"]
        m.body_inertia[:] = n["body_inertia"]
        m.body_mass[self.bodies] *= d.mass
        m.body_inertia[self.bodies] *= d.mass
        m.geom_friction[:] = n["geom_friction"]
        m.geom_friction[:, 0] *= d.friction
        m.dof_damping[:] = n["dof_damping"] * d.damping
        m.actuator_gainprm[:] = n["actuator_gainprm"]
        m.actuator_biasprm[:] = n["actuator_biasprm"]
        m.actuator_gainprm[:, 0] *= d.actuator_gain
        m.actuator_biasprm[self.affine, 1:3] *= d.actuator_gain
        if data is not None:
            mujoco.mj_setConst(m, data)  # subtree masses and the other constants derived from them

    def observe(self, obs: np.ndarray) -> np.ndarray:
        """The observation the agent sees (with this episode's noise)."""
        if self.draw.obs_noise == 0:
            return obs
        return obs + self._rng.normal(0.0, self.draw.obs_noise, size=obs.shape)

    def prime_delay(self, sent: np.ndarray, neutral: np.ndarray) -> None:
        """Start mid-episode: the last ``action_delay`` of the commands ``sent`` so far (neutral before the first)
        are in flight, as they were when the episode was recorded."""
        k = self.draw.action_delay
        self._queue = deque([neutral.copy() for _ in range(max(0, k - len(sent)))]
                            + [np.asarray(a, dtype=np.float64) for a in sent[max(0, len(sent) - k):]] if k else [])

    def delay(self, action: np.ndarray, neutral: np.ndarray) -> np.ndarray:
        """The action that takes effect now: the one commanded ``action_delay`` control steps ago."""
        k = self.draw.action_delay
        if k == 0:
            return action
        if not self._queue:
            self._queue.extend([neutral.copy() for _ in range(k)])
        self._queue.append(action)
        return self._queue.popleft()


SHIFTS: dict[str, dict] = {
    "mass-0.7": {"mass": (0.7, 0.7)},
    "mass-1.3": {"mass": (1.3, 1.3)},
    "friction-0.5": {"friction": (0.5, 0.5)},
    "friction-1.5": {"friction": (1.5, 1.5)},
    "gain-0.8": {"actuator_gain": (0.8, 0.8)},
    "delay-1": {"action_delay": (1, 1)},
}
"""Named fixed perturbations (every body's mass, every geom's friction, every actuator's gain, one
control step of delay): the shifts robustness is measured on. ``shift_overrides`` turns one into
``env.randomize.*`` overrides."""


def shift_overrides(name: str) -> list[str]:
    """``key=value`` overrides that set the whole ``env.randomize`` section to the named shift (``nominal``:
    no perturbation at all), whatever randomisation the run was trained with."""
    if name != "nominal" and name not in SHIFTS:
        raise ValueError(f"unknown shift {name!r}; expected nominal or one of: {', '.join(SHIFTS)}")
    fields = {**NOMINAL, **SHIFTS.get(name, {})}
    return [f"env.randomize.{k}={json.dumps(v)}" for k, v in fields.items()]  # JSON arrays and numbers are TOML


def shift_then(name: str, overrides: list[str]) -> list[str]:
    """The named shift's overrides followed by ``overrides`` (``env.``-prefixed), refusing an override of a
    field the shift sets: it ran while the result was labelled with the shift (probes 9 and 10)."""
    shift = shift_overrides(name)
    named = {o.partition("=")[0] for o in shift if o not in shift_overrides("nominal")}
    if clash := [o for o in overrides if o.partition("=")[0].strip() in named]:
        raise ValueError(f"--shift {name} sets {', '.join(sorted(named))}; {', '.join(clash)} would replace it "
                         "(the result would be labelled with a shift it did not run): give one or the other")
    return shift + overrides
