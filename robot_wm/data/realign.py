"""Recordings of a robot whose commands act late, paired again with the commands that moved it.

A recorded row ``t`` holds the state and the command *sent* at control step ``t``. On a robot whose commands take
effect ``D`` control steps after they are sent, the command that moved state ``t`` to ``t + 1`` was the one sent at
``t - D``. ``realign`` drops the first ``D`` rows (the commands acting then were sent before the recording began)
and pairs every later state with the command that acted on it: a transition of the robot's own dynamics, which a
world model without any delay can learn from (the planner's ``planner.delay`` compensates for the delay itself).

Which delay: the simulated robot's ``randomization.action_delay`` where the recording names one (the physics that
ran), otherwise the ``planner_delay`` the planner was exported with (a real robot's delay, as its user measured it).
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
    """Control steps between a recorded command and its effect: the simulated robot's ``action_delay`` where the
    recording holds one, else the planner's ``planner_delay`` (0 where neither is said)."""
    draw = meta.get("randomization")
    if isinstance(draw, dict) and "action_delay" in draw:
        return _whole(draw["action_delay"], "randomization.action_delay", path)
    if draw is not None and not isinstance(draw, dict):
        raise ValueError(f"recorded episode {str(path)!r}: meta randomization = {str(draw)[:40]!r}, expected a table")
    return _whole(meta.get("planner_delay", 0), "planner_delay", path)


def realign(ep: Episode, path="") -> Episode:
    """``ep`` with each state paired with the command that acted on it (``acted_delay`` rows dropped at the start;
    meta ``realigned_delay`` says by how many). An episode whose commands acted at once is returned as it is."""
    d = acted_delay(ep.meta, path)
    if d == 0:
        return ep
    if "realigned_delay" in ep.meta:
        raise ValueError(f"recorded episode {str(path)!r} was realigned already (meta realigned_delay="
                         f"{ep.meta['realigned_delay']!r})")
    if len(ep) <= d:
        raise ValueError(f"recorded episode {str(path)!r} holds {len(ep)} commands, all sent within the robot's "
                         f"{d}-step delay of its start: no transition is left once they are paired with their effect")
    meta = {**ep.meta, "realigned_delay": d}
    return Episode(ep.obs[d:], ep.action[:len(ep) - d], ep.reward[d:], ep.physics_state[d:], meta)


def check_aligned(ep: Episode, path="") -> None:
    """Refuse an episode of a delayed robot that was not realigned by its delay (held in a run's robot data, it is
    trained on as it stands)."""
    d = acted_delay(ep.meta, path)
    if d and ep.meta.get("realigned_delay") != d:
        raise ValueError(f"episode {str(path)!r} is a recording of a robot whose commands acted {d} control steps "
                         f"late, but its rows were not realigned by that delay (meta realigned_delay="
                         f"{ep.meta.get('realigned_delay')!r}): import it with `robot-wm finetune RUN --data DIR`")
