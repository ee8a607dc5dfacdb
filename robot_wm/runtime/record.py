"""Recorded deployments: every deployed episode written in the run's episode format (``robot_wm.data``),
atomically, so the dataset reads robot data like simulated data (torch-free, as the whole runtime).

Per control step: the state the planner saw, the action sent, the reward when the robot supplies one
(``Robot.last_reward``), the planning latency and whether the loop fell back (and why). A robot that
knows its MuJoCo physics state (``SimRobot``) stores it; a real one stores none (width 0).
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from robot_wm.data.dataset import EpisodeFolder
from robot_wm.data.episode import MAX_EPISODE_BYTES, Episode, check_seed
from robot_wm.io import (
    TEMP_SUFFIX,
    append_only,
    atomic_write_bytes,
    check_parent_folder,
    check_regular_file,
    dangling_link,
    loads_json,
)
from robot_wm.text import first_names
from sim.env import STEP_UNIT  # mujoco + numpy only: the runtime stays torch-free

log = logging.getLogger(__name__)

CLAIM_NAME = "recording.json"
"""A recording folder's task and action repeat, written by its first recorder before any episode is driven."""

EPISODE_BUDGET = MAX_EPISODE_BYTES - 2**24
"""Bytes of arrays and per-step metadata a recorded episode holds at most: what an episode file may hold, less 16 MiB
for the rest of its metadata."""


def _check_not_a_users_folder(root: Path) -> None:
    """Refuse a folder that holds files but no recording (no recording.json, no episode): a user's notes and planner
    got recording.json and episode files beside them, no word said (probe 34). A new or empty folder is fine."""
    if link := dangling_link(root / CLAIM_NAME):  # "holds recording.json but ... no recording.json" (probe 37)
        raise ValueError(f"--record {str(root)!r}: its {link}; remove it (or restore its target)")
    if not root.is_dir() or (root / CLAIM_NAME).exists() or any(root.glob("episode_*.npz")):
        return
    if held := sorted(p.name for p in root.iterdir() if not p.name.endswith(TEMP_SUFFIX)):
        raise ValueError(f"--record {str(root)!r} already holds files ({first_names(held)}) but is not a recording folder (no "
                         f"{CLAIM_NAME}, no episode): refusing to write into it; choose a new or empty folder")


def check_record_folder(root: str | Path) -> None:
    """Refuse a recording folder that cannot be one, before the robot is driven (``deploy`` checks it before the
    planner loads: a file given as ``--record`` was refused after the banner: probe 38): a NUL byte, a run or a folder
    inside one, a link that leads nowhere, a file, a folder below a file, a user's folder of other files."""
    from robot_wm.run_dir import RunDir

    if "\x00" in str(root):
        raise ValueError(f"--record {str(root)!r}: a folder name cannot hold a NUL byte")
    for d in (Path(root), *Path(root).resolve().parents):  # a run itself, or any folder inside one
        if RunDir(d).is_run():
            raise ValueError(f"--record {str(root)!r} is inside the run directory {str(d)!r}: its episodes are "
                             "written under the run's lock by robot-wm alone. Record into a folder of its "
                             f"own and bring it in with `robot-wm finetune {d} --data DIR`")
    if link := dangling_link(root):  # a bare "[Errno 17] File exists" (probe 19)
        raise ValueError(f"--record {link}: remove it, or record into another folder")
    if Path(root).exists() and not Path(root).is_dir():
        raise ValueError(f"--record {str(root)!r} exists and is not a directory: expected a folder for the "
                         "recorded episodes (a new or an existing one)")
    check_parent_folder(root, "--record")  # below a file: a bare "Not a directory" (probe 18)
    if Path(root).is_dir() and append_only(root):  # each save left a temp file there, "cannot write" (probe 39)
        raise ValueError(f"--record {str(root)!r} is append-only (chattr +a): the recorder replaces its files and "
                         "removes its temp files there; remove the attribute (chattr -a) or record into another folder")
    _check_not_a_users_folder(Path(root))


