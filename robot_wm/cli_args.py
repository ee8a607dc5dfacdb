"""Argument types for the command line: argparse refuses a bad value at once, naming the flag
(``robot-wm deploy: error: argument --seed: expected a whole number from 0 to 4294967295, got '-1'``)."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

SEED_MAX = 2**32 - 1
"""Seeds reach numpy and the environments, which take 32 bits."""


DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE | re.ASCII)
"""A decimal number in ASCII: ``float()`` also reads '1_000' as 1000 and an Arabic-Indic '١' as 1 (probes 11, 17)."""
_WHOLE = re.compile(r"[+-]?[0-9]+")


def decimal(text: str) -> float:
    """``text`` as a float where it is a ``DECIMAL``, else ValueError."""
    if not DECIMAL.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not a decimal number")
    return float(text)


def integer(text: str) -> int:
    """An argparse type: a whole number in ASCII digits (``int()`` read '٣' as 3: probe 18)."""
    if not _WHOLE.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(text)


def whole(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        v = int(text) if _WHOLE.fullmatch(text.strip()) else None
        if v is None or not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"expected a whole number from {lo} to {hi}, got {text!r}")
        return v
    return parse


def number(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            v = decimal(text)
        except ValueError:
            v = math.nan
        if not (math.isfinite(v) and (lo < v if lo_open else lo <= v) and v <= hi):
            raise argparse.ArgumentTypeError(f"expected a number {'above' if lo_open else 'from'} {lo:g} "
                                             f"{'and at most' if lo_open else 'to'} {hi:g}, got {text!r}")
        return v
    return parse


seed = whole(0, SEED_MAX)


def address_arg(text: str) -> str:
    """A network address that is not empty: `drive --serve ""` (an unset shell variable) drove with no stream, no word
    (probe 37)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"an empty address ({text!r}: an unset shell variable?); expected HOST:PORT")
    return text


def path_arg(text: str) -> str:
    """A file or folder path that is not empty: `--record ''` (an unset shell variable) recorded nothing and
    exited 0, and `--data ''` read the working directory (probe 11)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"an empty path ({text!r}: an unset shell variable?)")
    try:  # robot-wm records paths in its files (JSON): bytes that are no UTF-8 were stored as escapes (probe 17)
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{text.encode('utf-8', 'surrogateescape')!r} is not a UTF-8 path: robot-wm "
                                         "records paths in its files; rename it") from None
    return text


class Once(argparse.Action):
    """A flag that may be given once: a second ``--shift`` replaced the first without a word (probe 16)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, f"_{self.dest}_given", False):
            parser.error(f"argument {option_string}: given twice ({getattr(namespace, self.dest)!r}, then {values!r}): "
                         "give it once")
        setattr(namespace, f"_{self.dest}_given", True)
        setattr(namespace, self.dest, values)


def once_everywhere(parser: argparse.ArgumentParser) -> None:
    """Make every flag of ``parser`` and its subcommands that takes a value ``Once``: `whatif --episode 0 --episode 1`
    and `drive --serve A --serve B` took the last without a word (probe 22). Flags without a value are left alone."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                once_everywhere(sub)
        elif action.option_strings and type(action) is argparse._StoreAction:
            action.__class__ = Once
