"""Rerun visual debugging: real .rrd files from a tiny run, verified by `rerun rrd verify` and read
back through ``robot_wm.viz.readback.check_rrd``. No fake rerun module."""

from __future__ import annotations

import contextlib
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from robot_wm import cli  # noqa: E402
from robot_wm.config import EnvConfig, RunConfig, apply_overrides  # noqa: E402
from robot_wm.run_dir import RunDir  # noqa: E402
from robot_wm.viz import paths as P  # noqa: E402
from robot_wm.viz.cli import find_recordings  # noqa: E402
from robot_wm.viz.readback import check_rrd, read_rrd  # noqa: E402

GHOSTS, HORIZON, EVERY = 3, 5, 5
TINY = ["env_steps=400", "seed_episodes=1", "planner.samples=32", f"planner.horizon={HORIZON}",
        "planner.iterations=2", "planner.elites=8", "planner.keep_elites=2", "model.hidden=32", "value.hidden=32",
        "model.max_epochs=5", "eval_episodes=1", "env.max_env_steps=200", "rerun.mode=save",
        f"rerun.ghosts={GHOSTS}", f"rerun.every_n_steps={EVERY}", "rerun.camera_every_n_steps=10",
        "rerun.camera_width=64", "rerun.camera_height=48"]


def expected_plans(run_dir, phases=("train", "eval")) -> int:
    recs = [r for r in RunDir(run_dir).records("episode") if r["policy"] == "learned" and r["phase"] in phases]
    return sum(math.ceil(r["control_steps"] / EVERY) for r in recs)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from robot_wm.runner import run

    root = tmp_path_factory.mktemp("viz") / "run"
    cfg = apply_overrides(RunConfig(), [f"run_dir={root}", *TINY])
    run(cfg, progress=False)
    steps = sum(r["control_steps"] for r in RunDir(root).records("episode"))
    return SimpleNamespace(root=root, plans=expected_plans(root), steps=steps)  # before the eval test adds any


def test_tiny_run_writes_a_checked_recording(tiny_run):
    files = find_recordings(tiny_run.root)
    assert len(files) == 1 and files[0].parent == tiny_run.root / "rerun"
    s = check_rrd(files[0], ghosts=GHOSTS, horizon=HORIZON, plan_steps=tiny_run.plans)
    assert {P.STEP, P.EPISODE, P.EPOCH} <= s.timelines
    assert s.rows[P.CAMERA_RGB] > 0
    assert s.rows[P.TRAIN_NLL] > 0 and s.rows[P.MULTISTEP] == len(RunDir(tiny_run.root).records("train"))
    assert s.rows[P.ROBOT_BODIES] == tiny_run.steps == len(s.body_counts)
    assert s.body_counts[0] == 2  # cartpole: cart and pole
    # per-step series are sent in batches: every step still has exactly one row, the last ones included
    for entity in (P.ROBOT_SKELETON, P.STATE_ACTUAL, P.ACTION, P.REWARD, P.LATENCY, P.LOG_COST):
        assert s.rows[entity] == tiny_run.steps, (entity, s.rows[entity], tiny_run.steps)
    for entity in (P.RETURN_PRED, P.SPREAD, P.SCORES, P.SCORE_HIST, P.GHOST_RETURNS, P.CHOSEN, P.MEMBERS,
                   P.PLAN_OBJECTIVE, P.PLAN_REWARD, P.PLAN_VALUE, P.PROPOSALS):  # the run has a value and a policy
        assert s.rows[entity] == tiny_run.plans, (entity, s.rows[entity], tiny_run.plans)
    assert s.rows[P.PLAN_GOAL] == 0  # no goal: no goal cost


def test_eval_cli_rerun_flag_and_view(tiny_run, capsys):
    assert cli.main(["eval", str(tiny_run.root), "--episodes", "1", "--no-progress", "--rerun"]) == 0
    files = find_recordings(tiny_run.root)
    assert len(files) == 2
    check_rrd(files[-1], ghosts=GHOSTS, horizon=HORIZON,
              entities=tuple(e for e in P.__dict__.values() if isinstance(e, str) and e.startswith("world/")),
              plan_steps=math.ceil(RunDir(tiny_run.root).records("episode")[-1]["control_steps"] / EVERY))
    capsys.readouterr()
    assert cli.main(["view", str(tiny_run.root), "--list"]) == 0
    assert capsys.readouterr().out.split() == [str(f) for f in files]


