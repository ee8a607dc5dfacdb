"""From the world model's state (the flattened observation) to where the robot's bodies would be.

Torch-free (numpy + mujoco only) so that the deploy path can use it too.

``QposDecoder`` maps observations to joint positions: an exact map where the task makes it
trivial (cartpole), otherwise a ridge least-squares fit on (observation, qpos) pairs taken from
the run's own episodes (``physics_state`` holds qpos) or gathered live. Hinge joints are fitted
through (cos q, sin q) so that angles observed as cos/sin decode exactly. ``BodyKinematics``
turns qpos into body positions with ``mj_kinematics`` on a scratch ``MjData``.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

ExactMap = Callable[[np.ndarray], np.ndarray]


def _cartpole(obs: np.ndarray) -> np.ndarray:
    # dm_control cartpole: position = [cart x, cos(pole), sin(pole)], velocity = [...]
    return np.stack([obs[..., 0], np.arctan2(obs[..., 2], obs[..., 1])], axis=-1)


def exact_map(task: str | None, model: mujoco.MjModel) -> ExactMap | None:
    """The exact obs -> qpos map of a task where there is a trivial one, else None."""
    if task is not None and task.startswith("cartpole-") and model.nq == 2:
        return _cartpole
    return None


def qpos_from_physics_state(model: mujoco.MjModel, states: np.ndarray) -> np.ndarray:
    """qpos out of ``mjSTATE_FULLPHYSICS`` vectors (..., P): [time, qpos, qvel, act, ...]."""
    states = np.asarray(states, dtype=np.float64)
    size = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    if states.shape[-1] != size:
        raise ValueError(f"physics state has {states.shape[-1]} entries, expected {size} (mjSTATE_FULLPHYSICS)")
    return states[..., 1:1 + model.nq]


class QposDecoder:
    """obs (..., S) -> qpos (..., nq)."""

    def __init__(self, model: mujoco.MjModel, task: str | None = None, ridge: float = 1e-6,
                 max_pairs: int = 50_000):
        self.model, self.nq, self.ridge, self.max_pairs = model, model.nq, ridge, max_pairs
        self.exact = exact_map(task, model)
        hinge = np.zeros(model.nq, dtype=bool)
        quat = np.zeros(model.nq, dtype=bool)
        self.quats: list[int] = []
        for j in range(model.njnt):
            adr, kind = model.jnt_qposadr[j], model.jnt_type[j]
            if kind == mujoco.mjtJoint.mjJNT_HINGE:
                hinge[adr] = True
            elif kind == mujoco.mjtJoint.mjJNT_BALL:
                quat[adr:adr + 4] = True
                self.quats.append(adr)
            elif kind == mujoco.mjtJoint.mjJNT_FREE:
                quat[adr + 3:adr + 7] = True
                self.quats.append(adr + 3)
        self.hinge = hinge
        self._obs: list[np.ndarray] = []
        self._qpos: list[np.ndarray] = []
        self._n = 0
        self.weights: np.ndarray | None = None
        self.fit_error: float = float("nan")  # rms qpos error on the fitting pairs

    @property
    def ready(self) -> bool:
        return self.exact is not None or self.weights is not None

    @property
    def pairs(self) -> int:
        return self._n

    def add(self, obs: np.ndarray, qpos: np.ndarray) -> None:
        """Add (obs, qpos) pairs: (S,), (nq,) or batches (T, S), (T, nq)."""
        obs = np.atleast_2d(np.asarray(obs, dtype=np.float64))
        qpos = np.atleast_2d(np.asarray(qpos, dtype=np.float64))
        if len(obs) != len(qpos) or qpos.shape[-1] != self.nq:
            raise ValueError(f"pairs do not match: obs {obs.shape}, qpos {qpos.shape} (nq={self.nq})")
        self._obs.append(obs)
        self._qpos.append(qpos)
        self._n += len(obs)
        while self._n - len(self._obs[0]) >= self.max_pairs and len(self._obs) > 1:
            self._n -= len(self._obs.pop(0))
            self._qpos.pop(0)

    def add_episode(self, obs: np.ndarray, physics_state: np.ndarray) -> None:
        self.add(obs, qpos_from_physics_state(self.model, physics_state))

    def _targets(self, qpos: np.ndarray) -> np.ndarray:
        h = self.hinge
        return np.concatenate([qpos[..., ~h], np.cos(qpos[..., h]), np.sin(qpos[..., h])], axis=-1)

    def _from_targets(self, y: np.ndarray) -> np.ndarray:
        h, nh = self.hinge, int(self.hinge.sum())
        q = np.empty((*y.shape[:-1], self.nq))
        rest = self.nq - nh
        q[..., ~h] = y[..., :rest]
        q[..., h] = np.arctan2(y[..., rest + nh:], y[..., rest:rest + nh])
        for adr in self.quats:
            quat = q[..., adr:adr + 4]
            norm = np.linalg.norm(quat, axis=-1, keepdims=True)
            q[..., adr:adr + 4] = np.where(norm > 1e-6, quat / np.maximum(norm, 1e-6), [1.0, 0, 0, 0])
        return q

    def fit(self) -> bool:
        """Refit the least-squares map on the pairs gathered so far. False when there are none."""
        if not self._obs:
            return False
        x = np.concatenate(self._obs)
        q = np.concatenate(self._qpos)
        xb = np.concatenate([x, np.ones((len(x), 1))], axis=1)
        y = self._targets(q)
        a = xb.T @ xb + self.ridge * len(xb) * np.eye(xb.shape[1])
        self.weights = np.linalg.solve(a, xb.T @ y)
        err = self._wrap(self._decode_fit(x) - q)
        self.fit_error = float(np.sqrt(np.mean(err**2)))
        return True

    def _wrap(self, d: np.ndarray) -> np.ndarray:
        d = d.copy()
        d[..., self.hinge] = (d[..., self.hinge] + np.pi) % (2 * np.pi) - np.pi
        return d

    def _decode_fit(self, obs: np.ndarray) -> np.ndarray:
        xb = np.concatenate([obs, np.ones((*obs.shape[:-1], 1))], axis=-1)
        return self._from_targets(xb @ self.weights)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        if self.exact is not None:
            return self.exact(obs)
        if self.weights is None:
            raise RuntimeError("QposDecoder has no pairs to fit yet: add() episodes first, then fit()")
        return self._decode_fit(obs)

    def trajectories(self, pred_obs: np.ndarray, qpos_now: np.ndarray | None = None) -> np.ndarray:
        """Predicted observation trajectories (..., H+1, S) -> qpos trajectories (..., H+1, nq).

        With ``qpos_now`` the trajectories are anchored: step 0 is exactly the robot's current
        pose and later steps add the decoded change (hinge angles unwrapped along time), so a
        decoder bias or an unobserved coordinate (e.g. cheetah's x) does not shift the ghosts."""
        q = self(pred_obs)
        h = self.hinge
        q[..., h] = np.unwrap(q[..., h], axis=-2)
        if qpos_now is None:
            return q
        anchored = q - q[..., :1, :] + np.asarray(qpos_now, dtype=np.float64)
        for adr in self.quats:  # orientations: the decoded ones (differences of quaternions don't add)
            anchored[..., adr:adr + 4] = q[..., adr:adr + 4]
        return anchored


class BodyKinematics:
    """qpos -> world positions of the robot's moving bodies (their centres of mass, ``xipos``),
    plus the skeleton segments (parent COM -> joint anchor -> COM) that draw them."""

    def __init__(self, model: mujoco.MjModel):
        self.model = model
        self.data = mujoco.MjData(model)
        self.bodies = np.array([b for b in range(1, model.nbody) if model.body_weldid[b] != 0], dtype=int)
        if len(self.bodies) == 0:  # nothing moves: draw every body
            self.bodies = np.arange(1, model.nbody)
        self.names = [model.body(int(b)).name or f"body{b}" for b in self.bodies]
        index = {int(b): i for i, b in enumerate(self.bodies)}
        self._parent = np.array([index.get(int(model.body_parentid[b]), -1) for b in self.bodies])

    @property
    def count(self) -> int:
        return len(self.bodies)

    def positions(self, qpos: np.ndarray) -> np.ndarray:
        """(..., nq) -> body COM positions (..., B, 3)."""
        return self.poses(qpos)[0]

    def poses(self, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(..., nq) -> body COMs and joint anchors, each (..., B, 3), in one kinematics batch."""
        qpos = np.asarray(qpos, dtype=np.float64)
        flat = qpos.reshape(-1, self.model.nq)
        com = np.empty((len(flat), self.count, 3))
        anchor = np.empty((len(flat), self.count, 3))
        m, d = self.model, self.data
        for i, q in enumerate(flat):
            d.qpos[:] = q
            mujoco.mj_kinematics(m, d)
            com[i] = d.xipos[self.bodies]
            anchor[i] = d.xpos[self.bodies]
        shape = (*qpos.shape[:-1], self.count, 3)
        return com.reshape(shape), anchor.reshape(shape)

    def from_data(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """Body COMs and joint anchors of a live ``MjData`` (no kinematics call: it is current)."""
        return data.xipos[self.bodies].copy(), data.xpos[self.bodies].copy()

    def skeleton_array(self, com: np.ndarray, anchor: np.ndarray) -> np.ndarray:
        """Line strips for a batch of poses (..., B, 3) -> (..., B, 3, 3): parent COM -> joint anchor
        -> COM per body (a root body's strip starts with its anchor twice), so that Rerun can take
        the whole batch as one array."""
        com, anchor = np.asarray(com), np.asarray(anchor)
        p = self._parent
        start = np.where((p >= 0)[:, None], com[..., np.maximum(p, 0), :], anchor)
        return np.stack([start, anchor, com], axis=-2)
