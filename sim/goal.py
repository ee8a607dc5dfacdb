"""Goal states for goal-conditioned planning: a target in the world model's state space (the flattened
observation) and per-dimension weights of the distance to it.

A goal is given as a full state, or as positions of named joints. Named joints become a full state the
way the robot itself would observe that pose: the episode's current physics state with those joints
moved (and every velocity zero), observed through the task's own observation function. The weights
then default to the dimensions those joints move, so the rest of the state (velocities, other bodies)
is left free.
"""

from __future__ import annotations

import mujoco
import numpy as np

from robot_wm.goal import Goal, check_goal
from sim.env import Env

PROBE = 1e-3
"""Joint displacement (rad or m) used to find which observation dimensions a joint moves."""


def _joint(model: mujoco.MjModel, name: str) -> int:
    jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
    if jid < 0:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(model.njnt)]
        raise ValueError(f"goal.joints names joint {name!r}, which the robot does not have; expected one of {names}")
    if int(model.jnt_type[jid]) not in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
        raise ValueError(f"goal.joints: joint {name!r} is not a hinge or slide joint (one position to set)")
    return int(model.jnt_qposadr[jid])


def goal_from_joints(env: Env, joints: dict[str, float], weights=None) -> Goal:
    """The state ``env`` would observe with ``joints`` (name -> position) set in its current physics state
    and every velocity zero; weights default to 1 on the dimensions those joints move, 0 elsewhere."""
    if not joints:
        raise ValueError("goal.joints is empty; expected at least one joint name = position")
    model, nq = env.model, env.model.nq
    base = env.get_state().copy()
    qpos = slice(1, 1 + nq)  # mjSTATE_FULLPHYSICS: [time, qpos, qvel, act, ...]
    base[1 + nq: 1 + nq + model.nv] = 0.0
    adrs = {name: _joint(model, name) for name in joints}
    for name, q in joints.items():
        if not np.isfinite(q):
            raise ValueError(f"goal.joints.{name} = {q!r} is not finite")
        base[qpos][adrs[name]] = q
    target = env.observation_of_state(base)
    if weights is None:
        moved = np.zeros(target.shape, dtype=bool)
        for adr in adrs.values():
            probe = base.copy()
            probe[qpos][adr] += PROBE
            moved |= np.abs(env.observation_of_state(probe) - target) > 1e-9
        weights = moved.astype(np.float32)
    return check_goal(target, weights, target.size)


def resolve_goal(env: Env, state: list[float] | None, joints: dict[str, float], weights: list[float] | None) -> Goal:
    """A goal config (``state`` or ``joints``, optional ``weights``) for ``env``'s current episode."""
    dim = env.observation_spec.dim
    if joints:
        return goal_from_joints(env, joints, weights)
    return check_goal(state, np.ones(dim) if weights is None else weights, dim)

