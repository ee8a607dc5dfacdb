"""Learn from the robot: add recorded deployments (``robot-wm deploy --record DIR``) to a run and
fine-tune its world model (and with ``--value`` its value and policy) on simulation + robot data, the
normalisers kept on the simulator's data; then ``robot-wm export`` again.

Robot episodes are copied into ``RUN/robot/`` (a dataset of their own: simulation and robot data never
mix on disk; stored without a physics state, which a real robot does not have and training never reads). Each robot
transition counts ``weight`` times in training (integer: its rows repeat). The train record and the
checkpoint say which data it saw, and the model's multi-step error on the robot's episodes and on the
simulator's held-out segments before and after (a model that forgot the simulator gets a warning).
Recordings of a robot whose commands act late are realigned by that delay on import (``robot_wm.data.realign``).
"""

from __future__ import annotations

import copy
import hashlib
import math
import numbers
import time
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np

from robot_wm.data.dataset import EpisodeDataset, Transitions, check_action_bounds, split
from robot_wm.data.episode import Episode
from robot_wm.data.realign import acted_delay, check_aligned, realign, realigned_delays, realigned_length
from robot_wm.io import file_sha256
from robot_wm.metrics import multistep_error
from robot_wm.model.checkpoint import save_checkpoint, time_step
from robot_wm.train import fit_model
from robot_wm.train_value import TDData, train_value, with_imagined
from sim.dmc import canonical_task, task_key
from sim.env import STEP_UNIT

ROBOT_DIR = "robot"


def robot_dataset(run) -> EpisodeDataset:
    """The run's robot episodes (``RUN/robot/``)."""
    return EpisodeDataset(run.root / ROBOT_DIR, create=True)


def content_sha256(ep: Episode, path="") -> str:
    """The sha256 of an episode's states, actions and rewards, and of what its metadata says of how they pair up (its
    action repeat, its robot's delay, a realignment: a recording saved again with its delay corrected is another
    recording, review): the same recording saved again (a metadata key added, recompressed) has another file digest
    and was imported a second time (probe 21)."""
    pairing = (ep.meta.get("action_repeat"), acted_delay(ep.meta, path), ep.meta.get("realigned_delay"))
    h = hashlib.sha256(repr(pairing).encode())
    for a in (ep.obs, ep.action, ep.reward):
        a = np.ascontiguousarray(a, dtype=np.float64)
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _origin(meta: dict, key: str = "sha256") -> str | None:
    """The sha256 of the recorded file an imported episode came from (None for one never imported); ``key``
    "content_sha256": its ``content_sha256``, where the import recorded it."""
    origin = meta.get("imported_from")
    digest = origin.get(key) if isinstance(origin, dict) else None
    return digest if isinstance(digest, str) else None  # a list was "unhashable type" (probe 19)


OBS_REACH = 10.0
"""A recorded observation may lie this many spans of the run's own data (max - min per dimension) beyond it."""


def check_observation_scale(path, obs: np.ndarray, low: np.ndarray, high: np.ndarray) -> None:
    """Refuse observations far outside the run's own data (``OBS_REACH`` spans beyond its range): states
    logged in other units (x1000) were fine-tuned on, and the model broke on the run's own states (eighth probe)."""
    span = np.maximum(high - low, 1e-3)
    bad = (obs < low - OBS_REACH * span) | (obs > high + OBS_REACH * span)
    if bad.any():
        t, j = np.argwhere(bad)[0]
        raise ValueError(f"recorded episode {str(path)!r}: observation[{t}, {j}] = {obs[t, j]:.4g} lies far outside "
                         f"the run's own data ({low[j]:.4g} to {high[j]:.4g} in that dimension): states in other units "
                         "or another order? Fine-tuning on them would break the model on the run's own states")


def check_reward_scale(path, reward: np.ndarray, low: float, high: float) -> None:
    """Refuse rewards far outside the run's own (``OBS_REACH`` spans beyond its range, a span at least 1): rewards
    logged in other units (x1000) were fine-tuned on and the imagined returns went from 4 to 215 (tenth probe)."""
    span = max(high - low, abs(high), abs(low), 1.0)
    bad = (reward < low - OBS_REACH * span) | (reward > high + OBS_REACH * span)
    if bad.any():
        t = int(np.argwhere(bad)[0][0])
        raise ValueError(f"recorded episode {str(path)!r}: reward[{t}] = {reward[t]:.4g} lies far outside the run's own "
                         f"rewards ({low:.4g} to {high:.4g} per control step): rewards in other units, or another "
                         "task's? Fine-tuning would teach the model that scale")


