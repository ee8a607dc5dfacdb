"""The torch-free runtime: real onnxruntime sessions on real exported files (no mocks)."""

from __future__ import annotations

from collections import deque

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from test_export import make_run_dir

from robot_wm.runtime.loop import ControlLoop, LoopStats
from robot_wm.runtime.session import ModelFileError, PlannerSession, ProviderError, provider_chain


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    from policies.mpc.step import StepSpec
    from robot_wm.export.onnx_export import export_dynamics, export_planner
    from robot_wm.export.source import control_period, load_source

    root = tmp_path_factory.mktemp("rt")
    src = load_source(make_run_dir(root / "run"))
    meta = {"task": src.cfg.env.task, "action_repeat": src.cfg.env.action_repeat,
            "control_period": repr(control_period(src.cfg)), "source_sha256": src.sha256}
    spec = StepSpec.from_config(src.cfg.planner)
    out = {"internal": root / "planner.onnx", "input": root / "planner_noise.onnx", "dynamics": root / "dyn.onnx"}
    export_planner(src.model, spec, out["internal"], noise="internal", metadata=meta)
    export_planner(src.model, spec, out["input"], noise="input", metadata=meta)
    export_dynamics(src.model, out["dynamics"], meta)
    return out


def test_deploy_runs_episodes_without_ever_importing_torch(files):
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        from robot_wm.cli import main
        rc = main(["deploy", {str(files['internal'])!r}, "--episodes", "1", "--deadline-ms", "1000"])
        assert rc == 0, rc
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m] is not None)
        print("NO_TORCH_OK")
    """)
    r = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "NO_TORCH_OK" in r.stdout
    assert "return" in r.stdout and "p99" in r.stdout and "provider CPUExecutionProvider" in r.stdout


def test_recorded_deployment_on_a_shifted_robot_loads_as_a_dataset(files, tmp_path):
    """`deploy --record DIR --shift mass-1.3` (torch-free): every episode lands in DIR in the episode
    format, with rewards, latency, fallbacks and the simulated robot's perturbation."""
    rec = tmp_path / "robot_data"
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None
        from robot_wm.cli import main
        rc = main(["deploy", {str(files['internal'])!r}, "--episodes", "2", "--deadline-ms", "1000",
                   "--record", {str(rec)!r}, "--shift", "mass-1.3", "--sim", "max_env_steps=80"])
        assert rc == 0, rc
    """)
    r = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.data.episode import Episode

    data = EpisodeDataset(rec)
    assert len(data) == 2
    printed = [float(line.split("return ")[1].split()[0]) for line in r.stdout.splitlines() if line.startswith("episode")]
    for ep, ret, seed in zip(data, printed, (0, 1)):
        steps = 80 // ep.meta["action_repeat"]
        assert len(ep) == steps and ep.obs.shape == (steps + 1, 5) and ep.physics_state.shape[0] == steps + 1
        assert ep.meta["return"] == pytest.approx(ret, abs=0.06) and ep.meta["reward_known"]
        assert ep.meta["randomization"]["mass"] == 1.3 and ep.meta["shift"] == "mass-1.3"
        assert ep.meta["seed"] == seed and ep.meta["source"] == "sim-robot" and ep.meta["task"] == "cartpole-swingup"
        assert ep.meta["planner_delay"] == 0  # finetune realigns a delayed robot's recordings by it
        assert len(ep.meta["latency_ms"]) == steps and ep.meta["fallback_steps"] == []
        assert (np.abs(ep.action) <= 1).all()
    again = Episode.load(data.paths()[0])  # the file round-trips
    np.testing.assert_array_equal(again.obs, data[0].obs)
    np.testing.assert_array_equal(again.reward, data[0].reward)
    assert data.split(0.2)[0].obs.shape[1] == 5  # trains like any other dataset


def test_recorded_deployment_marks_the_steps_that_fell_back(files, tmp_path):
    from robot_wm.cli import main
    from robot_wm.data.dataset import EpisodeDataset

    rec = tmp_path / "late"
    assert main(["deploy", str(files["internal"]), "--episodes", "1", "--deadline-ms", "0.001", "--record", str(rec),
                 "--sim", "max_env_steps=40"]) == 3  # every step fell back: the deployment fails loudly
    ep = EpisodeDataset(rec)[0]
    assert [f["step"] for f in ep.meta["fallback_steps"]] == list(range(len(ep)))
    assert all(f["reason"].startswith("overrun") for f in ep.meta["fallback_steps"])
    assert "randomization" not in ep.meta  # the nominal robot
    assert "safe_stop" not in ep.meta and "interrupted" not in ep.meta
    # A safe stop ends the episode early: its recording says so (its return read as an episode's: tenth probe)
    assert main(["deploy", str(files["internal"]), "--episodes", "2", "--deadline-ms", "0.001", "--max-fallbacks",
                 "2", "--record", str(tmp_path / "stop"), "--sim", "max_env_steps=200"]) == 3
    stopped = EpisodeDataset(tmp_path / "stop")
    assert len(stopped) == 1 and len(stopped[0]) < 25
    assert stopped[0].meta["safe_stop"].startswith("2 consecutive fallbacks")


def test_deploy_refuses_a_record_folder_of_another_robot_before_driving(files, tmp_path, capsys):
    """Episodes of another size in the --record folder were found when each episode was saved, after the robot
    had driven it: with --episodes 3, three episodes driven and lost (tenth probe)."""
    from robot_wm.cli import main
    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.data.episode import Episode

    other = EpisodeDataset(tmp_path / "rec", create=True)
    other.append(Episode(np.zeros((4, 3)), np.zeros((3, 2)), np.zeros(3), np.zeros((4, 0)), {"task": "arm"}))
    assert main(["deploy", str(files["internal"]), "--episodes", "3", "--record", str(tmp_path / "rec")]) == 2
    out = capsys.readouterr()
    assert "holds episodes of 3 state and 2 action dimensions (task 'arm')" in out.out + out.err
    assert "episode 0" not in out.out and len(EpisodeDataset(tmp_path / "rec")) == 1
    # the same sizes, another task: written into one folder, then finetune refused all of it (probe 11)
    balance = EpisodeDataset(tmp_path / "balance", create=True)
    balance.append(Episode(np.zeros((4, 5)), np.zeros((3, 1)), np.zeros(3), np.zeros((4, 0)),
                           {"task": "cartpole-balance", "action_repeat": 8}))
    assert main(["deploy", str(files["internal"]), "--episodes", "1", "--record", str(tmp_path / "balance")]) == 2
    out = capsys.readouterr()
    assert "holds episodes of task 'cartpole-balance' at action repeat 8" in out.out + out.err, out
    assert len(EpisodeDataset(tmp_path / "balance")) == 1
    # ... and labelled no folder with its own task: the folder's real task was then refused (probe 29)
    assert not (tmp_path / "balance" / "recording.json").exists() and not (tmp_path / "rec" / "recording.json").exists()


def test_deploy_refuses_an_unknown_shift(files, capsys):
    from robot_wm.cli import main

    assert main(["deploy", str(files["internal"]), "--episodes", "1", "--shift", "gravity-2"]) == 2
    assert "gravity-2" in capsys.readouterr().err


def test_deploy_says_when_the_robots_delay_is_not_the_planners(files, capsys):
    """Probe 16: a planner compensating no delay deployed on a robot whose commands act a step late, no word."""
    from robot_wm.cli import main

    assert main(["deploy", str(files["input"]), "--episodes", "1", "--shift", "delay-1", "--sim",
                 "max_env_steps=80"]) == 0
    assert ("the planner compensates a delay of 0 control step(s) (planner.delay), the simulated robot's commands act "
            "1 step(s) late") in capsys.readouterr().err


def test_session_reports_provider_options_and_is_deterministic_with_noise_input(files):
    a, b = (PlannerSession(files["input"], provider="cpu", threads=1, seed=3) for _ in range(2))
    assert a.provider == "CPUExecutionProvider" and a.device == "cpu" and not a.cuda_graph
    opts = a.session.get_session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    a.warmup()
    state = np.array([0.1, 0.9, -0.2, 0.3, 0.0], np.float32)
    ra, rb = a.step(state, a.initial_plan()), b.step(state, b.initial_plan())
    np.testing.assert_array_equal(ra.action, rb.action)  # warm-up did not shift the seeded noise stream
    assert ra.valid and np.all(np.abs(ra.action) <= 1) and ra.next_plan.shape == (8, 1)
    assert np.isfinite(ra.best_return) and ra.spread >= 0


def test_auto_reports_the_active_provider(files):
    s = PlannerSession(files["internal"], provider="auto")
    assert s.provider in s.session.get_providers()
    assert s.provider == "CPUExecutionProvider"  # this machine has no GPU: auto may fall back, and says so


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_asking_for_a_gpu_provider_on_a_cpu_machine_is_a_clear_error(files, provider):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        try:  # a GPU build: creating the session must then either use the GPU or raise our error
            s = PlannerSession(files["input"], provider=provider)
        except ProviderError as e:
            assert "fell back to CPUExecutionProvider" in str(e) or "not in this onnxruntime build" in str(e)
        else:
            pytest.skip(f"a working GPU: active provider {s.provider}")
    else:
        with pytest.raises(ProviderError, match="not in this onnxruntime build"):
            PlannerSession(files["input"], provider=provider)


def test_provider_chain_order_and_cuda_graph_options():
    with pytest.raises(ProviderError, match="unknown provider"):
        provider_chain("vulkan", True, None)
    chain = provider_chain("auto", True, "/tmp/x")
    names = [c[0] if isinstance(c, tuple) else c for c in chain]
    assert names[-1] == "CPUExecutionProvider"
    order = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert names == [n for n in order if n in names]
    opts = dict(c for c in chain if isinstance(c, tuple))
    if "CUDAExecutionProvider" in opts:
        assert opts["CUDAExecutionProvider"]["enable_cuda_graph"] == "1"
    if "TensorrtExecutionProvider" in opts:
        assert opts["TensorrtExecutionProvider"]["trt_cuda_graph_enable"] == "True"


def test_bad_files_are_refused_before_the_loop(files, tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        PlannerSession(tmp_path / "missing.onnx")
    blob = files["internal"].read_bytes()
    (tmp_path / "trunc.onnx").write_bytes(blob[: len(blob) // 3])
    with pytest.raises(ModelFileError, match="truncated"):
        PlannerSession(tmp_path / "trunc.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        PlannerSession(tmp_path / "empty.onnx")
    with pytest.raises(ModelFileError, match="not a robot-wm planner"):  # a valid ONNX file, not ours
        PlannerSession(files["dynamics"])
    m = onnx.load(str(files["internal"]))
    del m.metadata_props[:]
    onnx.save(m, str(tmp_path / "nometa.onnx"))
    with pytest.raises(ModelFileError, match="not a robot-wm planner"):
        PlannerSession(tmp_path / "nometa.onnx")
    onnx.save_model(onnx.load(str(files["internal"])), str(tmp_path / "ext.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="ext.data", size_threshold=0)
    with pytest.raises(ModelFileError, match="external data"):
        PlannerSession(tmp_path / "ext.onnx")


def test_metadata_must_match_the_robot(files):
    meta = PlannerSession(files["internal"]).meta
    meta.check_robot(5, [-1.0], [1.0], meta.control_period)
    with pytest.raises(ModelFileError, match="state size 6"):
        meta.check_robot(6, [-1.0], [1.0])
    with pytest.raises(ModelFileError, match="action size 2"):
        meta.check_robot(5, [-1.0, -1.0], [1.0, 1.0])
    with pytest.raises(ModelFileError, match="control period"):
        meta.check_robot(5, [-1.0], [1.0], meta.control_period * 2)
    for bad in ("5", 5.0, True):  # "5" was "state size 5 != planner's 5" (probe 31)
        with pytest.raises(TypeError, match=r"state_dim=.*expected a whole number"):
            meta.check_robot(bad, [-1.0], [1.0])
    meta.check_robot(np.int64(5), [-1.0], [1.0])


def test_deploy_refuses_a_planner_for_another_robot(files):
    r = subprocess.run([sys.executable, "-m", "robot_wm.cli", "deploy", str(files["internal"]),
                        "--task", "reacher-easy", "--episodes", "1"], check=False, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "does not match the robot" in r.stderr and "episode" not in r.stdout


class ScriptedRobot:
    """A robot driver stand-in: records what it is sent; its state can be poisoned. Its control period is the
    test planners' (cartpole at action repeat 8: the loop checks the two agree)."""

    state_dim, control_period = 5, 0.08

    def __init__(self):
        self.action_low, self.action_high = np.array([-1.0], np.float32), np.array([1.0], np.float32)
        self.state = np.array([0.1, 0.9, -0.2, 0.3, 0.0], np.float32)
        self.sent: list[np.ndarray] = []

    def read_state(self):
        return self.state

    def send_action(self, action):
        self.sent.append(np.array(action))

    def time(self):
        return 0.01 * len(self.sent)


