"""Recordings of a robot whose commands act late are paired again with the commands that moved it."""

from __future__ import annotations

import numpy as np
import pytest

from robot_wm.config import EnvConfig
from robot_wm.data.dataset import EpisodeDataset
from robot_wm.data.episode import Episode
from robot_wm.data.realign import acted_delay, check_aligned, realign, realigned_length
from sim.registry import make_env
from tests.test_finetune import _record


def _replay_error(ep: Episode) -> float:
    """Largest gap between each recorded next state and the nominal simulator stepped from the recorded physics
    state with the row's command."""
    env = make_env(EnvConfig(task="cartpole-swingup", action_repeat=8, max_env_steps=400))
    gaps = []
    for t in range(len(ep)):
        env.reset(0)
        env.set_state(ep.physics_state[t])
        gaps.append(np.abs(env.step(ep.action[t]).observation - ep.obs[t + 1]).max())
    return float(max(gaps))


def test_a_delayed_robots_rows_realigned_are_the_simulators_own_transitions(tmp_path):
    """Real MuJoCo: a robot whose commands act 2 control steps late, recorded; as recorded its rows do not replay
    on the undelayed simulator, realigned they do, exactly."""
    data = EpisodeDataset(_record(tmp_path / "late", episodes=1, steps=240, action_delay=(2, 2)))
    raw = data[0]
    assert acted_delay(raw.meta) == 2
    aligned = realign(raw, data.paths()[0])
    assert len(aligned) == len(raw) - 2 and aligned.meta["realigned_delay"] == 2
    np.testing.assert_array_equal(aligned.obs, raw.obs[2:])
    np.testing.assert_array_equal(aligned.action, raw.action[:-2])
    np.testing.assert_array_equal(aligned.reward, raw.reward[2:])
    assert _replay_error(aligned) < 1e-6
    assert _replay_error(raw) > 1e-2  # the same rows unaligned: the commands are paired with the wrong states
    check_aligned(aligned)
    with pytest.raises(ValueError, match="not realigned by that delay"):
        check_aligned(raw, "raw.npz")
    assert realign(aligned) is aligned  # a copy of a run's robot data imported again (review)
    # the metadata describes the rows kept; each command keeps its planning time
    n = len(raw)
    assert aligned.meta["recorded_steps"] == n and aligned.meta["control_steps"] == n - 2
    assert aligned.meta["env_steps"] == (n - 2) * 8 and aligned.meta["latency_ms"] == raw.meta["latency_ms"][:n - 2]
    assert aligned.meta["return"] == pytest.approx(float(raw.reward[2:].sum()))
    # drive and dream --candidate re-run the simulator from a recorded state: a realigned episode's own commands
    # replay it without the delay (review: the delay was applied on top, gaps of 1.8)
    from robot_wm.drive import replay
    from robot_wm.model.ensemble import WorldModel, WorldModelSpec

    env = make_env(EnvConfig(task="cartpole-swingup", action_repeat=8, max_env_steps=240))
    model = WorldModel(WorldModelSpec(obs_dim=5, act_dim=1), np.array(env.action_spec.low), np.array(env.action_spec.high))
    d = replay(model, env, aligned, 5, aligned.action[5:11])
    np.testing.assert_allclose(d.real, aligned.obs[5:12], atol=1e-6)


def _episode(steps: int, **meta) -> Episode:
    return Episode(np.zeros((steps + 1, 2)), np.zeros((steps, 1)), np.zeros(steps), np.zeros((steps + 1, 0)), meta)


