"""The run directory's writer lock (issue 11, defect 1): two real processes on one run. A second writer is
refused with a message naming the holder; a SIGKILLed holder's lock is taken over; read-only commands work
while a writer holds the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_faults import TINY, cli, episode_hashes, hold_lock, snapshot

from robot_wm.io import RunLockedError
from robot_wm.run_dir import RunDir

LONG = [*TINY, "env_steps=8000"]  # long enough to be caught in the middle


def _start(run: Path, *extra: str) -> subprocess.Popen:
    log = open(run.parent / f"{run.name}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "robot_wm.cli", "run", f"run_dir={run}", *LONG, *extra,
                             "--no-progress"], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "MUJOCO_GL": "egl", "PYTHONUNBUFFERED": "1"})


def _wait(predicate, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, "the first writer ended before the test could pause it"
        try:
            if predicate():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise TimeoutError("the first writer never got there")


def test_second_writer_refused_then_killed_holder_taken_over(tmp_path):
    """The issue's reproduction: a run paused mid-training, a --resume on the same run directory. The
    resume (and collect, train, eval) is refused naming the paused process; export reads meanwhile; once the
    holder is SIGKILLed the resume takes the run over and completes it."""
    run = tmp_path / "run"
    first = _start(run)
    try:
        _wait(lambda: (run / "checkpoints" / "latest.json").exists() and len(episode_hashes(run)) >= 2, first)
        os.kill(first.pid, signal.SIGSTOP)  # paused, still holding the lock
        holder = json.loads((run / ".lock").read_text())
        assert holder["pid"] == first.pid and "run" in holder["command"]
        before = snapshot(run)
        for args in (["run", f"run_dir={run}", "--resume", "--no-progress"],
                     ["collect", str(run), "--no-progress"], ["train", str(run), "--no-progress"],
                     ["eval", str(run), "--episodes", "1", "--no-progress"]):
            rc, out = cli(*args)
            assert rc == 2, (args, out)
            assert f"PID {first.pid}" in out and "robot-wm run" in out and "Traceback" not in out, out
        assert snapshot(run) == before, "a refused writer must change nothing"
        # read-only: export takes no lock
        rc, out = cli("export", str(run), "--out", str(tmp_path / "p.onnx"))
        assert rc == 0 and (tmp_path / "p.onnx").exists(), out
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
    kept = episode_hashes(run)
    # the killed holder's lock is free again: the resume finishes the run (shortened: env_steps may change)
    rc, out = cli("run", f"run_dir={run}", "--resume", "env_steps=800", "--no-progress")
    assert rc == 0, out
    after = episode_hashes(run)
    assert {k: after[k] for k in kept} == kept
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"
    assert (run / ".lock").read_text() == "", "the lock file's holder line goes with the lock"


def test_lock_names_the_holder_and_a_dead_holder_is_taken_over(tmp_path):
    run = RunDir(tmp_path / "run")
    holder = hold_lock(run.root)
    try:
        with pytest.raises(RunLockedError) as e:
            run.lock("robot-wm test")
        msg = str(e.value)
        assert f"PID {holder.pid}" in msg and "fake-holder" in msg and str(run.root) in msg
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    # the dead holder's line is still in the file, but the kernel dropped its flock
    assert str(holder.pid) in run.lock_path.read_text()
    with run.lock("robot-wm test") as lock:
        assert lock.active
        assert json.loads(run.lock_path.read_text())["pid"] == os.getpid()
        # a second process is refused while we hold it
        probe = subprocess.run([sys.executable, "-c", "import sys\nfrom robot_wm.run_dir import RunDir\n"
                                "try:\n    RunDir(sys.argv[1]).lock('probe')\nexcept Exception as e:\n"
                                "    print(type(e).__name__, e)\n", str(run.root)],
                               capture_output=True, text=True, timeout=120)
        assert "RunLockedError" in probe.stdout and f"PID {os.getpid()}" in probe.stdout, probe
    assert not lock.active and run.lock_path.read_text() == ""


def test_removing_the_lock_file_beside_its_holder_lets_no_second_writer_in(tmp_path):
    """Probe 22: `rm RUN/.lock` (a stale-lock habit) while a run was writing let `collect` lock a new file and append to
    the run; the run then died. The lock is the folder's: a second writer is refused, and told the file was removed."""
    run = RunDir(tmp_path / "run")
    holder = hold_lock(run.root)
    try:
        run.lock_path.unlink()
        with pytest.raises(RunLockedError, match=r"another process \(its \.lock file, which names it, was removed\)"):
            run.lock("robot-wm collect")
        probe = subprocess.run([sys.executable, "-m", "robot_wm.cli", "collect", str(run.root), "--no-progress"],
                               capture_output=True, text=True, timeout=300, env={**os.environ, "MUJOCO_GL": "egl"}, check=False)
        assert probe.returncode == 2 and "is being written by another process" in probe.stderr, probe
    finally:
        holder.kill()
        holder.wait()
    with run.lock("robot-wm test"):  # the holder is gone: the folder is free again, and the file written anew
        assert json.loads(run.lock_path.read_text())["pid"] == os.getpid()


