"""The fault report's catalogue of the hostile probes' defects (``bench/fault_report.py`` runs them): one
function per probe, each case a reproduction of what a probe found, checked as the report checks every case."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from fault_kit import (
    ROOT,
    SLIDER_X,
    cli,
    copy_run,
    edit_checkpoint_json,
    edit_recording,
    record,
    same_run_twice,
    tail,
    tf,
    untouched,
)


def probe_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects a hostile probe found on 2026-11-26 (145 cases), as cases of the report."""
    import subprocess

    def eval_randomize():
        run = copy_run(base, work / "probe-eval-randomize")
        rc, out = cli("eval", str(run), "--episodes", "1", "--no-progress", "env.randomize.mass=[1.3, 1.3]")
        from robot_wm.run_dir import RunDir

        evals = RunDir(run).eval_dataset()
        draw = evals[len(evals) - 1].meta.get("randomization", {}) if len(evals) else {}
        return rc == 0 and abs(draw.get("mass", 0) - 1.3) < 1e-9, f"mass scale {draw.get('mass')}"
    record("probe 2026-11-26", "eval env.randomize.mass=[1.3,1.3] evaluates that robot, not the nominal one",
           eval_randomize)

    def largest_seed():
        from conftest import tiny_run

        with contextlib.redirect_stdout(io.StringIO()):
            rc = tiny_run(work / "probe-seed", "seed=4294967295")
        return rc == 0, f"exit {rc}"
    record("probe 2026-11-26", "run seed=4294967295 (episode seeds overflowed 32 bits)", largest_seed)

    def anchors_device():
        rc, out = cli("report", str(work), "--anchors", "/dev/zero")
        return rc == 2 and "not a regular file" in out, tail(out, 90)
    record("probe 2026-11-26", "report --anchors /dev/zero (grew until the OOM killer)", anchors_device)

    for argv, needle in ((["whatif", str(base), "--random", "100000000"], "argument --random"),
                         (["deploy", str(planner), "--rate", "1e-6", "--realtime"], "argument --rate")):
        def flag(argv=argv, needle=needle):
            r = subprocess.run([sys.executable, "-m", "robot_wm.cli", *argv], capture_output=True, text=True,
                               timeout=120, check=False, env={**os.environ, "MUJOCO_GL": "egl"})
            return r.returncode == 2 and needle in r.stderr, tail(r.stderr, 90)
        record("probe 2026-11-26", " ".join(a for a in argv if a not in (str(base), str(planner))), flag)

    def episodes_symlink():
        run, other = copy_run(base, work / "probe-link"), copy_run(base, work / "probe-other")
        shutil.rmtree(run / "episodes")
        (run / "episodes").symlink_to(other / "episodes")
        before = tf.snapshot(other)
        rc, out = cli("collect", str(run), "--episodes", "1", "--no-progress")
        return rc == 2 and "outside the run directory" in out and tf.snapshot(other) == before, tail(out, 90)
    record("probe 2026-11-26", "collect through RUN/episodes linked to another run's", episodes_symlink)

    def eval_at():
        rc, out = cli("run", f"run_dir={work / 'probe-eval-at'}", "eval_at=[-5]", "--no-progress")
        return rc == 2 and "eval_at.0" in out and not (work / "probe-eval-at").exists(), tail(out, 90)
    record("probe 2026-11-26", "run eval_at=[-5]", eval_at)