def test_which_delay_a_recording_says_and_what_is_refused():
    # the simulated robot's delay is the physics that ran; the planner's is a real robot's, as its user measured it
    sim = {"source": "sim-robot"}
    assert acted_delay({**sim, "randomization": {"action_delay": 1}, "planner_delay": 3}) == 1
    # a real robot's draw (its extra metadata) overrode its planner's delay, realigned by 0 (probe 19)
    assert acted_delay({"source": "robot", "randomization": {"action_delay": 0}, "planner_delay": 1}) == 1
    assert acted_delay({"planner_delay": 3}) == 3 and acted_delay({}) == 0
    # the nominal simulator records no draw: no delay, whatever the planner compensated (review)
    assert acted_delay({"source": "sim-robot", "planner_delay": 1}) == 0
    ep = _episode(5)
    assert realign(ep) is ep  # nothing acted late: the episode as it is
    for bad in (True, -1, "1", 1.0, 10**6, None):
        with pytest.raises(ValueError, match=r"meta planner_delay = .*expected a whole number of control steps"):
            acted_delay({"planner_delay": bad}, "ep.npz")
        with pytest.raises(ValueError, match="randomization.action_delay"):
            acted_delay({**sim, "randomization": {"action_delay": bad}})
    with pytest.raises(ValueError, match="meta randomization = 'x', expected a table"):
        acted_delay({"randomization": "x"})
    with pytest.raises(ValueError, match="holds 2 commands, all sent within the robot's 2-step delay"):
        realign(_episode(2, planner_delay=2), "short.npz")
    assert len(realign(_episode(3, planner_delay=2))) == 1
    assert realigned_length(_episode(3, planner_delay=2)) == 1 and realigned_length(_episode(2, planner_delay=2)) == 0
    assert realigned_length(_episode(3, planner_delay=2), as_sent=True) == 3
    with pytest.raises(ValueError, match="the file was edited"):  # left out as "too short" before (review)
        realigned_length(_episode(2, planner_delay=3, realigned_delay=1))
    with pytest.raises(ValueError, match="realigned by 1 control steps .* but its metadata says its commands acted 2"):
        realign(_episode(3, planner_delay=2, realigned_delay=1))
    # realigned_delay is checked as a delay is: true, 1.0 and "1" passed as 1 (probe 18); and one without a delay
    for odd in (True, 1.0, "1"):
        with pytest.raises(ValueError, match="meta realigned_delay = "):
            realign(_episode(3, planner_delay=1, realigned_delay=odd))
        with pytest.raises(ValueError, match="meta realigned_delay = "):
            check_aligned(_episode(3, planner_delay=1, realigned_delay=odd))
    with pytest.raises(ValueError, match="realigned by 1 control steps .* acted 0 late"):
        realign(_episode(3, realigned_delay=1))
    with pytest.raises(ValueError, match="realigned by 1 control steps .* acted 0 late: the file was edited"):
        check_aligned(_episode(3, realigned_delay=1))


def test_a_recorder_says_the_delay_its_planner_compensated(tmp_path):
    """A real robot's recording, made as docs/deploy.md shows with a planner.delay=1 planner, said no delay and was
    fine-tuned on unaligned (probe 18): the recorder takes the delay (required) and writes it."""
    from robot_wm.runtime.record import DeploymentRecorder

    with pytest.raises(TypeError, match="planner_delay"):
        DeploymentRecorder(tmp_path / "r", task="cartpole-swingup", planner="p.onnx", action_repeat=8)
    for bad in (-1, 1.5, True, "1", 5000):  # 5000 recorded, then its whole folder refused by finetune (probe 19)
        with pytest.raises(ValueError, match="planner_delay="):
            DeploymentRecorder(tmp_path / "r", task="cartpole-swingup", planner="p.onnx", action_repeat=8,
                               planner_delay=bad)
    rec = DeploymentRecorder(tmp_path / "r", task="cartpole-swingup", planner="p.onnx", action_repeat=8, planner_delay=1)
    assert rec.meta["planner_delay"] == 1 and acted_delay({**rec.meta}) == 1  # a real robot: realigned by it