class DeploymentRecorder:
    """``begin`` an episode, ``step`` after every control tick, ``end`` to write it (also when the
    episode was cut short: what was recorded is kept)."""

    def __init__(self, root: str | Path, *, task: str, planner: str, action_repeat: int | None, planner_delay: int,
                 source: str = "robot", extra: dict | None = None, max_episode_bytes: int = EPISODE_BUDGET):
        if isinstance(max_episode_bytes, bool) or not isinstance(max_episode_bytes, numbers.Integral) or \
                not 1 <= max_episode_bytes <= EPISODE_BUDGET:
            raise ValueError(f"max_episode_bytes={max_episode_bytes!r}: expected a whole number from 1 to "
                             f"{EPISODE_BUDGET} (what an episode file may hold)")
        self.max_episode_bytes = int(max_episode_bytes)

        check_record_folder(root)
        if not isinstance(task, str) or not task.strip() or len(task) > 200 or not task.isprintable() or \
                any(c in task for c in "/\\"):  # '../../x' was written into recording.json (probe 29)
            raise ValueError(f"task={task!r:.80}: expected the robot's task name (the run's env.task: printable, no "
                             "path separators)")
        if action_repeat is not None and (isinstance(action_repeat, bool) or not isinstance(action_repeat, numbers.Integral)
                                          or action_repeat < 1):  # np.int64(8) was refused (probe 17)
            raise ValueError(f"action_repeat={action_repeat!r}: expected None or a whole number >= 1")
        # required: a real robot's recording said no delay where its planner compensated one, and was fine-tuned on
        # unaligned (probe 18); finetune realigns by it (robot_wm.data.realign)
        from robot_wm.data.realign import MAX_DELAY

        if isinstance(planner_delay, bool) or not isinstance(planner_delay, numbers.Integral) \
                or not 0 <= planner_delay <= MAX_DELAY:  # 5000 recorded, then the whole folder refused (probe 19)
            raise ValueError(f"planner_delay={planner_delay!r}: expected the control steps the robot's commands take to "
                             f"act, as the planner compensates them (its meta.delay; 0 for none, at most {MAX_DELAY})")
        if action_repeat is None:  # found only when `finetune` refused the recordings, after the robot drove (probe 17)
            log.warning("recorder: action_repeat=None: the episodes in %s can be viewed, but `robot-wm finetune` "
                        "refuses them (their time step is unknown)", root)
        self.meta = {"task": task, "policy": "deployed", "planner_file": planner, "source": source,
                     "action_repeat": None if action_repeat is None else int(action_repeat), "step_unit": STEP_UNIT,
                     "planner_delay": int(planner_delay)}
        extra = dict(extra or {})
        if clash := sorted(set(extra) & (set(self.meta) | _WRITTEN | _IMPORTED)):
            raise ValueError(f"extra metadata {clash} would replace what the recorder or an import writes itself")
        try:
            json.dumps(extra, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"extra metadata must be plain JSON values (finite numbers): {e}") from None
        self.meta.update(extra)
        self.data = EpisodeFolder(root, create=True)  # only its first episode read, none kept (probe 17)
        try:  # a read-only folder failed only when the first episode, already driven, was saved (tenth probe)
            tempfile.TemporaryFile(dir=self.data.root).close()
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(self.data.root)) from None
        self._claim()
        self._reset()

    def _claim(self) -> None:
        """Claim the folder for this task and action repeat before any episode is driven: two `deploy --record` of
        different tasks into one new folder both found it empty, and it held both (probe 28). A folder recorded
        before claims were written is claimed by its first episode (checked at ``begin``)."""
        path, mine = self.data.root / CLAIM_NAME, {k: self.meta[k] for k in ("task", "action_repeat")}
        if self.data.first is not None and not path.exists():  # recorded before claims were written: its first
            return  # episode claims it (``begin``); a refused deploy of another task labelled it with its own (probe 29)
        try:
            atomic_write_bytes(path, json.dumps(mine).encode(), exclusive=True)
            return
        except FileExistsError:
            pass
        try:
            check_regular_file(path, "recording claim", 4096)
            theirs = loads_json(path.read_text())
            theirs = (theirs["task"], theirs["action_repeat"])
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as e:
            raise ValueError(f"{str(path)!r} is damaged or was edited ({e}); it names the task the folder "
                             f"{str(self.data.root)!r} records: record into another folder") from None
        if theirs != (mine["task"], mine["action_repeat"]):
            if (first := self.data.first) is not None and \
                    (said := (first.meta.get("task"), first.meta.get("action_repeat"))) != theirs:
                # "holds episodes ... at action repeat 4", the edited claim's, of a folder whose episodes are at 8 (34)
                raise ValueError(f"{str(path)!r} claims the folder for task {theirs[0]!r} at action repeat {theirs[1]!r}, "
                                 f"but its episodes are of {said[0]!r} at {said[1]!r}: the file was edited; put back "
                                 "what its episodes say, or record into another folder")
            self._check_same_task(theirs, claimed=True)

    def _check_same_task(self, theirs: tuple, claimed: bool = False) -> None:
        """Refuse a folder that holds (or was claimed for) another task or action repeat than this recorder's."""
        from sim.dmc import task_key  # dm_control: loaded only for a folder that holds episodes

        ours = (self.meta["task"], self.meta["action_repeat"])
        if (task_key(theirs[0]), theirs[1]) != (task_key(ours[0]), ours[1]):  # one task under either spelling
            holds = f"is claimed (its {CLAIM_NAME}) for" if claimed else "holds episodes of"
            raise ValueError(f"--record {str(self.data.root)!r} {holds} task {theirs[0]!r} at action "
                             f"repeat {theirs[1]!r}; this deployment is {ours[0]!r} at {ours[1]!r}: record into "
                             "another folder")

    def _reset(self) -> None:
        self.obs, self.actions, self.rewards, self.states = [], [], [], []
        self.latency_ms, self.fallbacks, self.seed, self.reward_known = [], [], None, True
        self.rewards_missing: list[int] = []  # steps whose reward was not one finite number (the first few)
        self.rewards_missed = 0
        self.value_off: list[int] = []  # steps planned without the value (the value guard had tripped: probe 25)
        self.unsent: int | None = None  # the first step whose command the robot refused
        self.full: int | None = None  # the first step not recorded: the episode reached EPISODE_BUDGET bytes
        self.diverged = False  # the command the episode was cut at made a simulated robot's physics diverge
        self.bytes = 0  # what the episode's file will hold, uncompressed (as Episode.save counts it)
        self.written_steps = 0  # control steps of the episode ``end`` wrote last
        self._after: int | None = None  # the observation ``hook`` replaces by the next tick's read (its outcome)
        self._robot = None

    def begin(self, robot, seed: int | None = None) -> None:
        """Start an episode; refused before the robot moves where the folder holds another robot's episodes
        (found only when the episode was saved, after it was driven: tenth probe), and so is a seed no episode may
        hold (found at ``end``, the driven episode lost: probe 17)."""
        if self.actions:  # the held steps were dropped without a word (probe 18)
            raise ValueError("DeploymentRecorder.begin: the previous episode holds steps: end() it first")
        seed = int(seed) if isinstance(seed, np.integer) else seed  # np.int64(3) was json's TypeError (probe 18)
        try:
            check_seed({"seed": seed})
        except ValueError as e:
            raise ValueError(f"DeploymentRecorder.begin: seed={seed!r}: {e}") from None
        if (first := self.data.first) is not None:
            dims = (getattr(robot, "state_dim", None), np.size(getattr(robot, "action_low", None)) or None)
            if any(d is not None and d != have for d, have in zip(dims, (first.obs.shape[1], first.action.shape[1]))):
                raise ValueError(f"--record {str(self.data.root)!r} holds episodes of {first.obs.shape[1]} state and "
                                 f"{first.action.shape[1]} action dimensions (task {first.meta.get('task')!r}); this "
                                 f"robot has {dims[0]} and {dims[1]}: record into another folder")
            # same sizes, another task: finetune then refused the whole folder (probe 11); one task under either
            # spelling (cartpole_swingup and cartpole-swingup were two: probe 17)
            self._check_same_task((first.meta.get("task"), first.meta.get("action_repeat")))
        self._reset()
        state = _vector(robot.read_state)
        if first is not None and state.size != first.obs.shape[1] and np.all(np.isfinite(state)):
            # a robot that does not say its state size: its episode was driven, then refused at end() (probe 19)
            raise ValueError(f"--record {str(self.data.root)!r} holds episodes of {first.obs.shape[1]} state "
                             f"dimensions; this robot's state has {state.size}: record into another folder")
        self.seed = seed
        self.obs.append(state)
        self.states.append(_physics_state(robot))
        self.bytes = state.nbytes + (0 if self.states[0] is None else self.states[0].nbytes)

    def hook(self, loop, robot):
        """``on_tick`` for ``loop.run``: each tick recorded with what the loop says of it (``step``). The state after a
        command is the one the loop reads at the next tick (the state the planner saw), or a read at ``end``: read
        at once after ``send_action``, a real-time robot's states paired each command with the previous one's effect
        (a simulated robot, stepped inside ``send_action``, hid it: probe 35)."""
        def on_tick(action) -> None:
            if self._after is not None and self.unsent is None and self.full is None and \
                    (seen := loop.last_state) is not None:
                self.obs[self._after] = seen.reshape(-1)  # the state this tick read: the last command's outcome
            before = len(self.obs)
            self.step(robot, action, loop.last_latency_s, loop.last_fallback, sent=loop.last_sent,
                      value_off=getattr(loop, "last_value_off", False))
            self._after, self._robot = (before if len(self.obs) > before else None), robot
        return on_tick

    def step(self, robot, action: np.ndarray, latency_s: float, fallback: str | None, *, sent: bool = True,
             value_off: bool = False) -> None:
        """After ``send_action``: the action sent and what the robot reports now. ``sent=False``: the robot refused
        the command (``send_action`` raised), so no transition follows from it: the episode is cut there at ``end``
        (its refused commands were stored as applied, each beside an unchanged state: probe 21). ``value_off``: the
        step was planned without the value (a value guard had tripped); stored as meta ``value_off_steps``."""
        if not self.obs:  # end() then failed with "needs 2 observations" (probe 17)
            raise ValueError("DeploymentRecorder.step before begin(): call begin(robot, seed) at the episode's start")
        if self.full is not None or self.unsent is not None:  # the episode ends before these: nothing more to keep
            return
        diverged = getattr(robot, "diverged", False) is True  # a simulated robot whose physics blew up on it
        if diverged or not sent:
            self.unsent, self.diverged = len(self.actions), diverged
            log.warning("recorder: %s at control step %d; the episode is stored up to it (meta cut_at_unsent_command) "
                        "and the steps after it are not recorded", "the simulated robot's physics diverged" if diverged
                        else "the robot refused the command", self.unsent)
            return  # no transition follows from it (its reward, unknown or not, says nothing of the episode kept)
        act, reward, obs, state = _vector(lambda: action), _reward(robot), _vector(robot.read_state), _physics_state(robot)
        # as Episode.save counts it (float32 arrays, float64 physics state, its JSON meta 4 bytes a character): a
        # recording past 1 GiB was refused at end() and lost whole (probe 21)
        step_bytes = act.nbytes + obs.nbytes + 4 + (0 if state is None else state.nbytes) + 4 * 12 + \
            (0 if fallback is None else 4 * (len(str(fallback)) + 32)) + (4 * 8 if value_off is True else 0)
        if self.bytes + step_bytes > self.max_episode_bytes:
            self.full = len(self.actions)
            log.warning("recorder: the episode reached %.1f MiB at control step %d, what an episode may hold "
                        "(max_episode_bytes); the steps after it are not recorded (meta cut_at_size_limit): end "
                        "episodes sooner", self.bytes / 2**20, self.full)
            return
        self.bytes += step_bytes
        self.actions.append(act)
        self.reward_known &= reward is not None
        if reward is None:
            self.rewards_missed += 1
            if len(self.rewards_missing) < 10:
                self.rewards_missing.append(len(self.actions) - 1)
        self.rewards.append(0.0 if reward is None else reward)
        self.obs.append(obs)
        self.states.append(state)
        ms = float(latency_s) * 1e3 if isinstance(latency_s, (int, float, np.number)) else float("nan")
        self.latency_ms.append(round(ms, 3) if np.isfinite(ms) else None)  # JSON has no NaN
        if fallback is not None:
            self.fallbacks.append({"step": len(self.actions) - 1, "reason": str(fallback)})
        if value_off is True:
            self.value_off.append(len(self.actions) - 1)

    def end(self, *, interrupted: bool = False, safe_stop: str | None = None, **meta) -> Path | None:
        """Write the episode (None when no step was recorded). ``interrupted``: the deployment was stopped
        mid-episode (Ctrl-C, SIGTERM), so its return covers only the steps recorded; ``safe_stop``: why the
        control loop made a safe stop that ended it (stored as meta ``safe_stop``, likewise a cut episode). ``meta`` may add keys but not
        replace what the recorder computes or was constructed with (those are dropped, with a warning)."""
        if clash := sorted(set(meta) & (set(self.meta) | _WRITTEN | _IMPORTED)):  # reward_known=True over unknown rewards
            log.warning("recorder: metadata %s of the episode are the recorder's own; the caller's values are dropped",
                        clash)
            meta = {k: v for k, v in meta.items() if k not in clash}
        if self._after is not None and self._robot is not None:  # the last command's outcome, read now (``hook``)
            now = _vector(self._robot.read_state)
            if now.shape == self.obs[self._after].shape and np.all(np.isfinite(now)):  # else the read after the command
                self.obs[self._after] = now
        obs, extra = self.obs, ({"interrupted": True} if interrupted else {})
        if self.full is not None:
            extra["cut_at_size_limit"] = self.full
        if self.unsent is not None:
            extra["cut_at_unsent_command"] = self.unsent
        if safe_stop is not None:
            extra["safe_stop"] = str(safe_stop)
        if 0 < self.rewards_missed < len(self.actions):  # one NaN among real rewards made all unknown, silently (37)
            extra["rewards_unknown_at"] = self.rewards_missing
            log.warning("recorder: the robot's reward was not one finite number at %d of %d control steps (the first: "
                        "%s); the episode's rewards are stored as unknown (meta reward_known false, rewards_unknown_at)",
                        self.rewards_missed, len(self.actions), self.rewards_missing[:3])
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
        widths = {None if s is None else s.shape[0] for s in self.states}
        states = np.stack(self.states) if len(widths) == 1 and None not in widths and np.all(np.isfinite(self.states)) \
            else np.zeros((steps + 1, 0))
        info = {**self.meta, "seed": self.seed, "control_steps": steps, "env_steps": steps * repeat,
                "reward_known": self.reward_known,
                "return": float(np.sum(self.rewards)) if self.reward_known else None,
                "latency_ms": self.latency_ms[:steps], "fallback_steps": [f for f in self.fallbacks if f["step"] < steps],
                "diverged": self.diverged, **extra, **meta}
        if value_off := [t for t in self.value_off if t < steps]:  # a guarded planner's: which steps had no value
            info["value_off_steps"] = value_off
        episode = Episode(np.stack(obs), np.stack(self.actions), np.asarray(self.rewards), states, info)
        try:
            path = self.data.append(episode)
        except (OSError, ValueError) as e:
            raise _rescued(e, episode, self.data.root) from None
        finally:  # written or not (a full disk: reported by the caller), the next begin() starts a new episode
            self._reset()
        self.written_steps = steps  # a cut episode's message counts these, not the commands sent (probe 16)
        return path


