"""Fixed-rate control loop with a deadline, fallbacks and latency statistics.

Each tick: read the state, plan, and apply the plan's first action. If planning overran the
deadline, raised, reported ``valid=False`` or returned a non-finite action, the loop applies the
previous plan shifted by one step (or the configured safe action) instead, and counts the event.
Whatever is applied is clamped to the action bounds; the loop never sends NaN.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
import warnings
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from robot_wm.runtime.robot import SimRobot
from robot_wm.runtime.session import StepAbandoned
from sim.spec import midpoint

STEP_LIMIT_DEADLINES = 10
STEP_LIMIT_MIN_S = 1.0
"""A planning step running past ``STEP_LIMIT_DEADLINES`` deadlines (and at least ``STEP_LIMIT_MIN_S``) is abandoned and
the loop safe-stops: an overrun is waited for until then (then it is a fallback, as before)."""

log = logging.getLogger(__name__)


LATENCY_WINDOW = 100_000
"""Steps whose latencies ``LoopStats`` keeps: 17 minutes at 100 Hz, 0.8 MB."""


@dataclass
class LoopStats:
    target_hz: float
    deadline_s: float
    steps: int = 0
    wall_s: float = 0.0
    overruns: int = 0
    invalid: int = 0       # the graph flagged non-finite state/scores
    nonfinite: int = 0     # non-finite action returned
    errors: int = 0        # the session raised
    fallbacks: int = 0     # steps that applied the fallback action
    safe_stops: int = 0    # times the loop stopped after too many consecutive fallbacks
    stalls: int = 0        # ticks that began a whole period or more behind schedule (the last command held that long)
    value_off: int = 0     # steps planned without the value (its guard had tripped: planner.value_guard)
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW), repr=False)
    """The planning latencies of the last ``LATENCY_WINDOW`` steps (the percentiles' sample): a list of every
    step grew without bound on a robot deployed for days (probe 11)."""

    @property
    def rate_hz(self) -> float:
        return self.steps / self.wall_s if self.wall_s > 0 else float("nan")

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1e3) if self.latencies else float("nan")

    def merge(self, other: LoopStats) -> None:
        for k in ("steps", "wall_s", "overruns", "invalid", "nonfinite", "errors", "fallbacks", "safe_stops", "stalls",
                  "value_off"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.latencies.extend(other.latencies)

    def summary(self) -> dict:
        return {"steps": self.steps, "rate_hz": round(self.rate_hz, 2), "target_hz": round(self.target_hz, 2),
                "latency_p50_ms": round(self.percentile_ms(50), 3), "latency_p99_ms": round(self.percentile_ms(99), 3),
                "deadline_ms": round(self.deadline_s * 1e3, 3), "overruns": self.overruns,
                "fallbacks": self.fallbacks, "invalid": self.invalid, "nonfinite": self.nonfinite,
                "errors": self.errors, "safe_stops": self.safe_stops, "stalls": self.stalls, "value_off": self.value_off}

    def format(self) -> str:
        s = self.summary()
        return (f"{s['steps']} steps at {s['rate_hz']:.1f} Hz (target {s['target_hz']:.1f} Hz); planning latency "
                f"p50 {s['latency_p50_ms']:.2f} ms, p99 {s['latency_p99_ms']:.2f} ms (deadline {s['deadline_ms']:.1f} ms); "
                f"overruns {s['overruns']}, fallbacks {s['fallbacks']} (invalid {s['invalid']}, "
                f"non-finite {s['nonfinite']}, errors {s['errors']})"
                + (f"; SAFE STOPS {s['safe_stops']}" if s["safe_stops"] else "")
                + (f"; stalls {s['stalls']} (ticks a period or more late)" if s["stalls"] else "")
                + (f"; {s['value_off']} steps planned without the value (value guard)" if s["value_off"] else ""))


MIN_RATE_HZ, MAX_RATE_HZ = 0.1, 10_000.0
"""The control rates a loop runs at (``deploy --rate`` takes the same range)."""


class ControlLoop:
    """Runs ``planner`` (a ``PlannerSession``-like object: ``step``, ``initial_plan``) on ``robot``.

    ``rate_hz`` defaults to 1 / robot.control_period; ``deadline_s`` (default: one period) bounds the
    planning latency. ``realtime=False`` (simulation) skips sleeping between ticks but still enforces
    the deadline on the measured planning time. After ``max_fallbacks`` consecutive fallbacks (a state
    that no longer fits the planner, a planner failing every step) the loop makes a **safe stop**: it
    sends the safe action (default: the middle of the action range), counts it and ends ``run``.
    """

    def __init__(self, planner, robot, rate_hz: float | None = None, deadline_s: float | None = None,
                 safe_action: np.ndarray | None = None, realtime: bool = True, max_fallbacks: int = 25):
        self.planner, self.robot = planner, robot
        delay = getattr(getattr(planner, "meta", None), "delay", 0)  # a planner exported with planner.delay
        horizon = len(planner.initial_plan())
        if isinstance(delay, bool) or not isinstance(delay, int | np.integer) or not 0 <= delay < horizon:
            raise ValueError(f"planner.meta.delay={delay!r}: expected a whole number from 0 to the plan's horizon - 1 "
                             f"= {horizon - 1} (an index past the plan escaped the loop's fallback, probe 16)")
        self.delay = int(delay)
        for name, v in (("rate_hz", rate_hz), ("deadline_s", deadline_s)):  # True ran at 1 Hz; "0.01" a ufunc error
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating)
                                  or not _positive_finite(v)):
                raise ValueError(f"{name}={v!r}: expected a positive, finite number")
        if isinstance(max_fallbacks, bool) or not (isinstance(max_fallbacks, int | np.integer) and max_fallbacks >= 1):
            raise ValueError(f"max_fallbacks={max_fallbacks!r}: expected a whole number >= 1")
        self.max_fallbacks = int(max_fallbacks)
        self.consecutive_fallbacks = 0
        self.stopped: str | None = None  # why the loop made a safe stop (None: it did not)
        period = getattr(robot, "control_period", None)
        if isinstance(period, np.integer | np.floating):  # np.float32(0.08) was "not a positive number" (probe 15)
            period = float(period)
        if rate_hz is None and not (isinstance(period, (int, float)) and math.isfinite(period) and period > 0):
            raise ValueError(f"robot.control_period={period!r}: expected a positive number of seconds (or give rate_hz)")
        self.rate_hz = rate_hz if rate_hz is not None else 1.0 / period
        if not MIN_RATE_HZ <= self.rate_hz <= MAX_RATE_HZ:  # 1e-6 Hz slept 11.6 days a step; 10 MHz: a 0 ms deadline
            what = f"rate_hz={rate_hz}" if rate_hz is not None else \
                f"robot.control_period={period!r} s is {self.rate_hz:g} Hz"
            raise ValueError(f"{what}: expected {MIN_RATE_HZ} to {MAX_RATE_HZ} Hz")
        self.period = 1.0 / self.rate_hz
        self.deadline_s = deadline_s if deadline_s is not None else self.period
        if hasattr(planner, "step_limit_s"):  # a step far past its deadline is abandoned, and the loop safe-stops at
            # once: a forged graph's steps of 1 to 3 s were waited for, 25 ticks of a stale command (probe 42)
            planner.step_limit_s = max(STEP_LIMIT_MIN_S, STEP_LIMIT_DEADLINES * self.deadline_s)
        # the robot's bounds: finite, ordered, and the planner's (the middle of infinite or NaN bounds was NaN,
        # sent after a safe stop; a planner for 1 actuator drove a robot with 2)
        # copies, read-only: a driver that changed its float32 bounds in place to NaN had NaN sent (probe 33)
        self.low = np.array(robot.action_low, dtype=np.float32).reshape(-1)
        self.high = np.array(robot.action_high, dtype=np.float32).reshape(-1)
        self.low.flags.writeable = self.high.flags.writeable = False
        if self.low.shape != self.high.shape or not (np.all(np.isfinite(self.low)) and np.all(np.isfinite(self.high))
                                                     and np.all(self.low <= self.high)):
            raise ValueError(f"robot action bounds [{self.low.tolist()}, {self.high.tolist()}]: expected finite "
                             "low <= high of one size")
        if (meta := getattr(planner, "meta", None)) is not None:
            # the control period too: through the Python API a 0.08 s planner drove a 0.02 s robot unchecked
            meta.check_robot(getattr(robot, "state_dim", meta.state_dim), self.low, self.high,
                             period if isinstance(period, (int, float)) and math.isfinite(period) else None)
        self.rate_mismatch = self._rate_mismatch(rate_hz, planner, robot)
        if self.rate_mismatch:  # the model learned steps of the planner's period: another rate is another robot
            log.warning("%s", self.rate_mismatch)
        if safe_action is not None:
            raw = np.asarray(safe_action)
            if raw.dtype.kind not in "iuf":  # True was taken as 1.0 and "0.5" as 0.5
                raise ValueError(f"safe_action={safe_action!r}: expected numbers (an array of {self.low.size})")
            safe_action = raw.astype(np.float32).reshape(-1)
            if safe_action.shape != self.low.shape or not np.all(np.isfinite(safe_action)):
                raise ValueError(f"safe action must be {self.low.size} finite values, got {safe_action.tolist()}")
            out = np.flatnonzero((safe_action < self.low) | (safe_action > self.high))
            if out.size:  # refused, not clipped: a clipped safe action is not the one the user chose
                j = int(out[0])
                raise ValueError(f"safe action {safe_action.tolist()}: dimension {j} = {safe_action[j]:.4g} is outside "
                                 f"the action bounds [{self.low[j]:.4g}, {self.high[j]:.4g}]")
        self.safe_action = safe_action
        self.realtime = realtime
        self.plan = None
        self.last_latency_s = float("nan")
        self.last_fallback: str | None = None  # why the last tick fell back (None: it did not)
        self.last_sent = False  # whether the robot took the last tick's command (send_action did not raise)
        self.last_state: np.ndarray | None = None  # the state the last tick read (a copy; None: the read failed)
        self.last_value_off = False  # whether the last tick planned without the value (its value guard had tripped)
        self.reset()

    @staticmethod
    def _rate_mismatch(rate_hz, planner, robot=None) -> str | None:
        """A warning where an explicit rate is not the planner's control rate (None where it is, or unknown)."""
        period = getattr(getattr(planner, "meta", None), "control_period", None)
        if rate_hz is None or not (isinstance(period, float | int) and math.isfinite(period) and period > 0):
            return None
        if abs(rate_hz * period - 1.0) <= 0.01:
            return None
        # in simulation the return was the nominal one, the rate unsaid in it (probe 40)
        sim = (f"; the simulated robot still takes {period:g} s of physics a command, so its return is not that of a "
               f"robot driven at {rate_hz:g} Hz") if isinstance(robot, SimRobot) else ""
        return (f"control rate {rate_hz:g} Hz is not the planner's {1 / period:g} Hz (control period {period:g} s): "
                f"its model predicts steps of {period:g} s, so on a robot in real time each action is held "
                f"{1 / rate_hz:g} s instead{sim}")

    def reset(self) -> None:
        """A new episode: the warm start is the planner's initial plan (the middle of the range). With a delay its
        first ``delay`` actions are taken as the commands in flight, which holds for a robot that starts each episode
        at rest with neutral commands (``SimRobot``); a robot that keeps moving between episodes has the last
        commands sent in flight instead, and its driver should start the next episode at rest."""
        self.plan = np.array(self.planner.initial_plan(), dtype=np.float32)
        if callable(reset := getattr(self.planner, "reset", None)):  # a planner's per-episode state (its value guard)
            reset()
        self.consecutive_fallbacks, self.done_errors, self.stopped = 0, 0, None

    def tick(self, stats: LoopStats) -> np.ndarray:
        """One control step; returns the action that was sent."""
        prev = self.plan
        reason, out, value_off, abandoned = None, None, False, False
        t0 = time.perf_counter()
        self.last_state = None
        try:
            state = self.robot.read_state()
        except Exception as e:  # noqa: BLE001 -- a failing sensor read is a fallback, not the end of the loop
            reason = f"robot read_state error: {type(e).__name__}: {e}"
            stats.errors += 1
        else:
            self.last_state = _copy_of(state)
            t0 = time.perf_counter()
            value_off = getattr(self.planner, "value_trusted", True) is False
            stats.value_off += value_off
            try:
                out = self.planner.step(state, prev)
            except Exception as e:  # noqa: BLE001 -- never let the planner take the loop down
                reason = f"planner error: {e}"
                stats.errors += 1
                abandoned = isinstance(e, StepAbandoned)  # the session takes no other step: stop now
        latency = time.perf_counter() - t0
        stats.latencies.append(latency)
        if out is not None:
            if latency > self.deadline_s:
                reason = f"overrun ({latency * 1e3:.2f} ms > {self.deadline_s * 1e3:.2f} ms)"
                stats.overruns += 1
            else:
                reason = self._judge(out, state, stats)
        elif reason is None:  # a planner that returned nothing
            reason = "planner returned no output (None)"
            stats.errors += 1
        if reason is None:
            action, self.plan = np.asarray(out.action, np.float32), np.asarray(out.next_plan, np.float32)
        else:
            if out is not None:  # a plan made but not executed: its value guard forgets it (session 23 review)
                self._discard_step()
            stats.fallbacks += 1
            prev = np.where(np.isfinite(prev), prev, midpoint(self.low, self.high)[None])
            action = self.safe_action if self.safe_action is not None else prev[self.delay]
            self.plan = np.concatenate([prev[1:], prev[-1:]]).astype(np.float32)
            log.warning("step %d: %s; applying %s", stats.steps, reason,
                        "the safe action" if self.safe_action is not None else "the shifted previous plan")
        self.consecutive_fallbacks += reason is not None  # a good step resets it once its command was sent
        stopping = abandoned or self.consecutive_fallbacks >= self.max_fallbacks
        if abandoned:  # sent below as this step's command
            action = self._stop(stats, reason)
        elif stopping:
            action = self._stop(stats, f"{self.consecutive_fallbacks} consecutive fallbacks, the last: {reason}")
        action = np.clip(action, self.low, self.high)
        sent, said = False, reason
        try:  # a copy: a driver that scaled its argument in place to motor units (a *= 100) changed the command
            _sent(self.robot.send_action(action.copy()))  # recorded and the plan's (probe 34)
        except Exception as e:  # noqa: BLE001 -- a bus error ended the loop with no safe action (probe 11)
            said = f"robot send_action error: {type(e).__name__}: {e}"  # the tick's fallback: a recorder stored the
            if stopping:  # said only as a step's warning, the operator unaware (probe 42)
                log.error("the robot refused the safe action too (%s: %s): stop it by other means", type(e).__name__, e)
            self._robot_error(stats, said)  # refused command as applied, reason None (probe 21)
            if reason is None:  # the plan was taken but never reached the robot
                self._discard_step()
        else:
            sent = True
            if self.delay:  # the command sent is in flight now: the next step's plan holds it at delay - 1
                self.plan = np.array(self.plan, dtype=np.float32)
                self.plan[self.delay - 1] = action
            if reason is None:
                self.consecutive_fallbacks = 0
        stats.steps += 1
        self.last_latency_s, self.last_fallback, self.last_sent, self.last_value_off = latency, said, sent, value_off
        return action

    def _discard_step(self) -> None:
        """Tell the planner its last plan was not executed (``PlannerSession.discard_last_step``), where it can hear it."""
        try:
            if callable(discard := getattr(self.planner, "discard_last_step", None)):
                discard()
        except Exception as e:  # noqa: BLE001 -- never the end of the loop
            log.warning("planner discard_last_step failed: %s: %s", type(e).__name__, e)

    def _judge(self, out, state, stats: LoopStats) -> str | None:
        """Why a planner's output may not be sent (None: it may). A planner other than ``PlannerSession`` may return
        anything: an output without ``valid`` or ``action``, a ``valid`` of two values, or an action of another size
        escaped the loop as a traceback, or was sent to the robot (probe 21)."""
        try:
            valid = bool(np.asarray(out.valid).item())
            action, plan = np.asarray(out.action, np.float64), np.asarray(out.next_plan, np.float64)
        except Exception as e:  # noqa: BLE001 -- a malformed output is a fallback, never the end of the loop
            stats.errors += 1
            return f"planner returned a malformed output ({type(e).__name__}: {e})"
        if action.shape != self.low.shape or plan.shape != np.shape(self.plan):
            stats.errors += 1
            return (f"planner returned an action of shape {action.shape} and a plan of shape {plan.shape}; the robot "
                    f"takes {self.low.shape} and the plan is {np.shape(self.plan)}")
        if not valid:  # which dimension, where the planner can say (probe 18: never named)
            stats.invalid += 1
            return "planner flagged invalid input or scores: " + self._why_invalid(state)
        if not np.all(np.isfinite(action)):
            stats.nonfinite += 1
            return "non-finite action"
        if not np.all(np.isfinite(plan)):  # a finite action, its plan not: "non-finite action" sent the debugging to
            stats.nonfinite += 1           # the wrong output (probe 40)
            return "non-finite plan (next_plan), the action finite"
        slack = 1e-4 * (self.high - self.low) + 1e-6  # float32 rounding; beyond it a planner broke its contract
        if (out := np.flatnonzero((action < self.low - slack) | (action > self.high + slack))).size:
            stats.errors += 1  # an action x 1e30 was clipped to the bound and sent, counted nowhere (probe 31)
            j = out[0]
            return (f"planner returned action[{j}] = {action[j]:.6g}, beyond the robot's bounds [{self.low[j]:.6g}, "
                    f"{self.high[j]:.6g}] (a planner keeps its actions within them: its graph was edited or damaged)")
        return None

    def _why_invalid(self, state) -> str:
        """The planner's own account of an invalid step where it gives one (``PlannerSession.why_invalid``)."""
        try:
            return self.planner.why_invalid(state)
        except Exception:  # noqa: BLE001 -- a planner without it, or one that fails: the message, never the loop
            return "a non-finite state, one beyond the model's reach, or non-finite scores"

    def _robot_error(self, stats: LoopStats, reason: str) -> None:
        """The robot raised taking a command: counted as an error and a fallback; as many in a row as
        ``max_fallbacks`` allows end in a safe stop."""
        stats.errors += 1
        stats.fallbacks += 1
        self.consecutive_fallbacks += 1
        log.warning("step %d: %s", stats.steps, reason)
        if self.consecutive_fallbacks >= self.max_fallbacks and self.stopped is None:
            why = f"{self.consecutive_fallbacks} consecutive fallbacks, the last: {reason}"
            self._send_safe(self._stop(stats, why))

    def _stop(self, stats: LoopStats, why: str) -> np.ndarray:
        """Enter a safe stop (the loop ends after this step), counted and logged; returns the safe action: the
        configured one, else mid-range, within the bounds."""
        self.stopped = why
        stats.safe_stops += 1
        safe = np.clip(self.safe_action if self.safe_action is not None else midpoint(self.low, self.high),
                       self.low, self.high)
        log.error("step %d: SAFE STOP after %s; sending the safe action %s", stats.steps, why,
                  [float(f"{x:.6g}") for x in safe])  # numpy's float32 round of 3.2e38 was inf (probe 37)
        return safe

    def _send_safe(self, safe: np.ndarray) -> None:
        """The safe action of a stop entered outside ``tick`` (a robot error), if the robot takes it."""
        try:
            _sent(self.robot.send_action(safe.copy()))
        except Exception as e:  # noqa: BLE001
            log.error("the robot refused the safe action too (%s: %s): stop it by other means",
                      type(e).__name__, e)

    def _done(self, done, stats: LoopStats) -> bool:
        """``done()``; an exception (probe 11: it ended the loop) is counted, and as many in a row as
        ``max_fallbacks`` allows end in a safe stop (whether the episode is over cannot be told)."""
        try:
            finished = bool(done())
        except Exception as e:  # noqa: BLE001
            stats.errors += 1
            self.done_errors += 1
            log.warning("step %d: done() error: %s: %s", stats.steps, type(e).__name__, e)
            if self.done_errors >= self.max_fallbacks and self.stopped is None:
                self._send_safe(self._stop(stats, f"{self.done_errors} consecutive errors of done(), the last: "
                                                  f"{type(e).__name__}: {e}"))
            return False
        self.done_errors = 0
        return finished

    def run(self, max_steps: int, done=lambda: False, on_tick=None) -> LoopStats:
        """Up to ``max_steps`` ticks at the fixed rate (until ``done()``); ``on_tick(action)`` after each
        (e.g. ``DeploymentRecorder.hook``; ``last_latency_s``, ``last_fallback``, ``last_sent`` and ``last_value_off``
        describe the tick)."""
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)):
            raise TypeError(f"max_steps={max_steps!r}: expected a whole number of control steps")
        if max_steps < 0:
            raise ValueError(f"max_steps={max_steps}: expected 0 or more control steps")
        stats = LoopStats(self.rate_hz, self.deadline_s)
        start = time.perf_counter()
        next_tick = start
        try:
            for _ in range(max_steps):
                if self._done(done, stats) or self.stopped is not None:
                    break
                action = self.tick(stats)
                if on_tick is not None:
                    on_tick(action)
                next_tick += self.period
                if self.realtime:
                    delay = next_tick - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    else:
                        if -delay >= self.period:  # SIGSTOP for 3 s showed only as a lower rate (probe 16)
                            stats.stalls += 1
                            log.warning("step %d: the loop ran %.0f ms behind its schedule (the process stalled, or the "
                                        "robot's read_state or send_action blocked?): the last command stayed on the "
                                        "robot that long", stats.steps, -delay * 1e3)
                        next_tick = time.perf_counter()  # late: do not try to catch up with a burst
        except BaseException as e:  # Ctrl-C, deploy's SIGTERM/SIGHUP: the last command stayed on the motors (probe 12)
            if self.stopped is None:
                self._send_safe(self._stop(stats, f"an interruption ({type(e).__name__})"))
            raise
        stats.wall_s = time.perf_counter() - start
        return stats