def check_suite_reward(path, reward: np.ndarray, action_repeat: int, what: str = "recorded episode") -> None:
    """A suite task pays between 0 and 1 per environment step, so 0 to ``action_repeat`` per control step:
    negated rewards (all within the run's span) were fine-tuned on (probe 11); rewards of 3e38 in a training
    episode were trained on until the weights overflowed (probe 12)."""
    bad = ~((reward >= -1e-6) & (reward <= action_repeat + 1e-6))
    if bad.any():
        t = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{what} {str(path)!r}: reward[{t}] = {reward[t]:.4g}, but this suite task pays 0 "
                         f"to 1 per environment step (0 to {action_repeat} per control step at action repeat "
                         f"{action_repeat}): rewards negated, in other units, or another task's?")


def check_recorded(path: Path, ep: Episode, task: str, obs_dim: int, act_dim: int,
                   action_repeat: int | None = None, bounds: tuple | None = None,
                   obs_range: tuple | None = None, reward_range: tuple | None = None) -> None:
    """Refuse one recorded episode that does not fit the run (``recorded_episodes`` says what is checked)."""
    if ep.meta.get("source") not in ("robot", "sim-robot"):
        raise ValueError(f"episode {str(path)!r} is not a recorded deployment (meta source="
                         f"{ep.meta.get('source')!r}; expected one written by `robot-wm deploy --record`)")
    recorded_task = ep.meta.get("task")
    if not isinstance(recorded_task, str) or task_key(recorded_task) != task_key(task):  # cup-catch = ball_in_cup-catch
        raise ValueError(f"recorded episode {str(path)!r} is from task {recorded_task!r}, the run is {task!r}")
    # A robot without a reward is stored as zeros: the reward head and the value learned them. Only a
    # recording that says (JSON true) that its rewards are the robot's is taken: a missing key, null, 0 or
    # "false" passed the earlier `is False` (eighth probe)
    if (known := ep.meta.get("reward_known")) is not True:
        why = "the robot reported none: meta reward_known=false" if known is False else \
            f"meta reward_known={known!r}, expected true" if "reward_known" in ep.meta else \
            "its meta does not say reward_known=true"
        raise ValueError(f"recorded episode {str(path)!r} has no known reward ({why}); fine-tuning would learn "
                         "its stored rewards (zeros where the robot reported none) as the task's reward. Record "
                         "with a robot that reports its reward (`robot-wm deploy --record` writes reward_known)")
    if (unit := ep.meta.get("step_unit")) != STEP_UNIT:  # another unit was imported silently (probe 19)
        raise ValueError(f"recorded episode {str(path)!r} counts its steps in {unit!r}, expected {STEP_UNIT!r} (a "
                         "recording by an older robot-wm, or edited): its step counts would mix with the run's")
    recorded = ep.meta.get("action_repeat")
    if action_repeat is not None and (isinstance(recorded, bool) or not isinstance(recorded, int)):
        raise ValueError(f"recorded episode {str(path)!r} does not say its action repeat (meta action_repeat="
                         f"{recorded!r}); expected a whole number (`robot-wm deploy --record` writes it)")
    if action_repeat is not None and recorded != action_repeat:
        # a transition then spans another time step: mixed in, the 1-step error went from 0.035 to 2.16
        raise ValueError(f"recorded episode {str(path)!r} was driven at action repeat {recorded}, the run's model "
                         f"at {action_repeat}: its transitions span another time step")
    if len(ep) == 0:  # imported, it left the run with an episode no training could use (probe 11)
        raise ValueError(f"recorded episode {str(path)!r} holds no transition (one state, no action): nothing to "
                         "learn from; leave it out of --data")
    if canonical_task(task) is not None and action_repeat is not None:
        check_suite_reward(path, ep.reward, action_repeat)
    if ep.obs.shape[1] != obs_dim or ep.action.shape[1] != act_dim:
        raise ValueError(f"recorded episode {str(path)!r} has {ep.obs.shape[1]} state and {ep.action.shape[1]} "
                         f"action dimensions, the run's model {obs_dim} and {act_dim}")
    if bounds is not None:
        check_action_bounds(path, ep.action, *bounds)
    if obs_range is not None:
        check_observation_scale(path, ep.obs, *obs_range)
    if reward_range is not None:
        check_reward_scale(path, ep.reward, *reward_range)