def probe3_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects of the third hostile probe (2026-11-26, 164 cases), as cases of the report."""
    import numpy as np

    from robot_wm.runtime.loop import ControlLoop
    from robot_wm.runtime.session import PlannerSession

    class Robot:
        state_dim, control_period = 5, 0.01

        def __init__(self, low, high):
            self.action_low, self.action_high = np.array(low, np.float32), np.array(high, np.float32)
            self.sent = []

        def read_state(self):
            return np.zeros(5, np.float32)

        def send_action(self, a):
            self.sent.append(a)

    for name, low, high in (("bounds +-inf", [-np.inf], [np.inf]), ("bounds NaN", [np.nan], [1.0]),
                            ("low > high", [1.0], [-1.0]), ("2 actuators, planner 1", [-1.0, -1.0], [1.0, 1.0])):
        def loop(low=low, high=high):
            robot = Robot(low, high)
            try:
                ControlLoop(PlannerSession(planner, provider="cpu", threads=1), robot)
            except ValueError as e:
                return not robot.sent, str(e)[:90]
            return False, "accepted"
        record("probe 2026-11-26 (3rd)", f"ControlLoop with a robot of {name}", loop)

    for what in ("planner FIFO", "latest.json FIFO"):
        def fifo(what=what):
            run = copy_run(base, work / f"p3-{what.split()[0]}")
            path = work / "p3.onnx" if what.startswith("planner") else run / "checkpoints" / "latest.json"
            path.unlink(missing_ok=True)
            os.mkfifo(path)
            args = ("deploy", str(path), "--task", "cartpole-swingup", "--episodes", "1") if what.startswith("planner") \
                else ("whatif", str(run), "--horizon", "3")
            rc, out = cli(*args)
            return rc == 2, tail(out, 90)
        record("probe 2026-11-26 (3rd)", f"{what} (hung)", fifo)

    def empty_config():
        run = copy_run(base, work / "p3-config")
        (run / "config.toml").write_text("")
        before = tf.snapshot(run)
        rc, out = cli("eval", str(run), "--episodes", "1", "--no-progress")
        return rc == 2 and tf.snapshot(run) == before, tail(out, 90)
    record("probe 2026-11-26 (3rd)", "eval on a run whose config.toml was emptied", empty_config)


def api_inputs(base: Path, planner: Path, work: Path) -> None:
    """Odd values handed to the Python API on the control path and to a custom robot's task functions (the
    third probe's ugly cases): a message naming the value, or the episode kept up to the bad step."""
    import numpy as np

    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.runtime.loop import ControlLoop
    from robot_wm.runtime.record import DeploymentRecorder
    from robot_wm.runtime.session import PlannerSession

    session = PlannerSession(planner, provider="cpu", threads=1)
    for name, state, plan, needle in (("a string state", "abc", None, "expected numbers"),
                                      ("an object-array state", np.array([object()] * 5), None, "expected numbers"),
                                      ("a prev_plan of the wrong shape", None, np.zeros((3, 1)), "prev_plan has shape"),
                                      ("a ragged prev_plan", None, [[0.0], [0.0, 1.0]], "prev_plan must be")):
        def step(state=state, plan=plan, needle=needle):
            try:
                session.step(np.zeros(5, np.float32) if state is None else state,
                             session.initial_plan() if plan is None else plan)
            except ValueError as e:
                return needle in str(e), str(e)[:90]
            return False, "accepted"
        record("API and driver inputs", f"PlannerSession.step with {name}", step)

    class Robot:
        state_dim, control_period = 5, session.meta.control_period  # the loop checks they agree
        action_low, action_high = np.array([-1.0], np.float32), np.array([1.0], np.float32)

        def __init__(self, reward, physics):
            self.t, self.reward, self.physics = 0, reward, physics

        def read_state(self):
            return np.full(5, self.t, np.float32)

        def send_action(self, a):
            self.t += 1

        def last_reward(self):
            return self.reward

        def physics_state(self):
            return self.physics()

    def loop_steps():
        try:
            ControlLoop(session, Robot(1.0, lambda: np.zeros(0)), realtime=False).run(1.5)
        except TypeError as e:
            return "max_steps=1.5" in str(e), str(e)[:90]
        return False, "accepted"
    record("API and driver inputs", "ControlLoop.run(max_steps=1.5)", loop_steps)

    for name, reward, physics in (("a text reward", "1.0", lambda: np.zeros(0)),
                                  ("an array reward", np.ones(3), lambda: np.zeros(0)),
                                  ("a raising physics_state", 1.0, lambda: 1 / 0)):
        def recorded(name=name, reward=reward, physics=physics):
            root = work / f"api-rec-{name.replace(' ', '-')}"
            rec = DeploymentRecorder(root, task="my-robot", planner="p.onnx", action_repeat=1, planner_delay=0)
            robot = Robot(reward, physics)
            rec.begin(robot, seed=0)
            for latency in (0.001, float("nan"), 0.001):
                robot.send_action(None)
                rec.step(robot, np.zeros(1), latency, None)
            rec.end()
            ep = EpisodeDataset(root)[0]
            return len(ep) == 3, f"3 steps kept, reward known {ep.meta['reward_known']}, latency {ep.meta['latency_ms']}"
        record("API and driver inputs", f"DeploymentRecorder with {name} and a NaN latency", recorded)

    for name, kwargs in (("root=/dev/null", {"root": "/dev/null"}), ("action_repeat=-4", {"action_repeat": -4}),
                         ("extra that is not JSON", {"extra": {"x": object()}}),
                         ("extra replacing the task", {"extra": {"task": "cheetah-run"}})):
        def refused(kwargs=kwargs):
            args = {"root": work / "api-rec-refused", "task": "my-robot", "planner": "p.onnx", "action_repeat": 1,
                    "planner_delay": 0}
            try:
                DeploymentRecorder(**{**args, **kwargs})
            except ValueError as e:
                return True, str(e)[:90]
            return False, "accepted"
        record("API and driver inputs", f"DeploymentRecorder {name}", refused)

    def stdlib_reward():
        xml = work / "api-slider.xml"
        xml.write_text(SLIDER_X)
        rc, out = cli("run", f"run_dir={work / 'api-os-system'}", "env.task=mjcf", f"env.mjcf={xml}",
                      "env.reward=os:system", "env_steps=100", "--no-progress")
        return rc == 2 and "standard library" in out and not (work / "api-os-system").exists(), tail(out, 90)
    record("API and driver inputs", "run env.reward=os:system (a stdlib function as the reward)", stdlib_reward)

    def double_equals():
        rc, out = cli("run", f"run_dir=={work / 'api-eq'}", "--no-progress")
        return rc == 2 and "'=='" in out and not Path("=").exists(), tail(out, 90)
    record("API and driver inputs", "run run_dir==DIR (a doubled '=')", double_equals)

    def other_round():
        run = copy_run(base, work / "api-round")
        js = tf.damage_checkpoint(run, "json-of-another-round")
        rc, out = cli("whatif", str(run), "--horizon", "3")
        return rc == 2 and js.name in out and "another round" in out, tail(out, 90)
    record("API and driver inputs", "a checkpoint JSON swapped for the previous round's", other_round)


