"""The fault report's catalogue, continued (``fault_probes_6.py`` holds probes 33-36): the ugly cases the thirty-sixth
probe left, fixed in session 32 (2026-11-29)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

from fault_kit import cli, copy_run, record, tail


def probe36_leftovers(base: Path, complete: Path, planner: Path, work: Path) -> None:
    """The thirty-sixth probe's ugly cases left at the end of session 31."""
    from test_faults import edit_metadata, snapshot
    from test_sweep import STOPPED_WHILE_RAY_STARTS

    cat = "session 32: probe 36's leftovers"

    def read_only_checkpoints():
        run = copy_run(complete, work / "p36l-ro")
        ckpt = run / "checkpoints"
        mounted = subprocess.run(["mount", "--bind", str(ckpt), str(ckpt)], capture_output=True, check=False)
        if mounted.returncode != 0:
            return True, "cannot bind-mount here (needs root): not tried"
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(ckpt), str(ckpt)], check=True, capture_output=True)
            before = snapshot(run)
            rc, out = cli("train", str(run), "model.max_epochs=1", "--no-progress")
            return rc == 1 and f"cannot write {str(ckpt)!r} (Read-only file system)" in out and \
                snapshot(run) == before, tail(out, 90)
        finally:
            subprocess.run(["umount", "-l", str(ckpt)], check=False)
    record(cat, "a read-only checkpoints/ (found after training)", read_only_checkpoints)

    def lookalike(arg: str, needle: str):
        def probe():
            rc, out = cli("run", f"run_dir={work / 'p36l-never'}", arg, "--no-progress")
            return rc == 2 and needle in out and not (work / "p36l-never").exists(), tail(out, 90)
        return probe
    record(cat, "a fullwidth '\uff1d' in an override (read as a launch file's name)",
           lookalike("planner.samples\uff1d64", "holds '\uff1d' (U+FF1D), not '='"))
    record(cat, "'planner.samples =64' (\"unknown field 'planner.samples '\")",
           lookalike("planner.samples =64", "has a space before '='"))

    def episode_named_folder():
        rec = work / "p36l-rec"
        args = ["deploy", str(planner), "--episodes", "1", "--record", str(rec), "--sim", "max_env_steps=20"]
        rc0 = cli(*args)[0]
        (rec / "episode_000001.npz").mkdir()
        rc, out = cli(*args)
        return rc0 == 0 and rc == 2 and "has an episode's name but is not a file" in out and \
            not (rec / "episode_000002.npz").exists(), tail(out, 90)
    record(cat, "a folder named episode_000001.npz in a recording folder (skipped by deploy --record)",
           episode_named_folder)

    def beyond_float32_bound():
        from robot_wm.runtime.session import ModelFileError, PlannerSession

        bad = edit_metadata(planner, work / "p36l-low.onnx", {"action_low": "[-1e39]"})
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                PlannerSession(bad)
            except ModelFileError as e:
                return "metadata action_low=[-1e39]" in str(e) and "finite float32" in str(e), str(e)[-90:]
        return False, "loaded"
    record(cat, "a re-hashed action_low of -1e39 (numpy's overflow warning first)", beyond_float32_bound)

    def stop_while_ray_starts():
        script = work / "p36l-ray.py"
        script.write_text(STOPPED_WHILE_RAY_STARTS)
        r = subprocess.run([sys.executable, str(script), str(work / "p36l-ray.txt"), "0.3", "SIGTERM"], capture_output=True,
                           text=True, timeout=120, check=False)
        left = subprocess.run(["pgrep", "-f", "ray::DashboardAgent|ray::RuntimeEnvAgent"], capture_output=True,
                              text=True, check=False).stdout.split()
        return r.returncode == 143 and not left, f"exit {r.returncode}, {len(left)} Ray agents left"
    record(cat, "SIGTERM while Ray starts (exit 15, no message; Ray's agents outlived the sweep)",
           stop_while_ray_starts)
    shutil.rmtree(work / "p36l-never", ignore_errors=True)