def test_a_runs_own_recording_is_never_overwritten_by_any_command_nor_through_a_hard_link(tiny_run, tmp_path, capsys):
    """eval rerun.path=RUN/rerun/<its recording>, a new run saving into another run's rerun/ (without that run's
    lock) and drive --rrd through a hard link all replaced a run's recording (probe 11)."""
    from robot_wm.config import check_rrd_target

    own = find_recordings(tiny_run.root)[0]
    before = own.read_bytes()
    assert cli.main(["eval", str(tiny_run.root), "--episodes", "1", "--no-progress", "--rerun", "save",
                     f"rerun.path={own}"]) == 2
    assert f"is one of the run {str(tiny_run.root)!r}'s own recordings" in capsys.readouterr().err
    other = tmp_path / "other"
    assert cli.main(["run", f"run_dir={other}", *TINY, "env_steps=200", f"rerun.path={own}", "--no-progress"]) == 2
    assert "own recordings" in capsys.readouterr().err
    os.link(own, tmp_path / "mine.rrd")
    with pytest.raises(ValueError, match="has 2 names \\(hard links\\)"):
        check_rrd_target(str(tmp_path / "mine.rrd"), "--rrd")
    assert own.read_bytes() == before
    check_rrd_target(str(tmp_path / "new.rrd"), "--rrd")  # a new file, or a user's own recording, may be written


def test_camera_frames_larger_than_the_models_offscreen_buffer(tiny_run):
    """rerun.camera_width above the model's 640-pixel offscreen buffer disabled the frames with a hint to set
    MUJOCO_GL=egl, which was set (eighth probe): the buffer grows to the frame, as for dream."""
    assert cli.main(["eval", str(tiny_run.root), "--episodes", "1", "--no-progress", "--rerun", "save",
                     "rerun.camera_width=800", "rerun.camera_height=608"]) == 0
    s = read_rrd(find_recordings(tiny_run.root)[-1])
    assert s.rows[P.CAMERA_RGB] > 0


def test_dream_and_whatif_on_a_run_made_with_rerun_write_no_stray_recording(tiny_run, tmp_path):
    """A run created with --rerun kept rerun.mode=save: dream and whatif each wrote an unannounced RUN/rerun
    recording, which `view RUN` then opened as the newest (ninth probe), and so did a plain eval (probe 31: the flag
    is the creating command's, never saved)."""
    before = set(find_recordings(tiny_run.root))
    assert 'mode = "off"' in (tiny_run.root / "config.toml").read_text()
    assert cli.main(["eval", str(tiny_run.root), "--episodes", "1", "--no-progress"]) == 0
    assert cli.main(["dream", str(tiny_run.root), "--step", "2", "--horizon", "2", "--width", "64", "--height", "48",
                     "--out", str(tmp_path / "d.mp4")]) == 0
    assert cli.main(["whatif", str(tiny_run.root), "--step", "2", "--random", "2"]) == 0
    assert set(find_recordings(tiny_run.root)) == before


