"""The fault report's catalogue, continued (``fault_probes_7.py`` holds probes 36-39): session 33 (2026-11-29), the
ugly cases the thirty-ninth probe left and the CI failure of session 32."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from fault_kit import cli, copy_run, record, tail


def probe39_leftovers(base: Path, complete: Path, planner: Path, work: Path) -> None:
    """The thirty-ninth probe's ugly cases left at the end of session 32, and the orphaned Ray agents of its CI."""
    import psutil

    from robot_wm.io import atomic_write, leftover_temp_files
    from robot_wm.sweep.ray_runner import _shut_down, _subreaper

    cat = "session 33: probe 39's leftovers"

    def append_only_mid_write():
        folder = work / "p39l-ao"
        folder.mkdir()
        tried = []

        def write(f):
            f.write(b"episode")
            tried.append(subprocess.run(["chattr", "+a", str(folder)], capture_output=True, check=False).returncode)

        said = []
        handler = logging.Handler()
        handler.emit = lambda r: said.append(r.getMessage())
        logging.getLogger("robot_wm.io").addHandler(handler)
        try:
            atomic_write(folder / "episode_000000.npz", write, exclusive=True)
        finally:
            logging.getLogger("robot_wm.io").removeHandler(handler)
            subprocess.run(["chattr", "-a", str(folder)], check=False)
        if tried != [0]:
            return True, "chattr +a not allowed here: not tried"
        (left,) = leftover_temp_files(folder)
        return (folder / "episode_000000.npz").read_bytes() == b"episode" and any(str(left) in s for s in said), \
            (said or ["(no word)"])[0][:110]
    record(cat, "a folder made append-only mid-write (the stored episode reported lost, the temp file unnamed)",
           append_only_mid_write)

    def killed_trains_temp_files():
        run = copy_run(complete, work / "p39l-temp")
        left = [run / "checkpoints" / ".latest.json.a1b2c3d4.tmp", run / "episodes" / ".episode_000009.npz.k2j3x_9q.tmp"]
        for p in left:
            p.write_bytes(b"half a write")
        rc, out = cli("eval", str(run), "--episodes", "1", "--planner", "random", "--no-progress")
        return rc == 0 and not any(p.exists() for p in left), tail(out, 90)
    record(cat, "a killed train's temp files, then eval (kept until run --resume)", killed_trains_temp_files)

    def orphan_of_ray():
        before = {c.pid for c in psutil.Process().children(recursive=True)}
        with _subreaper():
            out = subprocess.run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True,
                                 check=True)
            orphan = psutil.Process(int(out.stdout))
            adopted = orphan.ppid() == os.getpid()
            _shut_down(lambda: None, before)
        return adopted and not orphan.is_running(), f"adopted: {adopted}"
    record(cat, "a process Ray orphans while it starts (a raylet's agents outlived a SIGHUP: session 32's CI)",
           orphan_of_ray)


