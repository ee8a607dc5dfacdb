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


def _signal_during_deploy(planner: Path, sig: signal.Signals, rec: Path) -> tuple[bool, str]:
    """``sig`` sent to a real `deploy --record` in its second episode (the signal at its default, as in a terminal):
    a stop like SIGTERM's, the episode cut short kept."""
    p = _robot_wm("deploy", str(planner), "--task", "cartpole-swingup", "--episodes", "50", "--realtime",
                  "--record", str(rec), preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL))
    end = time.monotonic() + 120
    while p.poll() is None and not (rec / "episode_000000.npz").exists() and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(1.0)
    p.send_signal(sig)
    out = p.communicate(timeout=60)[0]
    return (p.returncode == 128 + sig and f"terminated ({sig.name})" in out and
            (rec / "episode_000001.npz").exists()), tail(out, 90)


def _deploy_refuses(bad: Path, needle: str) -> tuple[bool, str]:
    """``robot-wm deploy`` of the planner file ``bad`` exits 2 naming ``needle``."""
    rc, out = cli("deploy", str(bad), "--episodes", "1")
    return rc == 2 and needle in out, tail(out, 90)


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

    record(cat, "kill -USR1 during deploy --record (ended at once: no safe action, the episode lost)",
           lambda: _signal_during_deploy(planner, signal.SIGUSR1, work / "p33-usr1"))

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


