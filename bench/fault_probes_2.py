"""The fault report's catalogue, continued (``fault_probes.py`` holds probes 1-13): one function per hostile probe,
each case a reproduction of what that probe found, checked as the report checks every case."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from fault_kit import cli, copy_run, record, refused, tail, tf, untouched


def _robot_wm(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robot_wm.cli", *args], input=stdin, capture_output=True, text=True,
                          timeout=300, check=False, env={**os.environ, "MUJOCO_GL": "egl", **(env or {})})


def _edit_npz(path: Path, edit) -> None:
    """An episode file edited by hand, as a user would with numpy: ``edit(arrays)`` returns the arrays it changes."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(edit(arrays))
    np.savez_compressed(path, **arrays)


def _free_display() -> int:
    """An X display number nothing answers on (no socket file, no abstract socket): a viewer there fails at once."""
    from robot_wm.viz.cli import display_problem

    for n in range(90, 200):
        if display_problem(f":{n}") is not None:
            return n
    raise RuntimeError("every display :90-:199 answers")


def probe13_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects and ugly cases of the fourteenth hostile probe (2026-11-27; the thirteenth category), and the two
    left from the twelfth (D7, U10)."""
    cat = "probe 2026-11-27 (13th)"
    run = copy_run(base, work / "p13")

    record(cat, "eval planner.noise_beta=1000 (a NaN noise filter: every plan fell back, exit 0)",
           lambda: untouched(run, ["eval", str(run), "--episodes", "1", "--no-progress", "planner.noise_beta=1000"],
                             "planner.noise_beta"))
    record(cat, "run env.max_env_steps=1e9 on an MJCF robot (an episode that never ended, memory without bound)",
           lambda: untouched(run, ["eval", str(run), "--episodes", "1", "env.max_env_steps=1000000000"],
                             "env.max_env_steps"))
    record(cat, "train model.val_fraction=0 (validated on the training data, silently)",
           lambda: untouched(run, ["train", str(run), "--no-progress", "model.val_fraction=0"], "model.val_fraction"))

    def endless_stdin_line():
        r = _robot_wm("drive", str(run), "--episode", "0", "--max-steps", "3", stdin="0" * (1 << 22))
        # since probe 18's fix the input ends there, as with q (the drive's --out written): bounded, and said
        return r.returncode == 0 and "a line longer than 1,048,576 characters: the input ends here" in r.stdout, \
            tail(r.stdout + r.stderr)
    record(cat, "drive < /dev/zero (one endless line: gigabytes, then a MemoryError)", endless_stdin_line)

    def huge_metrics():
        r = copy_run(base, work / "p13-metrics")
        with open(r / "metrics.jsonl", "r+b") as f:
            f.truncate((256 << 20) + 1)  # sparse: a 480 MB file of small records took 4.8 GB
        return untouched(r, ["eval", str(r), "--episodes", "1", "--no-progress"], "at most 256 MiB is read")
    record(cat, "a metrics.jsonl over 256 MiB (parsed whole: a MemoryError)", huge_metrics)

    def second_sweep():
        sweep_file, where = work / "p13-sweep.toml", work / "p13-sweep"
        sweep_file.write_text('tasks = ["cartpole-swingup"]\nseeds = [1]\n')
        holder = tf.hold_lock(where)  # another real process, as a running sweep holds it
        try:
            rc, out = cli("sweep", str(sweep_file), "--storage", str(where), "--cpus", "1")
        finally:
            holder.kill()
            holder.wait()
        return rc == 2 and f"is being written by PID {holder.pid}" in out, tail(out)
    record(cat, "a second sweep on one sweep directory (both failed a trial, both exit 0)", second_sweep)

    def too_many_cpus():
        (work / "p13-s2.toml").write_text('tasks = ["cartpole-swingup"]\nseeds = [1]\noverrides = ["threads=100"]\n')
        rc, out = cli("sweep", str(work / "p13-s2.toml"), "--storage", str(work / "p13-s2"), "--cpus", "100000")
        return rc == 2 and "CPUs for the embedded Ray; using" in out, tail(out)
    record(cat, "sweep --cpus 100000 on this machine (every trial started at once)", too_many_cpus)

    def deploy_threads():
        import logging

        from robot_wm.cpus import available_cpus

        seen = []
        handler = logging.Handler()
        handler.emit = lambda r: seen.append(r.getMessage())
        logging.getLogger("robot_wm.cpus").addHandler(handler)
        try:
            rc, out = cli("deploy", str(planner), "--episodes", "1", "--threads", "600")
        finally:
            logging.getLogger("robot_wm.cpus").removeHandler(handler)
        return rc == 0 and any(f"--threads=600: this machine has {available_cpus()}" in m for m in seen), tail(out)
    record(cat, "deploy --threads 600 (under a memory limit: hung, deaf to SIGTERM; now the CPUs, said so)",
           deploy_threads)

    def edited_episode():
        r = copy_run(base, work / "p13-edit")
        _edit_npz(r / "episodes" / "episode_000001.npz", lambda z: {"obs": z["obs"] * 1000})
        return untouched(r, ["train", str(r), "--no-progress"], "changed after it was stored")
    record(cat, "a training episode's observations x1000 after it was stored (trained on, exit 0: probe 12 D7)",
           edited_episode)

    def bad_seed():
        r = copy_run(base, work / "p13-seed")
        _edit_npz(r / "episodes" / "episode_000000.npz",
                  lambda z: {"meta": np.array(json.dumps({**json.loads(str(z["meta"])), "seed": "abc"}))})
        rc, out = cli("drive", str(r), "--episode", "0", "--actions", str(work / "none.txt"))
        return rc == 2 and "episode_000000.npz" in out and "meta seed" in out, tail(out)
    record(cat, "drive on an episode whose meta seed is 'abc' (an int() error naming nothing)", bad_seed)

    def string_action():
        from robot_wm.config import EnvConfig
        from sim.registry import make_env

        env = make_env(EnvConfig(task="cartpole-swingup", max_env_steps=40))
        env.reset(0)
        try:
            env.step(np.array(["0.5"]))
        except ValueError as e:
            return "holds <U3 values" in str(e), str(e)[:90]
        return False, "applied as 0.5"
    record(cat, "Env.step(np.array(['0.5'])) (applied as 0.5)", string_action)
    record(cat, "deploy --sim seed=3 ('unknown field env.seed')",
           lambda: (lambda rc_out: (rc_out[0] == 2 and "the episode seed is --seed" in rc_out[1], tail(rc_out[1])))(
               cli("deploy", str(planner), "--episodes", "1", "--sim", "seed=3")))

    def latin1_run_dir():
        name = os.fsdecode(b"p13-bad\xffname")
        rc, out = cli("run", f"run_dir={work / name}", "env_steps=100", "--no-progress")
        return rc == 2 and "not UTF-8 text" in out and not (work / name).exists(), tail(out)
    record(cat, "run run_dir=bad<0xff>name (an unnamed encode error, a half-made folder)", latin1_run_dir)

    def dead_display():
        free = _free_display()
        r = _robot_wm("eval", str(run), "--episodes", "1", "--no-progress", "--rerun", "spawn",
                      env={"DISPLAY": f":{free}"})
        return r.returncode == 2 and "no X server answers there" in r.stderr, tail(r.stderr)
    record(cat, "eval --rerun spawn, DISPLAY set, no X server (60 s, then a flush traceback)", dead_display)

    def view_with_display():
        import rerun as rr

        rrd = work / "p13-view.rrd"
        rec = rr.RecordingStream("robot-wm-fault-report")
        rec.save(rrd)
        rec.log("x", rr.Scalars(1.0))
        rec.flush()
        rec.disconnect()
        r = _robot_wm("view", str(rrd), env={"DISPLAY": f":{_free_display()}"})
        return r.returncode == 2 and "no X server answers there" in r.stderr and "TypeError" not in r.stderr, \
            tail(r.stderr or r.stdout)
    record(cat, "view with a display set, no X server (a TypeError every time; then the viewer's own death)",
           view_with_display)

    def huge_model_sigterm():
        bodies = "".join(f'<body pos="{i * 0.01} 0 0"><joint name="j{i}" type="hinge"/><geom size="0.01"/></body>'
                         for i in range(20_000))
        xml = work / "p13-huge.xml"
        xml.write_text(f'<mujoco><worldbody>{bodies}</worldbody><actuator><motor joint="j0"/></actuator></mujoco>')
        (work / "p13_task.py").write_text("print('imported', flush=True)\ndef reward(model, data):\n    return 0.0\n")
        proc = subprocess.Popen([sys.executable, "-m", "robot_wm.cli", "run", f"run_dir={work / 'p13-huge'}",
                                 "env.task=mjcf", f"env.mjcf={xml}", "env.reward=p13_task:reward", "--no-progress"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "MUJOCO_GL": "egl", "PYTHONPATH": str(work)})
        proc.stdout.readline()
        time.sleep(1.0)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=300)[0]
        took = time.monotonic() - t0
        return proc.returncode == 143 and took < 15, f"stopped in {took:.1f} s: {tail(out)}"
    record(cat, "SIGTERM while a 20,000-body MJCF compiles (80 s deaf to it: probe 12 U10)", huge_model_sigterm)


def probe14_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects and ugly cases of the fifteenth hostile probe (2026-11-27; the fourteenth category)."""
    cat = "probe 2026-11-27 (14th)"

    def two_threads():
        import threading

        from robot_wm.runtime.session import PlannerSession

        s = PlannerSession(planner, threads=1)
        plan, wrong = s.initial_plan(), [0]

        def worker(state, bad):
            for _ in range(100):
                wrong[0] += s.step(state, plan).valid == bad

        ts = [threading.Thread(target=worker, args=(np.full(s.meta.state_dim, np.nan, np.float32), True)),
              threading.Thread(target=worker, args=(np.zeros(s.meta.state_dim, np.float32), False))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return wrong[0] == 0, f"{wrong[0]} of 200 steps planned for the other thread's state"
    record(cat, "one PlannerSession stepped from two threads (a NaN state came back valid)", two_threads)

    def one_buffer():
        from conftest import record_one_buffer_robot

        ps = record_one_buffer_robot(work / "p14-rec", 4)[1]
        return len(np.unique(ps, axis=0)) == 5, f"{len(np.unique(ps, axis=0))} distinct physics states of 5"
    record(cat, "a driver refilling one physics-state buffer (every recorded row the last state)", one_buffer)

    def byte_copy():
        import shutil

        r = copy_run(base, work / "p14-copy")
        eps = r / "episodes"
        shutil.copyfile(eps / "episode_000000.npz", eps / f"episode_{len(list(eps.glob('episode_*.npz'))):06d}.npz")
        return untouched(r, ["train", str(r), "--no-progress"], "is a copy of episode_000000.npz")
    record(cat, "a byte copy of a training episode under the next name (trained on twice)", byte_copy)

    def header_bomb():
        from conftest import write_lying_header_episode

        r = copy_run(base, work / "p14-bomb")
        path = r / "episodes" / "episode_000000.npz"
        write_lying_header_episode(path, path)
        return untouched(r, ["eval", str(r), "--episodes", "1", "--no-progress"], "declares shape (10000000000,")
    record(cat, "an episode whose obs.npy header declares 186 GiB (a MemoryError traceback)", header_bomb)

    def long_name():
        out = work / ("a" * 245 + ".onnx")
        rc, text = cli("export", str(base), "--out", str(out))
        return rc == 0 and out.is_file(), tail(text)
    record(cat, "export --out a legal 250-byte name (refused as too long after the export)", long_name)

    def closed_pipe():
        p = subprocess.Popen([sys.executable, "-m", "robot_wm.cli", "deploy", str(planner), "--episodes", "2",
                              "--record", str(work / "p14-pipe"), "--threads", "1"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "MUJOCO_GL": "egl"})
        p.stdout.close()
        err = p.stderr.read()
        rc = p.wait(timeout=300)
        n = len(list((work / "p14-pipe").glob("episode_*.npz")))
        return rc == 0 and n == 2 and "standard output failed" in err, f"rc {rc}, {n} episodes: {tail(err)}"
    record(cat, "deploy --record D | head -1 (stopped after one episode: 'Broken pipe: a file')", closed_pipe)

    def closed_stdin():
        r = subprocess.run([sys.executable, "-m", "robot_wm.cli", "drive", str(base), "--episode", "0"],
                           capture_output=True, text=True, timeout=300, check=False, preexec_fn=lambda: os.close(0),
                           env={**os.environ, "MUJOCO_GL": "egl"})
        return r.returncode == 2 and "standard input is closed" in r.stderr, tail(r.stderr)
    record(cat, "drive <&- (an AttributeError traceback)", closed_stdin)

    def past_the_end():
        from robot_wm.config import EnvConfig
        from sim.registry import make_env

        env = make_env(EnvConfig(task="cartpole-swingup", max_env_steps=16))
        env.reset(0)
        env.step([0.0])
        env.step([0.0])
        return refused(lambda: env.step([0.0]), RuntimeError, "ended at its time limit",
                       "a third step of a 2-step episode was taken")
    record(cat, "Env.step past the episode's time limit (accepted silently)", past_the_end)

    def edited_size():
        r = copy_run(base, work / "p14-size")
        text = (r / "config.toml").read_text()
        hidden = text.split("\nhidden = ", 1)[1].split("\n", 1)[0]
        (r / "config.toml").write_text(text.replace(f"\nhidden = {hidden}\n", f"\nhidden = {int(hidden) * 2}\n", 1))
        return untouched(r, ["eval", str(r), "--episodes", "1", "--no-progress"], "edited by hand")
    record(cat, "model.hidden edited into config.toml (ignored by eval and train without a word)", edited_size)

    def absurd_action():
        from robot_wm.export.source import load_source
        from robot_wm.whatif import what_if

        src = load_source(base)
        try:
            what_if(src.model, np.zeros(src.model.spec.obs_dim), np.full((1, 3, src.model.spec.act_dim), 1e300))
        except ValueError as e:
            return "outside the bounds" in str(e), str(e)[:90]
        return False, "scored"
    record(cat, "what_if with actions of 1e300 (reported as NaN/Inf)", absurd_action)


def probe15_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects and ugly cases of the sixteenth hostile probe (2026-11-27; the fifteenth category)."""
    cat = "probe 2026-11-27 (15th)"

    def closed_stdout():
        r = subprocess.run([sys.executable, "-m", "robot_wm.cli", "whatif", str(base), "--episode", "0", "--step", "1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300, check=False,
                           preexec_fn=lambda: os.close(1), env={**os.environ, "MUJOCO_GL": "egl"})
        return r.returncode == 0 and "Traceback" not in r.stderr, tail(r.stderr) if r.stderr else f"exit {r.returncode}"
    record(cat, "whatif >&- (stdout closed: an AttributeError in every command)", closed_stdout)

    def loop_delay():
        from dataclasses import replace

        from robot_wm.runtime.loop import ControlLoop
        from robot_wm.runtime.session import PlannerSession

        class Wrapped:
            def __init__(self, inner):
                self.inner, self.meta = inner, replace(inner.meta, delay=99)

            def initial_plan(self):
                return self.inner.initial_plan()

            def step(self, state, prev):
                raise RuntimeError("lost")

        class Robot:
            state_dim, control_period = 5, 0.08
            action_low, action_high = np.array([-1.0], np.float32), np.array([1.0], np.float32)

        try:
            ControlLoop(Wrapped(PlannerSession(planner, threads=1)), Robot(), realtime=False)
        except ValueError as e:
            return "planner.meta.delay=99" in str(e), str(e)[:90]
        return False, "accepted: the first fallback indexes past the plan"
    record(cat, "ControlLoop with a planner whose delay (99) does not fit its plan (an IndexError)", loop_delay)

    def delay_on_run():
        rc, out = cli("run", f"run_dir={work / 'p15-run'}", "planner.delay=2", "env_steps=100", "--no-progress")
        return rc == 2 and "planner.delay=2 on `run`" in out and not (work / "p15-run").exists(), tail(out)
    record(cat, "run planner.delay=2 on the undelayed simulator (trained around a delay that is not there)",
           delay_on_run)
    def shift_twice():
        r = _robot_wm("eval", str(base), "--shift", "delay-1", "--shift", "nominal")
        return r.returncode == 2 and "given twice" in r.stderr, tail(r.stderr)
    record(cat, "eval --shift delay-1 --shift nominal (the first shift dropped without a word)", shift_twice)

    def too_big():
        from robot_wm.data.episode import MAX_EPISODE_BYTES, Episode

        rows = MAX_EPISODE_BYTES // 4000 + 10
        ep = Episode(np.zeros((rows + 1, 1000), np.float32), np.zeros((rows, 1), np.float32), np.zeros(rows),
                     np.zeros((rows + 1, 0)), {"seed": 1})
        try:
            ep.save(work / "p15-big.npz")
        except ValueError as e:
            return "not written" in str(e) and not (work / "p15-big.npz").exists(), str(e)[:90]
        return False, "written: 1 GiB uncompressed, refused by every reader"
    record(cat, "Episode.save of 1.1 GiB uncompressed (written, then refused by every reader)", too_big)

    def bare_member():
        from conftest import write_lying_header_episode

        r = copy_run(base, work / "p15-bare")
        path = r / "episodes" / "episode_000000.npz"
        write_lying_header_episode(path, path, "obs")
        return untouched(r, ["eval", str(r), "--episodes", "1", "--no-progress"], "declares shape (10000000000,")
    record(cat, "an episode member 'obs' without .npy declaring 186 GiB (the header check skipped it)", bare_member)

    def delayed_recording():
        rec = work / "p15-rec"
        rc, out = cli("deploy", str(planner), "--episodes", "1", "--shift", "delay-1", "--record", str(rec),
                      "--sim", "max_env_steps=80")
        if rc != 0:
            return False, tail(out)
        r = copy_run(base, work / "p15-ft")
        rc, out = cli("finetune", str(r), "--data", str(rec), "--no-progress")
        if rc != 0:
            return False, tail(out)
        from robot_wm.data.dataset import EpisodeDataset

        raw, held = EpisodeDataset(rec)[0], EpisodeDataset(r / "robot")[0]  # each state with the command that acted
        ok = held.meta.get("realigned_delay") == 1 and np.array_equal(held.action, raw.action[:-1]) \
            and np.array_equal(held.obs, raw.obs[1:])
        return ok, f"imported {len(held)} of {len(raw)} rows, realigned_delay={held.meta.get('realigned_delay')}"
    record(cat, "finetune on a recording of a delayed robot (states paired with commands that acted later: "
           "realigned since)", delayed_recording)

    def delay_mismatch():
        r = _robot_wm("deploy", str(planner), "--episodes", "1", "--shift", "delay-1", "--sim", "max_env_steps=80")
        return r.returncode == 0 and "the planner compensates a delay of 0" in r.stderr, tail(r.stderr)
    record(cat, "deploy a planner without delay on a robot with one (no word)", delay_mismatch)
