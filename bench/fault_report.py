"""Fault report: try a catalogue of faults and bad inputs and count how many were survived with
nothing lost.

    MUJOCO_GL=egl .venv/bin/python bench/fault_report.py [--no-kill] [--flips N]

Each fault is a small function returning (survived, note). "Survived" means: a clear error naming the
file or value (or, on the control path, a finite in-bounds fallback that is counted), and every file
that existed before the fault byte-identical after it (sha256). Kills are real SIGKILLs of a real
``robot-wm run`` followed by ``--resume``. The catalogue reuses the fault-injection helpers of
``tests/test_faults.py``. Prints "N tried, M survived" and a table (takes about 1-3 minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

import test_faults as tf  # noqa: E402

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
def _last(out: str, n: int = 110) -> str:
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    return lines[-1][:n] if lines else "(no message)"


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
                return rc == 2 and f"PID {holder.pid}" in out and tf.snapshot(run) == before, _last(out)
            record("run lock", f"second writer: robot-wm {args[0]}", f)

        def export():
            rc, out = cli("export", str(run), "--out", str(work / "locked.onnx"))
            return rc == 0 and (work / "locked.onnx").exists(), _last(out)
        record("run lock", "read-only export while the run is locked", export)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)

        def taken_over():
            n = len(tf.episode_hashes(run))
            rc, out = cli("collect", str(run), "--no-progress")
            return rc == 0 and len(tf.episode_hashes(run)) == n + 1, _last(out)
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
        rc1, out = cli("eval", str(run), "env.max_env_steps=400", "--planner", "random", "--episodes", "1",
                       "--no-progress")  # env.action_repeat=2 was the example: refused now (tenth probe)
        rec = RunDirRecords(run)[-1]
        rc2, out2 = cli("export", str(run), "--out", str(work / "ovr.onnx"))
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(work / "ovr.onnx")).metadata_props} if rc2 == 0 else {}
        ok = (rc1 == rc2 == 0 and (run / "config.toml").read_bytes() == config
              and rec.get("overrides") == ["env.max_env_steps=400"] and meta.get("action_repeat") == "8")
        return ok, f"config.toml unchanged, record names the override, export: action repeat {meta.get('action_repeat')}"
    record("one-off overrides", "eval env.max_env_steps=400, then a plain export", eval_then_export)

    def train():
        run = copy_run(base, work / "ovr-train")
        config = (run / "config.toml").read_bytes()
        rc, out = cli("train", str(run), "model.max_epochs=1", "--no-progress")
        ok = rc == 0 and (run / "config.toml").read_bytes() == config and \
            RunDirRecords(run)[-1].get("overrides") == ["model.max_epochs=1"]
        return ok, _last(out)
    record("one-off overrides", "train model.max_epochs=1", train)
    for bad in ("planner.samples=96", "seed=5", "env.action_repeat=2", "value.enabled=false"):
        def g(bad=bad):
            run = copy_run(base, work / f"ovr-resume-{bad.split('=')[0]}")
            before = tf.snapshot(run)
            rc, out = cli("run", f"run_dir={run}", bad, "--resume", "--no-progress")
            return rc == 2 and bad.split("=")[0] in out and tf.snapshot(run) == before, _last(out)
        record("one-off overrides", f"--resume {bad} refused", g)

    def complete_budget():
        run = copy_run(complete, work / "ovr-complete")
        before = tf.snapshot(run)
        rc, out = cli("run", f"run_dir={run}", "env_steps=5000", "--resume", "--no-progress")
        return rc == 2 and "complete" in out and tf.snapshot(run) == before, _last(out)
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
        return rc == 2 and "rerun.address" in out and not (d / "new").exists(), _last(out)
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
            return rc == 2 and "walker-walk" in out and tf.snapshot(run) == before, _last(out)
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
        return rc == 2 and "episode_000002.npz" in out and tf.snapshot(run) == before, _last(out)
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
                return ok, _last(out)
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
            return rc == 2 and "empty" in out and not list(d.iterdir()), _last(out)
        record("run_dir", f"empty argument: robot-wm {' '.join(repr(a) for a in args)}", g)
    for template in ("{task.__class__}", "{seed[0]}", "{task!r}", "{seed:{task}}", "{user}", "{0}"):
        def h(template=template):
            rc, out = cli("run", f"run_dir={work}/t/{template}", "--no-progress")
            return rc == 2 and "run_dir" in out and not (work / "t").exists(), _last(out)
        record("run_dir", f"template {template}", h)


def planner_sizes(base: Path, work: Path) -> None:
    """Issue 11, defect 7 (the planner part): a planner that cannot fit in memory is refused from the config."""
    def new_run():
        run = work / "big-run"
        t0 = time.perf_counter()
        rc, out = cli("run", f"run_dir={run}", "planner.samples=2000000", "--no-progress")
        return rc == 2 and "planner.samples=2000000" in out and not run.exists(), \
            f"{time.perf_counter() - t0:.1f} s: " + _last(out, 90)
    record("planner size", "run planner.samples=2000000 (default model)", new_run)

    def on_eval():
        run = copy_run(base, work / "big-eval")
        before = tf.snapshot(run)
        rc, out = cli("eval", str(run), "planner.samples=200000000", "--no-progress")
        return rc == 2 and "planner.samples=200000000" in out and tf.snapshot(run) == before, _last(out, 90)
    record("planner size", "eval planner.samples=200000000 on a run", on_eval)


def declared_sizes(base: Path, planner: Path, work: Path) -> None:
    """Issue 11, defect 7 (the rest): sizes a config or a file declares are checked before anything is
    allocated or inflated."""
    for field in ("model.hidden=1000000", "model.ensemble_size=100000", "value.hidden=3000000",
                  "model.batch_size=1000000000"):
        def big(field=field):
            run = work / f"big-{field.split('=')[0]}"
            rc, out = cli("run", f"run_dir={run}", field, "--no-progress")
            return rc == 2 and field in out and "would need about" in out and not run.exists(), _last(out, 90)
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
        return rc == 2 and dst.name in out and "declares" in out and tf.snapshot(run) == before, _last(out, 90)
    record("declared sizes", "a 1.1 GiB zip bomb (1 MiB on disk) among a run's episodes, then train", bomb)

    def onnx_sizes():
        bad = tf.damage_onnx(planner, work / "huge.onnx", "huge-declared-sizes")
        rc, out = cli("deploy", str(bad), "--task", "cartpole-swingup", "--episodes", "1")
        return rc == 2 and "declares input sizes" in out, _last(out, 90)
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
            return rc == 2 and "--out" in out and tf.snapshot(run) == before, _last(out, 90)
        record("stops and system errors", f"export --out onto the run's {what}", out_onto)

    def device():
        rc, out = cli("run", f"run_dir={work / 'dev'}", *tf.TINY, "device=cuda:99", "--no-progress")
        return rc == 2 and "device='cuda:99'" in out and not (work / "dev").exists(), _last(out, 90)
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
            return ok, _last(out, 90)
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)
    record("stops and system errors", "disk full mid-run, then --resume after freeing space", full_disk)

    def read_only():
        ro = mount("ro", "size=1m", "ro")
        if ro is None:
            return True, "skipped: cannot mount a tmpfs here"
        try:
            rc, out = cli("run", f"run_dir={ro / 'r'}", *tf.TINY, "--no-progress")
            return rc == 1 and "Read-only file system" in out, _last(out, 90)
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
        return rc == 2 and f"127.0.0.1:{port} cannot be bound" in out, _last(out, 90)
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
                _last(out, 90)
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
        return ok, _last(log, 90)
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
                return needle in str(e), _last(str(e))
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
            return rc == 2 and "manifest.json" in out and tf.snapshot(run) == before, _last(out, 90)
        record("hand-edited files", f"manifest.json: {name}, then run --resume", manifest)

    def metrics():
        run = copy_run(base, work / "metrics-edited")
        with open(run / "metrics.jsonl", "a") as f:
            f.write('[1, 2]\n5\n{"kind": "train", "round": "a"}\n{"kind": "eval", "milestone": "x", "env_steps": 1}\n')
        rc, out = cli("train", str(run), "--no-progress", "model.max_epochs=1")
        return rc == 0 and "trained round" in out, _last(out, 90)
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
                return rc == 2 and str(path) in out and "Traceback" not in out, _last(out, 90)
            record("hand-edited files", f"{command} --actions .npy: {kind}", actions)

    def safe_action():
        rc, out = cli("deploy", str(planner), "--task", "cartpole-swingup", "--episodes", "1", "--safe-action", "5")
        return rc == 2 and "outside the action bounds" in out, _last(out, 90)
    record("hand-edited files", "deploy --safe-action 5 (bounds [-1, 1])", safe_action)

    def record_into_run():
        run = copy_run(base, work / "record-into")
        before = tf.snapshot(run)
        rc, out = cli("deploy", str(planner), "--task", "cartpole-swingup", "--episodes", "1",
                      "--record", str(run / "episodes"))
        return rc == 2 and "is inside the run directory" in out and tf.snapshot(run) == before, _last(out, 90)
    record("hand-edited files", "deploy --record RUN/episodes", record_into_run)


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
        return rc == 2 and "not a regular file" in out, _last(out, 90)
    record("probe 2026-11-26", "report --anchors /dev/zero (grew until the OOM killer)", anchors_device)

    for argv, needle in ((["whatif", str(base), "--random", "100000000"], "argument --random"),
                         (["deploy", str(planner), "--rate", "1e-6", "--realtime"], "argument --rate")):
        def flag(argv=argv, needle=needle):
            r = subprocess.run([sys.executable, "-m", "robot_wm.cli", *argv], capture_output=True, text=True,
                               timeout=120, check=False, env={**os.environ, "MUJOCO_GL": "egl"})
            return r.returncode == 2 and needle in r.stderr, _last(r.stderr, 90)
        record("probe 2026-11-26", " ".join(a for a in argv if a not in (str(base), str(planner))), flag)

    def episodes_symlink():
        run, other = copy_run(base, work / "probe-link"), copy_run(base, work / "probe-other")
        shutil.rmtree(run / "episodes")
        (run / "episodes").symlink_to(other / "episodes")
        before = tf.snapshot(other)
        rc, out = cli("collect", str(run), "--episodes", "1", "--no-progress")
        return rc == 2 and "outside the run directory" in out and tf.snapshot(other) == before, _last(out, 90)
    record("probe 2026-11-26", "collect through RUN/episodes linked to another run's", episodes_symlink)

    def eval_at():
        rc, out = cli("run", f"run_dir={work / 'probe-eval-at'}", "eval_at=[-5]", "--no-progress")
        return rc == 2 and "eval_at.0" in out and not (work / "probe-eval-at").exists(), _last(out, 90)
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
            return rc == 2, _last(out, 90)
        record("probe 2026-11-26 (3rd)", f"{what} (hung)", fifo)

    def empty_config():
        run = copy_run(base, work / "p3-config")
        (run / "config.toml").write_text("")
        before = tf.snapshot(run)
        rc, out = cli("eval", str(run), "--episodes", "1", "--no-progress")
        return rc == 2 and tf.snapshot(run) == before, _last(out, 90)
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
    for name, state, plan, needle in (("a string state", "abc", None, "state must be"),
                                      ("an object-array state", np.array([object()] * 5), None, "state must be"),
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
            rec = DeploymentRecorder(root, task="my-robot", planner="p.onnx", action_repeat=1)
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
            args = {"root": work / "api-rec-refused", "task": "my-robot", "planner": "p.onnx", "action_repeat": 1}
            try:
                DeploymentRecorder(**{**args, **kwargs})
            except ValueError as e:
                return True, str(e)[:90]
            return False, "accepted"
        record("API and driver inputs", f"DeploymentRecorder {name}", refused)

    def stdlib_reward():
        xml = work / "api-slider.xml"
        xml.write_text(_SLIDER)
        rc, out = cli("run", f"run_dir={work / 'api-os-system'}", "env.task=mjcf", f"env.mjcf={xml}",
                      "env.reward=os:system", "env_steps=100", "--no-progress")
        return rc == 2 and "standard library" in out and not (work / "api-os-system").exists(), _last(out, 90)
    record("API and driver inputs", "run env.reward=os:system (a stdlib function as the reward)", stdlib_reward)

    def double_equals():
        rc, out = cli("run", f"run_dir=={work / 'api-eq'}", "--no-progress")
        return rc == 2 and "'=='" in out and not Path("=").exists(), _last(out, 90)
    record("API and driver inputs", "run run_dir==DIR (a doubled '=')", double_equals)

    def other_round():
        run = copy_run(base, work / "api-round")
        js = tf.damage_checkpoint(run, "json-of-another-round")
        rc, out = cli("whatif", str(run), "--horizon", "3")
        return rc == 2 and js.name in out and "another round" in out, _last(out, 90)
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
        return rc == 2 and victim.read_text() == "precious", _last(out, 90)
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
        return bool(said), said[:110] or _last(out, 90)
    record("probe 2026-11-26 (4th)", "planner metadata control_period=nan (skipped the robot check silently)", nan_period)

    for command in ("train", "export"):
        def sizes(command=command):
            run = copy_run(base, work / f"p4-{command}")
            before = tf.snapshot(run)
            extra = ("--out", str(work / "p4-x.onnx")) if command == "export" else ("--no-progress",)
            rc, out = cli(command, str(run), *extra, "model.hidden=64")
            return rc == 2 and "model.hidden" in out and tf.snapshot(run) == before, _last(out, 90)
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
                                 source="sim-robot")
        robot.reset(0)
        rec.begin(robot, 0)
        while not robot.done:
            robot.send_action(np.zeros(1, np.float32))
            rec.step(robot, np.zeros(1, np.float32), 0.001, None)
        rec.end(**robot.episode_info())
        cli("finetune", str(run), "--data", str(data), "--no-progress")
        n = len(list((run / "robot").iterdir()))
        rc, out = cli("finetune", str(run), "--data", str(run / "robot"), "--no-progress")
        return rc == 2 and len(list((run / "robot").iterdir())) == n, _last(out, 90)
    record("probe 2026-11-26 (4th)", "finetune RUN --data RUN/robot (copied in again each time)", robot_again)

    def bad_goal():
        rc, out = cli("run", f"run_dir={work / 'p4-goal'}", 'goal.joints={"über"=0.5}', "env_steps=400", "--no-progress")
        return rc == 2 and not (work / "p4-goal").exists(), _last(out, 90)
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
        return rc == 2 and victim.read_text() == "precious", _last(out, 90)
    record("probe 2026-11-26 (5th)", "RUN/.lock hard-linked to a user's file", hard_lock)

    def cp_al():
        run = copy_run(base, work / "p5-orig")
        copy = work / "p5-al"
        subprocess.run(["cp", "-al", str(run), str(copy)], check=True)
        before = tf.snapshot(run)
        rc, out = cli("eval", str(copy), "--episodes", "1", "--no-progress")
        return rc == 2 and tf.snapshot(run) == before and "hard links" in out, _last(out, 90)
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
        xml.write_text(_SLIDER.replace('gear="1"/>', 'gear="1" ctrlrange="-1e30 1e30" ctrllimited="true"/>'))
        return refused(lambda: MJCFEnv(xml, reward=lambda m, d: 0.0, max_env_steps=40), "ctrlrange")
    record("probe 2026-11-26 (5th)", "MJCF ctrlrange ±1e30 (MuJoCo zeroes such controls)", huge_ctrl)

    def full_disk_video():
        out = work / "p5-cut.mp4"
        r = subprocess.run(["prlimit", "--fsize=20000", sys.executable, "-m", "robot_wm.cli", "dream", str(base),
                            "--step", "2", "--horizon", "20", "--out", str(out)], capture_output=True, text=True,
                           timeout=300, check=False, cwd=ROOT)
        return r.returncode != 0 and not out.exists(), _last(r.stderr, 90)
    record("probe 2026-11-26 (5th)", "dream on a full disk (said wrote, left a cut video)", full_disk_video)


def probe6_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects of the sixth hostile probe (2026-11-26, 305 cases), as cases of the report."""
    import json

    import numpy as np

    def untouched(run: Path, args: list[str], needle: str):
        before = tf.snapshot(run)
        rc, out = cli(*[a.format(run=run, work=work) for a in args])
        return rc in (1, 2) and needle in out and tf.snapshot(run) == before, _last(out, 90)

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
        return rc == 2 and "rerun.path" in out and victim.read_text() == "precious", _last(out, 90)
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


