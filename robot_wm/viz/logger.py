"""``RerunLogger``: everything robot-wm logs to Rerun, from plain numpy arrays. Torch-free, so the
deploy runtime can use it as it is; the training run's ``RerunObserver`` feeds it too.

One explicit ``rr.RecordingStream`` per logger (no global recording state). Sinks:

* ``save``  - a .rrd file,
* ``spawn`` - a live viewer (started if none is running),
* ``serve`` - an in-process gRPC server bound to 127.0.0.1:9876 unless an address is given.

Cost control: no Rerun call per control step. The per-step series (state, action, reward,
latency, the logger's own cost) and the robot's pose (qpos, turned into body positions and
skeleton in one kinematics batch) are buffered in numpy and sent as one ``send_columns`` batch
per entity every ``batch_steps`` steps (default: ``every_n_steps``), at episode boundaries and on
``flush``/``close``; so is the realised return (logged at its plan's step once known). The plan
(ghosts, predictions, scores, predicted return) is logged every ``every_n_steps`` steps, camera
frames every ``camera_every_n_steps``; the K ghosts' body trajectories are one ``LineStrips3D``
batch, their constant styling static. A live viewer sees the per-step plots up to
``batch_steps`` steps late.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import socket
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import rerun as rr

from robot_wm.io import append_only
from robot_wm.viz import paths as P
from robot_wm.viz.blueprint import default_blueprint
from robot_wm.viz.kinematics import BodyKinematics

log = logging.getLogger(__name__)

APP_ID = "robot-wm"
DEFAULT_SERVE = ("127.0.0.1", 9876)
MODES = ("save", "spawn", "serve")

# viridis-like anchors: low predicted return -> dark blue, high -> yellow
_RAMP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)
CHOSEN_COLOR = [255, 64, 160]
ROBOT_COLOR = [255, 140, 0]
MEMBER_COLOR = [200, 200, 200, 110]
PROPOSAL_COLOR = [170, 110, 255, 170]  # the policy's proposals: violet, thinner than the elites


def spawn_viewer(port: int) -> None:
    """A desktop viewer on ``port`` (unless one already listens there), its gRPC server bound to loopback:
    ``rr.spawn`` starts it with Rerun's default bind, 0.0.0.0, so `--rerun spawn` served the recording to the
    network without a word (probe 12). Rerun's own spawner, with our bind address added."""
    import rerun_bindings

    rerun_bindings.spawn(port=port, extra_args=["--bind", "127.0.0.1"], extra_env=[("RERUN_APP_ONLY", "true")])


def return_colors(returns: np.ndarray) -> np.ndarray:
    """(K,) predicted returns -> (K, 3) uint8 colours, lowest to highest along a viridis ramp."""
    r = np.asarray(returns, dtype=np.float64)
    span = np.ptp(r) if r.size and np.all(np.isfinite(r)) else 0.0
    x = (r - r.min()) / span if span > 0 else np.ones_like(r)
    pos = x * (len(_RAMP) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(_RAMP) - 2)
    frac = (pos - lo)[:, None]
    return (_RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac).astype(np.uint8)


class _Vectors:
    """1-D float64 vectors -> Rerun's ``TensorData`` arrow array, built directly from the numpy buffer.

    ``rr.BarChart(values, abscissa=...)`` converts each tensor through a general path that costs
    ~0.5 ms per tensor (and probes for ``dateutil`` with a failing import every time); this costs a
    tenth of it. The first use compares the result with Rerun's own conversion and falls back to it
    for good on any difference (a Rerun version with another layout)."""

    def __init__(self):
        self.ok: bool | None = None  # None: not checked yet

    def _build(self, v: np.ndarray) -> pa.Array:
        from rerun.components import TensorDataBatch

        dt = TensorDataBatch._ARROW_DATATYPE
        shape = pa.ListArray.from_arrays(pa.array(np.array([0, 1], np.int32)), pa.array(np.array([len(v)], np.uint64)),
                                         type=dt.field("shape").type)
        names = pa.nulls(1, dt.field("names").type)
        union = dt.field("buffer").type
        idx = [f.name for f in union].index("F64")
        children = [pa.nulls(0, type=f.type) for f in union]
        children[idx] = pa.ListArray.from_arrays(pa.array(np.array([0, len(v)], np.int32)), pa.array(v),
                                                 type=union[idx].type)
        buffer = pa.Array.from_buffers(union, 1, [None, pa.py_buffer(np.array([idx], np.int8)),
                                                  pa.py_buffer(np.array([0], np.int32))], children=children)
        return pa.StructArray.from_arrays([shape, names, buffer], fields=list(dt))

    def __call__(self, values) -> pa.Array | np.ndarray:
        v = np.ascontiguousarray(values, dtype=np.float64).ravel()
        if self.ok is False:
            return v
        try:
            arr = self._build(v)
            if self.ok is None:
                from rerun.components import TensorDataBatch

                self.ok = arr.equals(TensorDataBatch(v).as_arrow_array())
                if not self.ok:
                    log.debug("rerun: fast tensor conversion differs from Rerun's; using Rerun's")
                    return v
            return arr
        except Exception as e:  # noqa: BLE001 - another Rerun layout: its own conversion, always
            log.debug("rerun: fast tensor conversion failed (%s); using Rerun's", e)
            self.ok = False
            return v


