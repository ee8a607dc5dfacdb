"""CLI pieces: ``robot-wm view RUN_DIR`` and the ``--rerun`` flag shared by run / eval / deploy.

Nothing here imports rerun or torch at module import time (the CLI must start fast)."""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
from pathlib import Path

from robot_wm.cli_args import address_arg
from robot_wm.text import echo


def add_rerun_flag(parser: argparse.ArgumentParser) -> None:
    """``--rerun [save|spawn|serve]`` (bare ``--rerun`` = save) and ``--rerun-address HOST:PORT``."""
    parser.add_argument("--rerun", nargs="?", const="save", choices=("save", "spawn", "serve"), default=None,
                        help="visual debugging in Rerun: save (RUN_DIR/rerun/*.rrd; the default), spawn "
                             "(a live viewer) or serve (gRPC on 127.0.0.1:9876 unless --rerun-address)")
    parser.add_argument("--rerun-address", type=address_arg, default=None, metavar="HOST:PORT",
                        help="address for --rerun serve (bind) or spawn (viewer port)")


def rerun_overrides(a: argparse.Namespace) -> list[str]:
    """The config overrides (``rerun.mode=...``) the flags stand for."""
    out = []
    if getattr(a, "rerun", None):
        out.append(f"rerun.mode={a.rerun}")
    if getattr(a, "rerun_address", None):
        out.append(f'rerun.address="{a.rerun_address}"')
    return out


def display_problem(display: str | None = None) -> str | None:
    """Why no window can open on the display that is set (Linux; or on ``display``, an X display name), or None
    where one may. A set DISPLAY with no X server behind it let `--rerun spawn` start a viewer that died unseen,
    then fail 60 s later on "Flush timed out" (probe 14). An X display is tried as libxcb tries it (``:N``: the
    abstract socket, then /tmp/.X11-unix/XN; ``host:N``: TCP 6000+N); a Wayland display by its socket; a display
    spelled otherwise is left to the viewer."""
    import re
    import socket

    if display is None and not sys.platform.startswith("linux"):
        return None
    wl = None if display is not None else os.environ.get("WAYLAND_DISPLAY")
    if wl and _answers(socket.AF_UNIX, wl if os.path.isabs(wl) else
                       os.path.join(os.environ.get("XDG_RUNTIME_DIR", ""), wl)):
        return None
    x = display if display is not None else os.environ.get("DISPLAY")
    if not x:
        return "DISPLAY and WAYLAND_DISPLAY are unset" if not wl else f"WAYLAND_DISPLAY={wl}: nothing answers there"
    if not (m := re.fullmatch(r"([\w.-]*):(\d+)(?:\.\d+)?", x)):
        return None
    host, number = m.group(1), int(m.group(2))
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        if _answers(socket.AF_UNIX, "\0" + path) or _answers(socket.AF_UNIX, path):
            return None
    elif _answers(socket.AF_INET, (host, 6000 + number)):
        return None
    return f"DISPLAY={x}: no X server answers there"


def _answers(family: int, address) -> bool:
    import socket

    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect(address)
        return True
    except (OSError, ValueError):
        return False


def warn_network(cfg) -> None:
    """Print a warning naming a non-loopback address that --rerun serve will listen on (or spawn connect to).
    Network settings come only from the command line: run directories and launch files never set them."""
    warn_non_loopback(cfg.rerun.mode, cfg.rerun.address)


def warn_non_loopback(mode: str, address: str | None, flag: str = "--rerun-address") -> None:
    """The warning of ``warn_network`` for a mode and address (``drive --serve`` has no config of its own;
    ``flag``: the command's flag for the address, named in its errors)."""
    if mode not in ("serve", "spawn") or not address:
        return
    import sys

    from robot_wm.net import is_loopback
    from robot_wm.viz.logger import parse_address, serve_address

    if mode == "serve":  # refused first: '0:9877' was warned about as an address to listen on, then refused (probe 12)
        serve_address(address, flag)
    host = parse_address(address)[0]  # as typed: '::ffff:0.0.0.0' was named '::ffff:0:0' (probe 28)
    if not is_loopback(host):
        what = "listen on" if mode == "serve" else "connect to"
        print(f"robot-wm: warning: Rerun will {what} {address} ({host} is not a loopback address): "
              "anyone who can reach it can see the recording", file=sys.stderr)


def _is_recording(path: Path) -> bool:
    from robot_wm.config import RRD_MAGIC

    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return False
        with path.open("rb") as f:
            return f.read(len(RRD_MAGIC)) == RRD_MAGIC
    except OSError:
        return False


def find_recordings(target: str | Path) -> list[Path]:
    """.rrd files of a run directory (oldest first), or the file itself."""
    p = Path(target)
    from robot_wm.config import RRD_MAGIC

    if p.is_file():
        with p.open("rb") as f:  # a text file named x.rrd went to the viewer unchecked (ninth probe)
            if f.read(len(RRD_MAGIC)) != RRD_MAGIC:
                raise ValueError(f"{str(p)!r} is not a Rerun recording (it does not start with {RRD_MAGIC!r})")
        return [p]
    if not p.is_dir() or not (p / "config.toml").is_file():  # /etc was told to `robot-wm eval /etc --rerun`
        raise FileNotFoundError(f"{str(p)!r} is neither a run directory nor an .rrd file")
    # only regular files that are recordings: a FIFO, a folder, a dangling link or a link to /dev/zero named
    # *.rrd were listed, and the newest opened (tenth probe)
    files = sorted((f for f in [*p.glob("rerun/*.rrd"), *p.glob("*.rrd")] if _is_recording(f)),
                   key=lambda f: f.stat().st_mtime)
    if not files:
        raise FileNotFoundError(f"{str(p)!r} holds no Rerun recording: record one with "
                                f"`robot-wm run ... --rerun` or `robot-wm eval {p} --rerun`")
    return files


def cmd_view(a: argparse.Namespace) -> int:
    from robot_wm.viz.readback import rerun_cli

    files = find_recordings(a.run_dir)
    if a.list:
        from robot_wm.text import printable

        for f in files:
            print(printable(str(f)))
        return 0
    chosen = files if a.all else files[-1:]
    if problem := display_problem():
        # the viewer started, listened, then died with winit's EventLoopError (ninth probe; a DISPLAY with no X
        # server behind it, probe 16)
        raise ValueError(f"robot-wm view opens Rerun's desktop viewer, which needs a display ({problem}): open the "
                         f"recordings listed by `robot-wm view {a.run_dir} --list` on a machine with one")
    cmd = viewer_command(rerun_cli(), chosen)
    echo("opening " + " ".join(map(str, chosen)))  # echo takes one text (probe 14: a TypeError every time)
    return subprocess.call(cmd)


def viewer_command(rerun: list[str], files: list) -> list[str]:
    """The Rerun viewer on ``files``, its gRPC server bound to loopback (Rerun's own default is 0.0.0.0)."""
    return [*rerun, "--bind", "127.0.0.1", *map(str, files)]


def register(sub) -> None:
    v = sub.add_parser("view", help="open a run's Rerun recording (the newest, or --all) in the viewer")
    v.add_argument("run_dir", help="run directory (or an .rrd file)")
    v.add_argument("--all", action="store_true", help="open every recording of the run")
    v.add_argument("--list", action="store_true", help="list the run's recordings and exit")
    v.set_defaults(func=cmd_view)
