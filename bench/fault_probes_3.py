"""The fault report's catalogue, continued (``fault_probes_2.py`` holds probes 14-16): one function per hostile
probe, each case a reproduction of what that probe found, checked as the report checks every case."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from fault_kit import cli, copy_run, record, refused, tail, tf


def delayed_recording(planner: Path, folder: Path) -> Path:
    """``folder``: one short episode of ``planner`` deployed on a robot whose commands act a step late (made once)."""
    if not folder.exists():
        cli("deploy", str(planner), "--episodes", "1", "--shift", "delay-1", "--record", str(folder), "--sim",
            "max_env_steps=80")
    return folder


def probe16_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects and ugly cases of the seventeenth hostile probe (2026-11-27; the sixteenth category)."""
    cat = "probe 2026-11-27 (16th)"

    def recorder_seed():
        from robot_wm.runtime.record import DeploymentRecorder
        from robot_wm.runtime.robot import SimRobot

        robot = SimRobot(tf._sim_env())
        robot.reset(0)
        rec = DeploymentRecorder(work / "p16-rec", task="cartpole-swingup", planner="x", action_repeat=8, planner_delay=0)
        return refused(lambda: rec.begin(robot, -1), ValueError, "seed=-1",
                       "begun: the episode would be refused only at end(), after the robot moved")
    record(cat, "a recorder begun with seed -1 (the driven episode lost at end())", recorder_seed)

    def sim_twice():
        rc, out = cli("deploy", str(planner), "--task", "cartpole-swingup", "--episodes", "1", "--sim",
                      "randomize.mass=[1.3,1.3]", "--record", str(work / "p16-sim"), "--sim", "max_env_steps=80")
        if rc != 0:
            return False, tail(out)
        from robot_wm.data.dataset import EpisodeDataset

        mass = EpisodeDataset(work / "p16-sim")[0].meta.get("randomization", {}).get("mass")
        return mass == 1.3, f"the recorded robot's mass scale: {mass}"
    record(cat, "deploy --sim A --record R --sim B (the first --sim dropped: the nominal robot recorded)", sim_twice)

    def other_time_step():
        r = copy_run(base, work / "p16-ar")
        tf._retimed_checkpoint(r, r / "checkpoints", action_repeat=4)
        rc, out = cli("eval", str(r), "--episodes", "1", "--no-progress")
        return rc == 2 and "trained at 4" in out, tail(out, 90)
    record(cat, "a checkpoint of action repeat 4 in a run of 8 (planned at 8 without a word)", other_time_step)

    def loose_checkpoint():
        import onnx

        loose = tf._retimed_checkpoint(base, work / "p16-loose", action_repeat=4)
        rc, out = cli("export", str(loose), "--out", str(work / "p16-loose.onnx"))
        if rc != 0:
            return False, tail(out)
        props = {p.key: p.value for p in onnx.load(str(work / "p16-loose.onnx")).metadata_props}
        return props["action_repeat"] == "4", f"exported at action repeat {props['action_repeat']}"
    record(cat, "export of a loose checkpoint of action repeat 4 (exported at the default 8)", loose_checkpoint)

    def unaligned_held():
        rc, out = cli("deploy", str(planner), "--episodes", "1", "--shift", "delay-1", "--record",
                      str(work / "p16-late"), "--sim", "max_env_steps=80")
        if rc != 0:
            return False, tail(out)
        r = copy_run(base, work / "p16-held")
        (r / "robot").mkdir()
        src = next((work / "p16-late").glob("episode_*.npz"))
        z = dict(np.load(src))
        meta = json.loads(str(z["meta"]))
        meta["imported_from"] = {"path": str(src), "sha256": "0" * 64}  # as if imported before realignment
        z["meta"], z["physics_state"] = np.array(json.dumps(meta)), np.zeros((len(z["obs"]), 0))
        np.savez(r / "robot" / "episode_000000.npz", **z)
        rc, out = cli("train", str(r), "--no-progress")
        return rc == 2 and "not realigned by that delay" in out, tail(out, 90)
    record(cat, "a delayed robot's recording in RUN/robot/, not realigned (trained on by every round)", unaligned_held)

    def absurd_state():
        from robot_wm.runtime.session import PlannerSession

        s = PlannerSession(planner, threads=1)
        out = s.step(np.full(s.meta.state_dim, 2.0**62, np.float32), s.initial_plan())
        return not out.valid and np.all(np.isfinite(out.action)), f"valid={out.valid}, best_return={out.best_return}"
    record(cat, "a state of 2**62 into the exported planner (planned as valid, return 1e19)", absurd_state)

    def nested_run():
        r = copy_run(base, work / "p16-outer")
        rc, out = cli("run", f"run_dir={r / 'robot'}", "env_steps=100", "--no-progress")
        return rc == 2 and "lies inside the run directory" in out and not (r / "robot").exists(), tail(out, 90)
    record(cat, "run run_dir=RUN/robot (a run inside a run, which finetune then wrote into)", nested_run)

    def eval_linked_to_episodes():
        r = copy_run(base, work / "p16-link")
        shutil.rmtree(r / "eval")
        (r / "eval").symlink_to("episodes")
        before = len(list((r / "episodes").iterdir()))
        rc, out = cli("eval", str(r), "--episodes", "1", "--no-progress")
        kept = len(list((r / "episodes").iterdir())) == before
        return rc == 2 and "under another name" in out and kept, tail(out, 90)
    record(cat, "eval with RUN/eval a link to RUN/episodes (the evaluation trained on)", eval_linked_to_episodes)

    def arabic_digits():
        rc, out = cli("deploy", str(planner), "--safe-action=\u0660.\u0665", "--episodes", "1")
        return rc == 2 and "expected comma-separated numbers" in out, tail(out, 90)
    record(cat, "deploy --safe-action=\u0660.\u0665 (Arabic-Indic digits read as 0.5)", arabic_digits)