class Broken:
    """Wraps a real session and corrupts or fails chosen steps."""

    def __init__(self, inner, nan_at=(), raise_at=(), nan_plan_at=()):
        self.inner, self.nan_at, self.raise_at, self.k = inner, set(nan_at), set(raise_at), 0
        self.nan_plan_at = set(nan_plan_at)

    def initial_plan(self):
        return self.inner.initial_plan()

    def step(self, state, prev):
        k, self.k = self.k, self.k + 1
        if k in self.raise_at:
            raise RuntimeError("device lost")
        out = self.inner.step(state, prev)
        if k in self.nan_plan_at:
            return out._replace(next_plan=np.full_like(out.next_plan, np.nan))
        return out._replace(action=np.full_like(out.action, np.nan)) if k in self.nan_at else out


def test_a_non_finite_plan_is_said_to_be_the_plans(files, caplog):
    """Probe 40: a NaN in the returned plan, its action finite, was logged as "non-finite action"."""
    planner = Broken(PlannerSession(files["input"], provider="cpu"), nan_plan_at={1}, nan_at={2})
    with caplog.at_level(logging.WARNING, logger="robot_wm.runtime.loop"):
        stats = ControlLoop(planner, ScriptedRobot(), deadline_s=10.0, realtime=False).run(3)
    assert stats.nonfinite == 2 and "step 1: non-finite plan (next_plan), the action finite" in caplog.text
    assert "step 2: non-finite action;" in caplog.text, caplog.text


def test_a_safe_action_the_robot_refuses_at_a_stop_is_an_error_line(files, caplog):
    """Probe 42: a safe stop entered within a tick whose safe action the driver refused was only a step's warning; the
    operator must know the safe action never reached the robot (the other path said so at ERROR)."""
    class Latched(ScriptedRobot):
        def send_action(self, action):
            if len(self.sent) == 2:  # the third command: the safe stop's
                raise RuntimeError("e-stop latched")
            super().send_action(action)

    robot = Latched()
    robot.state = np.full(5, np.nan, np.float32)
    loop = ControlLoop(PlannerSession(files["input"], provider="cpu"), robot, realtime=False, max_fallbacks=3)
    with caplog.at_level(logging.WARNING, logger="robot_wm.runtime.loop"):
        loop.run(5)
    assert loop.stopped is not None and "3 consecutive fallbacks" in loop.stopped
    assert any(r.levelno == logging.ERROR and "the robot refused the safe action too (RuntimeError: e-stop latched)"
               in r.getMessage() for r in caplog.records), caplog.text


def test_loop_falls_back_to_the_shifted_plan_and_counts(files):
    robot = ScriptedRobot()
    planner = Broken(PlannerSession(files["input"], provider="cpu"), nan_at={2}, raise_at={4})
    loop = ControlLoop(planner, robot, deadline_s=10.0, realtime=False)
    stats = loop.run(2)
    prev = loop.plan.copy()
    stats.merge(loop.run(1))  # step 2 returns NaN: the previous plan's next action is applied instead
    np.testing.assert_allclose(robot.sent[2], np.clip(prev[0], -1, 1))
    np.testing.assert_allclose(loop.plan, np.concatenate([prev[1:], prev[-1:]]))
    stats2 = loop.run(3)  # steps 3, 4 (raises), 5
    assert stats.nonfinite == 1 and stats.fallbacks == 1 and stats2.errors == 1 and stats2.fallbacks == 1
    assert all(np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1) for a in robot.sent)
    # Non-finite state: the graph flags it and the loop applies the shifted previous plan.
    robot.state = np.full(5, np.nan, np.float32)
    prev = loop.plan.copy()
    stats3 = loop.run(1)
    assert stats3.invalid == 1 and stats3.fallbacks == 1
    np.testing.assert_allclose(robot.sent[-1], np.clip(prev[0], -1, 1))
    np.testing.assert_allclose(loop.plan, np.concatenate([prev[1:], prev[-1:]]))


def test_a_delayed_planners_fallback_sends_the_command_due_and_keeps_what_was_sent_in_flight(files):
    """With planner.delay=1 the warm start's first action is already on its way: a fallback sends the next one,
    and whatever was sent (the safe action too) is what the next step plans around."""
    from dataclasses import replace

    inner = PlannerSession(files["input"], provider="cpu")
    warm = np.linspace(0, 0.7, 8, dtype=np.float32)[:, None]
    for safe, expect in ((None, 0.1), (np.array([-0.25], np.float32), -0.25)):
        planner = Broken(inner, raise_at={0})
        planner.meta, planner.initial_plan = replace(inner.meta, delay=1), warm.copy
        robot = ScriptedRobot()
        loop = ControlLoop(planner, robot, deadline_s=10.0, realtime=False, safe_action=safe)
        assert loop.run(1).fallbacks == 1
        assert robot.sent[0][0] == pytest.approx(expect)
        np.testing.assert_allclose(loop.plan[:, 0], [expect, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.7], atol=1e-6)
        loop.run(1)  # a planned step: its action is the plan's second, and it is kept as the one in flight
        assert loop.plan[0, 0] == robot.sent[1][0]


