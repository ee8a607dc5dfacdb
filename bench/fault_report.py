"""Fault report: try a catalogue of faults and bad inputs and count how many were survived with
nothing lost.

    MUJOCO_GL=egl .venv/bin/python bench/fault_report.py [--no-kill] [--flips N]

Each fault is a small function returning (survived, note). "Survived" means: a clear error naming the
file or value (or, on the control path, a finite in-bounds fallback that is counted), and every file
that existed before the fault byte-identical after it (sha256). Kills are real SIGKILLs of a real
``robot-wm run`` followed by ``--resume``. The catalogue reuses the fault-injection helpers of
``tests/test_faults.py``. Prints "N tried, M survived" and a table (takes about 1-3 minutes).
The cases of the hostile probes' defects live in ``fault_probes.py``; what every catalogue shares (recording
a case, the in-process CLI, copying a run) in ``fault_kit.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from fault_kit import RESULTS, ROOT, cli, copy_run, record, tail, tf
from fault_probes import (
    api_inputs,
    probe3_defects,
    probe4_defects,
    probe5_defects,
    probe6_defects,
    probe7_defects,
    probe8_defects,
    probe9_defects,
    probe10_defects,
    probe11_defects,
    probe12_defects,
    probe_defects,
)
from fault_probes_2 import probe13_defects, probe14_defects, probe15_defects
from fault_probes_3 import (
    probe16_defects,
    probe17_defects,
    probe17_leftovers,
    probe18_defects,
    probe19_defects,
)
from fault_probes_4 import (
    probe20_leftovers,
    probe21_defects,
    probe22_defects,
    probe25_defects,
    session21_fixes,
)
from fault_probes_5 import (
    probe26_27_defects,
    probe26_27_leftovers,
    probe28_29_defects,
    probe30_leftovers,
    probe31_defects,
    probe32_defects,
)
from fault_probes_6 import probe33_defects, probe34_defects, probe35_defects, probe36_defects
from fault_probes_7 import probe36_leftovers, probe37_defects, probe38_defects, probe39_defects
from fault_probes_8 import probe39_leftovers, probe40_defects, probe41_defects


# --- categories ----------------------------------------------------------------------------------
def kills(work: Path) -> None:
    run = work / "killed-run"
    events: list[dict] = []
    try:
        res = tf.kill_resume_chain(run, report=events.append)
        chain_ok, chain_note = True, f"{res['kept']} complete episodes kept byte-identical; run completed"
    except AssertionError as e:
        chain_ok, chain_note = False, str(e)[:160]
    for ev in events:
        if ev["killed"]:
            record("SIGKILL + --resume", ev["point"], lambda ev=ev: (
                chain_ok, f"{ev['episodes']} episodes on disk, {len(ev['temp_files'])} temp files ignored; "
                          + chain_note))
        else:
            print(f"  (kill point '{ev['point']}' not reached: the run had finished)")
    if not chain_ok and not any(ev["killed"] for ev in events):
        record("SIGKILL + --resume", "run / resume chain", lambda: (False, chain_note))


def checkpoints(base: Path, work: Path) -> None:
    for how in tf.CHECKPOINT_DAMAGE:
        for consumer in ("whatif", "export"):
            def f(how=how, consumer=consumer):
                run = copy_run(base, work / f"ck-{how}-{consumer}")
                js = tf.damage_checkpoint(run, how)
                before = tf.snapshot(run)
                args = ["whatif", str(run)] if consumer == "whatif" else ["export", str(run), "--out",
                                                                          str(work / f"{how}.onnx")]
                rc, out = cli(*args)
                ok = rc == 2 and js.stem in out and tf.snapshot(run) == before and not (work / f"{how}.onnx").exists()
                return ok, out.strip().splitlines()[-1][:110] if out.strip() else "(no message)"
            record("checkpoint", f"{how} -> robot-wm {consumer}", f)


def episodes(base: Path, work: Path) -> None:
    for how in tf.EPISODE_DAMAGE:
        def f(how=how):
            run = copy_run(base, work / f"ep-{how}")
            tf.damage_episode(run / "episodes" / "episode_000001.npz", how)
            before = tf.snapshot(run)
            rc, out = cli("run", f"run_dir={run}", "--resume", "--no-progress")
            return rc == 2 and "episode_000001.npz" in out and tf.snapshot(run) == before, out.strip()[-110:]
        record("episode file", f"{how} -> robot-wm run --resume", f)


def flips(base: Path, work: Path, n: int) -> None:
    """n random single-byte corruptions each of an episode and of checkpoint weights/config."""
    from robot_wm.data.episode import Episode
    from robot_wm.model.checkpoint import load_checkpoint
    from robot_wm.run_dir import RunDir

    rng = np.random.default_rng(0)
    ep_path = base / "episodes" / "episode_000000.npz"
    ref, blob = Episode.load(ep_path), ep_path.read_bytes()
    js = RunDir(base).latest_checkpoint()
    ref_model, ref_meta = load_checkpoint(js)
    files = {"episode": blob, "weights": js.with_suffix(".safetensors").read_bytes(), "config": js.read_bytes()}
    d = work / "flips"
    d.mkdir()
    for kind, orig in files.items():
        survived, loaded_same = 0, 0
        for _ in range(n):
            i = int(rng.integers(len(orig)))
            bad = orig[:i] + bytes([orig[i] ^ int(rng.integers(1, 256))]) + orig[i + 1:]
            try:
                if kind == "episode":
                    (d / "episode_000000.npz").write_bytes(bad)
                    got = Episode.load(d / "episode_000000.npz")
                    same = all(np.array_equal(getattr(got, k), getattr(ref, k)) for k in
                               ("obs", "action", "reward", "physics_state")) and got.meta == ref.meta
                else:
                    (d / js.name).write_bytes(bad if kind == "config" else files["config"])
                    (d / js.with_suffix(".safetensors").name).write_bytes(bad if kind == "weights" else files["weights"])
                    got, meta = load_checkpoint(d / js.name)
                    same = meta == ref_meta and all(torch.equal(got.state_dict()[k], v)
                                                    for k, v in ref_model.state_dict().items())
                survived += same  # loaded: must be exactly the original (a flip in unused header bytes)
                loaded_same += same
            except ValueError as e:
                survived += ("episode_000000.npz" in str(e) or js.stem in str(e))
            except Exception as e:  # anything else is a crash, not a clear error
                print(f"  crash on {kind} flip at byte {i}: {type(e).__name__}: {e}")
        for k in range(n):
            RESULTS.append(("random byte flip", f"{kind} #{k}", k < survived, ""))
        print(f"  [{'ok' if survived == n else 'LOST'}] random byte flip: {kind}: {survived}/{n} survived "
              f"({loaded_same} flips hit unused header bytes and loaded identically)")


def onnx_files(planner: Path, work: Path) -> None:
    from robot_wm.runtime.session import ModelFileError, PlannerSession

    for how in tf.ONNX_DAMAGE:
        def f(how=how):
            d = work / f"onnx-{how}"
            d.mkdir()
            bad = tf.damage_onnx(planner, d / "bad.onnx", how)
            before = tf.snapshot(d)
            try:
                s = PlannerSession(bad, provider="cpu")
                s.meta.check_robot(5, [-1.0], [1.0])
                return False, "accepted"
            except ModelFileError as e:
                msg = str(e)
            return ("bad.onnx" in msg or "does not match the robot" in msg) and tf.snapshot(d) == before, msg[:110]
        record("ONNX file", how, f)


def launch_files(base: Path, work: Path) -> None:
    for name, (text, needle) in sorted(tf.LAUNCH_FAULTS.items()):
        def f(name=name, text=text, needle=needle):
            d = work / f"launch-{name}"
            d.mkdir()
            launch, run = d / "launch.toml", d / "new-run"
            launch.write_text(f'run_dir = "{run}"\n' + text)
            before = tf.snapshot(d)
            rc, out = cli("run", str(launch), "--no-progress")
            return rc == 2 and needle in out and tf.snapshot(d) == before and not run.exists(), out.strip()[-110:]
        record("launch file", name, f)
    record("launch file", "a directory", lambda: (lambda r: (r[0] == 2 and "is a directory" in r[1], r[1].strip()[-90:]))(
        cli("run", str(work), "--no-progress")))
    for bad in ("env.task=nope", "planner.horizon=-1", "planner.samples=0", "model.hiden=3"):
        def g(bad=bad):
            run = copy_run(base, work / f"ovr-{bad.replace('=', '_')}")
            before = tf.snapshot(run)
            rc, out = cli("run", f"run_dir={run}", bad, "--resume", "--no-progress")
            return rc == 2 and tf.snapshot(run) == before, out.strip()[-110:]
        record("override on --resume", bad, g)

    def h():
        run = copy_run(base, work / "no-resume")
        before = tf.snapshot(run)
        rc, out = cli("run", f"run_dir={run}", *tf.TINY, "--no-progress")
        return rc == 2 and "--resume" in out and tf.snapshot(run) == before, out.strip()[-110:]
    record("override on --resume", "existing run without --resume", h)


def control_path(base: Path, planner: Path) -> None:
    from robot_wm.runtime.loop import ControlLoop, LoopStats
    from robot_wm.runtime.session import PlannerSession

    def nan_mpc():
        p, _ = tf._learned_planner(base)
        env = tf._sim_env()
        obs, bad_actions = env.reset(0), 0
        for t in range(20):
            seen = obs.copy()
            if t in tf.NAN_AT:
                seen[t % len(seen)] = tf.NAN_AT[t]
            a = p.act(seen)
            bad_actions += not (np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1))
            obs = env.step(a).observation
        return bad_actions == 0 and p.fallbacks == len(tf.NAN_AT), f"{p.fallbacks} fallbacks counted"
    for t, v in tf.NAN_AT.items():
        RESULTS.append(("control path", f"MPC planner sensor {v} at tick {t}", None, ""))
    ok, note = nan_mpc()
    RESULTS[-len(tf.NAN_AT):] = [(c, n, ok, note) for c, n, _, _ in RESULTS[-len(tf.NAN_AT):]]
    print(f"  [{'ok' if ok else 'LOST'}] control path: MPC planner, {len(tf.NAN_AT)} NaN/Inf sensor readings: {note}")

    def nan_model():
        p, _ = tf._learned_planner(base)
        with torch.no_grad():
            p.step.score.net.weights[-1].fill_(float("nan"))
        acts = [p.act(np.array([0.1, 0.9, -0.2, 0.3, 0.0])) for _ in range(5)]
        return all(np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1) for a in acts) and p.fallbacks == 5, \
            f"{p.fallbacks}/5 fallbacks"
    record("control path", "MPC planner, world model outputs NaN", nan_model)
    for bad in (np.zeros(4), np.zeros((5, 1)), np.float32(1.0), np.array(["a"] * 5)):
        def wrong(bad=bad):
            p, _ = tf._learned_planner(base)
            try:
                p.act(bad)
            except ValueError as e:
                return "observation" in str(e), str(e)[:90]
            return False, "accepted"
        record("bad input", f"observation {getattr(bad, 'shape', ())} {getattr(bad, 'dtype', '')}", wrong)

    def nan_loop():
        robot = tf.FaultyRobot(tf._sim_env(), tf.NAN_AT)
        robot.inner.reset(0)
        loop = ControlLoop(PlannerSession(planner, provider="cpu", threads=1), robot, deadline_s=30.0, realtime=False)
        s = loop.run(20)
        fine = all(np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1) for a in robot.sent)
        return fine and s.invalid == s.fallbacks == len(tf.NAN_AT), f"invalid {s.invalid}, fallbacks {s.fallbacks}"
    ok, note = nan_loop()
    for t, v in tf.NAN_AT.items():
        RESULTS.append(("control path", f"ONNX runtime loop sensor {v} at tick {t}", ok, note))
    print(f"  [{'ok' if ok else 'LOST'}] control path: ONNX runtime loop, {len(tf.NAN_AT)} NaN/Inf readings: {note}")

    def overrun():
        robot = tf.FaultyRobot(tf._sim_env(), {})
        robot.inner.reset(0)
        loop = ControlLoop(tf.SlowPlanner(PlannerSession(planner, provider="cpu", threads=1), {2, 5}, 0.5), robot,
                           deadline_s=0.25, realtime=False)
        stats = LoopStats(loop.rate_hz, loop.deadline_s)
        for _ in range(8):
            loop.tick(stats)
        return stats.overruns == stats.fallbacks == 2, f"overruns {stats.overruns}, fallbacks {stats.fallbacks}"
    ok, note = overrun()
    for k in (2, 5):
        RESULTS.append(("control path", f"planner overruns its deadline at tick {k}", ok, note))
    print(f"  [{'ok' if ok else 'LOST'}] control path: 2 deadline overruns: {note}")


def divergence(base: Path, work: Path) -> None:
    from test_env_contract import _Saboteur

    from robot_wm.run_dir import RunDir
    from robot_wm.runner import Session

    for at in (0, 4):
        def f(at=at):
            run = RunDir(copy_run(base, work / f"div-{at}"))
            s = Session.open(run.load_config(), run, progress=False)
            before = tf.episode_hashes(run.root)
            rec = s.collect(_Saboteur(s.env, at=at), "train", len(s.run.dataset()))
            after = tf.episode_hashes(run.root)
            kept = {k: after.get(k) for k in before} == before
            data = s.run.dataset()
            stored_ok = len(after) == len(before) if at == 0 else (
                len(data[-1]) == at and np.all(np.abs(data[-1].obs) < 1e6))
            return rec["diverged"] and kept and stored_ok, f"{len(after) - len(before)} episode(s) stored, finite"
        record("diverging physics", f"blow-up at control step {at}", f)


def security() -> None:
    import re

    from robot_wm.viz.logger import parse_address

    record("security", "rerun serve default bind", lambda: (parse_address(None)[0] == "127.0.0.1",
                                                             f"{parse_address(None)}"))
    src = [p for d in ("robot_wm", "policies", "sim") for p in (ROOT / d).rglob("*.py")]
    bad = [str(p.relative_to(ROOT)) for p in src
           if re.search(r"(?<![.\w])(eval|exec)\(|import pickle|pickle\.loads?\(|torch\.load\(|allow_pickle=True",
                     p.read_text())]
    record("security", "no eval/exec/pickle/torch.load in the code", lambda: (not bad, ", ".join(bad) or "none"))


# --- issue 11: concurrent writers, one-off overrides, network settings, foreign data, the headline, run_dir


def run_lock(base: Path, work: Path, real_run: bool) -> None:
    """A second writer while another real process holds the run's lock; a killed holder; read-only commands."""
    import signal

    run = copy_run(base, work / "locked")
    holder = tf.hold_lock(run)
    try:
        for args in (["run", f"run_dir={run}", "--resume", "--no-progress"], ["collect", str(run), "--no-progress"],
                     ["train", str(run), "--no-progress"], ["eval", str(run), "--episodes", "1", "--no-progress"]):
            def f(args=args):
                before = tf.snapshot(run)
                rc, out = cli(*args)
                return rc == 2 and f"PID {holder.pid}" in out and tf.snapshot(run) == before, tail(out)
            record("run lock", f"second writer: robot-wm {args[0]}", f)

        def export():
            rc, out = cli("export", str(run), "--out", str(work / "locked.onnx"))
            return rc == 0 and (work / "locked.onnx").exists(), tail(out)
        record("run lock", "read-only export while the run is locked", export)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)

        def taken_over():
            n = len(tf.episode_hashes(run))
            rc, out = cli("collect", str(run), "--no-progress")
            return rc == 0 and len(tf.episode_hashes(run)) == n + 1, tail(out)
        record("run lock", "a SIGKILLed holder's lock is taken over", taken_over)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    if real_run:
        record("run lock", "paused `robot-wm run` + a --resume of the same run", lambda: _paused_run(work))


