"""Shared by the fault report's catalogues (``bench/fault_report.py``, ``bench/fault_probes.py``): the result
list, how a case is recorded, the in-process CLI, and helpers that copy or edit a run's files."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import traceback
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np
import torch

torch.set_num_threads(1)

import test_faults as tf

RESULTS: list[tuple[str, str, bool, str]] = []


def record(category: str, name: str, fn) -> None:
    try:
        ok, note = fn()
    except Exception as e:  # a crash is a fault not survived
        ok, note = False, f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
        if os.environ.get("FAULT_REPORT_DEBUG"):
            traceback.print_exc()
    RESULTS.append((category, name, bool(ok), note))
    print(f"  [{'ok' if ok else 'LOST'}] {category}: {name}  {note}", flush=True)


def cli(*args: str) -> tuple[int, str]:
    from robot_wm.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main(list(args))
        except SystemExit as e:  # a flag argparse refused (exit 2, the flag named)
            rc = e.code
    return rc, err.getvalue() + out.getvalue()


def copy_run(base: Path, dst: Path) -> Path:
    shutil.copytree(base, dst)
    (dst / "config.toml").write_text((dst / "config.toml").read_text().replace(str(base), str(dst)))
    return dst


def tail(out: str, n: int = 110) -> str:
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    return lines[-1][:n] if lines else "(no message)"


def same_run_twice(path: Path, grid_line: str):
    """A sweep file whose grid spells one run twice must be refused when loaded."""
    from robot_wm.sweep import spec

    path.write_text(f'tasks = ["cartpole-swingup"]\nseeds = [1]\n[grid]\n{grid_line}\n')
    try:
        spec.load(path)
    except spec.SweepError as e:
        return "are the same run" in str(e), str(e)[-90:]
    return False, "two identical trials"


def edit_recording(folder: Path, edit) -> Path:
    """Apply ``edit(arrays, meta)`` to the first episode of a recorded folder, in place; returns the folder."""
    import json

    ep = next(folder.glob("episode_*.npz"))
    z = dict(np.load(ep))
    meta = json.loads(str(z["meta"]))
    edit(z, meta)
    z["meta"] = np.array(json.dumps(meta))
    np.savez(ep, **z)
    return folder


def refused(call, exc: type[BaseException], needle: str, otherwise: str):
    """``call()`` raised ``exc`` naming ``needle`` (a case's result), or ``(False, otherwise)`` where it went through."""
    try:
        call()
    except exc as e:
        return needle in str(e), str(e)[:90]
    return False, otherwise


def untouched(run: Path, args: list[str], needle: str):
    """A command refused (exit 1 or 2) naming ``needle``, with ``run`` byte-identical after it."""
    before = tf.snapshot(run)
    rc, out = cli(*args)
    return rc in (1, 2) and needle in out and tf.snapshot(run) == before, tail(out, 90)


SLIDER_X = """<mujoco><option timestep="0.01"/><worldbody><body><joint name="x" type="slide" axis="1 0 0"/>
<geom size="0.1"/></body></worldbody><actuator><motor joint="x" gear="1"/></actuator></mujoco>"""


def edit_checkpoint_json(run: Path, edit) -> Path:
    """Apply ``edit(meta)`` to the run's latest checkpoint JSON in place (its hashes left as they were)."""
    import json

    from robot_wm.run_dir import RunDir

    js = RunDir(run).latest_checkpoint()
    meta = json.loads(js.read_text())
    edit(meta)
    js.write_text(json.dumps(meta))
    return run