def _check_meta_says_true(path: Path, ep: Episode) -> None:
    """What a recording's metadata says of its arrays must be true: control_steps=5 or return=9999 beside them were
    imported (probe 22). Checked on import (a held file is checked by its digest)."""
    if (said := ep.meta.get("control_steps")) is not None and said != len(ep):
        raise ValueError(f"recorded episode {str(path)!r} says control_steps={said!r} but holds {len(ep)} transitions: "
                         "the file was edited or damaged")
    if isinstance(ret := ep.meta.get("return"), (int, float)) and not isinstance(ret, bool) and not math.isclose(
            ret, total := float(np.sum(ep.reward, dtype=np.float64)), rel_tol=1e-4, abs_tol=1e-3):
        raise ValueError(f"recorded episode {str(path)!r} says return={ret!r} but its rewards sum to {total:.6g}: the "
                         "file was edited or damaged")


def recorded_episodes(source: str | Path, task: str, obs_dim: int, act_dim: int,
                      action_repeat: int | None = None, bounds: tuple | None = None,
                      obs_range: tuple | None = None, reward_range: tuple | None = None) -> EpisodeDataset:
    """The recorded deployments in ``source`` (``robot-wm deploy --record``), checked against a run: refused
    when an episode is not a recorded deployment, or from another task, or at another action repeat, or has
    other observation/action sizes than the run, or (``obs_range``: the run's data per dimension) observations
    far outside it."""
    if not Path(source).exists():  # "holds no recorded episodes" for a typo
        raise ValueError(f"--data {str(source)!r} does not exist: expected a folder written by "
                         "`robot-wm deploy --record`")
    if Path(source).is_file():  # "holds no recorded episodes" for the file itself (probe 22)
        raise ValueError(f"--data {str(source)!r} is a file: expected the folder that `robot-wm deploy --record` wrote "
                         f"(give {str(Path(source).parent)!r} for the episodes beside it)")
    src = EpisodeDataset(source) if Path(source).is_dir() else None
    if src is None or not len(src):
        raise ValueError(f"{str(source)!r} holds no recorded episodes (expected a folder written by "
                         "`robot-wm deploy --record`)")
    named = {p.name for p in src.paths()}  # a renamed episode_1.npz was left out without a word (probe 22)
    # not a hidden file (macOS' AppleDouble ._episode_000000.npz beside a copied recording: review)
    if others := sorted(p.name for p in Path(source).glob("*.npz") if p.name not in named and not p.name.startswith(".")):
        raise ValueError(f"--data {str(source)!r} holds {len(others)} .npz file(s) that are not its numbered episodes "
                         f"({', '.join(others[:3])}{' ...' if len(others) > 3 else ''}): they would be left out; "
                         "name them episode_NNNNNN.npz in order after the others, or move them out")
    for path, ep in zip(src.paths(), src):
        check_recorded(path, ep, task, obs_dim, act_dim, action_repeat, bounds, obs_range, reward_range)
        _check_meta_says_true(path, ep)  # last, so that an edited array is named by its own check first
    return src


class Imported(NamedTuple):
    added: list[Path]      # the run's new robot episodes
    too_short: list[Path]  # recorded episodes left out: every command sent within the robot's delay of the start
    known: int = 0         # recorded episodes the run holds already (imported before)


def _drawn_delay(meta: dict) -> int:
    """The action delay an episode's randomisation drew (0 where none)."""
    draw = meta.get("randomization")
    d = draw.get("action_delay", 0) if isinstance(draw, dict) else 0
    return d if isinstance(d, int) and not isinstance(d, bool) else 0


def pairs_as_sent(run, sim: list[Episode]) -> bool:
    """Whether the run's model learns each state paired with the command *sent*: the run's own config randomises an
    action delay (``env.randomize.action_delay``; its first episodes may all have drawn none: probe 20), or one of its
    simulated episodes ``sim`` was driven with a delay (a one-off `collect` override: the config alone missed it,
    probe 19). Its robot data is then kept as sent, not realigned (``robot_wm.data.realign``). Never a session's
    one-off values: a Python session's one-off delay decided a fine-tuning's pairing, and the run then refused to train
    (probe 21)."""
    return _as_sent(run.load_config(), sim)


def _as_sent(cfg, sim: list[Episode]) -> bool:
    return cfg.env.randomize.action_delay[1] > 0 or any(_drawn_delay(e.meta) > 0 for e in sim)


def check_pairing(run, cfg) -> None:
    """Refuse collecting with an action delay (``cfg``, the collecting session's) into a run whose robot data was
    realigned (each state paired with the command that moved it): the delayed episodes pair states with the commands
    sent, and the run's robot data was then refused by every later train and finetune (probe 20; probe 21: the Python
    API's ``Session.collect`` too)."""
    folder = run.root / ROBOT_DIR  # read, never made: robot_dataset() would leave an empty one behind
    if cfg.env.randomize.action_delay[1] == 0 or not folder.is_dir():
        return
    if realigned_delays(EpisodeDataset(folder)):
        raise ValueError(f"env.randomize.action_delay={list(cfg.env.randomize.action_delay)}: the run "
                         f"{str(run.root)!r} holds robot data realigned by its delay (each state paired with the "
                         "command that moved it); episodes collected with a delay pair each state with the command "
                         "sent, and the two would mix. Collect without the delay, or start a new run")