def probe17_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects of the eighteenth hostile probe (2026-11-27, mid-session; the seventeenth category)."""
    cat = "probe 2026-11-27 (17th)"

    def recorder_without_delay():
        from robot_wm.runtime.record import DeploymentRecorder

        return refused(lambda: DeploymentRecorder(work / "p17-rec", task="cartpole-swingup", planner="x",
                                                  action_repeat=8), TypeError, "planner_delay",
                       "a recorder that does not say its planner's delay (a delayed robot's rows imported unaligned)")
    record(cat, "a recorder made without the delay its planner compensates", recorder_without_delay)

    def other_task():
        r = copy_run(base, work / "p17-task")
        tf._retimed_checkpoint(r, r / "checkpoints", task="cartpole-balance")
        rc, out = cli("export", str(r), "--out", str(work / "p17-task.onnx"))
        return rc == 2 and "is a model of task 'cartpole-balance'" in out, tail(out, 90)
    record(cat, "a checkpoint of another task in a run (exported and evaluated as the run's)", other_task)

    def finetune_unlocked():
        from robot_wm.finetune import finetune
        from robot_wm.run_dir import RunDir
        from robot_wm.runner import Session

        run = RunDir(copy_run(base, work / "p17-unlocked"))
        with Session.open(run.load_config(), run, progress=False, lock=False) as s:
            return refused(lambda: finetune(s, work / "nothing"), RuntimeError, "does not hold the run's lock",
                           "fine-tuned through a read-only session")
    record(cat, "finetune() through a session without the run's lock (wrote a round)", finetune_unlocked)

    def copy_and_recorded():
        rc, out = cli("deploy", str(planner), "--episodes", "1", "--record", str(work / "p17-rec0"), "--sim",
                      "max_env_steps=80")
        r = copy_run(base, work / "p17-ft")
        rc2, out2 = cli("finetune", str(r), "--data", str(work / "p17-rec0"), "--no-progress")
        if rc or rc2:
            return False, tail(out + out2)
        both = work / "p17-both"
        both.mkdir()
        shutil.copy(r / "robot" / "episode_000000.npz", both / "episode_000000.npz")  # the import first,
        shutil.copy(work / "p17-rec0" / "episode_000000.npz", both / "episode_000001.npz")  # then its recording
        r2 = copy_run(base, work / "p17-ft2")
        rc, out = cli("finetune", str(r2), "--data", str(both), "--no-progress")
        held = len(list((r2 / "robot").glob("episode_*.npz")))
        return rc == 0 and held == 1, f"{held} episodes imported from an import and its recording"
    record(cat, "a folder holding an imported episode and the recording it came from (imported twice)",
           copy_and_recorded)

    def out_below_a_file():
        rc, out = cli("export", str(base), "--out", str(planner / "x.onnx"))
        return rc == 2 and "is a file, not a folder" in out, tail(out, 90)
    record(cat, "export --out PLANNER.onnx/x.onnx (the whole export ran, then 'Not a directory')", out_below_a_file)


def probe17_leftovers(base: Path, planner: Path, work: Path) -> None:
    """The ugly cases the eighteenth hostile probe left (fixed in the session after it; their own category)."""
    cat = "probe 2026-11-27 (17th): its ugly cases"

    def one_step_delayed():
        from robot_wm.data.dataset import EpisodeDataset
        from robot_wm.data.episode import Episode

        rc, out = cli("deploy", str(planner), "--episodes", "1", "--shift", "delay-1", "--record",
                      str(work / "p17l-late"), "--sim", "max_env_steps=80")
        if rc != 0:
            return False, tail(out)
        ep = EpisodeDataset(work / "p17l-late")[0]
        mixed = EpisodeDataset(work / "p17l-mixed", create=True)
        mixed.append(Episode(ep.obs[:2], ep.action[:1], ep.reward[:1], ep.physics_state[:2],
                             {**ep.meta, "control_steps": 1, "return": float(ep.reward[:1].sum())}))
        mixed.append(ep)
        rc, out = cli("finetune", str(copy_run(base, work / "p17l-ft")), "--data", str(mixed.root), "--no-progress")
        held = len(list((work / "p17l-ft" / "robot").glob("episode_*.npz")))
        return rc == 0 and held == 1 and "1 recorded episodes were left out" in out, f"rc {rc}, {held} held; {tail(out, 90)}"
    record(cat, "a delayed robot's one-step episode beside a full one (the whole folder refused)", one_step_delayed)

    def realigned_into_as_sent():
        from robot_wm.data.episode import Episode
        from robot_wm.data.realign import realign

        ep = Episode(np.zeros((4, 2)), np.zeros((3, 1)), np.zeros(3), np.zeros((4, 0)),
                     {"planner_delay": 1, "realigned_delay": 1})
        return refused(lambda: realign(ep, "x.npz", as_sent=True), ValueError, "the two pairings would mix",
                       "a realigned episode taken into a run that learned commands as sent")
    record(cat, "a realigned recording into a run trained with a randomised delay (two pairings mixed)",
           realigned_into_as_sent)

    def horizon_cut():
        rc, out = cli("whatif", str(base), "--episode", "0", "--step", "40", "--horizon", "5000", "--random", "0")
        return rc == 0 and "is cut to" in out, tail(out, 90)
    record(cat, "whatif --horizon past the episode's end (cut without a word)", horizon_cut)

    def edited_delay():
        from robot_wm.runtime.session import ModelFileError, PlannerSession

        edited = tf.edit_metadata(planner, work / "p17l-delay.onnx", {"delay": "1"})  # the hash recomputed
        return refused(lambda: PlannerSession(edited), ModelFileError, "the graph was built with delay=0",
                       "a planner whose metadata says delay 1 over a graph of delay 0 (recorded as delay 1)")
    record(cat, "a planner file's delay edited, hash recomputed (printed and recorded)", edited_delay)

    def fallback_names_dimension():
        from robot_wm.runtime.loop import ControlLoop, LoopStats
        from robot_wm.runtime.session import PlannerSession

        robot = tf.FaultyRobot(tf._sim_env(), {1: 1e19})
        robot.inner.reset(0)
        loop = ControlLoop(PlannerSession(planner, provider="cpu", threads=1), robot, deadline_s=30.0, realtime=False)
        stats = LoopStats(loop.rate_hz, loop.deadline_s)
        loop.tick(stats)
        loop.tick(stats)
        said = str(loop.last_fallback)
        return "state[1] = 1e+19 is beyond the model's reach [" in said, said[:110]
    record(cat, "a runtime fallback for a state beyond the model's reach (the dimension never named)",
           fallback_names_dimension)

    def endless_line():
        import io
        import sys

        stdin, sys.stdin = sys.stdin, io.StringIO("0.5\n" + "0" * (1 << 21))
        try:
            rc, out = cli("drive", str(base), "--episode", "0", "--step", "3", "--out", str(work / "p17l-drive.gif"))
        finally:
            sys.stdin = stdin
        return rc == 0 and (work / "p17l-drive.gif").exists(), tail(out, 90)
    record(cat, "drive fed a 2 MiB line after one action (ended with an error, its --out video lost)", endless_line)


def probe18_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects of the nineteenth hostile probe (2026-11-27; the eighteenth category)."""
    cat = "probe 2026-11-27 (18th)"

    def extra_realigned():
        from robot_wm.runtime.record import DeploymentRecorder

        return refused(lambda: DeploymentRecorder(work / "p18-rec", task="cartpole-swingup", planner="x",
                                                  action_repeat=8, planner_delay=1, extra={"realigned_delay": 1}),
                       ValueError, "would replace what the recorder or an import writes",
                       "a recording saying realigned_delay=1 (imported unaligned, announced as realigned)")
    record(cat, "a recorder's extra metadata realigned_delay=1", extra_realigned)

    def late_recording():
        return delayed_recording(planner, work / "p18-late")

    def delayed_collect():
        r = copy_run(base, work / "p18-dl")
        rc, out = cli("collect", str(r), "--episodes", "1", "env.randomize.action_delay=[1,1]", "env.max_env_steps=80",
                      "--no-progress")
        rc2, out2 = cli("finetune", str(r), "--data", str(late_recording()), "--no-progress")
        return rc == 0 and rc2 == 0 and "kept as sent" in out2, tail(out + out2, 90)
    record(cat, "a delayed collect, then finetune on a delayed robot (realigned beside episodes as sent)",
           delayed_collect)

    def whatif_as_sent():
        from robot_wm.data.dataset import EpisodeDataset

        n = len(EpisodeDataset(late_recording())[0])
        rc, out = cli("whatif", str(work / "p18-dl"), "--data", str(late_recording()), "--step", str(n - 1),
                      "--horizon", "1", "--random", "0")
        return rc == 0 and "realigned" not in out, tail(out, 90)
    record(cat, "whatif --data in a run that keeps robot data as sent (shown realigned)", whatif_as_sent)

    def rerun_with_short():
        from robot_wm.data.dataset import EpisodeDataset
        from robot_wm.data.episode import Episode

        ep = EpisodeDataset(late_recording())[0]
        mixed = EpisodeDataset(work / "p18-mixed", create=True)
        mixed.append(ep)
        mixed.append(Episode(ep.obs[:2], ep.action[:1], ep.reward[:1], ep.physics_state[:2],
                             {**ep.meta, "control_steps": 1, "return": float(ep.reward[:1].sum())}))
        r = copy_run(base, work / "p18-rerun")
        rc, _ = cli("finetune", str(r), "--data", str(mixed.root), "--no-progress")
        rc2, out2 = cli("finetune", str(r), "--data", str(mixed.root), "--no-progress")
        return rc == 0 and rc2 == 0, tail(out2, 90)
    record(cat, "finetune again on a folder holding a too-short episode (the advised recovery refused)",
           rerun_with_short)

    def stop_after_latest():
        from robot_wm.run_dir import RunDir

        r = copy_run(base, work / "p18-sig")
        real = RunDir.set_latest

        def then_stopped(self, stem):
            real(self, stem)
            raise KeyboardInterrupt
        RunDir.set_latest = then_stopped
        try:
            rc, _ = cli("finetune", str(r), "--data", str(late_recording()), "--no-progress")
        finally:
            RunDir.set_latest = real
        held = len(list((r / "robot").glob("episode_*.npz")))
        latest = RunDir(r).latest_checkpoint()
        trained_on = json.loads(latest.read_text()).get("finetune", {}).get("robot_episodes")
        return rc == 130 and held == trained_on == 1, f"rc {rc}; {held} held, the latest round trained on {trained_on}"
    record(cat, "a stop right after the fine-tuned round became the latest (its import taken back)", stop_after_latest)


