"""Drive the learned model by hand: from a real state of a recorded episode, step every member of the world
model and the true simulator side by side with actions typed at the keyboard (one line per step) or read
from a scripted file, and watch where the model breaks: the members' disagreement and their error against
the simulator after every step, live in Rerun, and as a dream video at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from robot_wm.cli_args import DECIMAL
from robot_wm.data.episode import Episode
from robot_wm.dream import Dream, state_error
from robot_wm.model.ensemble import WorldModel

MAX_SCRIPT_BYTES = 16 << 20
"""A scripted action file larger than this is refused before it is read."""


class Tick(NamedTuple):
    step: int
    action: np.ndarray      # (A,) as applied (clamped to the bounds)
    disagreement: float     # std over members of the predicted state, data-std units, mean over dimensions
    error: float            # RMS error of the members' mean prediction against the simulator (data-std units)
    diverged: bool          # the simulator diverged: its state stays the last valid one
    ended: bool = False     # the simulator's episode is over (diverged, or its time limit): no step follows


def recorded_physics(meta: dict, bodies=()):
    """The ``env.randomize`` section that re-creates the physics an episode was recorded with (its metadata's
    ``randomization``: each scale and the delay fixed, no observation noise; no delay for an episode realigned by it),
    or None for the nominal model. The
    draw names its ``mass_bodies`` since 2026-11-27; an older one gets ``bodies`` (the run's own). A hand-edited
    draw gets the section's own errors, naming the field."""
    from robot_wm.config import RandomizeConfig

    draw = meta.get("randomization")
    if draw is None:
        return None
    if not isinstance(draw, dict):
        raise ValueError(f"the episode's meta randomization = {str(draw)[:60]!r}: expected an object (a recorded draw)")
    # a realigned episode pairs each state with the command that moved it: replayed without the delay (review)
    keys = ("mass", "friction", "damping", "actuator_gain") + (() if "realigned_delay" in meta else ("action_delay",))
    fixed = {k: [draw[k], draw[k]] for k in keys if k in draw}
    try:
        return RandomizeConfig(**fixed, mass_bodies=draw.get("mass_bodies", list(bodies)))
    except ValueError as e:
        raise ValueError(f"the episode's meta randomization = {str(draw)[:120]}: {e}") from None


class Drive:
    """Open-loop imagination under actions chosen one at a time, beside the simulator (with the physics the
    episode was recorded with: probe 14 replayed a mass x1.3 recording on the nominal robot)."""

    def __init__(self, model: WorldModel, env, episode: Episode, step: int = 0):
        n = len(episode.action)
        if not 0 <= step <= n:
            raise ValueError(f"--step {step} is out of range: the episode has {n + 1} states (0 to {n})")
        self.model, self.env = model.eval(), env
        env.randomize(recorded_physics(episode.meta, env.randomizer.cfg.mass_bodies if env.randomizer else ()))
        env.reset(episode.meta.get("seed") or 0)  # the episode's own draw (e.g. the arm's target)
        recorded = step + (episode.meta.get("realigned_delay") or 0)  # a realigned episode's row k: recorded step k + D
        if recorded >= env.max_control_steps:  # the first action was a RuntimeError traceback (probe 19)
            raise ValueError(f"--step {step} is at the simulator's time limit ({env.max_control_steps} control steps "
                             "into the episode): no step can be driven from there; give an earlier --step")
        env.set_state(episode.physics_state[step], min(recorded, env.max_control_steps))
        if env.randomizer is not None:  # a delayed robot: the commands still in flight at ``step`` go out first
            env.randomizer.prime_delay(episode.action[:step], (env.action_spec.low + env.action_spec.high) / 2)
        self.std = model.obs_norm.std.detach().cpu().numpy()
        self.low, self.high = env.action_spec.low, env.action_spec.high
        obs = np.asarray(episode.obs[step], dtype=np.float32)
        self.real, self.physics = [obs], [episode.physics_state[step]]
        self.imagined = [np.repeat(obs[None], model.members, 0)]
        self.start = step

    def step(self, action) -> Tick:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != self.low.shape or not np.all(np.isfinite(a)):
            raise ValueError(f"action {np.asarray(action).tolist()}: expected {self.low.size} finite numbers")
        a = np.clip(a, self.low, self.high)
        e = self.model.members
        with torch.inference_mode():
            s = torch.as_tensor(self.imagined[-1], dtype=torch.float32)[:, None]
            act = torch.as_tensor(a, dtype=torch.float32).expand(e, 1, a.size)
            nxt = self.model.step(s, act)[0][:, 0].numpy()
        res = self.env.step(a)
        self.imagined.append(nxt)
        self.real.append(np.asarray(res.observation, dtype=np.float32))
        self.physics.append(self.env.get_state())
        with np.errstate(over="ignore", invalid="ignore"):  # a model driven past its range overflows (probe 12)
            scaled = nxt / self.std
            err = self.final_error()
            spread = float(scaled.std(0).mean())
        return Tick(len(self.real) - 1, a, spread if np.isfinite(spread) else float("inf"),
                    err if np.isfinite(err) else float("inf"), bool(res.diverged), bool(res.done))

    def final_error(self) -> float:
        """RMS error of the members' mean prediction of the latest state against the simulator (data-std units): the
        figure each step prints and the closing line repeats (it gave the members' mean error, another number: probe 28)."""
        with np.errstate(over="ignore", invalid="ignore"):
            return float(state_error(self.imagined[-1].mean(0)[None, None], self.real[-1][None], self.std)[0, 0])

    def as_dream(self) -> Dream:
        imagined, real = np.stack(self.imagined, 1), np.stack(self.real)
        with np.errstate(over="ignore", invalid="ignore"):
            error = state_error(imagined, real, self.std)
        return Dream(real, imagined, error, np.stack(self.physics), self.start)


def replay(model: WorldModel, env, episode: Episode, step: int, actions: np.ndarray) -> Dream:
    """A dream under any action sequence (K, A) from ``episode``'s state at ``step``: every member open loop,
    and the simulator re-run from the recorded physics state with the same actions (to its divergence, if any)."""
    drive = Drive(model, env, episode, step)
    for act in actions:
        if drive.step(act).ended:
            break
    return drive.as_dream()


def parse_action(line: str, act_dim: int, last: np.ndarray | None) -> np.ndarray | None:
    """One typed line: comma- or space-separated numbers; empty repeats the last action; q quits (None)."""
    text = line.strip()
    if text.lower() in ("q", "quit", "exit"):
        return None
    if not text:
        if last is None:
            raise ValueError("no action yet to repeat: type one first")
        return last
    words = text.replace(",", " ").split()
    try:  # ASCII decimal numbers only: float() also read '1_000' as 1000 and an Arabic-Indic '١' as 1 (probe 11)
        if not all(DECIMAL.fullmatch(w) for w in words):
            raise ValueError
        vals = np.array([float(w) for w in words])
    except ValueError:
        raise ValueError(f"{text[:60]!r} is not {_numbers(act_dim)} (e.g. {', '.join(['0.5'] * act_dim)})") from None
    if vals.shape != (act_dim,):
        raise ValueError(f"{text[:60]!r}: expected {_numbers(act_dim)} (finite), got {vals.size}")
    if not np.all(np.isfinite(vals)):  # "expected 1 number (finite), got 1" for nan
        raise ValueError(f"{text[:60]!r}: expected finite numbers, got {', '.join(map(str, vals[~np.isfinite(vals)]))}")
    return vals


def _numbers(n: int) -> str:
    return f"{n} number{'s' if n != 1 else ''}"


def scripted_actions(path: str | Path, act_dim: int) -> list[np.ndarray]:
    """Actions from a .npy file (K, A) or a text file (one action per line, # comments, a blank line repeats
    the last action, q ends the script)."""
    from robot_wm.io import check_regular_file, load_npy

    path = Path(path)
    try:
        check_regular_file(path, "--actions", MAX_SCRIPT_BYTES)
    except FileNotFoundError:
        raise ValueError(f"--actions {str(path)!r} does not exist") from None
    if path.suffix == ".npy":
        arr = load_npy(path, "--actions", MAX_SCRIPT_BYTES)
        if arr.ndim != 2 or arr.shape[1] != act_dim or not np.all(np.isfinite(arr)):
            raise ValueError(f"--actions {str(path)!r} holds {arr.shape} {arr.dtype}; expected (K, {act_dim}) "
                             "finite numbers")
        return list(arr.astype(np.float64))
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) was refused as part of a number
    except UnicodeDecodeError:
        raise ValueError(f"--actions {str(path)!r} is neither an .npy file nor text (one action per line)") from None
    out, last = [], None
    for i, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):  # a comment line; a blank one repeats the last action
            continue
        line = line.split("#", 1)[0]
        try:
            act = parse_action(line, act_dim, last)
        except ValueError as e:
            raise ValueError(f"--actions {str(path)!r} line {i}: {e}") from None
        if act is None:
            break
        out.append(act)
        last = act
    return out