def _paused_run(work: Path):
    """The issue's reproduction: a real run paused (SIGSTOP) mid-training, a --resume on it (refused), the
    paused run SIGKILLed, then the --resume takes over and completes the run."""
    import signal
    import subprocess

    run = work / "paused-run"
    log = open(work / "paused-run.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "robot_wm.cli", "run", f"run_dir={run}", *tf.TINY, "env_steps=8000",
                             "--no-progress"], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "MUJOCO_GL": "egl"})
    try:
        end = time.monotonic() + 300
        while len(tf.episode_hashes(run)) < 2 and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGSTOP)
        before = tf.snapshot(run)
        r = subprocess.run([sys.executable, "-m", "robot_wm.cli", "run", f"run_dir={run}", "--resume", "--no-progress"],
                           capture_output=True, text=True, env={**os.environ, "MUJOCO_GL": "egl"}, timeout=300)
        refused = r.returncode == 2 and f"PID {proc.pid}" in r.stderr and tf.snapshot(run) == before
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    kept = tf.episode_hashes(run)
    rc, out = cli("run", f"run_dir={run}", "--resume", "env_steps=800", "--no-progress")
    after = tf.episode_hashes(run)
    done = rc == 0 and {k: after.get(k) for k in kept} == kept and tf.snapshot(run) != before
    return refused and done, f"refused while paused: {refused}; completed after the kill: {done}"


