"""Dream videos: real MuJoCo rendering of imagined states, a real mp4 read back, a real .rrd verified."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from test_export import make_run_dir

from policies.random import RandomPolicy
from robot_wm import config as cfgmod
from robot_wm.dream import Dream, dream, render_dream, write_video
from robot_wm.io import current_umask
from robot_wm.viz.kinematics import QposDecoder
from robot_wm.viz.readback import read_rrd, verify
from sim.collect import run_episode
from sim.registry import make_env


def _episode(task_overrides: list[str], steps: int = 40):
    env = make_env(cfgmod.apply_overrides(cfgmod.RunConfig(), task_overrides).env)
    ep = run_episode(env, RandomPolicy(env.action_spec, seed=1), seed=2)
    return env, ep


@pytest.mark.parametrize("task", [["env.task=cartpole-swingup"], ["env.task=arm-reach", "env.action_repeat=2", "env.max_env_steps=60"]])
def test_imagined_frames_of_the_true_states_are_the_real_frames(task):
    """Rendering 'imagined' states that are exactly the recorded ones gives the recorded frames: what the
    right panel shows is the model's prediction, nothing added by the mapping back to the robot's bodies."""
    env, ep = _episode(task)
    k = min(12, len(ep.action))
    real = ep.obs[:k + 1]
    d = Dream(real, real[None], np.zeros((1, k + 1)), ep.physics_state[:k + 1], 0)
    decoder = QposDecoder(env.model, task[0].split("=")[1])
    if decoder.exact is None:  # the arm: a fit on (observation, joint position) pairs, exact for cos/sin hinges
        decoder.add_episode(ep.obs, ep.physics_state)
        decoder.fit()
    frames = render_dream(env, d, decoder, size=(96, 128))
    assert frames.shape[1:] == (96 + 48, 256, 3)
    left, right = frames[:, :96, :128].astype(int), frames[:, :96, 128:].astype(int)
    if decoder.exact is not None:
        assert np.array_equal(left, right)
    else:  # a fit to within ~1e-4 rad: at most an edge pixel here and there
        assert (np.abs(left - right) > 8).mean() < 1e-3, (np.abs(left - right) > 8).mean()
    moved = np.abs(left[0] - left[-1]).sum()
    assert moved > 0  # the robot moved over those steps, so equal panels mean equal poses
    drift = np.zeros_like(real)
    drift[:, 0] = np.linspace(0, 0.4, k + 1)  # the first coordinate drifting away from the truth
    shifted = render_dream(env, Dream(real, (real + drift)[None], d.error, d.physics, 0), decoder, size=(96, 128))
    assert np.abs(shifted[-1, :96, 128:].astype(int) - right[-1]).max() > 20  # a wrong prediction shows


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("dreamrun"))


def test_dream_rolls_the_episode_actions_open_loop_and_checks_its_range(run_dir):
    from robot_wm.run_dir import RunDir
    from robot_wm.runner import Session

    with Session.open(RunDir(run_dir).load_config(), RunDir(run_dir), progress=False, lock=False) as s:
        model, ep = s.latest_model(), s.run.dataset()[0]
    d = dream(model, ep, step=5, horizon=20)
    assert d.imagined.shape == (model.members, 21, 5) and d.real.shape == (21, 5) and d.physics.shape[0] == 21
    np.testing.assert_allclose(d.imagined[:, 0], np.broadcast_to(ep.obs[5], (model.members, 5)), atol=1e-6)
    assert np.all(d.error[:, 0] < 1e-5) and np.all(d.error >= 0) and d.error[:, -1].mean() > d.error[:, 1].mean()
    n = len(ep.action)
    with pytest.raises(ValueError, match=f"--step {n} is out of range: the episode has {n} steps"):
        dream(model, ep, step=n)
    with pytest.raises(ValueError, match=f"--horizon 0: expected 1 to {n - 5}"):
        dream(model, ep, step=5, horizon=0)
    with pytest.raises(ValueError, match="--horizon"):
        dream(model, ep, step=5, horizon=n)
    from robot_wm.data.episode import Episode

    far = Episode(np.full_like(ep.obs, 1e30), ep.action, ep.reward, ep.physics_state, ep.meta)
    with pytest.raises(ValueError, match="no state the model can score"):  # a video of inf errors, exit 0 (probe 29)
        dream(model, far, step=0, horizon=5)


def test_dream_command_writes_an_mp4_and_a_rerun_recording(run_dir, tmp_path):
    env = {**os.environ, "MUJOCO_GL": "egl"}
    out, rrd = tmp_path / "d.mp4", tmp_path / "d.rrd"
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    r = subprocess.run([sys.executable, "-m", "robot_wm.cli", "dream", str(run_dir), "--episode", "1", "--step", "3",
                        "--horizon", "10", "--out", str(out), "--rrd", str(rrd), "--width", "128", "--height", "96"],
                       capture_output=True, text=True, env=env, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    frames = iio.imread(out)
    assert frames.shape == (11, 96 + 48, 256, 3)
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before  # the run is only read
    verify(rrd)
    summary = read_rrd(rrd)
    assert summary.rows["dream/video"] == 11 and summary.rows["dream/error/mean"] == 11
    assert "dream_time" in summary.timelines
    assert not list(tmp_path.glob(".d.*"))  # no temp file left
    for args, needle in ((["--episode", "99"], "--episode 99 is out of range"), (["--out", str(tmp_path / "d.avi")],
                         "expected a path ending in .mp4 or .gif"), (["--member", "7"], "--member 7: the model has 2 members")):
        r = subprocess.run([sys.executable, "-m", "robot_wm.cli", "dream", str(run_dir), "--horizon", "3", *args],
                           capture_output=True, text=True, env=env, timeout=300, check=False)
        assert r.returncode == 2 and needle in r.stderr, r.stderr
    # The run's own recording (RUN/rerun/*.rrd, written by eval --rerun) was replaced by the dream (tenth probe)
    import shutil

    from robot_wm.cli import main

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "rerun").mkdir(exist_ok=True)
    own = copy / "rerun" / "run-1.rrd"
    shutil.copy(rrd, own)
    blob = own.read_bytes()
    assert main(["dream", str(copy), "--horizon", "3", "--out", str(tmp_path / "e.mp4"), "--rrd", str(own)]) == 2
    assert own.read_bytes() == blob and not (tmp_path / "e.mp4").exists()


def test_write_video_is_atomic_and_leaves_an_older_video_whole_on_failure(tmp_path):
    frames = np.zeros((4, 32, 48, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(4)[:, None, None] * 60  # frames that differ, so a gif keeps all four
    for name in ("v.mp4", "v.gif"):
        out = tmp_path / name
        write_video(out, frames, fps=10)
        old = out.read_bytes()
        assert iio.imread(out).shape[:3] == (4, 32, 48)
        assert out.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # as any new file of the user, not 0600
        with pytest.raises(Exception):  # noqa: B017 -- imageio/ffmpeg/Pillow choose the exception type
            write_video(out, np.zeros((4, 32, 48, 7), np.uint8), fps=10)  # 7 channels: no image
        assert out.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.gif", "v.mp4"]
    with pytest.raises(ValueError, match="expected a path ending in .mp4 or .gif"):
        write_video(tmp_path / "v.avi", frames, fps=10)


def test_dream_of_a_whatif_candidate_is_beside_the_simulator_rerun_with_its_actions(run_dir, tmp_path):
    """A candidate's 'real' panel is the simulator re-run from the recorded state: for the recorded actions
    given as a file, it reproduces the recorded episode, and so does the imagination (the same model);
    another candidate's real states differ from the recorded ones."""
    from robot_wm.drive import replay
    from robot_wm.run_dir import RunDir
    from robot_wm.runner import Session
    from robot_wm.whatif import candidates

    with Session.open(RunDir(run_dir).load_config(), RunDir(run_dir), progress=False, lock=False) as s:
        model, ep = s.latest_model(), s.run.dataset()[1]
        recorded = dream(model, ep, step=3, horizon=10)
        again = replay(model, s.env, ep, 3, ep.action[3:13])
        np.testing.assert_allclose(again.real, recorded.real, atol=1e-5)
        np.testing.assert_allclose(again.physics, recorded.physics, atol=1e-5)  # actions stored as float32
        np.testing.assert_allclose(again.imagined, recorded.imagined, atol=1e-4)
        names, seqs = candidates(ep.action[3:13], s.env.action_spec.low, s.env.action_spec.high, random=2, seed=0)
        assert names == ["recorded", "zero", "random[0]", "random[1]"] and seqs.shape == (4, 10, 1)
        other = replay(model, s.env, ep, 3, seqs[2])
        assert np.abs(other.real[-1] - recorded.real[-1]).max() > 1e-2
        np.testing.assert_allclose(other.real[0], recorded.real[0])
    np.save(tmp_path / "c.npy", np.stack([ep.action[3:13], -ep.action[3:13]]))
    out = tmp_path / "c.gif"
    r = subprocess.run([sys.executable, "-m", "robot_wm.cli", "dream", str(run_dir), "--episode", "1", "--step", "3",
                        "--horizon", "10", "--candidate", "file[1]", "--actions", str(tmp_path / "c.npy"),
                        "--out", str(out), "--width", "64", "--height", "48"],
                       capture_output=True, text=True, env={**os.environ, "MUJOCO_GL": "egl"}, timeout=300, check=False)
    assert r.returncode == 0 and "candidate file[1]" in r.stdout, r.stderr
    assert iio.imread(out).shape[:3] == (11, 48 + 16, 128)
    for args, needle in ((["--candidate", "random[9]", "--horizon", "10"],
                          "--candidate 'random[9]': expected one of recorded, zero"),
                         (["--candidate", "file[0]", "--actions", str(tmp_path / "c.npy"), "--horizon", "11"],
                          "expected (K, H, 1) with K >= 1 sequences and H >= 11"),
                         (["--candidate", "file[0]", "--actions", str(tmp_path / "none.npy"), "--horizon", "10"],
                          "does not exist")):
        r = subprocess.run([sys.executable, "-m", "robot_wm.cli", "dream", str(run_dir), "--episode", "1", "--step",
                            "3", *args], capture_output=True, text=True,
                           env={**os.environ, "MUJOCO_GL": "egl"}, timeout=300, check=False)
        assert r.returncode == 2 and needle in r.stderr, r.stderr


