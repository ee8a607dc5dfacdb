"""Task functions for the example two-link arm (``sim/assets/arm2.xml``).

A bring-your-own robot is an MJCF file plus these three functions, named in a launch file as
``"module:function"`` import paths (never evaluated strings)."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

XML = Path(__file__).parent / "assets" / "arm2.xml"


def reset(model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator) -> None:
    """Random arm pose and a random reachable target in the plane."""
    data.qpos[:] = rng.uniform(-np.pi, np.pi, size=model.nq)
    radius, angle = rng.uniform(0.05, 0.2), rng.uniform(-np.pi, np.pi)
    sid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "target")
    model.site_pos[sid, :2] = radius * np.cos(angle), radius * np.sin(angle)


def observe(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """cos/sin of both joints, joint velocities, and the fingertip-to-target vector."""
    tip = data.site("fingertip").xpos[:2]
    target = data.site("target").xpos[:2]
    return np.concatenate([np.cos(data.qpos), np.sin(data.qpos), data.qvel, target - tip])


def reward(model: mujoco.MjModel, data: mujoco.MjData) -> float:
    """1 inside the target, decaying smoothly with distance, minus a small effort cost."""
    dist = float(np.linalg.norm(data.site("fingertip").xpos[:2] - data.site("target").xpos[:2]))
    return float(np.exp(-((dist / 0.05) ** 2))) - 0.01 * float(np.sum(np.square(data.ctrl)))