def overrides(base: Path, complete: Path, work: Path) -> None:
    def eval_then_export():
        run = copy_run(base, work / "ovr-eval")
        config = (run / "config.toml").read_bytes()
        rc1, out = cli("eval", str(run), "env.max_env_steps=320", "--planner", "random", "--episodes", "1",
                       "--no-progress")  # env.action_repeat=2 was the example: refused now (tenth probe)
        rec = RunDirRecords(run)[-1]
        rc2, out2 = cli("export", str(run), "--out", str(work / "ovr.onnx"))
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(work / "ovr.onnx")).metadata_props} if rc2 == 0 else {}
        ok = (rc1 == rc2 == 0 and (run / "config.toml").read_bytes() == config
              and rec.get("overrides") == ["env.max_env_steps=320"] and meta.get("action_repeat") == "8")
        return ok, f"config.toml unchanged, record names the override, export: action repeat {meta.get('action_repeat')}"
    record("one-off overrides", "eval env.max_env_steps=320, then a plain export", eval_then_export)

    def train():
        run = copy_run(base, work / "ovr-train")
        config = (run / "config.toml").read_bytes()
        rc, out = cli("train", str(run), "model.max_epochs=1", "--no-progress")
        ok = rc == 0 and (run / "config.toml").read_bytes() == config and \
            RunDirRecords(run)[-1].get("overrides") == ["model.max_epochs=1"]
        return ok, tail(out)
    record("one-off overrides", "train model.max_epochs=1", train)
    for bad in ("planner.samples=96", "seed=5", "env.action_repeat=2", "value.enabled=false"):
        def g(bad=bad):
            run = copy_run(base, work / f"ovr-resume-{bad.split('=')[0]}")
            before = tf.snapshot(run)
            rc, out = cli("run", f"run_dir={run}", bad, "--resume", "--no-progress")
            return rc == 2 and bad.split("=")[0] in out and tf.snapshot(run) == before, tail(out)
        record("one-off overrides", f"--resume {bad} refused", g)

    def complete_budget():
        run = copy_run(complete, work / "ovr-complete")
        before = tf.snapshot(run)
        rc, out = cli("run", f"run_dir={run}", "env_steps=5000", "--resume", "--no-progress")
        return rc == 2 and "complete" in out and tf.snapshot(run) == before, tail(out)
    record("one-off overrides", "--resume env_steps=5000 on a complete run", complete_budget)