def _positive_finite(v) -> bool:
    """Whether the number ``v`` is finite and above 0 (10**400 was numpy's "ufunc 'isfinite' not supported": 36)."""
    try:
        f = float(v)
    except OverflowError:
        return False
    return math.isfinite(f) and f > 0


def _copy_of(state) -> np.ndarray | None:
    """A float32 copy of a state as read, for ``last_state``; None for what is no real number (the planner's step names
    it): a value whose ``__array__`` raised escaped the loop, a complex one printed numpy's warning (probe 36)."""
    try:
        if np.iscomplexobj(state):
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.array(state, dtype=np.float32, copy=True)
    except Exception:  # noqa: BLE001 -- the robot's own object: whatever it raises, the step's fallback says it
        return None


def _sent(returned) -> None:
    """What ``send_action`` returned, checked: an ``async def`` driver's coroutine was dropped unawaited, no command
    reached the robot, and the loop counted 0 errors (probe 35)."""
    # a generator's (`yield` in send_action) body never ran either (probe 36)
    if inspect.isawaitable(returned) or inspect.isgenerator(returned) or inspect.isasyncgen(returned):
        if inspect.iscoroutine(returned) or inspect.isgenerator(returned):
            returned.close()
        raise TypeError(f"robot.send_action returned {type(returned).__name__!r} (an async or generator driver?), so "
                        "the command was never sent: give the loop a driver whose send_action sends before it returns")
