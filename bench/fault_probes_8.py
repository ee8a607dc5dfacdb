"""The fault report's catalogue, continued (``fault_probes_7.py`` holds probes 36-39): session 33 (2026-11-29), the
ugly cases the thirty-ninth probe left and the CI failure of session 32."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from fault_kit import cli, copy_run, record, tail


def probe39_leftovers(base: Path, complete: Path, planner: Path, work: Path) -> None:
    """The thirty-ninth probe's ugly cases left at the end of session 32, and the orphaned Ray agents of its CI."""
    import psutil

    from robot_wm.io import atomic_write, leftover_temp_files
    from robot_wm.sweep.ray_runner import _shut_down, _subreaper

    cat = "session 33: probe 39's leftovers"

    def append_only_mid_write():
        folder = work / "p39l-ao"
        folder.mkdir()
        tried = []

        def write(f):
            f.write(b"episode")
            tried.append(subprocess.run(["chattr", "+a", str(folder)], capture_output=True, check=False).returncode)

        said = []
        handler = logging.Handler()
        handler.emit = lambda r: said.append(r.getMessage())
        logging.getLogger("robot_wm.io").addHandler(handler)
        try:
            atomic_write(folder / "episode_000000.npz", write, exclusive=True)
        finally:
            logging.getLogger("robot_wm.io").removeHandler(handler)
            subprocess.run(["chattr", "-a", str(folder)], check=False)
        if tried != [0]:
            return True, "chattr +a not allowed here: not tried"
        (left,) = leftover_temp_files(folder)
        return (folder / "episode_000000.npz").read_bytes() == b"episode" and any(str(left) in s for s in said), \
            (said or ["(no word)"])[0][:110]
    record(cat, "a folder made append-only mid-write (the stored episode reported lost, the temp file unnamed)",
           append_only_mid_write)

    def killed_trains_temp_files():
        run = copy_run(complete, work / "p39l-temp")
        left = [run / "checkpoints" / ".latest.json.a1b2c3d4.tmp", run / "episodes" / ".episode_000009.npz.k2j3x_9q.tmp"]
        for p in left:
            p.write_bytes(b"half a write")
        rc, out = cli("eval", str(run), "--episodes", "1", "--planner", "random", "--no-progress")
        return rc == 0 and not any(p.exists() for p in left), tail(out, 90)
    record(cat, "a killed train's temp files, then eval (kept until run --resume)", killed_trains_temp_files)

    def orphan_of_ray():
        before = {c.pid for c in psutil.Process().children(recursive=True)}
        with _subreaper():
            out = subprocess.run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True,
                                 check=True)
            orphan = psutil.Process(int(out.stdout))
            adopted = orphan.ppid() == os.getpid()
            _shut_down(lambda: None, before)
        return adopted and not orphan.is_running(), f"adopted: {adopted}"
    record(cat, "a process Ray orphans while it starts (a raylet's agents outlived a SIGHUP: session 32's CI)",
           orphan_of_ray)