def RunDirRecords(run: Path) -> list[dict]:
    from robot_wm.io import read_jsonl

    return read_jsonl(run / "metrics.jsonl")


def network(base: Path, work: Path) -> None:
    import socket

    from robot_wm import config as cfgmod
    from robot_wm.run_dir import RunDir

    def free_port() -> int:
        with socket.socket() as sk:
            sk.bind(("127.0.0.1", 0))
            return sk.getsockname()[1]

    def can_bind(port: int) -> bool:
        with socket.socket() as sk:
            sk.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sk.bind(("0.0.0.0", port))
                return True
            except OSError:
                return False

    def from_run_file():
        run = copy_run(base, work / "net-file")
        port = free_port()
        cfg = (run / "config.toml").read_text()
        (run / "config.toml").write_text(cfg.replace('[rerun]\nmode = "off"',
                                                     f'[rerun]\nmode = "serve"\naddress = "0.0.0.0:{port}"'))
        rc, out = cli("eval", str(run), "--planner", "random", "--episodes", "1", "--no-progress")
        return rc == 0 and "serving" not in out and can_bind(port), "no listener opened"
    record("network settings", "serve 0.0.0.0 in a run's config.toml", from_run_file)

    def once_then_plain():
        run = copy_run(base, work / "net-once")
        port = free_port()
        config = (run / "config.toml").read_bytes()
        rc1, out1 = cli("eval", str(run), "--planner", "random", "--episodes", "1", "--no-progress", "--rerun",
                        "serve", "--rerun-address", f"0.0.0.0:{port}")
        rc2, out2 = cli("eval", str(run), "--planner", "random", "--episodes", "1", "--no-progress")
        ok = (rc1 == rc2 == 0 and f"listen on 0.0.0.0:{port}" in out1 and "serving" not in out2
              and (run / "config.toml").read_bytes() == config)
        return ok, "warned once; config.toml unchanged; the next eval listens nowhere"
    record("network settings", "eval --rerun serve 0.0.0.0, then a plain eval", once_then_plain)

    def launch():
        d = work / "net-launch"
        d.mkdir()
        (d / "l.toml").write_text(f'run_dir = "{d / "new"}"\n[rerun]\nmode = "serve"\naddress = "0.0.0.0:9877"\n')
        rc, out = cli("run", str(d / "l.toml"), "--no-progress")
        return rc == 2 and "rerun.address" in out and not (d / "new").exists(), tail(out)
    record("network settings", "launch file with serve 0.0.0.0", launch)

    def saved():
        rd = RunDir(work / "net-saved")
        rd.save_config(cfgmod.apply_overrides(cfgmod.RunConfig(), ["rerun.mode=spawn", 'rerun.address="10.0.0.1:9"']))
        text = rd.config_path.read_text()
        return "spawn" not in text and "10.0.0.1" not in text, "never written"
    record("network settings", "a run config saved with spawn + address", saved)


def foreign_data(base: Path, work: Path) -> None:
    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.data.episode import Episode

    for command in ("collect", "train", "eval"):
        def f(command=command):
            run = copy_run(base, work / f"task-{command}")
            before = tf.snapshot(run)
            rc, out = cli(command, str(run), "env.task=walker-walk", "--no-progress")
            return rc == 2 and "walker-walk" in out and tf.snapshot(run) == before, tail(out)
        record("data from another task", f"{command} env.task=walker-walk on a cartpole run", f)
    rng = np.random.default_rng(0)
    walker = Episode(rng.normal(size=(4, 24)), rng.uniform(-1, 1, (3, 6)), np.zeros(3), np.zeros((4, 18)),
                     {"task": "walker-walk"})

    def append():
        run = copy_run(base, work / "task-append")
        before = tf.snapshot(run)
        try:
            EpisodeDataset(run / "episodes").append(walker)
        except ValueError as e:
            return "episode_000002.npz" in str(e) and tf.snapshot(run) == before, str(e)[:110]
        return False, "accepted"
    record("data from another task", "appending a 24-dimensional episode", append)

    def on_disk():
        run = copy_run(base, work / "task-disk")
        walker.save(run / "episodes" / "episode_000002.npz")
        before = tf.snapshot(run)
        rc, out = cli("train", str(run), "--no-progress")
        return rc == 2 and "episode_000002.npz" in out and tf.snapshot(run) == before, tail(out)
    record("data from another task", "a foreign episode file dropped into episodes/", on_disk)


def headline(complete: Path, work: Path) -> None:
    import json

    from robot_wm.data.dataset import EpisodeDataset

    def f():
        run = copy_run(complete, work / "headline")
        m = json.loads((run / "manifest.json").read_text())
        (run / "manifest.json").write_text(json.dumps({**m, "status": "running"}))  # final eval interrupted
        rc1, _ = cli("eval", str(run), "--planner", "random", "--episodes", "3", "--no-progress")
        rc2, out = cli("run", f"run_dir={run}", "eval_episodes=2", "--resume", "--no-progress")
        evals = EpisodeDataset(run / "eval")
        own = [e.total_return for e in evals if e.meta["policy"] == "learned"]
        got = json.loads((run / "summary.json").read_text())["eval_returns"]
        ok = rc1 == rc2 == 0 and len(own) == 2 and np.allclose(got, own)
        return ok, f"summary {np.round(got, 1).tolist()}, the run's own {np.round(own, 1).tolist()}"
    record("summary headline", "ad-hoc random eval between an interrupted final eval and --resume", f)