def probe40_defects(base: Path, complete: Path, planner: Path, work: Path) -> None:
    """The fortieth probe: what session 33 fixed of it (its forged planners are ONNX damage cases: a file that is no
    planner with a sparse initializer, 100,000 nodes under forged iterations, an axis onnxruntime refuses, IR 99)."""
    import json
    import shutil
    import signal
    import sys
    import time

    from test_faults import snapshot

    from robot_wm.model.checkpoint import sealed
    from robot_wm.run_dir import RunDir

    cat = "probe 2026-11-29 (40th)"

    def unreadable_checkpoint():
        run = copy_run(complete, work / "p40-unread")
        weights = RunDir(run).latest_checkpoint().with_suffix(".safetensors")
        weights.chmod(0)
        drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--inh-caps", "-all"]
        if os.geteuid() == 0 and (shutil.which("setpriv") is None or subprocess.run(
                [*drop, "true"], capture_output=True, check=False).returncode != 0):
            return True, "root's override cannot be dropped here: not tried"
        r = subprocess.run([*(drop if os.geteuid() == 0 else []), sys.executable, "-m", "robot_wm.cli", "eval", str(run),
                            "--episodes", "1", "--no-progress"], capture_output=True, text=True, timeout=300, check=False)
        return r.returncode == 1 and "cannot read" in r.stderr and "make it readable" in r.stderr, tail(r.stderr, 90)
    record(cat, "a checkpoint of mode 000 before eval ('cannot write ...: make it writable')", unreadable_checkpoint)

    def device_launch_file():
        sweep = work / "p40-dev.toml"
        sweep.write_text('launch = ["/dev/zero"]\nseeds = [1]\n')
        rc, out = cli("sweep", str(sweep), "--cpus", "1")
        return rc == 2 and "launch file '/dev/zero' is not a regular file" in out, tail(out, 90)
    record(cat, "a sweep's launch file that is /dev/zero ('does not exist')", device_launch_file)

    def edited_results_row():
        folder = work / "p40-sweep"
        folder.mkdir()
        s = RunDir(complete).summary()
        steps = s["env_steps"]
        (folder / "results.csv").write_text(
            "name,task,seed,overrides,source,run_dir,status,env_steps,eval_return_mean,eval_return_std,wall_s,plan_hz,"
            f"error\ncartpole-swingup-s0,cartpole-swingup,0,,,{complete},complete,{steps},900,0,1,1,\n")
        rc, out = cli("report", str(folder), "--out", str(folder / "x.png"))
        return rc == 2 and "eval_return_mean='900', where its run" in out and not (folder / "x.png").exists(), \
            tail(out, 90)
    record(cat, "a results.csv row edited to 900 (the report's mean and plot)", edited_results_row)

    def grown_then_resumed():
        run = copy_run(complete, work / "p40-grown")
        cli("collect", str(run), "--episodes", "1", "--policy", "random", "--no-progress")
        rc, out = cli("run", f"run_dir={run}", "--resume", "--no-progress")
        return rc == 0 and "note: the run's summary.json describes it at" in out, tail(out, 90)
    record(cat, "run --resume after collect grew a complete run (no word)", grown_then_resumed)

    def emptied_log():
        run = copy_run(complete, work / "p40-empty")
        (run / "metrics.jsonl").write_text("")
        before = snapshot(run)
        rc, out = cli("run", f"run_dir={run}", "--resume", "--no-progress")
        return rc == 2 and "holds no record of the" in out and snapshot(run) == before, tail(out, 90)
    record(cat, "metrics.jsonl emptied, then run --resume of the complete run (exit 0)", emptied_log)

    def resume_nowhere():
        where = work / "p40-typo"
        rc, out = cli("run", f"run_dir={where}", "--resume", "--no-progress")
        return rc == 2 and "there is no run at" in out and not where.exists(), tail(out, 90)
    record(cat, "run --resume on a mistyped path (the full default run started)", resume_nowhere)

    def final_episode_removed():
        run = copy_run(complete, work / "p40-final")
        for p in (run / "eval").glob("episode_*.npz"):
            p.unlink()
        (run / "summary.json").unlink()
        rc, out = cli("run", f"run_dir={run}", "--resume", "--no-progress")
        return rc == 2 and "evaluation episode file(s)" in out and "are missing" in out, tail(out, 90)
    record(cat, "the final evaluation's episodes removed (the manifest blamed)", final_episode_removed)

    def relabelled_round():
        run = copy_run(complete, work / "p40-round")
        ckpts = RunDir(run).checkpoints
        meta = json.loads((ckpts / "model_r0000.json").read_text())
        shutil.copy(ckpts / "model_r0000.safetensors", ckpts / "model_r0200.safetensors")
        (ckpts / "model_r0200.json").write_text(json.dumps(sealed({**meta, "round": 200,
                                                                    "weights": "model_r0200.safetensors"})))
        (ckpts / "latest.json").write_text(json.dumps({"checkpoint": "model_r0200.json"}))
        rc, out = cli("eval", str(run), "--episodes", "1", "--no-progress")
        return rc == 2 and "which metrics.jsonl has no training record of" in out, tail(out, 90)
    record(cat, "round 0 relabelled round 200 and resealed (evaluated as the run's model)", relabelled_round)

    def stop_during_build():
        import itertools

        from onnx import TensorProto, helper

        from robot_wm.runtime.session import build_session, session_options

        names = ["x", *[f"n{i}" for i in range(89_999)], "y"]
        graph = helper.make_graph([helper.make_node("Neg", [a], [b]) for a, b in itertools.pairwise(names)], "chain",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        blob = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9).SerializeToString()

        class Stopped(Exception):
            pass

        def stop(signum, frame):
            raise Stopped

        before = signal.signal(signal.SIGALRM, stop)
        t0 = time.monotonic()
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            build_session(blob, session_options(1), ["CPUExecutionProvider"])
            return False, f"built in {time.monotonic() - t0:.1f} s, the stop held back"
        except Stopped:
            from robot_wm.runtime.session import ABANDONED_RUNS

            took = time.monotonic() - t0
            ABANDONED_RUNS[-1].wait(120)  # ends by itself (a process exiting meanwhile is aborted by onnxruntime)
            return took < 1.0, f"stopped after {took:.2f} s"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, before)
    record(cat, "a stop while onnxruntime builds a 90,000-node graph (held back until the build ended)",
           stop_during_build)