def test_logger_is_torch_free_and_logs_ghosts(tmp_path):
    """The deploy runtime's path: numpy arrays in, no torch imported."""
    path = tmp_path / "deploy.rrd"
    code = f"""
import sys, numpy as np, mujoco
from robot_wm.viz.logger import RerunLogger
from sim import arm_reach
model = mujoco.MjModel.from_xml_path(str(arm_reach.XML))
lg = RerunLogger.open("save", path={str(path)!r}, mj_model=model, every_n_steps=2)
lg.begin_episode(0, "deploy")
for t in range(6):
    lg.begin_step()
    q = np.array([0.1 * t, -0.2 * t])
    lg.log_step(np.r_[q, 0, 0], [0.1, -0.1], 1.0, latency_s=0.004, qpos=q)
    if lg.plan_due():
        ghosts = q + np.linspace(0, 1, 5)[None, :, None] * np.random.randn(4, 1, 2)
        lg.log_plan(best_return=3.0, spread=0.1, scores=np.random.randn(64), ghost_qpos=ghosts,
                    ghost_returns=np.arange(4.0), chosen_qpos=ghosts[0], member_qpos=ghosts[:2], horizon=4)
lg.close()
assert "torch" not in sys.modules, "the logger imported torch"
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    s = check_rrd(path, ghosts=4, horizon=4, plan_steps=3,
                  entities=(P.ROBOT_BODIES, P.GHOSTS, P.CHOSEN, P.MEMBERS, P.SCORES, P.RETURN_REAL))
    assert s.rows[P.RETURN_REAL] == 2  # plans at t=0 and t=2 saw their 4 rewards; t=4's did not
    # batched every 2 steps and on close: all 6 steps, on both timelines
    assert s.rows[P.STATE_ACTUAL] == s.rows[P.ROBOT_SKELETON] == s.rows[P.LOG_COST] == 6
    assert {P.STEP, P.EPISODE} <= s.timelines


def test_check_rrd_catches_a_wrong_ghost_count(tiny_run):
    f = find_recordings(tiny_run.root)[0]
    with pytest.raises(AssertionError, match="ghost"):
        check_rrd(f, ghosts=GHOSTS + 1, horizon=HORIZON, run_verify=False)
    with pytest.raises(AssertionError, match="horizon"):
        check_rrd(f, ghosts=GHOSTS, horizon=HORIZON + 1, run_verify=False)
    assert read_rrd(f).plan_steps == tiny_run.plans


@pytest.mark.parametrize("task", ["cartpole-swingup", "arm-reach", "pendulum-swingup"])
def test_qpos_decoder_recovers_qpos(task):
    from sim.registry import make_env
    from robot_wm.viz.kinematics import BodyKinematics, QposDecoder, qpos_from_physics_state

    env = make_env(EnvConfig(task=task, max_env_steps=400))  # 40 control steps fit at action repeat 8 (no step past it)
    rng = np.random.default_rng(0)
    obs, states = [env.reset(0)], [env.get_state()]
    for _ in range(40):
        res = env.step(rng.uniform(env.action_spec.low, env.action_spec.high))
        obs.append(res.observation)
        states.append(env.get_state())
    obs, states = np.array(obs), np.array(states)
    qpos = qpos_from_physics_state(env.model, states)
    assert np.allclose(qpos[-1], env.data.qpos)
    dec = QposDecoder(env.model)  # generic least squares, no exact map
    dec.add_episode(obs, states)
    assert dec.fit() and dec.fit_error < 1e-3
    traj = dec.trajectories(obs[None, :8], qpos[0])[0]
    assert np.allclose(traj[0], qpos[0]) and np.abs(traj - qpos[:8]).max() < 1e-2
    kin = BodyKinematics(env.model)
    assert kin.positions(qpos[:3]).shape == (3, kin.count, 3)


def _listening(port: int) -> set[str]:
    hosts = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in open(table).readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.rsplit(":", 1)
            if state == "0A" and int(p, 16) == port:
                hosts.add(addr)
    return hosts


def test_serve_binds_localhost_by_default():
    from robot_wm.viz.logger import open_stream, parse_address

    assert parse_address(None) == ("127.0.0.1", 9876)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_address("9100") == ("127.0.0.1", 9100)
    for bad in ("127.0.0.1:99999", "localhost:70000", ":0", "0", "127.0.0.1:-1"):  # OverflowError / a port nobody knows
        with pytest.raises(ValueError, match="must be from 1 to 65535"):
            parse_address(bad)
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    rec = open_stream("serve", address=f":{port}")
    try:
        hosts = _listening(port)
        assert hosts == {"0100007F"}, f"gRPC server listens on {hosts}, expected 127.0.0.1 only"
    finally:
        rec.disconnect()


def test_serve_on_localhost_binds_loopback_and_a_host_name_or_a_missing_viewer_is_a_message(monkeypatch):
    """`--rerun-address localhost:9878` and `--rerun spawn` without a viewer on PATH were tracebacks."""
    from robot_wm.viz.logger import open_stream

    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    rec = open_stream("serve", address=f"localhost:{port}")
    try:
        assert _listening(port) == {"0100007F"}
    finally:
        rec.disconnect()
    with pytest.raises(ValueError, match="serve binds an IP address .* not the name 'robot-host'"):
        open_stream("serve", address="robot-host:9878")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ValueError, match="--rerun spawn opens Rerun's desktop viewer, which needs a display"):
        open_stream("spawn", address=f"127.0.0.1:{port}")  # was a 60 s wait and a flush traceback (probe 12)
    # probe 14: DISPLAY set, no X server behind it: the viewer died unseen, then a 60 s wait and a traceback
    free = _free_display()
    monkeypatch.setenv("DISPLAY", f":{free}")
    with pytest.raises(ValueError, match=f"needs a display \\(DISPLAY=:{free}: no X server answers there\\)"):
        open_stream("spawn", address=f"127.0.0.1:{port}")
    with socket.socket() as x_server:  # a display that answers (an X server's TCP port), but no viewer on PATH
        for n in range(50, 100):
            with contextlib.suppress(OSError):
                x_server.bind(("127.0.0.1", 6000 + n))
                break
        x_server.listen()
        monkeypatch.setenv("DISPLAY", f"127.0.0.1:{n}")
        monkeypatch.setenv("PATH", "/nonexistent")
        with pytest.raises(ValueError, match="--rerun spawn: .*Put the environment's bin folder"):
            open_stream("spawn", address=f"127.0.0.1:{port}")


def test_spawn_starts_a_viewer_bound_to_loopback(monkeypatch, capfd):
    """`--rerun spawn` started Rerun's viewer with its default bind, 0.0.0.0 (probe 12). Read from the real
    viewer's own log line; without a display it dies at once, sometimes before it listens, so it is tried
    up to three times."""
    from robot_wm.viz.logger import spawn_viewer

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    log = ""
    for _ in range(3):
        with socket.socket() as sk:
            sk.bind(("127.0.0.1", 0))
            port = sk.getsockname()[1]
        spawn_viewer(port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "Listening for gRPC" not in log and "EventLoopError" not in log:
            time.sleep(0.1)
            log += "".join(capfd.readouterr())
        assert "0.0.0.0" not in log, log[-2000:]
        if "Listening for gRPC" in log:
            assert f"Listening for gRPC connections on 127.0.0.1:{port}" in log, log[-2000:]
            return
        log = ""
    pytest.skip("the viewer died before it listened three times (no display here)")


def test_serve_on_the_ipv6_loopback(monkeypatch):
    """`--rerun-address '[::1]:9880'` was Rerun's "invalid socket address syntax" traceback (tenth probe)."""
    from robot_wm.viz.logger import open_stream

    try:
        with socket.socket(socket.AF_INET6) as sk:
            sk.bind(("::1", 0))
            port = sk.getsockname()[1]
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    rec = open_stream("serve", address=f"[::1]:{port}")
    try:
        assert _listening(port) == {"00000000000000000000000001000000"}  # ::1 in /proc/net/tcp6, and nothing else
    finally:
        rec.disconnect()


