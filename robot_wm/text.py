"""Text shown on the terminal: names and file contents with their control characters shown, never obeyed."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with control characters shown as escapes: a folder name holding ESC sequences drove the
    terminal (ninth probe)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def echo(text: str, **kwargs) -> None:
    """``print`` of a message that names user's paths, control characters shown (``printable``): a run, --out or
    --record name holding ESC sequences set the terminal's title and colours through `wrote ...` (probe 11)."""
    print("\n".join(printable(line) for line in str(text).split("\n")), **kwargs)  # a message's own lines kept
