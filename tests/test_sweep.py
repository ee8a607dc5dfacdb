"""``robot-wm sweep`` on a real local Ray (started once for the module, the way the command starts it) with
real tiny runs; ``robot-wm report``; the sweep file's validation; nothing of Ray listening beyond loopback."""

from __future__ import annotations

import contextlib
import csv
import ipaddress
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from robot_wm.cli import main
from robot_wm.sweep import results, spec
from robot_wm.sweep.ray_runner import _shut_down, _subreaper, ray_instance, run_sweep

# One test process runs every Ray test, this module before test_sweep_cluster.py (pytest-xdist `--dist loadgroup`).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]

ROOT = Path(__file__).resolve().parents[1]
TINY = ["env.max_env_steps=200", "seed_episodes=1", "eval_episodes=1", "planner.samples=32", "planner.horizon=5",
        "planner.iterations=2", "planner.elites=4", "planner.keep_elites=1", "model.hidden=32", "model.layers=2",
        "model.max_epochs=5", "model.val_fraction=0.4", "value.hidden=32", "value.batch_size=64", "threads=1"]


def write_sweep(path: Path, body: str, overrides: list[str] = TINY) -> Path:
    path.write_text(textwrap.dedent(body) + f"overrides = {spec.toml_value(overrides)}\n")
    return path


@pytest.fixture(scope="module")
def ray_up():
    """One embedded Ray for the module, started exactly as `robot-wm sweep` starts it (2 CPUs)."""
    with ray_instance(cpus=2) as ray:
        yield ray


def _csv(sweep_dir: Path) -> list[dict]:
    with (sweep_dir / "results.csv").open(newline="") as f:  # plain csv: readable without robot-wm
        return list(csv.DictReader(f))


def _files(run_dir: Path) -> dict[str, int]:
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in run_dir.rglob("*.npz")}