def probe34_defects(base: Path, complete: Path, planner: Path, work: Path) -> None:
    """The thirty-fourth probe (one frozen snapshot, two helpers): its five defects and eleven ugly cases, fixed in
    session 31."""
    from test_faults import damage_checkpoint, damage_onnx

    cat = "probe 2026-11-29 (34th)"

    def forged(how: str, needle: str):
        return _deploy_refuses(damage_onnx(planner, work / f"p34-{how}.onnx", how), needle)
    record(cat, "a Loop of 10^8 trips inside a model-local function, hashes recomputed (25 min a step, deaf to SIGTERM)",
           lambda: forged("loop-in-function", "function evil.Spin"))
    record(cat, "a 2 MiB metadata entry, its hash recomputed (300 MiB deployed at 1.75 GB)",
           lambda: forged("huge-metadata", "more than 1 MiB of metadata"))
    record(cat, "a ConstantOfShape of 3 x 2^28 floats, hashes recomputed (3.5 GB before a safe stop)",
           lambda: forged("huge-constant", "takes 3,221,225,472 bytes"))

    def driver_scales_in_place():
        from test_faults import _sim_env

        from robot_wm.data.episode import Episode
        from robot_wm.runtime.loop import ControlLoop
        from robot_wm.runtime.record import DeploymentRecorder
        from robot_wm.runtime.robot import SimRobot
        from robot_wm.runtime.session import PlannerSession

        class MotorUnits(SimRobot):
            def send_action(self, action):
                super().send_action(action)
                action *= 100.0  # to motor units, in place, after applying it

        robot = MotorUnits(_sim_env())
        robot.reset(0)
        loop = ControlLoop(PlannerSession(planner, provider="cpu"), robot, realtime=False, max_fallbacks=4)
        rec = DeploymentRecorder(work / "p34-scaled", task="cartpole-swingup", planner="p", action_repeat=8,
                                 planner_delay=0)
        rec.begin(robot, 0)
        loop.run(10, on_tick=rec.hook(loop, robot))
        ep = Episode.load(rec.end())
        top = float(np.abs(ep.action).max())
        return top <= 1.0, f"largest recorded action {top:.3f}"
    record(cat, "a driver scaling its command in place to motor units (actions of 99.9 recorded)", driver_scales_in_place)

    record(cat, "Ctrl-\\ (SIGQUIT) during deploy --record (no safe action, the episode lost)",
           lambda: _signal_during_deploy(planner, signal.SIGQUIT, work / "p34-quit"))

    def sparse_weights():
        run = copy_run(base, work / "p34-sparse")
        damage_checkpoint(run, "weights-sparse-giant")
        rc, out = cli("whatif", str(run))
        return rc == 2 and "bytes, but the model" in out, tail(out, 90)
    record(cat, "checkpoint weights replaced by a sparse giant file (read whole: 3.5 GB, a MemoryError traceback)",
           sparse_weights)

    def char_format():
        rc, out = cli("run", "run_dir=" + str(work / "p34-tpl" / "x{seed:c}y"), "seed=47", "env_steps=400")
        return rc == 2 and "is not a width, a precision" in out and not (work / "p34-tpl").exists(), tail(out, 90)
    record(cat, "run_dir=x{seed:c}y with seed 47 (a '/': a nested folder; 10 a newline)", char_format)

    def long_list_echo():
        rc, out = cli("run", f"run_dir={work / 'p34-ea'}", "eval_at=" + str(list(range(1, 20_000))))
        return rc == 2 and "at most 10000 items" in out and len(out) < 1000, f"{len(out)} characters"
    record(cat, "eval_at of 20,000 budgets refused (the list echoed whole: 849 KB for 119,999)", long_list_echo)

    def cpus_refusal_leaves_nothing():
        from robot_wm.cpus import available_cpus

        sweep = work / "p34-cpus.toml"
        sweep.write_text(f'tasks = ["cartpole-swingup"]\nseeds = [1]\noverrides = ["threads={available_cpus() + 1}"]\n')
        rc, out = cli("sweep", str(sweep), "--storage", str(work / "p34-cpus"), "--cpus", "1")
        return rc == 2 and "needs threads=" in out and not (work / "p34-cpus").exists(), tail(out, 90)
    record(cat, "a sweep refused by --cpus (its new folder, lock and pending rows left)", cpus_refusal_leaves_nothing)

    def trial_lock_names_sweep():
        from conftest import TINY_RUN_ARGS

        from robot_wm.io import RunLockedError
        from robot_wm.run_dir import RunDir
        from robot_wm.sweep import results, spec
        from robot_wm.sweep.ray_runner import run_trial

        (work / "p34-trial.toml").write_text('tasks = ["cartpole-swingup"]\nseeds = [1]\nenv_steps = 400\n'
                                            f'eval_at = [200]\noverrides = {json.dumps(TINY_RUN_ARGS)}\n')
        trial = spec.load(work / "p34-trial.toml").trials[0]
        run, named, said = results.run_dir_of(work / "p34-trial", trial), "robot-wm sweep trial t (sweep PID 7)", []

        def at_milestone(run_dir, budget, mean):
            try:
                RunDir(run).lock()
            except RunLockedError as e:
                said.append(str(e))
        run_trial({**trial.payload(run), "holder": named}, on_milestone=at_milestone)
        return bool(said) and named in said[0], said[0][:90] if said else "no lock held"
    record(cat, "a sweep trial's lock as another command saw it (Ray's 560-character worker command line)",
           trial_lock_names_sweep)

    def another_runs_manifest():
        run = copy_run(complete, work / "p34-manifest")
        m = json.loads((run / "manifest.json").read_text())
        (run / "manifest.json").write_text(json.dumps({**m, "run_id": uuid.uuid4().hex,
                                                       "settings": {**m["settings"], "seed": 1}}))
        rc, out = cli("eval", str(run), "--episodes", "1")
        return rc == 2 and "manifest.json' is another run's" in out, tail(out, 90)
    record(cat, "another run's manifest.json copied in (config.toml called 'edited by hand')", another_runs_manifest)

    def equals_in_launch_path():
        folder = work / "p34-s1-planner.samples=256"
        folder.mkdir()
        (folder / "my.toml").write_text("[planner]\nhorizn = 5\n")
        rc, out = cli("run", str(folder / "my.toml"), "env_steps=400")
        return rc == 2 and "planner.horizn" in out, tail(out, 90)
    record(cat, "a launch file in a folder named like a sweep trial's ('' is not a config section)", equals_in_launch_path)

    def bom_records():
        run = copy_run(base, work / "p34-bom")
        (run / "metrics.jsonl").write_bytes(b"\xef\xbb\xbf" + (run / "metrics.jsonl").read_bytes())
        rc, out = cli("train", str(run), "--no-progress")
        return rc == 0 and "no record" not in out, tail(out, 90)
    record(cat, "metrics.jsonl saved with a byte-order mark (its episode 'has no record')", bom_records)

    def unreadable_planner():
        rc, out = cli("deploy", "/proc/self/mem", "--episodes", "1")
        return rc == 1 and "'/proc/self/mem'" in out, tail(out, 90)
    record(cat, "deploy /proc/self/mem ('Input/output error: a file')", unreadable_planner)

    def edited_claim():
        from robot_wm.runtime.record import DeploymentRecorder

        folder = work / "p34-claim"
        cli("deploy", str(planner), "--task", "cartpole-swingup", "--episodes", "1", "--record", str(folder))
        (folder / "recording.json").write_text(json.dumps({"task": "cartpole-swingup", "action_repeat": 4}))
        try:
            DeploymentRecorder(folder, task="cartpole-swingup", planner="p", action_repeat=8, planner_delay=0)
        except ValueError as e:
            return "the file was edited" in str(e), str(e)[:90]
        return False, "accepted"
    record(cat, "recording.json edited to action repeat 4 (the claim said to be the episodes')", edited_claim)

    def users_folder():
        folder = work / "p34-mine"
        folder.mkdir()
        (folder / "notes.txt").write_text("calibration\n")
        rc, out = cli("deploy", str(planner), "--task", "cartpole-swingup", "--episodes", "1", "--record", str(folder))
        return rc == 2 and sorted(p.name for p in folder.iterdir()) == ["notes.txt"], tail(out, 90)
    record(cat, "deploy --record into a folder of the user's files (recording.json and episodes written there)",
           users_folder)