def test_a_stale_lock_file_without_a_holder_is_taken(tmp_path):
    """A lock file whose writer is gone (e.g. the machine rebooted): its content does not block anyone."""
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.lock_path.write_text(json.dumps({"pid": 999999, "command": "robot-wm run", "started": "yesterday"}))
    with run.lock("robot-wm test"):
        assert json.loads(run.lock_path.read_text())["pid"] == os.getpid()


def test_a_second_writer_in_the_same_process_is_refused_naming_the_holder(tmp_path):
    """Two sessions of one process on one run stored duplicate episodes under wrong indices (probe 25): the lock
    is one writer's, within a process too; released, the next writer (here or elsewhere) takes it."""
    run = RunDir(tmp_path / "run")
    a = run.lock("robot-wm eval one")
    with pytest.raises(RunLockedError, match=r"already being written by this process, PID \d+ \(`robot-wm eval one`"):
        RunDir(tmp_path / "run").lock("two")
    with pytest.raises(RunLockedError):  # through another spelling of the same folder
        RunDir(tmp_path / "." / "run").lock("three")
    probe = [sys.executable, "-c", "import sys\nfrom robot_wm.run_dir import RunDir\n"
             "RunDir(sys.argv[1]).lock('probe')\nprint('got it')\n", str(run.root)]
    r = subprocess.run(probe, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "RunLockedError" in r.stderr, "held by the first handle"
    a.release()
    with RunDir(tmp_path / "run").lock("four"):
        pass
    r = subprocess.run(probe, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "got it" in r.stdout, r.stderr


def test_a_lock_file_that_is_a_link_or_a_fifo_is_refused_and_its_target_untouched(tmp_path):
    """``RUN/.lock`` linked to a user's file: every writer truncated that file and wrote its PID into it
    (probe of 2026-11-26)."""
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run.lock_path.symlink_to(victim)
    with pytest.raises(ValueError, match=r"\.lock' is a symbolic link"):
        run.lock("robot-wm test")
    assert victim.read_text() == "precious"
    run.lock_path.unlink()
    os.mkfifo(run.lock_path)
    with pytest.raises(ValueError, match=r"\.lock' is not a regular file"):
        run.lock("robot-wm test")
    run.lock_path.unlink()
    run.lock_path.mkdir()  # probe 21: "Is a directory", with a hint to run again that failed the same way
    with pytest.raises(ValueError, match=r"\.lock' is a folder: the run directory's lock file must be a plain file"):
        run.lock("robot-wm test")


def test_a_copied_run_is_the_run_where_it_is(tmp_path):
    """A copy's config.toml names the original's run_dir: `run --resume` of the copy completed the original
    and left the copy as it was (probe of 2026-11-26). A run's place is where it is opened."""
    import shutil

    from test_export import make_run_dir

    orig = make_run_dir(tmp_path / "orig")
    copy = tmp_path / "moved {x}"  # braces too: run_dir is a template
    shutil.copytree(orig, copy)
    before = snapshot(orig)
    cfg = RunDir(copy).load_config()
    assert cfg.resolved_run_dir() == copy
    rc, out = cli("eval", str(copy), "--episodes", "1", "--no-progress")
    assert rc == 0, out
    assert snapshot(orig) == before and len(RunDir(copy).eval_dataset()) > len(RunDir(orig).eval_dataset())


def test_hard_links_into_a_run_are_refused_before_writing(tmp_path):
    """A `.lock` hard-linked to a user's file was truncated; a `cp -al` copy of a run appended its evaluation to
    the original's metrics.jsonl (probe of 2026-11-26)."""
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.link(victim, run.lock_path)
    with pytest.raises(ValueError, match=r"\.lock' has 2 hard links"):
        run.lock("robot-wm test")
    assert victim.read_text() == "precious"
    run.lock_path.unlink()
    (run.root / "metrics.jsonl").write_text("")
    os.link(run.root / "metrics.jsonl", tmp_path / "copy-metrics.jsonl")  # as `cp -al` leaves it
    with pytest.raises(ValueError, match=r"metrics.jsonl' has 2 hard links \(a `cp -al` copy of a run\?\)"):
        run.lock("robot-wm test")


def test_a_run_created_by_another_command_meanwhile_with_other_settings_is_refused(tmp_path):
    """Two `collect NEWDIR` 50-350 ms apart at action repeats 8 and 4: the later one found the run created under
    the lock, checked only its task, and stored episodes of both repeats in one run (probe 11). The interleaving is
    made exact here: the other command creates the run just before this one takes the lock."""
    from robot_wm.config import RunConfig, apply_overrides
    from robot_wm.runner import Session

    def cfg(name, *extra):
        return apply_overrides(RunConfig(), [*TINY, f"run_dir={tmp_path / name}", *extra])

    class CreatedMeanwhile(RunDir):
        def lock(self, command=None):
            with Session.open(cfg(self.root.name, "env.action_repeat=8"), RunDir(self.root), progress=False):
                pass  # the other command: it creates the run (config.toml, manifest) and lets go
            return super().lock(command)

    with pytest.raises(ValueError, match=r"another command created the run .* meanwhile with other settings "
                                         r"\(env.action_repeat\); nothing was written"):
        Session.open(cfg("new", "env.action_repeat=4"), CreatedMeanwhile(tmp_path / "new"), progress=False)
    assert RunDir(tmp_path / "new").load_config().env.action_repeat == 8 and not list((tmp_path / "new").glob("episodes/*"))
    # the same settings: the later command simply adds to the run the other created
    with Session.open(cfg("new2", "env.action_repeat=8"), CreatedMeanwhile(tmp_path / "new2"), progress=False) as s:
        assert s.cfg.env.action_repeat == 8


def test_a_session_opened_on_a_path_says_what_it_expects(tmp_path):
    """`Session.open(cfg, "base")` was "'str' object has no attribute 'check_usable'" (probe 20)."""
    from robot_wm.config import RunConfig
    from robot_wm.runner import Session

    with pytest.raises(TypeError, match=r"run='base': expected a RunDir \(robot_wm.run_dir.RunDir\(path\)\)"):
        Session.open(RunConfig(), "base")


def test_a_holder_line_with_terminal_escapes_is_shown_as_text(tmp_path):
    """Probe 29: a .lock whose command held ESC sequences and a newline retitled and cleared the terminal, and forged
    a line "robot-wm eval: all good, exit 0", through the second writer's error."""
    import json as _json

    from robot_wm.run_dir import _locked_message

    holder = _json.dumps({"pid": 7, "command": "\x1b]0;pwned\x07\x1b[2J\nrobot-wm eval: all good, exit 0",
                          "started": "now"})
    msg = _locked_message(tmp_path, "run directory", holder, "")
    assert "\x1b" not in msg and "\x07" not in msg and "\n" not in msg and "\\x1b]0;pwned" in msg, msg


def test_a_writer_whose_run_was_moved_and_put_back_writes_nothing(tiny_run_dir, tmp_path):
    """Probe 33: a collect paused mid-episode, the run moved away and a copy put back at its path, another collect
    into the copy, then the first resumed: it stored its episode into the copy (the lock is the moved folder's), and
    the copy held two writers' episodes under one index. A writer checks that its locked folder is still at its path
    before each store."""
    import shutil

    from robot_wm.runner import Session

    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    s = Session.open(RunDir(run).load_config(), RunDir(run), progress=False, lock=True)
    try:
        index = len(s.run.dataset())
        shutil.move(run, tmp_path / "moved")
        shutil.copytree(tmp_path / "moved", run)
        before = snapshot(run)
        with pytest.raises(RunLockedError, match="was moved or replaced while this command held it"):
            s.collect(s.planner("random", seed=1), "train", index)
        assert snapshot(run) == before
    finally:
        s.close()


def test_a_writer_whose_run_was_replaced_blames_the_replacement_not_a_copied_checkpoint(tiny_run_dir, tmp_path):
    """Probe 33: the same writer, its run replaced by another run at its path, was told that run's checkpoint had
    been "copied in" from another run: the folder was replaced, and the error says so."""
    import json
    import shutil
    import uuid

    from robot_wm.runner import Session

    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    with pytest.raises(RunLockedError, match="was moved or replaced while this command held it") as caught, \
            Session.open(RunDir(run).load_config(), RunDir(run), progress=False, lock=True) as s:
        shutil.move(run, tmp_path / "moved")
        shutil.copytree(tmp_path / "moved", run)
        manifest = json.loads((run / "manifest.json").read_text())
        (run / "manifest.json").write_text(json.dumps({**manifest, "run_id": uuid.uuid4().hex}))
        s.latest_model()
    assert "copied in" in str(caught.value.__cause__)  # what the check said of the folder now at the path
    # the same check on a run left in place still says "copied in"
    with pytest.raises(ValueError, match="copied in"), \
            Session.open(RunDir(run).load_config(), RunDir(run), progress=False, lock=True) as s:
        s.latest_model()
