"""Dream videos: what the world model imagines from a real start state under the real actions, rendered by
MuJoCo's camera beside what really happened, with the divergence (state error over time) underneath.

``dream(model, episode, step, horizon)`` rolls the episode's own actions out through every member;
``render_dream`` draws, per step, the real frame (the recorded physics state) and the imagined one (the
predicted state mapped back to joint positions by the Rerun ghosts' ``QposDecoder``, anchored at the real
start pose), and the error curve of each member with a cursor. ``write_mp4`` writes it atomically.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import NamedTuple

import mujoco
import numpy as np
import torch

from robot_wm.data.episode import Episode
from robot_wm.model.ensemble import WorldModel
from robot_wm.model.imagine import imagine
from robot_wm.viz.kinematics import QposDecoder


class Dream(NamedTuple):
    real: np.ndarray         # (K+1, S) the recorded states from the start step
    imagined: np.ndarray     # (E, K+1, S) every member's prediction (step 0: the real start state)
    error: np.ndarray        # (E, K+1) RMS over dimensions of (imagined - real) in units of the data's std
    physics: np.ndarray      # (K+1, P) the recorded physics states (what the real frames show)
    step: int                # the episode step the dream starts at


def dream(model: WorldModel, episode: Episode, step: int = 0, horizon: int | None = None) -> Dream:
    """Roll ``episode``'s actions from ``step`` (``horizon`` of them, default: to the episode's end) out
    through every member of ``model`` (mean predictions, open loop: the model never sees the real states)."""
    n = len(episode.action)
    if not 0 <= step < n:
        raise ValueError(f"--step {step} is out of range: the episode has {n} steps (0 to {n - 1})")
    k = n - step if horizon is None else horizon
    if not 1 <= k <= n - step:
        raise ValueError(f"--horizon {horizon}: expected 1 to {n - step} (the steps left after step {step})")
    acts = torch.as_tensor(episode.action[step:step + k], dtype=torch.float32)
    start = torch.as_tensor(episode.obs[step], dtype=torch.float32)
    with torch.inference_mode():
        states = imagine(model.eval(), start, acts[None], keep_states=True).states[:, 0].numpy()  # (E, K+1, S)
    real = episode.obs[step:step + k + 1]
    std = model.obs_norm.std.detach().cpu().numpy()
    err = np.sqrt(np.mean(((states - real) / std) ** 2, axis=-1))
    return Dream(real, states, err, episode.physics_state[step:step + k + 1], step)


def _error_strip(d: Dream, width: int, height: int, period: float) -> tuple[np.ndarray, np.ndarray]:
    """The members' error curves (and their mean) as an RGB image (height, width, 3), and the image column
    of each step (for the cursor)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    ax = fig.add_axes((0.08, 0.25, 0.9, 0.62))
    t = np.arange(d.error.shape[1]) * period
    for e, curve in enumerate(d.error):
        ax.plot(t, curve, lw=0.8, alpha=0.6, label=f"member {e}")
    ax.plot(t, d.error.mean(0), color="black", lw=1.6, label="mean")
    ax.set_xlim(t[0], max(t[-1], period))
    ax.set_ylim(0, max(float(d.error.max()) * 1.05, 1e-3))
    ax.set_xlabel("seconds after the start state", fontsize=7, labelpad=1)
    ax.set_title("left: real   right: imagined   below: state error (data std units) per member",
                 fontsize=7, pad=2)
    ax.tick_params(labelsize=6, pad=1)
    ax.legend(fontsize=5, ncol=min(6, d.error.shape[0] + 1), loc="upper left", frameon=False)
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    if img.shape[:2] != (height, width):  # a backend rounding the figure size by a pixel
        img = np.pad(img, ((0, max(0, height - img.shape[0])), (0, max(0, width - img.shape[1])), (0, 0)),
                     constant_values=255)[:height, :width]
    columns = np.round(ax.transData.transform(np.stack([t, np.zeros_like(t)], 1))[:, 0]).astype(int)
    return img, np.clip(columns, 0, img.shape[1] - 1)


def render_dream(env, d: Dream, decoder: QposDecoder, member: int | None = None, size: tuple[int, int] = (240, 320),
                 camera: int | str | None = None) -> np.ndarray:
    """Frames (K+1, H, W, 3) uint8: [real | imagined] over the error strip. ``member`` None shows the mean
    of the members' predicted states; an index shows that member alone."""
    h, w = size
    model = env.model
    data = mujoco.MjData(model)
    cam = camera if camera is not None else (0 if model.ncam > 0 else -1)
    shown = d.imagined.mean(0) if member is None else d.imagined[member]
    mujoco.mj_setState(model, data, d.physics[0], mujoco.mjtState.mjSTATE_FULLPHYSICS)
    qpos0 = data.qpos.copy()
    q_imagined = decoder.trajectories(shown, qpos_now=qpos0)  # (K+1, nq), anchored at the real start pose
    strip, cursor = _error_strip(d, 2 * w, h // 2 // 16 * 16, env.control_timestep)
    frames = np.empty((len(shown), h + strip.shape[0], 2 * w, 3), np.uint8)
    with mujoco.Renderer(model, height=h, width=w) as r:
        for k in range(len(shown)):
            mujoco.mj_setState(model, data, d.physics[k], mujoco.mjtState.mjSTATE_FULLPHYSICS)
            mujoco.mj_forward(model, data)
            r.update_scene(data, camera=cam)
            frames[k, :h, :w] = r.render()
            data.qpos[:] = q_imagined[k]
            data.qvel[:] = 0.0
            mujoco.mj_forward(model, data)
            r.update_scene(data, camera=cam)
            frames[k, :h, w:] = r.render()
            frames[k, h:] = strip
            frames[k, h:, max(cursor[k] - 1, 0):cursor[k] + 1] = (220, 30, 30)
    return frames


def write_mp4(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """H.264 mp4 via imageio's bundled ffmpeg, written to a temp file beside ``path`` then renamed."""
    import imageio.v3 as iio

    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"--out {str(path)!r}: expected a path ending in .mp4")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".mp4", dir=path.parent)
    os.close(fd)
    try:
        iio.imwrite(tmp, frames, fps=fps, codec="libx264", macro_block_size=16)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def log_dream(path: str | Path, frames: np.ndarray, d: Dream, period: float) -> Path:
    """The frames and the error curves in a .rrd file (timeline ``dream_time``, seconds from the start)."""
    import rerun as rr

    rec = rr.RecordingStream("robot-wm-dream")
    rec.save(str(path))
    for k, frame in enumerate(frames):
        rec.set_time("dream_time", duration=k * period)
        rec.log("dream/video", rr.Image(frame))
        rec.log("dream/error/mean", rr.Scalars(float(d.error[:, k].mean())))
        for e in range(d.error.shape[0]):
            rec.log(f"dream/error/member_{e}", rr.Scalars(float(d.error[e, k])))
    rec.flush()
    rec.disconnect()
    return Path(path)
