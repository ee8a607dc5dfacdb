"""The fault report's catalogue, continued (``fault_probes_3.py`` holds probes 16-19): one function per hostile
probe, each case a reproduction of what that probe found, checked as the report checks every case."""

from __future__ import annotations

from pathlib import Path

from fault_kit import cli, copy_run, record, tail, untouched


def probe20_leftovers(base: Path, planner: Path, work: Path) -> None:
    """What the twentieth hostile probe left (2026-11-27), fixed in session 19."""
    cat = "probe 2026-11-27 (20th): its leftovers"

    def symlink_loop():
        loop = work / "p20-loop"
        loop.symlink_to(loop)
        rc, out = cli("finetune", str(base), "--data", str(loop), "--no-progress")
        rc2, out2 = cli("deploy", str(planner), "--episodes", "1", "--record", str(loop))
        named = all(f"{str(loop)!r} is a symbolic link loop" in o for o in (out, out2))
        return rc == rc2 == 2 and named, tail(out2, 90)
    record(cat, "a symbolic link loop as finetune --data and deploy --record (a traceback)", symlink_loop)

    def double_delay_from_collect():
        r = copy_run(base, work / "p20-dd")
        rc, _ = cli("collect", str(r), "--episodes", "1", "--policy", "random", "env.randomize.action_delay=[1,1]",
                    "env.max_env_steps=80", "--no-progress")
        rc2, out2 = cli("export", str(r), "--out", str(work / "p20-dd.onnx"), "planner.delay=1")
        return rc == rc2 == 0 and "counted twice" in out2, tail(out2, 90)
    record(cat, "planner.delay on a run a delayed one-off collect trained (no double-delay warning)",
           double_delay_from_collect)


def probe21_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects of the twenty-first hostile probe (2026-11-27; the twenty-first category)."""
    cat = "probe 2026-11-27 (21st)"

    def recording():
        folder = work / "p21-rec"
        if not folder.exists():
            cli("deploy", str(planner), "--episodes", "2", "--record", str(folder), "--sim", "max_env_steps=160")
        return folder

    def robot_files_swapped_and_edited():
        from robot_wm.data.episode import Episode

        r = copy_run(base, work / "p21-swap")
        rc, _ = cli("finetune", str(r), "--data", str(recording()), "--no-progress")
        a, b = sorted((r / "robot").glob("episode_*.npz"))[:2]
        ep = Episode.load(a)
        a.unlink()
        Episode(ep.obs, -ep.action, ep.reward, ep.physics_state, ep.meta).save(b.with_name("x.npz"))
        b.rename(a)
        b.with_name("x.npz").rename(b)
        rc2, out2 = cli("train", str(r), "--no-progress")
        return rc == 0 and rc2 == 2 and "no longer holds 1 of the 2 episode files" in out2, tail(out2, 90)
    record(cat, "two held robot files swapped, one edited (the check went by place)", robot_files_swapped_and_edited)

    def last_episodes_removed():
        r = copy_run(base, work / "p21-rm")
        max((r / "episodes").glob("episode_*.npz")).unlink()
        rc, out = cli("train", str(r), "--no-progress")
        return rc == 2 and "are missing" in out, tail(out, 90)
    record(cat, "the last training episode files removed (trained on fewer, said nothing)", last_episodes_removed)

    def refused_command_recorded():
        from robot_wm.config import EnvConfig
        from robot_wm.data.episode import Episode
        from robot_wm.runtime import ControlLoop, PlannerSession, SimRobot
        from robot_wm.runtime.record import DeploymentRecorder
        from sim.registry import make_env

        class Bus(SimRobot):
            calls = 0

            def send_action(self, action):
                self.calls += 1
                if self.calls == 10:
                    raise OSError("CAN bus timeout")
                return super().send_action(action)

        robot = Bus(make_env(EnvConfig(task="cartpole-swingup", max_env_steps=160)))
        robot.reset(0)
        loop = ControlLoop(PlannerSession(planner, provider="cpu"), robot, realtime=False)
        rec = DeploymentRecorder(work / "p21-bus", task="cartpole-swingup", planner="p", action_repeat=8,
                                 planner_delay=0)
        rec.begin(robot, 0)
        loop.run(20, done=lambda: robot.done, on_tick=rec.hook(loop, robot))
        ep = Episode.load(rec.end())
        return len(ep) == 9 and ep.meta.get("cut_at_unsent_command") == 9, f"{len(ep)} transitions kept"
    record(cat, "a command the robot refused, recorded as applied", refused_command_recorded)

    def api_finetune_one_off_delay():
        from robot_wm.config import apply_overrides
        from robot_wm.finetune import finetune
        from robot_wm.run_dir import RunDir
        from robot_wm.runner import Session

        r = RunDir(copy_run(base, work / "p21-api"))
        late = work / "p21-late"
        cli("deploy", str(planner), "--episodes", "1", "--shift", "delay-1", "--record", str(late), "--sim",
            "max_env_steps=80")
        cfg = apply_overrides(r.load_config(), ["env.randomize.action_delay=[1,1]"])
        with Session.open(cfg, r, progress=False) as s:
            info = finetune(s, late, weight=1, progress=False)["finetune"]
        rc, out = cli("train", str(r.root), "--no-progress")
        return info["realigned"] == 1 and rc == 0, tail(out, 90)
    record(cat, "a Python session's one-off delay decided a fine-tuning's pairing (every later train refused)",
           api_finetune_one_off_delay)


def _reseal(run: Path, edit) -> Path:
    """Apply ``edit(tensors)`` to the run's latest checkpoint weights and recompute its hashes (the file looks genuine)."""
    import hashlib
    import json

    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    from robot_wm.model.checkpoint import sealed
    from robot_wm.run_dir import RunDir

    js = RunDir(run).latest_checkpoint()
    meta = json.loads(js.read_text())
    tensors = {k: v.clone() for k, v in st_load((js.parent / meta["weights"]).read_bytes()).items()}
    edit(tensors)
    blob = st_save(tensors)
    (js.parent / meta["weights"]).write_bytes(blob)
    js.write_text(json.dumps(sealed(dict(meta, sha256=hashlib.sha256(blob).hexdigest()))))
    return run