def double_delay_note(cfg, sim: list[Episode], delay: int) -> str | None:
    """A warning where a planner's ``delay`` compensates a delay the run's model learned already (``pairs_as_sent``:
    its episodes pair each state with the command sent; probe 17), else None. ``cfg`` is the run's own config (what
    it trained with, not a command's one-off robot), ``sim`` its simulated episodes (a delayed one-off `collect`
    trained it too: the config alone missed it, probe 20)."""
    if not delay or not _as_sent(cfg, sim):
        return None
    lo, hi = cfg.env.randomize.action_delay
    why = (f"env.randomize.action_delay=[{lo}, {hi}]" if hi > 0 else
           f"{sum(_drawn_delay(e.meta) > 0 for e in sim)} episode(s) driven with an action delay (a one-off collect)")
    return (f"warning: planner.delay={delay} compensates a delay, but the run's model was trained with {why} (its "
            "episodes pair each state with the command sent, so it has learned the delay's effect): the delay may be "
            "counted twice")


def unmatched_delay_note(run_cfg, sim: list[Episode], cfg) -> str | None:
    """A note where a session's robot (``cfg``: a one-off ``--shift delay-K``, a fixed env.randomize.action_delay)
    acts its commands a fixed number of control steps late and its planner.delay compensates another number, for a
    model trained undelayed (``run_cfg``, ``sim``: the run's own; a model trained as sent knows its delay), else
    None. `eval --shift delay-2 planner.delay=1` ran without a word (probe 21)."""
    lo, hi = cfg.env.randomize.action_delay
    if lo != hi or lo == cfg.planner.delay or _as_sent(run_cfg, sim):
        return None
    horizon = cfg.planner.horizon  # planner.delay=50 was advised to a planner of horizon 5, which refuses it (probe 28)
    fix = (f"planner.delay={lo} compensates it" if lo < horizon else f"a planner compensates at most "
           f"planner.horizon - 1 = {horizon - 1} steps (planner.horizon={horizon})")
    return (f"note: this robot's commands act {lo} control step(s) late (env.randomize.action_delay=[{lo}, {hi}]) and "
            f"the planner compensates {cfg.planner.delay} (planner.delay): this measures a planner that "
            f"{'does not know' if not cfg.planner.delay else 'misjudges'} the robot's delay; {fix}")


def import_episodes(run, source: str | Path, task: str, obs_dim: int, act_dim: int,
                    action_repeat: int | None = None, bounds: tuple | None = None,
                    obs_range: tuple | None = None, reward_range: tuple | None = None,
                    as_sent: bool = False) -> Imported:
    """Copy the recorded episodes of ``source`` into the run's robot dataset (each file once: a file
    already imported, by content, is skipped), all of them checked first (``recorded_episodes``); a delayed
    robot's episodes realigned by their delay (``realign``; kept as sent ``as_sent``), those left with no transition
    then set aside (a one-step episode of a delayed robot refused its whole folder: probe 18)."""
    if Path(source).resolve().is_relative_to(run.root.resolve()):  # RUN/robot again: each call copied it once more
        raise ValueError(f"--data {str(source)!r} is inside the run {str(run.root)!r}: its episodes are the run's "
                         "already; give the folder `robot-wm deploy --record` wrote")
    src = recorded_episodes(source, task, obs_dim, act_dim, action_repeat, bounds, obs_range, reward_range)
    dest = robot_dataset(run)
    # Each episode once, by content: a recorded file imported before, and a copy of an imported file itself
    # (a copy of RUN/robot/ was imported again).
    seen = ({_origin(e.meta) for e in dest} | {_origin(e.meta, "content_sha256") for e in dest} | {file_sha256(p) for p in dest.paths()}
            ) - {None}
    new, too_short, known = [], [], 0
    for path, ep in zip(src.paths(), src):
        digest, content = file_sha256(path), content_sha256(ep, path)
        if digest in seen or _origin(ep.meta) in seen or content in seen:
            known += 1
            continue
        if "realigned_delay" in ep.meta and _origin(ep.meta) is None:  # taken as realigned, kept unaligned (probe 20)
            raise ValueError(f"recorded episode {str(path)!r} says it was realigned (meta realigned_delay="
                             f"{ep.meta['realigned_delay']!r}) but was never imported (no imported_from): the file was "
                             "edited; give the recording as `robot-wm deploy --record` wrote it")
        if realigned_length(ep, path, as_sent) <= 0:
            too_short.append(path)
            continue
        # a delayed robot's rows paired again with the commands that moved it (all checked before any is copied)
        new.append((path, digest, content, realign(ep, path, as_sent)))
        seen |= {digest, content, _origin(ep.meta)} - {None}  # a copy of an import and its recorded file: one (probe 18)
    added = []
    try:
        for path, digest, content, ep in new:
            # a copy of an import keeps the recorded file it came from: a copy of a copy was imported twice (probe 18)
            origin = ep.meta["imported_from"] if _origin(ep.meta) else {"path": str(Path(path).resolve()),
                                                                        "sha256": digest, "content_sha256": content}
            meta = {**ep.meta, "imported_from": origin}
            # No physics state: a real robot has none, and training never reads it (so both kinds fit one folder).
            no_state = np.zeros((len(ep.obs), 0))
            added.append(dest.append(Episode(ep.obs, ep.action, ep.reward, no_state, meta)))
    except BaseException:  # Ctrl-C or a full disk between two copies: the first stayed, never trained on (probe 21)
        for p in added:
            p.unlink(missing_ok=True)
        raise
    return Imported(added, too_short, known)


