"""The fault report's catalogue, continued (``fault_probes_6.py`` holds probes 33-36): the ugly cases the thirty-sixth
probe left, fixed in session 32 (2026-11-29)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

from fault_kit import cli, copy_run, record, refused, tail


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


def probe37_defects(base: Path, complete: Path, planner: Path, work: Path) -> None:
    """The thirty-seventh probe (one frozen snapshot, two helpers): its defects and ugly cases, fixed in session 32.
    The forged value_info shapes (3 GB, 4 x 10^11 operations) are two of the ONNX damage cases."""
    import signal

    import numpy as np
    from conftest import one_buffer_robot
    from test_faults import edit_metadata, snapshot
    from test_runtime import ScriptedRobot
    from test_sweep import STOPPED_WHILE_RAY_STARTS

    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.runtime.loop import ControlLoop
    from robot_wm.runtime.record import DeploymentRecorder
    from robot_wm.runtime.session import ModelFileError, PlannerSession

    cat = "probe 2026-11-29 (37th)"

    def recorded(folder: Path, robot, steps: int = 5, before_end=None, reward=None):
        rec = DeploymentRecorder(folder, task="cartpole-swingup", planner="p", action_repeat=8, planner_delay=0)
        robot.reset(0)
        rec.begin(robot, 0)
        for _ in range(steps):
            robot.send_action(np.array([0.5]))
            rec.step(robot, np.array([0.5]), 0.002, None)
        if before_end:
            before_end()
        return rec

    def name_taken_meanwhile():
        folder = work / "p37-taken"
        rec = recorded(folder, one_buffer_robot(), before_end=lambda: (folder / "episode_000000.npz").mkdir())
        try:
            rec.end()
        except ValueError as e:
            spare = list(folder.glob("unsaved-episode-*.npz"))
            return len(spare) == 1 and "the episode was saved as" in str(e), str(e)[-90:]
        return False, "stored"
    record(cat, "a folder made at the next episode's name while the robot drove (the episode lost)",
           name_taken_meanwhile)

    def dangling_episode_name():
        folder = work / "p37-dangling"
        folder.mkdir()
        (folder / "episode_000000.npz").symlink_to(work / "p37-nowhere")
        rc, out = cli("deploy", str(planner), "--episodes", "1", "--record", str(folder))
        return rc == 2 and "that leads nowhere" in out and "episode's name" in out, tail(out, 90)
    record(cat, "deploy --record beside a link that leads nowhere named episode_000001.npz (numbered past it)",
           dangling_episode_name)

    def no_numpy_warning(edits: dict, then=None):
        def probe():
            bad = edit_metadata(planner, work / f"p37-meta-{abs(hash(str(edits)))}.onnx", edits)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                try:
                    session = PlannerSession(bad, provider="cpu")
                except ModelFileError as e:
                    return then is None and "finite in float32" in str(e), str(e)[-90:]
                return then(session) if then else (False, "loaded")
        return probe
    record(cat, "metadata state_reach with a scale of 1e38 (numpy's overflow warning)",
           no_numpy_warning({"state_reach": '{"centre": [0,0,0,0,0], "scale": [1e38,1,1,1,1], "max_z": 10}'}))

    def near_float32_limit(session):
        robot = ScriptedRobot()
        robot.action_low, robot.action_high = np.array([3e38], np.float32), np.array([3.4e38], np.float32)
        loop = ControlLoop(session, robot, realtime=False)
        loop.run(30)
        sent = [float(a[0]) for a in robot.sent]
        return loop.stopped is not None and all(3e38 <= a <= 3.4e38 for a in sent), f"sent {sorted(set(sent))[:2]}"
    record(cat, "robot bounds [3e38, 3.4e38], a planner edited to match (a safe action logged as inf)",
           no_numpy_warning({"action_low": "[3e38]", "action_high": "[3.4e38]"}, then=near_float32_limit))

    def one_nan_reward():
        class OneNaN(type(one_buffer_robot())):
            def last_reward(self):
                return float("nan") if getattr(self, "n", 0) == 3 else 1.0

            def send_action(self, action):
                self.n = getattr(self, "n", 0) + 1
                return super().send_action(action)

        robot = one_buffer_robot()
        robot.__class__ = OneNaN
        logging.disable(logging.WARNING)
        try:
            path = recorded(work / "p37-nan", robot, 6).end()
        finally:
            logging.disable(logging.NOTSET)
        meta = EpisodeDataset(path.parent)[0].meta
        return meta["reward_known"] is False and meta.get("rewards_unknown_at") == [2], str(meta.get("rewards_unknown_at"))
    record(cat, "one NaN reward among real ones (the episode's rewards unknown, no word)", one_nan_reward)

    def drive_serve_empty():
        rc, out = cli("drive", str(complete), "--serve", "")
        return rc == 2 and "an empty address" in out, tail(out, 90)
    record(cat, "drive --serve '' (drove with no stream, no word)", drive_serve_empty)

    from robot_wm.io import loads_json

    record(cat, "a goal file with 'state' twice (the last driven to)", lambda: refused(
        lambda: loads_json('{"state": [0, 1, 0, 0, 0], "state": [1, 1, 1, 1, 1]}', unique_keys=True), ValueError,
        "the key 'state' is given twice", "read"))

    def dangling_claim():
        folder = work / "p37-claim"
        folder.mkdir()
        (folder / "recording.json").symlink_to(work / "p37-gone.txt")
        rc, out = cli("deploy", str(planner), "--episodes", "1", "--record", str(folder))
        return rc == 2 and "recording.json' is a symbolic link to" in out, tail(out, 90)
    record(cat, "recording.json a link that leads nowhere ('holds recording.json ... no recording.json')",
           dangling_claim)

    record(cat, "PlannerSession('') ('.' is a directory)", lambda: refused(
        lambda: PlannerSession(""), ModelFileError, "planner file '' is an empty path", "loaded"))

    for ch in ("\u2a75", "\ua78a", "\u30a0"):
        def lookalike(ch=ch):
            rc, out = cli("run", f"run_dir={work / 'p37-never'}", f"planner.samples{ch}64", "--no-progress")
            return rc == 2 and f"(U+{ord(ch):04X}), not '='" in out, tail(out, 90)
        record(cat, f"'planner.samples{ch}64' (U+{ord(ch):04X}: a launch file's name)", lookalike)

    def read_only_records():
        run = copy_run(complete, work / "p37-ro-records")
        target = run / "metrics.jsonl"
        if subprocess.run(["mount", "--bind", str(target), str(target)], capture_output=True, check=False).returncode != 0:
            return True, "cannot bind-mount here (needs root): not tried"
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(target), str(target)], check=True, capture_output=True)
            before = snapshot(run)
            rc, out = cli("collect", str(run), "--episodes", "1", "--policy", "random", "--no-progress")
            return rc == 1 and "metrics.jsonl' (Read-only file system)" in out and snapshot(run) == before, \
                tail(out, 90)
        finally:
            subprocess.run(["umount", "-l", str(target)], check=False)
    record(cat, "a read-only metrics.jsonl, then collect (found after the episode was stored)", read_only_records)

    def read_only_unwritten_folder():
        run = copy_run(complete, work / "p37-ro-dreams")
        dreams = run / "dreams"
        dreams.mkdir()
        if subprocess.run(["mount", "--bind", str(dreams), str(dreams)], capture_output=True, check=False).returncode != 0:
            return True, "cannot bind-mount here (needs root): not tried"
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(dreams), str(dreams)], check=True, capture_output=True)
            rc, out = cli("collect", str(run), "--episodes", "1", "--policy", "random", "--no-progress")
            return rc == 0, tail(out, 90)
        finally:
            subprocess.run(["umount", "-l", str(dreams)], check=False)
    record(cat, "a read-only dreams/, then collect (refused, naming a folder it never writes)",
           read_only_unwritten_folder)

    def sighup_while_ray_starts():
        script = work / "p37-ray.py"
        script.write_text(STOPPED_WHILE_RAY_STARTS)
        r = subprocess.run([sys.executable, str(script), str(work / "p37-ray.txt"), "1.0", "SIGHUP"],
                           capture_output=True, text=True, timeout=120, check=False)
        left = subprocess.run(["pgrep", "-f", "ray::DashboardAgent|ray::RuntimeEnvAgent"], capture_output=True,
                              text=True, check=False).stdout.split()
        return r.returncode == 128 + signal.SIGHUP and not left, f"exit {r.returncode}, {len(left)} Ray agents left"
    record(cat, "SIGHUP while Ray starts (Ray's agents outlived the sweep)", sighup_while_ray_starts)
    shutil.rmtree(work / "p37-never", ignore_errors=True)



def probe38_defects(base: Path, complete: Path, planner: Path, work: Path) -> None:
    """The thirty-eighth probe: its ugly cases fixed in session 32 (its two defects, an LRN's scratch memory and a
    three-operand Einsum, are ONNX damage cases)."""
    import os
    import signal
    import time

    from test_faults import snapshot

    from robot_wm.io import leftover_temp_files

    cat = "probe 2026-11-29 (38th)"

    def append_only(name: str):
        def probe():
            run = copy_run(complete, work / f"p38-append-{name}")
            target = run / name
            if subprocess.run(["chattr", "+a", str(target)], capture_output=True, check=False).returncode != 0:
                return True, "chattr +a not allowed here: not tried"
            try:
                before = snapshot(run)
                rc, out = cli("collect", str(run), "--episodes", "1", "--policy", "random", "--no-progress")
                return rc == 1 and "it is append-only (chattr +a)" in out and snapshot(run) == before and \
                    not leftover_temp_files(run), tail(out, 90)
            finally:
                subprocess.run(["chattr", "-a", str(target)], check=False)
        return probe
    record(cat, "chattr +a manifest.json, then collect (found after the episode was logged)", append_only("manifest.json"))
    record(cat, "chattr +a episodes/, then collect (the episode's temp file kept)", append_only("episodes"))

    def record_into_a_file():
        (work / "p38-afile").write_text("mine")
        rc, out = cli("deploy", str(planner), "--episodes", "1", "--record", str(work / "p38-afile"))
        return rc == 2 and "exists and is not a directory" in out and "provider" not in out, tail(out, 90)
    record(cat, "deploy --record naming a file (refused after the planner loaded)", record_into_a_file)

    def sigusr1_during_the_fit():
        sweep = work / "p38-usr1.toml"
        sweep.write_text(
                'tasks = ["cartpole-swingup"]\nseeds = [1]\nenv_steps = 1600\n'
                'overrides = ["env.max_env_steps=200", "seed_episodes=1", "eval_episodes=1", "planner.samples=32", '
                '"planner.horizon=5", "planner.iterations=2", "planner.elites=4", "planner.keep_elites=1", '
                '"model.hidden=32", "model.layers=2", "model.max_epochs=5", "model.val_fraction=0.4", '
                '"value.hidden=32", "value.batch_size=64", "threads=1"]\n')
        p = subprocess.Popen([sys.executable, "-m", "robot_wm.cli", "sweep", str(sweep), "--storage",
                              str(work / "p38-usr1"), "--cpus", "2"], env={**os.environ, "MUJOCO_GL": "egl"},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        end = time.monotonic() + 180
        while not list((work / "p38-usr1").glob("runs/*/episodes/episode_*.npz")) and time.monotonic() < end:
            time.sleep(0.2)
        p.send_signal(signal.SIGUSR1)
        out = p.communicate(timeout=120)[0]
        return p.returncode == 128 + signal.SIGUSR1 and "Tuner.restore" not in out, tail(out, 90)
    record(cat, "SIGUSR1 during a sweep's fit (Ray Tune's: 'Tuner.restore', 'done ... pending 1')", sigusr1_during_the_fit)


def probe39_defects(base: Path, complete: Path, planner: Path, work: Path) -> None:
    """The thirty-ninth probe: what session 32 fixed of it (its Einsum and node-count defects are ONNX damage cases)."""
    import numpy as np
    from conftest import one_buffer_robot
    from test_faults import snapshot

    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.runtime.record import DeploymentRecorder

    cat = "probe 2026-11-29 (39th)"

    def chattr(target: Path, command: list[str], check):
        if subprocess.run(["chattr", "+a", str(target)], capture_output=True, check=False).returncode != 0:
            return True, "chattr +a not allowed here: not tried"
        try:
            return check(*cli(*command))
        finally:
            subprocess.run(["chattr", "-a", str(target)], check=False)

    def latest_append_only():
        run = copy_run(complete, work / "p39-latest")
        before = snapshot(run)
        return chattr(run / "checkpoints" / "latest.json", ["train", str(run), "model.max_epochs=1", "--no-progress"],
                      lambda rc, out: (rc == 1 and "latest.json' (Operation not permitted: it is append-only" in out
                                       and snapshot(run) == before, tail(out, 90)))
    record(cat, "chattr +a checkpoints/latest.json, then train (found after training)", latest_append_only)

    def record_append_only():
        rec = work / "p39-rec"
        rec.mkdir()
        return chattr(rec, ["deploy", str(planner), "--episodes", "1", "--record", str(rec)],
                      lambda rc, out: (rc == 2 and "is append-only (chattr +a)" in out and not list(rec.iterdir()),
                                       tail(out, 90)))
    record(cat, "deploy --record into an append-only folder (a temp file left per try)", record_append_only)

    def huge_reward_kept():
        class Huge(type(one_buffer_robot())):
            def last_reward(self):
                return 1e308 if getattr(self, "n", 0) == 3 else 1.0

            def send_action(self, action):
                self.n = getattr(self, "n", 0) + 1
                return super().send_action(action)

        robot = one_buffer_robot()
        robot.__class__ = Huge
        rec = DeploymentRecorder(work / "p39-reward", task="cartpole-swingup", planner="p", action_repeat=8,
                                 planner_delay=0)
        robot.reset(0)
        rec.begin(robot, 0)
        for _ in range(12):
            robot.send_action(np.array([0.5]))
            rec.step(robot, np.array([0.5]), 0.002, None)
        logging.disable(logging.WARNING)
        try:
            ep = EpisodeDataset(rec.end().parent)[0]
        finally:
            logging.disable(logging.NOTSET)
        return len(ep) == 12 and ep.meta.get("rewards_unknown_at") == [2], f"{len(ep)} of 12 kept"
    record(cat, "a reward of 1e308 at the third step (2 of 12 transitions kept, no word)", huge_reward_kept)