def probe22_defects(base: Path, planner: Path, work: Path) -> None:
    """What the twenty-second hostile probe found (2026-11-27, session 20), and probe 21's ugly leftovers fixed then."""
    cat = "probe 2026-11-27 (22nd)"

    def zero_scale():
        r = _reseal(copy_run(base, work / "p22-std0"), lambda t: t["obs_norm.std"].zero_())
        rc, out = cli("eval", str(r), "--episodes", "1", "--no-progress")
        return rc == 2 and "normaliser scales below" in out, tail(out, 90)
    record(cat, "a resealed checkpoint with its normaliser std zeroed (every step fell back, 'return 0.0', exit 0)",
           zero_scale)

    def wide_bounds():
        r = _reseal(copy_run(base, work / "p22-bnd"),
                    lambda t: [t[k].mul_(100) for k in t if k.endswith(("action_low", "action_high"))])
        rc, out = cli("eval", str(r), "--episodes", "1", "--no-progress")
        return rc == 2 and "but the run's robot" in out, tail(out, 90)
    record(cat, "a resealed checkpoint planning over +-100 on a +-1 robot (evaluated, exit 0)", wide_bounds)

    def overflowing_weights():
        r = _reseal(copy_run(base, work / "p22-big"), lambda t: t["target_norm.std"].mul_(1e37))  # (weights: refused)
        rc, out = cli("eval", str(r), "--episodes", "1", "--no-progress")
        return rc == 3 and "planning steps fell back" in out, tail(out, 90)
    record(cat, "a checkpoint whose every planning step falls back, reported as the learned planner's return",
           overflowing_weights)

    def recording_saved_again():
        from robot_wm.data.episode import Episode

        r = copy_run(base, work / "p22-again")
        rec = work / "p22-rec"
        cli("deploy", str(planner), "--episodes", "1", "--record", str(rec), "--sim", "max_env_steps=160")
        rc, _ = cli("finetune", str(r), "--data", str(rec), "--no-progress")
        again = work / "p22-rec-again"
        again.mkdir()
        for p in rec.glob("episode_*.npz"):
            ep = Episode.load(p)
            Episode(ep.obs, ep.action, ep.reward, ep.physics_state, {**ep.meta, "note": "x"}).save(again / p.name)
        rc2, out2 = cli("finetune", str(r), "--data", str(again), "--no-progress")
        held = len(list((r / "robot").glob("episode_*.npz")))
        return rc == rc2 == 0 and held == 1 and "(0 new" in out2, f"{held} held; " + tail(out2, 60)
    record(cat, "a recording saved again with one more metadata key (imported twice: probe 21)", recording_saved_again)

    for args, needle, what in (
            (["finetune", str(base), "--data", str(work), "env_steps=99999"], "cannot change env_steps",
             "finetune env_steps=99999 (taken and recorded)"),
            (["eval", str(base), "--episodes", "1", "value.lr=0.5"], "trains nothing", "eval value.lr=0.5 (taken)"),
            (["finetune", str(base), "--data", str(work), "planner.samples=37"], "it plans nothing",
             "finetune planner.samples=37 (taken: probe 21)"),
            (["whatif", str(base), "--episode", "0", "--episode", "1"], "given twice", "whatif --episode twice")):
        record(cat, what, lambda args=args, needle=needle: untouched(base, args, needle))

    def unmatched_delay():
        r = copy_run(base, work / "p22-delay")
        rc, out = cli("eval", str(r), "--episodes", "1", "--shift", "delay-1", "planner.delay=0", "--no-progress")
        return rc == 0 and "compensates 0" in out, tail(out, 90)
    record(cat, "eval on a robot with one step of delay, the planner compensating none (silent: probe 21)",
           unmatched_delay)

    def removed_lock():
        import test_faults as tf

        r = copy_run(base, work / "p22-lock")
        holder = tf.hold_lock(r)
        try:
            (r / ".lock").unlink()
            rc, out = cli("collect", str(r), "--episodes", "1", "--no-progress")
        finally:
            holder.kill()
            holder.wait()
        return rc == 2 and "its .lock file, which names it, was removed" in out, tail(out, 90)
    record(cat, "RUN/.lock removed beside its writer, then collect (a second writer got in)", removed_lock)

    def unlogged_eval_copy():
        import shutil

        r = copy_run(base, work / "p22-evalcopy")
        cli("eval", str(r), "--episodes", "1", "--no-progress")
        n = len(list((r / "episodes").glob("episode_*.npz")))
        shutil.copyfile(next((r / "eval").glob("episode_*.npz")), r / "episodes" / f"episode_{n:06d}.npz")
        return untouched(r, ["train", str(r), "--no-progress"], "has no record in metrics.jsonl")
    record(cat, "the run's own evaluation episode copied in as the next training episode (trained on)",
           unlogged_eval_copy)

    def deep_override():
        deep = "[" * 3000 + "]" * 3000
        return untouched(base, ["eval", str(base), "--episodes", "1", f"goal.state={deep}"], "too deep for a setting")
    record(cat, "an override nested 3,000 deep (a RecursionError traceback)", deep_override)

    def launch_file_as_planner():
        from fault_kit import ROOT

        rc, out = cli("deploy", str(ROOT / "launch" / "arm-reach.toml"), "--episodes", "1")
        return rc == 2 and "not an ONNX planner" in out, tail(out, 90)
    record(cat, "deploy given a launch file ('truncated or corrupted')", launch_file_as_planner)

    def manifest_names_an_oracle_episode():
        import json

        import test_faults as tf

        r = work / "p22-manifest"
        cli("run", f"run_dir={r}", *tf.TINY, "--no-progress")
        cli("eval", str(r), "--planner", "oracle", "--episodes", "1", "--no-progress")
        m = json.loads((r / "manifest.json").read_text())
        n = len(list((r / "eval").glob("episode_*.npz"))) - 1
        (r / "manifest.json").write_text(json.dumps({**m, "status": "running", "final_eval_from": n,
                                                     "final_eval_episodes": [n]}))
        rc, out = cli("run", f"run_dir={r}", "--resume", "--no-progress")
        named = ("played by the 'oracle' planner, not the run's own learned one",
                 "final evaluation's record in metrics.jsonl names")  # the second since probe 29, checked first
        return rc == 2 and any(n in out for n in named), tail(out, 90)
    record(cat, "manifest.json edited to name an oracle episode as the final evaluation (the run's headline)",
           manifest_names_an_oracle_episode)