def _checks(s, sim: list[Episode]) -> tuple:
    """``check_recorded``'s arguments for the run of session ``s`` (its simulated episodes ``sim``)."""
    env, cfg = s.env, s.cfg
    seen = np.concatenate([e.obs for e in sim]) if sim else None
    paid = np.concatenate([e.reward for e in sim]) if sim else None
    return (cfg.env.task, env.observation_spec.dim, env.action_spec.dim, cfg.env.action_repeat,
            (env.action_spec.low, env.action_spec.high), None if seen is None else (seen.min(0), seen.max(0)),
            None if paid is None or not len(paid) else (float(paid.min()), float(paid.max())))


def held_robot_episodes(s, sim: list[Episode], checks: tuple | None = None) -> list[Episode]:
    """The run's own robot episodes (``RUN/robot/``), each checked again as on import (``checks``: ``_checks(s,
    sim)`` where the caller has them): they are trained on by every later round, and a file put or edited there
    was never checked (tenth probe). [] where there are none."""
    folder = s.run.root / ROBOT_DIR
    if not folder.is_dir():
        return []
    held, checks = EpisodeDataset(folder), checks or _checks(s, sim)
    digests, as_sent = _robot_digests(s.run), pairs_as_sent(s.run, sim)
    for i, (path, ep) in enumerate(zip(held.paths(), held)):
        try:
            check_recorded(path, ep, *checks)
            check_aligned(ep, path, as_sent)
            if _origin(ep.meta) is None:  # a hand-edited "imported_from": "x" was trained on, then a traceback (probe 13)
                raise ValueError(f"episode {str(path)!r} does not say which recorded file it was imported from (meta "
                                 f"imported_from={ep.meta.get('imported_from')!r}, expected {{path, sha256}})")
        except ValueError as e:
            later = len(held) - 1 - i  # moving it alone left a gap every reader refused (probe 17)
            and_later = f" and the {later} numbered after it" if later else ""
            # the digest check below refused the advised move of a file a fine-tuning trained on (probe 21)
            kept = (f"put it back as the fine-tuning of round {digests[0]} trained on it (metrics.jsonl holds each "
                    "file's sha256), or start a new run; if it was added since, " if digests else "")
            raise ValueError(f"{e} (in the run's robot data {str(held.root)!r}: {kept}move that file{and_later} out to "
                             "go on; the episodes are numbered without gaps)") from None
    # what passes the checks above, edited in range (actions negated), was trained on without a word (probe 20); each
    # file is looked up by its digest, not by its place or its claimed origin: two files swapped and one edited, or the
    # first removed and the rest renumbered, or an edited origin, passed a check by place (probe 21)
    if digests and len(held):
        missing = Counter(d[0] for d in digests[1]) - Counter(file_sha256(p) for p in held.paths())
        if missing:
            raise ValueError(f"the run's robot data {str(held.root)!r} no longer holds {sum(missing.values())} of the "
                             f"{len(digests[1])} episode files the fine-tuning of round {digests[0]} trained on (sha256 "
                             f"{next(iter(missing))[:12]}...): one was edited, removed or replaced since; put them back "
                             "as they were, or start a new run")
    return list(held)