def _rescued(e: Exception, episode: Episode, folder: Path) -> Exception:
    """``e`` (``episode`` could not be appended to ``folder``), with the episode saved beside under a name no reader
    takes for an episode, where that can be done: a folder made at the next episode's name while the robot drove lost
    the driven episode (probe 37). On a full disk, ``e`` as it is."""
    spare = folder / f"unsaved-episode-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{id(episode):x}.npz"
    if not folder.is_dir():  # its drive unmounted: no folder is made again elsewhere
        return e
    try:
        episode.save(spare, exclusive=True)
    except (OSError, ValueError):
        return e
    return ValueError(f"{e}; the episode was saved as {str(spare)!r} instead (no reader takes it for an episode: "
                      "rename it to the folder's next episode_NNNNNN.npz once the folder is mended)")


# keys of an episode's metadata that the recorder computes (``extra`` may not replace them)
_WRITTEN = {"seed", "control_steps", "env_steps", "reward_known", "rewards_unknown_at", "return", "latency_ms",
            "fallback_steps",
            "value_off_steps", "diverged", "cut_at_bad_state", "cut_at_bad_reward", "cut_at_bad_action",
            "cut_at_unsent_command",
            "cut_at_size_limit", "interrupted", "safe_stop"}
# keys that only an import writes (``robot_wm.finetune``, ``robot_wm.data.realign``): a recording that said
# realigned_delay=1 was imported unaligned and announced as realigned (probe 19)
_IMPORTED = {"realigned_delay", "recorded_steps", "imported_from"}
_BAD = np.full(1, np.nan, np.float32)  # what a value that is not a vector of numbers is stored as: it cuts the episode