def run_dirs(work: Path) -> None:
    for files in ({"config.toml": "seed = 1\n"}, {"notes.txt": "mine"}):
        for command in ("run", "collect", "eval"):
            def f(files=files, command=command):
                folder = work / f"user-{command}-{next(iter(files))}"
                folder.mkdir()
                for name, text in files.items():
                    (folder / name).write_text(text)
                before = tf.snapshot(folder)
                args = {"run": ["run", f"run_dir={folder}", *tf.TINY], "collect": ["collect", str(folder), *tf.TINY],
                        "eval": ["eval", str(folder)]}[command]
                rc, out = cli(*args, "--no-progress")
                ok = rc == 2 and ("not a run" in out or "not a robot-wm run" in out) and tf.snapshot(folder) == before and \
                    sorted(p.name for p in folder.iterdir()) == sorted(files)
                return ok, tail(out)
            record("run_dir", f"{command} into a user's folder holding {next(iter(files))}", f)
    for args in (["run", ""], ["run", "run_dir="], ["collect", ""]):
        def g(args=args):
            cwd = Path.cwd()
            d = work / f"empty-{len(list(work.iterdir()))}"
            d.mkdir()
            os.chdir(d)
            try:
                rc, out = cli(*args, "--no-progress")
            finally:
                os.chdir(cwd)
            return rc == 2 and "empty" in out and not list(d.iterdir()), tail(out)
        record("run_dir", f"empty argument: robot-wm {' '.join(repr(a) for a in args)}", g)
    for template in ("{task.__class__}", "{seed[0]}", "{task!r}", "{seed:{task}}", "{user}", "{0}"):
        def h(template=template):
            rc, out = cli("run", f"run_dir={work}/t/{template}", "--no-progress")
            return rc == 2 and "run_dir" in out and not (work / "t").exists(), tail(out)
        record("run_dir", f"template {template}", h)


def planner_sizes(base: Path, work: Path) -> None:
    """Issue 11, defect 7 (the planner part): a planner that cannot fit in memory is refused from the config."""
    def new_run():
        run = work / "big-run"
        t0 = time.perf_counter()
        rc, out = cli("run", f"run_dir={run}", "planner.samples=2000000", "--no-progress")
        return rc == 2 and "planner.samples=2000000" in out and not run.exists(), \
            f"{time.perf_counter() - t0:.1f} s: " + tail(out, 90)
    record("planner size", "run planner.samples=2000000 (default model)", new_run)

    def on_eval():
        run = copy_run(base, work / "big-eval")
        before = tf.snapshot(run)
        rc, out = cli("eval", str(run), "planner.samples=200000000", "--no-progress")
        return rc == 2 and "planner.samples=200000000" in out and tf.snapshot(run) == before, tail(out, 90)
    record("planner size", "eval planner.samples=200000000 on a run", on_eval)


def declared_sizes(base: Path, planner: Path, work: Path) -> None:
    """Issue 11, defect 7 (the rest): sizes a config or a file declares are checked before anything is
    allocated or inflated."""
    for field in ("model.hidden=1000000", "model.ensemble_size=100000", "value.hidden=3000000",
                  "model.batch_size=1000000000"):
        def big(field=field):
            run = work / f"big-{field.split('=')[0]}"
            rc, out = cli("run", f"run_dir={run}", field, "--no-progress")
            return rc == 2 and field in out and "would need about" in out and not run.exists(), tail(out, 90)
        record("declared sizes", f"run {field}", big)

    def bomb():
        from conftest import write_zip_bomb_episode

        from robot_wm.data.episode import MAX_EPISODE_BYTES

        run = copy_run(base, work / "bomb-run")
        episodes = sorted((run / "episodes").glob("episode_*.npz"))
        dst = run / "episodes" / f"episode_{len(episodes):06d}.npz"
        write_zip_bomb_episode(episodes[-1], dst, MAX_EPISODE_BYTES)
        before = tf.snapshot(run)
        rc, out = cli("train", str(run), "--no-progress")
        return rc == 2 and dst.name in out and "declares" in out and tf.snapshot(run) == before, tail(out, 90)
    record("declared sizes", "a 1.1 GiB zip bomb (1 MiB on disk) among a run's episodes, then train", bomb)

    def onnx_sizes():
        bad = tf.damage_onnx(planner, work / "huge.onnx", "huge-declared-sizes")
        rc, out = cli("deploy", str(bad), "--task", "cartpole-swingup", "--episodes", "1")
        # refused by the declared input sizes, or (since session 31) first by the graph's own tensor sizes
        return rc == 2 and ("declares input sizes" in out or "a planning step needs by its metadata" in out), \
            tail(out, 90)
    record("declared sizes", "planner file declaring 2e9 samples (metadata, graph and hash consistent)", onnx_sizes)