def _robot_digests(run) -> tuple[int, list[list[str]]] | None:
    """(round, each held robot file's [sha256, origin]) of the run's last fine-tuning that recorded them, or None."""
    for r in reversed(run.records("train")):
        ft = r.get("finetune")
        if isinstance(ft, dict) and "robot_files" in ft:
            d = ft["robot_files"]
            ok = isinstance(d, list) and all(isinstance(x, list) and len(x) == 2 and all(isinstance(v, str) for v in x)
                                             for x in d)
            return (r.get("round"), d) if ok else None
    return None


def _not_fine_tuned_on(run) -> int:
    """How many of the run's held robot files no finished fine-tuning trained on: an import whose fine-tuning was
    killed (0 where none). Held files are told apart by digest (``robot_files`` of the last fine-tuning)."""
    folder = run.root / ROBOT_DIR
    if not folder.is_dir():
        return 0
    held = EpisodeDataset(folder).paths()
    if (digests := _robot_digests(run)) is None:  # a fine-tuning recorded before its files' digests: by count (review)
        if (last := _last_finetune(run)) is None:  # none finished: every held file was imported by one that did not
            return len(held)
        done = last.get("robot_episodes")
        return max(0, len(held) - done) if isinstance(done, int) and not isinstance(done, bool) else 0
    return sum((Counter(file_sha256(p) for p in held) - Counter(d[0] for d in digests[1])).values())


def _last_finetune(run) -> dict | None:
    """The ``finetune`` part of the run's last train record that has one (None where no fine-tuning finished)."""
    return next((r["finetune"] for r in reversed(run.records("train")) if isinstance(r.get("finetune"), dict)), None)


def robot_weight(run, held: int = 0) -> int:
    """The weight the run's last fine-tuning gave its robot data (``DEFAULT_WEIGHT`` where none says). Refused
    where the run holds more robot episodes (``held``) than that fine-tuning trained on: an import whose
    fine-tuning never finished (killed), which a later `train` took at the default weight (probe 13)."""
    last = _last_finetune(run) or {}
    done = last.get("robot_episodes")
    if held and not (isinstance(done, int) and done >= held):
        raise ValueError(f"the run's robot data {str(run.root / ROBOT_DIR)!r} holds {held} episodes, but no fine-tuning "
                         f"finished on {'them' if not isinstance(done, int) else f'more than {done}'} (one was "
                         f"stopped?): run `robot-wm finetune {run.root} --data DIR --weight W` again to finish it "
                         "(episodes imported before are not copied twice), or move the new files out")
    w = last.get("weight")
    return w if isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= MAX_WEIGHT else DEFAULT_WEIGHT


class MixedSplit(NamedTuple):
    """Simulated and robot episodes split for one training round (``mixed_split``)."""

    train: Transitions        # training transitions: the simulated ones, then each robot row ``weight`` times
    sim_val: list[Episode]    # the held-out segment of every simulated episode
    robot_val: list[Episode]  # ... and of every robot episode
    sim_train: Transitions    # the simulated training transitions alone: what the normalisers are fitted on

    @property
    def val(self) -> list[Episode]:
        return self.sim_val + self.robot_val


def mixed_split(sim: list[Episode], robot: list[Episode], weight: int, val_fraction: float) -> MixedSplit:
    """The one split of a round's data (``split``, the robot's episodes numbered after the simulator's), so that
    training, validation and every error before and after measure the same held-out segments."""
    sim_t, sim_val = split(sim, val_fraction)
    if not robot:
        return MixedSplit(sim_t, sim_val, [], sim_t)
    rob_t, rob_val = split(robot, val_fraction, first_index=len(sim))
    return MixedSplit(_join([sim_t, *[rob_t] * weight]), sim_val, rob_val, sim_t)


def sim_states(sim: list[Episode], n_step: int, discount: float) -> np.ndarray:
    """The states of the simulated episodes' TD rows, (N, S): what the value's normaliser is fitted on
    (``train_value``'s ``norm_from``), as a round without robot data fits it, never the robot's states repeated by
    their weight (every state of the episodes, their last ones too, was another normaliser: a first fine-tuning
    moved it by up to 0.03)."""
    return TDData.from_episodes(list(sim), n_step, discount).states()


def _join(parts: list[Transitions]) -> Transitions:
    return Transitions(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("obs", "action", "reward", "next_obs")))


FORGET_RATIO = 1.25
"""A fine-tuned model whose planning-horizon error on the simulator's held-out segments grew more than this
factor gets a warning. (On cheetah-run ten recorded episodes of one gait seemed to raise it 1.5x; in one unit
it was 1.08x, and the planner's fall from 278 to 64 came from the refitted normalisers and the value: docs/results.md,
adaptation.)"""