def session21_fixes(base: Path, planner: Path, work: Path) -> None:
    """What probe 22 left, and probe 23's defect and ugly cases, fixed in session 21."""
    cat = "session 21: probe 22's leftovers"

    def another_runs_episode():
        import shutil

        import test_faults as tf

        other = work / "p21s-other"
        cli("collect", str(other), *tf.TINY, "--policy", "random", "--episodes", "1", "--no-progress")
        r = copy_run(base, work / "p21s-own")
        n = len(list((r / "episodes").glob("episode_*.npz")))
        shutil.copyfile(other / "episodes" / "episode_000000.npz", r / "episodes" / f"episode_{n:06d}.npz")
        return untouched(r, ["train", str(r), "--no-progress"], "collected by")
    record(cat, "another run's training episode of the same task copied in as the next one (trained on)",
           another_runs_episode)

    def collect_after_a_foreign_file():
        import shutil

        r = copy_run(base, work / "p23-collect")
        n = len(list((r / "episodes").glob("episode_*.npz")))
        shutil.copyfile(work / "p21s-other" / "episodes" / "episode_000000.npz", r / "episodes" / f"episode_{n:06d}.npz")
        return untouched(r, ["collect", str(r), "--episodes", "1", "--policy", "random", "--no-progress"],
                         "collected by")
    record(cat, "collect after another run's episode (probe 23: stored after it, and the run never trained again)",
           collect_after_a_foreign_file)

    def planner_settings_on_random_actions():
        return untouched(base, ["eval", str(base), "--planner", "random", "--episodes", "1", "planner.samples=17"],
                         "random actions plan nothing")
    record(cat, "eval --planner random planner.samples=17 (probe 23: taken and recorded, unused)",
           planner_settings_on_random_actions)