def probe4_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects of the fourth hostile probe (2026-11-26, 96 cases), as cases of the report."""
    import json

    from robot_wm.run_dir import RunDir
    from robot_wm.sweep import spec

    def lock_link():
        run = copy_run(base, work / "p4-lock")
        victim = work / "p4-victim.txt"
        victim.write_text("precious")
        (run / ".lock").unlink(missing_ok=True)
        (run / ".lock").symlink_to(victim)
        rc, out = cli("eval", str(run), "--episodes", "1", "--no-progress")
        return rc == 2 and victim.read_text() == "precious", tail(out, 90)
    record("probe 2026-11-26 (4th)", "RUN/.lock is a link to a user's file", lock_link)

    def copied_run():
        run = copy_run(base, work / "p4-orig")
        copy = copy_run(run, work / "p4-copy")
        before = tf.snapshot(run)
        rc, out = cli("eval", str(copy), "--episodes", "1", "--no-progress")
        return rc == 0 and tf.snapshot(run) == before and RunDir(copy).load_config().resolved_run_dir() == copy, \
            "the copy is evaluated; the original untouched"
    record("probe 2026-11-26 (4th)", "a copied run names the original in config.toml", copied_run)

    for name, body, needle in (
            ("a task listed twice", 'tasks = ["cartpole-swingup", "cartpole-swingup"]\nseeds = [1]\n', "repeats"),
            ("a grid key given twice", 'tasks = ["cartpole-swingup"]\nseeds = [1]\n[grid]\n"planner.horizon" = [5]\n'
             '[grid.planner]\nhorizon = [7]\n', "given twice"),
            ("a grid of seeds", 'tasks = ["cartpole-swingup"]\nseeds = [1]\n[grid]\nseed = [5, 6]\n', "seeds = [...]"),
            ("run_dir in overrides", 'tasks = ["cartpole-swingup"]\nseeds = [1]\noverrides = ["run_dir=/tmp/x"]\n',
             "sweep_dir"),
            ("an unknown task", 'tasks = ["nope-task"]\nseeds = [1]\n', "unknown task")):
        def sweep_file(body=body, needle=needle, name=name):
            path = work / f"p4-{name.replace(' ', '-')}.toml"
            path.write_text(body)
            try:
                spec.load(path)
            except spec.SweepError as e:
                return needle in str(e), str(e).splitlines()[-1][:90]
            return False, "accepted"
        record("probe 2026-11-26 (4th)", f"sweep file with {name}", sweep_file)

    def nan_period():
        tf.edit_metadata(planner, work / "p4-nan.onnx", {"control_period": "nan"})
        rc, out = cli("deploy", str(work / "p4-nan.onnx"), "--episodes", "1", "--action-repeat", "2")
        said = next((line for line in out.splitlines() if "does not say its control period" in line), "")
        return bool(said), said[:110] or tail(out, 90)
    record("probe 2026-11-26 (4th)", "planner metadata control_period=nan (skipped the robot check silently)", nan_period)

    for command in ("train", "export"):
        def sizes(command=command):
            run = copy_run(base, work / f"p4-{command}")
            before = tf.snapshot(run)
            extra = ("--out", str(work / "p4-x.onnx")) if command == "export" else ("--no-progress",)
            rc, out = cli(command, str(run), *extra, "model.hidden=64")
            return rc == 2 and "model.hidden" in out and tf.snapshot(run) == before, tail(out, 90)
        record("probe 2026-11-26 (4th)", f"{command} RUN model.hidden=64 (ignored, exit 0)", sizes)

    def robot_again():
        from robot_wm.config import EnvConfig
        from robot_wm.runtime.record import DeploymentRecorder
        from robot_wm.runtime.robot import SimRobot
        from sim.registry import make_env

        run = copy_run(base, work / "p4-ft")
        cfg = RunDir(run).load_config()
        robot = SimRobot(make_env(EnvConfig(task=cfg.env.task, action_repeat=cfg.env.action_repeat, max_env_steps=160)))
        data = work / "p4-robot-data"
        rec = DeploymentRecorder(data, task=cfg.env.task, planner="none", action_repeat=cfg.env.action_repeat,
                                 source="sim-robot", planner_delay=0)
        robot.reset(0)
        rec.begin(robot, 0)
        while not robot.done:
            robot.send_action(np.zeros(1, np.float32))
            rec.step(robot, np.zeros(1, np.float32), 0.001, None)
        rec.end(**robot.episode_info())
        cli("finetune", str(run), "--data", str(data), "--no-progress")
        n = len(list((run / "robot").iterdir()))
        rc, out = cli("finetune", str(run), "--data", str(run / "robot"), "--no-progress")
        return rc == 2 and len(list((run / "robot").iterdir())) == n, tail(out, 90)
    record("probe 2026-11-26 (4th)", "finetune RUN --data RUN/robot (copied in again each time)", robot_again)

    def bad_goal():
        rc, out = cli("run", f"run_dir={work / 'p4-goal'}", 'goal.joints={"über"=0.5}', "env_steps=400", "--no-progress")
        return rc == 2 and not (work / "p4-goal").exists(), tail(out, 90)
    record("probe 2026-11-26 (4th)", "run with an unknown goal joint (unresumable after round 0)", bad_goal)

    def eval_at_repeats():
        from robot_wm.config import RunConfig, apply_overrides

        got = apply_overrides(RunConfig(), ["eval_at=[100, 100, 100, 100]"]).eval_at
        return got == [100], f"eval_at {json.dumps(got)}"
    record("probe 2026-11-26 (4th)", "eval_at=[100,100,100,100] (four evaluations)", eval_at_repeats)


def probe5_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects of the fifth hostile probe (2026-11-26, 138 cases), as cases of the report."""
    from robot_wm.config import RunConfig, apply_overrides
    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.run_dir import RunDir
    from robot_wm.runtime.loop import ControlLoop
    from robot_wm.runtime.session import PlannerSession
    from robot_wm.sweep import spec
    from sim.mjcf import MJCFEnv

    def refused(fn, needle):
        try:
            fn()
        except (ValueError, OSError) as e:
            return needle in str(e), str(e).splitlines()[-1][:90]
        return False, "accepted"

    def hard_lock():
        run = copy_run(base, work / "p5-hl")
        victim = work / "p5-victim.txt"
        victim.write_text("precious")
        (run / ".lock").unlink(missing_ok=True)
        os.link(victim, run / ".lock")
        rc, out = cli("eval", str(run), "--episodes", "1", "--no-progress")
        return rc == 2 and victim.read_text() == "precious", tail(out, 90)
    record("probe 2026-11-26 (5th)", "RUN/.lock hard-linked to a user's file", hard_lock)

    def cp_al():
        run = copy_run(base, work / "p5-orig")
        copy = work / "p5-al"
        subprocess.run(["cp", "-al", str(run), str(copy)], check=True)
        before = tf.snapshot(run)
        rc, out = cli("eval", str(copy), "--episodes", "1", "--no-progress")
        return rc == 2 and tf.snapshot(run) == before and "hard links" in out, tail(out, 90)
    record("probe 2026-11-26 (5th)", "eval on a `cp -al` copy of a run (appended to the original)", cp_al)

    for name, body, needle in (
            ("a task and its alias", 'tasks = ["cartpole-swingup", "cartpole_swingup"]\nseeds = [1]\n', "same task"),
            ("a repeated grid value", 'tasks = ["cartpole-swingup"]\nseeds = [1]\n[grid]\n"planner.horizon" = [5, 5]\n',
             "repeats a value")):
        def sweep_file(body=body, needle=needle, name=name):
            path = work / f"p5-{name.replace(' ', '-')}.toml"
            path.write_text(body)
            return refused(lambda: spec.load(path), needle)
        record("probe 2026-11-26 (5th)", f"sweep file with {name}", sweep_file)

    def edited_metadata():
        bad = tf.edit_metadata(planner, work / "p5-ar2.onnx", {"action_repeat": "2", "control_period": "0.02"},
                               rehash=False)
        return refused(lambda: PlannerSession(bad, provider="cpu"), "metadata was edited after export")
    record("probe 2026-11-26 (5th)", "planner metadata edited consistently (action_repeat 2, period 0.02)",
           edited_metadata)

    def stale_append():
        from robot_wm.data.episode import Episode

        ep = RunDir(base).dataset()[0]
        a = EpisodeDataset(work / "p5-rec", create=True)  # two recorders, one folder
        b = EpisodeDataset(work / "p5-rec")
        a.append(Episode(ep.obs, ep.action, ep.reward, ep.physics_state, ep.meta))
        path = b.append(Episode(ep.obs, ep.action, ep.reward, ep.physics_state, ep.meta))
        return len(EpisodeDataset(work / "p5-rec")) == 2, f"the second stored as {path.name}"
    record("probe 2026-11-26 (5th)", "two recorders appending to one folder (the second episode was lost)",
           stale_append)

    record("probe 2026-11-26 (5th)", "goal.reward_weight=1e308 (every planning step invalid)",
           lambda: refused(lambda: apply_overrides(RunConfig(), ["goal.reward_weight=1e308"]), "reward_weight"))

    class Robot:
        state_dim, action_low, action_high = 5, np.array([-1.0], np.float32), np.array([1.0], np.float32)

        def __init__(self, period):
            self.control_period = period

        def read_state(self):
            return np.zeros(5, np.float32)

        def send_action(self, a):
            pass

    session = PlannerSession(planner, provider="cpu", threads=1)
    record("probe 2026-11-26 (5th)", "ControlLoop: a 0.08 s planner on a 0.02 s robot (Python API)",
           lambda: refused(lambda: ControlLoop(session, Robot(0.02)), "control period"))
    record("probe 2026-11-26 (5th)", "ControlLoop(rate_hz=1e-6, realtime=True) (slept 11.6 days a step)",
           lambda: refused(lambda: ControlLoop(session, Robot(session.meta.control_period), rate_hz=1e-6,
                                               realtime=True), "rate_hz"))

    def huge_ctrl():
        xml = work / "p5-huge.xml"
        xml.write_text(SLIDER_X.replace('gear="1"/>', 'gear="1" ctrlrange="-1e30 1e30" ctrllimited="true"/>'))
        return refused(lambda: MJCFEnv(xml, reward=lambda m, d: 0.0, max_env_steps=40), "ctrlrange")
    record("probe 2026-11-26 (5th)", "MJCF ctrlrange ±1e30 (MuJoCo zeroes such controls)", huge_ctrl)

    def full_disk_video():
        out = work / "p5-cut.mp4"
        r = subprocess.run(["prlimit", "--fsize=20000", sys.executable, "-m", "robot_wm.cli", "dream", str(base),
                            "--step", "2", "--horizon", "20", "--out", str(out)], capture_output=True, text=True,
                           timeout=300, check=False, cwd=ROOT)
        return r.returncode != 0 and not out.exists(), tail(r.stderr, 90)
    record("probe 2026-11-26 (5th)", "dream on a full disk (said wrote, left a cut video)", full_disk_video)


