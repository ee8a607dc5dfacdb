"""Ending a planning step that onnxruntime is running: a stop signal, or a warm-up that runs too long.

Python runs its signal handlers between bytecodes, so a step inside onnxruntime was deaf to SIGTERM for as long as it
ran: minutes for a forged graph (probes 31 and 35), with no safe action sent until it returned. The C-level handler
still writes the signal's number to a wake-up file descriptor; a watcher thread reading it sets the running step's
terminate flag (``RunOptions.terminate``), onnxruntime ends the step between two nodes, and the Python handler then
stops the program as usual (the control loop sends the safe action)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import weakref

from robot_wm.io import STOP_SIGNALS

_SESSIONS: weakref.WeakSet = weakref.WeakSet()
"""The planner sessions whose running step a stop signal ends (each has ``interrupt()``)."""
_STOPS = frozenset(int(s) for s in (signal.SIGINT, signal.SIGTERM, *STOP_SIGNALS))


def register(session) -> None:
    _SESSIONS.add(session)


@contextlib.contextmanager
def steps_end_on_signals():
    """Within the block, a stop signal (SIGINT, SIGTERM and ``STOP_SIGNALS``) also ends the planning step onnxruntime
    is running. The main thread only, and only where no wake-up descriptor is set already (an asyncio loop's)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    r, w = os.pipe()
    os.set_blocking(w, False)
    old = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    if old != -1:  # someone else's: left as it was
        signal.set_wakeup_fd(old)
        os.close(r)
        os.close(w)
        yield
        return

    def watch() -> None:
        while data := os.read(r, 64):  # b"" once the write end is closed
            if _STOPS.intersection(data):
                for s in list(_SESSIONS):
                    s.interrupt()

    watcher = threading.Thread(target=watch, name="robot-wm stop watcher", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(-1)
        os.close(w)
        watcher.join(timeout=1.0)
        os.close(r)