def probe25_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects of the twenty-fifth hostile probe (2026-11-28), fixed in session 24."""
    cat = "probe 2026-11-28 (25th)"

    def two_sessions_one_process():
        from robot_wm.io import RunLockedError
        from robot_wm.run_dir import RunDir
        from robot_wm.runner import Session

        run = RunDir(copy_run(base, work / "p25-two"))
        before = sorted(p.name for p in (run.root / "eval").glob("*.npz")) if (run.root / "eval").exists() else []
        with Session.open(run.load_config(), run, progress=False):
            try:
                Session.open(run.load_config(), RunDir(run.root), progress=False).close()
            except RunLockedError as e:
                after = sorted(p.name for p in (run.root / "eval").glob("*.npz")) if (run.root / "eval").exists() else []
                return "already being written by this process" in str(e) and after == before, tail(str(e), 90)
        return False, "a second writing session opened on a run this process writes"
    record(cat, "two sessions of one process writing one run (duplicate episodes under wrong indices)",
           two_sessions_one_process)

    def torn_record_under_a_size_limit():
        import subprocess
        import sys

        path = copy_run(base, work / "p25-fsize") / "metrics.jsonl"
        before = path.read_bytes()
        code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY)); "
                "from robot_wm.io import append_jsonl; from pathlib import Path; "
                "append_jsonl(Path(sys.argv[1]), {'kind': 'eval', 'x': 'y' * 4000})")
        r = subprocess.run([sys.executable, "-c", code, str(path), str(len(before) + 100)], capture_output=True,
                           text=True, timeout=120, check=False)
        return r.returncode != 0 and path.read_bytes() == before, tail(r.stderr.strip(), 90)
    record(cat, "a record appended under a file size limit (a torn record kept, 'nothing half-written')",
           torn_record_under_a_size_limit)