def test_serve_on_a_port_in_use_is_a_clear_error_before_the_command_starts(tiny_run_dir, tmp_path):
    """A real listener holds the port: ``eval --rerun serve`` names the address and exits 2 at once."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    before = sorted(p.name for p in run.rglob("*"))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "robot_wm.cli", "eval", str(run), "--episodes", "1", "--rerun", "serve",
                            "--rerun-address", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=300,
                           check=False, env={**os.environ, "MUJOCO_GL": "egl"})
    assert r.returncode == 2, r.stderr
    assert f"rerun serve address 127.0.0.1:{port} cannot be bound" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in run.rglob("*")) == before  # refused before any episode ran


def test_rerun_flag_maps_to_config():
    p = cli.build_parser()
    a = p.parse_args(["run", "env.task=cartpole-swingup", "--rerun"])
    assert a.rerun == "save"
    a = p.parse_args(["eval", "runs/x", "--rerun", "serve", "--rerun-address", "0.0.0.0:9999"])
    from robot_wm.viz.cli import rerun_overrides

    cfg = apply_overrides(RunConfig(), rerun_overrides(a))
    assert cfg.rerun.mode == "serve" and cfg.rerun.address == "0.0.0.0:9999"


def test_a_bare_rerun_flag_before_an_override_is_save(tiny_run, capsys):
    """`eval RUN --rerun rerun.ghosts=3` was "invalid choice: 'rerun.ghosts=3'" (probe 30): the override is one, the
    flag is bare, and the recording holds that many ghosts."""
    before = set(find_recordings(tiny_run.root))
    assert cli.main(["eval", str(tiny_run.root), "--rerun", "rerun.ghosts=3", "--episodes", "1", "--no-progress"]) == 0
    new = sorted(set(find_recordings(tiny_run.root)) - before)
    assert len(new) == 1
    check_rrd(new[0], ghosts=3, horizon=HORIZON, entities=(P.GHOST_RETURNS,),
              plan_steps=math.ceil(RunDir(tiny_run.root).records("episode")[-1]["control_steps"] / EVERY))
    assert cli._bare_rerun(["eval", "r", "--rerun", "spawn", "k=v"]) == ["eval", "r", "--rerun", "spawn", "k=v"]


def test_runner_and_the_rerun_observer_do_not_import_each_other():
    """Issue 11 defect 14: the hooks live in ``robot_wm.observer``; the run never imports the viewer side."""
    import ast

    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "robot_wm"

    def imported(path: Path) -> set[str]:
        tree = ast.parse(path.read_text())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}

    assert "robot_wm.runner" not in imported(root / "viz" / "observer.py")
    assert "robot_wm.observer" in imported(root / "viz" / "observer.py") and "robot_wm.observer" in imported(root / "runner.py")
    assert not any(m.startswith("robot_wm.viz") for m in imported(root / "observer.py"))


def test_view_binds_the_viewer_to_loopback():
    """``robot-wm view`` used to start ``rerun FILE``, whose gRPC server listens on 0.0.0.0:9876."""
    from robot_wm.viz.cli import viewer_command

    cmd = viewer_command(["rerun"], ["a.rrd", "b.rrd"])
    assert cmd[:3] == ["rerun", "--bind", "127.0.0.1"] and cmd[3:] == ["a.rrd", "b.rrd"]


def _free_display() -> int:
    """An X display number nothing answers on: the real viewer started there fails at once."""
    from robot_wm.viz.cli import display_problem

    return next(n for n in range(90, 200) if display_problem(f":{n}") is not None)


def test_view_names_what_it_cannot_open(tiny_run, tmp_path, monkeypatch, capsys):
    """The ninth probe: a text file named x.rrd went to the viewer unchecked; /etc was told to record with
    `robot-wm eval /etc --rerun`; on a headless machine the viewer started, listened, then died with winit's
    EventLoopError."""
    fake = tmp_path / "x.rrd"
    fake.write_text("notes\n")
    assert cli.main(["view", str(fake)]) == 2
    assert "is not a Rerun recording" in capsys.readouterr().err
    (tmp_path / "notes").mkdir()
    assert cli.main(["view", str(tmp_path / "notes")]) == 2
    assert "is neither a run directory nor an .rrd file" in capsys.readouterr().err
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert cli.main(["view", str(tiny_run.root)]) == 2
    assert "needs a display (DISPLAY and WAYLAND_DISPLAY are unset)" in capsys.readouterr().err
    # probe 14: with a display set, `view` died of a TypeError every time before the viewer started; probe 16: on a
    # display with no X server behind it the viewer started and died of winit's error. Refused, naming the display.
    free = _free_display()
    monkeypatch.setenv("DISPLAY", f":{free}")  # not :99, where CI's xvfb-run may have a server
    rc = cli.main(["view", str(tiny_run.root)])
    out = capsys.readouterr()
    assert rc == 2 and f"DISPLAY=:{free}: no X server answers there" in out.err and "TypeError" not in out.err, out


def test_view_lists_only_recordings(tiny_run, tmp_path, capsys):
    """`view RUN --list` listed a FIFO, a folder, a dangling link and a link to /dev/zero named *.rrd and printed a
    name's ESC sequence raw; `view RUN` opened the newest of them (tenth probe)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run.root, run)
    real = sorted((run / "rerun").glob("*.rrd"))
    assert real, "the tiny run records with Rerun"
    rr = run / "rerun"
    os.mkfifo(rr / "fifo.rrd")
    (rr / "folder.rrd").mkdir()
    (rr / "dangling.rrd").symlink_to(tmp_path / "nowhere")
    (rr / "zero.rrd").symlink_to("/dev/zero")
    (rr / "notes.rrd").write_text("not a recording\n")
    shutil.copy(real[0], rr / "\x1b[31mred.rrd")
    assert cli.main(["view", str(run), "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert sorted(listed) == sorted([*map(str, real), str(rr / "\\x1b[31mred.rrd")]), listed


def test_a_delayed_planners_recording_shows_the_plan_with_its_commands_in_flight(tiny_run, tmp_path):
    """`eval --shift delay-1 planner.delay=1 --rerun` on a copy: the ghosts and the policy proposals are replayed
    from the commands in flight, and the recording holds every plan panel."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run.root, run)
    before = set(find_recordings(run))
    assert cli.main(["eval", str(run), "--episodes", "1", "--no-progress", "--rerun", "--shift", "delay-1",
                     "planner.delay=1"]) == 0
    (new,) = set(find_recordings(run)) - before
    ep = RunDir(run).records("episode")[-1]
    check_rrd(new, ghosts=GHOSTS, horizon=HORIZON, entities=(P.CHOSEN, P.PROPOSALS, P.PLAN_VALUE),
              plan_steps=math.ceil(ep["control_steps"] / EVERY))


def test_steps_the_value_guard_planned_without_the_value_show_no_terminal_value(tiny_run, tmp_path):
    """The plan panel scores the executed plan as the step scored it: where the value guard had the value off, the
    terminal value part is zero (it showed the value the step never used: review of session 23)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run.root, run)
    before = set(find_recordings(run))
    assert cli.main(["eval", str(run), "--episodes", "1", "--no-progress", "--rerun", "save", "rerun.every_n_steps=1",
                     "planner.value_guard=1e-6", "planner.value_guard_window=1"]) == 0
    (new,) = set(find_recordings(run)) - before
    rec = RunDir(run).records("episode")[-1]
    values = [v[0] for v in read_rrd(new, scalars=(P.PLAN_VALUE,)).scalars[P.PLAN_VALUE].values()]
    assert len(values) == rec["control_steps"]
    assert 0 < rec["value_off_steps"] < rec["control_steps"], rec
    assert sum(v == 0.0 for v in values) == rec["value_off_steps"], values


def test_loopback_is_known_in_every_spelling(capsys):
    """Probe 28: `--rerun-address [::ffff:127.0.0.1]:9873` (the IPv4 loopback, IPv4-mapped) was warned about as
    "not a loopback address"; `[::ffff:0.0.0.0]` must still be."""
    from robot_wm.net import is_loopback
    from robot_wm.viz.cli import warn_non_loopback

    assert all(map(is_loopback, ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1", "localhost")))
    assert not any(map(is_loopback, ("0.0.0.0", "::", "::ffff:0.0.0.0", "10.0.0.1", "::ffff:10.0.0.1", "example.com")))
    warn_non_loopback("serve", "[::ffff:127.0.0.1]:9873")
    assert capsys.readouterr().err == ""
    warn_non_loopback("serve", "[::ffff:0.0.0.0]:9873")
    assert "(::ffff:0.0.0.0 is not a loopback address)" in capsys.readouterr().err


def test_serving_on_an_address_of_another_machine_says_so():
    """Probe 29: `--serve 1.2.3.4:9876` was told another viewer may hold the port."""
    from robot_wm.viz.logger import check_port_free

    with pytest.raises(ValueError, match=r"1\.2\.3\.4 is not an address of this machine; serve on one of its own"):
        check_port_free("1.2.3.4", 9876, "--serve")
