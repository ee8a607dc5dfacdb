"""Recordings of a robot whose commands act late, paired again with the commands that moved it.

A recorded row ``t`` holds the state and the command *sent* at control step ``t``. On a robot whose commands take
effect ``D`` control steps after they are sent, the command that moved state ``t`` to ``t + 1`` was the one sent at
``t - D``. ``realign`` drops the first ``D`` rows (the commands acting then were sent before the recording began)
and pairs every later state with the command that acted on it: a transition of the robot's own dynamics, which a
world model without any delay can learn from (the planner's ``planner.delay`` compensates for the delay itself).

Which delay: a simulated robot's own ``randomization.action_delay`` (the physics that ran; none recorded: the nominal
simulator, no delay), a real robot's ``planner_delay``, the delay the planner was exported with (as its user measured
it). Step numbers of a realigned episode (``whatif``/``dream --data --step K``) count its rows: row K holds
the state of recorded step K + D.

A run trained with a randomised ``env.randomize.action_delay`` keeps its simulated episodes as they were sent (the model
learns the delays' effect from them), so robot data joins it as sent too (``as_sent``): realigned, it taught the
undelayed pairing beside the delayed one (probe 18).
"""

from __future__ import annotations

from robot_wm.data.episode import Episode

MAX_DELAY = 1000
"""A recording may declare a delay of at most this many control steps (a 1,000-step suite episode's length)."""