def probe6_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects of the sixth hostile probe (2026-11-26, 305 cases), as cases of the report."""
    import json

    import numpy as np

    def untouched(run: Path, args: list[str], needle: str):
        before = tf.snapshot(run)
        rc, out = cli(*[a.format(run=run, work=work) for a in args])
        return rc in (1, 2) and needle in out and tf.snapshot(run) == before, tail(out, 90)

    run = copy_run(base, work / "p6-run")
    for name, args, needle in (
            ("dream --rrd RUN/metrics.jsonl (replaced the run's log)",
             ["dream", "{run}", "--horizon", "3", "--rrd", "{run}/metrics.jsonl"], "ending in .rrd"),
            ("dream --rrd RUN/checkpoints/latest.json", ["dream", "{run}", "--horizon", "3", "--rrd",
                                                         "{run}/checkpoints/latest.json"], "ending in .rrd"),
            ("drive --rrd RUN/summary.json", ["drive", "{run}", "--max-steps", "2", "--rrd", "{run}/summary.json"],
             "ending in .rrd"),
            ("eval --rerun save rerun.path=RUN/config.toml", ["eval", "{run}", "--episodes", "1", "--rerun", "save",
                                                              "rerun.path={run}/config.toml"], "rerun.path"),
            ("value.updates_per_step=1e9 (a hang of 25e9 updates)", ["train", "{run}", "value.updates_per_step=1e9"],
             "value.updates_per_step"),
            ("export planner.horizon=100000 (a 40 GB noise filter)",
             ["export", "{run}", "--out", "{work}/p6-h.onnx", "planner.horizon=100000"], "planner.horizon")):
        record("probe 2026-11-26 (6th)", name, lambda a=args, n=needle: untouched(run, a, n))

    def saved_path():
        victim = work / "p6-victim.txt"
        victim.write_text("precious")
        launch = work / "p6-victim.toml"
        launch.write_text(f'[rerun]\nmode = "save"\npath = "{victim}"\n')
        rc, out = cli("run", str(launch), f"run_dir={work / 'p6-lv'}", "env_steps=400", "--no-progress")
        return rc == 2 and "rerun.path" in out and victim.read_text() == "precious", tail(out, 90)
    record("probe 2026-11-26 (6th)", "launch file rerun.path = a user's file (every later eval overwrote it)",
           saved_path)

    def diverged():
        from robot_wm.config import ModelConfig
        from robot_wm.model.checkpoint import TrainingDivergedError, save_checkpoint
        from robot_wm.train import new_model

        model = new_model(5, 1, [-1.0], [1.0], ModelConfig(hidden=8, layers=1))
        with torch.no_grad():
            next(model.parameters())[0].fill_(float("nan"))
        (work / "p6-nan").mkdir()
        try:
            save_checkpoint(model, work / "p6-nan" / "model_r0000", [0, 1])
        except TrainingDivergedError as e:
            return not list((work / "p6-nan").iterdir()), str(e)[:90]
        return False, "a NaN checkpoint was written"
    record("probe 2026-11-26 (6th)", "model.lr=1e308: NaN weights saved, run reported complete", diverged)

    def edited(i: int, change):
        r = copy_run(base, work / f"p6-ep{i}")
        path = r / "episodes" / "episode_000001.npz"
        z = dict(np.load(path))
        change(z)
        np.savez(path, **z)
        return untouched(r, ["train", "{run}", "model.max_epochs=1", "--no-progress"], "episode_000001.npz")

    def meta(**kv):
        def change(z):
            m = json.loads(str(z["meta"]))
            m.update(kv)
            z["meta"] = np.array(json.dumps(m))
        return change
    for i, (name, change) in enumerate((
            ("train on an episode of another task (same sizes)", meta(task="cartpole-balance")),
            ("train on an episode at another action repeat", meta(action_repeat=2)),
            ("train on an episode whose actions are x1e6", lambda z: z.update(action=z["action"] * 1e6)))):
        record("probe 2026-11-26 (6th)", name, lambda i=i, c=change: edited(i, c))


def probe7_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects of the seventh hostile probe (2026-11-26, 91 cases), as cases of the report."""

    run = copy_run(base, work / "p7-run")
    (work / "p7-cfg.rrd").symlink_to(run / "config.toml")
    (work / "p7-metrics.rrd").symlink_to(run / "metrics.jsonl")
    for name, args, needle in (
            ("eval --rerun save rerun.path=LINK.rrd to RUN/config.toml",
             ["eval", str(run), "--episodes", "1", "--rerun", "save", f"rerun.path={work / 'p7-cfg.rrd'}"],
             "symbolic link"),
            ("dream --rrd LINK.rrd to RUN/metrics.jsonl",
             ["dream", str(run), "--horizon", "3", "--rrd", str(work / "p7-metrics.rrd")], "symbolic link"),
            ("planner.uncertainty_weight=1e308 (every step invalid, exit 0)",
             ["eval", str(run), "--episodes", "1", "planner.uncertainty_weight=1e308"], "uncertainty_weight"),
            ("run_dir={seed:01000000000d} (a 1 GB name)",
             ["run", f"run_dir={work}/{{seed:01000000000d}}", "env_steps=400"], "width or precision")):
        record("probe 2026-11-26 (7th)", name, lambda a=args, n=needle: untouched(run, a, n))

    def dreams_link():
        r = copy_run(base, work / "p7-dl")
        (work / "p7-outside").mkdir()
        (r / "dreams").symlink_to(work / "p7-outside")
        rc, out = cli("dream", str(r), "--horizon", "3")
        return rc == 2 and not list((work / "p7-outside").iterdir()), tail(out, 90)
    record("probe 2026-11-26 (7th)", "dream with RUN/dreams linked out of the run", dreams_link)

    def no_value():
        from robot_wm.cli import _session

        with _session(str(run), ["value.enabled=false"], False, lock=False) as s:
            s.latest_model()
            return s.value is None, "planned without the value" if s.value is None else "the value was used"
    record("probe 2026-11-26 (7th)", "eval value.enabled=false (planned with the value)", no_value)

    def unknown_reward():
        rec = work / "p7-rec"
        cli("deploy", str(planner), "--episodes", "1", "--record", str(rec), "--threads", "1")
        edit_recording(rec, lambda z, m: (m.update(reward_known=False), z.update(reward=np.zeros_like(z["reward"]))))
        return untouched(copy_run(base, work / "p7-ft"), ["finetune", str(work / "p7-ft"), "--data", str(rec),
                                                           "model.max_epochs=1", "--no-progress"], "has no known reward")
    record("probe 2026-11-26 (7th)", "finetune on recordings whose reward is unknown (learned zeros)", unknown_reward)

    record("probe 2026-11-26 (7th)", "sweep grid [1, 1.0] (the same run twice)",
           lambda: same_run_twice(work / "p7-dup.toml", '"planner.temperature" = [1, 1.0]'))

    def hash_removed():
        bad = tf.damage_onnx(planner, work / "p7-nohash.onnx", "hash-removed")
        rc, out = cli("deploy", str(bad), "--episodes", "1")
        return rc != 0 and "metadata_sha256" in out, tail(out, 90)
    record("probe 2026-11-26 (7th)", "planner metadata hash deleted, period and repeat edited", hash_removed)