_vectors = _Vectors()


def parse_address(address: str | None, default: tuple[str, int] = DEFAULT_SERVE) -> tuple[str, int]:
    """'host:port', ':port', 'port' or 'host' -> (host, port), the port from 1 to 65535."""
    if not address:
        return default
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = (default[0], address) if address.isdigit() else (address, str(default[1]))
    try:
        host, port = (host or default[0]).strip("[]"), int(port)
    except ValueError:
        raise ValueError(f"rerun address {address!r} must look like host:port (e.g. 127.0.0.1:9876)") from None
    # 99999 was an OverflowError from bind; 0 served on a port nobody was told (probe 13)
    if not 1 <= port <= 65535:
        raise ValueError(f"rerun address {address!r}: port {port} must be from 1 to 65535 (0, the system's choice, "
                         "would leave you no address to connect to)")
    return host, port


def serve_address(address: str | None, flag: str = "--rerun-address") -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """The IP and port that serve binds for ``address``; ValueError naming it where it cannot."""
    host, port = parse_address(address)
    host = "127.0.0.1" if host == "localhost" else host
    try:
        return ipaddress.ip_address(host), port
    except ValueError:  # Rerun's server binds an IP literal ("invalid socket address syntax" otherwise)
        raise ValueError(f"{flag} {address!r}: serve binds an IP address (e.g. 127.0.0.1, or 0.0.0.0 "
                         f"for every interface), not the name {host!r}") from None


PREFLIGHT_BYTES = 1 << 20
FLUSH_TIMEOUT_S = 60.0
"""How long closing a recording waits for Rerun to write what it holds (a disk that filled up mid-run)."""