def _whole(value, what: str, path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DELAY:
        raise ValueError(f"recorded episode {str(path)!r}: meta {what} = {value!r}, expected a whole number of "
                         f"control steps from 0 to {MAX_DELAY}")
    return value


def acted_delay(meta: dict, path="") -> int:
    """Control steps between a recorded command and its effect: for a simulated robot (meta source ``sim-robot``)
    its ``randomization.action_delay`` (0 for the nominal simulator, which records no draw, whatever delay the
    planner compensated); for a real robot the planner's ``planner_delay`` (0 where it says none)."""
    draw = meta.get("randomization")
    if draw is not None and not isinstance(draw, dict):
        raise ValueError(f"recorded episode {str(path)!r}: meta randomization = {str(draw)[:40]!r}, expected a table")
    if meta.get("source") != "sim-robot":  # a real robot's own word: a draw given as its extra metadata overrode its
        return _whole(meta.get("planner_delay", 0), "planner_delay", path)  # planner's delay (probe 19)
    if isinstance(draw, dict) and "action_delay" in draw:
        return _whole(draw["action_delay"], "randomization.action_delay", path)
    return 0  # review: a nominal robot driven by a planner.delay=1 planner was realigned


def realigned_length(ep: Episode, path="", as_sent: bool = False) -> int:
    """The transitions ``realign`` leaves of ``ep`` (0 or less: every command was sent within the delay of its start);
    refused as ``realign`` refuses an episode realigned by another delay (review: an edited file was left out as short)."""
    d, done = _target(ep.meta, path, as_sent), _realigned(ep.meta, path)
    if done == d:
        return len(ep)
    _check_done(done, d, path, as_sent)
    return len(ep) - d


def realign(ep: Episode, path="", as_sent: bool = False) -> Episode:
    """``ep`` with each state paired with the command that acted on it (``acted_delay`` rows dropped at the start;
    meta ``realigned_delay`` says by how many, ``recorded_steps`` how many rows the recording held; row t holds the state
    of recorded step t + d and the command sent at step t, whose ``latency_ms`` and ``fallback_steps`` keep their
    numbers). An episode whose commands acted at once, or one realigned by its delay already, is returned as it is;
    so is every episode ``as_sent`` (for a run whose model learned delayed commands as sent), unless realigned."""
    d, done = _target(ep.meta, path, as_sent), _realigned(ep.meta, path)
    if done == d:
        return ep
    _check_done(done, d, path, as_sent)
    n = len(ep)
    if n <= d:
        raise ValueError(f"recorded episode {str(path)!r} holds {n} commands, all sent within the robot's "
                         f"{d}-step delay of its start: no transition is left once they are paired with their effect")
    meta, repeat = dict(ep.meta), ep.meta.get("action_repeat")
    meta.update(realigned_delay=d, recorded_steps=n, control_steps=n - d)
    if isinstance(repeat, int) and not isinstance(repeat, bool):
        meta["env_steps"] = (n - d) * repeat
    if meta.get("return") is not None:  # a robot without a known reward records null
        meta["return"] = float(ep.reward[d:].sum(dtype=float))
    # per command: row t's command is the one sent at recorded step t, so its planning time and fallback keep their
    # numbers; the last d commands, which acted after the recording ended, go with their rows
    if isinstance(meta.get("latency_ms"), list):
        meta["latency_ms"] = meta["latency_ms"][:n - d]
    if isinstance(fell := meta.get("fallback_steps"), list):
        meta["fallback_steps"] = [f for f in fell if not (isinstance(f, dict) and isinstance(f.get("step"), int))
                                  or f["step"] < n - d]
    return Episode(ep.obs[d:], ep.action[:n - d], ep.reward[d:], ep.physics_state[d:], meta)


def realigned_delays(episodes) -> list[int]:
    """The delays a run's robot episodes were realigned by, each once, in order (empty where none was)."""
    return sorted({d for e in episodes if (d := e.meta.get("realigned_delay"))})


def _target(meta: dict, path, as_sent: bool) -> int:
    """The delay an episode is to be realigned by: its ``acted_delay``, or 0 ``as_sent`` (its meta still checked)."""
    d = acted_delay(meta, path)
    return 0 if as_sent else d


def _check_done(done: int, d: int, path, as_sent: bool) -> None:
    """Refuse an episode realigned by ``done`` steps where ``d`` are due (``as_sent``: none, the run's pairing)."""
    if done and as_sent:
        raise ValueError(f"episode {str(path)!r} was realigned by {done} control steps (meta realigned_delay), but the "
                         "run's model learned each state paired with the command sent (it was trained with a randomised "
                         "env.randomize.action_delay): the two pairings would mix; give the recording as it was made")
    if done:  # true, 1.0 and "1" passed as 1 (probe 18)
        raise ValueError(f"episode {str(path)!r} was realigned by {done} control steps (meta realigned_delay), but its "
                         f"metadata says its commands acted {d} late: the file was edited")


def _realigned(meta: dict, path) -> int:
    """The delay an episode was realigned by (meta ``realigned_delay``, checked as a delay is), 0 where none."""
    return _whole(meta["realigned_delay"], "realigned_delay", path) if "realigned_delay" in meta else 0


def check_aligned(ep: Episode, path="", as_sent: bool = False) -> None:
    """Refuse an episode of a delayed robot that was not realigned by its delay (held in a run's robot data, it is
    trained on as it stands), or ``as_sent`` one that was."""
    d, done = _target(ep.meta, path, as_sent), _realigned(ep.meta, path)
    if done and as_sent:  # held since an earlier robot-wm realigned every import (review): say how to go on
        origin = ep.meta.get("imported_from")
        source = origin.get("path") if isinstance(origin, dict) else None
        raise ValueError(f"episode {str(path)!r} was realigned by {done} control steps on import, but the run's "
                         "simulated episodes pair each state with the command sent (some were collected with "
                         "env.randomize.action_delay; a robot-wm before 2026-11-28 realigned every import): move it out "
                         f"and import the recording it came from again ({source!r}) with `robot-wm finetune RUN --data "
                         "DIR`")
    if done != d:
        _check_done(done, d, path, as_sent)
        raise ValueError(f"episode {str(path)!r} is a recording of a robot whose commands acted {d} control steps "
                         f"late, but its rows were not realigned by that delay (meta realigned_delay="
                         f"{ep.meta.get('realigned_delay')!r}): import it with `robot-wm finetune RUN --data DIR`")