def _same_run_twice(path: Path, grid_line: str):
    """A sweep file whose grid spells one run twice must be refused when loaded."""
    from robot_wm.sweep import spec

    path.write_text(f'tasks = ["cartpole-swingup"]\nseeds = [1]\n[grid]\n{grid_line}\n')
    try:
        spec.load(path)
    except spec.SweepError as e:
        return "are the same run" in str(e), str(e)[-90:]
    return False, "two identical trials"


def _edit_recording(folder: Path, edit) -> Path:
    """Apply ``edit(arrays, meta)`` to the first episode of a recorded folder, in place; returns the folder."""
    import json

    ep = next(folder.glob("episode_*.npz"))
    z = dict(np.load(ep))
    meta = json.loads(str(z["meta"]))
    edit(z, meta)
    z["meta"] = np.array(json.dumps(meta))
    np.savez(ep, **z)
    return folder


def untouched(run: Path, args: list[str], needle: str):
    """A command refused (exit 1 or 2) naming ``needle``, with ``run`` byte-identical after it."""
    before = tf.snapshot(run)
    rc, out = cli(*args)
    return rc in (1, 2) and needle in out and tf.snapshot(run) == before, _last(out, 90)


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
        return rc == 2 and not list((work / "p7-outside").iterdir()), _last(out, 90)
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
        _edit_recording(rec, lambda z, m: (m.update(reward_known=False), z.update(reward=np.zeros_like(z["reward"]))))
        return untouched(copy_run(base, work / "p7-ft"), ["finetune", str(work / "p7-ft"), "--data", str(rec),
                                                           "model.max_epochs=1", "--no-progress"], "has no known reward")
    record("probe 2026-11-26 (7th)", "finetune on recordings whose reward is unknown (learned zeros)", unknown_reward)

    record("probe 2026-11-26 (7th)", "sweep grid [1, 1.0] (the same run twice)",
           lambda: _same_run_twice(work / "p7-dup.toml", '"planner.temperature" = [1, 1.0]'))

    def hash_removed():
        bad = tf.damage_onnx(planner, work / "p7-nohash.onnx", "hash-removed")
        rc, out = cli("deploy", str(bad), "--episodes", "1")
        return rc != 0 and "metadata_sha256" in out, _last(out, 90)
    record("probe 2026-11-26 (7th)", "planner metadata hash deleted, period and repeat edited", hash_removed)