def probe8_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects (and the ugly cases that could lose data) of the eighth hostile probe (2026-11-26)."""

    from robot_wm.sweep import spec
    from robot_wm.sweep.ray_runner import run_sweep

    cat = "probe 2026-11-26 (8th)"

    rec = work / "p8-rec"
    cli("deploy", str(planner), "--episodes", "1", "--record", str(rec), "--threads", "1")

    def edited_recording(name: str, edit) -> Path:
        shutil.copytree(rec, work / name)
        return edit_recording(work / name, edit)

    def reward_key_missing():
        data = edited_recording("p8-rk", lambda z, m: (m.pop("reward_known"), z.update(reward=np.zeros_like(z["reward"]))))
        return untouched(copy_run(base, work / "p8-ft1"), ["finetune", str(work / "p8-ft1"), "--data", str(data),
                                                           "model.max_epochs=1", "--no-progress"], "has no known reward")
    record(cat, "finetune on recordings without reward_known (learned zeros)", reward_key_missing)

    def other_units():
        data = edited_recording("p8-mm", lambda z, m: z.update(obs=z["obs"] * 1000))
        return untouched(copy_run(base, work / "p8-ft2"), ["finetune", str(work / "p8-ft2"), "--data", str(data),
                                                           "model.max_epochs=1", "--no-progress"], "far outside")
    record(cat, "finetune on observations logged in other units (x1000)", other_units)

    def lost_log():
        run = copy_run(base, work / "p8-log")
        (run / "metrics.jsonl").unlink()
        before = {p.name: p.read_bytes() for p in (run / "checkpoints").glob("model_r*")}
        rc, out = cli("train", str(run), "--no-progress", "model.max_epochs=1")
        kept = all((run / "checkpoints" / n).read_bytes() == b for n, b in before.items())
        # refused since probe 29 (named as an emptied or removed log since probe 40)
        return rc == 2 and ("have no record in" in out or "holds no record of the" in out) and kept, tail(out, 90)
    record(cat, "train with metrics.jsonl deleted (overwrote model_r0000)", lost_log)

    def deep_meta():
        run = copy_run(base, work / "p8-deep")
        path = run / "episodes" / "episode_000000.npz"
        z = dict(np.load(path))
        z["meta"] = np.array("[" * 200_000 + "]" * 200_000)
        np.savez(path, **z)
        return untouched(run, ["train", str(run), "--no-progress"], "nested deeper than robot-wm reads")
    record(cat, "episode meta nested 200,000 deep (RecursionError)", deep_meta)

    def resume_below():
        run = copy_run(base, work / "p8-below")
        return untouched(run, ["run", f"run_dir={run}", "env_steps=100", "--resume", "--no-progress"],
                         "collected steps are not taken back")
    record(cat, "run --resume env_steps below the steps collected", resume_below)

    record(cat, "sweep grid [0.0, -0.0] (the same run twice)",
           lambda: same_run_twice(work / "p8-zero.toml", '"planner.uncertainty_weight" = [0.0, -0.0]'))

    def users_folder():
        path, mine = work / "p8-s.toml", work / "p8-mine"
        path.write_text('tasks = ["cartpole-swingup"]\nseeds = [1]\n')
        mine.mkdir()
        (mine / "results.csv").write_text("x,y\n1,2\n")
        try:
            run_sweep(spec.load(path), mine, cpus=1, out=lambda s: None)
        except ValueError as e:
            return (mine / "results.csv").read_text() == "x,y\n1,2\n" and "not a sweep's" in str(e), str(e)[-90:]
        return False, "the sweep ran in a user's folder"
    record(cat, "sweep --storage a user's folder with its own results.csv (replaced)", users_folder)

    def what_if_goal():
        from robot_wm.run_dir import RunDir
        from robot_wm.runner import Session
        from robot_wm.whatif import what_if

        with Session.open(RunDir(base).load_config(), RunDir(base), progress=False, lock=False) as s:
            model = s.latest_model()
            try:
                what_if(model, np.zeros(model.spec.obs_dim), np.zeros((1, 3, model.spec.act_dim)),
                        goal=(np.zeros(model.spec.obs_dim + 2), np.ones(model.spec.obs_dim + 2)))
            except ValueError as e:
                return "goal.state has" in str(e), str(e)[:90]
        return False, "accepted"
    record(cat, "what_if with a goal of the wrong size (torch traceback)", what_if_goal)

    def config_bounds():
        from robot_wm import config as cfgmod

        named = []
        for o in ("model.weight_decay=1e308", "value.entropy_coef=1e308", "env.randomize.obs_noise=1e30",
                  "env.randomize.mass=[1e-300,1e-300]"):
            try:
                cfgmod.apply_overrides(cfgmod.RunConfig(), [o])
            except cfgmod.ConfigError as e:
                named.append(o.split("=")[0] in str(e))
        return len(named) == 4 and all(named), f"{sum(named)} of 4 named"
    record(cat, "weight_decay / entropy_coef / obs_noise / mass 1e-300 bounds", config_bounds)

    def summary_damaged():
        from conftest import tiny_run

        run = work / "p8-summary"
        with contextlib.redirect_stdout(io.StringIO()):
            tiny_run(run)
        (run / "summary.json").write_text('{"eval_return_mean": 5}')
        rc, out = cli("run", f"run_dir={run}", "--resume", "--no-progress")
        return rc == 2 and "summary.json" in out and "env_steps" in out, tail(out, 90)
    record(cat, "run --resume of a complete run whose summary.json was edited (KeyError)", summary_damaged)


def probe9_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects of the tenth hostile probe (2026-11-26; the ninth category of probe cases)."""
    import json
    import signal
    import subprocess
    import sys

    cat = "probe 2026-11-26 (9th)"

    rec = work / "p9-rec"
    cli("deploy", str(planner), "--episodes", "1", "--record", str(rec), "--threads", "1")

    def checkpoint_json_edited():  # one value changed, every hash of the weights intact
        run = edit_checkpoint_json(copy_run(base, work / "p9-ck"),
                                   lambda meta: meta["value_spec"].update(value_scale=meta["value_spec"]["value_scale"] * 6))
        return untouched(run, ["whatif", str(run), "--episode", "0", "--step", "2"], "changed after it was written")
    record(cat, "checkpoint JSON with one value changed (value_scale x6 loaded silently)", checkpoint_json_edited)

    def robot_folder_edited():
        run = copy_run(base, work / "p9-rb")
        rc, out = cli("finetune", str(run), "--data", str(rec), "model.max_epochs=1", "--no-progress")
        if rc != 0:
            return False, tail(out, 90)
        edit_recording(run / "robot", lambda z, m: z.update(action=z["action"] * 1e6))
        return untouched(run, ["finetune", str(run), "--data", str(rec), "model.max_epochs=1", "--no-progress"],
                         "the run's robot data")
    record(cat, "finetune with an episode in RUN/robot edited (actions x1e6, trained on)", robot_folder_edited)

    def recorded_rewards_in_other_units():
        data = work / "p9-paid"
        shutil.copytree(rec, data)
        edit_recording(data, lambda z, m: z.update(reward=z["reward"] * 1e6 + 1e6))
        run = copy_run(base, work / "p9-ft")
        return untouched(run, ["finetune", str(run), "--data", str(data), "model.max_epochs=1", "--no-progress"],
                         "in other units")
    record(cat, "finetune on rewards logged in other units (x1e6)", recorded_rewards_in_other_units)

    def sim_task_label():
        out_dir = work / "p9-bal"
        rc, out = cli("deploy", str(planner), "--episodes", "1", "--record", str(out_dir), "--threads", "1",
                      "--sim", "task=cartpole-balance", "max_env_steps=80")
        meta = json.loads(str(np.load(next(out_dir.glob("episode_*.npz")))["meta"])) if rc == 0 else {}
        return rc == 0 and meta.get("task") == "cartpole-balance", f"recorded task {meta.get('task')!r}"
    record(cat, "deploy --sim task=cartpole-balance --record (labelled swingup)", sim_task_label)

    def train_without_value():
        run = copy_run(base, work / "p9-ve")
        return untouched(run, ["train", str(run), "value.enabled=false", "--no-progress"], "value.enabled")
    record(cat, "train value.enabled=false one-off (the next round lost the value)", train_without_value)

    def hangup():
        out_dir = work / "p9-hup"
        proc = subprocess.Popen([sys.executable, "-m", "robot_wm.cli", "deploy", str(planner), "--episodes", "50",
                                 "--realtime", "--record", str(out_dir)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
        end = time.monotonic() + 120
        while proc.poll() is None and not (out_dir / "episode_000000.npz").exists() and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(1.0)
        proc.send_signal(signal.SIGHUP)
        out = proc.communicate(timeout=60)[0]
        kept = (out_dir / "episode_000001.npz").exists()
        return proc.returncode == 129 and kept, f"exit {proc.returncode}, the cut episode kept: {kept}"
    record(cat, "SIGHUP during deploy --realtime --record (killed, episode lost)", hangup)

    def big_video():
        run = copy_run(base, work / "p9-vid")
        out = work / "p9-big.mp4"
        r = subprocess.run(["prlimit", "--as=6000000000", sys.executable, "-m", "robot_wm.cli", "dream", str(run),
                            "--step", "1", "--horizon", "23", "--width", "4096", "--height", "4096", "--out", str(out)],
                           capture_output=True, text=True, timeout=300, check=False)
        return r.returncode == 2 and "needs about" in r.stderr and not out.exists(), tail(r.stderr, 90)
    record(cat, "dream at 4096 x 4096 under a 6 GB limit (ArrayMemoryError traceback)", big_video)


def probe10_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects of the eleventh hostile probe (2026-11-26; the tenth category of probe cases)."""
    cat = "probe 2026-11-26 (10th)"
    rec = work / "p10-rec"
    cli("deploy", str(planner), "--episodes", "1", "--record", str(rec), "--threads", "1")

    def checkpoint_relabelled():
        def relabel(meta):
            meta["format"] = "robot-wm/world-model/2"  # the format before the hash, the hash kept
            meta["value_spec"]["value_scale"] *= 6000
        run = edit_checkpoint_json(copy_run(base, work / "p10-ck"), relabel)
        return untouched(run, ["whatif", str(run), "--episode", "0", "--step", "2"], "changed after it was written")
    record(cat, "checkpoint relabelled format 2 with value_scale x6000 (loaded unchecked)", checkpoint_relabelled)

    def negated_rewards():
        data = work / "p10-neg"
        shutil.copytree(rec, data)
        edit_recording(data, lambda z, m: z.update(reward=-z["reward"] - 0.5))
        run = copy_run(base, work / "p10-ft")
        return untouched(run, ["finetune", str(run), "--data", str(data), "model.max_epochs=1", "--no-progress"],
                         "rewards negated")
    record(cat, "finetune on recorded rewards negated (trained on)", negated_rewards)

    def own_recording(name):
        from robot_wm.viz.logger import open_stream

        run = copy_run(base, work / name)
        rrd = run / "rerun" / "earlier.rrd"
        rec_stream = open_stream("save", path=rrd)
        rec_stream.flush()
        rec_stream.disconnect()
        return run, rrd

    def eval_over_own_recording():
        run, rrd = own_recording("p10-rr1")
        before = rrd.read_bytes()
        rc, out = cli("eval", str(run), "--episodes", "1", "--no-progress", "--rerun", "save", f"rerun.path={rrd}")
        return rc == 2 and "own recordings" in out and rrd.read_bytes() == before, tail(out, 90)
    record(cat, "eval rerun.path=RUN/rerun/<its recording> (replaced it)", eval_over_own_recording)

    def new_run_over_another_runs_recording():
        run, rrd = own_recording("p10-rr2")
        before = rrd.read_bytes()
        rc, out = cli("run", f"run_dir={work / 'p10-new'}", *tf.TINY, "rerun.mode=save", f"rerun.path={rrd}",
                      "--no-progress")
        return rc == 2 and "own recordings" in out and rrd.read_bytes() == before, tail(out, 90)
    record(cat, "run run_dir=NEW rerun.path=OTHER/rerun/<its recording> (replaced, no lock)",
           new_run_over_another_runs_recording)

    def hard_linked_recording():
        run, rrd = own_recording("p10-rr3")
        (work / "p10-mine.rrd").hardlink_to(rrd)
        before = rrd.read_bytes()
        rc, out = cli("drive", str(run), "--max-steps", "1", "--rrd", str(work / "p10-mine.rrd"))
        return rc == 2 and "hard links" in out and rrd.read_bytes() == before, tail(out, 90)
    record(cat, "drive --rrd a hard link to a run's recording (overwritten in place)", hard_linked_recording)

    def created_meanwhile():
        from robot_wm.config import RunConfig, apply_overrides
        from robot_wm.run_dir import RunDir
        from robot_wm.runner import Session

        root = work / "p10-race"
        cfg = lambda repeat: apply_overrides(RunConfig(), [*tf.TINY, f"run_dir={root}", f"env.action_repeat={repeat}"])  # noqa: E731

        class CreatedMeanwhile(RunDir):
            def lock(self, command=None):
                with Session.open(cfg(8), RunDir(self.root), progress=False):
                    pass
                return super().lock(command)
        try:
            Session.open(cfg(4), CreatedMeanwhile(root), progress=False).close()
        except ValueError as e:
            return "meanwhile with other settings" in str(e), tail(str(e), 90)
        return False, "opened a run created meanwhile at another action repeat"
    record(cat, "two collect NEWDIR at action repeats 8 and 4 (one run, both repeats)", created_meanwhile)

    def helper_on_pythonpath():
        import importlib

        from sim.mjcf import _imports_sha256

        lib, robot = work / "p10-lib", work / "p10-robot"
        lib.mkdir()
        robot.mkdir()
        (robot / "p10_task.py").write_text("from p10_helper import SCALE\n\n\ndef reward(m, d):\n    return SCALE\n")
        (lib / "p10_helper.py").write_text("SCALE = 1.0\n")
        sys.path[:0] = [str(robot), str(lib)]
        try:
            fn = importlib.import_module("p10_task").reward
            before = _imports_sha256(fn)
            (lib / "p10_helper.py").write_text("SCALE = -1000.0\n")
            after = _imports_sha256(fn)
        finally:
            sys.path[:2] = []
        return before is not None and before != after, f"fingerprint {before and before[:8]} -> {after and after[:8]}"
    record(cat, "a reward helper on PYTHONPATH changed (fingerprint null, episodes appended)", helper_on_pythonpath)

    def config_deleted():
        run = copy_run(base, work / "p10-cfg")
        (run / "config.toml").unlink()
        return untouched(run, ["run", f"run_dir={run}", "--resume", "--no-progress"], "lost its config.toml")
    record(cat, "run --resume on a run whose config.toml was deleted (defaults written in)", config_deleted)

    def record_unset():
        rc, out = cli("deploy", str(planner), "--episodes", "1", "--record", "")
        return rc == 2 and "an empty path" in out, tail(out, 90)
    record(cat, "deploy --record '' (ran, recorded nothing, exit 0)", record_unset)


def probe11_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects (and the ugly cases fixed) of the twelfth hostile probe (2026-11-26; the eleventh category)."""
    cat = "probe 2026-11-26 (11th)"

    def edited_episode(name, edit, args, needle):
        run = copy_run(base, work / name)
        edit_recording(run / "episodes", edit)
        return untouched(run, [args[0], str(run) if args[0] != "run" else f"run_dir={run}", *args[1:]], needle)

    for name, value, args in [("p11-neg", -100000, ["run", "--resume", "--no-progress"]),
                              ("p11-big", 10**9, ["run", "--resume", "--no-progress"]),
                              ("p11-null", None, ["train", "model.max_epochs=1", "--no-progress"])]:
        record(cat, f"episode meta env_steps={value!r} (collected past the budget / ended the run / traceback)",
               lambda n=name, v=value, a=args: edited_episode(n, lambda z, m: m.update(env_steps=v), a,
                                                              f"says env_steps={v!r}"))
    for key, needle in [("task", "is from task None"), ("action_repeat", "at action repeat None")]:
        record(cat, f"episode meta without {key!r} (trained on without the check)",
               lambda k=key, s=needle: edited_episode(f"p11-no-{k}", lambda z, m: m.pop(k), ["train", "--no-progress"], s))
    record(cat, "episode rewards of 3e38 (blamed on the learning rate)",
           lambda: edited_episode("p11-rew", lambda z, m: z.update(reward=z["reward"] * 0 + np.float32(3e38)),
                                  ["train", "--no-progress"], "but this suite task pays 0 to 1"))
    record(cat, "complex observations in an episode (imaginary parts dropped)",
           lambda: edited_episode("p11-cplx", lambda z, m: z.update(obs=z["obs"].astype(np.complex64) + 1j),
                                  ["train", "--no-progress"], "expected real numbers"))

    def relabelled_without_hash():
        def relabel(meta):
            meta["format"] = "robot-wm/world-model/2"
            del meta["config_sha256"]
            meta["elites"] = meta["elites"][:1]
        run = edit_checkpoint_json(copy_run(base, work / "p11-ck"), relabel)
        return untouched(run, ["export", str(run), "--out", str(work / "p11.onnx")], "relabelled or edited")
    record(cat, "checkpoint relabelled format 2 with its hash deleted and elites edited (exported)",
           relabelled_without_hash)

    def impossible_round():
        import json

        run = copy_run(base, work / "p11-round")
        line = (run / "metrics.jsonl").read_text().splitlines()[-1]
        with open(run / "metrics.jsonl", "a") as f:
            f.write(json.dumps(dict(json.loads(line), kind="train", round=10**20)) + "\n")
        return untouched(run, ["train", str(run), "--no-progress"], "past the 1000000 a run can hold")
    record(cat, "a train record with round 10**20 (an overflow traceback)", impossible_round)

    def interrupted_loop():
        from robot_wm.runtime import ControlLoop, PlannerSession

        class Robot:
            control_period, state_dim = 0.08, 5
            action_low, action_high = np.array([-1.0], np.float32), np.array([1.0], np.float32)

            def __init__(self):
                self.sent = []

            def read_state(self):
                if len(self.sent) == 5:
                    raise KeyboardInterrupt
                return np.array([0, 1, 0, 0.5, 0.3], np.float32)

            def send_action(self, a):
                self.sent.append(float(np.asarray(a)[0]))

        robot = Robot()
        loop = ControlLoop(PlannerSession(planner, threads=1), robot, realtime=False)
        try:
            loop.run(20)
        except KeyboardInterrupt:
            pass
        return robot.sent[-1] == 0.0 and loop.stopped is not None, f"last command {robot.sent[-1]}, {loop.stopped}"
    record(cat, "ControlLoop interrupted by Ctrl-C (the last command stayed on the motors)", interrupted_loop)

    def spawn_without_display():
        env = {k: os.environ.pop(k) for k in ("DISPLAY", "WAYLAND_DISPLAY") if k in os.environ}
        try:
            run = copy_run(base, work / "p11-spawn")
            rc, out = cli("eval", str(run), "--episodes", "1", "--no-progress", "--rerun", "spawn")
        finally:
            os.environ.update(env)
        return rc == 2 and "needs a display" in out, tail(out, 90)
    record(cat, "--rerun spawn without a display (a viewer on 0.0.0.0, then a 60 s flush timeout)", spawn_without_display)

    def unbindable_address():
        run = copy_run(base, work / "p11-addr")
        rc, out = cli("eval", str(run), "--episodes", "1", "--no-progress", "--rerun", "serve",
                      "--rerun-address", "0:9877")
        return rc == 2 and "not the name '0'" in out and "warning" not in out, tail(out, 90)
    record(cat, "--rerun-address 0:9877 (warned it would listen there, then refused)", unbindable_address)


def probe12_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects (and the ugly cases fixed) of the thirteenth hostile probe (2026-11-27; the twelfth category)."""
    cat = "probe 2026-11-27 (12th)"

    def diverged_train():
        run = copy_run(base, work / "p12-lr")
        return untouched(run, ["train", str(run), "--no-progress", "model.lr=10", "model.max_epochs=20"],
                         "training diverged: validation error")
    record(cat, "train model.lr=10 (a round of 6e19 error written, exit 0)", diverged_train)

    def linked_episode():
        run = copy_run(base, work / "p12-link")
        episodes = run / "episodes"
        n = len(list(episodes.glob("episode_*.npz")))
        (episodes / f"episode_{n:06d}.npz").symlink_to(episodes / "episode_000000.npz")
        return untouched(run, ["train", str(run), "--no-progress"], "is the same file as episode_000000.npz")
    record(cat, "an episode linked under a second name (trained on twice)", linked_episode)

    for address in ("127.0.0.1:99999", "127.0.0.1:0"):
        record(cat, f"--rerun-address {address} (an OverflowError / an unusable address)",
               lambda a=address: untouched(r := copy_run(base, work / f"p12-port{a[-1]}"),
                                           ["eval", str(r), "--episodes", "1", "--no-progress", "--rerun", "serve",
                                            "--rerun-address", a], "must be from 1 to 65535"))
    record(cat, "train env.randomize.mass=[2,2] (recorded, never used)",
           lambda: untouched(r := copy_run(base, work / "p12-rand"), ["train", str(r), "--no-progress",
                                                                       "env.randomize.mass=[2,2]"], "collects none"))

    def long_timestep():
        from sim.mjcf import MJCFEnv

        xml = work / "p12-dt.xml"
        xml.write_text(SLIDER_X.replace('timestep="0.01"', 'timestep="1000"'))
        try:
            MJCFEnv(xml, reward=lambda m, d: 0.0, max_env_steps=40000, action_repeat=8)
        except ValueError as e:
            return "expected at most 60 s" in str(e), str(e)[:90]
        return False, "accepted (deploy then refused its own export)"
    record(cat, "an MJCF timestep of 1000 s (trained and exported; deploy refused its own file)", long_timestep)
