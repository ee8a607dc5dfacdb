"""A goal the operator changes while the robot runs: ``robot-wm deploy --goal-file goal.json``.

The file holds ``{"state": [...], "weights": [...]}`` (weights optional: the current ones stay). It is
read again whenever it changes (inode, size or modification time); write it atomically (write a temp
file, then rename). A file that is missing, too big, half written or not a valid goal is logged and
counted, and the goal in force stays: a bad goal never stops the robot nor reaches the planner.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from robot_wm.io import loads_json

log = logging.getLogger(__name__)

MAX_GOAL_FILE_BYTES = 1 << 20
"""A goal is a few hundred numbers at most; a bigger file is refused before it is read."""


class GoalFile:
    def __init__(self, path: str | Path, session):
        self.path, self.session = Path(path), session
        self.seen: tuple | None = None
        self.applied = 0  # goals taken from the file
        self.rejected = 0  # versions of the file refused (the previous goal stayed in force)
        self.why = ""
        self._quiet = False

    def poll(self, quiet: bool = False) -> bool:
        """Apply the file's goal if the file changed since the last look; True when a new goal is in force.
        Never raises: whatever the file holds, the control loop goes on. ``quiet``: a refusal is not logged (the
        first look, whose refusal the caller raises: "ignored, the previous goal stays" then "cannot be used at
        the start" said two things: probe 38)."""
        self._quiet = quiet
        try:
            st = os.stat(self.path)
        except OSError as e:
            return self._reject(("missing",), f"cannot read it ({e.strerror})")
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key == self.seen:
            return False
        try:
            doc = loads_json(self._read(), unique_keys=True)
            if not isinstance(doc, dict) or "state" not in doc or set(doc) - {"state", "weights"}:
                raise ValueError('expected {"state": [...], "weights": [...]} (weights optional)')
            self.session.set_goal(doc["state"], doc.get("weights"))
        except Exception as e:  # noqa: BLE001 -- a bad file is the operator's to fix; the robot goes on
            return self._reject(key, f"{type(e).__name__}: {str(e)[:300]}")
        self.seen = key
        self.applied += 1
        log.info("goal from %s: %s", self.path, self.session.goal.state.round(4).tolist())
        return True

    def _read(self) -> bytes:
        """At most MAX_GOAL_FILE_BYTES of a regular file: a FIFO would block the loop (opened non-blocking
        and refused), a device would never end, and a file growing after the stat is cut off."""
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(mode := os.fstat(fd).st_mode):
                raise ValueError("a directory" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, a device or a "
                                 "socket)")
            with os.fdopen(fd, "rb", closefd=False) as f:
                blob = f.read(MAX_GOAL_FILE_BYTES + 1)
        finally:
            os.close(fd)
        if len(blob) > MAX_GOAL_FILE_BYTES:
            raise ValueError(f"more than {MAX_GOAL_FILE_BYTES:,} bytes")
        return blob

    def _reject(self, key: tuple, why: str) -> bool:
        self.why = why  # the last reason (deploy refuses a file unusable at the start: probe 30)
        if key != self.seen:  # once per version of the file, not once per control step
            self.seen = key
            self.rejected += 1
            if self._quiet:
                return False
            log.warning("goal file %s ignored, the previous goal stays in force: %s", self.path, why)
        return False