def test_a_recorder_without_an_action_repeat_says_finetune_will_refuse_its_episodes(tmp_path, caplog):
    """A recorder given no action repeat recorded a whole deployment that `finetune` then refused (probe 17): it
    says so when it is made, before the robot moves."""
    from robot_wm.runtime.record import DeploymentRecorder

    with caplog.at_level("WARNING", logger="robot_wm.runtime.record"):
        DeploymentRecorder(tmp_path / "r", task="cartpole-swingup", planner="p.onnx", action_repeat=None, planner_delay=0)
    assert "`robot-wm finetune` refuses them (their time step is unknown)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="robot_wm.runtime.record"):
        DeploymentRecorder(tmp_path / "s", task="cartpole-swingup", planner="p.onnx", action_repeat=8, planner_delay=0)
    assert "finetune" not in caplog.text



def test_a_recorder_refuses_a_state_of_another_size_before_the_robot_moves(tmp_path):
    """A robot that does not say its state size, recording into a folder of 5-dimensional episodes: its episode was
    driven and then refused at end() (probe 19); begin() reads the first state and refuses it there."""
    from conftest import record_one_buffer_robot

    from robot_wm.finetune import _origin
    from robot_wm.runtime.record import DeploymentRecorder

    record_one_buffer_robot(tmp_path / "r", 3)

    class ThreeNumbers:  # no state_dim, no action bounds: duck-typed
        def read_state(self):
            return np.zeros(3)

    rec = DeploymentRecorder(tmp_path / "r", task="cartpole-swingup", planner="p.onnx", action_repeat=8, planner_delay=0)
    with pytest.raises(ValueError, match="holds episodes of 5 state dimensions; this robot's state has 3"):
        rec.begin(ThreeNumbers(), seed=0)
    # an origin whose digest is no string is no origin (a list was "unhashable type", probe 19)
    assert _origin({"imported_from": {"path": "x", "sha256": [1]}}) is None
    assert _origin({"imported_from": {"path": "x", "sha256": "ab"}}) == "ab"


def test_a_recorder_never_writes_into_a_users_folder(tmp_path):
    """Probe 34: `deploy --record DIR` where DIR held the user's notes and planner wrote recording.json and episodes
    beside them. A new, an empty or a recording folder is taken."""
    from robot_wm.runtime.record import DeploymentRecorder

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("calibration\n")
    with pytest.raises(ValueError, match=r"already holds files \(notes.txt\) but is not a recording folder"):
        DeploymentRecorder(mine, task="cartpole-swingup", planner="p.onnx", action_repeat=8, planner_delay=0)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "new", tmp_path / "empty", tmp_path / "new"):  # the last: a recording folder by now
        DeploymentRecorder(folder, task="cartpole-swingup", planner="p.onnx", action_repeat=8, planner_delay=0)
    assert (tmp_path / "new" / "recording.json").exists()


def test_a_recorder_on_a_broken_link_names_it(tmp_path):
    """`deploy --record LINK` where LINK points nowhere: a bare "[Errno 17] File exists" (probe 19)."""
    from robot_wm.runtime.record import DeploymentRecorder

    (tmp_path / "brk").symlink_to(tmp_path / "nowhere" / "x")
    with pytest.raises(ValueError, match="is a symbolic link to .* that leads nowhere"):
        DeploymentRecorder(tmp_path / "brk", task="cartpole-swingup", planner="p.onnx", action_repeat=8, planner_delay=0)


def test_a_recording_that_says_it_was_realigned_but_was_never_imported_is_refused(tmp_path):
    """A recording edited to say realigned_delay=1 (no imported_from) was taken as realigned and kept unaligned
    (probe 20)."""
    from robot_wm.finetune import import_episodes
    from robot_wm.run_dir import RunDir

    folder = EpisodeDataset(tmp_path / "rec", create=True)
    meta = {"source": "robot", "task": "cartpole-swingup", "reward_known": True, "action_repeat": 8,
            "step_unit": "suite_step", "planner_delay": 1, "realigned_delay": 1}
    folder.append(Episode(np.zeros((6, 5)), np.zeros((5, 1)), np.zeros(5), np.zeros((6, 0)), meta))
    (tmp_path / "run").mkdir()
    with pytest.raises(ValueError, match="says it was realigned .* but was never imported"):
        import_episodes(RunDir(tmp_path / "run"), folder.root, "cartpole-swingup", 5, 1)