def test_dreams_of_other_horizons_or_action_files_get_their_own_default_names(run_dir, tmp_path):
    """Probe 29: `dream RUN --horizon 10`, then `--horizon 5`, wrote one RUN/dreams/episode000001_step0.mp4, the
    first replaced without a word (likewise two --actions files)."""
    np.save(tmp_path / "a.npy", np.zeros((1, 5, 1)))
    names = []
    for args in (["--horizon", "10"], ["--horizon", "5"], ["--horizon", "5", "--candidate", "file[0]", "--actions",
                                                          str(tmp_path / "a.npy")]):
        r = subprocess.run([sys.executable, "-m", "robot_wm.cli", "dream", str(run_dir), "--episode", "1", *args,
                            "--width", "64", "--height", "48"], capture_output=True, text=True,
                           env={**os.environ, "MUJOCO_GL": "egl"}, timeout=300, check=False)
        assert r.returncode == 0, r.stderr
        names.append(Path(r.stdout.split("wrote ", 1)[1].split(":", 1)[0]).name)
    assert names == ["episode000001_step0_h10.mp4", "episode000001_step0_h5.mp4", "episode000001_step0_file0_h5_a.mp4"]


def _drive(run_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    step = [] if "--step" in args else ["--step", "2"]  # each flag once (a second one is refused)
    return subprocess.run([sys.executable, "-m", "robot_wm.cli", "drive", str(run_dir), "--episode", "1", *step,
                           "--width", "64", "--height", "48", *args], input=stdin, capture_output=True, text=True,
                          env={**os.environ, "MUJOCO_GL": "egl"}, timeout=300, check=False)


def test_drive_the_model_from_a_scripted_action_file_beside_the_simulator(run_dir, tmp_path):
    script = tmp_path / "actions.txt"
    script.write_text("# swing right, then left\n0.8\n\n\n-3.0   # clamped to the bounds\n-0.5\n")
    rrd, out = tmp_path / "drive.rrd", tmp_path / "drive.mp4"
    r = _drive(run_dir, "--actions", str(script), "--rrd", str(rrd), "--out", str(out))
    assert r.returncode == 0, r.stderr
    steps = [line for line in r.stdout.splitlines() if line.startswith("step ")]
    assert [line.split(":")[0] for line in steps] == [f"step {i}" for i in range(1, 6)], r.stdout
    assert "action [0.8]" in steps[2] and "action [-1.0]" in steps[3]  # a blank repeats; -3 is clamped
    assert "(clipped to the bounds)" in steps[3] and "clipped" not in steps[2]  # said so (probe 11)
    errors = [float(line.rsplit("error vs simulator", 1)[1]) for line in steps]
    assert all(e >= 0 for e in errors) and errors[-1] > 0
    closing = next(line for line in r.stdout.splitlines() if line.startswith("drove 5 steps"))
    assert f"error vs simulator at the end {errors[-1]:.3f} (the members' mean prediction" in closing, r.stdout  # probe 28
    assert f"wrote the Rerun recording {rrd}" in r.stdout  # written without a word (probe 32)
    verify(rrd)
    summary = read_rrd(rrd)
    assert summary.rows["drive/video"] == 5 and summary.rows["drive/error/mean"] == 5
    assert iio.imread(out).shape[0] == 6  # the start state and the 5 steps
    bad = tmp_path / "bad.txt"
    bad.write_text("0.1\nleft\n")
    r = _drive(run_dir, "--actions", str(bad))
    assert r.returncode == 2 and "line 2: 'left' is not 1 number" in r.stderr, r.stderr
    np.save(tmp_path / "wrong.npy", np.zeros((4, 3)))
    r = _drive(run_dir, "--actions", str(tmp_path / "wrong.npy"))
    assert r.returncode == 2 and "expected (K, 1)" in r.stderr, r.stderr


def test_drive_the_model_by_keyboard_explains_bad_lines_and_goes_on(run_dir):
    r = _drive(run_dir, stdin="\n0.5\nabc\nnan\n0.2 0.3\n\n-0.5\nq\n0.9\n")
    assert r.returncode == 0, r.stderr
    assert "no action yet to repeat" in r.stdout and "'abc' is not 1 number" in r.stdout
    assert "'nan': expected finite numbers, got nan" in r.stdout and "'0.2 0.3': expected 1 number" in r.stdout
    steps = [line for line in r.stdout.splitlines() if line.startswith("step ")]
    assert len(steps) == 3 and "action [0.5]" in steps[1] and "action [-0.5]" in steps[2]  # q ends it
    # probe 14: stdin without a newline (`< /dev/zero`) was read whole: gigabytes, then a MemoryError traceback
    # probe 18: past 1 MiB it ended with an error and the --out video of the steps driven was lost: the input ends
    endless = run_dir.parent / "endless.mp4"
    r = _drive(run_dir, "--max-steps", "5", "--out", str(endless), stdin="0.5\n" + "0" * (1 << 22))
    assert r.returncode == 0 and "a line longer than 1,048,576 characters: the input ends here" in r.stdout, r.stderr
    assert "Traceback" not in r.stderr and "step 1:" in r.stdout  # the line before it was driven
    assert iio.imread(endless).shape[0] == 2  # ... and written: the start state and that step
    # probe 17: one pasted line of 5,000 characters ended the session; it is skipped, explained, and driving goes on
    r = _drive(run_dir, "--out", str(run_dir.parent / "skipped.mp4"), stdin="0.5\n" + "0" * 5000 + "\n0.2\nq\n")
    assert r.returncode == 0 and "longer than 4096 characters was skipped" in r.stdout, r.stderr
    assert sum(line.startswith("step ") for line in r.stdout.splitlines()) == 2
    # and a drive that ends before its first step says that --out was not written (exit 0, no word: probe 17)
    r = _drive(run_dir, "--out", str(run_dir.parent / "none.mp4"), stdin="q\n")
    assert r.returncode == 0 and "no step was driven" in r.stdout and not (run_dir.parent / "none.mp4").exists()
    for flag, target in (("--out", "x.mp4"), ("--rrd", "x.rrd")):  # a file where a folder belongs (probe 17)
        r = _drive(run_dir, flag, str(run_dir / "config.toml" / target), stdin="0.5\nq\n")
        assert r.returncode == 2 and f"{flag} " in r.stderr and "is a file, not a folder" in r.stderr, r.stderr
        assert "step " not in r.stdout  # refused before the first step


def test_drive_serving_on_every_interface_says_so(run_dir, tmp_path):
    """`drive --serve 0.0.0.0:PORT` listened on every interface without the warning eval --rerun serve prints."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = tmp_path / "a.txt"
    script.write_text("0.5\n")
    r = _drive(run_dir, "--actions", str(script), "--serve", f"0.0.0.0:{port}")
    assert r.returncode == 0, r.stderr
    assert f"warning: Rerun will listen on 0.0.0.0:{port} (0.0.0.0 is not a loopback address)" in r.stderr
    with socket.socket() as busy:  # a busy port is named with drive's own flag (it has no --rerun-address)
        busy.bind(("127.0.0.1", port))
        busy.listen()
        r = _drive(run_dir, "--actions", str(script), "--serve", f"127.0.0.1:{port}")
    assert r.returncode == 2 and "choose another port with --serve" in r.stderr, r.stderr
    r = _drive(run_dir, "--actions", str(script), "--serve", f"127.0.0.1:{port}", "--rrd", str(tmp_path / "d.rrd"))
    assert r.returncode == 2 and "give one" in r.stderr and not (tmp_path / "d.rrd").exists(), r.stderr  # was ignored
    r = _drive(run_dir, "--actions", str(script), "--serve", f"0:{port}")  # named --rerun-address (probe 13)
    assert r.returncode == 2 and "--serve '0:" in r.stderr and "--rerun-address" not in r.stderr, r.stderr


def test_drive_from_the_last_state_of_an_episode_says_no_step_can_follow(run_dir):
    """`drive --step N` at the episode's time limit was accepted, then the first action was a RuntimeError traceback
    (probe 19)."""
    from robot_wm.data.dataset import EpisodeDataset

    n = len(EpisodeDataset(run_dir / "episodes")[1])
    r = _drive(run_dir, "--step", str(n), stdin="0.5\nq\n")
    assert r.returncode == 2 and f"--step {n} is at the simulator's time limit" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_drive_on_an_episode_without_physics_state_says_so(run_dir, tmp_path):
    """An episode whose physics state has width 0 (a robot's recording) ended drive in MuJoCo's "state size
    should equal mj_stateSize" traceback (seventh probe, 2026-11-26)."""
    import shutil

    from robot_wm.data.episode import Episode

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    path = sorted((run / "episodes").glob("*.npz"))[1]
    ep = Episode.load(path)
    Episode(ep.obs, ep.action, ep.reward, np.zeros((len(ep.obs), 0)), ep.meta).save(path)
    script = tmp_path / "a.txt"
    script.write_text("0.5\n")
    r = _drive(run, "--actions", str(script))
    # since probe 24 drive checks the run's episodes as train does: the edited file is named before it is driven
    assert r.returncode == 2 and "changed after it was stored" in r.stderr and str(path) in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    env, _ = _episode([])
    with pytest.raises(ValueError, match=r"physics state of 3 values: this model's full physics state has \d+"):
        env.set_state(np.zeros(3))


def test_dream_panels_larger_than_the_models_offscreen_buffer(run_dir, tmp_path):
    """--width/--height up to 4096 were accepted, then MuJoCo's framebuffer error above 640 x 480 told the user
    to edit the model's XML (probe of 2026-11-26): the buffer grows to the panel."""
    from robot_wm.cli import main

    out = tmp_path / "big.mp4"
    assert main(["dream", str(run_dir), "--step", "2", "--horizon", "1", "--out", str(out), "--width", "704",
                 "--height", "496"]) == 0
    assert out.stat().st_size > 0


def test_a_video_cut_by_a_full_disk_is_an_error_and_no_file(run_dir, tmp_path):
    """With a file size limit ffmpeg left a cut, unreadable mp4 and dream said "wrote" (probe of 2026-11-26)."""
    out = tmp_path / "cut.mp4"
    r = subprocess.run(["prlimit", "--fsize=20000", sys.executable, "-m", "robot_wm.cli", "dream", str(run_dir),
                        "--step", "2", "--horizon", "20", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "MUJOCO_GL": "egl"})
    assert r.returncode != 0 and "the video encoder produced" in r.stderr and "nothing was written" in r.stderr, r.stderr
    assert not out.exists()


def test_a_video_too_big_for_memory_is_refused_before_rendering(run_dir, tmp_path):
    """Every frame is held until encoded: 23 steps at 4096 x 4096 asked 3.4 GiB under a 6 GB limit and ended in a
    numpy ArrayMemoryError traceback, nothing written (tenth probe). The address-space limit counts as memory."""
    from robot_wm.dream import check_video_memory

    with pytest.raises(ValueError, match=r"23 frames of 8192x6144 pixels needs about 9.7 GiB; 6.0 GiB is available.*lower --width/--height"):
        check_video_memory(23, (4096, 4096), available=6 << 30)
    check_video_memory(200, (240, 320), available=6 << 30)
    out = tmp_path / "big.mp4"
    r = subprocess.run(["prlimit", "--as=6000000000", sys.executable, "-m", "robot_wm.cli", "dream", str(run_dir),
                        "--step", "1", "--horizon", "23", "--width", "4096", "--height", "4096", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "MUJOCO_GL": "egl"})
    assert r.returncode == 2 and "needs about" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not out.exists()
    # drive checked it only after the whole drive (probe 11): refused before the first step now
    (tmp_path / "a.txt").write_text("0.5\n" * 24)
    r = subprocess.run(["prlimit", "--as=6000000000", sys.executable, "-m", "robot_wm.cli", "drive", str(run_dir),
                        "--actions", str(tmp_path / "a.txt"), "--width", "4096", "--height", "4096", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "MUJOCO_GL": "egl"})
    assert r.returncode == 2 and "25 frames" in r.stderr and "step 1:" not in r.stdout, r.stderr + r.stdout
    assert not out.exists()


def test_dream_into_a_dreams_link_to_one_of_the_runs_files_is_named(run_dir, tmp_path):
    """RUN/dreams a link to RUN/config.toml (inside the run, so not "outside"): a raw '[Errno 17] File exists'
    (eighth probe)."""
    import shutil

    from robot_wm.cli import main

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    shutil.rmtree(run / "dreams", ignore_errors=True)  # another test's default videos (the fixture is shared)
    (run / "dreams").symlink_to(run / "config.toml")
    before = (run / "config.toml").read_bytes()
    assert main(["dream", str(run), "--step", "2", "--horizon", "1", "--width", "64", "--height", "48"]) == 2
    assert (run / "config.toml").read_bytes() == before


@pytest.mark.parametrize("text", ["1_000", "\u0661", "0x1"])
def test_typed_actions_are_ascii_decimal_numbers(text):
    """float() read '1_000' as 1000 and an Arabic-Indic digit as 1: driven (clipped) without a word (probe 11)."""
    from robot_wm.drive import parse_action

    with pytest.raises(ValueError, match="is not 1 number"):
        parse_action(text, 1, None)
    assert parse_action("-0, 1e-400 +.5", 3, None).tolist() == [0.0, 0.0, 0.5]


def test_a_scripted_actions_file_may_start_with_a_bom_and_a_closed_stdin_is_named(tmp_path):
    """Probe 15: a BOM in --actions was refused as "'\\ufeff0.5' is not 1 number"; `drive <&-` was an AttributeError."""
    from robot_wm.drive import scripted_actions, typed_lines

    f = tmp_path / "a.txt"
    f.write_bytes("\ufeff0.5\n-0.25\n".encode())
    assert [a.tolist() for a in scripted_actions(f, 1)] == [[0.5], [-0.25]]
    with pytest.raises(ValueError, match="standard input is closed"):
        next(typed_lines(None))


def test_a_drive_stops_at_the_simulators_time_limit_with_a_message(run_dir, tmp_path, capsys):
    """A scripted drive longer than the episode (50 control steps here) was a RuntimeError traceback at the limit
    once Env.step refused to step on past it (found reviewing probe 15's fixes)."""
    from robot_wm.cli import main

    (tmp_path / "a.txt").write_text("0.5\n" * 60)
    assert main(["drive", str(run_dir), "--episode", "0", "--actions", str(tmp_path / "a.txt")]) == 0
    out = capsys.readouterr().out
    assert "step 50:" in out and "step 51:" not in out
    assert "the simulator's episode ended here (its time limit, 50 control steps into the episode)" in out
    # from step 45 the limit is 5 steps away, not 50 (probe 17: the clock restarted at the restored state)
    assert main(["drive", str(run_dir), "--episode", "0", "--step", "45", "--actions", str(tmp_path / "a.txt")]) == 0
    out = capsys.readouterr().out
    assert "step 5:" in out and "step 6:" not in out and "its time limit" in out


def test_a_drive_past_the_models_range_reports_inf_and_still_plots(run_dir):
    """Driven 1000 steps, the model's prediction overflowed: numpy's overflow warnings, "error nan", and the video
    was lost to "Axis limits cannot be NaN or Inf" (probe 12). Here a model whose output layer is scaled up."""
    import warnings

    import torch

    from robot_wm.drive import Drive
    from robot_wm.dream import _error_strip
    from robot_wm.run_dir import RunDir
    from robot_wm.runner import Session

    with Session.open(RunDir(run_dir).load_config(), RunDir(run_dir), progress=False, lock=False) as s:
        model, ep, env = s.latest_model(), s.run.dataset()[0], s.env
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1e4)
        drive = Drive(model, env, ep, step=2)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no RuntimeWarning from numpy
            ticks = [drive.step(np.array([0.5])) for _ in range(6)]
            assert any(t.error == float("inf") for t in ticks), [t.error for t in ticks]
            strip, cols = _error_strip(drive.as_dream(), 320, 120, env.control_timestep)
    assert strip.shape == (120, 320, 3) and len(cols) == 7
