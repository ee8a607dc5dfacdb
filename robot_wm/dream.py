"""Dream videos: what the world model imagines from a real start state under the real actions, rendered by
MuJoCo's camera beside what really happened, with the divergence (state error over time) underneath.

``dream(model, episode, step, horizon)`` rolls the episode's own actions out through every member;
``render_dream`` draws, per step, the real frame (the recorded physics state) and the imagined one (the
predicted state mapped back to joint positions by the Rerun ghosts' ``QposDecoder``, anchored at the real
start pose), and the error curve of each member with a cursor. ``write_video`` writes it (mp4 or gif) atomically.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import NamedTuple

import mujoco
import numpy as np
import torch

from robot_wm.data.episode import Episode
from robot_wm.io import atomic_write_bytes, check_parent_folder, check_replaceable
from robot_wm.model.ensemble import WorldModel
from robot_wm.model.imagine import imagine
from robot_wm.viz.kinematics import QposDecoder
from robot_wm.whatif import check_query
from sim.env import renderer_for


class Dream(NamedTuple):
    real: np.ndarray         # (K+1, S) the recorded states from the start step
    imagined: np.ndarray     # (E, K+1, S) every member's prediction (step 0: the real start state)
    error: np.ndarray        # (E, K+1) RMS over dimensions of (imagined - real) in units of the data's std
    physics: np.ndarray      # (K+1, P) the recorded physics states (what the real frames show)
    step: int                # the episode step the dream starts at


def dream_span(n: int, step: int, horizon: int | None) -> int:
    """The steps a dream from ``step`` of an ``n``-step episode imagines (``horizon``, default: to its end),
    or an error naming --step / --horizon."""
    if not 0 <= step < n:
        raise ValueError(f"--step {step} is out of range: the episode has {n} steps (0 to {n - 1})")
    k = n - step if horizon is None else horizon
    if not 1 <= k <= n - step:
        raise ValueError(f"--horizon {horizon}: expected 1 to {n - step} (the steps left after step {step})")
    return k


def dream(model: WorldModel, episode: Episode, step: int = 0, horizon: int | None = None) -> Dream:
    """Roll ``episode``'s actions from ``step`` (``horizon`` of them, default: to the episode's end) out
    through every member of ``model`` (mean predictions, open loop: the model never sees the real states)."""
    k = dream_span(len(episode.action), step, horizon)
    # a start the model cannot score (whatif refuses it) was dreamed into a video of inf errors, exit 0 (probe 29)
    check_query(model, episode.obs[step], episode.action[step:step + k][None])
    acts = torch.as_tensor(episode.action[step:step + k], dtype=torch.float32)
    start = torch.as_tensor(episode.obs[step], dtype=torch.float32)
    with torch.inference_mode():
        states = imagine(model.eval(), start, acts[None], keep_states=True).states[:, 0].numpy()  # (E, K+1, S)
    real = episode.obs[step:step + k + 1]
    err = state_error(states, real, model.obs_norm.std.detach().cpu().numpy())
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
    # a model driven past its range predicts inf/NaN: those points are left out ("Axis limits cannot be NaN": probe 12)
    error = np.where(np.isfinite(d.error), d.error, np.nan)
    for e, curve in enumerate(error):
        ax.plot(t, curve, lw=0.8, alpha=0.6, label=f"member {e}")
    ax.plot(t, np.nanmean(error, 0) if np.isfinite(error).any(0).all() else error.mean(0), color="black", lw=1.6,
            label="mean")
    ax.set_xlim(t[0], max(t[-1], period))
    top = float(np.nanmax(error)) if np.isfinite(error).any() else 0.0
    ax.set_ylim(0, max(top * 1.05, 1e-3))
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


class Panels:
    """Renders the robot as MuJoCo's camera sees it: from a recorded physics state (real) or from joint
    positions (imagined, velocities zero). One reused renderer; ``close`` frees it."""

    def __init__(self, model: mujoco.MjModel, size: tuple[int, int] = (240, 320), camera: int | str | None = None):
        self.model, self.data = model, mujoco.MjData(model)
        self.camera = camera if camera is not None else (0 if model.ncam > 0 else -1)
        try:
            self.renderer = renderer_for(model, *size)
        except Exception as e:  # noqa: BLE001 - no OpenGL: AttributeError (osmesa missing), FatalError (glfw, no display)
            gl = os.environ.get("MUJOCO_GL", "")
            raise RuntimeError(f"MUJOCO_GL={gl!r}: MuJoCo could not open an OpenGL context to render "
                               f"({type(e).__name__}: {str(e).strip()[:120]})") from None

    def _render(self) -> np.ndarray:
        mujoco.mj_forward(self.model, self.data)
        self.renderer.update_scene(self.data, camera=self.camera)
        return self.renderer.render()

    def real(self, physics: np.ndarray) -> np.ndarray:
        mujoco.mj_setState(self.model, self.data, physics, mujoco.mjtState.mjSTATE_FULLPHYSICS)
        return self._render()

    def imagined(self, qpos: np.ndarray) -> np.ndarray:
        self.data.qpos[:], self.data.qvel[:] = qpos, 0.0
        return self._render()

    def qpos(self, physics: np.ndarray) -> np.ndarray:
        return physics[1:1 + self.model.nq].copy()  # mjSTATE_FULLPHYSICS: [time, qpos, qvel, ...]

    def close(self) -> None:
        self.renderer.close()


def state_error(imagined: np.ndarray, real: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(E, K+1, S) predictions against (K+1, S) real states -> (E, K+1) RMS error in units of ``std``."""
    return np.sqrt(np.mean(((imagined - real) / std) ** 2, axis=-1))