def test_one_session_stepped_from_two_threads_plans_each_for_its_own_state(files):
    """Two threads on one PlannerSession: a NaN state came back valid (planned from the other thread's state) and
    a good one invalid, hundreds of times in 400 (probe 15). Calls now take turns on the session's buffers."""
    import threading

    s = PlannerSession(files["internal"], threads=1)
    plan, wrong = s.initial_plan(), {"nan_valid": 0, "good_invalid": 0}

    def worker(state, key, bad):
        for _ in range(150):
            wrong[key] += s.step(state, plan).valid == bad

    threads = [threading.Thread(target=worker, args=(np.full(5, np.nan, np.float32), "nan_valid", True)),
               threading.Thread(target=worker, args=(np.zeros(5, np.float32), "good_invalid", False))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == {"nan_valid": 0, "good_invalid": 0}


@pytest.mark.parametrize("delay", [8, -1, 1.5, True])
def test_a_planner_whose_delay_does_not_fit_its_plan_is_refused(files, delay):
    """Probe 16: a planner object whose meta says delay=9 for a plan of 4 escaped the loop's fallback with an
    IndexError; delay=-1 was used silently."""
    from dataclasses import replace

    inner = PlannerSession(files["input"], provider="cpu")
    planner = Broken(inner)
    planner.meta = replace(inner.meta, delay=delay)
    with pytest.raises(ValueError, match=r"planner.meta.delay=.*expected a whole number from 0 to the plan's horizon "
                                         r"- 1 = 7"):
        ControlLoop(planner, ScriptedRobot(), deadline_s=10.0, realtime=False)


def test_a_numpy_control_period_is_a_number(files):
    robot = ScriptedRobot()
    robot.control_period = np.float32(0.08)  # "expected a positive number of seconds" (probe 15)
    loop = ControlLoop(PlannerSession(files["input"], provider="cpu"), robot, deadline_s=10.0, realtime=False)
    assert loop.rate_hz == pytest.approx(12.5) and loop.run(2).steps == 2


def test_loop_overrun_applies_safe_action_and_reports_statistics(files):
    robot = ScriptedRobot()
    loop = ControlLoop(PlannerSession(files["input"], provider="cpu"), robot, deadline_s=1e-9,
                       safe_action=np.array([0.75]), realtime=True, rate_hz=200.0)
    stats = loop.run(5)
    assert stats.overruns == 5 and stats.fallbacks == 5
    assert all(a.tolist() == [0.75] for a in robot.sent)  # the safe action
    s = stats.summary()
    assert s["steps"] == 5 and s["latency_p50_ms"] > 0 and s["latency_p99_ms"] >= s["latency_p50_ms"]
    assert 0 < s["rate_hz"] <= 200.0 * 1.05
    with pytest.raises(ValueError, match="safe action"):
        ControlLoop(PlannerSession(files["input"]), robot, safe_action=np.array([np.nan]))
    with pytest.raises(ValueError, match=r"safe action \[5.0\]: dimension 0 = 5 is outside the action bounds \[-1, 1\]"):
        ControlLoop(PlannerSession(files["input"]), robot, safe_action=np.array([5.0]))  # refused, not clipped


def test_a_stalled_realtime_loop_counts_the_stall(files, caplog):
    """Probe 16: SIGSTOP for 3 s showed only as a lower rate; no tick was counted late."""
    import time as _time

    class Stalling(ScriptedRobot):
        def send_action(self, action):
            super().send_action(action)
            if len(self.sent) == 2:
                _time.sleep(0.3)  # about four control periods of 0.08 s

    loop = ControlLoop(PlannerSession(files["input"], provider="cpu"), Stalling(), deadline_s=10.0, realtime=True)
    with caplog.at_level("WARNING"):
        stats = loop.run(5)
    assert stats.stalls == 1 and stats.summary()["stalls"] == 1 and "stalls 1" in stats.format()
    # a blocking robot call is one cause the hint names (it blamed the process alone: probe 29)
    assert "behind its schedule (the process stalled, or the robot's read_state or send_action blocked?)" in caplog.text


def test_sim_robot_implements_the_robot_interface():
    from robot_wm.config import EnvConfig
    from robot_wm.runtime.robot import Robot, SimRobot
    from sim.registry import make_env

    robot = SimRobot(make_env(EnvConfig(task="cartpole-swingup", max_env_steps=80)))
    assert isinstance(robot, Robot)
    robot.reset(0)
    t0, s0 = robot.time(), robot.read_state()
    robot.send_action(np.array([0.5], np.float32))
    assert robot.time() == pytest.approx(t0 + robot.control_period) and robot.read_state().shape == s0.shape
    assert robot.steps == 1 and not robot.done


def test_io_bound_step_equals_a_plain_run_with_the_seeded_noise(files):
    import onnxruntime as ort

    sess = PlannerSession(files["input"], provider="cpu", seed=7)
    plain = ort.InferenceSession(str(files["input"]), providers=["CPUExecutionProvider"])
    state = np.array([0.3, -0.8, 0.1, 1.5, -2.0], np.float32)
    plan = np.linspace(-0.3, 0.3, sess.meta.horizon, dtype=np.float32)[:, None]
    noise = np.random.default_rng(7).standard_normal(sess.meta.noise_shape, dtype=np.float32)
    ref = plain.run(None, {"state": state, "prev_plan": plan, "noise": noise})
    out = sess.step(state, plan)
    np.testing.assert_array_equal(out.action, ref[0])
    np.testing.assert_array_equal(out.next_plan, ref[1])
    assert out.best_return == float(ref[2]) and out.valid == bool(ref[4])


def test_a_value_guarded_planner_carries_its_guard_from_step_to_step_and_resets_it(files, tmp_path):
    """The session feeds each step the guard the last one returned (as a plain run given them explicitly), trips
    and recovers with it, and ``reset`` (the control loop's, at each episode) trusts the value again."""
    import onnxruntime as ort

    from policies.mpc.step import StepSpec
    from robot_wm.export.format import GUARD_INITIAL
    from robot_wm.export.onnx_export import export_planner
    from robot_wm.export.source import load_source

    src = load_source(files["input"].parent / "run", ["planner.value_guard=1e-6", "planner.value_guard_window=1"])
    out = tmp_path / "guarded.onnx"
    export_planner(src.model, StepSpec.from_config(src.cfg.planner), out, noise="input", value=src.value)
    sess = PlannerSession(out, provider="cpu", seed=7)
    assert sess.meta.value_guard and sess.value_trusted
    plain = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng, states = np.random.default_rng(7), np.random.default_rng(3)
    guard, plan, trusted = np.array(GUARD_INITIAL, np.float32), sess.initial_plan().copy(), []
    for _ in range(12):
        state = (src.model.obs_norm.mean.numpy() + states.standard_normal(5) * src.model.obs_norm.std.numpy()
                 ).astype(np.float32)
        noise = rng.standard_normal(sess.meta.noise_shape, dtype=np.float32)
        ref = plain.run(None, {"state": state, "prev_plan": plan, "noise": noise, "guard": guard})
        trusted.append(sess.value_trusted)
        got = sess.step(state, plan)
        np.testing.assert_array_equal(got.action, ref[0])
        plan, guard = ref[1], ref[5]
    assert False in trusted and trusted.count(True) > 1, trusted  # a shortfall trips it for one step, then trusted
    for _ in range(50):  # step until it trips, then a new episode trusts the value again
        if not sess.value_trusted:
            break
        plan = sess.step(states.standard_normal(5).astype(np.float32) * src.model.obs_norm.std.numpy(), plan).next_plan
    assert not sess.value_trusted
    sess.reset()
    assert sess.value_trusted
    # the control loop resets it per episode and counts the steps planned without the value
    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.runtime.record import DeploymentRecorder

    robot = ScriptedRobot()
    loop = ControlLoop(sess, robot, deadline_s=10.0, realtime=False)
    rec = DeploymentRecorder(tmp_path / "rec", task="cartpole-swingup", planner=out.name, action_repeat=8,
                             planner_delay=0)
    rec.begin(robot, seed=0)
    stats, seen = LoopStats(1.0, 1.0), []
    for _ in range(30):
        robot.state = (src.model.obs_norm.mean.numpy() + states.standard_normal(5) * src.model.obs_norm.std.numpy()
                       ).astype(np.float32)
        seen.append(sess.value_trusted)
        stats.merge(loop.run(1, on_tick=rec.hook(loop, robot)))
    assert stats.value_off == seen.count(False) > 0 and "planned without the value" in stats.format()
    rec.end()  # a recorded deployment says which steps planned without the value (probe 25: it did not)
    assert EpisodeDataset(tmp_path / "rec")[0].meta["value_off_steps"] == [t for t, ok in enumerate(seen) if not ok]
    loop.reset()
    assert sess.value_trusted
    # a warm-up leaves neither the noise stream nor the guard changed (review: the guard kept its zero-state plans)
    fresh, warmed = PlannerSession(out, provider="cpu", seed=7), PlannerSession(out, provider="cpu", seed=7)
    warmed.warmup()
    plan = fresh.initial_plan().copy()
    for _ in range(6):
        state = (src.model.obs_norm.mean.numpy() + states.standard_normal(5) * src.model.obs_norm.std.numpy()
                 ).astype(np.float32)
        a, b = fresh.step(state, plan), warmed.step(state, plan)
        np.testing.assert_array_equal(a.action, b.action)
        assert fresh.value_trusted == warmed.value_trusted
        plan = a.next_plan
    # a plan the loop does not execute (late, or refused by the robot) is forgotten by the guard, as a fallback is
    # (session 23 review: a rejected step advanced it)
    from robot_wm.export.format import GUARD_INPUT

    class Refusing(ScriptedRobot):
        def send_action(self, action):
            raise OSError("bus off")

    for robot, deadline in ((ScriptedRobot(), 1e-12), (Refusing(), 10.0)):
        sess.reset()
        loop = ControlLoop(sess, robot, deadline_s=deadline, realtime=False, max_fallbacks=1000)
        loop.run(8)
        np.testing.assert_array_equal(sess._host[GUARD_INPUT], np.array(GUARD_INITIAL, np.float32))
    sess.discard_last_step()  # nothing left to discard: no change, no error
    assert sess.value_trusted


class _GlitchyRobot:
    """A robot driver whose state estimate goes NaN at one step, and that supplies no reward."""

    state_dim, control_period = 2, 0.05
    action_low, action_high = np.array([-1.0], np.float32), np.array([1.0], np.float32)

    def __init__(self, bad_at: int):
        self.t, self.bad_at = 0, bad_at

    def read_state(self):
        return np.array([np.nan if self.t == self.bad_at else self.t, 1.0], np.float32)

    def send_action(self, action):
        self.t += 1

    def time(self):
        return self.t * self.control_period


def test_deploy_refuses_to_record_into_a_run_directory(files, capsys):
    from robot_wm.cli import main

    run = files["internal"].parent / "run"
    before = sorted(p.name for p in (run / "episodes").iterdir())
    for target in (run / "episodes", run):
        rc = main(["deploy", str(files["internal"]), "--episodes", "1", "--record", str(target)])
        err = capsys.readouterr().err
        assert rc == 2 and f"is inside the run directory {str(run)!r}" in err and "robot-wm finetune" in err, err
    assert sorted(p.name for p in (run / "episodes").iterdir()) == before  # nothing written into the run


def _record(tmp_path, robot, actions):
    """One episode through a real ``DeploymentRecorder``: (the path ``end`` returned, the episode read back)."""
    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.runtime.record import DeploymentRecorder

    rec = DeploymentRecorder(tmp_path / "rec", task="my-robot", planner="p.onnx", action_repeat=1, planner_delay=0)
    rec.begin(robot, seed=0)
    for a in actions:
        robot.send_action(np.zeros(1))
        rec.step(robot, np.array([a]), 0.002, None)
    path = rec.end()
    return path, EpisodeDataset(tmp_path / "rec")[0]


def _varint(v: int) -> bytes:
    out = b""
    while v >= 0x80:
        out, v = out + bytes([v & 0x7F | 0x80]), v >> 7
    return out + bytes([v])


@pytest.mark.parametrize("where", ["top", "graph"])
def test_a_planner_padded_with_fields_onnx_does_not_define_is_refused(files, tmp_path, where):
    """Probe 29: a 0.8 MB planner padded with a 1.9 GB unknown protobuf field (field 99) passed every check, the hashes
    intact, and took 6 GB to deploy. At the top level it is found without parsing; inside the graph (the second graph
    field merges into the first), before onnxruntime parses it all again."""
    pad = _varint(99 << 3 | 2) + _varint(3_000_000) + bytes(3_000_000)
    if where == "graph":
        pad = _varint(7 << 3 | 2) + _varint(len(pad)) + pad
    padded = tmp_path / "padded.onnx"
    padded.write_bytes(files["internal"].read_bytes() + pad)
    needle = "holds a field (number 99, 3,000,00" if where == "top" else "bytes that are no part of an ONNX model"
    with pytest.raises(ModelFileError, match=re.escape(needle)):
        PlannerSession(padded, provider="cpu")


def test_a_planner_that_needs_more_memory_than_the_computer_has_is_refused_before_allocating(files, tmp_path):
    """Probe 30: `export planner.samples=2000000` wrote an 806 KB file, and deploy grew to 22 GB until the kernel's OOM
    killer. Every planner says what a step needs (planner_memory_bytes, under the metadata hash); the runtime checks."""
    import onnx
    from test_faults import edit_metadata

    from robot_wm.memory import planner_step_bytes

    props = {p.key: p.value for p in onnx.load(str(files["internal"])).metadata_props}
    s = PlannerSession(files["internal"], provider="cpu")
    assert int(props["planner_memory_bytes"]) == planner_step_bytes(
        s.meta.samples + int(props["policy_samples"]), s.meta.horizon, s.meta.iterations, s.meta.state_dim,
        s.meta.action_dim, int(props["members"]), 32) > 0  # the test run's model.hidden
    big = edit_metadata(files["internal"], tmp_path / "big.onnx", {"planner_memory_bytes": str(10**15)})
    with pytest.raises(ModelFileError, match=r"needs about 1000000\.0 GB a planning step .* export it with fewer "
                                             r"planner.samples"):
        PlannerSession(big, provider="cpu")
    # probe 35: a superscript two passed str.isdigit and failed int(), naming neither file nor key; a deleted key
    # (hashes recomputed) skipped the checks as an old file's
    for value in ("1e9", "\u00b2", None):
        odd = edit_metadata(files["internal"], tmp_path / "odd.onnx", {"planner_memory_bytes": value})
        with pytest.raises(ModelFileError, match=r"odd.onnx': its metadata \{'planner_memory_bytes': .* does not say "
                                                 r"what a planning step needs in whole numbers"):
            PlannerSession(odd, provider="cpu")


def test_a_planner_file_after_sim_is_named_not_missing(files, capsys):
    """Probe 29: `deploy --sim randomize.mass=[0.9,1.1] p.onnx` said "the following arguments are required: planner"."""
    from robot_wm.cli import main

    with pytest.raises(SystemExit):
        main(["deploy", "--sim", "randomize.mass=[0.9,1.1]", str(files["internal"])])
    err = capsys.readouterr().err
    assert f"argument --sim: {str(files['internal'])!r} is not KEY=VALUE" in err and "before --sim" in err, err


def test_two_recorders_of_different_tasks_cannot_share_a_new_folder(tmp_path):
    """Probe 28: two `deploy --record` of different tasks into one new folder both found it empty (neither had stored
    an episode yet) and filled it with both. The first recorder claims the folder: the second is refused before its
    robot moves; one of the same task (two robots, one folder) still records beside it."""
    script = textwrap.dedent("""
        import sys
        from robot_wm.runtime.record import DeploymentRecorder
        try:
            DeploymentRecorder(sys.argv[1], task=sys.argv[2], planner="p.onnx", action_repeat=8, planner_delay=0)
        except ValueError as e:
            sys.exit(f"refused: {e}")
        print("claimed", flush=True)
        sys.stdin.readline()
    """)
    folder = tmp_path / "rec"
    first = subprocess.Popen([sys.executable, "-c", script, str(folder), "cartpole-swingup"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "claimed"
        other = subprocess.run([sys.executable, "-c", script, str(folder), "cartpole-balance"], input="\n",
                               capture_output=True, text=True, timeout=120, check=False)
        assert other.returncode == 1 and "is claimed (its recording.json) for task 'cartpole-swingup' at action " \
            "repeat 8; this deployment is 'cartpole-balance'" in other.stderr, other.stderr
        same = subprocess.run([sys.executable, "-c", script, str(folder), "cartpole_swingup"], input="\n",
                              capture_output=True, text=True, timeout=120, check=False)
        assert same.returncode == 0 and same.stdout.strip() == "claimed", same.stderr
    finally:
        first.communicate("\n", timeout=60)
    assert first.returncode == 0
    (folder / "recording.json").write_text("[1, 2")  # damaged: named, not a traceback
    bad = subprocess.run([sys.executable, "-c", script, str(folder), "cartpole-swingup"], input="\n",
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 1 and "recording.json' is damaged or was edited" in bad.stderr, bad.stderr
    (folder / "recording.json").write_text(" " * 100 * 1024)  # its limit was said as "at most 0 MiB" (probe 29)
    big = subprocess.run([sys.executable, "-c", script, str(folder), "cartpole-swingup"], input="\n",
                         capture_output=True, text=True, timeout=120, check=False)
    assert big.returncode == 1 and "is 100.0 KiB; at most 4 KiB is read" in big.stderr, big.stderr


def test_an_edited_claim_of_a_recording_folder_is_named_as_edited(tmp_path):
    """Probe 34: recording.json edited to action repeat 4 in a folder whose episodes are at 8: the refusal said the
    folder "holds episodes ... at action repeat 4", the edited claim's words taken for its episodes'."""
    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.data.episode import Episode
    from robot_wm.runtime.record import DeploymentRecorder

    folder = tmp_path / "rec"
    DeploymentRecorder(folder, task="cartpole-swingup", planner="p.onnx", action_repeat=8, planner_delay=0)
    EpisodeDataset(folder).append(Episode(np.zeros((4, 5)), np.zeros((3, 1)), np.zeros(3), np.zeros((4, 0)),
                                          {"task": "cartpole-swingup", "action_repeat": 8}))
    (folder / "recording.json").write_text(json.dumps({"task": "cartpole-swingup", "action_repeat": 4}))
    with pytest.raises(ValueError, match=r"recording.json' claims the folder for task 'cartpole-swingup' at action "
                                         r"repeat 4, but its episodes are of 'cartpole-swingup' at 8: the file was edited"):
        DeploymentRecorder(folder, task="cartpole-swingup", planner="p.onnx", action_repeat=8, planner_delay=0)


def test_recorder_copies_a_physics_state_the_driver_refills_in_place(tmp_path):
    """A driver that keeps its physics state in one buffer: every stored row was the last state (probe 15)."""
    from conftest import record_one_buffer_robot

    robot, ps = record_one_buffer_robot(tmp_path / "rec", 5)
    assert len(ps) == 6 and len(np.unique(ps, axis=0)) == 6  # every step's own state
    np.testing.assert_array_equal(ps[-1], robot.buf)


def test_recorder_keeps_the_steps_before_a_bad_state_and_marks_unknown_rewards(tmp_path):
    path, ep = _record(tmp_path, _GlitchyRobot(bad_at=6), [0.0] * 10)
    assert path.exists() and len(ep) == 5 and ep.meta["cut_at_bad_state"] == 6
    np.testing.assert_array_equal(ep.obs[:, 0], np.arange(6))
    assert ep.physics_state.shape == (6, 0)  # a real robot: no MuJoCo state
    assert ep.meta["reward_known"] is False and ep.meta["return"] is None and len(ep.meta["latency_ms"]) == 5
    from robot_wm.data.dataset import EpisodeDataset

    path, _ = _record(tmp_path, _GlitchyRobot(bad_at=0), [0.0])  # nothing valid at all: nothing written, no crash
    assert path is None and len(EpisodeDataset(tmp_path / "rec")) == 1


def test_recorder_end_keeps_what_it_computed(tmp_path, caplog):
    """`end(reward_known=True, control_steps=999, task=..., source=...)` replaced what the recorder computes or was
    built with, though the constructor refuses the same keys (eighth probe): the caller's values are dropped."""
    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.runtime.record import DeploymentRecorder

    robot = ScriptedRobot()  # no last_reward: rewards unknown
    rec = DeploymentRecorder(tmp_path / "rec", task="my-robot", planner="p.onnx", action_repeat=1, planner_delay=0)
    rec.begin(robot, seed=0)
    for _ in range(5):
        rec.step(robot, np.zeros(1), 0.002, None)
    with caplog.at_level(logging.WARNING, logger="robot_wm.runtime.record"):
        rec.end(reward_known=True, control_steps=999, task="other", source="sim", weather="dry", interrupted=True)
    meta = EpisodeDataset(tmp_path / "rec")[0].meta
    assert (meta["reward_known"], meta["control_steps"], meta["task"], meta["source"]) == (False, 5, "my-robot", "robot")
    assert meta["weather"] == "dry" and meta["interrupted"] is True  # added keys stay; a cut episode says so
    assert "['control_steps', 'reward_known', 'source', 'task']" in caplog.text


class _FailingPlanner:
    """A planner session that raises on the steps listed in ``fail`` (e.g. a state it no longer fits)."""

    def __init__(self, fail, horizon=4, act_dim=1):
        self.fail, self.calls, self.h, self.a = set(fail), 0, horizon, act_dim

    def initial_plan(self):
        return np.zeros((self.h, self.a), np.float32)

    def step(self, state, prev):
        from robot_wm.runtime.session import PlanResult

        self.calls += 1
        if self.calls - 1 in self.fail:
            raise RuntimeError("state of the wrong size")
        return PlanResult(np.full(self.a, 0.5, np.float32), np.full((self.h, self.a), 0.5, np.float32), 1.0, 0.0, True)


def test_consecutive_fallbacks_end_in_a_safe_stop_with_the_safe_action():
    from robot_wm.config import EnvConfig
    from robot_wm.runtime import ControlLoop, SimRobot
    from sim.registry import make_env

    robot = SimRobot(make_env(EnvConfig(task="cartpole-swingup", max_env_steps=400)))
    robot.reset(0)
    sent = []
    # Two isolated failures are absorbed; from step 10 on the planner fails every time.
    loop = ControlLoop(_FailingPlanner({2, 5, *range(10, 100)}), robot, realtime=False, deadline_s=10.0,
                       safe_action=np.array([-0.25]), max_fallbacks=4)
    stats = loop.run(50, on_tick=lambda a: sent.append(float(a[0])))
    assert loop.stopped is not None and "4 consecutive fallbacks" in loop.stopped and "wrong size" in loop.stopped
    assert stats.safe_stops == 1 and stats.steps == 14 and stats.errors == 6
    assert sent[-1] == -0.25 and sent[2] == -0.25 and sent[3] == 0.5 and sent[9] == 0.5  # absorbed, recovered
    assert "SAFE STOPS 1" in stats.format()
    with pytest.raises(ValueError, match="max_fallbacks=0"):
        ControlLoop(_FailingPlanner(()), robot, max_fallbacks=0)
    with pytest.raises(ValueError, match="rate_hz=-5"):
        ControlLoop(_FailingPlanner(()), robot, rate_hz=-5)


def test_a_robot_that_raises_when_commanded_or_asked_if_done_is_a_fallback_then_a_safe_stop():
    """An exception from send_action (a bus error) or done() ended ControlLoop.run: no safe action, not counted
    (probe 11). Once: counted and absorbed; every step: a safe stop. The latency window is bounded."""
    from robot_wm.config import EnvConfig
    from robot_wm.runtime import ControlLoop, SimRobot
    from robot_wm.runtime.loop import LATENCY_WINDOW, LoopStats
    from sim.registry import make_env

    class FlakyBus(SimRobot):
        def __init__(self, env, fail):
            super().__init__(env)
            self.fail, self.calls, self.received = fail, 0, []

        def send_action(self, action):
            self.calls += 1
            if self.calls in self.fail:
                raise OSError("CAN bus timeout")
            self.received.append(float(action[0]))
            super().send_action(action)

    env = make_env(EnvConfig(task="cartpole-swingup", max_env_steps=400))
    robot = FlakyBus(env, fail={5})
    robot.reset(0)
    loop = ControlLoop(_FailingPlanner(()), robot, realtime=False, deadline_s=10.0, max_fallbacks=3)
    stats = loop.run(20)
    assert loop.stopped is None and stats.steps == 20 and stats.errors == 1 and stats.fallbacks == 1
    robot = FlakyBus(env, fail=set(range(3, 100)) - {6})  # broken from the 3rd command; the safe one goes through
    robot.reset(0)
    loop = ControlLoop(_FailingPlanner(()), robot, realtime=False, deadline_s=10.0, max_fallbacks=3,
                       safe_action=np.array([-0.25]))
    stats = loop.run(20)
    assert loop.stopped is not None and "CAN bus timeout" in loop.stopped and stats.safe_stops == 1
    assert stats.steps == 5 and robot.received == [0.5, 0.5, -0.25]
    robot = SimRobot(env)
    robot.reset(0)
    loop = ControlLoop(_FailingPlanner(()), robot, realtime=False, deadline_s=10.0, max_fallbacks=2)
    stats = loop.run(20, done=lambda: 1 / 0)
    assert "2 consecutive errors of done(), the last: ZeroDivisionError" in loop.stopped
    assert stats.errors == 2 and stats.steps == 1 and stats.safe_stops == 1
    long = LoopStats(100.0, 0.01)
    for _ in range(3):
        long.merge(LoopStats(100.0, 0.01, latencies=deque([0.001] * LATENCY_WINDOW, maxlen=LATENCY_WINDOW)))
    assert len(long.latencies) == LATENCY_WINDOW


@pytest.mark.parametrize("args, needle", [
    (["--rate", "-5"], "argument --rate: expected a number from 0.1 to 10000, got '-5'"),
    (["--rate", "1e-6"], "got '1e-6'"),  # slept 11.6 days per step
    (["--rate", "1e308"], "got '1e308'"),  # a deadline of 0.0 ms, every step a fallback
    (["--threads", "0"], "argument --threads: expected a whole number from 1 to 1024, got '0'"),
    (["--episodes", "0"], "argument --episodes: expected a whole number from 1"),
    (["--action-repeat", "0"], "argument --action-repeat: expected a whole number from 1 to 1000"),
    (["--deadline-ms", "nan"], "argument --deadline-ms: expected a number above 0 and at most 60000, got 'nan'"),
    (["--max-fallbacks", "0"], "argument --max-fallbacks: expected a whole number from 1"),
    (["--seed", "-1"], "argument --seed: expected a whole number from 0 to 4294967295, got '-1'"),
    (["--seed", str(2**64)], f"got '{2**64}'")])
def test_deploy_refuses_impossible_arguments(files, capsys, args, needle):
    from robot_wm.cli import main

    try:
        rc = main(["deploy", str(files["internal"]), *args])
    except SystemExit as e:  # refused by argparse, before anything is loaded
        rc = e.code
    assert rc == 2
    assert needle in capsys.readouterr().err


@pytest.mark.parametrize("low, high, period, needle", [
    ([-np.inf], [np.inf], 0.01, "expected finite low <= high"),  # the middle was NaN, sent after a safe stop
    ([np.nan], [1.0], 0.01, "expected finite low <= high"),
    ([1.0], [-1.0], 0.01, "expected finite low <= high"),
    ([-1.0, -1.0], [1.0, 1.0], 0.01, "action size 2 != planner's 1"),  # one action copied to both actuators
    ([-1.0], [1.0], 0.0, "robot.control_period=0.0: expected a positive number"),
    ([-1.0], [1.0], -1.0, "robot.control_period=-1.0"),
])
def test_control_loop_refuses_a_robot_it_cannot_drive_safely(files, low, high, period, needle):
    robot = ScriptedRobot()
    robot.action_low, robot.action_high = np.array(low, np.float32), np.array(high, np.float32)
    robot.control_period = period
    with pytest.raises(ValueError, match=re.escape(needle)):
        ControlLoop(PlannerSession(files["input"], provider="cpu"), robot)
    assert robot.sent == []


@pytest.mark.parametrize("case", ["bus_error", "past_the_time_limit", "diverged"])
def test_a_recording_holds_no_command_the_robot_refused(files, tmp_path, case):
    """Probe 21 (REC-BUS1): a robot whose send_action raised (a CAN bus timeout on three ticks; a simulated robot
    driven past its time limit) had each refused command recorded as applied, beside an unchanged state and the
    previous reward repeated, and fine-tuning trained on them. The loop now says the command was not sent (its
    fallback names the send error) and the recorder ends the episode before it: every stored transition was
    applied. Probe 21 (REC-DV1): a simulated robot whose physics diverged had that step stored as a transition of
    the last good state to itself, reward 0, and the recording said diverged: false."""
    from robot_wm.config import EnvConfig
    from robot_wm.data.episode import Episode
    from robot_wm.runtime.record import DeploymentRecorder
    from robot_wm.runtime.robot import SimRobot
    from sim.registry import make_env

    class BusRobot(SimRobot):
        calls = 0

        def send_action(self, action):
            self.calls += 1
            if case == "bus_error" and 30 <= self.calls <= 32:
                raise OSError("CAN bus timeout")
            if case == "diverged" and self.calls == 30:  # a real blow-up: MuJoCo flags the velocity
                self.env.data.qvel[:] = 1e300
            return super().send_action(action)

    robot = BusRobot(make_env(EnvConfig(task="cartpole-swingup", max_env_steps=400)))  # 50 control steps
    robot.reset(0)
    loop = ControlLoop(PlannerSession(files["internal"], provider="cpu"), robot, realtime=False, max_fallbacks=4)
    rec = DeploymentRecorder(tmp_path / "rec", task="cartpole-swingup", planner="p", action_repeat=8,
                             planner_delay=0)
    rec.begin(robot, 0)
    fallbacks = []
    hook = rec.hook(loop, robot)
    stats = loop.run(60, done=(lambda: False) if case == "past_the_time_limit" else (lambda: robot.done),
                     on_tick=lambda a: (hook(a), fallbacks.append((loop.last_sent, loop.last_fallback))))
    ep = Episode.load(rec.end(safe_stop=loop.stopped))
    first = 50 if case == "past_the_time_limit" else 29  # the first command the robot did not take
    if case == "diverged":  # the episode's end, not a robot error: no fallback, no safe stop of a dead simulator
        assert stats.errors == 0 and loop.stopped is None and robot.done and len(fallbacks) == first + 1
    else:
        assert stats.errors >= 3 and fallbacks[first][0] is False
        assert fallbacks[first][1].startswith("robot send_action error: ")
    assert len(ep) == first and ep.meta["cut_at_unsent_command"] == first
    assert ep.meta["diverged"] is (case == "diverged")
    assert not any(np.array_equal(ep.obs[t], ep.obs[t + 1]) for t in range(len(ep)))  # every transition moved


@pytest.mark.parametrize("mode, needle", [
    ("two_actions", "planner returned an action of shape (2,)"),  # clipped and sent to a 1-actuator robot
    ("short_plan", "and a plan of shape (1, 1)"),
    ("valid_of_two", "planner returned a malformed output"),  # a traceback out of run()
    ("none", "planner returned no output (None)"),  # likewise
    ("huge_action", "planner returned action[0] = 1e+30, beyond the robot's bounds [-1, 1]"),  # clipped, sent (31)
])
def test_a_planner_output_the_robot_cannot_take_is_a_fallback(files, mode, needle):
    """Probe 21 (CL-W1, CL-W2): a planner other than PlannerSession (any object with ``step``) may return anything;
    the loop judged its output outside its guard (a traceback at step 0) and sent an action of another size."""
    from robot_wm.config import EnvConfig
    from robot_wm.runtime.robot import SimRobot
    from sim.registry import make_env

    class Odd:
        def __init__(self, inner):
            self.inner, self.meta = inner, inner.meta

        def initial_plan(self):
            return self.inner.initial_plan()

        def step(self, state, plan):
            o = self.inner.step(state, plan)
            return {"two_actions": lambda: o._replace(action=np.r_[o.action, o.action]),
                    "short_plan": lambda: o._replace(next_plan=o.next_plan[:1]),
                    "valid_of_two": lambda: o._replace(valid=np.array([True, False])),
                    "none": lambda: None,
                    "huge_action": lambda: o._replace(action=np.full_like(o.action, 1e30))}[mode]()

    class Logged(SimRobot):
        def __init__(self, env):
            super().__init__(env)
            self.sent = []

        def send_action(self, action):
            self.sent.append(np.array(action))
            return super().send_action(action)

    robot = Logged(make_env(EnvConfig(task="cartpole-swingup", max_env_steps=400)))
    robot.reset(0)
    loop = ControlLoop(Odd(PlannerSession(files["internal"], provider="cpu")), robot, realtime=False, max_fallbacks=3)
    stats = loop.run(10)
    assert stats.fallbacks == 3 and stats.safe_stops == 1 and needle in loop.stopped, loop.stopped
    assert {a.shape for a in robot.sent} == {(1,)} and all(np.isfinite(a).all() for a in robot.sent)


def test_a_recording_stops_growing_at_what_an_episode_may_hold(tmp_path, caplog):
    """Probe 21 (REC-L1): an episode past 1 GiB was refused at end() and lost whole (about 3.6 hours of a 100-value
    state at 100 Hz). The recorder stops at its byte budget, warns once, and writes the steps before it."""
    from conftest import one_buffer_robot

    from robot_wm.data.episode import Episode
    from robot_wm.runtime.record import EPISODE_BUDGET, DeploymentRecorder

    for bad in (0, EPISODE_BUDGET + 1, 1.5, True):
        with pytest.raises(ValueError, match="max_episode_bytes="):
            DeploymentRecorder(tmp_path / "x", task="cartpole-swingup", planner="p", action_repeat=8, planner_delay=0,
                               max_episode_bytes=bad)
    robot = one_buffer_robot()
    robot.reset(0)
    rec = DeploymentRecorder(tmp_path / "rec", task="cartpole-swingup", planner="p", action_repeat=8, planner_delay=0,
                             max_episode_bytes=4000)
    rec.begin(robot, 0)
    with caplog.at_level(logging.WARNING):
        for _ in range(45):  # the robot's episode: 50 control steps
            robot.send_action(np.array([0.5]))
            rec.step(robot, np.array([0.5]), 0.002, None)
    ep = Episode.load(rec.end())
    kept = ep.meta["cut_at_size_limit"]
    assert 0 < kept < 45 and len(ep) == kept and caplog.text.count("what an episode may hold") == 1
    assert ep.obs.nbytes + ep.action.nbytes + ep.reward.nbytes + ep.physics_state.nbytes <= 4000


def test_recorder_keeps_the_steps_before_a_non_finite_action(tmp_path):
    path, ep = _record(tmp_path, _GlitchyRobot(bad_at=100), [0.5, 0.5, 0.5, 0.5, np.nan, 0.5])
    assert path is not None  # the whole episode was lost: 'action' holds NaN/Inf
    assert len(ep) == 4 and ep.meta["cut_at_bad_action"] == 4 and np.all(ep.action == 0.5)
    np.testing.assert_array_equal(ep.obs[:, 0], np.arange(5))


def test_a_robot_whose_state_read_raises_gets_fallbacks_then_a_safe_stop(files):
    """The exception escaped ControlLoop.run: no safe action was sent and the statistics were lost."""
    class FlakySensor(ScriptedRobot):
        def read_state(self):
            if len(self.sent) >= 2:
                raise OSError("sensor bus timeout")
            return self.state

    robot = FlakySensor()
    loop = ControlLoop(PlannerSession(files["input"], provider="cpu"), robot, safe_action=np.array([0.25]),
                       realtime=False, max_fallbacks=3)
    stats = loop.run(10)
    assert stats.errors == 3 and stats.fallbacks == 3 and stats.safe_stops == 1 and loop.stopped
    assert len(robot.sent) == 5 and robot.sent[-1].tolist() == [0.25]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_interrupted_loop_sends_the_safe_action_then_stops(files, interrupt):
    """Ctrl-C (or deploy's SIGTERM/SIGHUP, turned into the same interrupt) unwound the loop and left the last
    command on the motors (probe 12): the safe action goes out, counted, and the interrupt still ends the run."""
    class Interrupted(ScriptedRobot):
        def read_state(self):
            if len(self.sent) == 4:
                raise interrupt()
            return self.state

    robot = Interrupted()
    loop = ControlLoop(PlannerSession(files["input"], provider="cpu"), robot, safe_action=np.array([0.25]),
                       realtime=False)
    with pytest.raises(interrupt):
        loop.run(10)
    assert len(robot.sent) == 5 and robot.sent[-1].tolist() == [0.25]
    assert loop.stopped is not None and interrupt.__name__ in loop.stopped


class _OddRobot(_GlitchyRobot):
    """A robot driver whose reward, physics state and state reads misbehave the ways a hand-written driver can."""

    def __init__(self, reward, physics=None, bad_read_at=None):
        super().__init__(bad_at=-1)
        self.reward, self.physics, self.bad_read_at = reward, physics, bad_read_at

    def last_reward(self):
        return self.reward

    def physics_state(self):
        return self.physics()

    def read_state(self):
        if self.t == self.bad_read_at:
            raise OSError("sensor bus timeout")
        return super().read_state()


@pytest.mark.parametrize("reward", ["1.0", np.ones(3), None, float("inf")])
def test_recorder_takes_a_reward_that_is_not_one_number_as_unknown(tmp_path, reward):
    """A string reward was a numpy TypeError and an array one a truth-value error, out of the control loop."""
    path, ep = _record(tmp_path, _OddRobot(reward, physics=lambda: np.zeros(3)), [0.1] * 4)
    assert path is not None and len(ep) == 4
    assert ep.meta["reward_known"] is False and ep.meta["return"] is None and np.all(ep.reward == 0)


def test_one_missing_reward_among_real_ones_is_said_and_stored(tmp_path, caplog):
    """Probe 37: one NaN reward among 20 real ones stored the whole episode as reward_known false, without a word."""
    class OneNaN(_OddRobot):
        def last_reward(self):  # after the third command
            return float("nan") if self.t == 3 else 1.0

    with caplog.at_level(logging.WARNING):
        _, ep = _record(tmp_path, OneNaN(None, physics=lambda: np.zeros(3)), [0.1] * 6)
    assert ep.meta["reward_known"] is False and ep.meta["rewards_unknown_at"] == [2], ep.meta
    assert "reward was not one finite number at 1 of 6 control steps (the first: [2])" in caplog.text, caplog.text


def test_recorder_survives_a_raising_driver_and_a_nan_latency(tmp_path):
    """physics_state raising, read_state raising mid-episode, a latency of NaN and an action given as text: the
    episode keeps what was valid and its metadata is valid JSON (NaN latency was written as a bare NaN)."""
    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.runtime.record import DeploymentRecorder

    robot = _OddRobot(1.0, physics=lambda: 1 / 0, bad_read_at=5)
    rec = DeploymentRecorder(tmp_path / "rec", task="my-robot", planner="p.onnx", action_repeat=1, planner_delay=0)
    rec.begin(robot, seed=0)
    for a, latency in zip(["0.5", 0.5, 0.5, 0.5, 0.5, 0.5], [float("nan"), 0.001, "x", 0.001, 0.001, 0.001]):
        robot.send_action(np.zeros(1))
        rec.step(robot, a, latency, None)
    path = rec.end()
    ep = EpisodeDataset(tmp_path / "rec")[0]
    assert path is not None and len(ep) == 4 and ep.meta["cut_at_bad_state"] == 5 and np.all(ep.action == 0.5)
    assert ep.physics_state.shape == (5, 0) and ep.meta["latency_ms"] == [None, 1.0, None, 1.0]
    assert "NaN" not in json.dumps(ep.meta, allow_nan=False)


@pytest.mark.parametrize("kwargs, needle", [
    ({"action_repeat": -4}, "action_repeat=-4: expected None or a whole number >= 1"),
    ({"action_repeat": 2.5}, "action_repeat=2.5"),
    ({"extra": {"x": object()}}, "extra metadata must be plain JSON values"),
    ({"extra": {"x": float("nan")}}, "extra metadata must be plain JSON values"),
    ({"extra": {"task": "cheetah-run", "control_steps": -5}}, "extra metadata ['control_steps', 'task'] would replace"),
    ({"root": "/dev/null"}, "--record '/dev/null' exists and is not a directory"),
])
def test_recorder_refuses_odd_settings_before_the_episode(tmp_path, kwargs, needle):
    """Each was accepted (negative env steps in the metadata), or lost the episode at ``end`` (extra metadata
    that is not JSON), or was an OS error (root=/dev/null)."""
    from robot_wm.runtime.record import DeploymentRecorder

    args = {"root": tmp_path / "rec", "task": "my-robot", "planner": "p.onnx", "action_repeat": 1, "planner_delay": 0,
            **kwargs}
    with pytest.raises(ValueError, match=re.escape(needle)):
        DeploymentRecorder(**args)


def test_deploy_record_into_a_regular_file_is_a_message(files, tmp_path, capsys):
    from robot_wm.cli import main

    (tmp_path / "recfile").write_text("mine")
    rc = main(["deploy", str(files["internal"]), "--episodes", "1", "--record", str(tmp_path / "recfile")])
    out = capsys.readouterr()
    assert rc == 2 and "exists and is not a directory" in out.err
    assert "provider" not in out.out + out.err  # before the planner loads and says so (probe 38)
    assert (tmp_path / "recfile").read_text() == "mine"


def test_deploy_record_refuses_an_append_only_folder_before_driving(files, tmp_path, capsys):
    """Probe 39: `chattr +a` on the --record folder: "cannot write recording.json" after publishing it, and a temp
    file (a second link of it) left by each try."""
    from robot_wm.cli import main

    rec = tmp_path / "rec"
    rec.mkdir()
    if subprocess.run(["chattr", "+a", str(rec)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +a is not allowed here (needs root and a file system with attributes)")
    try:
        rc = main(["deploy", str(files["internal"]), "--episodes", "1", "--record", str(rec)])
        err = capsys.readouterr().err
        assert rc == 2 and "is append-only (chattr +a)" in err and not list(rec.iterdir()), err
    finally:
        subprocess.run(["chattr", "-a", str(rec)], check=False)


def test_deploy_record_names_a_claim_that_leads_nowhere(files, tmp_path, capsys):
    """Probe 37: recording.json a link that leads nowhere: "already holds files (recording.json) but is not a
    recording folder (no recording.json ...)"."""
    from robot_wm.cli import main

    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "recording.json").symlink_to(tmp_path / "gone.txt")
    rc = main(["deploy", str(files["internal"]), "--episodes", "1", "--record", str(rec)])
    err = capsys.readouterr().err
    assert rc == 2 and "recording.json' is a symbolic link to" in err and "that leads nowhere" in err, err
    assert sorted(p.name for p in rec.iterdir()) == ["recording.json"]


def test_deploy_record_refuses_a_folder_with_an_episode_name_before_driving(files, tmp_path, capsys):
    """Probe 36: a folder named episode_000001.npz was counted as an episode and skipped: the recording went on at
    episode_000002 (and whatif --data then refused the folder). It is named before the robot is driven."""
    from robot_wm.cli import main

    rec = tmp_path / "rec"
    deploy = ["deploy", str(files["internal"]), "--episodes", "1", "--record", str(rec), "--sim", "max_env_steps=20"]
    assert main(deploy) == 0, capsys.readouterr().err
    (rec / "episode_000001.npz").mkdir()
    rc = main(deploy)
    err = capsys.readouterr().err
    assert rc == 2 and f"{str(rec / 'episode_000001.npz')!r} has an episode's name but is not a file" in err, err
    assert sorted(p.name for p in rec.glob("episode_*")) == ["episode_000000.npz", "episode_000001.npz"]


@pytest.mark.parametrize("state, plan, needle", [
    ("abc", None, "state holds <U3 values: expected numbers"),
    (np.array([object()] * 5), None, "state holds object values: expected numbers"),
    (np.ones(5, bool), None, "state holds bool values: expected numbers"),  # taken as 0/1 (ninth probe)
    (None, np.zeros((3, 1)), "prev_plan has shape (3, 1), the planner expects ("),
    (None, np.zeros(1), "prev_plan has shape (1,), the planner expects ("),  # was broadcast (probe 7)
    (None, 0.7, "prev_plan has shape (), the planner expects ("),
    (None, [[0.0], [0.0, 1.0]], "prev_plan must be an array of numbers of one shape"),
])
def test_planner_session_names_the_odd_argument(files, state, plan, needle):
    """numpy's messages named neither the argument nor what was expected (probe of 2026-11-26)."""
    s = PlannerSession(files["input"], provider="cpu")
    state = np.zeros(s.meta.state_dim, np.float32) if state is None else state
    with pytest.raises(ValueError, match=re.escape(needle)):
        s.step(state, s.initial_plan() if plan is None else plan)


def test_control_loop_refuses_a_fractional_step_count(files):
    loop = ControlLoop(PlannerSession(files["input"], provider="cpu"), ScriptedRobot(), realtime=False)
    with pytest.raises(TypeError, match=r"max_steps=1.5: expected a whole number"):
        loop.run(1.5)


@pytest.mark.parametrize("key, value, needle", [
    ("control_period", "-0.08", "metadata control_period='-0.08', expected a number of seconds above 0"),
    ("control_period", "inf", "metadata control_period='inf'"),
    ("action_repeat", "-3", "metadata action_repeat='-3', expected empty or a whole number from 1 to 1000"),
    ("action_repeat", "100000", "metadata action_repeat='100000'"),
    ("optimizer", "$(id)", "metadata optimizer='$(id)', expected one of cem, mppi, icem"),
    ("iterations", "-1", "metadata iterations='-1', expected at least 1"),
    ("delay", "8", "metadata delay='8', expected a whole number from 0 to horizon - 1 = 7"),
    ("delay", "-1", "metadata delay='-1'"),
    ("samples", "3", "noise_shape [3, 64, 8, 1] does not fit iterations, samples, horizon and action_dim [3, 3,"),
    ("iterations", "7", "does not fit iterations, samples, horizon and action_dim [7, 64,"),  # printed (probe 17)
    # the graph's own settings: an edited delay was printed and written into recordings, which realign by it (probe 18)
    ("delay", "2", "metadata delay=2, but the graph was built with delay=0 (metadata planner_spec)"),
    ("policy_samples", "9", "metadata policy_samples=9, but the graph was built with policy_samples="),
    ("planner_spec", None, "metadata planner_spec is missing"),  # the check skipped (probe 19)
    ("planner_spec", "{}", "metadata horizon=8, but the graph was built with horizon=None"),
    ("planner_spec", "[1]", "metadata planner_spec is '[1]', expected an object"),
    ("planner_spec", "{", "metadata planner_spec is not JSON"),
    ("value_guard", "1", "metadata value_guard=1, but the graph was built with planner value_guard=0.0"),
    ("value_guard", "yes", "metadata value_guard='yes', expected 0 or 1"),
    ("state_reach", "{}", "metadata state_reach is malformed (KeyError('centre'))"),
    ("state_reach", '{"centre": [0], "scale": [1], "max_z": 1}', "metadata state_reach does not hold 5 finite centres"),
    ("state_reach", '{"centre": [0,0,0,0,0], "scale": [1,1,0,1,1], "max_z": 1}', "5 positive scales"),
    ("state_reach", '{"centre": [0,0,0,0,0], "scale": [1e38,1,1,1,1], "max_z": 10}', "range is finite in float32"),
    # numpy's overflow warning, then "do not fit action_dim" (probe 36); -inf was the safe action's command
    ("action_low", "[-1e39]", "metadata action_low=[-1e39], action_high=[1.0]: expected action_dim=1 finite float32"),
    ("action_low", "[-Infinity]", "metadata action_low=[-Infinity], action_high=[1.0]: expected action_dim=1 finite"),
    ("action_high", "[NaN]", "metadata action_low=[-1.0], action_high=[NaN]: expected action_dim=1 finite"),
])
def test_edited_planner_metadata_is_refused_naming_the_key(files, tmp_path, key, value, needle):
    """The probe of 2026-11-26 edited an exported file's metadata: a NaN control period drove a 0.08 s planner
    at 0.02 s for a whole episode, exit 0; a negative action repeat reached the simulator's config."""
    from test_faults import edit_metadata

    edited = edit_metadata(files["internal"], tmp_path / "edited.onnx", {key: value})  # the hash recomputed too
    with pytest.raises(ModelFileError, match=re.escape(needle)), warnings.catch_warnings():
        warnings.simplefilter("error")  # refused in words, not by numpy's RuntimeWarning first
        PlannerSession(edited)
    plain = edit_metadata(files["internal"], tmp_path / "plain.onnx", {key: value}, rehash=False)
    with pytest.raises(ModelFileError, match="its metadata was edited after export"):
        PlannerSession(plain)


def test_deploy_says_when_a_planner_does_not_know_its_control_period(files, tmp_path, capsys):
    """control_period=nan (a file exported without a run) skips the period check: deploy says so (an edited file
    drove a 0.08 s planner at 0.02 s silently, probe of 2026-11-26)."""
    from robot_wm.cli import main

    from test_faults import edit_metadata

    edit_metadata(files["internal"], tmp_path / "unknown.onnx", {"control_period": "nan"})
    assert main(["deploy", str(tmp_path / "unknown.onnx"), "--episodes", "1"]) == 0
    assert "does not say its control period" in capsys.readouterr().err


def test_deploy_of_a_planner_for_an_mjcf_robot_says_how_to_simulate_it(files, tmp_path, capsys):
    from robot_wm.cli import main

    from test_faults import edit_metadata

    edit_metadata(files["internal"], tmp_path / "mine.onnx", {"task": "mjcf"})
    assert main(["deploy", str(tmp_path / "mine.onnx"), "--episodes", "1"]) == 2
    assert "--sim mjcf=ROBOT.xml reward=module:function" in capsys.readouterr().err


def test_control_loop_checks_the_period_and_the_rate(files):
    """Through the Python API a 0.08 s planner drove a 0.02 s robot, and rate_hz=1e-6 slept 11.6 days a step
    (probe of 2026-11-26)."""
    robot = ScriptedRobot()
    robot.control_period = 0.02
    with pytest.raises(ModelFileError, match=r"control period 0.02s != planner's 0.08s"):
        ControlLoop(PlannerSession(files["input"], provider="cpu"), robot)
    with pytest.raises(ValueError, match=r"rate_hz=1e-06: expected 0.1 to 10000.0 Hz"):
        ControlLoop(PlannerSession(files["input"], provider="cpu"), ScriptedRobot(), rate_hz=1e-6, realtime=True)


def test_a_rate_other_than_the_planners_is_said(files, caplog):
    """``deploy --rate 100`` drove a 12.5 Hz planner at 100 Hz without a word (seventh probe, 2026-11-26)."""
    session = PlannerSession(files["input"], provider="cpu")
    with caplog.at_level(logging.WARNING, logger="robot_wm.runtime.loop"):
        loop = ControlLoop(session, ScriptedRobot(), rate_hz=100, realtime=False)
    assert "control rate 100 Hz is not the planner's 12.5 Hz (control period 0.08 s)" in loop.rate_mismatch
    assert loop.rate_mismatch in caplog.text and "simulated robot" not in loop.rate_mismatch
    # probe 40: in simulation the return was the nominal one, and nothing said why
    from robot_wm.config import EnvConfig
    from robot_wm.runtime.robot import SimRobot
    from sim.registry import make_env

    sim = SimRobot(make_env(EnvConfig(task="cartpole-swingup", max_env_steps=80)))
    assert "; the simulated robot still takes 0.08 s of physics a command, so its return is not that of a robot " \
        "driven at 25 Hz" in ControlLoop(session, sim, rate_hz=25, realtime=False).rate_mismatch
    caplog.clear()
    for rate in (None, 12.5, 12.55):  # the planner's own rate, given or not, within 1%
        with caplog.at_level(logging.WARNING, logger="robot_wm.runtime.loop"):
            assert ControlLoop(session, ScriptedRobot(), rate_hz=rate, realtime=False).rate_mismatch is None
    assert "control rate" not in caplog.text


def test_a_driver_changing_its_bounds_in_place_changes_nothing_the_loop_checked(files):
    """Probe 33: the loop kept the driver's own float32 bound arrays; set to NaN in place after the loop was built,
    NaN commands were sent (0 fallbacks), and inverted bounds sent -5 on a [-1, 1] actuator. It keeps copies."""
    for bad in (np.nan, "inverted"):
        robot = ScriptedRobot()
        loop = ControlLoop(PlannerSession(files["input"], provider="cpu"), robot, realtime=False, max_fallbacks=3)
        loop.run(2)
        if bad == "inverted":
            robot.action_low[:], robot.action_high[:] = 5.0, -5.0
        else:
            robot.action_low[:] = robot.action_high[:] = bad
        loop.run(3)
        sent = np.stack(robot.sent)
        assert np.all(np.isfinite(sent)) and np.all(np.abs(sent) <= 1.0), sent.ravel().tolist()


def test_odd_python_api_values_are_named(files, tmp_path):
    """The fifth probe's API cases (2026-11-26): each was accepted silently or named nothing."""
    from robot_wm.runtime.record import DeploymentRecorder

    with pytest.raises(ValueError, match=r"threads=-1: expected a whole number from 1 to 1024"):
        PlannerSession(files["input"], threads=-1)
    s = PlannerSession(files["input"], provider="cpu")
    with pytest.raises(ValueError, match="state is complex: expected real numbers"):  # the imaginary part was dropped
        s.step(np.zeros(5, np.complex64) + 1j, s.initial_plan())
    with pytest.raises(ValueError, match=r"state is a masked array with 1 masked value"):  # planned from 50 (32)
        s.step(np.ma.masked_array([0, 1, 50, 0, 0], mask=[0, 0, 1, 0, 0]), s.initial_plan())
    s.step(np.ma.masked_array([0, 1, 0.5, 0, 0], mask=False), s.initial_plan())  # nothing masked: its values
    with pytest.raises(ValueError, match=r"max_steps=-5: expected 0 or more"):
        ControlLoop(s, ScriptedRobot(), realtime=False).run(-5)
    with pytest.raises(ValueError, match="cannot hold a NUL byte"):
        DeploymentRecorder(f"{tmp_path}/rec\x00x", task="cartpole-swingup", planner="p", action_repeat=8, planner_delay=0)
    for task in ("", "../../x", "a\x1b[2Jb"):  # a path or escapes were written into recording.json (probe 29)
        with pytest.raises(ValueError, match=r"task=.*: expected the robot's task name"):
            DeploymentRecorder(tmp_path / "rec", task=task, planner="p", action_repeat=8, planner_delay=0)
    robot = ScriptedRobot()
    robot.control_period = 1e-7  # a 1e-7 s MJCF timestep: 10 MHz and a 0 ms deadline
    with pytest.raises(ValueError, match=r"robot.control_period=1e-07 s is 1e\+07 Hz: expected 0.1 to 10000.0 Hz"):
        ControlLoop(s, robot)


def test_deploy_exits_1_when_episodes_were_not_recorded(files, tmp_path):
    """A full disk recorded nothing and deploy exited 0 (probe of 2026-11-26). The deployment goes on after a failed
    write: the next episode begins afresh (a recorder that held the unwritten steps refused it)."""
    r = subprocess.run(["prlimit", "--fsize=5000", sys.executable, "-m", "robot_wm.cli", "deploy", str(files["internal"]),
                        "--episodes", "2", "--deadline-ms", "1000", "--record", str(tmp_path / "rec")],
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 1 and "2 of 2 episodes were NOT recorded" in r.stderr, r.stderr


def _recorder_memory(folder, robot, episodes: int) -> tuple[int, int]:
    """(peak, held) bytes traced while a real ``DeploymentRecorder`` opens ``folder`` and records ``episodes``."""
    import gc
    import tracemalloc

    from robot_wm.runtime.record import DeploymentRecorder

    gc.collect()  # an earlier test's cycles (loops, sessions) collected inside the window were counted as held
    tracemalloc.start()
    try:
        rec = DeploymentRecorder(folder, task="cartpole-swingup", planner="p.onnx", action_repeat=8, planner_delay=0)
        for episode in range(episodes):
            robot.reset(episode)
            rec.begin(robot, seed=episode)
            for _ in range(40):
                robot.send_action(np.array([1.0]))
                rec.step(robot, np.array([1.0]), 0.002, None)
            assert rec.end() is not None
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, held


def test_a_recorder_reads_one_episode_of_its_folder_and_keeps_none(tmp_path):
    """``deploy --record`` into a folder of many episodes read them all, and every episode it wrote stayed in memory
    for the deployment's life (probe 17): it now reads the folder's first episode alone and holds none it wrote."""
    import shutil

    from conftest import one_buffer_robot, record_one_buffer_robot

    from robot_wm.data.dataset import EpisodeDataset

    folder = tmp_path / "rec"
    record_one_buffer_robot(folder, 40)
    one = EpisodeDataset(folder)[0]
    size = one.obs.nbytes + one.action.nbytes + one.physics_state.nbytes
    for i in range(1, 400):
        shutil.copy(folder / "episode_000000.npz", folder / f"episode_{i:06d}.npz")
    robot = one_buffer_robot()
    _recorder_memory(tmp_path / "warm", robot, 1)  # first-use allocations (imports, caches) out of the comparison
    peak0, held0 = _recorder_memory(tmp_path / "empty", robot, 10)
    peak, held = _recorder_memory(folder, robot, 10)
    # the folder holds 400 episodes of `size` bytes: reading them all, or keeping the ten written, shows here
    assert peak < peak0 + 20 * size and held < held0 + 5 * size, (peak, peak0, held, held0, size)
    assert len(EpisodeDataset(folder)) == 410


def test_a_planner_spec_without_its_delay_and_odd_states_are_named(files, tmp_path):
    """Removing `delay` from planner_spec (hashes recomputed) passed as an older file (probe 20); why_invalid named a
    state of 1e300 'inf, not finite' and a state of another size was numpy's broadcast error."""
    import onnx
    from test_faults import edit_metadata

    props = {p.key: p.value for p in onnx.load(str(files["internal"])).metadata_props}
    spec = {k: v for k, v in json.loads(props["planner_spec"]).items() if k != "delay"}
    edited = edit_metadata(files["internal"], tmp_path / "nodelay.onnx", {"planner_spec": json.dumps(spec)})
    with pytest.raises(ModelFileError, match="metadata delay=0, but the graph was built with delay=None"):
        PlannerSession(edited)
    s = PlannerSession(files["internal"], provider="cpu")
    state = np.zeros(s.meta.state_dim)
    state[1] = 1e300
    import warnings

    with warnings.catch_warnings():  # numpy's "overflow encountered in cast" came first, with its source line (probe 29)
        warnings.simplefilter("error")
        assert s.why_invalid(state).startswith("state[1] = 1e+300 is beyond float32, the planner's input")
    assert s.why_invalid(np.zeros(3)) == f"the state has 3 values, the planner expects {s.meta.state_dim}"


def test_deploy_warns_where_the_robot_runs_another_task_than_the_planners(files, capsys):
    """Probe 21 (DEP-T1): `deploy swingup.onnx --task cartpole-balance` planned with the swing-up model and value on
    the balance task (the same sizes) without a word."""
    from robot_wm.cli import main

    assert main(["deploy", str(files["internal"]), "--episodes", "1", "--task", "cartpole-balance",
                 "--sim", "max_env_steps=80"]) == 0
    assert "the planner was trained for 'cartpole-swingup'; the simulated robot runs 'cartpole-balance'" in \
        capsys.readouterr().err
    assert main(["deploy", str(files["internal"]), "--episodes", "1", "--task", "cartpole_swingup",
                 "--sim", "max_env_steps=80"]) == 0
    assert "trained for" not in capsys.readouterr().err  # the suite's own spelling of the same task


def test_an_episode_whose_name_was_taken_meanwhile_is_saved_beside_and_said(tmp_path):
    """Probe 37: a folder made at the next episode's name while the robot drove: the driven episode was "NOT
    recorded", lost. It is saved beside under a name no reader takes, and the error says where; the folder's
    readers then name the entry in the way (and a link that leads nowhere there, numbered past before)."""
    from conftest import one_buffer_robot

    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.data.episode import Episode
    from robot_wm.runtime.record import DeploymentRecorder

    robot, folder = one_buffer_robot(), tmp_path / "rec"
    rec = DeploymentRecorder(folder, task="cartpole-swingup", planner="p", action_repeat=8, planner_delay=0)
    robot.reset(0)
    rec.begin(robot, 0)
    for _ in range(5):
        robot.send_action(np.array([0.5]))
        rec.step(robot, np.array([0.5]), 0.002, None)
    (folder / "episode_000000.npz").mkdir()
    with pytest.raises(ValueError, match="the episode was saved as") as err:
        rec.end()
    spare = next(folder.glob("unsaved-episode-*.npz"))
    assert str(spare) in str(err.value) and len(Episode.load(spare)) == 5
    with pytest.raises(ValueError, match="has an episode's name but is not a file"):
        EpisodeDataset(folder)
    (folder / "episode_000000.npz").rmdir()
    (folder / "episode_000000.npz").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="that leads nowhere .*: it has an episode's name; move it out"):
        EpisodeDataset(folder)


def test_a_recording_folder_removed_while_recording_starts_again_without_a_gap(tmp_path, caplog):
    """Probe 21 (REC-RM1): `rm -rf DIR` under `deploy --record DIR`: the folder was made again and the numbering went
    on (episode_000003 alone), and every reader then refused the folder for its gap."""
    import shutil

    from conftest import one_buffer_robot

    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.runtime.record import DeploymentRecorder

    robot, folder = one_buffer_robot(), tmp_path / "rec"
    rec = DeploymentRecorder(folder, task="cartpole-swingup", planner="p", action_repeat=8, planner_delay=0)
    for episode in range(3):
        if episode == 2:
            shutil.rmtree(folder)
        robot.reset(episode)
        rec.begin(robot, episode)
        for _ in range(5):
            robot.send_action(np.array([0.5]))
            rec.step(robot, np.array([0.5]), 0.002, None)
        with caplog.at_level(logging.WARNING):
            path = rec.end()
    assert path.name == "episode_000000.npz" and "was removed while episodes were being written" in caplog.text
    assert len(EpisodeDataset(folder)) == 1
    # its parent gone too (an unmounted drive): an error, not a new path on another disk (the review)
    drive = tmp_path / "drive"
    rec = DeploymentRecorder(drive / "rec", task="cartpole-swingup", planner="p", action_repeat=8, planner_delay=0)
    shutil.rmtree(drive)
    robot.reset(0)
    rec.begin(robot, 0)
    robot.send_action(np.array([0.5]))
    rec.step(robot, np.array([0.5]), 0.002, None)
    with pytest.raises(FileNotFoundError):
        rec.end()
    assert not drive.exists()


def test_a_launch_file_or_a_run_directory_as_the_planner_says_what_to_do(tiny_run_dir):
    """Probe 22: `deploy launch/arm-reach.toml` was "truncated or corrupted (Wire format was corrupt)", and `deploy RUN`
    "a directory" with no word of `export`."""
    from pathlib import Path

    from robot_wm.runtime.session import ModelFileError, PlannerSession

    launch = Path(__file__).resolve().parents[1] / "launch" / "arm-reach.toml"
    with pytest.raises(ModelFileError, match=r"is text \(a launch file or a run's config.toml\?\), not an ONNX planner"):
        PlannerSession(launch, provider="cpu")
    with pytest.raises(ModelFileError, match=rf"a run directory is exported first: `robot-wm export {tiny_run_dir}"):
        PlannerSession(tiny_run_dir, provider="cpu")


def test_a_driver_that_scales_its_command_in_place_changes_nothing_recorded(files, tmp_path):
    """Probe 34: a driver whose send_action converted the command to motor units in place (a *= 100) after applying
    it: the recorder stored actions up to 99.9 on a [-1, 1] actuator, and the loop's plan held them. The driver gets
    a copy of each command."""
    from robot_wm.config import EnvConfig
    from robot_wm.data.episode import Episode
    from robot_wm.runtime.record import DeploymentRecorder
    from robot_wm.runtime.robot import SimRobot
    from sim.registry import make_env

    class MotorUnits(SimRobot):
        def __init__(self, env):
            super().__init__(env)
            self.applied = []

        def send_action(self, action):
            super().send_action(action)
            self.applied.append(np.array(action, copy=True))
            action *= 100.0  # to motor units, in place, after applying it

    robot = MotorUnits(make_env(EnvConfig(task="cartpole-swingup", max_env_steps=160)))
    robot.reset(0)
    loop = ControlLoop(PlannerSession(files["internal"], provider="cpu"), robot, realtime=False, max_fallbacks=4)
    rec = DeploymentRecorder(tmp_path / "rec", task="cartpole-swingup", planner="p", action_repeat=8, planner_delay=0)
    rec.begin(robot, 0)
    stats = loop.run(30, done=lambda: robot.done, on_tick=rec.hook(loop, robot))
    ep = Episode.load(rec.end())
    assert stats.fallbacks == 0 and len(ep) == len(robot.applied) == 20
    assert np.all(np.abs(ep.action) <= 1.0) and np.allclose(ep.action, np.stack(robot.applied)), ep.action.max()


def test_an_async_driver_is_counted_as_a_robot_error_not_a_sent_command(files):
    """Probe 35: a driver whose send_action is `async def`: 5 steps, 0 fallbacks, 0 errors, and no command reached
    the robot (only Python's "coroutine was never awaited" warning). Each is a robot error; the loop stops safely."""
    class AsyncRobot(ScriptedRobot):
        async def send_action(self, action):
            self.sent.append(np.array(action))

    robot = AsyncRobot()
    loop = ControlLoop(PlannerSession(files["input"], provider="cpu"), robot, realtime=False, max_fallbacks=3)
    stats = loop.run(5)
    assert robot.sent == [] and stats.errors >= 3 and loop.stopped is not None, (stats.format(), loop.stopped)


def test_a_real_time_robots_recording_pairs_each_command_with_its_own_outcome(files, tmp_path):
    """Probe 35: the recorder read the state at once after send_action. A real-time robot (its state moves with the
    wall clock under the command it holds) was recorded one step off: every transition paired a_t with a_{t-1}'s
    effect, under planner_delay=0. The state after a command is the one the next tick reads."""
    from robot_wm.data.episode import Episode
    from robot_wm.runtime.record import DeploymentRecorder

    class WallClockRobot(ScriptedRobot):
        control_period = 0.08

        def __init__(self):
            super().__init__()
            self.u, self.since = 0.0, time.perf_counter()

        def _advance(self):
            now = time.perf_counter()
            self.state = self.state.copy()
            self.state[0] += self.u * (now - self.since)  # x' = u: the command held since it was sent
            self.since = now

        def read_state(self):
            self._advance()
            return self.state

        def send_action(self, action):
            self._advance()
            self.u = float(np.asarray(action).reshape(-1)[0])
            super().send_action(action)

    robot = WallClockRobot()
    loop = ControlLoop(PlannerSession(files["input"], provider="cpu"), robot, realtime=True, max_fallbacks=3)
    rec = DeploymentRecorder(tmp_path / "rec", task="cartpole-swingup", planner="p", action_repeat=8, planner_delay=0)
    rec.begin(robot, 0)
    loop.run(8, on_tick=rec.hook(loop, robot))  # it returns when the last command's period is over
    ep = Episode.load(rec.end())
    moved = np.diff(ep.obs[:, 0]) / 0.08  # what each transition's command did, per second
    sent = ep.action[:, 0]
    assert len(ep) == 8 and np.ptp(sent) > 0.2, sent  # the commands differ: a shift would show
    assert np.allclose(moved, sent, atol=0.25), np.round(np.stack([moved, sent]), 2)


def test_odd_driver_returns_are_fallbacks_and_errors_not_crashes_or_silent(files):
    """Probe 36: a state whose __array__ raised escaped the loop (the loop's copy of it was outside the read's
    fallback); a complex state printed numpy's ComplexWarning; a generator send_action never ran, 30 steps, 0 errors;
    rate_hz=10**400 was numpy's "ufunc 'isfinite' not supported"."""
    import warnings

    class Raises:
        def __array__(self, *a, **k):
            raise RuntimeError("sensor bus")

    for state in (Raises(), np.array([0.1, 0.9, -0.2, 0.3, 0.0]) + 1j):
        robot = ScriptedRobot()
        robot.state = state
        loop = ControlLoop(PlannerSession(files["input"], provider="cpu"), robot, realtime=False, max_fallbacks=3)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            stats = loop.run(5)
        assert stats.fallbacks == 3 and loop.stopped is not None, stats.format()

    class GeneratorRobot(ScriptedRobot):
        def send_action(self, action):
            self.sent.append(np.array(action))
            yield

    robot = GeneratorRobot()
    loop = ControlLoop(PlannerSession(files["input"], provider="cpu"), robot, realtime=False, max_fallbacks=3)
    stats = loop.run(5)
    assert robot.sent == [] and stats.errors >= 3 and "'generator'" in loop.stopped, loop.stopped
    with pytest.raises(ValueError, match="rate_hz=1000000000000000000000000000000"):
        ControlLoop(PlannerSession(files["input"], provider="cpu"), ScriptedRobot(), rate_hz=10**400)
    for runs in (0, -5, "3", 2.5):  # 0 and -5 ran one step; "3" and 2.5 were raw TypeErrors
        with pytest.raises(ValueError, match=r"runs=.*: expected a whole number of warm-up steps"):
            PlannerSession(files["input"], provider="cpu").warmup(runs)


def test_a_reward_beyond_float32_keeps_the_whole_recording_its_rewards_unknown(tmp_path, caplog):
    """Probe 36: a robot whose last_reward() said 1e300 at one step: end() raised "reward holds NaN/Inf" and the whole
    recorded episode was lost; then it was cut before that step without a word (probe 39: 2 of 12 transitions kept,
    where an inf reward kept them all). A reward beyond float32 is unknown, like inf: every transition kept, said."""
    from robot_wm.data.episode import Episode
    from robot_wm.runtime.record import DeploymentRecorder

    class Rewarding(ScriptedRobot):
        def last_reward(self):
            return 1e300 if len(self.sent) == 4 else 1.0

    robot = Rewarding()
    rec = DeploymentRecorder(tmp_path / "rec", task="my-robot", planner="p", action_repeat=1, planner_delay=0)
    rec.begin(robot, 0)
    for _ in range(6):
        robot.send_action(np.zeros(1, np.float32))
        rec.step(robot, np.zeros(1, np.float32), 0.001, None)
    with caplog.at_level(logging.WARNING):
        ep = Episode.load(rec.end())
    assert len(ep) == 6 and ep.meta["reward_known"] is False and ep.meta["rewards_unknown_at"] == [3], ep.meta
    assert "cut_at_bad_reward" not in ep.meta and "not one finite number at 1 of 6 control steps" in caplog.text


def test_a_safe_stop_between_bounds_near_the_float32_limit_is_finite_and_said_so(files, tmp_path, caplog):
    """Probe 37: a robot whose bounds are [3e38, 3.4e38] (a planner edited to match): its middle was inf in float32
    (numpy's overflow warnings) and the safe stop logged "sending the safe action [inf]"."""
    from test_faults import edit_metadata

    planner = edit_metadata(files["internal"], tmp_path / "wide.onnx", {"action_low": "[3e38]", "action_high": "[3.4e38]"})
    robot = ScriptedRobot()
    robot.action_low, robot.action_high = np.array([3e38], np.float32), np.array([3.4e38], np.float32)
    with warnings.catch_warnings(), caplog.at_level(logging.ERROR):
        warnings.simplefilter("error")
        session = PlannerSession(planner, provider="cpu")
        assert np.all(np.isfinite(session.initial_plan()))
        loop = ControlLoop(session, robot, realtime=False)
        loop.run(30)
    assert loop.stopped is not None and "sending the safe action [3.2e+38]" in caplog.text, caplog.text
    assert all(np.all(np.isfinite(a)) and 3e38 <= a[0] <= 3.4e38 for a in robot.sent)


def test_an_empty_planner_path_is_named_as_given():
    """Probe 37: PlannerSession('') was "planner file '.' is a directory"."""
    with pytest.raises(ModelFileError, match=r"planner file '' is an empty path"):
        PlannerSession("")
