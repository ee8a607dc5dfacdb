"""Text shown on the terminal: names and file contents with their control characters shown, never obeyed."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys


def printable(text: str) -> str:
    """``text`` with control characters shown as escapes: a folder name holding ESC sequences drove the
    terminal (ninth probe)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def first_names(names: list[str], shown: int = 5) -> str:
    """The first ``shown`` of ``names``, with how many more: "a, b, c, d, e and 3 more"."""
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def echo(text: str, **kwargs) -> None:
    """``print`` of a message that names user's paths, control characters shown (``printable``): a run, --out or
    --record name holding ESC sequences set the terminal's title and colours through `wrote ...` (probe 11)."""
    print("\n".join(printable(line) for line in str(text).split("\n")), **kwargs)  # a message's own lines kept


_LOST_OUTPUT = (errno.EPIPE, errno.ENOSPC, errno.EDQUOT, errno.EIO)


class OutputGuard(io.TextIOBase):
    """Standard output that may go away: a reader that closed the pipe (``deploy | head``) or a full device
    (``> /dev/full``) stopped a deployment after its first episode ("Broken pipe: a file") and turned a finished
    run into "no space left ... --resume" (probe 15). The first such failure is said once on stderr, the stream
    is pointed at /dev/null, and the command goes on to finish its files; ``lost`` keeps the error, so that a
    full device still fails the command at its end (a printout may be its result: ``whatif > table.txt``)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.lost = inner, None

    def _guard(self, op, *args):
        if self.lost is not None:
            return None
        try:
            return op(*args)
        except OSError as e:
            if e.errno not in _LOST_OUTPUT:
                raise
            self.lost = e
            with contextlib.suppress(OSError, ValueError, AttributeError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.inner.fileno())  # what the stream still buffers flushes there at exit
                os.close(devnull)
            with contextlib.suppress(OSError, ValueError):
                print(f"robot-wm: warning: standard output failed ({e.strerror}); going on without printing",
                      file=sys.stderr, flush=True)
            return None

    def write(self, s: str) -> int:
        self._guard(self.inner.write, s)
        return len(s)

    def flush(self) -> None:
        self._guard(self.inner.flush)

    def isatty(self) -> bool:
        return self.lost is None and self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self):
        return getattr(self.inner, "encoding", "utf-8")