def stops(base: Path, work: Path) -> None:
    """Issue 11, defects 10, 12 and 13: refused outputs, system errors and signals as messages, file modes."""
    for what in ("checkpoint", "directory", "config"):
        def out_onto(what=what):
            run = copy_run(base, work / f"export-{what}")
            ckpt = sorted((run / "checkpoints").glob("model_*.safetensors"))[-1]
            target = {"checkpoint": ckpt, "directory": run / "checkpoints", "config": run / "config.toml"}[what]
            before = tf.snapshot(run)
            rc, out = cli("export", str(run), "--out", str(target))
            return rc == 2 and "--out" in out and tf.snapshot(run) == before, tail(out, 90)
        record("stops and system errors", f"export --out onto the run's {what}", out_onto)

    def device():
        rc, out = cli("run", f"run_dir={work / 'dev'}", *tf.TINY, "device=cuda:99", "--no-progress")
        return rc == 2 and "device='cuda:99'" in out and not (work / "dev").exists(), tail(out, 90)
    record("stops and system errors", "device=cuda:99", device)

    def mount(name: str, *options: str) -> Path | None:
        where = work / name
        where.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(where)],
                           capture_output=True, check=False)
        return where if r.returncode == 0 else None

    def full_disk():
        disk = mount("full", "size=120k")
        if disk is None:
            return True, "skipped: cannot mount a tmpfs here"
        try:
            rc, out = cli("run", f"run_dir={disk / 'r'}", *tf.TINY, "--no-progress")
            ok = rc == 1 and "no space left on the device writing" in out and not tf.leftover_temp_files(disk)
            subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)
            kept = tf.episode_hashes(disk / "r")
            rc2, out2 = cli("run", f"run_dir={disk / 'r'}", *tf.TINY, "--no-progress", "--resume")
            ok = ok and rc2 == 0 and all(tf.episode_hashes(disk / "r")[k] == v for k, v in kept.items())
            return ok, tail(out, 90)
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)
    record("stops and system errors", "disk full mid-run, then --resume after freeing space", full_disk)

    def read_only():
        ro = mount("ro", "size=1m", "ro")
        if ro is None:
            return True, "skipped: cannot mount a tmpfs here"
        try:
            rc, out = cli("run", f"run_dir={ro / 'r'}", *tf.TINY, "--no-progress")
            return rc == 1 and "Read-only file system" in out, tail(out, 90)
        finally:
            subprocess.run(["umount", "-l", str(ro)], check=False)
    record("stops and system errors", "read-only run directory (a read-only mount; root ignores chmod)", read_only)

    def port_in_use():
        import socket

        run = copy_run(base, work / "port")
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            rc, out = cli("eval", str(run), "--episodes", "1", "--rerun", "serve", "--rerun-address", f"127.0.0.1:{port}")
        return rc == 2 and f"127.0.0.1:{port} cannot be bound" in out, tail(out, 90)
    record("stops and system errors", "rerun serve on a port already in use", port_in_use)

    for label, body in (("a string", "return 'high'"), ("None", "return None"), ("NaN", "return float('nan')")):
        def reward_fn(label=label, body=body):
            mod = work / "tasks"
            mod.mkdir(exist_ok=True)
            name = f"reward_{len(list(mod.iterdir()))}"
            (mod / f"{name}.py").write_text(f"def reward(model, data):\n    {body}\n")
            xml = mod / "slider.xml"
            xml.write_text(SLIDER)
            sys.path.insert(0, str(mod))
            try:
                rc, out = cli("run", f"run_dir={work / name}", "env.task=mjcf", f"env.mjcf={xml}",
                              f"env.reward={name}:reward", "env_steps=200", "--no-progress")
            finally:
                sys.path.remove(str(mod))
            return rc == 2 and f"reward function {name}:reward returned" in out and not (work / name).exists(), \
                tail(out, 90)
        record("stops and system errors", f"an MJCF reward function returning {label}", reward_fn)

    def ctrl_c():
        run = work / "sigint"
        proc = tf.start_run(run)
        end = time.monotonic() + 150
        while proc.poll() is None and not tf.episode_hashes(run) and time.monotonic() < end:
            time.sleep(0.05)
        before = tf.episode_hashes(run)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=120)
        log = (work / "sigint.log").read_text()
        rc2, out2 = tf.cli(*tf.run_cmd(run, resume=True)[3:])
        ok = rc == 130 and "Traceback" not in log and rc2 == 0 and \
            all(tf.episode_hashes(run)[k] == v for k, v in before.items())
        return ok, tail(log, 90)
    record("stops and system errors", "Ctrl-C (SIGINT) mid-run, then --resume", ctrl_c)

    for umask, mode in ((0o022, 0o644), (0o077, 0o600)):
        def modes(umask=umask, mode=mode):
            run = work / f"umask-{umask:o}"
            code = (f"import os, sys; os.umask({umask}); from robot_wm.cli import main; "
                    f"sys.exit(main(['run', 'run_dir={run}', *{tf.TINY!r}, 'env_steps=200', '--no-progress']))")
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT)
            got = {oct(stat.S_IMODE(p.stat().st_mode)) for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
            return got == {oct(mode)}, f"file modes {sorted(got)}"
        record("stops and system errors", f"files written under umask {umask:03o}", modes)


SLIDER = """<mujoco><worldbody><body><joint name="x" type="slide"/><geom size=".1" mass="1"/></body></worldbody>
<actuator><motor joint="x" ctrlrange="-1 1" ctrllimited="true"/></actuator></mujoco>"""


def goals(base: Path, work: Path) -> None:
    """A goal-conditioned planner fed bad goals: through the goal file an operator edits while the robot runs,
    through ``set_goal``, straight into the graph, and through the config. The goal in force must stay and the
    loop must go on; no bad goal may reach the planner."""
    import onnxruntime as ort

    from policies.mpc.step import StepSpec
    from robot_wm.config import ConfigError, RunConfig, apply_overrides
    from robot_wm.export.onnx_export import export_planner
    from robot_wm.export.source import control_period, load_source
    from robot_wm.runtime.goal_file import MAX_GOAL_FILE_BYTES, GoalFile
    from robot_wm.runtime.session import PlannerSession
    from sim.goal import resolve_goal
    from sim.registry import make_env

    src = load_source(base)
    env = make_env(src.cfg.env)
    env.reset(0)
    goal = resolve_goal(env, None, {"slider": 0.5, "hinge_1": 0.0}, None)
    out = work / "goal.onnx"
    export_planner(src.model, StepSpec.from_config(src.cfg.planner), out, noise="input", goal=goal,
                   metadata={"task": src.cfg.env.task, "control_period": repr(control_period(src.cfg))})
    sess = PlannerSession(out, provider="cpu", threads=1)
    kept = sess.goal.state.copy()
    path = work / "goal.json"
    big = b'{"state": [' + b"0, " * (MAX_GOAL_FILE_BYTES // 3) + b'0]}'
    cases = {
        "half-written JSON": lambda: path.write_text('{"state": [0.1, 1'),
        "a list, not an object": lambda: path.write_text("[0, 1, 0, 0, 0]"),
        "an unknown key": lambda: path.write_text('{"state": [0, 1, 0, 0, 0], "speed": 3}'),
        "NaN in the state": lambda: path.write_text('{"state": [NaN, 1, 0, 0, 0]}'),
        "4 values for 5": lambda: path.write_text('{"state": [0, 1, 0, 0]}'),
        "an int no float holds": lambda: path.write_text('{"state": [' + "9" * 500 + ", 1, 0, 0, 0]}"),
        "1e20 (its square overflows float32)": lambda: path.write_text('{"state": [1e20, 1, 0, 0, 0]}'),
        "negative weights": lambda: path.write_text('{"state": [0, 1, 0, 0, 0], "weights": [1, -1, 0, 0, 0]}'),
        "nesting 100,000 deep": lambda: path.write_text('{"state": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        "over 1 MiB": lambda: path.write_bytes(big),
        "a FIFO with no writer": lambda: os.mkfifo(path),
        "a directory": lambda: path.mkdir(),
        "a symlink to /dev/urandom": lambda: path.symlink_to("/dev/urandom"),
        "deleted": lambda: None,
    }
    for name, make in cases.items():
        def case(make=make):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            elif path.exists() or path.is_symlink():
                path.unlink()
            make()
            watcher = GoalFile(path, sess)
            t0 = time.perf_counter()
            applied = watcher.poll()
            took = time.perf_counter() - t0
            same = np.array_equal(sess.goal.state, kept)
            return (not applied and watcher.rejected == 1 and same and took < 5), f"refused in {took * 1e3:.1f} ms"
        record("goal inputs", f"goal file: {name}", case)

    def graph_nan():
        o = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        m = sess.meta
        feed = {"state": np.zeros(m.state_dim, np.float32), "prev_plan": sess.initial_plan(),
                "noise": np.zeros(m.noise_shape, np.float32), "goal": np.full(m.state_dim, np.nan, np.float32),
                "goal_weights": goal.weights}
        action, _, _, _, valid = o.run(None, feed)
        return (not valid and np.all(np.isfinite(action))), "valid=False, the shifted plan"
    record("goal inputs", "NaN goal fed straight into the graph", graph_nan)

    def config(overrides, needle):
        def case():
            try:
                cfg = apply_overrides(RunConfig(), overrides)
                resolve_goal(env, cfg.goal.state, cfg.goal.joints, cfg.goal.weights)
            except (ConfigError, ValueError) as e:
                return needle in str(e), tail(str(e))
            return False, "accepted"
        return case
    for overrides, needle in ((["goal.joints={elbow=1}"], "'elbow'"), (["goal.joints={slider=9}"], "outside"),
                              (["goal.state=[0, 1, 0]"], "expected 5"), (["goal.state=[1e30, 1, 0, 0, 0]"], "beyond")):
        record("goal inputs", f"config {overrides[0]}", config(overrides, needle))


def edited_files(base: Path, planner: Path, work: Path) -> None:
    """Files a person edits or hands to a command: a run's manifest.json and metrics.jsonl edited by hand,
    .npy action files whose header lies, a safe action outside the bounds, recording into a run."""
    import numpy as np

    manifests = {"a list": "[]", "status 5": '{"status": 5}', "episodes 'x'": '{"status": "running", "episodes": "x"}',
                 "final_eval_from -1": '{"status": "running", "episodes": 2, "final_eval_from": -1}',
                 "final_eval_episodes past the stored": '{"status": "running", "episodes": 2, "final_eval_from": 0, '
                                                        '"final_eval_episodes": [0, 99]}',
                 "torn JSON": '{"status": "runn'}
    for name, text in manifests.items():
        def manifest(name=name, text=text):
            run = copy_run(base, work / f"manifest-{len(list(work.glob('manifest-*')))}")
            (run / "manifest.json").write_text(text)
            before = tf.snapshot(run)
            rc, out = cli("run", f"run_dir={run}", "--resume", "--no-progress")
            return rc == 2 and "manifest.json" in out and tf.snapshot(run) == before, tail(out, 90)
        record("hand-edited files", f"manifest.json: {name}, then run --resume", manifest)

    def metrics():
        run = copy_run(base, work / "metrics-edited")
        with open(run / "metrics.jsonl", "a") as f:
            f.write('[1, 2]\n5\n{"kind": "train", "round": "a"}\n{"kind": "eval", "milestone": "x", "env_steps": 1}\n')
        rc, out = cli("train", str(run), "--no-progress", "model.max_epochs=1")
        return rc == 0 and "trained round" in out, tail(out, 90)
    record("hand-edited files", "metrics.jsonl with 4 lines robot-wm did not write, then train", metrics)

    def npy(kind: str) -> Path:
        path = work / f"actions-{kind}.npy"
        np.save(path, np.zeros((1, 4, 1)))
        data = path.read_bytes()
        if kind == "huge header":  # 32 bytes of data declaring 8e11 (the header's padding kept)
            path.write_bytes(data.replace(b"(1, 4, 1), }" + b" " * 9, b"(9999999, 9999, 1), }"))
        elif kind == "truncated":
            path.write_bytes(data[:40])
        elif kind == "objects":
            np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        elif kind == "strings":
            np.save(path, np.array([["a"] * 4]))
        return path
    for kind in ("huge header", "truncated", "objects", "strings"):
        for command in ("whatif", "drive"):
            def actions(kind=kind, command=command):
                path = npy(kind)
                rc, out = cli(command, str(base), "--actions", str(path), *(["--horizon", "4"] if command == "whatif"
                                                                            else ["--max-steps", "2"]))
                return rc == 2 and str(path) in out and "Traceback" not in out, tail(out, 90)
            record("hand-edited files", f"{command} --actions .npy: {kind}", actions)

    def safe_action():
        rc, out = cli("deploy", str(planner), "--task", "cartpole-swingup", "--episodes", "1", "--safe-action", "5")
        return rc == 2 and "outside the action bounds" in out, tail(out, 90)
    record("hand-edited files", "deploy --safe-action 5 (bounds [-1, 1])", safe_action)

    def record_into_run():
        run = copy_run(base, work / "record-into")
        before = tf.snapshot(run)
        rc, out = cli("deploy", str(planner), "--task", "cartpole-swingup", "--episodes", "1",
                      "--record", str(run / "episodes"))
        return rc == 2 and "is inside the run directory" in out and tf.snapshot(run) == before, tail(out, 90)
    record("hand-edited files", "deploy --record RUN/episodes", record_into_run)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-kill", action="store_true", help="skip the SIGKILL chain (saves ~40 s)")
    ap.add_argument("--flips", type=int, default=50, help="random byte flips per file kind")
    ap.add_argument("--only", nargs="+", metavar="CATEGORY", help="run only these categories (e.g. 'declared sizes')")
    a = ap.parse_args()
    from test_export import make_run_dir

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fault-report-") as tmp:
        work = Path(tmp)
        print("setting up a small run and an exported planner ...", flush=True)
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            base = make_run_dir(work / "base" / "run")
            planner = tf.export_files(base)
            from conftest import tiny_run

            complete = work / "base-complete" / "run"
            assert tiny_run(complete) == 0, "the complete tiny run failed"
        if not a.no_kill and not a.only:
            print("SIGKILL chain on a real `robot-wm run` ...", flush=True)
            kills(work)
        for name, fn in [("checkpoints", lambda: checkpoints(base, work)), ("episodes", lambda: episodes(base, work)),
                         ("random flips", lambda: flips(base, work, a.flips)),
                         ("ONNX files", lambda: onnx_files(planner, work)),
                         ("launch files", lambda: launch_files(base, work)),
                         ("control path", lambda: control_path(base, planner)),
                         ("divergence", lambda: divergence(base, work)), ("security", security),
                         ("run lock", lambda: run_lock(base, work, real_run=not a.no_kill)),
                         ("one-off overrides", lambda: overrides(base, complete, work)),
                         ("network settings", lambda: network(base, work)),
                         ("data from another task", lambda: foreign_data(base, work)),
                         ("summary headline", lambda: headline(complete, work)), ("run_dir", lambda: run_dirs(work)),
                         ("planner size", lambda: planner_sizes(base, work)),
                         ("declared sizes", lambda: declared_sizes(base, planner, work)),
                         ("stops and system errors", lambda: stops(base, work)),
                         ("goal inputs", lambda: goals(base, work)),
                         ("hand-edited files", lambda: edited_files(base, planner, work)),
                         ("probe 2026-11-26", lambda: probe_defects(base, planner, work)),
                         ("probe 2026-11-26 (3rd)", lambda: probe3_defects(base, planner, work)),
                         ("API and driver inputs", lambda: api_inputs(base, planner, work)),
                         ("probe 2026-11-26 (4th)", lambda: probe4_defects(base, planner, work)),
                         ("probe 2026-11-26 (5th)", lambda: probe5_defects(base, planner, work)),
                         ("probe 2026-11-26 (6th)", lambda: probe6_defects(base, planner, work)),
                         ("probe 2026-11-26 (7th)", lambda: probe7_defects(base, planner, work)),
                         ("probe 2026-11-26 (8th)", lambda: probe8_defects(base, planner, work)),
                         ("probe 2026-11-26 (9th)", lambda: probe9_defects(base, planner, work)),
                         ("probe 2026-11-26 (10th)", lambda: probe10_defects(base, planner, work)),
                         ("probe 2026-11-26 (11th)", lambda: probe11_defects(base, planner, work)),
                         ("probe 2026-11-27 (12th)", lambda: probe12_defects(base, planner, work)),
                         ("probe 2026-11-27 (13th)", lambda: probe13_defects(base, planner, work)),
                         ("probe 2026-11-27 (14th)", lambda: probe14_defects(base, planner, work)),
                         ("probe 2026-11-27 (15th)", lambda: probe15_defects(base, planner, work)),
                         ("probe 2026-11-27 (16th)", lambda: probe16_defects(base, planner, work)),
                         ("probe 2026-11-27 (17th)", lambda: probe17_defects(base, planner, work)),
                         ("probe 2026-11-27 (17th): its ugly cases", lambda: probe17_leftovers(base, planner, work)),
                         ("probe 2026-11-27 (18th)", lambda: probe18_defects(base, planner, work)),
                         ("probe 2026-11-27 (19th)", lambda: probe19_defects(base, planner, work)),
                         ("probe 2026-11-27 (20th): its leftovers", lambda: probe20_leftovers(base, planner, work)),
                         ("probe 2026-11-27 (21st)", lambda: probe21_defects(base, planner, work)),
                         ("probe 2026-11-27 (22nd)", lambda: probe22_defects(base, planner, work)),
                         ("session 21: probe 22's leftovers", lambda: session21_fixes(base, planner, work)),
                         ("probe 2026-11-28 (25th)", lambda: probe25_defects(base, planner, work)),
                         ("probes 2026-11-29 (26th, 27th)", lambda: probe26_27_defects(base, complete, work)),
                         ("session 29: probes 26-27's leftovers",
                          lambda: probe26_27_leftovers(base, complete, planner, work)),
                         ("probes 2026-11-29 (28th, 29th)",
                          lambda: probe28_29_defects(base, complete, planner, work)),
                         ("session 30: probe 30's leftovers",
                          lambda: probe30_leftovers(base, complete, planner, work)),
                         ("probe 2026-11-29 (31st)", lambda: probe31_defects(base, complete, planner, work)),
                         ("probe 2026-11-29 (32nd)", lambda: probe32_defects(base, complete, planner, work)),
                         ("probe 2026-11-29 (33rd)", lambda: probe33_defects(base, complete, planner, work)),
                         ("probe 2026-11-29 (34th)", lambda: probe34_defects(base, complete, planner, work)),
                         ("probe 2026-11-29 (35th)", lambda: probe35_defects(base, complete, planner, work)),
                         ("probe 2026-11-29 (36th)", lambda: probe36_defects(base, complete, planner, work)),
                         ("session 32: probe 36's leftovers",
                          lambda: probe36_leftovers(base, complete, planner, work)),
                         ("probe 2026-11-29 (37th)", lambda: probe37_defects(base, complete, planner, work)),
                         ("probe 2026-11-29 (38th)", lambda: probe38_defects(base, complete, planner, work)),
                         ("probe 2026-11-29 (39th)", lambda: probe39_defects(base, complete, planner, work)),
                         ("session 33: probe 39's leftovers",
                          lambda: probe39_leftovers(base, complete, planner, work)),
                         ("probe 2026-11-29 (40th)", lambda: probe40_defects(base, complete, planner, work)),
                         ("probe 2026-11-29 (41st)", lambda: probe41_defects(base, complete, planner, work))]:
            if a.only and name not in a.only:
                continue
            print(f"{name} ...", flush=True)
            with contextlib.redirect_stderr(io.StringIO()):
                fn()
    tried, survived = len(RESULTS), sum(1 for r in RESULTS if r[2])
    print()
    cats: dict[str, list[bool]] = {}
    for c, _, ok, _ in RESULTS:
        cats.setdefault(c, []).append(bool(ok))
    w = max(len(c) for c in cats)
    print(f"| {'category'.ljust(w)} | tried | survived |")
    print(f"|{'-' * (w + 2)}|------:|---------:|")
    for c, oks in cats.items():
        print(f"| {c.ljust(w)} | {len(oks):5d} | {sum(oks):8d} |")
    print(f"| {'total'.ljust(w)} | {tried:5d} | {survived:8d} |")
    print(f"\n{tried} tried, {survived} survived with nothing lost ({time.perf_counter() - t0:.0f} s)")
    for c, n, ok, note in RESULTS:
        if not ok:
            print(f"NOT SURVIVED: {c}: {n}: {note}")
    return 0 if tried == survived else 1


if __name__ == "__main__":
    raise SystemExit(main())