def probe35_defects(base: Path, complete: Path, planner: Path, work: Path) -> None:
    """The thirty-fifth probe (one frozen snapshot, two helpers): its seven defects and nine ugly cases, fixed in
    session 31."""
    from test_faults import TINY, _slow_planner, _under_strace, damage_onnx, edit_metadata

    cat = "probe 2026-11-29 (35th)"

    def no_memory_key():
        big = damage_onnx(planner, work / "p35-big.onnx", "huge-constant")
        return _deploy_refuses(edit_metadata(big, work / "p35-nokey.onnx", {"planner_memory_bytes": None}),
                              "does not say what a planning step needs")
    record(cat, "planner_memory_bytes deleted, hashes recomputed, a 1 GB constant (the bounds skipped: 2.3 GB)",
           no_memory_key)
    for how, needle, what in (
            ("matmul-chain", "operations a step, more than 4 x", "100 chained 500 x 500 products (30,000: 225 s a step)"),
            ("sparse-initializer", "sparse initializer", "a sparse initializer declaring 2^28 floats (1 GiB at load)"),
            ("string-initializer", "holds strings", "a string tensor (29 doublings: 512 MB from a shape of [1])")):
        record(cat, f"a forged planner: {what}",
               lambda how=how, needle=needle: _deploy_refuses(damage_onnx(planner, work / f"p35-{how}.onnx", how), needle))
    record(cat, "metadata noise_shape of 2^64 (an OverflowError traceback)", lambda: _deploy_refuses(
        edit_metadata(planner, work / "p35-ns.onnx", {"noise_shape": "[18446744073709551616, 1, 1, 1]"}),
        "each must be 1 to"))
    record(cat, "metadata planner_memory_bytes of a superscript two (int()'s words, no file named)", lambda: _deploy_refuses(
        edit_metadata(planner, work / "p35-sup.onnx", {"planner_memory_bytes": "\u00b2"}), "p35-sup.onnx"))

    def sigterm_mid_step():
        slow = _slow_planner(planner, work / "p35-slow.onnx", 3000)
        p = _robot_wm("deploy", str(slow), "--episodes", "1")
        time.sleep(8.0)
        sent = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out = p.communicate(timeout=60)[0]
        took = time.monotonic() - sent
        return p.returncode == 143 and took < 5.0, f"{took:.1f} s to stop: {tail(out, 60)}"
    record(cat, "SIGTERM while onnxruntime runs a long step (deaf until the step returned)", sigterm_mid_step)

    def warmup_watchdog():
        from robot_wm.runtime import session as session_mod

        slow, old = _slow_planner(planner, work / "p35-slow2.onnx", 2000), session_mod.WARMUP_LIMIT_S
        session_mod.WARMUP_LIMIT_S = 0.5
        try:
            session_mod.PlannerSession(slow, provider="cpu").warmup()
        except session_mod.ModelFileError as e:
            return "ran past 0.5 s at warm-up" in str(e), str(e)[-90:]
        finally:
            session_mod.WARMUP_LIMIT_S = old
        return False, "warmed up"
    record(cat, "a warm-up step longer than its limit (11 minutes of warm-up)", warmup_watchdog)

    def async_driver():
        from test_faults import _sim_env

        from robot_wm.runtime.loop import ControlLoop
        from robot_wm.runtime.robot import SimRobot
        from robot_wm.runtime.session import PlannerSession

        class AsyncRobot(SimRobot):
            async def send_action(self, action):
                super().send_action(action)

        robot = AsyncRobot(_sim_env())
        robot.reset(0)
        loop = ControlLoop(PlannerSession(planner, provider="cpu"), robot, realtime=False, max_fallbacks=3)
        stats = loop.run(5)
        return stats.errors >= 3 and loop.stopped is not None, f"errors {stats.errors}, stopped: {loop.stopped}"
    record(cat, "an async driver's send_action (no command sent, 0 errors counted)", async_driver)

    def injected(inject: list[str], needle: str):
        if shutil.which("strace") is None:
            return True, "strace not installed: not tried"
        r = _under_strace(inject, "run", f"run_dir={work / f'p35-{inject[1][6:]}'}", *TINY, "--no-progress")
        return r.returncode == 1 and needle in r.stderr, tail(r.stderr, 90)
    record(cat, "strace: EIO syncing the run folder (exit 0)",
           lambda: injected(["-e", "trace=fsync", "-e", "inject=fsync:error=EIO:when=4"], "Input/output error"))
    record(cat, "strace: EPERM from link() ('make it writable' of a writable folder)",
           lambda: injected(["-e", "trace=link", "-e", "inject=link:error=EPERM:when=2"], "does not take hard links"))

    def summary_before_collect():
        run = copy_run(complete, work / "p35-summary")
        s = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps({**s, "eval_returns": [40.15], "eval_return_mean": 40.15}))
        rc, out = cli("collect", str(run), "--episodes", "1", "--policy", "random", "--no-progress")
        stored = len(list((run / "episodes").glob("episode_*.npz")))
        return rc == 2 and stored == s["episodes"], f"{stored} episodes: {tail(out, 70)}"
    record(cat, "another run's summary.json, then collect (the episode stored, then exit 2)", summary_before_collect)

    def csv_folder():
        run = copy_run(base, work / "p35-csv")
        (run / "episodes.csv").unlink()
        (run / "episodes.csv").mkdir()
        before = len(list(run.glob("eval/episode_*.npz")))
        rc, out = cli("eval", str(run), "--episodes", "1", "--no-progress")
        return rc == 2 and len(list(run.glob("eval/episode_*.npz"))) == before, tail(out, 90)
    record(cat, "episodes.csv a folder, then eval (the episode stored, then exit 2)", csv_folder)


