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


def _joint(model: mujoco.MjModel, name: str, q: float) -> int:
    """qpos address of hinge or slide joint ``name``, refusing a position outside its range."""
    jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
    if jid < 0:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(model.njnt)]
        raise ValueError(f"goal.joints names joint {name!r}, which the robot does not have; expected one of {names}")
    if int(model.jnt_type[jid]) not in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
        raise ValueError(f"goal.joints: joint {name!r} is not a hinge or slide joint (one position to set)")
    if not np.isfinite(q):
        raise ValueError(f"goal.joints.{name} = {q!r} is not finite")
    lo, hi = model.jnt_range[jid]
    if model.jnt_limited[jid] and not lo <= q <= hi:
        raise ValueError(f"goal.joints.{name} = {q:g} is outside the joint's range [{lo:g}, {hi:g}]")
    return int(model.jnt_qposadr[jid])


def goal_from_joints(env: Env, joints: dict[str, float], weights=None) -> Goal:
    """The state ``env`` would observe with ``joints`` (name -> position) set in its current physics state
    and every velocity zero. Weights default to 1 on the dimensions that those joints move and no other
    joint does, 0 elsewhere: a dimension that also depends on a joint left free (e.g. a fingertip position
    when only the shoulder is named) would pin that joint too."""
    if not joints:
        raise ValueError("goal.joints is empty; expected at least one joint name = position")
    model, nq = env.model, env.model.nq
    base = env.get_state().copy()
    qpos = base[1:1 + nq]  # a view: mjSTATE_FULLPHYSICS is [time, qpos, qvel, act, ...]
    base[1 + nq: 1 + nq + model.nv] = 0.0
    adrs = {name: _joint(model, name, q) for name, q in joints.items()}
    for name, q in joints.items():
        qpos[adrs[name]] = q
    target = env.observation_of_state(base)

    def moved_by(adr: int) -> np.ndarray:
        probe = base.copy()
        probe[1 + adr] += PROBE
        return np.abs(env.observation_of_state(probe) - target) > 1e-9

    named = {name: moved_by(adr) for name, adr in adrs.items()}
    for name, dims in named.items():
        if not dims.any():
            raise ValueError(f"goal.joints.{name}: the robot's observation does not change with joint {name!r} "
                             f"(the task does not observe it), so no goal can be set on it; use goal.state")
    if weights is None:
        others = np.zeros(target.shape, dtype=bool)
        for adr in sorted(set(range(nq)) - set(adrs.values())):
            others |= moved_by(adr)
        weights = (np.any(list(named.values()), axis=0) & ~others).astype(np.float32)
        if not weights.any():
            raise ValueError(f"goal.joints {sorted(joints)}: every observation dimension they move also moves with "
                             "other joints; name those too, or give goal.weights")
    return check_goal(target, weights, target.size)


def resolve_goal(env: Env, state: list[float] | None, joints: dict[str, float], weights: list[float] | None) -> Goal:
    """A goal config (``state`` or ``joints``, optional ``weights``) for ``env``'s current episode."""
    dim = env.observation_spec.dim
    if joints:
        return goal_from_joints(env, joints, weights)
    return check_goal(state, np.ones(dim) if weights is None else weights, dim)