def probe9_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects of the tenth hostile probe (2026-11-26; the ninth category of probe cases)."""
    import json
    import signal
    import subprocess
    import sys

    cat = "probe 2026-11-26 (9th)"

    rec = work / "p9-rec"
    cli("deploy", str(planner), "--episodes", "1", "--record", str(rec), "--threads", "1")

    def checkpoint_json_edited():
        from robot_wm.run_dir import RunDir

        run = copy_run(base, work / "p9-ck")
        js = RunDir(run).latest_checkpoint()
        meta = json.loads(js.read_text())
        meta["value_spec"]["value_scale"] *= 6  # one value changed, every hash of the weights intact
        js.write_text(json.dumps(meta))
        return untouched(run, ["whatif", str(run), "--episode", "0", "--step", "2"], "changed after it was written")
    record(cat, "checkpoint JSON with one value changed (value_scale x6 loaded silently)", checkpoint_json_edited)

    def robot_folder_edited():
        run = copy_run(base, work / "p9-rb")
        rc, out = cli("finetune", str(run), "--data", str(rec), "model.max_epochs=1", "--no-progress")
        if rc != 0:
            return False, _last(out, 90)
        _edit_recording(run / "robot", lambda z, m: z.update(action=z["action"] * 1e6))
        return untouched(run, ["finetune", str(run), "--data", str(rec), "model.max_epochs=1", "--no-progress"],
                         "the run's robot data")
    record(cat, "finetune with an episode in RUN/robot edited (actions x1e6, trained on)", robot_folder_edited)

    def recorded_rewards_in_other_units():
        data = work / "p9-paid"
        shutil.copytree(rec, data)
        _edit_recording(data, lambda z, m: z.update(reward=z["reward"] * 1e6 + 1e6))
        run = copy_run(base, work / "p9-ft")
        return untouched(run, ["finetune", str(run), "--data", str(data), "model.max_epochs=1", "--no-progress"],
                         "far outside the run's own rewards")
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
        return r.returncode == 2 and "needs about" in r.stderr and not out.exists(), _last(r.stderr, 90)
    record(cat, "dream at 4096 x 4096 under a 6 GB limit (ArrayMemoryError traceback)", big_video)


def probe8_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects (and the ugly cases that could lose data) of the eighth hostile probe (2026-11-26)."""

    from robot_wm.sweep import spec
    from robot_wm.sweep.ray_runner import run_sweep

    cat = "probe 2026-11-26 (8th)"

    rec = work / "p8-rec"
    cli("deploy", str(planner), "--episodes", "1", "--record", str(rec), "--threads", "1")

    def edited_recording(name: str, edit) -> Path:
        shutil.copytree(rec, work / name)
        return _edit_recording(work / name, edit)

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
        return rc == 0 and kept, _last(out, 90)
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
           lambda: _same_run_twice(work / "p8-zero.toml", '"planner.uncertainty_weight" = [0.0, -0.0]'))

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
        from robot_wm.runner import Session
        from robot_wm.run_dir import RunDir
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
        return rc == 2 and "summary.json" in out and "env_steps" in out, _last(out, 90)
    record(cat, "run --resume of a complete run whose summary.json was edited (KeyError)", summary_damaged)


_SLIDER = """<mujoco><option timestep="0.01"/><worldbody><body><joint name="x" type="slide" axis="1 0 0"/>
<geom size="0.1"/></body></worldbody><actuator><motor joint="x" gear="1"/></actuator></mujoco>"""


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
                         ("probe 2026-11-26 (9th)", lambda: probe9_defects(base, planner, work))]:
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