def probe19_defects(base: Path, planner: Path, work: Path) -> None:
    """The defects of the twentieth hostile probe (2026-11-27; the nineteenth category)."""
    cat = "probe 2026-11-27 (19th)"

    def recording():
        return delayed_recording(planner, work / "p19-late")

    def delayed_collect_after_realigned():
        r = copy_run(base, work / "p19-dlc")
        rc, _ = cli("finetune", str(r), "--data", str(recording()), "--no-progress")
        before = len(list((r / "episodes").glob("episode_*.npz")))
        rc2, out2 = cli("collect", str(r), "--episodes", "1", "env.randomize.action_delay=[1,1]",
                        "env.max_env_steps=80", "--no-progress")
        after = len(list((r / "episodes").glob("episode_*.npz")))
        return rc == 0 and rc2 == 2 and after == before and "realigned by its delay" in out2, tail(out2, 90)
    record(cat, "a delayed collect into a run whose robot data was realigned (every later train refused)",
           delayed_collect_after_realigned)

    def robot_episode_edited():
        from robot_wm.data.episode import Episode

        r = copy_run(base, work / "p19-edit")
        rc, _ = cli("finetune", str(r), "--data", str(recording()), "--no-progress")
        path = r / "robot" / "episode_000000.npz"
        ep = Episode.load(path)
        path.unlink()
        Episode(ep.obs, -ep.action, ep.reward, ep.physics_state, ep.meta).save(path)
        rc2, out2 = cli("train", str(r), "--no-progress")
        return rc == 0 and rc2 == 2 and "no longer holds 1 of the" in out2, tail(out2, 90)
    record(cat, "a held robot episode edited in range after its fine-tuning (trained on without a word)",
           robot_episode_edited)