def _vector(read) -> np.ndarray:
    """``read()`` as a 1-D float32 vector; whatever it raises or returns that is not numbers becomes NaN, so
    ``end`` keeps the episode up to that step (the recorder is on the control path: it never raises)."""
    try:
        return np.asarray(read(), dtype=np.float32).reshape(-1).copy()
    except Exception as e:  # noqa: BLE001 - a robot's own error, logged and recorded as a cut
        log.warning("recorder: the robot's value is not a vector of numbers (%s: %s); the episode ends there",
                    type(e).__name__, e)
        return _BAD


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _reward(robot) -> float | None:
    """The robot's reward for the last step as a float, or None (unknown) when it has none or it is not one
    finite number."""
    get = getattr(robot, "last_reward", None)
    if not callable(get):
        return None
    try:
        r = get()
        value = np.asarray(r, dtype=np.float64) if isinstance(r, numbers.Real | np.ndarray | np.generic) else None
    except Exception as e:  # noqa: BLE001
        log.warning("recorder: robot.last_reward() failed (%s: %s); rewards unknown", type(e).__name__, e)
        return None
    # beyond float32 as unknown, like inf: 1e300 lost the whole episode at save (probe 36), then cut it at that step
    # without a word (probe 39); so every reward stored fits float32
    fine = value is not None and value.size == 1 and np.isfinite(value).all() and abs(float(value)) <= FLOAT32_MAX
    return float(value) if fine else None


def _physics_state(robot) -> np.ndarray | None:
    """The robot's MuJoCo physics state, width 0 for a robot that has none, None when reading it failed (the
    episode then stores none)."""
    get = getattr(robot, "physics_state", None)
    if not callable(get):
        return np.zeros(0)
    try:
        return np.array(get(), dtype=np.float64).reshape(-1)  # a copy: a driver may refill one buffer (probe 15)
    except Exception as e:  # noqa: BLE001
        log.warning("recorder: robot.physics_state() failed (%s: %s); the episode stores no physics state",
                    type(e).__name__, e)
        return None