def forgetting(rec: dict, horizon: int) -> float | None:
    """How many times the fine-tuned model's ``horizon``-step error on the simulator's held-out segments grew
    (a ``finetune`` train record), or None where it cannot tell (no such record, too-short segments)."""
    before, after = (rec.get(f"sim_multistep_mse_{k}", {}).get(str(horizon)) for k in ("before", "after"))
    if not all(isinstance(v, float) for v in (before, after)) or not np.isfinite(before) or before <= 0:
        return None
    return after / before if np.isfinite(after) else float("inf")  # the same segments: a NaN is the model's (probe 13)


MAX_WEIGHT = 100
"""Largest ``--weight``: the robot's rows are repeated that many times in memory."""
DEFAULT_WEIGHT = 4
"""How many times each robot transition counts by default (``--weight``)."""


def finetune(s, source: str | Path, weight: int = DEFAULT_WEIGHT, progress: bool = True,
             value: bool = False) -> dict:
    """Import ``source``'s recorded episodes into the run of session ``s`` and fine-tune from its latest
    checkpoint; the normalisers stay fitted on the simulator's data. Returns the train record it logs;
    its errors before and after are in one unit, the std of the model's inputs before fine-tuning. With
    ``value`` the value and policy are fine-tuned too (off by default: on cheetah-run, seed 200, ten episodes
    of a heavier robot, the planner scored 363 with the world model fine-tuned alone and 211, 202 and 163 in
    three fine-tunings that trained the value and policy too; docs/results.md, adaptation)."""
    if not isinstance(value, bool):
        raise ValueError(f"value={value!r}: expected True or False (fine-tune the value and policy too)")
    # 2.5 passed this check, imported the recordings and then failed; True was stored as `"weight": true` (tenth probe)
    if isinstance(weight, bool) or not isinstance(weight, numbers.Integral) or not 1 <= weight <= MAX_WEIGHT:
        raise ValueError(f"robot data weight {weight!r} must be a whole number from 1 to {MAX_WEIGHT} (each robot "
                         "transition counts that many times)")
    weight = int(weight)  # np.int64(2) trained the whole round, then failed writing its JSON (probe 19)
    s._check_writer("finetune")  # a read-only session wrote robot data and a checkpoint round (probe 18)
    elite_before = s.latest_model()
    if elite_before is None:
        raise ValueError(f"run {str(s.run.root)!r} has no trained model to fine-tune: run `robot-wm train` first")
    if value and s.value is None:  # ignored, exit 0 (probe 14)
        raise ValueError(f"--value: the run {str(s.run.root)!r} has no value and policy to fine-tune (it was trained "
                         "with value.enabled=false); fine-tune without --value")
    s.run.check_recorded_episodes(s.run.dataset())  # an edited training episode trains here too (review)
    sim = list(s.run.dataset())
    checks = _checks(s, sim)
    held_robot_episodes(s, sim, checks)
    adopted = _not_fine_tuned_on(s.run)
    added, too_short, known = import_episodes(s.run, source, *checks, as_sent=pairs_as_sent(s.run, sim))
    if too_short and not added and not known:  # a folder imported before is fine-tuned on again (review)
        raise ValueError(f"--data {str(source)!r}: each of its {len(too_short)} episodes holds only commands sent "
                         "within the robot's delay of its start (no transition is left once each state is paired with "
                         "the command that moved it): record longer episodes")
    stem = None
    try:
        record, stem = _tune(s, elite_before, sim, added, weight, value, progress, too_short)
        # imported by a fine-tuning that was stopped before it finished (killed: nothing could take them back), now
        # trained on with this one's: adopted without a word before (probe 21)
        record["finetune"]["adopted"] = adopted
        record["finetune"]["held_already"] = known  # a file of --data the run holds: skipped, said (probe 23)
        s.run.set_latest(stem)
    except BaseException:  # Ctrl-C, SIGTERM, a diverged training: the import goes with the fine-tuning it was for
        # (a later `train` trained on it at the default weight, not the one asked: probe 13) unless the round is the
        # run's latest already: a SIGTERM right after took the import back, and the run planned with a model of data
        # it no longer held (probe 19). Stopped before the record is logged, `train` says to run finetune again.
        if not _is_latest(s.run, stem):
            for path in added:
                path.unlink(missing_ok=True)
        raise
    s.run.log(record)
    return record


def _is_latest(run, stem: Path | None) -> bool:
    """Whether checkpoint ``stem`` is the run's latest (False for none, or a latest that cannot be read)."""
    try:
        return stem is not None and (latest := run.latest_checkpoint()) is not None and latest.name == Path(stem).name
    except (OSError, ValueError):
        return False


