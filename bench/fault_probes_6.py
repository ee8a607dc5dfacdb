"""The fault report's catalogue, continued (``fault_probes_5.py`` holds probes 26-32): the thirty-third probe's
defects and ugly cases (2026-11-29; two defects fixed in session 30, the rest in session 31)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from fault_kit import ROOT, cli, copy_run, record, tail


def _robot_wm(*argv: str, cwd: Path | None = None, script: str | None = None, **popen) -> subprocess.Popen:
    """``robot-wm ARGV`` as a real process (or the shell ``script`` that runs it), output to a pipe."""
    env = {**os.environ, "MUJOCO_GL": "egl", "PYTHONPATH": str(ROOT)}
    cmd = ["bash", "-c", script] if script else [sys.executable, "-m", "robot_wm.cli", *argv]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


def probe33_defects(base: Path, complete: Path, planner: Path, work: Path) -> None:
    """The thirty-third probe (one frozen snapshot, two helpers): its three defects and its ugly cases."""
    from robot_wm.io import RunLockedError
    from robot_wm.run_dir import RunDir
    from robot_wm.runner import Session

    cat = "probe 2026-11-29 (33rd)"

    def writer_into_a_copy():
        run = copy_run(complete, work / "p33-moved")
        s = Session.open(RunDir(run).load_config(), RunDir(run), progress=False, lock=True)
        try:
            index = len(s.run.dataset())
            shutil.move(run, work / "p33-moved-away")
            shutil.copytree(work / "p33-moved-away", run)
            before = sorted(p.name for p in (run / "episodes").iterdir())
            try:
                s.collect(s.planner("random", seed=1), "train", index)
            except RunLockedError as e:
                return sorted(p.name for p in (run / "episodes").iterdir()) == before, str(e)[:90]
            return False, "stored into the folder put back at the run's path"
        finally:
            s.close()
    record(cat, "a writer paused, its run moved away and a copy put back (it stored into the copy)", writer_into_a_copy)

    def replaced_run_blamed():
        run = copy_run(complete, work / "p33-replaced")
        try:
            with Session.open(RunDir(run).load_config(), RunDir(run), progress=False, lock=True) as s:
                shutil.move(run, work / "p33-replaced-away")
                shutil.copytree(work / "p33-replaced-away", run)
                m = json.loads((run / "manifest.json").read_text())
                (run / "manifest.json").write_text(json.dumps({**m, "run_id": uuid.uuid4().hex}))
                s.latest_model()
        except RunLockedError as e:
            return "was moved or replaced" in str(e), str(e)[:90]
        except ValueError as e:
            return False, str(e)[:90]
        return False, "accepted"
    record(cat, "the same writer, another run put at its path (its checkpoint called 'copied in')", replaced_run_blamed)

    def bounds_changed_in_place():
        from test_faults import _sim_env

        from robot_wm.runtime.loop import ControlLoop
        from robot_wm.runtime.robot import SimRobot
        from robot_wm.runtime.session import PlannerSession

        robot, sent = SimRobot(_sim_env()), []
        send = robot.send_action
        robot.send_action = lambda a: (sent.append(np.array(a, copy=True)), send(a))[1]
        loop = ControlLoop(PlannerSession(planner, provider="cpu"), robot, realtime=False, max_fallbacks=3)
        loop.run(2)
        robot.action_low[:], robot.action_high[:] = 5.0, -5.0  # inverted, in place, after the loop was built
        loop.run(3)
        ok = bool(np.all(np.isfinite(sent)) and np.all(np.abs(np.stack(sent)) <= 1.0))
        return ok, f"{len(sent)} commands within [-1, 1]" if ok else f"sent {np.stack(sent).ravel().tolist()[:4]}"
    record(cat, "a driver's action bounds inverted in place after the loop was built (-5 sent on [-1, 1])",
           bounds_changed_in_place)

    def summary_edited():
        run = copy_run(complete, work / "p33-summary")
        s = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps({**s, "eval_return_mean": 999.0}))
        from robot_wm.sweep.results import trial_row
        from robot_wm.sweep.spec import Trial

        row = trial_row(Trial(name="t", source="cartpole-swingup", is_launch=False, seed=0, grid=()), run)
        return row["status"] == "failed" and "eval_return_mean = 999.0" in row["error"], row["error"][:90]
    record(cat, "a trial's summary.json edited to a mean of 999 (results.csv and the report took it)", summary_edited)

    def sigusr1_during_deploy():
        rec = work / "p33-usr1"
        p = _robot_wm("deploy", str(planner), "--task", "cartpole-swingup", "--episodes", "50", "--realtime",
                      "--record", str(rec), preexec_fn=lambda: signal.signal(signal.SIGUSR1, signal.SIG_DFL))
        end = time.monotonic() + 120
        while p.poll() is None and not (rec / "episode_000000.npz").exists() and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(1.0)
        p.send_signal(signal.SIGUSR1)
        out = p.communicate(timeout=60)[0]
        return (p.returncode == 128 + signal.SIGUSR1 and "terminated (SIGUSR1)" in out and
                (rec / "episode_000001.npz").exists()), tail(out, 90)
    record(cat, "kill -USR1 during deploy --record (ended at once: no safe action, the episode lost)",
           sigusr1_during_deploy)

    def deleted_cwd():
        gone, run = work / "p33-gone", work / "p33-gone-run"
        gone.mkdir()
        p = _robot_wm(script=f'cd "{gone}" && rmdir "{gone}" && exec "{sys.executable}" -m robot_wm.cli run '
                      f'run_dir="{run}" env_steps=400 --no-progress')
        out = p.communicate(timeout=120)[0]
        return p.returncode == 2 and "current folder was deleted" in out and not run.exists(), tail(out, 90)
    record(cat, "a command started in a deleted folder (torch's oneMKL: 'Cannot load libtorch_cpu.so', exit 0)",
           deleted_cwd)

    def dangling_link_worded_once():
        (work / "p33-link").symlink_to(work / "p33-nowhere")
        outs = [cli("eval", str(work / "p33-link"))[1], cli("run", f"run_dir={work / 'p33-link'}", "env_steps=400")[1],
                cli("deploy", str(planner), "--record", str(work / "p33-link"))[1]]
        ok = all("is a symbolic link to" in o and "that leads nowhere" in o for o in outs)
        return ok, tail(outs[-1], 90)
    record(cat, "a link that leads nowhere as a run, a run_dir and a --record folder (worded three ways)",
           dangling_link_worded_once)