def check_writable(path: Path) -> None:
    """Write (and remove) a megabyte beside ``path`` first: where Rerun cannot write its file (a full disk, a file
    size limit) its sink logged the error and ``save`` then blocked forever on a lock, holding the run's lock and
    deaf to SIGTERM (ninth probe). An OSError here names the file like any other write."""
    probe = path.with_name(f".{path.name}.{os.getpid()}.preflight")
    if append_only(path.parent):  # the megabyte could not be removed: one more left by each command (probe 39)
        raise OSError(errno.EPERM, "Operation not permitted: its folder is append-only (chattr +a)", str(path))
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * PREFLIGHT_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def check_port_free(host: str, port: int, flag: str = "--rerun-address") -> None:
    """Refuse to serve on an address something already listens on (Rerun's server would otherwise fail in
    its own thread and the run would go on logging into nothing)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free; a listener is not
        try:
            s.bind((host, port))
        except OSError as e:
            why = (f"{host} is not an address of this machine; serve on one of its own (127.0.0.1 by default) with "
                   f"{flag}" if e.errno == errno.EADDRNOTAVAIL else  # "another viewer may hold it" (probe 29)
                   f"another viewer or server may hold it; choose another port with {flag}")
            raise ValueError(f"rerun serve address {host}:{port} cannot be bound ({e.strerror}): {why}") from None


def open_stream(mode: str, *, path: str | Path | None = None, address: str | None = None,
                application_id: str = APP_ID, recording_name: str | None = None,
                blueprint=None, flag: str = "--rerun-address") -> rr.RecordingStream:
    """A new recording stream with its sink attached and the default layout sent. ``flag``: the command's own
    flag for the address, named in its errors (drive's is --serve)."""
    if mode not in MODES:
        raise ValueError(f"rerun mode {mode!r}; expected one of: {', '.join(MODES)}")
    rec = rr.RecordingStream(application_id)
    if recording_name:
        rec.send_recording_name(recording_name)
    bp = default_blueprint() if blueprint is None else blueprint
    if mode == "save":
        if path is None:
            raise ValueError("rerun mode 'save' needs a path")
        from robot_wm.config import check_rrd_target

        check_rrd_target(str(path), "rerun recording")  # --rrd RUN/metrics.jsonl replaced the run's log
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        check_writable(Path(path))
        rec.save(path, default_blueprint=bp)
    elif mode == "spawn":
        _, port = parse_address(address, ("127.0.0.1", 9876))
        from robot_wm.viz.cli import display_problem

        if why := display_problem():
            # the viewer died at once; the command ran on and failed 60 s later on "Flush timed out" (probes 12, 14)
            raise ValueError(f"--rerun spawn opens Rerun's desktop viewer, which needs a display ({why}): record "
                             "with --rerun save and open the file on a machine with one, or watch it live from "
                             "another machine with --rerun serve")
        try:
            spawn_viewer(port)
            rec.connect_grpc(f"rerun+http://127.0.0.1:{port}/proxy", default_blueprint=bp)
        except RuntimeError as e:  # no viewer executable on PATH
            first = (str(e).strip().splitlines() or ["no viewer"])[0]
            raise ValueError(f"--rerun spawn: {first} Put the environment's bin folder (where `rerun` is) on PATH, "
                             "or record with --rerun save and open the file with `robot-wm view`") from None
    else:
        ip, port = serve_address(address, flag)
        host = str(ip)
        check_port_free(host, port, flag)
        shown = f"[{host}]" if ip.version == 6 else host  # Rerun takes IPv6 in brackets (a traceback: tenth probe)
        rr.set_sinks(rr.GrpcServerSink(bind_ip=shown, port=port), default_blueprint=bp, recording=rec)
        log.warning("rerun: serving on rerun+http://%s:%d/proxy (connect with `rerun --connect "
                    "rerun+http://%s:%d/proxy`)", shown, port, shown, port)
    return rec


class RerunLogger:
    """Logs one robot's control loop (and, optionally, training) to one recording stream.

    Call order per control step: ``begin_step`` -> ``log_step`` (every step) -> ``log_plan`` /
    ``log_camera`` when ``plan_due`` / ``camera_due`` say so. Steps count globally across episodes
    on the ``step`` timeline; ``begin_episode`` marks episode boundaries. Per-step data is buffered
    and sent every ``batch_steps`` steps (see the module docstring); ``close`` sends the rest."""

    def __init__(self, rec: rr.RecordingStream, *, mj_model=None, every_n_steps: int = 10,
                 camera_every_n_steps: int = 10, obs_names: list[str] | None = None,
                 action_names: list[str] | None = None, batch_steps: int | None = None):
        self.rec = rec
        self.every_n_steps = max(1, int(every_n_steps))
        self.batch_steps = max(1, int(self.every_n_steps if batch_steps is None else batch_steps))
        self.camera_every_n_steps = int(camera_every_n_steps)
        self.kin = BodyKinematics(mj_model) if mj_model is not None else None
        self.obs_names, self.action_names = obs_names, action_names
        self.step = -1           # global control step
        self.t = -1              # step within the episode
        self.episode = -1
        self.plans_logged = 0
        self.log_seconds = 0.0   # time spent inside this logger (its own cost)
        self._rewards: list[float] = []
        self._pending: list[tuple[int, int, int]] = []  # (t, global step, horizon) awaiting realised return
        self._series_done: set[str] = set()
        self._epoch = 0
        # buffered until the next flush: entity -> (steps, flat values, values per step)
        self._buf: defaultdict[str, tuple[list[int], list[np.ndarray], list[int]]] = defaultdict(
            lambda: ([], [], []))
        self._poses: tuple[list[int], list[np.ndarray]] = ([], [])            # (steps, qpos)
        self._pose_pts: tuple[list[int], list[np.ndarray], list[np.ndarray]] = ([], [], [])  # from MjData
        self._unflushed = 0       # control steps since the last flush
        self._step_cost = None    # seconds spent in this logger during the current step
        rec.log(P.WORLD, rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)

    # --- opening ----------------------------------------------------------------------------
    @classmethod
    def open(cls, mode: str, *, path: str | Path | None = None, address: str | None = None,
             application_id: str = APP_ID, recording_name: str | None = None, **kwargs) -> RerunLogger:
        """``open_stream`` + a logger on it. kwargs: mj_model, every_n_steps, camera_every_n_steps,
        obs_names, action_names, batch_steps."""
        return cls(open_stream(mode, path=path, address=address, application_id=application_id,
                               recording_name=recording_name), **kwargs)

    @classmethod
    def from_config(cls, cfg, run_dir: str | Path, *, label: str = "run", **kwargs) -> RerunLogger | None:
        """From a ``RerunConfig`` (``cfg.rerun``); None when mode is 'off'. Saves to ``cfg.path`` or
        RUN_DIR/rerun/<label>-<timestamp>.rrd. kwargs as for ``open`` (e.g. batch_steps)."""
        if cfg.mode == "off":
            return None
        path = Path(cfg.path) if cfg.path else default_rrd_path(run_dir, label)
        kwargs.setdefault("every_n_steps", cfg.every_n_steps)
        kwargs.setdefault("camera_every_n_steps", cfg.camera_every_n_steps)
        logger = cls.open(cfg.mode, path=path, address=cfg.address, recording_name=f"{Path(run_dir).name} {label}",
                          **kwargs)
        logger.path = path if cfg.mode == "save" else None
        return logger

    path: Path | None = None

    # --- time -------------------------------------------------------------------------------
    def begin_episode(self, index: int, phase: str = "") -> None:
        self._flush_realised(final=True)
        self._end_step_cost()
        self.flush()  # the buffered rows belong to the previous episode
        self.episode, self.t, self._rewards, self._pending = index, -1, [], []
        self.rec.set_time(P.EPISODE, sequence=index)
        self.rec.set_time(P.STEP, sequence=self.step + 1)
        self.rec.log(P.EVENTS, rr.TextLog(f"episode {index} ({phase}) starts", level="INFO"))

    def begin_step(self) -> int:
        """Advance to the next control step; returns the step index within the episode. Sends the
        buffered rows when ``batch_steps`` steps have gathered."""
        self._end_step_cost()
        self.step += 1
        self.t += 1
        self._step_cost = 0.0
        if self._unflushed >= self.batch_steps:
            self.flush()  # its cost counts towards this step's log_ms
        self._unflushed += 1
        self.rec.set_time(P.STEP, sequence=self.step)
        return self.t

    def plan_due(self, t: int | None = None) -> bool:
        return ((self.t if t is None else t) % self.every_n_steps) == 0

    def camera_due(self, t: int | None = None) -> bool:
        n = self.camera_every_n_steps
        return n > 0 and ((self.t if t is None else t) % n) == 0

    # --- every step -------------------------------------------------------------------------
    def _names(self, entity: str, names: list[str] | None, n: int, prefix: str, width: float = 1.5,
               colors=None) -> None:
        if entity in self._series_done:
            return
        self._series_done.add(entity)
        names = names if names and len(names) == n else [f"{prefix}[{i}]" for i in range(n)]
        self.rec.log(entity, rr.SeriesLines(names=names, widths=[width] * n, colors=colors), static=True)

    def _dim_colors(self, n: int, alpha: int = 255) -> np.ndarray:
        hues = np.linspace(0, 1, n, endpoint=False)
        rgb = np.stack([0.5 + 0.5 * np.cos(2 * np.pi * (hues + o)) for o in (0, 1 / 3, 2 / 3)], -1)
        return np.concatenate([(rgb * 230).astype(np.uint8), np.full((n, 1), alpha, np.uint8)], -1)

    def log_step(self, obs: np.ndarray, action: np.ndarray, reward: float, *, latency_s: float | None = None,
                 data=None, qpos: np.ndarray | None = None) -> None:
        """The state reached (``obs``: the observation after the step), the action that got there,
        its reward, the planner's latency, and the robot's bodies (from a live ``MjData`` or qpos).
        Buffered: sent with the next flush."""
        t0 = time.perf_counter()
        obs = np.asarray(obs, dtype=np.float64).ravel()
        action = np.asarray(action, dtype=np.float64).ravel()
        if P.STATE_ACTUAL not in self._series_done:
            self._names(P.STATE_ACTUAL, self.obs_names, obs.size, "obs", 2.0, self._dim_colors(obs.size))
        if P.ACTION not in self._series_done:
            self._names(P.ACTION, self.action_names, action.size, "action")
        step = self.step
        self._put(P.STATE_ACTUAL, step, obs)
        self._put(P.ACTION, step, action)
        self._put(P.REWARD, step, float(reward))
        if latency_s is not None:
            self._put(P.LATENCY, step, latency_s * 1e3)
        if self.kin is not None:
            if data is not None:  # current already: no kinematics call
                com, anchor = self.kin.from_data(data)
                self._pose_pts[0].append(step)
                self._pose_pts[1].append(com)
                self._pose_pts[2].append(anchor)
            elif qpos is not None:  # kinematics at flush time, one batch
                self._poses[0].append(step)
                self._poses[1].append(np.array(qpos, dtype=np.float64).ravel())
        self._rewards.append(float(reward))
        self._flush_realised()
        self._spent(t0)

    def _put(self, entity: str, step: int, values) -> None:
        steps, vals, sizes = self._buf[entity]
        v = np.atleast_1d(np.asarray(values, dtype=np.float64)).ravel()
        steps.append(step)
        vals.append(v)
        sizes.append(v.size)

    def _spent(self, t0: float) -> None:
        dt = time.perf_counter() - t0
        self.log_seconds += dt
        if self._step_cost is not None:
            self._step_cost += dt

    def _end_step_cost(self) -> None:
        """The logger's own cost of the step just finished goes into the ``log_ms`` series."""
        if self._step_cost is not None and self.step >= 0:
            self._put(P.LOG_COST, self.step, self._step_cost * 1e3)
        self._step_cost = None

    def flush(self) -> None:
        """Send everything buffered: one ``send_columns`` batch per entity."""
        t0 = time.perf_counter()
        rec = self.rec
        ep = max(self.episode, 0)
        indexes: dict[tuple[int, ...], list] = {}  # most entities share the same steps

        def index(steps):
            key = tuple(steps)
            if key not in indexes:
                idx = [rr.TimeColumn(P.STEP, sequence=np.asarray(steps, dtype=np.int64))]
                if self.episode >= 0:
                    idx.append(rr.TimeColumn(P.EPISODE, sequence=np.full(len(steps), ep, dtype=np.int64)))
                indexes[key] = idx
            return indexes[key]

        for entity, (steps, vals, sizes) in self._buf.items():
            if not steps:
                continue
            col = rr.Scalars.columns(scalars=np.concatenate(vals)).partition(sizes)
            rec.send_columns(entity, indexes=index(steps), columns=col)
        self._buf.clear()
        if self.kin is not None and (self._poses[0] or self._pose_pts[0]):
            steps, coms, anchors = list(self._pose_pts[0]), list(self._pose_pts[1]), list(self._pose_pts[2])
            if self._poses[0]:
                com, anchor = self.kin.poses(np.stack(self._poses[1]))
                steps += self._poses[0]
                coms += list(com)
                anchors += list(anchor)
            self._log_robot(steps, coms, anchors, index)
        self._poses = ([], [])
        self._pose_pts = ([], [], [])
        self._unflushed = 0
        self._spent(t0)

    def _log_robot(self, steps, coms, anchors, index) -> None:
        rec, b = self.rec, self.kin.count
        if P.ROBOT_BODIES not in self._series_done:  # styling once, static: per step only positions
            self._series_done.add(P.ROBOT_BODIES)
            rec.log(P.ROBOT_BODIES, rr.Points3D.from_fields(radii=0.04, colors=ROBOT_COLOR,
                                                            labels=self.kin.names, show_labels=False), static=True)
            rec.log(P.ROBOT_SKELETON, rr.LineStrips3D.from_fields(radii=0.015, colors=ROBOT_COLOR), static=True)
        n = len(steps)
        rec.send_columns(P.ROBOT_BODIES, indexes=index(steps),
                         columns=rr.Points3D.columns(positions=np.concatenate(coms)).partition([b] * n))
        strips = self.kin.skeleton_array(np.stack(coms), np.stack(anchors)).reshape(n * b, 3, 3)
        rec.send_columns(P.ROBOT_SKELETON, indexes=index(steps),
                         columns=rr.LineStrips3D.columns(strips=strips).partition([b] * n))

    def _flush_realised(self, final: bool = False) -> None:
        """Log the realised H-step return at the plan's step once its H rewards are in."""
        keep = []
        for t, step, h in self._pending:
            if t + h <= len(self._rewards):
                self._put(P.RETURN_REAL, step, float(np.sum(self._rewards[t:t + h])))
            elif not final:
                keep.append((t, step, h))
        self._pending = keep

    # --- every N steps ----------------------------------------------------------------------
    def log_plan(self, *, best_return: float, spread: float | None = None, scores: np.ndarray | None = None,
                 ghost_qpos: np.ndarray | None = None, ghost_returns: np.ndarray | None = None,
                 chosen_qpos: np.ndarray | None = None, member_qpos: np.ndarray | None = None,
                 pred_obs: np.ndarray | None = None, pred_obs_std: np.ndarray | None = None,
                 horizon: int | None = None, steps_left: int | None = None,
                 imagined_reward: float | None = None, objective_parts: tuple[float, float] | None = None,
                 proposal_qpos: np.ndarray | None = None, goal_cost: float | None = None) -> None:
        """One planning step's imagination, at the current step.

        best_return: the planner's objective of the plan executed. imagined_reward: that plan's
        imagined H-step reward (undiscounted sum, mean over members), drawn against the realised one
        (``best_return`` stands in when not given). objective_parts: (discounted imagined reward,
        terminal value), the two terms of the objective (weighted by the goal's reward weight when a goal
        is set); goal_cost: the discounted distance to the goal that the objective subtracts (None: no goal).
        proposal_qpos (P, H+1, nq): policy proposals.

        ghost_qpos (K, H+1, nq): the K best sampled sequences' predicted poses, best first, drawn
        as body trajectories coloured by ``ghost_returns`` (K,). chosen_qpos (H+1, nq): the plan
        being executed (highlighted); member_qpos (E, H+1, nq): each ensemble member's rollout of
        it (the spread). pred_obs / pred_obs_std (H+1, S): predicted observations of the chosen
        plan (mean and std over members); the first ``every_n_steps`` of them go into the state
        plot at the steps they predict. scores (N,): every sampled sequence's objective."""
        t0 = time.perf_counter()
        rec = self.rec
        self.plans_logged += 1
        # one row per plan: a plain log is cheaper than a one-row column batch
        rec.log(P.RETURN_PRED, rr.Scalars([float(best_return if imagined_reward is None else imagined_reward)]))
        rec.log(P.PLAN_OBJECTIVE, rr.Scalars([float(best_return)]))
        if objective_parts is not None:
            rec.log(P.PLAN_REWARD, rr.Scalars([float(objective_parts[0])]))
            rec.log(P.PLAN_VALUE, rr.Scalars([float(objective_parts[1])]))
        if goal_cost is not None:
            rec.log(P.PLAN_GOAL, rr.Scalars([float(goal_cost)]))
        if spread is not None:
            rec.log(P.SPREAD, rr.Scalars([float(spread)]))
        if horizon:
            self._pending.append((self.t, self.step, int(horizon)))
        if scores is not None:
            self._log_scores(np.asarray(scores, dtype=np.float64))
        if ghost_returns is not None:
            g = np.asarray(ghost_returns, dtype=np.float64)
            self._names(P.GHOST_RETURNS, None, g.size, "ghost", 1.0)
            rec.log(P.GHOST_RETURNS, rr.Scalars(g))
        if self.kin is not None:
            self._log_ghosts(ghost_qpos, ghost_returns, chosen_qpos, member_qpos, proposal_qpos)
        if pred_obs is not None:
            self._log_prediction(np.asarray(pred_obs), None if pred_obs_std is None else np.asarray(pred_obs_std),
                                 steps_left)
        self._spent(t0)

    def _log_scores(self, scores: np.ndarray) -> None:
        s = scores[np.isfinite(scores)]
        if not s.size:
            return
        self._names(P.SCORES, ["min", "p25", "median", "p75", "max"], 5, "q", 1.5,
                    [[90, 90, 255], [120, 170, 255], [255, 255, 255], [120, 170, 255], [90, 90, 255]])
        self.rec.log(P.SCORES, rr.Scalars(np.percentile(s, [0, 25, 50, 75, 100])))
        counts, edges = np.histogram(s, bins=min(30, max(5, s.size // 8)))
        self.rec.log(P.SCORE_HIST, rr.BarChart(_vectors(counts), abscissa=_vectors((edges[:-1] + edges[1:]) / 2)))

    def _log_ghosts(self, ghost_qpos, ghost_returns, chosen_qpos, member_qpos, proposal_qpos=None) -> None:
        rec, kin = self.rec, self.kin
        if "ghost styling" not in self._series_done:  # static: per plan only what changes
            self._series_done.add("ghost styling")
            rec.log(P.GHOSTS, rr.LineStrips3D.from_fields(radii=0.012, show_labels=False), static=True)
            rec.log(P.GHOST_POSES, rr.Points3D.from_fields(radii=0.025), static=True)
            rec.log(P.CHOSEN, rr.LineStrips3D.from_fields(radii=0.016, colors=CHOSEN_COLOR), static=True)
            rec.log(P.CHOSEN_POSE, rr.LineStrips3D.from_fields(radii=0.012, colors=CHOSEN_COLOR), static=True)
            rec.log(P.MEMBERS, rr.LineStrips3D.from_fields(radii=0.004, colors=MEMBER_COLOR), static=True)
            rec.log(P.PROPOSALS, rr.LineStrips3D.from_fields(radii=0.008, colors=PROPOSAL_COLOR), static=True)
        parts = [None if q is None or not len(q) else np.asarray(q, dtype=np.float64)
                 for q in (ghost_qpos, chosen_qpos, member_qpos, proposal_qpos)]
        sizes = [0 if q is None else q.size // kin.model.nq for q in parts]
        if not sum(sizes):
            return
        # one kinematics batch for every pose drawn
        com, anchor = kin.poses(np.concatenate([q.reshape(-1, kin.model.nq) for q in parts if q is not None]))
        bounds = np.cumsum([0, *sizes])
        ghosts, chosen, members, proposals = (None if q is None else com[bounds[i]:bounds[i + 1]].reshape(*q.shape[:-1], kin.count, 3)
                                   for i, q in enumerate(parts))
        if ghosts is not None:                                     # (K, H+1, B, 3)
            k, _, b, _ = ghosts.shape
            strips = ghosts.transpose(0, 2, 1, 3).reshape(k * b, -1, 3)  # ghost-major: (K*B, H+1, 3)
            ret = np.zeros(k) if ghost_returns is None else np.asarray(ghost_returns)
            colors = np.repeat(return_colors(ret), b, axis=0)
            labels = [f"#{i} R={ret[i]:.1f}" for i in range(k) for _ in range(b)]
            rec.log(P.GHOSTS, rr.LineStrips3D(strips, colors=colors, labels=labels))
            rec.log(P.GHOST_POSES, rr.Points3D(ghosts[:, -1].reshape(-1, 3), colors=colors))
        if chosen is not None:                                     # (H+1, B, 3)
            rec.log(P.CHOSEN, rr.LineStrips3D(np.ascontiguousarray(chosen.transpose(1, 0, 2))))
            end = bounds[2] - 1                                    # the chosen plan's last pose
            rec.log(P.CHOSEN_POSE, rr.LineStrips3D(kin.skeleton_array(com[end], anchor[end])))
        if members is not None:                                    # (E, H+1, B, 3)
            e, _, b, _ = members.shape
            rec.log(P.MEMBERS, rr.LineStrips3D(np.ascontiguousarray(members.transpose(0, 2, 1, 3)).reshape(e * b, -1, 3)))
        if proposals is not None:                                  # (P, H+1, B, 3)
            n, _, b, _ = proposals.shape
            rec.log(P.PROPOSALS, rr.LineStrips3D(np.ascontiguousarray(proposals.transpose(0, 2, 1, 3)).reshape(n * b, -1, 3)))

    def _log_prediction(self, mean: np.ndarray, std: np.ndarray | None, steps_left: int | None) -> None:
        """Predicted observations for the next steps, until the next logged plan takes over."""
        n = min(self.every_n_steps, len(mean) - 1)
        if steps_left is not None:
            n = min(n, steps_left)
        if n <= 0:
            return
        s = mean.shape[-1]
        if P.STATE_PRED not in self._series_done:
            self._names(P.STATE_PRED, [f"pred[{i}]" for i in range(s)], s, "pred", 1.0, self._dim_colors(s))
        idx = [rr.TimeColumn(P.STEP, sequence=self.step + 1 + np.arange(n)),
               rr.TimeColumn(P.EPISODE, sequence=np.full(n, max(self.episode, 0)))]
        self.rec.send_columns(P.STATE_PRED, indexes=idx, columns=rr.Scalars.columns(scalars=mean[1:n + 1]))
        if std is not None:
            if P.STATE_UPPER not in self._series_done:
                self._names(P.STATE_UPPER, [f"pred+std[{i}]" for i in range(s)], s, "up", 0.5, self._dim_colors(s, 120))
                self._names(P.STATE_LOWER, [f"pred-std[{i}]" for i in range(s)], s, "lo", 0.5, self._dim_colors(s, 120))
            self.rec.send_columns(P.STATE_UPPER, indexes=idx,
                                  columns=rr.Scalars.columns(scalars=(mean + std)[1:n + 1]))
            self.rec.send_columns(P.STATE_LOWER, indexes=idx,
                                  columns=rr.Scalars.columns(scalars=(mean - std)[1:n + 1]))

    def log_camera(self, rgb: np.ndarray, jpeg_quality: int | None = 80) -> None:
        t0 = time.perf_counter()
        img = rr.Image(np.ascontiguousarray(rgb))
        self.rec.log(P.CAMERA_RGB, img.compress(jpeg_quality) if jpeg_quality else img)
        self._spent(t0)

    # --- training ---------------------------------------------------------------------------
    def log_train(self, round_: int, history: list[dict], val_mse: list[float] | None = None,
                  multistep_mse: dict | None = None) -> None:
        """One training round: per-epoch NLL and validation MSE per member (``epoch`` timeline),
        the round's validation MSE per member and multi-step error vs horizon (``step`` timeline)."""
        rec = self.rec
        if history:
            n = len(history)
            epochs = self._epoch + np.arange(n)
            self._epoch += n
            idx = [rr.TimeColumn(P.EPOCH, sequence=epochs)]
            for entity, key, name in ((P.TRAIN_NLL, "train_nll", "nll"), (P.TRAIN_VAL, "val_mse", "val")):
                vals = np.array([h[key] for h in history], dtype=np.float64)
                self._names(entity, [f"{name} member {i}" for i in range(vals.shape[1])], vals.shape[1], name)
                rec.send_columns(entity, indexes=idx, columns=rr.Scalars.columns(scalars=vals))
        if val_mse:
            v = np.asarray(val_mse, dtype=np.float64)
            self._names(P.TRAIN_ROUND_VAL, [f"val member {i}" for i in range(v.size)], v.size, "val")
            rec.log(P.TRAIN_ROUND_VAL, rr.Scalars(v))
        if multistep_mse:
            hs = sorted(multistep_mse, key=lambda k: int(k))
            vals = np.array([multistep_mse[h] for h in hs], dtype=np.float64)
            rec.log(P.MULTISTEP, rr.BarChart(np.nan_to_num(vals), abscissa=np.array([int(h) for h in hs], float)))
            self._names(P.MULTISTEP_SERIES, [f"{h}-step" for h in hs], len(hs), "h")
            rec.log(P.MULTISTEP_SERIES, rr.Scalars(vals))
        rec.log(P.EVENTS, rr.TextLog(f"trained round {round_}: {len(history)} epochs", level="INFO"))

    def close(self) -> None:
        self._flush_realised(final=True)
        self._end_step_cost()
        self.flush()
        self.rec.flush(timeout_sec=FLUSH_TIMEOUT_S)  # bounded: a disk that filled up mid-run never drains
        self.rec.disconnect()


def default_rrd_path(run_dir: str | Path, label: str = "run") -> Path:
    """RUN_DIR/rerun/<label>-<timestamp>.rrd, never an existing file."""
    from robot_wm.run_dir import RunDir

    stem = RunDir(run_dir).own_folder("rerun") / f"{label}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = stem.with_suffix(".rrd"), 1
    while path.exists():
        path, n = stem.parent / f"{stem.name}-{n}.rrd", n + 1
    return path


def latest_rrd(run_dir: str | Path) -> Path | None:
    files = sorted(Path(run_dir).glob("rerun/*.rrd"), key=lambda p: p.stat().st_mtime)
    return files[-1] if files else None