MAX_TYPED_LINE = 4096
"""Characters in one typed action line: far above any robot's action, far below a memory error."""
MAX_SKIPPED = 1 << 20
"""A longer line than ``MAX_TYPED_LINE`` is skipped to its end, up to this many characters (``< /dev/zero`` has none)."""
TOO_LONG = "\x00too long"
"""What ``typed_lines`` yields for a skipped line."""
ENDLESS = "\x00endless"
"""What ``typed_lines`` yields last, for a line longer than ``MAX_SKIPPED`` (the input ends there)."""


def typed_lines(stream) -> Iterator[str]:
    """Lines of ``stream`` (e.g. stdin), each read with a bound: iterating a stream reads a line whole, and a
    stream without newlines (``< /dev/zero``) grew to gigabytes before a MemoryError (probe 14). No stream (stdin
    closed, ``<&-``) is a message, not an AttributeError (probe 15)."""
    if stream is None:
        raise ValueError("standard input is closed: type actions into it, give --actions FILE, or pipe them in")
    while line := stream.readline(MAX_TYPED_LINE + 1):
        if len(line) > MAX_TYPED_LINE and not line.endswith("\n"):  # skipped to its end, within a bound: one such
            read = len(line)                                           # line ended the whole session (probe 17)
            while read <= MAX_SKIPPED and (rest := stream.readline(MAX_TYPED_LINE + 1)) and not rest.endswith("\n"):
                read += len(rest)
            if read > MAX_SKIPPED:  # ended the drive with an error, its --out video lost (probe 18)
                yield ENDLESS
                return
            yield TOO_LONG
            continue
        yield line


def typed_actions(lines: Iterable[str], act_dim: int, say) -> Iterator[np.ndarray]:
    """Actions typed one line at a time; a bad line is explained (``say``) and asked again, never fatal."""
    last = None
    say(f"type an action per step ({_numbers(act_dim)}, e.g. {', '.join(['0.5'] * act_dim)}); "
        "empty repeats the last; q quits")
    for line in lines:
        if line is TOO_LONG:
            say(f"  a line longer than {MAX_TYPED_LINE} characters was skipped: one action per line")
            continue
        if line is ENDLESS:
            say(f"  a line longer than {MAX_SKIPPED:,} characters: the input ends here, as with q (one action per "
                "line; for a file of actions use --actions FILE)")
            return
        try:
            act = parse_action(line, act_dim, last)
        except ValueError as e:
            say(f"  {e}")
            continue
        if act is None:
            return
        last = act
        yield act