def test_two_trial_sweep_then_skip_then_report(ray_up, tmp_path):
    sweep_file = write_sweep(tmp_path / "two.toml", """\
        tasks = ["cartpole-swingup"]
        seeds = [1, 2]
        env_steps = 400
        eval_at = [200]
    """)
    sweep = spec.load(sweep_file)
    out_dir = tmp_path / "sweep"
    lines: list[str] = []
    rows = run_sweep(sweep, out_dir, cpus=2, out=lines.append)
    assert [r["status"] for r in rows] == ["complete", "complete"], lines
    got = _csv(out_dir)
    assert [(r["task"], r["seed"], r["status"]) for r in got] == [("cartpole-swingup", "1", "complete"),
                                                                   ("cartpole-swingup", "2", "complete")]
    for r in got:
        run_dir = Path(r["run_dir"])
        assert run_dir.parent == (out_dir / "runs").resolve() and (run_dir / "summary.json").is_file()
        assert run_dir.name == f"cartpole-swingup-s{r['seed']}"
        assert int(r["env_steps"]) >= 400 and float(r["plan_hz"]) > 0 and float(r["wall_s"]) > 0
        assert r["return_at_200"] and r["return_at_400"] == r["eval_return_mean"]
    assert sum(s.startswith("sweep: finished cartpole-swingup-s") for s in lines) == 2, lines
    assert "finished 2, running 0, failed 0" in lines[-1]

    # Started again (the real command, in its own process): both trials are complete, so nothing runs.
    before = {r["run_dir"]: _files(Path(r["run_dir"])) for r in got}
    env = {**os.environ, "MUJOCO_GL": "egl"}
    p = subprocess.run([sys.executable, "-m", "robot_wm.cli", "sweep", str(sweep_file), "--storage", str(out_dir),
                        "--cpus", "2"], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("skipped cartpole-swingup-s") == 2 and "all 2 trials complete" in p.stdout
    assert {r["run_dir"]: _files(Path(r["run_dir"])) for r in got} == before  # no new or rewritten episode
    assert [r["status"] for r in _csv(out_dir)] == ["complete", "complete"]

    # The report: the table and the learning-curve plot.
    p = subprocess.run([sys.executable, "-m", "robot_wm.cli", "report", str(out_dir)], capture_output=True, check=False,
                       text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "cartpole-swingup" in p.stdout and "complete" in p.stdout
    vs = p.stdout[p.stdout.index("robot-wm vs published returns (mean [min, max] over seeds)"):]
    row = next(line for line in vs.splitlines() if "cartpole-swingup" in line)
    mean = statistics.fmean(float(r["return_at_400"]) for r in got)
    assert f"{mean:.0f} [" in row and "n=2" in row and "848" in row  # ours over both seeds, BRO @25k beside it
    png = out_dir / "learning_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000

    # Probe 40: a row's return edited by hand (40.15 to 900) became the sweep's mean and plot; the runs disagree.
    text = (out_dir / "results.csv").read_text()
    rows = _csv(out_dir)
    edited = text.replace(f",{rows[1]['eval_return_mean']},", ",900,", 1)
    assert edited != text
    (out_dir / "results.csv").write_text(edited)
    p = subprocess.run([sys.executable, "-m", "robot_wm.cli", "report", str(out_dir)], capture_output=True, check=False,
                       text=True, env=env, timeout=120)
    assert p.returncode == 2 and "line 3: eval_return_mean='900', where its run" in p.stderr, p.stderr
    assert "the file was edited; run the same `robot-wm sweep` again" in p.stderr, p.stderr


def _asha_sweep(tmp_path: Path) -> Path:
    """Two trials run one after the other (threads=2 of the module's 2 CPUs), ASHA at the 400-step evaluation:
    the second's evaluation episodes last 50 steps, so it falls behind there."""
    overrides = [o for o in TINY if not o.startswith(("env.max_env_steps", "threads"))] + ["threads=2"]
    sweep_file = tmp_path / "asha.toml"
    sweep_file.write_text(textwrap.dedent(f"""\
        tasks = ["cartpole-balance"]
        seeds = [1]
        env_steps = 800
        eval_at = [400]
        overrides = {spec.toml_value(overrides)}
        [grid]
        "env.max_env_steps" = [400, 50]
        [early_stop]
        reduction_factor = 2
    """))
    return sweep_file


def test_early_stopping_stops_the_trial_behind_and_a_restart_skips_it(ray_up, tmp_path):
    """ASHA at the 400-step evaluation, one trial at a time (threads=2 of the module's 2 CPUs): the second
    trial's evaluation episodes last 50 environment steps, so its return (at most 50 on cartpole-balance,
    rewards <= 1 per step) falls behind the first's 400-step episodes, and ASHA stops it there."""
    sweep_file = _asha_sweep(tmp_path)
    out_dir, lines = tmp_path / "sweep", []
    rows = run_sweep(spec.load(sweep_file), out_dir, cpus=2, out=lines.append)
    long, short = _csv(out_dir)
    assert (long["status"], short["status"]) == ("complete", "stopped"), lines
    assert float(short["return_at_400"]) < float(long["return_at_400"])
    assert short["env_steps"] == "400" and not short["eval_return_mean"]  # stopped at the budget, no final eval
    run = Path(short["run_dir"])
    assert results.manifest(run)["status"] == "stopped" and results.manifest(run)["stopped_at"] == 400
    steps = [int(r["env_steps"]) for r in csv.DictReader((run / "episodes.csv").open()) if r["phase"] == "train"]
    assert sum(steps[:-1]) < 400 <= sum(steps)  # stopped at the evaluation: no episode collected after it
    assert any(line.startswith(f"sweep: stopped {rows[1]['name']} at 400 env steps") for line in lines), lines
    assert "finished 1, stopped early 1, running 0, failed 0" in lines[-1]

    # Started again (the command, exit 0): both are finished, the stopped one is not resumed.
    p = subprocess.run([sys.executable, "-m", "robot_wm.cli", "sweep", str(sweep_file), "--storage", str(out_dir)],
                       capture_output=True, text=True, env={**os.environ, "MUJOCO_GL": "egl"}, timeout=120, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "stopped early at 400 env steps" in p.stdout and "all 2 trials complete or stopped early" in p.stdout
    assert [r["status"] for r in _csv(out_dir)] == ["complete", "stopped"]

    # Without [early_stop] the same sweep runs the stopped trial out, from where it stopped (probe 7: it was
    # skipped for good).
    sweep_file.write_text(sweep_file.read_text().replace("[early_stop]\nreduction_factor = 2\n", ""))
    before = _files(run)
    rows = run_sweep(spec.load(sweep_file), out_dir, cpus=2, out=lines.append)
    assert [r["status"] for r in rows] == ["complete", "complete"]
    assert all(_files(run).get(k) == v for k, v in before.items())  # its earlier episodes kept as they were


def test_an_early_stop_survives_the_sweep_killed_right_after_it(ray_up, tmp_path):
    """The driver wrote a stop into the trial's manifest only after the whole fit: a sweep SIGKILLed in between
    left it "running", and the sweep started again ran the stopped trial out (eighth probe)."""
    sweep_file = _asha_sweep(tmp_path)
    out_dir = tmp_path / "sweep"
    short = next(t for t in spec.load(sweep_file).trials if "env.max_env_steps=50" in t.name)
    proc = subprocess.Popen([sys.executable, "-m", "robot_wm.cli", "sweep", str(sweep_file), "--storage",
                             str(out_dir), "--cpus", "2"], env={**os.environ, "MUJOCO_GL": "egl"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith(f"sweep: stopped {short.name}"):
                proc.send_signal(signal.SIGKILL)  # no time for anything after the stop was announced
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert any(line.startswith("sweep: stopped") for line in lines), "".join(lines)
    assert results.read_stops(out_dir) == {short.name: 400}  # the sweep's own record, written at the stop
    run = results.run_dir_of(out_dir, short)
    episodes = _episodes(run)
    time.sleep(1.0)  # the killed sweep's workers exit with their raylet (within 0.2 s) and drop the run's lock
    rows = run_sweep(spec.load(sweep_file), out_dir, cpus=2, out=lines.append)
    assert [r["status"] for r in rows] == ["complete", "stopped"], lines
    assert any(f"skipped {short.name} (stopped early at 400 env steps" in line for line in lines), lines
    manifest = results.manifest(run)
    assert manifest["status"] == "stopped" and manifest["stopped_at"] == 400, manifest
    assert _episodes(run) == episodes  # not run out


def test_early_stopping_compares_the_trials_at_every_budget(tmp_path):
    """ASHA's rungs are grace * rf ** k: on env steps, eval_at = [1000, 2000, 3000, 4000] with rf = 3 compared
    trials at 1000 and 3000 only, and a trial far behind at 2000 went on (seventh probe, 2026-11-26). The
    sweep's own scheduler, fed results as Tune feeds them: the trial behind at 2000 is stopped there."""
    from ray.tune.experiment import Trial

    from robot_wm.sweep.ray_runner import RUNG, _scheduler, rung_times

    path = tmp_path / "es.toml"
    path.write_text('tasks = ["cartpole-swingup"]\nseeds = [1, 2, 3, 4]\nenv_steps = 5000\n'
                    'eval_at = [1000, 2000, 3000, 4000]\n[early_stop]\nreduction_factor = 3\n')
    sweep = spec.load(path)
    scheduler, times = _scheduler(sweep), dict(rung_times(sweep.trials[0].budgets, 3.0))
    trials = [Trial("__fake", stub=True) for _ in range(4)]
    for t in trials:
        scheduler.on_trial_add(None, t)
    decisions = {}
    for budget in (1000, 2000):
        for i, t in enumerate(trials):  # the last trial keeps up at 1000 and falls far behind at 2000
            ret = 1.0 if (i == 3 and budget == 2000) else 100.0 + i
            decisions[budget, i] = scheduler.on_trial_result(None, t, {RUNG: times[budget], "eval_return": ret})
    assert [decisions[1000, i] for i in range(4)] == ["CONTINUE"] * 4
    assert [decisions[2000, i] for i in range(4)] == ["CONTINUE"] * 3 + ["STOP"]


@pytest.mark.parametrize("body, expected", [
    ('tasks = ["cartpole-swingup", "pendulum-swingup"]\nseeds = [1]\nenv_steps = 800\neval_at = [400]\n'
     '[early_stop]\n', "the trials run 2 tasks (cartpole-swingup, pendulum-swingup); expected one task per sweep"),
    ('tasks = ["cartpole-swingup"]\nseeds = [1]\nenv_steps = 800\n[early_stop]\n', "expected eval_at = [budgets"),
    ('tasks = ["cartpole-swingup"]\nseeds = [1]\nenv_steps = 800\neval_at = [400]\n[early_stop]\n'
     'reduction_factor = 1\n', "early_stop.reduction_factor: Input should be greater than 1"),
])
def test_early_stopping_needs_comparable_trials(tmp_path, body, expected):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(spec.SweepError, match=re.escape(expected)):
        spec.load(path)


def test_failing_trial_is_reported_and_interrupted_one_resumes(ray_up, tmp_path):
    from policies.random import RandomPolicy
    from robot_wm.run_dir import RunDir
    from robot_wm.runner import Session

    # A trial whose run raises: its launch file names a robot file that is not there (found by the run, as a
    # user's broken robot would be; an unknown task is refused when the sweep file is loaded).
    (tmp_path / "broken-robot.toml").write_text('[env]\ntask = "mjcf"\nmjcf = "no-such-robot.xml"\n'
                                                'reward = "sim.arm_reach:reward"\n')
    sweep = spec.load(write_sweep(tmp_path / "mixed.toml", """\
        launch = ["broken-robot.toml"]
        tasks = ["cartpole-swingup"]
        seeds = [3]
        env_steps = 400
    """))
    out_dir = tmp_path / "sweep"
    bad, good = sweep.trials
    # An interrupted trial: its run directory holds one episode and no model yet.
    run_dir = results.run_dir_of(out_dir, good)
    with Session.open(good.config(run_dir), RunDir(run_dir), progress=False) as s:
        s.collect(RandomPolicy(s.env.action_spec, seed=0), "train", 0)
    first = _files(run_dir)
    assert results.trial_row(good, run_dir)["status"] == "interrupted"

    lines: list[str] = []
    rows = run_sweep(sweep, out_dir, cpus=2, out=lines.append)
    assert {r["name"]: r["status"] for r in rows} == {bad.name: "failed", good.name: "complete"}
    failed = next(r for r in _csv(out_dir) if r["name"] == bad.name)
    assert failed["status"] == "failed" and "no-such-robot.xml' does not exist" in failed["error"]
    assert any(s.startswith(f"sweep: FAILED {bad.name}") and "no-such-robot.xml" in s for s in lines), lines
    assert any(s.startswith(f"sweep: resuming {good.name}") for s in lines), lines
    after = _files(run_dir)
    assert {k: after[k] for k in first} == first and len(after) > len(first)  # kept its episode, went on
    assert results.is_complete(run_dir)


def _episodes(run_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (run_dir / "episodes").glob("episode_*.npz")}


AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def test_a_launch_files_relative_robot_is_found_as_by_run(ray_up, tmp_path, monkeypatch):
    """A launch file with env.mjcf = "slider.xml" and a reward module beside it, the sweep started from that
    folder: Ray Tune started the trial in its own working directory, where neither was found (ninth probe)."""
    from test_env_contract import SLIDER_XML

    robot = tmp_path / "robot"
    robot.mkdir()
    (robot / "slider.xml").write_text(SLIDER_XML.format(gear="1"))
    (robot / "slider_task.py").write_text("def reward(model, data):\n    return -float(data.qpos[0] ** 2)\n")
    (robot / "slider.toml").write_text('[env]\ntask = "mjcf"\nmjcf = "slider.xml"\nreward = "slider_task:reward"\n'
                                       "action_repeat = 1\nmax_env_steps = 40\n")
    sweep_file = write_sweep(robot / "s.toml", 'launch = ["slider.toml"]\nseeds = [1]\nenv_steps = 80\n',
                             [o for o in TINY if not o.startswith("env.max_env_steps")])
    monkeypatch.chdir(robot)
    lines: list[str] = []
    rows = run_sweep(spec.load(sweep_file), tmp_path / "sweep", cpus=2, out=lines.append)
    assert [r["status"] for r in rows] == ["complete"], lines


def test_sweep_killed_with_sigkill_resumes_without_running_anything_twice(ray_up, tmp_path):
    sweep_file = write_sweep(tmp_path / "kill.toml", """\
        tasks = ["cartpole-swingup"]
        seeds = [5, 6]
        env_steps = 1600
    """)
    sweep = spec.load(sweep_file)
    out_dir = tmp_path / "sweep"
    run_dirs = [results.run_dir_of(out_dir, t) for t in sweep.trials]
    proc = subprocess.Popen([sys.executable, "-m", "robot_wm.cli", "sweep", str(sweep_file), "--storage",
                             str(out_dir), "--cpus", "2"], env={**os.environ, "MUJOCO_GL": "egl"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    family: list[psutil.Process] = []
    try:
        # Kill with both trials mid-run when they run side by side; when one started late (a loaded machine
        # staggers Ray's workers by tens of seconds), kill before the leader can finish (8 episodes).
        deadline = time.monotonic() + 300
        while not (min(counts := [len(_episodes(r)) for r in run_dirs]) >= 2 or max(counts) >= 5):
            assert proc.poll() is None, "the sweep ended before it was killed"
            assert time.monotonic() < deadline, f"no trial in the middle of its run after 300 s: episodes {counts}"
            time.sleep(0.2)
        family = psutil.Process(proc.pid).children(recursive=True)
        named = []  # names read before the kill: a process that has exited has none to read
        for p in family:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                named.append((p, p.name()))
        at_kill = [_episodes(r) for r in run_dirs]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # gcs_server, raylet and the workers share the sweep's fate at once; Ray's two agents notice the
        # raylet's death within seconds but first try to report to the dead GCS for ~60 s (measured).
        core = [p for p, name in named if name not in AGENTS]
        _, alive = psutil.wait_procs(core, timeout=30)
        assert not alive, f"Ray processes outlived the killed sweep: {[n for p, n in named if p in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in family:  # only what this test started (psutil refuses a pid reused since)
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
    before = {r: _episodes(r) for r in run_dirs}
    # The trials die with their raylet (within 0.2 s), not seconds later: at most the episode in flight lands.
    # Ray's own check let a worker write 4-6 more tiny episodes and sometimes finish its run (measured).
    assert all(len(before[r]) <= len(k) + 1 for r, k in zip(run_dirs, at_kill)), (at_kill, before)
    assert all(not results.is_complete(r) for r in run_dirs), before
    started = [r for r in run_dirs if results.is_started(r)]
    assert any(len(before[r]) >= 2 for r in started), before  # at least one trial killed mid-run

    lines: list[str] = []
    rows = run_sweep(sweep, out_dir, cpus=2, out=lines.append)
    assert [r["status"] for r in rows] == ["complete", "complete"], lines  # no trial lost
    for r in run_dirs:
        after = _episodes(r)
        assert {k: after[k] for k in before[r]} == before[r]  # every episode from before the kill kept as it was
        assert len(after) == results.manifest(r)["episodes"] == 8  # 1600 steps / 200: none collected twice
    assert sum(s.startswith("sweep: resuming") for s in lines) == len(started)  # the rest start afresh


@pytest.mark.parametrize("sig, said", [(signal.SIGINT, "interrupted"), (signal.SIGUSR1, "terminated (SIGUSR1)")])
def test_ctrl_c_stops_a_sweep_like_any_command(ray_up, tmp_path, sig, said):
    """Ctrl-C printed Ray Tune's `Tuner.restore(...)` advice, then "sweep: done" and exit 1 (eighth probe); so did
    SIGUSR1, a stop signal of robot-wm's commands, which Tune takes for itself (probe 37)."""
    sweep_file = write_sweep(tmp_path / "int.toml", """\
        tasks = ["cartpole-swingup"]
        seeds = [7]
        env_steps = 1600
    """)
    out_dir = tmp_path / "sweep"
    run = results.run_dir_of(out_dir, spec.load(sweep_file).trials[0])
    # a test run in the background (`pytest &`) starts children with SIGINT ignored, and Python then ignores it
    proc = subprocess.Popen([sys.executable, "-m", "robot_wm.cli", "sweep", str(sweep_file), "--storage",
                             str(out_dir), "--cpus", "2"], env={**os.environ, "MUJOCO_GL": "egl"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 300
        while not _episodes(run):
            assert proc.poll() is None and time.monotonic() < deadline, "the trial stored no episode"
            time.sleep(0.2)
        family = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(sig)
        out = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    # every process Ray started ends with the sweep: its two agents outlived it by a minute (probe 38)
    alive = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for p in alive:
        p.kill()
    assert not alive, [p.pid for p in alive]
    assert proc.returncode == 128 + sig, out
    assert f"robot-wm sweep: {said}" in out and "Run the same `robot-wm sweep` again" in out, out
    assert "Tuner.restore" not in out and "sweep: done" not in out and "Traceback" not in out, out


def _listening(proc: psutil.Process) -> list[tuple[str, int]]:
    try:
        return [(c.laddr.ip, c.laddr.port) for c in proc.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


def test_a_trial_whose_worker_dies_is_retried_and_resumes_from_its_episodes(ray_up, tmp_path):
    """SIGKILL to the Ray worker running a trial (an OOM kill, a crashed node): Ray Tune retries the trial
    (``FailureConfig``), the retry resumes the run directory, and nothing is collected twice."""
    sweep = spec.load(write_sweep(tmp_path / "die.toml", """\
        tasks = ["cartpole-swingup"]
        seeds = [7]
        env_steps = 1600
    """))
    out_dir = tmp_path / "sweep"
    run_dir = results.run_dir_of(out_dir, sweep.trials[0])
    killed: list[tuple[dict, int]] = []

    def kill_the_worker() -> None:
        deadline = time.monotonic() + 300
        while len(before := _episodes(run_dir)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        for p in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                if "ImplicitFunc" in " ".join(p.cmdline()):  # Ray's title of a worker running a Tune trial
                    p.kill()
                    killed.append((before, p.pid))

    killer = threading.Thread(target=kill_the_worker, daemon=True)
    killer.start()
    lines: list[str] = []
    rows = run_sweep(sweep, out_dir, cpus=2, out=lines.append)
    killer.join(timeout=10)
    assert len(killed) == 1, f"no trial worker found to kill: {killed}"
    before = killed[0][0]
    assert [r["status"] for r in rows] == ["complete"], lines
    after = _episodes(run_dir)
    assert 2 <= len(before) < 8 and {k: after[k] for k in before} == before  # kept as they were
    assert len(after) == results.manifest(run_dir)["episodes"] == 8  # none collected twice
    live = [int(line.split(": ")[2].split()[0]) for line in lines if line.startswith("sweep:   cartpole-swingup-s7: ")]
    assert len(live) >= 2 and live[-1] <= 8, lines  # a live line as episodes are stored


def test_embedded_ray_listens_on_loopback_only(ray_up):
    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    listeners = {}
    for p in procs:  # a short-lived child may exit between the listing and the look: it listens nowhere
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            if found := _listening(p):
                listeners[(p.pid, p.name())] = found
    names = " ".join(n for _, n in listeners)
    assert "gcs_server" in names and "raylet" in names, listeners  # the check sees Ray's servers
    wide = {k: [a for a in v if not _loopback(a[0])] for k, v in listeners.items()}
    assert not any(wide.values()), f"Ray processes listening beyond loopback: {wide}"
    if shutil.which("ss"):  # the same seen by ss: every socket of these processes on 127.0.0.1
        pids = {p.pid for p in procs}
        out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
        ours = [line for line in out.splitlines() if any(f"pid={pid}," in line for pid in pids)]
        local = [line.split()[3] for line in ours]  # 127.0.0.1:PORT or [::ffff:127.0.0.1]:PORT
        assert local and all(re.fullmatch(r"(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]):\d+", a) for a in local), out
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    assert is_token_auth_enabled()  # Ray's token authentication stays on


SEARCH = 'tasks = ["cartpole-swingup"]\nseeds = [1]\n[search]\nsamples = 3\n[search.space]\n'


@pytest.mark.parametrize("body, expected", [
    ('tasks = ["cartpole-swingup"]\nseeds = [1]\n[grid]\n"planner.samplez" = [1, 2]\n',
     "unknown field 'planner.samplez'"),
    ('tasks = ["cartpole-swingup"]\nseeds = [1]\n[grid]\nplanner.samples = [32, 1]\n', "planner.samples"),
    ('tasks = ["cartpole-swingup"]\nseed = [1]\n', "seed: Extra inputs are not permitted"),
    ('tasks = ["cartpole-swingup"]\nseeds = []\n', "seeds: List should have at least 1 item"),
    ('tasks = ["cartpole-swingup"]\nseeds = [1, 1]\n', "repeat a seed"),
    ('seeds = [1]\n', "expected at least one launch file"),
    ('launch = ["nowhere.toml"]\nseeds = [1]\n', "nowhere.toml' does not exist"),
    # a device "did not exist" (probe 40)
    ('launch = ["/dev/zero"]\nseeds = [1]\n', "launch file '/dev/zero' is not a regular file (a FIFO, a device"),
    ('launch = ["/"]\nseeds = [1]\n', "launch file '/' is a directory"),
    ('tasks = ["cartpole-swingup"]\nseeds = [1]\nenv_steps = 1000\neval_at = [2000]\n', "goes past env_steps"),
    ('tasks = ["cartpole-swingup"]\nseeds = [1]\n[grid]\n"model.hidden" = 32\n',
     "grid key model.hidden: expected a non-empty list"),
    ('tasks = ["cartpole-swingup"]\nseeds = [1]\noverrides = ["rerun.mode=serve"]\n', "network settings"),
    # an address alone was told to add `--rerun serve`, which sweep has not (probe 28)
    ('tasks = ["cartpole-swingup"]\nseeds = [1]\n[grid]\n"rerun.address" = ["0.0.0.0:9890"]\n',
     "sets rerun.address: network settings are taken only from the command line"),
    ('tasks = ["cartpole-swingup"]\nseeds = [1]\noverrides = [\'rerun={address="0.0.0.0:1"}\']\n',
     "sets rerun: network settings"),
    ('tasks = ["cartpole-swingup"\n', "not valid TOML"),
    ('tasks = ["cartpole-swingup"]\nseeds = [1, 2]\n[grid]\n' + "".join(  # a million trials: refused at once
        f'"model.{k}" = {list(range(1, 11))}\n' for k in ("hidden", "layers", "batch_size", "max_epochs", "patience")),
     "makes 200,000 trials (1 launch files/tasks, 2 seeds, 10 values of model.hidden"),
    # probe of 2026-11-26: two trials shared one name and run directory; a grid key given twice lost a list;
    # a grid of seeds ran them under seed 0's name and row; run_dir in overrides was ignored; an unknown task
    # failed only after Ray had started
    ('tasks = ["cartpole-swingup", "cartpole-swingup"]\nseeds = [1]\n', "repeats an entry"),
    ('tasks = ["cartpole-swingup"]\nseeds = [1]\n[grid]\n"planner.horizon" = [5, 6]\n[grid.planner]\nhorizon = [7]\n',
     "grid key planner.horizon is given twice"),
    ('tasks = ["cartpole-swingup"]\nseeds = [1]\n[grid]\nseed = [5, 6]\n', "grid key seed: the sweep sets each trial's seed"),
    ('tasks = ["cartpole-swingup"]\nseeds = [1]\noverrides = ["run_dir=/tmp/x"]\n', "set sweep_dir instead"),
    ('tasks = ["nope-task"]\nseeds = [1]\n', "unknown task 'nope-task'"),
    ('tasks = ["cartpole\u2010swingup"]\nseeds = [1]\n', "(it holds U+2010 HYPHEN"),  # pasted from a PDF (probe 28)
    # probe 22: task mjcf without its robot failed in the trial, after Ray had started
    ('tasks = ["mjcf"]\nseeds = [1]\n', "task 'mjcf' needs env.mjcf (an MJCF path) and env.reward"),
    # probe of 2026-11-26 (5th): the same trials twice under other names
    ('tasks = ["cartpole-swingup", "cartpole_swingup"]\nseeds = [1]\n', "are the same task"),
    ('tasks = ["cartpole-swingup"]\nseeds = [1]\n[grid]\n"planner.horizon" = [5, 5]\n', "[5, 5] repeats a value"),
    # probe 6: an empty sweep_dir (an unset variable) was replaced by the default; a NUL byte was Python's message
    ('sweep_dir = ""\ntasks = ["cartpole-swingup"]\nseeds = [1]\n', "sweep_dir is empty"),
    ('sweep_dir = "a\\u0000b"\ntasks = ["cartpole-swingup"]\nseeds = [1]\n', "holds a NUL byte"),
    # probe 7: the same run spelled two ways (1 and 1.0; a task and its alias in a grid); an overflowing range
    ('tasks = ["cartpole-swingup"]\nseeds = [1]\n[grid]\n"planner.temperature" = [1, 1.0]\n', "are the same run"),
    # a grid of tasks (once "are the same run"): named by tasks = [...] (probe 42: pendulum ran as cartpole-swingup-s1)
    ('tasks = ["cup-catch"]\nseeds = [1]\n[grid]\n"env.task" = ["cup-catch", "ball_in_cup-catch"]\n',
     "grid key env.task: each trial's task is named by tasks = [...]"),
    ('tasks = ["cartpole-swingup"]\nseeds = [1]\n[grid]\n"env.task" = ["pendulum-swingup"]\n',
     "grid key env.task: each trial's task is named by tasks = [...]"),
    ('tasks = ["cup-catch"]\nseeds = [1]\n[grid]\n"planner.uncertainty_weight" = [0.0, -0.0]\n', "are the same run"),
    ('tasks = ["cup-catch"]\nseeds = [1]\n[grid]\n"env.randomize.friction" = [[0.0, 1.0], [-0.0, 1.0]]\n',
     "are the same run"),
    (SEARCH + '"planner.temperature" = {uniform = [-1e308, 1e308]}\n', "is wider than a float holds"),
    # the eighth probe: every trial wrote (and replaced) the one recording
    ('tasks = ["cartpole-swingup"]\nseeds = [1, 2]\noverrides = ["rerun.mode=save", "rerun.path=same.rrd"]\n',
     "rerun.path='same.rrd' (from the sweep's overrides) would be written by every trial"),
    # random search: every range and key named
    (SEARCH + '"planner.temperature" = {uniform = [1.0, 0.1]}\n', "search key planner.temperature: uniform [1.0, 0.1] is empty"),
    (SEARCH + '"value.lr" = {loguniform = [0.0, 1e-3]}\n', "value.lr: loguniform [0.0, 0.001] is empty; expected low < high and low > 0"),
    (SEARCH + '"planner.horizon" = {randint = [4.5, 9]}\n', "planner.horizon: randint expects [low, high] of finite integers"),
    (SEARCH + '"planner.horizon" = {choice = []}\n', "planner.horizon: choice expects a non-empty list"),
    (SEARCH + '"planner.horizon" = {gaussian = [1, 2]}\n', "search key planner.horizon.gaussian: expected {uniform|"),
    (SEARCH + '"planner.horizon" = {choice = [8], randint = [1, 2]}\n', "expected exactly one of uniform"),
    (SEARCH + '"planner.horizonz" = {choice = [8, 12, 16]}\n', "unknown field 'planner.horizonz'"),
    (SEARCH + '"planner.horizon" = {choice = [8, 12]}\n', "samples=3 but the space holds only 2 distinct settings"),
    (SEARCH + 'seed = {choice = [1, 2, 3]}\n', "search key seed: the sweep sets each trial's seed"),
    (('tasks = ["cartpole-swingup"]\nseeds = [1]\n[grid]\n"planner.horizon" = [5, 6]\n[search]\nsamples = 2\n'
      '[search.space]\n"planner.horizon" = {randint = [1, 9]}\n'), "planner.horizon in both [grid] and [search.space]"),
    ('tasks = ["cartpole-swingup"]\nseeds = [1]\n[search]\nsamples = 2\nspace = {}\n', "search.space: Dictionary should have at least 1 item"),
])
def test_sweep_file_errors_name_the_field(tmp_path, body, expected):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(spec.SweepError) as e:
        spec.load(path)
    assert expected in str(e.value) and "bad.toml" in str(e.value)


def test_trials_named_from_task_seed_and_grid(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(textwrap.dedent(f"""\
        launch = ["{ROOT / 'launch' / 'cartpole-swingup.toml'}"]
        tasks = ["pendulum-swingup"]
        seeds = [100, 101]
        [grid.planner]
        samples = [64, 128]
        [grid.env.randomize]
        mass = [[0.7, 1.3]]
    """))
    trials = spec.load(path).trials
    names = [t.name for t in trials]
    assert len(names) == 8 and len(set(names)) == 8
    assert "cartpole-swingup-s100-planner.samples=64-env.randomize.mass=_0.7_1.3_" in names
    assert all("/" not in n for n in names)
    t = next(t for t in trials if t.task == "pendulum-swingup" and t.seed == 101)
    cfg = t.config(tmp_path / "r")
    assert (cfg.seed, cfg.env.task, cfg.env.randomize.mass) == (101, "pendulum-swingup", (0.7, 1.3))
    assert cfg.resolved_run_dir() == tmp_path / "r"


def test_random_search_draws_repeatable_distinct_settings_within_their_ranges(tmp_path):
    path = tmp_path / "search.toml"
    path.write_text(textwrap.dedent("""\
        tasks = ["cartpole-swingup"]
        seeds = [1, 2]
        [grid]
        "planner.iterations" = [1, 2]
        [search]
        samples = 5
        seed = 3
        [search.space]
        "planner.temperature" = {uniform = [0.1, 1.0]}
        "value.lr" = {loguniform = [1e-4, 1e-3]}
        [search.space.planner]
        horizon = {choice = [8, 12, 16]}
        samples = {randint = [64, 66]}
    """))
    trials = spec.load(path).trials
    assert len(trials) == 2 * 2 * 5 and len({t.name for t in trials}) == 20
    assert [t.name for t in spec.load(path).trials] == [t.name for t in trials]  # the same draw when loaded again
    cfgs = [t.config(tmp_path / t.name) for t in trials]
    settings = {(c.planner.temperature, c.value.lr, c.planner.horizon, c.planner.samples) for c in cfgs}
    assert len(settings) == 5  # five distinct draws, each crossed with both seeds and both grid values
    for temp, lr, horizon, samples in settings:
        assert 0.1 <= temp <= 1.0 and 1e-4 <= lr <= 1e-3 and horizon in (8, 12, 16) and 64 <= samples <= 66
        assert temp == float(f"{temp:.4g}")  # rounded: readable names, exact TOML round trip
    path.write_text(path.read_text().replace("seed = 3", "seed = 4"))
    assert {t.name for t in spec.load(path).trials} != {t.name for t in trials}  # another seed, another draw


def test_readme_sweep_file_example_is_valid(tmp_path):
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in readme.split("```toml\n")[1:] if "[search]" in b).split("```")[0]
    path = tmp_path / "readme.toml"
    path.write_text(block.replace("../launch/", f"{ROOT / 'launch'}/"))
    trials = spec.load(path).trials
    assert len(trials) == 2 * 3 * 2 * 8  # 2 sources x 3 seeds x 2 grid values x 8 drawn settings


@pytest.mark.parametrize("path", sorted((ROOT / "bench").glob("sweep_*.toml")), ids=lambda p: p.name)
def test_every_bench_sweep_file_loads(path):
    assert spec.load(path).trials  # launch files and variants found, every trial's config valid


def test_bench_sweep_file_is_valid():
    sweep = spec.load(ROOT / "bench" / "sweep_returns.toml")
    tasks = {t.task for t in sweep.trials}
    assert "cartpole-swingup" in tasks and {t.seed for t in sweep.trials} == {100, 101, 102}
    assert all(t.budgets == (10_000, 20_000) for t in sweep.trials)


def test_parser_imports_no_ray_nor_torch():
    code = ("import sys; from robot_wm.cli import build_parser; build_parser(); "
            "print([m for m in ('ray', 'torch', 'matplotlib') if m in sys.modules])")
    p = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert p.stdout.strip() == "[]", p.stdout + p.stderr


def test_anchors_file_is_bounded_and_a_bad_row_is_named(tmp_path):
    """`report --anchors /dev/zero` grew until the OOM killer; a non-number cell was a bare int() error."""
    from robot_wm.sweep.report import DEFAULT_ANCHORS, read_anchors

    assert read_anchors(DEFAULT_ANCHORS)[("cartpole-swingup", "bro_utd10", 25_000)] == pytest.approx(848, abs=1)
    with pytest.raises(ValueError, match="'/dev/zero' is not a regular file"):
        read_anchors(Path("/dev/zero"))
    bad = tmp_path / "a.csv"
    bad.write_text("# a comment\ntask,system,env_steps,mean_return\ncartpole-swingup,x,100,1\ncartpole,x,lots,3\n")
    with pytest.raises(ValueError, match=r"a.csv', data row 2: .*'lots'; expected the columns task, system, env_steps"):
        read_anchors(bad)
    for row, shown in (("cartpole,x,100,inf", "mean_return inf"), ("cartpole,x,-5,3", "env_steps -5")):  # probe 23
        bad.write_text(f"task,system,env_steps,mean_return\n{row}\n")
        with pytest.raises(ValueError, match=f"data row 1: .*{shown}"):
            read_anchors(bad)
    from robot_wm.sweep.report import report

    with pytest.raises(ValueError, match="is a directory: expected the path of the PNG"):
        report(tmp_path, out=tmp_path)  # was a temp file's IsADirectoryError after the table


@pytest.mark.parametrize("csv_text, needle", [
    ("name,task,seed\nx,cartpole-swingup,0\n", "lacks the columns ['overrides', 'status', 'eval_return_mean']"),
    ("name,task,seed,overrides,status,eval_return_mean,return_at_abc\nx,cartpole-swingup,0,,complete,1,1\n",
     "column 'return_at_abc': expected return_at_<environment steps>"),
    ("name,task,seed,overrides,status,eval_return_mean,return_at_1000\nx,cartpole-swingup,0,,complete,1,-inf\n",
     "line 2: return_at_1000='-inf': expected a finite number"),
    # the eighth probe: a status that is none of ours was left out of every mean; one run under two names was
    # two seeds; 1e308 ended in matplotlib's "Singular matrix"
    ("name,task,seed,overrides,status,eval_return_mean\nx,cartpole-swingup,0,,COMPLETE,1\n",
     "line 2: status='COMPLETE': expected one of complete, stopped"),
    ("name,task,seed,overrides,status,eval_return_mean,run_dir\na,cartpole-swingup,0,,complete,1,/r/a\n"
     "A,cartpole-swingup,0,,complete,1,/r/a\n", "line 3: trial 'A' (run_dir /r/a) is also on line 2"),
    ("name,task,seed,overrides,status,eval_return_mean,return_at_1000\nx,cartpole-swingup,0,,complete,1,1e308\n",
     "line 2: return_at_1000='1e308': expected a finite number within +-1e+12"),
    # seventh probe: a budget spelled with a leading zero showed "–" in every cell; a header alone drew empty axes
    ("name,task,seed,overrides,status,eval_return_mean,return_at_0200\nx,cartpole-swingup,0,,complete,1,1\n",
     "column 'return_at_0200': expected return_at_<environment steps>"),
    ("name,task,seed,overrides,status,eval_return_mean\n", "holds no trials (a header only)"),
    # probe 29: junk counts and figures were shown in the table as they stood
    ("name,task,seed,overrides,status,eval_return_mean\nx,cartpole-swingup,abc,,complete,1\n",
     "line 2: seed='abc': expected a whole number from 0 to 4,294,967,295"),
    ("name,task,seed,overrides,status,eval_return_mean,wall_s\nx,cartpole-swingup,0,,complete,1,inf\n",
     "line 2: wall_s='inf': expected a finite number from 0"),
    ("name,task,seed,overrides,status,eval_return_mean,env_steps\nx,cartpole-swingup,0,,complete,1,-4\n",
     "line 2: env_steps='-4': expected a whole number"),
])
def test_report_names_what_is_wrong_with_a_results_file(tmp_path, capsys, csv_text, needle):
    """A KeyError traceback, int()'s message and matplotlib's "Data cannot be log-scaled" before (probe 2026-11-26)."""
    (tmp_path / "results.csv").write_text(csv_text)
    assert main(["report", str(tmp_path)]) == 2
    assert needle in capsys.readouterr().err and not (tmp_path / "learning_curves.png").exists()


def test_report_given_a_sweep_file_names_its_sweep_directory(tmp_path, capsys):
    """`report SWEEP.toml` said "'SWEEP.toml/results.csv' does not exist" (probe 24)."""
    sweep_file = tmp_path / "grid.toml"
    launch = Path(__file__).parents[1] / "launch" / "cartpole-swingup.toml"
    sweep_file.write_text(f'launch = ["{launch}"]\nseeds = [0]\nsweep_dir = "{tmp_path / "out"}"\n')
    assert main(["report", str(sweep_file)]) == 2
    err = capsys.readouterr().err
    assert f"'{sweep_file}' is a file, not a sweep directory (a sweep file: its results are by default in " \
        f"'{tmp_path / 'out'}'" in err, err
    # its launch files are not loaded for the hint: a link loop there was named instead of the sweep file (review)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    sweep_file.write_text('launch = ["loop"]\nseeds = [0]\n')
    assert main(["report", str(sweep_file)]) == 2
    assert "its results are by default in 'sweeps/grid'" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["report", str(tmp_path / "notes.txt")]) == 2
    assert "notes.txt' is a file, not a sweep directory\n" in capsys.readouterr().err


def test_report_names_a_results_file_that_is_no_utf8(tmp_path, capsys):
    """A bare "'utf-8' codec can't decode byte 0xff" naming neither the file nor what it is (probe 20)."""
    (tmp_path / "results.csv").write_bytes(b"name,task\n1,\xff\xfe\n")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "results.csv' line 2:" in err and "can't decode byte 0xff" in err and "expected a results.csv written by" in err
    # probe 21: past the decoder's first 8 KB chunk the line named was the reader's, hundreds of lines early
    rows = "".join(f"{i},cartpole-swingup\n" for i in range(2000)).encode()
    (tmp_path / "results.csv").write_bytes(b"name,task\n" + rows + b"x,\xff\n")
    assert main(["report", str(tmp_path)]) == 2
    assert "results.csv' line 2002:" in capsys.readouterr().err


def test_report_refuses_rows_longer_than_the_header_huge_budgets_and_too_many_panels(tmp_path, capsys, recwarn):
    """Probe 29: a row with a cell more than the header ('1,000') reported 1.0; a return_at_10**23 column was a
    traceback; 10,000 task names drew for minutes at 12 GB; a CJK task name printed glyph warnings."""
    head = "name,task,seed,overrides,status,eval_return_mean\n"
    for body, needle in (("a,cartpole-swingup,0,,complete,1,000\n", "line 2: 1 cell(s) more than the header"),
                         ("a,cartpole-swingup,0,,complete,1\n", "at most 1,000,000,000")):
        text = head + body if "000" in body else head.replace("\n", ",return_at_99999999999999999999999\n") + body
        (tmp_path / "results.csv").write_text(text)
        assert main(["report", str(tmp_path)]) == 2
        assert needle in capsys.readouterr().err
    rows = "".join(f"t{i},task{i},0,,complete,{i}\n" for i in range(31))
    (tmp_path / "results.csv").write_text(head + rows)
    assert main(["report", str(tmp_path)]) == 2
    assert "hold 31 tasks: the plot draws one panel per task, at most 30" in capsys.readouterr().err
    (tmp_path / "results.csv").write_text(head + "a,\u6ce2\u6d6a-run,0,,complete,1\n", encoding="utf-8")
    assert main(["report", str(tmp_path)]) == 0
    assert not [w for w in recwarn if "Glyph" in str(w.message)]


def test_report_prints_cells_as_text_and_writes_only_png(tmp_path, capsys):
    (tmp_path / "results.csv").write_text("name,task,seed,overrides,status,eval_return_mean,return_at_1000\n"
                                          "x,[bold red]pwn[/],0,,complete,1,1\n")
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "x.pdf")]) == 2
    assert "expected a path ending in .png" in capsys.readouterr().err and not (tmp_path / "x.pdf").exists()
    # a folder meant (probe 28: 'x.png/' wrote the file x.png), a user's file of that name, a file as its folder
    (tmp_path / "notes.png").write_text("my notes")
    (tmp_path / "afile").write_text("")
    for out, needle in (("x.png/", "ends in a slash (a folder): give a file path"),
                        ("notes.png", "exists and is not a PNG"), ("afile/x.png", "afile")):
        assert main(["report", str(tmp_path), "--out", f"{tmp_path}/{out}"]) == 2
        assert needle in capsys.readouterr().err, out
    assert not (tmp_path / "x.png").exists() and (tmp_path / "notes.png").read_text() == "my notes"
    assert main(["report", str(tmp_path)]) == 0
    assert "[bold red]pwn[/]" in capsys.readouterr().out  # rich markup from a file is shown, not applied
    # ... and so are terminal escape sequences (they coloured the terminal and set its title: tenth probe)
    (tmp_path / "results.csv").write_text("name,task,seed,overrides,status,eval_return_mean,return_at_1000\n"
                                          "x,cartpole-swingup,0,\x1b[31mred\x1b]0;pwned\x07,complete,1,1\n")
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[31mred" in out, out


def test_same_launch_file_spelled_two_ways_is_one_source(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.toml").write_text('[env]\ntask = "cartpole-swingup"\n')
    path = write_sweep(tmp_path / "s.toml", 'launch = ["sub/a.toml", "sub/../sub/a.toml"]\nseeds = [1]\n')
    with pytest.raises(spec.SweepError, match=r"'sub/../sub/a.toml' and 'sub/a.toml' are the same launch file"):
        spec.load(path)


def test_a_sweep_continues_only_runs_made_with_its_own_settings(tmp_path):
    """Re-run into the same storage with other overrides, the sweep skipped its complete trials and reported the
    old runs' returns as the new settings' (probe of 2026-11-26). Refused before Ray starts."""
    from robot_wm.run_dir import RunDir
    from robot_wm.runner import Session

    old = spec.load(write_sweep(tmp_path / "a.toml", 'tasks = ["cartpole-swingup"]\nseeds = [1]\nenv_steps = 400\n'))
    run_dir = results.run_dir_of(tmp_path / "sweep", old.trials[0])
    Session.open(old.trials[0].config(run_dir), RunDir(run_dir), progress=False).close()
    new = spec.load(write_sweep(tmp_path / "a.toml", 'tasks = ["cartpole-swingup"]\nseeds = [1]\nenv_steps = 400\n',
                                [*TINY, "planner.samples=48"]))
    assert new.trials[0].name == old.trials[0].name
    with pytest.raises(spec.SweepError, match=r"was made with other settings \(planner.samples: 32 there, 48 now"):
        run_sweep(new, tmp_path / "sweep", cpus=1, out=lambda s: None)


def test_report_curves_keep_trials_that_early_stopping_ended():
    """A setting that ASHA stopped on every seed disappeared from the report; stopped rows count up to their
    stop (probe 7)."""
    from robot_wm.sweep.report import curves

    row = lambda seed, over, status, at1, at2: {"name": f"cartpole-swingup-s{seed}-{over}", "task": "cartpole-swingup",  # noqa: E731
                                                "seed": str(seed), "overrides": over, "status": status,
                                                "return_at_400": at1, "return_at_800": at2}
    rows = [row(1, "env.max_env_steps=200", "complete", "100", "150"), row(1, "env.max_env_steps=25", "stopped", "20", ""),
            row(2, "env.max_env_steps=25", "stopped", "30", ""), row(3, "env.max_env_steps=25", "failed", "", "")]
    got = curves(rows)["cartpole-swingup"]
    assert got["env.max_env_steps=25"] == [(400, 25.0, 20.0, 30.0, 2)]  # both stopped seeds, nothing past 400
    assert got["env.max_env_steps=200"] == [(400, 100.0, 100.0, 100.0, 1), (800, 150.0, 150.0, 150.0, 1)]


def test_a_damaged_summary_is_named_in_the_trials_row_and_by_resume(tmp_path, capsys):
    """A complete trial's summary.json edited or damaged: a sweep started again ended in 'KeyError: env_steps'
    or 'Expecting value: line 1 column 1' naming no file, and so did `run --resume` (eighth probe)."""
    from robot_wm.runner import run as run_trial_config

    sweep_file = write_sweep(tmp_path / "s.toml", 'tasks = ["cartpole-swingup"]\nseeds = [1]\nenv_steps = 400\n')
    sweep, out_dir = spec.load(sweep_file), tmp_path / "sweep"
    run = results.run_dir_of(out_dir, sweep.trials[0])
    run_trial_config(sweep.trials[0].config(run), progress=False)  # the trial's run, made as its worker would
    assert results.is_complete(run)
    real = json.loads((run / "summary.json").read_text())
    edited = json.dumps({**real, "eval_return_mean": 999.0})  # well formed, but not the final evaluation's (probe 33)
    for summary, needle in [
        (edited, "eval_return_mean = 999.0, but the run's final evaluation in metrics.jsonl gives returns"),
        ("", "summary.json' is not valid JSON"), ('{"eval_return_mean": 5}', "env_steps = null is not what robot-wm"),
        ('{"env_steps": 400, "eval_return_mean": "high", "learning_curve": {}}', 'eval_return_mean = "high"'),
        ('{"env_steps": 400, "learning_curve": {"abc": [1]}}', "learning_curve = "),
    ]:
        (run / "summary.json").write_text(summary)
        said: list[str] = []
        rows = run_sweep(sweep, out_dir, cpus=1, out=said.append)  # complete: skipped, no Ray started
        assert rows[0]["status"] == "failed" and needle in rows[0]["error"], rows[0]
        # said on the console too, and counted: it was "all 1 trials complete" (probe 40)
        assert any(line.startswith(f"sweep: FAILED {sweep.trials[0].name}: ") and needle in line for line in said), said
        assert said[-1].startswith("sweep: 1 of the 1 trials FAILED; results in "), said
        assert main(["run", f"run_dir={run}", "--resume", "--no-progress"]) == 2
        assert needle in capsys.readouterr().err
    (run / "summary.json").unlink()  # as the message says: removed, `--resume` rebuilds it from the final evaluation
    assert main(["run", f"run_dir={run}", "--resume", "--no-progress"]) == 0
    assert json.loads((run / "summary.json").read_text())["eval_returns"] == real["eval_returns"]


@pytest.mark.parametrize("kind", ["user-results", "user-files", "file", "inside-a-run"])
def test_a_sweep_never_writes_into_a_users_folder(tmp_path, capsys, kind):
    """--storage naming a folder with its own results.csv replaced it before Ray started, and added runs/ and
    tune/ to any folder; a file gave "[Errno 17] File exists" (eighth probe)."""
    sweep_file = write_sweep(tmp_path / "s.toml", 'tasks = ["cartpole-swingup"]\nseeds = [1]\n')
    where = tmp_path / "mine"
    if kind == "file":
        where.write_text("notes\n")
        needle = "is a file, not a folder"
    elif kind == "inside-a-run":  # every trial refused after Ray started, results.csv left in the run (probe 32)
        from robot_wm.config import RunConfig
        from robot_wm.run_dir import RunDir

        run = RunDir(tmp_path / "run")
        run.root.mkdir()
        run.save_config(RunConfig())
        where.mkdir()
        where = run.root / "sweeps"
        needle = "lies inside the run directory"
    else:
        where.mkdir()
        if kind == "user-results":
            (where / "results.csv").write_text("x,y\n1,2\n")
            needle = "results.csv (not a sweep's: no name, task"
        else:
            (where / "thesis.tex").write_text("\\begin{document}\n")
            needle = "holds files that are not a sweep's (thesis.tex)"
    before = sorted(p.name for p in where.iterdir()) if where.is_dir() else where.exists() and where.read_text()
    assert main(["sweep", str(sweep_file), "--storage", str(where), "--cpus", "1"]) == 2
    assert needle in capsys.readouterr().err
    assert (sorted(p.name for p in where.iterdir()) if where.is_dir() else where.exists() and where.read_text()) \
        == before
    # probe 14: --cpus 100000 on 2 cores started every trial at once (each 3x slower, plan rates skewed): the
    # embedded Ray gets this machine's CPUs, said so (here a trial then asks for more than that and is refused)
    from robot_wm.cpus import available_cpus

    have = available_cpus()
    big = write_sweep(tmp_path / "big.toml", 'tasks = ["cartpole-swingup"]\nseeds = [1]\n', [f"threads={have + 1}"])
    assert main(["sweep", str(big), "--storage", str(tmp_path / "new"), "--cpus", "100000"]) == 2
    err = capsys.readouterr().err
    assert f"--cpus 100000: this machine has {have} CPUs for the embedded Ray; using {have}" in err, err
    assert f"needs threads={have + 1} CPUs but --cpus is {have}" in err, err
    assert not (tmp_path / "new").exists()  # its folder, lock and pending rows were left behind (probe 34)
    if kind == "user-results":
        assert (where / "results.csv").read_text() == "x,y\n1,2\n"


def test_report_of_failed_trials_only_draws_no_empty_legend(tmp_path):
    """Every trial failed: the plot's one empty panel drew matplotlib's "No artists with labels" warning."""
    import warnings

    from robot_wm.sweep.report import plot

    rows = [{"name": "x", "task": "cartpole-swingup", "seed": "1", "overrides": "", "status": "failed",
             "return_at_400": ""}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = plot(rows, tmp_path / "c.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_report_keeps_launch_files_of_one_task_apart():
    """Two launch files named cartpole-swingup.toml in two folders, and the task on the default config, were
    reported as three seeds of one "default" setting (probe 7)."""
    from robot_wm.sweep.report import settings_of

    row = lambda name, source: {"name": name, "task": "cartpole-swingup", "seed": "1", "overrides": "",  # noqa: E731
                                "status": "complete", "source": source}
    rows = [row("cartpole-swingup-s1", "/x/A/cartpole-swingup.toml"), row("cartpole-swingup-s1-1", "/x/B/cartpole-swingup.toml"),
            row("cartpole-swingup-s1-2", ""), row("pendulum", "")]
    rows[3]["task"] = "pendulum-swingup"
    assert settings_of(rows) == ["A/cartpole-swingup", "B/cartpole-swingup", "default config", "default"]


def test_report_reads_short_rows_and_names_what_is_not_a_results_file(tmp_path):
    """Probe 7: a short row was a TypeError in the table; a results.csv linked to /dev/zero "did not exist"; a
    repeated trial with a trailing space in its name counted as a second seed; early stopping with
    eval_episodes=0 compared NaNs and never stopped anything."""
    header = "name,task,seed,overrides,status,eval_return_mean\n"
    (tmp_path / "short").mkdir()
    (tmp_path / "short" / "results.csv").write_text(header + "cartpole-swingup-s1,cartpole-swingup,1\n")
    with pytest.raises(ValueError, match="line 2: status='': expected one of complete"):  # named, not a TypeError
        results.read(tmp_path / "short")
    (tmp_path / "zero").mkdir()
    (tmp_path / "zero" / "results.csv").symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="not a regular file"):
        results.read(tmp_path / "zero")
    (tmp_path / "space").mkdir()
    row = "cartpole-swingup-s1,cartpole-swingup,1,,complete,8\n"
    (tmp_path / "space" / "results.csv").write_text(header + row + row.replace("-s1,", "-s1 ,", 1))
    with pytest.raises(ValueError, match="is also on line 2"):
        results.read(tmp_path / "space")
    path = tmp_path / "quiet.toml"
    path.write_text('tasks = ["cartpole-swingup"]\nseeds = [1]\nenv_steps = 800\neval_at = [400]\n'
                    'overrides = ["eval_episodes=0"]\n[early_stop]\n')
    with pytest.raises(spec.SweepError, match="has eval_episodes=0"):
        spec.load(path)


def test_a_sweep_whose_ray_cannot_write_names_the_file_size_limit(tmp_path):
    """Under `ulimit -f` (a quota or a full disk) Ray failed to start and the message blamed address space and
    /dev/shm (tenth probe): the limits that are set are named."""
    sweep_file = write_sweep(tmp_path / "fs.toml", 'tasks = ["cartpole-swingup"]\nseeds = [1]\nenv_steps = 400\n')
    r = subprocess.run(["prlimit", "--fsize=20000", sys.executable, "-m", "robot_wm.cli", "sweep", str(sweep_file),
                        "--cpus", "1", "--storage", str(tmp_path / "sw")], capture_output=True, text=True, timeout=300,
                       check=False, env={**os.environ, "MUJOCO_GL": "egl"})
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert "did not start" in r.stderr and "`ulimit -f` is 20000" in r.stderr, r.stderr


def test_writing_results_keeps_the_rows_of_other_trials(tmp_path):
    """A second sweep file on the same sweep_dir rewrote results.csv with its own trials only: the first one's
    rows vanished while their runs stayed (tenth probe)."""
    base = {"task": "cartpole-swingup", "seed": 1, "overrides": "", "status": "complete", "eval_return_mean": 5.0}
    results.write(tmp_path, [{**base, "name": "a", "return_at_400": 1.0}, {**base, "name": "b"}])
    results.write(tmp_path, [{**base, "name": "b", "eval_return_mean": 7.0}, {**base, "name": "c"}])
    rows = {r["name"]: r for r in results.read(tmp_path)}
    assert sorted(rows) == ["a", "b", "c"]
    assert rows["b"]["eval_return_mean"] == "7" and rows["a"]["return_at_400"] == "1"
    # one row edited into a status robot-wm refuses: the next write dropped every other row (probe 11)
    path = tmp_path / "results.csv"
    edited = path.read_text().replace(",complete,", ",PENDING,", 1)
    path.write_text(edited)
    results.write(tmp_path, [{**base, "name": "d"}])
    assert [r["name"] for r in results.read(tmp_path)] == ["d"]
    aside = list(tmp_path.glob("results.unreadable-*.csv"))
    assert len(aside) == 1 and aside[0].read_text() == edited


def test_report_says_when_early_stopping_removed_a_whole_seed():
    """ASHA stopped both seed-2 trials (seed 2 started worse for both settings), and report compared the settings on
    seed 1 alone without a word (tenth probe)."""
    from robot_wm.sweep.report import stopped_seeds_note

    row = lambda seed, samples, status: {"task": "cartpole-swingup", "seed": seed, "status": status,  # noqa: E731
                                         "overrides": f"planner.samples={samples}"}
    rows = [row("1", 8, "complete"), row("1", 32, "complete"), row("2", 8, "stopped"), row("2", 32, "stopped")]
    assert stopped_seeds_note(rows) == ("note: cartpole-swingup: every trial of seed 2 was stopped early, so the "
                                        "settings are compared at the full budget on seed 1 alone (early stopping "
                                        "compares trials across seeds)")
    rows[3]["status"] = "complete"
    assert stopped_seeds_note(rows) == ""


def test_a_second_sweep_on_one_sweep_directory_is_refused_naming_the_first(tmp_path, capsys):
    """Probe 14: two sweeps on one sweep directory each failed the trial the other held (RunLockedError in its
    row), printed 'failed 1', yet both exited 0. The second is refused before anything is written."""
    from test_faults import hold_lock

    sweep_file = write_sweep(tmp_path / "s.toml", 'tasks = ["cartpole-swingup"]\nseeds = [1]\n')
    where = tmp_path / "sweep"
    holder = hold_lock(where)  # another real process, as a running sweep holds it
    try:
        assert main(["sweep", str(sweep_file), "--storage", str(where), "--cpus", "1"]) == 2
        err = capsys.readouterr().err
        assert f"sweep directory {str(where.resolve())!r} is being written by PID {holder.pid}" in err, err
        assert sorted(p.name for p in where.iterdir()) == [".lock"]  # no runs/, no results.csv
    finally:
        holder.kill()
        holder.wait()


def test_a_trials_lock_names_its_sweep_not_rays_worker(tmp_path):
    """Probe 34: `eval` on a sweep trial's run while it ran named its holder as Ray's worker (560 characters of
    `default_worker.py --node-ip-address=...`): nothing said which sweep to stop. The trial's lock names it."""
    from robot_wm.io import RunLockedError
    from robot_wm.run_dir import RunDir
    from robot_wm.sweep.ray_runner import run_trial

    sweep = spec.load(write_sweep(tmp_path / "s.toml", 'tasks = ["cartpole-swingup"]\nseeds = [1]\nenv_steps = 400\n'
                                  'eval_at = [200]\n'))
    trial = sweep.trials[0]
    run = results.run_dir_of(tmp_path / "sweep", trial)
    named = "robot-wm sweep trial t (sweep PID 4242: robot-wm sweep s.toml --cpus 1)"
    seen = []

    def at_milestone(run_dir, budget, mean):  # mid-run: the trial holds its run's lock
        seen.append(json.loads((Path(run_dir.root) / ".lock").read_text())["command"])
        with pytest.raises(RunLockedError, match=re.escape(f"(`{named}`, started")):
            RunDir(run).lock()

    out = run_trial({**trial.payload(run), "holder": named}, on_milestone=at_milestone)
    assert out["status"] == "complete" and seen == [named], (out, seen)


STOPPED_WHILE_RAY_STARTS = """
import os, signal, sys, threading, time
import psutil
from robot_wm.cli import Terminated, _terminate
from robot_wm.sweep.ray_runner import ray_instance

seen = open(sys.argv[1], "a", buffering=1)

def watch():  # SIGTERM as soon as ray.init has set its own handler; then every process Ray starts is noted
    while signal.getsignal(signal.SIGTERM) is _terminate:
        time.sleep(0.001)
    time.sleep(float(sys.argv[2]))
    os.kill(os.getpid(), getattr(signal, sys.argv[3]))
    while True:
        for c in psutil.Process().children(recursive=True):
            seen.write(f"{c.pid} {c.create_time()}\\n")
        time.sleep(0.02)

signal.signal(signal.SIGTERM, _terminate)
signal.signal(signal.SIGHUP, _terminate)
threading.Thread(target=watch, daemon=True).start()
try:
    with ray_instance(cpus=1):
        print("ray started", flush=True)  # a machine that started Ray sooner: the stop comes while it runs
        time.sleep(30)
except Terminated:
    print("stopped by the command's handler", flush=True)
    sys.exit(128 + getattr(signal, sys.argv[3]))
"""


@pytest.mark.parametrize("sig, after_s", [("SIGTERM", 0.0), ("SIGTERM", 0.5), ("SIGHUP", 1.0)])
def test_a_stop_while_ray_starts_ends_its_processes_through_the_commands_handler(tmp_path, sig, after_s):
    """Probe 36: SIGTERM in the seconds `ray.init` runs met Ray's own handler (sys.exit(15)): exit 15, no message,
    and twice Ray's agents outlived the sweep; probe 37: so did they after SIGHUP (the command's handler). The stop
    reaches the command's handler, and every process Ray had started is ended (the children seen up to the end are
    looked for afterwards)."""
    seen = tmp_path / "children.txt"
    script = tmp_path / "stop.py"
    script.write_text(STOPPED_WHILE_RAY_STARTS)
    r = subprocess.run([sys.executable, str(script), str(seen), str(after_s), sig], capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 128 + getattr(signal, sig) and "stopped by the command's handler" in r.stdout, r.stdout + r.stderr[-2000:]
    time.sleep(0.5)
    noted = {tuple(line.split()) for line in seen.read_text().splitlines() if line.strip()} if seen.exists() else set()
    alive = []
    for pid, created in noted:
        with contextlib.suppress(psutil.NoSuchProcess):
            p = psutil.Process(int(pid))
            if abs(p.create_time() - float(created)) < 1e-3 and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(" ".join(p.cmdline())[:120])
    assert not alive, alive


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a child subreaper is a Linux prctl")
def test_a_process_orphaned_while_ray_runs_is_still_ended():
    """The CI of session 32: a raylet stopped while it started its agents (SIGHUP 1 s into ``ray.init``) left them
    to init, out of reach of the end of the sweep, and they outlived it. While Ray runs this process adopts what
    its children orphan, and the shutdown ends those too. Here a shell starts `sleep` and exits: an orphan. (The
    module's own Ray, when up, is left running: its processes are among ``before``.)"""
    import ctypes

    libc = ctypes.CDLL(None)

    def adopting() -> int:
        flag = ctypes.c_int(0)
        assert libc.prctl(37, ctypes.byref(flag), 0, 0, 0) == 0  # PR_GET_CHILD_SUBREAPER
        return flag.value

    def orphan() -> psutil.Process:
        out = subprocess.run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True, check=True)
        return psutil.Process(int(out.stdout))

    was = adopting()
    before = {c.pid for c in psutil.Process().children(recursive=True)}
    with _subreaper():
        assert adopting()
        left = orphan()
        assert left.ppid() == os.getpid(), left.ppid()  # adopted, not handed to init
        _shut_down(lambda: None, before)
        assert not left.is_running()
    assert adopting() == was  # the adoption ends with Ray (kept when this process had asked for it before)
    if not was:
        later = orphan()
        try:
            assert later.ppid() != os.getpid()
        finally:
            later.kill()


def test_an_append_only_sweep_folder_is_refused_before_work(tmp_path, capsys):
    """Probe 39: `chattr +a` on a sweep folder kept a temp file of results.csv (and of the report's plot), and the
    sweep it advised then refused the folder for it. Refused first now, by the sweep and by the report."""
    folder = tmp_path / "sw"
    folder.mkdir()
    if subprocess.run(["chattr", "+a", str(folder)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +a is not allowed here (needs root and a file system with attributes)")
    try:
        with pytest.raises(ValueError, match="is append-only"):
            results.check_sweep_dir(folder)
        assert main(["report", str(folder)]) == 2 and "is append-only (chattr +a)" in capsys.readouterr().err
        assert not list(folder.iterdir())
    finally:
        subprocess.run(["chattr", "-a", str(folder)], check=False)


def test_a_failed_trial_is_a_failed_row_even_over_a_complete_run(tiny_run_dir):
    """Probe 41: a user's own run (seed 77) made in a trial's folder before the sweep reached it: the trial failed
    ("--resume cannot change seed"), but results.csv gave it status complete with that run's figures, under seed 3."""
    from robot_wm.sweep.spec import Trial

    assert results.is_complete(tiny_run_dir)
    trial = Trial(name="cartpole-swingup-s3", source="", is_launch=False, seed=3, grid=())
    row = results.trial_row(trial, tiny_run_dir, "failed", "ConfigError: --resume cannot change seed")
    assert row["status"] == "failed" and row["error"].startswith("ConfigError") and "eval_return_mean" not in row, row
    assert results.trial_row(trial, tiny_run_dir)["status"] == "complete"  # the same folder, no failure: its figures