def render_dream(env, d: Dream, decoder: QposDecoder, member: int | None = None, size: tuple[int, int] = (240, 320),
                 camera: int | str | None = None) -> np.ndarray:
    """Frames (K+1, H, W, 3) uint8: [real | imagined] over the error strip. ``member`` None shows the mean
    of the members' predicted states; an index shows that member alone."""
    h, w = size
    shown = d.imagined.mean(0) if member is None else d.imagined[member]
    check_video_memory(len(shown), size)
    panels = Panels(env.model, size, camera)
    q_imagined = decoder.trajectories(shown, qpos_now=panels.qpos(d.physics[0]))  # anchored at the real start
    strip, cursor = _error_strip(d, 2 * w, h // 2 // 16 * 16, env.control_timestep)
    frames = np.empty((len(shown), h + strip.shape[0], 2 * w, 3), np.uint8)
    try:
        for k in range(len(shown)):
            frames[k, :h, :w] = panels.real(d.physics[k])
            frames[k, :h, w:] = panels.imagined(q_imagined[k])
            frames[k, h:] = strip
            frames[k, h:, max(cursor[k] - 1, 0):cursor[k] + 1] = (220, 30, 30)
    finally:  # a second SIGTERM inside the close left "Exception ignored in Renderer.__del__" EGL tracebacks (31)
        from robot_wm.io import signals_deferred

        with signals_deferred():
            panels.close()
    return frames


VIDEO_COPIES = 3
"""A video's frames are in memory about this many times at once: the frames, the encoder's input, its output."""


def _video_bytes(frames: int, size: tuple[int, int]) -> int:
    h, w = size
    return frames * (h + h // 2 // 16 * 16) * 2 * w * 3 * VIDEO_COPIES


def video_fits(frames: int, size: tuple[int, int], available: int | None = None) -> bool:
    """Whether ``check_video_memory`` would accept the video."""
    from robot_wm.sysmem import MEMORY_SHARE, available_memory

    available = available_memory() if available is None else available
    return available is None or _video_bytes(frames, size) <= MEMORY_SHARE * available


def check_video_memory(frames: int, size: tuple[int, int], available: int | None = None) -> None:
    """Refuse a video whose frames cannot be held in memory (every frame is, until it is encoded): 23 frames at
    --width/--height 4096 asked 3.4 GiB and ended in a numpy traceback, nothing written (tenth probe)."""
    from robot_wm.sysmem import MEMORY_SHARE, available_memory

    available = available_memory() if available is None else available
    if not video_fits(frames, size, available):
        h, w = size
        raise ValueError(f"a video of {frames} frames of {2 * w}x{h + h // 2 // 16 * 16} pixels needs about "
                         f"{_video_bytes(frames, size) / 2**30:.1f} GiB; {available / 2**30:.1f} GiB is available "
                         f"and a video may take {MEMORY_SHARE:.0%} of it: lower --width/--height or the number of "
                         "steps")


VIDEO_SUFFIXES = (".mp4", ".gif")


def check_video_path(path: str | Path) -> Path:
    given, path = path, Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"--out {str(path)!r}: expected a path ending in {' or '.join(VIDEO_SUFFIXES)}")
    if path.is_dir():
        raise ValueError(f"--out {str(path)!r} is a directory: expected the path of the video file to write")
    check_parent_folder(path, "--out")
    check_replaceable(given, "--out", "a video", _is_video)  # as given: a trailing slash (a folder meant) is refused
    return path


def _is_video(head: bytes) -> bool:
    """The first bytes of an mp4 (an ``ftyp`` box) or a GIF."""
    return head[4:8] == b"ftyp" or head[:4] == b"GIF8"


def write_video(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """An H.264 .mp4 (imageio's bundled ffmpeg) or a looping .gif (Pillow), encoded in memory and written
    atomically: an older video there stays whole if encoding or writing fails."""
    import imageio.v3 as iio

    path = check_video_path(path)
    if path.suffix.lower() == ".mp4":
        data = iio.imwrite("<bytes>", frames, extension=".mp4", fps=fps, codec="libx264", macro_block_size=16)
    else:
        data = iio.imwrite("<bytes>", frames, extension=".gif", duration=1000.0 / fps, loop=0)
    try:  # ffmpeg encodes through a temporary file: on a full disk it left a cut, unreadable video, exit 0
        decoded = sum(1 for _ in iio.imiter(data, extension=path.suffix.lower()))
    except Exception:  # noqa: BLE001 - any decoder error means the same: the video is not whole
        decoded = 0
    if decoded != len(frames):
        raise OSError(errno.EIO, f"the video encoder produced {decoded} of {len(frames)} frames (a full disk or a "
                                 "file size limit?); nothing was written", str(path))
    atomic_write_bytes(path, data)
    return path


def log_dream(path: str | Path, frames: np.ndarray, d: Dream, period: float) -> Path:
    """The frames and the error curves in a .rrd file (timeline ``dream_time``, seconds from the start)."""
    from robot_wm.viz.logger import FLUSH_TIMEOUT_S, open_stream

    rec = open_stream("save", path=path, application_id="robot-wm-dream", blueprint=dream_blueprint())
    for k, frame in enumerate(frames):
        log_frame(rec, "dream", k * period, frame, d.error[:, k])
    rec.flush(timeout_sec=FLUSH_TIMEOUT_S)
    rec.disconnect()
    return Path(path)


def dream_blueprint(origin: str = "dream"):
    import rerun.blueprint as rrb

    return rrb.Blueprint(rrb.Vertical(rrb.Spatial2DView(origin=f"{origin}/video", name="real | imagined"),
                                      rrb.TimeSeriesView(origin=f"{origin}/error", name="state error (data std)"),
                                      row_shares=[3, 1]))


def log_frame(rec, origin: str, seconds: float, frame: np.ndarray, member_error: np.ndarray) -> None:
    """One [real | imagined] frame and the members' errors (and their mean) at ``seconds``."""
    import rerun as rr

    rec.set_time(f"{origin}_time", duration=seconds)
    rec.log(f"{origin}/video", rr.Image(frame))
    rec.log(f"{origin}/error/mean", rr.Scalars(float(np.mean(member_error))))
    for e, v in enumerate(member_error):
        rec.log(f"{origin}/error/member_{e}", rr.Scalars(float(v)))
