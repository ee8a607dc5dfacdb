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
        rc = main(list(args))
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
    ref_model, _ = load_checkpoint(js)
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
                    got, _ = load_checkpoint(d / js.name)
                    same = all(torch.equal(got.state_dict()[k], v) for k, v in ref_model.state_dict().items())
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
    record("launch file", "a directory", lambda: (lambda r: (r[0] == 2 and "cannot be read" in r[1], r[1].strip()[-90:]))(
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-kill", action="store_true", help="skip the SIGKILL chain (saves ~40 s)")
    ap.add_argument("--flips", type=int, default=50, help="random byte flips per file kind")
    a = ap.parse_args()
    from test_export import make_run_dir

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fault-report-") as tmp:
        work = Path(tmp)
        print("setting up a small run and an exported planner ...", flush=True)
        with contextlib.redirect_stderr(io.StringIO()):
            base = make_run_dir(work / "base" / "run")
            planner = tf.export_files(base)
        if not a.no_kill:
            print("SIGKILL chain on a real `robot-wm run` ...", flush=True)
            kills(work)
        for name, fn in [("checkpoints", lambda: checkpoints(base, work)), ("episodes", lambda: episodes(base, work)),
                         ("random flips", lambda: flips(base, work, a.flips)),
                         ("ONNX files", lambda: onnx_files(planner, work)),
                         ("launch files", lambda: launch_files(base, work)),
                         ("control path", lambda: control_path(base, planner)),
                         ("divergence", lambda: divergence(base, work)), ("security", security)]:
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