def probe41_defects(base: Path, complete: Path, planner: Path, work: Path) -> None:
    """The forty-first probe: what session 33 fixed of it."""
    import time

    from test_faults import halve_rewards_resealed, one_long_product, snapshot

    from robot_wm.runtime import session as session_mod
    from robot_wm.sweep import results
    from robot_wm.sweep.spec import Trial

    cat = "probe 2026-11-29 (41st)"

    def failed_over_complete():
        trial = Trial(name="cartpole-swingup-s3", source="", is_launch=False, seed=3, grid=())
        row = results.trial_row(trial, complete, "failed", "ConfigError: --resume cannot change seed")
        return row["status"] == "failed" and "eval_return_mean" not in row, f"status {row['status']}"
    record(cat, "a failed trial over a complete run folder (its row 'complete', another run's figures)",
           failed_over_complete)

    def halved_rewards_resealed():
        run = copy_run(complete, work / "p41-rewards")
        halve_rewards_resealed(run / "episodes" / "episode_000001.npz")
        before = snapshot(run)
        rc, out = cli("train", str(run), "model.max_epochs=1", "--no-progress")
        return rc == 2 and "its rewards add up to" in out and snapshot(run) == before, tail(out, 90)
    record(cat, "a training episode's rewards halved, its record's sha256 recomputed (trained on)",
           halved_rewards_resealed)

    def one_long_node():
        long = one_long_product(planner, work / "p41-long.onnx")
        limit, session_mod.WARMUP_LIMIT_S = session_mod.WARMUP_LIMIT_S, 0.3
        try:
            s = session_mod.PlannerSession(long, provider="cpu", threads=1)
            t0 = time.monotonic()
            try:
                s.warmup()
                return False, "the warm-up ran to its end"
            except session_mod.ModelFileError as e:
                took = time.monotonic() - t0
                session_mod.ABANDONED_RUNS[-1].wait(120)
                return took < 2.0 and "ran past 0.3 s" in str(e), f"ended after {took:.2f} s"
        finally:
            session_mod.WARMUP_LIMIT_S = limit
    record(cat, "one 5,000^2 product (declared figures raised) past the warm-up's watchdog (ends between nodes only)",
           one_long_node)

    def complete_resume_budget():
        run = copy_run(complete, work / "p41-budget")
        rc, out = cli("run", f"run_dir={run}", "env_steps=5000", "--resume", "--no-progress")
        return rc == 2 and "would change nothing" not in out and "--resume does not reopen it" in out, tail(out, 90)
    record(cat, "run --resume env_steps=5000 on a complete run ('would change nothing')", complete_resume_budget)