def probe36_defects(base: Path, complete: Path, planner: Path, work: Path) -> None:
    """The thirty-sixth probe (one frozen snapshot, two helpers): its three defects and the ugly cases fixed in
    session 31."""
    from test_faults import TINY, _under_strace, damage_onnx

    cat = "probe 2026-11-29 (36th)"

    def determinant():
        bad = damage_onnx(planner, work / "p36-det.onnx", "determinant")
        rc, out = cli("deploy", str(bad), "--episodes", "1")
        return rc == 2 and "holds a Det node" in out, tail(out, 90)
    record(cat, "a forged Det of a 16,000 x 16,000 draw (one node for minutes, past the watchdog and SIGTERM)",
           determinant)

    def loop_with(robot_class, **kw):
        from test_faults import _sim_env

        from robot_wm.runtime.loop import ControlLoop
        from robot_wm.runtime.session import PlannerSession

        robot = robot_class(_sim_env())
        robot.reset(0)
        loop = ControlLoop(PlannerSession(planner, provider="cpu"), robot, realtime=False, max_fallbacks=3, **kw)
        return loop, loop.run(5)

    def generator_driver():
        from robot_wm.runtime.robot import SimRobot

        class Yields(SimRobot):
            def send_action(self, action):
                super().send_action(action)
                yield

        loop, stats = loop_with(Yields)
        return stats.errors >= 3 and loop.stopped is not None, f"errors {stats.errors}"
    record(cat, "a generator send_action (never ran: 30 steps, 0 errors)", generator_driver)

    def raising_state():
        from robot_wm.runtime.robot import SimRobot

        class Bus:
            def __array__(self, *a, **k):
                raise RuntimeError("sensor bus")

        class BadState(SimRobot):
            def read_state(self):
                return Bus()

        loop, stats = loop_with(BadState)
        return stats.fallbacks >= 3 and loop.stopped is not None, f"fallbacks {stats.fallbacks}"
    record(cat, "a state whose __array__ raises (escaped the loop)", raising_state)

    def huge_reward():
        from test_faults import _sim_env

        from robot_wm.data.episode import Episode
        from robot_wm.runtime.record import DeploymentRecorder
        from robot_wm.runtime.robot import SimRobot

        class Rewarding(SimRobot):
            bad = False

            def last_reward(self):
                return 1e300 if self.bad else 1.0

        robot = Rewarding(_sim_env())
        robot.reset(0)
        rec = DeploymentRecorder(work / "p36-reward", task="cartpole-swingup", planner="p", action_repeat=8,
                                 planner_delay=0)
        rec.begin(robot, 0)
        for i in range(5):
            robot.send_action(np.zeros(1))
            robot.bad = i == 2
            rec.step(robot, np.zeros(1, np.float32), 0.001, None)
        ep = Episode.load(rec.end())
        return len(ep) == 5 and ep.meta.get("rewards_unknown_at") == [2], f"{len(ep)} steps kept"
    record(cat, "a reward of 1e300 at the third step (end() raised: the whole episode lost)", huge_reward)

    def enolck():
        if shutil.which("strace") is None:
            return True, "strace not installed: not tried"
        r = _under_strace(["-e", "trace=flock", "-e", "inject=flock:error=ENOLCK:when=1"], "run",
                          f"run_dir={work / 'p36-nolock'}", *TINY, "--no-progress")
        return r.returncode == 1 and "does not take the lock" in r.stderr, tail(r.stderr, 90)
    record(cat, "strace: ENOLCK from flock ('No locks available: a file')", enolck)

    def back_through_link():
        (work / "p36-other" / "sub").mkdir(parents=True)
        (work / "p36-lnk").symlink_to(work / "p36-other" / "sub")
        rc, out = cli("run", f"run_dir={work}/p36-lnk/../p36-r", "env_steps=400")
        return rc == 2 and "goes back ('..') through a symbolic link" in out, tail(out, 90)
    record(cat, "run_dir=lnk/../r (made in one place, looked for in another)", back_through_link)

    def early_ctrl_c():
        p = _robot_wm(script=f'exec "{sys.executable}" -c "from robot_wm.cli import entry; entry()" run '
                      f'run_dir="{work / "p36-early"}" env_steps=400 --no-progress')
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        out = p.communicate(timeout=120)[0]
        return p.returncode == 130 and "Traceback" not in out, tail(out, 90)
    record(cat, "Ctrl-C 0.3 s after the start (a traceback from inside numpy's import)", early_ctrl_c)