def _tune(s, elite_before, sim: list[Episode], added: list[Path], weight: int, value: bool, progress: bool,
          too_short: list[Path] = ()) -> tuple[dict, Path]:
    """``finetune`` after the import: train and checkpoint the round; returns its record and checkpoint (not yet the
    run's latest)."""
    cfg = s.cfg
    folder = robot_dataset(s.run)
    robot = list(folder)
    horizons = tuple(sorted({1, 5, 10, cfg.planner.horizon}))
    meta_before = s.run.records("train")[-1] if s.run.records("train") else {}
    round_ = s.run.next_round()
    # One unit before and after: the errors were each in their own model's units, and a refitted normaliser
    # made the simulator's 12-step error on cheetah-run look 1.5x worse where it was 1.08x
    units = copy.deepcopy(elite_before.obs_norm)
    mix = mixed_split(sim, robot, weight, cfg.model.val_fraction)  # sim_val: what fine-tuning may forget
    before = multistep_error(elite_before, robot, horizons, units)  # in-sample: the episodes it is fine-tuned on
    sim_before = multistep_error(elite_before, mix.sim_val, horizons, units)
    robot_val_before = multistep_error(elite_before, mix.robot_val, horizons, units)

    t0 = time.perf_counter()
    report = fit_model(s.model, mix.train, mix.val, cfg.model, seed=cfg.seed * 7919 + round_, progress=progress,
                       norm_from=mix.sim_train)
    elite = s.model.subset(report.elites)
    value_rec = {}
    if value and s.value is not None:
        rows = TDData.from_episodes(sim + robot * weight, cfg.value.n_step, s.value.spec.discount)
        rows, imagined = with_imagined(rows, elite, s.value, cfg.value.imagined_steps, cfg.seed * 7919 + round_)
        updates = round(cfg.value.updates_per_step * sum(len(e) for e in robot) * weight)
        rep = train_value(s.value, rows, cfg.value, updates, seed=cfg.seed * 7919 + round_ + 1, progress=progress,
                          norm_from=sim_states(sim, cfg.value.n_step, s.value.spec.discount))
        value_rec = {"value_updates": rep.updates, "value_train_s": round(rep.train_s, 2), "q_loss": rep.q_loss,
                     "mean_q": rep.mean_q, **({"imagined_rows": imagined} if cfg.value.imagined_steps else {})}
    after = multistep_error(elite, robot, horizons, units)
    sim_after = multistep_error(elite, mix.sim_val, horizons, units)
    robot_val_after = multistep_error(elite, mix.robot_val, horizons, units)
    sources = sorted({str(e.meta["imported_from"].get("path", "?")) for e in robot})  # each checked: a dict
    delays = realigned_delays(robot)  # said, and for the export (probe 18)
    info = {"robot_episodes": len(robot), "robot_transitions": sum(len(e) for e in robot), "added": len(added),
            "realigned": sum(bool(e.meta.get("realigned_delay")) for e in robot), "realigned_delays": delays,
            "weight": weight, "sim_episodes": len(sim), "sources": sources, "value": bool(value_rec),
            "too_short": [str(p) for p in too_short],
            # each held robot file's digest and origin, in order: later rounds check them (probe 20: an edited or
            # removed robot episode was trained on without a word, where a training episode is refused)
            "robot_files": [[file_sha256(p), _origin(e.meta) or ""] for p, e in zip(folder.paths(), robot)],
            "kept_as_sent": sum(acted_delay(e.meta) > 0 for e in robot) if pairs_as_sent(s.run, sim) else 0}
    mse = lambda d: {str(k): v for k, v in d.items()}  # noqa: E731
    stem = save_checkpoint(s.model, s.run.checkpoint_stem(round_), report.elites, extra={
        "task": cfg.env.task, **time_step(cfg.env), **s.run.id_field(), "round": round_,
        "transitions": sum(len(e) for e in sim), "finetune": info,
        "multistep_mse": mse(after)}, value=s.value)
    record = {"kind": "train", "round": round_, "epochs": report.epochs, "train_s": round(time.perf_counter() - t0, 2),
              "val_mse": report.val_mse, "elites": report.elites, "episodes": len(sim),
              "transitions": meta_before.get("transitions", sum(len(e) for e in sim)), "finetune": info,
              "robot_multistep_mse_before": mse(before), "robot_multistep_mse_after": mse(after),
              # probe 14: the two above are in-sample (the whole robot episodes, most of them trained on); these
              # are on the segments of them that the fine-tuning held out
              "robot_heldout_multistep_mse_before": mse(robot_val_before),
              "robot_heldout_multistep_mse_after": mse(robot_val_after),
              "sim_multistep_mse_before": mse(sim_before), "sim_multistep_mse_after": mse(sim_after),
              "multistep_mse": mse(after), **value_rec}
    return record, stem
