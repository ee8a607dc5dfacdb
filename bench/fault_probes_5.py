"""The fault report's catalogue, continued (``fault_probes_4.py`` holds probes 20-25): the twenty-sixth and
twenty-seventh probes' defects (2026-11-29, fixed in session 28) and what they left (fixed in session 29)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

from fault_kit import cli, copy_run, record, tail, untouched


def _sweep(folder: Path, rows: str) -> Path:
    """A hand-made sweep folder whose results.csv holds ``rows`` under the columns every report reads."""
    folder.mkdir()
    (folder / "results.csv").write_text("name,task,seed,overrides,status,eval_return_mean\n" + rows)
    return folder


def _report_refuses(folder: Path, rows: str, needle: str) -> tuple[bool, str]:
    """``robot-wm report`` on a hand-made sweep folder holding ``rows`` exits 2 naming ``needle``."""
    rc, out = cli("report", str(_sweep(folder, rows)))
    return rc == 2 and needle in out, tail(out, 90)


def _deploy_refuses(planner: Path, edit, bad: Path, needle: str) -> tuple[bool, str]:
    """``robot-wm deploy`` of a copy of ``planner`` changed by ``edit(model)`` exits 2 naming ``needle``."""
    import onnx

    m = onnx.load(str(planner))
    edit(m)
    onnx.save(m, str(bad))
    rc, out = cli("deploy", str(bad), "--episodes", "1")
    return rc == 2 and needle in out, tail(out, 90)


def _refused(fn, needle: str) -> tuple[bool, str]:
    """``fn()`` raised a ValueError whose message holds ``needle``."""
    try:
        fn()
    except ValueError as e:
        return needle in str(e), str(e)[:90]
    return False, "accepted"


def probe26_27_defects(base: Path, complete: Path, work: Path) -> None:
    """The defects of the twenty-sixth and twenty-seventh probes (one frozen snapshot, two helpers)."""
    cat = "probes 2026-11-29 (26th, 27th)"

    def web_app_manifest():
        folder = work / "p27-app"
        folder.mkdir()
        (folder / "manifest.json").write_text('{"name": "My App", "start_url": "/"}')
        (folder / "index.html").write_text("<p/>")
        from conftest import TINY_RUN_ARGS

        rc, out = cli("run", f"run_dir={folder}", *TINY_RUN_ARGS, "--resume", "--no-progress")
        kept = sorted(p.name for p in folder.iterdir()) == ["index.html", "manifest.json"]
        return rc == 2 and "not a robot-wm run" in out and kept, tail(out, 90)
    record(cat, "a web app's manifest.json taken for a run (--resume wrote a run into the folder)", web_app_manifest)

    def final_eval_episode_removed():
        r = copy_run(complete, work / "p27-final")
        max((r / "eval").glob("episode_*.npz")).unlink()
        return untouched(r, ["eval", str(r), "--episodes", "1", "--planner", "random", "--no-progress"],
                         "evaluation episode file(s)")
    record(cat, "the final evaluation's last episode removed, then eval (stored under the manifest's number)",
           final_eval_episode_removed)

    def foreign_checkpoint():
        from conftest import tiny_run

        r, other = copy_run(complete, work / "p27-foreign"), work / "p27-other"
        with contextlib.redirect_stdout(io.StringIO()):  # its summary table
            rc = tiny_run(other, "seed=3")
        name = json.loads((r / "checkpoints" / "latest.json").read_text())["checkpoint"]
        for suffix in (".json", ".safetensors"):
            shutil.copy(other / "checkpoints" / Path(name).with_suffix(suffix), r / "checkpoints")
        ok, note = untouched(r, ["eval", str(r), "--episodes", "1", "--no-progress"], "was trained by another run")
        return rc == 0 and ok, note
    record(cat, "another run's checkpoint copied in under a round name (evaluated as the run's own)", foreign_checkpoint)


def probe26_27_leftovers(base: Path, complete: Path, planner: Path, work: Path) -> None:
    """What the twenty-sixth and twenty-seventh probes left, fixed in session 29."""
    cat = "session 29: probes 26-27's leftovers"

    def task_module_in_a_received_run():
        r = copy_run(complete, work / "p28-received")
        marker = work / "p28-ran"
        (r / "received_task.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef reward(m, d):\n    return 1.0\n")
        code = ("from sim.mjcf import import_callable\n"
                "try:\n    import_callable('received_task:reward', 'env.reward', 'reward(model, data)')\n"
                "except ValueError as e:\n    print(e)\n")
        p = subprocess.run([sys.executable, "-c", code], cwd=r, capture_output=True, text=True, timeout=120,
                           check=False)
        return "from inside the run folder" in p.stdout and not marker.exists(), tail(p.stdout + p.stderr, 90)
    record(cat, "a received run's task module beside its config.toml (imported when a command ran inside it)",
           task_module_in_a_received_run)

    def rebuilt_summary_after_finetune():
        r = copy_run(complete, work / "p28-summary")
        before = json.loads((r / "summary.json").read_text())
        rec = work / "p28-rec"
        rc0, _ = cli("deploy", str(planner), "--episodes", "1", "--record", str(rec), "--sim", "max_env_steps=160")
        rc1, _ = cli("finetune", str(r), "--data", str(rec), "--no-progress")
        (r / "summary.json").unlink()
        from conftest import tiny_run

        with contextlib.redirect_stdout(io.StringIO()):
            rc2 = tiny_run(r, "--resume")
        after = json.loads((r / "summary.json").read_text())
        same = after["multistep_mse"] == before["multistep_mse"] and "robot_episodes" not in after
        return rc0 == rc1 == rc2 == 0 and same, f"multistep_mse {after['multistep_mse'].get('1')}"
    record(cat, "summary.json rebuilt after a finetune (the old return beside the newest round's figures)",
           rebuilt_summary_after_finetune)

    def manifest_removed():
        r = copy_run(complete, work / "p28-nomanifest")
        (r / "manifest.json").unlink()
        from conftest import TINY_RUN_ARGS

        return untouched(r, ["run", f"run_dir={r}", *TINY_RUN_ARGS, "--resume", "--no-progress"],
                         "has lost its manifest.json")
    record(cat, "a complete run's manifest.json removed, then --resume (rebuilt without a word or the run's id)",
           manifest_removed)

    def web_site_export():
        site = work / "p28-site"
        site.mkdir()
        (site / "config.toml").write_text('baseURL = "https://example.org/"\n')
        rc, out = cli("export", str(site), "--out", str(work / "p28-site.onnx"))
        return rc == 2 and "is not a run directory" in out and "damaged" not in out, tail(out, 90)
    record(cat, "export of a web site's folder (its config.toml called a damaged run's)", web_site_export)

    def two_recorders_two_tasks():
        from robot_wm.runtime.record import DeploymentRecorder

        folder = work / "p28-two"
        DeploymentRecorder(folder, task="cartpole-swingup", planner="p", action_repeat=8, planner_delay=0)
        return _refused(lambda: DeploymentRecorder(folder, task="cartpole-balance", planner="p", action_repeat=8,
                                                   planner_delay=0), "is claimed (its recording.json) for task 'cartpole-swingup'")
    record(cat, "two deploy --record of different tasks into one new folder (it held both)", two_recorders_two_tasks)

    def report_out_trailing_slash():
        sweep = _sweep(work / "p28-sweep", "x,cartpole-swingup,0,,complete,1\n")
        rc, out = cli("report", str(sweep), "--out", f"{work}/p28-plot.png/")
        return rc == 2 and "ends in a slash" in out and not (work / "p28-plot.png").exists(), tail(out, 90)
    record(cat, "report --out x.png/ (a folder meant: the file x.png written)", report_out_trailing_slash)


def probe28_29_defects(base: Path, complete: Path, planner: Path, work: Path) -> None:
    """The defects of the twenty-eighth and twenty-ninth probes (2026-11-29, one frozen snapshot, two helpers), fixed
    in session 29."""
    import numpy as np
    from fault_probes_4 import _reseal

    cat = "probes 2026-11-29 (28th, 29th)"

    def rebuilt(name: str, edit) -> tuple[int, str]:
        from conftest import TINY_RUN_ARGS

        r = copy_run(complete, work / name)
        (r / "summary.json").unlink()
        edit(r)
        return cli("run", f"run_dir={r}", *TINY_RUN_ARGS, "--resume", "--no-progress")

    def final_list_edited():
        def edit(r):
            m = json.loads((r / "manifest.json").read_text())
            (r / "manifest.json").write_text(json.dumps({**m, "final_eval_episodes": m["final_eval_episodes"] * 3}))
        rc, out = rebuilt("p29-list", edit)
        return rc == 2 and "repeat an episode" in out, tail(out, 90)
    record(cat, "final_eval_episodes edited to one episode three times, summary rebuilt (the headline)", final_list_edited)

    def final_episode_edited():
        from robot_wm.data.episode import Episode

        def edit(r):
            path = r / "eval" / "episode_000000.npz"
            ep = Episode.load(path)
            path.unlink()
            Episode(ep.obs, ep.action, np.ones_like(ep.reward), ep.physics_state, ep.meta).save(path)
        rc, out = rebuilt("p29-evalep", edit)
        return rc == 2 and "changed after it was stored" in out, tail(out, 90)
    record(cat, "the final evaluation's episode edited, summary rebuilt (its return the headline)", final_episode_edited)

    def records_removed():
        r = copy_run(complete, work / "p29-nolog")
        (r / "metrics.jsonl").unlink()
        return untouched(r, ["train", str(r), "--no-progress"], "holds no record of the")  # (its words since probe 40)
    record(cat, "metrics.jsonl removed, then train (the episode checks switched off)", records_removed)

    def settings_edited():
        r = copy_run(complete, work / "p29-edit")
        text = (r / "config.toml").read_text()
        (r / "config.toml").write_text(text.replace("\nsamples = 32\n", "\nsamples = 48\n", 1))
        return untouched(r, ["eval", str(r), "--episodes", "1", "--no-progress"], "was edited by hand: planner.samples")
    record(cat, "planner.samples edited into config.toml, then a command (the edit trained and evaluated on)",
           settings_edited)

    def padded_planner():
        padded = work / "p29-padded.onnx"
        tag, size = bytes([0x9A, 0x06]), bytes([0x80, 0x80, 0x80, 0x01])  # varints: field 99, wire type 2; 2**21 bytes
        padded.write_bytes(planner.read_bytes() + tag + size + bytes(2**21))
        rc, out = cli("deploy", str(padded), "--episodes", "1")
        return rc == 2 and "that an ONNX model does not have" in out, tail(out, 90)
    record(cat, "a planner padded with an unknown protobuf field (1.9 GB took 6 GB to deploy)", padded_planner)

    record(cat, "a results.csv row with a cell more than its header ('1,000' reported as 1.0)",
           lambda: _report_refuses(work / "p29-row", "a,cartpole-swingup,0,,complete,1,000\n",
                                   "cell(s) more than the header"))

    def many_tasks():
        sweep = _sweep(work / "p29-tasks", "".join(f"t{i},task{i},0,,complete,{i}\n" for i in range(10_000)))
        rc, out = cli("report", str(sweep))
        return rc == 2 and "at most 30" in out, tail(out, 90)
    record(cat, "a results.csv of 10,000 task names (drew for minutes at 12 GB)", many_tasks)

    def huge_q_weight():
        r = _reseal(copy_run(base, work / "p29-q"), lambda t: t["value.q.out.weight"][0].fill_(1e38))
        rc, out = cli("export", str(r), "--out", str(work / "p29-q.onnx"))
        return rc == 2 and "holds weights beyond" in out, tail(out, 90)
    record(cat, "one Q head's weight at 1e38, hashes resealed (exported and deployed, exit 0)", huge_q_weight)

    def refused_record_labels_nothing():
        folder = work / "p29-old-rec"
        cli("deploy", str(planner), "--episodes", "1", "--record", str(folder), "--sim", "max_env_steps=80")
        (folder / "recording.json").unlink()  # recorded before claims were written
        from robot_wm.runtime.record import DeploymentRecorder

        DeploymentRecorder(folder, task="cartpole-balance", planner="p", action_repeat=8, planner_delay=0)
        return not (folder / "recording.json").exists(), "no claim written over older recordings"
    record(cat, "a refused deploy --record labelled a folder of older recordings with its task",
           refused_record_labels_nothing)


def probe30_leftovers(base: Path, complete: Path, planner: Path, work: Path) -> None:
    """What the thirtieth probe (session 29's third, 20b32e0) and session 29's own tries left, fixed in session 30."""
    import os

    cat = "session 30: probe 30's leftovers"

    def under_limit(limit: int, *argv: str) -> tuple[int, str]:
        r = subprocess.run(["prlimit", f"--as={limit}", sys.executable, "-m", "robot_wm.cli", *argv],
                           capture_output=True, text=True, timeout=120, check=False,
                           env={**os.environ, "MUJOCO_GL": "egl"})
        return r.returncode, r.stderr

    def dream_under_1gb():
        try:
            rc, out = under_limit(10**9, "dream", str(complete), "--out", str(work / "p30-d.mp4"))
        except subprocess.TimeoutExpired:
            return False, "still running after 120 s (the OpenBLAS hang)"
        return rc == 2 and "ulimit -v" in out and not (work / "p30-d.mp4").exists(), tail(out, 90)
    record(cat, "dream under ulimit -v 1 GB (hung for hours in OpenBLAS's start-up)", dream_under_1gb)

    def deploy_under_600mb():
        rc, out = under_limit(600 * 2**20, "deploy", str(planner), "--episodes", "1")
        return rc == 2 and "ulimit -v" in out and "corrupted" not in out, tail(out, 90)
    record(cat, "deploy under ulimit -v 600 MB (a good planner called 'corrupted')", deploy_under_600mb)

    def never_made():
        from conftest import TINY_RUN_ARGS

        rc, out = cli("run", "run_dir=/sys/kernel/robot-wm-x", *TINY_RUN_ARGS, "--no-progress")
        return rc in (1, 2) and "cannot write" in out and "--resume" not in out, tail(out, 90)
    record(cat, "run_dir=/sys/kernel/x (told to --resume a run never made)", never_made)

    def rerun_then_override():
        r = copy_run(complete, work / "p30-rerun")
        rc, out = cli("eval", str(r), "--rerun", "rerun.ghosts=3", "--episodes", "1", "--no-progress")
        return rc == 0 and len(list((r / "rerun").glob("*.rrd"))) == 1, tail(out, 90)
    record(cat, "eval RUN --rerun rerun.ghosts=3 (argparse: invalid choice)", rerun_then_override)

    def goal_beyond_float32():
        from robot_wm.goal import check_goal

        return _refused(lambda: check_goal([1e39, 0, 0, 0, 0], [1] * 5, 5), "has values beyond")
    record(cat, "--goal 1e39 (called 'not finite')", goal_beyond_float32)

    record(cat, "a results.csv seed 'abc' (shown as it stood)",
           lambda: _report_refuses(work / "p30-junk", "a,cartpole-swingup,abc,,complete,1\n", "seed='abc'"))


def probe31_defects(base: Path, complete: Path, planner: Path, work: Path) -> None:
    """The defects of the thirty-first probe (2026-11-29, one frozen snapshot, two helpers), fixed in session 30."""
    import os
    import signal
    import time

    import numpy as np

    cat = "probe 2026-11-29 (31st)"

    def resumed(r: Path, *extra: str) -> tuple[int, str]:
        from conftest import TINY_RUN_ARGS

        return cli("run", f"run_dir={r}", *TINY_RUN_ARGS, "--resume", *extra, "--no-progress")

    def collect_then_rebuild():
        r = copy_run(complete, work / "p31-collect")
        old = json.loads((r / "summary.json").read_text())
        cli("collect", str(r), "--episodes", "1", "--no-progress")
        (r / "summary.json").unlink()
        rc, _ = resumed(r)
        new = json.loads((r / "summary.json").read_text()) if rc == 0 else {}
        return rc == 0 and new.get("env_steps") == old["env_steps"], f"env_steps {new.get('env_steps')}"
    record(cat, "collect after completion, summary rebuilt (said 800 steps for a model of 400)", collect_then_rebuild)

    def larger_budget():
        r = copy_run(complete, work / "p31-budget")
        (r / "summary.json").unlink()
        m = json.loads((r / "manifest.json").read_text())
        (r / "manifest.json").write_text(json.dumps({**m, "status": "running"}))
        rc, _ = resumed(r, "env_steps=800")
        m = json.loads((r / "manifest.json").read_text())
        return rc == 0 and m["final_eval_from"] == 1, f"final_eval_from {m.get('final_eval_from')}"
    record(cat, "a cut-short final evaluation, then --resume env_steps=800 (round 1's return the headline)",
           larger_budget)

    def bomb_episode():
        from robot_wm.data.episode import Episode

        r = copy_run(complete, work / "p31-bomb")
        files = sorted((r / "episodes").glob("episode_*.npz"))
        own, t = Episode.load(files[-1]), 100_001
        Episode(np.zeros((t + 1, own.obs.shape[1])), np.zeros((t, 1)), np.zeros(t),
                np.zeros((t + 1, own.physics_state.shape[1])),
                {**own.meta, "control_steps": t, "env_steps": 8 * t}).save(r / "episodes" / f"episode_{len(files):06d}.npz")
        return untouched(r, ["train", str(r), "--no-progress"], "more than robot-wm collects in an episode")
    record(cat, "an unrecorded last episode of 100,001 zero steps (13,000,000 took 2.9 GB and hung train)", bomb_episode)

    def eval_rewards_x1000():
        from robot_wm.data.episode import Episode
        from robot_wm.io import file_sha256

        r = copy_run(complete, work / "p31-x1000")
        path = r / "eval" / "episode_000000.npz"
        ep, old = Episode.load(path), file_sha256(path)
        path.unlink()
        Episode(ep.obs, ep.action, ep.reward * 1000, ep.physics_state, ep.meta).save(path)
        (r / "metrics.jsonl").write_text((r / "metrics.jsonl").read_text().replace(old, file_sha256(path)))
        (r / "summary.json").unlink()
        rc, out = resumed(r)
        # refused by the rewards' sum against the episode's record first since probe 41
        return rc == 2 and ("this suite task pays 0 to 1" in out or "its rewards add up to" in out), tail(out, 90)
    record(cat, "a final evaluation episode's rewards x1000, its sha256 re-recorded (a headline of 9776)",
           eval_rewards_x1000)

    def spin_loop():
        from test_faults import add_spin_loop, reseal_graph

        def spin(m):
            add_spin_loop(m, 10**8)
            reseal_graph(m)
        return _deploy_refuses(planner, spin, work / "p31-loop.onnx", "holds a Loop node")
    record(cat, "a planner whose state passes a Loop of 10^8 trips, hashes recomputed (86 s a step, deaf to SIGTERM)",
           spin_loop)

    def second_signal_during_save():
        from robot_wm.data.episode import Episode
        from robot_wm.io import signals_deferred

        ep = Episode(np.zeros((11, 3)), np.zeros((10, 1)), np.zeros(10), np.zeros((11, 2)), {"task": "x"})
        before, saved = signal.signal(signal.SIGINT, signal.default_int_handler), False
        try:
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                ep.save(work / "p31-signal.npz")
                saved = True
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGINT, before)
        return saved and (work / "p31-signal.npz").exists(), "saved whole, the interrupt after it"
    record(cat, "two Ctrl-C during a recorded episode's save (the episode was lost)", second_signal_during_save)

    def stderr_closed():
        from conftest import TINY_RUN_ARGS

        r = work / "p31-stderr"
        p = subprocess.run([sys.executable, "-m", "robot_wm.cli", "run", f"run_dir={r}", *TINY_RUN_ARGS],
                           stdout=subprocess.DEVNULL, timeout=600, check=False, preexec_fn=lambda: os.close(2),
                           env={**os.environ, "MUJOCO_GL": "egl"})
        return p.returncode == 0, f"exit {p.returncode}"
    record(cat, "robot-wm run with its standard error closed (exit 1, no word, no episode)", stderr_closed)


def probe32_defects(base: Path, complete: Path, planner: Path, work: Path) -> None:
    """The defects of the thirty-second probe (2026-11-29, one frozen snapshot, two helpers), fixed in session 30."""
    import onnx

    from robot_wm.goal import check_goal
    from robot_wm.io import file_sha256

    cat = "probe 2026-11-29 (32nd)"

    def swapped_eval_episode():
        from conftest import TINY_RUN_ARGS, tiny_run

        other = work / "p32-other"
        with contextlib.redirect_stdout(io.StringIO()):
            tiny_run(other, "seed=3")
        r = copy_run(complete, work / "p32-swap")
        mine = r / "eval" / "episode_000000.npz"
        old = file_sha256(mine)
        shutil.copy(other / "eval" / "episode_000000.npz", mine)
        (r / "metrics.jsonl").write_text((r / "metrics.jsonl").read_text().replace(old, file_sha256(mine)))
        (r / "summary.json").unlink()
        rc, out = cli("run", f"run_dir={r}", *TINY_RUN_ARGS, "--resume", "--no-progress")
        return rc == 2 and "was collected by another run" in out, tail(out, 90)
    record(cat, "another run's evaluation episode swapped in, its sha256 re-recorded (a rebuilt headline of 36.1)",
           swapped_eval_episode)

    def ad_hoc_in_final_list():
        from conftest import TINY_RUN_ARGS

        r = copy_run(complete, work / "p32-adhoc")
        cli("eval", str(r), "--episodes", "1", "--shift", "mass-1.3", "--no-progress")
        m = json.loads((r / "manifest.json").read_text())
        (r / "manifest.json").write_text(json.dumps({**m, "final_eval_episodes": [0, 1]}))
        (r / "summary.json").unlink()
        rc, out = cli("run", f"run_dir={r}", *TINY_RUN_ARGS, "--resume", "--no-progress")
        return rc == 2 and "complete final evaluation's record" in out, tail(out, 90)
    record(cat, "an ad-hoc shifted eval episode added to a complete run's final list (averaged into the headline)",
           ad_hoc_in_final_list)

    record(cat, "a planner with a 2 MiB doc_string, a field ONNX defines (300 MiB took 1.7 GB to deploy)",
           lambda: _deploy_refuses(planner, lambda m: setattr(m, "doc_string", "x" * (2 << 20)),
                                   work / "p32-doc.onnx", "outside its graph and metadata"))

    def external_from_its_folder():
        import os

        folder = work / "p32-ext"
        folder.mkdir()
        onnx.save_model(onnx.load(str(planner)), str(folder / "p.onnx"), save_as_external_data=True,
                        all_tensors_to_one_file=True, location="w.bin", size_threshold=0)
        here = os.getcwd()
        os.chdir(folder)
        try:
            rc, out = cli("deploy", "p.onnx", "--episodes", "1")
        finally:
            os.chdir(here)
        return rc == 2 and "references external data" in out, tail(out, 90)
    record(cat, "a planner with external data, deployed from its own folder (onnxruntime read the side file)",
           external_from_its_folder)

    record(cat, "a goal of strings and booleans (a goal file's were driven to)",
           lambda: _refused(lambda: check_goal([True, "1", 0, 0, 0], [1] * 5, 5), "holds True (bool)"))
