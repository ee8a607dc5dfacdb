"""Learning from the robot: recorded episodes of a shifted simulated robot go into a run, and
fine-tuning on them lowers the model's error there; the records say which data came from where."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from robot_wm import cli
from robot_wm.config import EnvConfig, RandomizeConfig
from robot_wm.data.dataset import EpisodeDataset
from robot_wm.data.episode import Episode
from robot_wm.finetune import forgetting
from robot_wm.run_dir import RunDir
from robot_wm.runtime.record import DeploymentRecorder
from robot_wm.runtime.robot import SimRobot
from sim.registry import make_env
from tests.test_export import make_run_dir


def _record(root, episodes=3, steps=400, **shift):
    """Recorded deployments of a robot whose physics differ from the run's simulator (random actions)."""
    robot = SimRobot(make_env(EnvConfig(task="cartpole-swingup", action_repeat=8, max_env_steps=steps,
                                        randomize=RandomizeConfig(**shift))))
    rec = DeploymentRecorder(root, task="cartpole-swingup", planner="none", action_repeat=8, source="sim-robot", planner_delay=0)
    rng = np.random.default_rng(0)
    for seed in range(episodes):
        robot.reset(100 + seed)
        rec.begin(robot, 100 + seed)
        while not robot.done:
            a = rng.uniform(-1, 1, size=1).astype(np.float32)
            robot.send_action(a)
            rec.step(robot, a, 0.001, None)
        rec.end(**robot.episode_info())
    return root


@pytest.fixture(scope="module")
def run_and_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    run = make_run_dir(root / "run", ["value.hidden=32", "model.max_epochs=30"])
    data = _record(root / "robot_data", actuator_gain=(0.5, 0.5), mass=(1.5, 1.5))
    return run, data


def test_finetune_lowers_the_error_on_the_robot_and_records_the_sources(run_and_data, capsys):
    run, data = run_and_data
    assert cli.main(["finetune", str(run), "--data", str(data), "--weight", "4", "--value", "--no-progress"]) == 0
    out = capsys.readouterr().out
    rec = RunDir(run).records("train")[-1]
    ft = rec["finetune"]
    assert ft["robot_episodes"] == 3 and ft["added"] == 3 and ft["weight"] == 4 and ft["sim_episodes"] == 2
    assert ft["sources"] and all(str(data.resolve()) in p for p in ft["sources"])
    before, after = rec["robot_multistep_mse_before"], rec["robot_multistep_mse_after"]
    for h in ("1", "5"):
        assert after[h] < 0.8 * before[h], (h, before[h], after[h])
    # ... and on the segments of the robot's episodes it held out (probe 14: the figures above are in-sample)
    held_b, held_a = rec["robot_heldout_multistep_mse_before"], rec["robot_heldout_multistep_mse_after"]
    assert held_a["1"] < held_b["1"] and held_b["1"] != before["1"], (held_b, held_a, before)
    assert "robot-wm export" in out and "on their held-out segments h=1:" in out
    # probe 21 (SUM-F1): the headline stays the run's own final evaluation, and that is said where there is one
    assert ("summary.json describes its own final evaluation" in out) == RunDir(run).summary_path.exists()
    # The simulator's held-out segments are measured too (what fine-tuning may forget), before and after.
    sim_before, sim_after = rec["sim_multistep_mse_before"], rec["sim_multistep_mse_after"]
    assert set(sim_before) == set(before) and all(np.isfinite(sim_before[h]) and sim_before[h] > 0 for h in ("1", "5"))
    assert forgetting(rec, 5) == pytest.approx(sim_after["5"] / sim_before["5"])
    # The new checkpoint is the latest; it says what it was trained on; the value was fine-tuned too.
    latest = RunDir(run).latest_checkpoint()
    meta = json.loads(latest.read_text()) if latest.suffix == ".json" else json.loads(latest.with_suffix(".json").read_text())
    assert meta["round"] == rec["round"] == 1 and meta["finetune"]["robot_episodes"] == 3
    assert rec["value_updates"] > 0 and ft["value"] is True
    # Robot data lives in its own folder, each file imported once.
    robot = EpisodeDataset(run / "robot")
    assert len(robot) == 3 and robot[0].meta["randomization"]["actuator_gain"] == 0.5
    assert robot[0].physics_state.shape == (len(robot[0]) + 1, 0)
    assert len(RunDir(run).dataset()) == 2  # the simulated dataset is untouched
    capsys.readouterr()
    assert cli.main(["finetune", str(run), "--data", str(data), "--no-progress"]) == 0
    plain = RunDir(run).records("train")[-1]
    assert plain["finetune"]["added"] == 0 and len(EpisodeDataset(run / "robot")) == 3
    # probe 23: the files skipped were skipped without a word
    assert plain["finetune"]["held_already"] == 3 and "(0 new, 3 of --data held already" in capsys.readouterr().out
    # Without --value the value and policy stay as they were (docs/results.md, adaptation: fine-tuned, they planned worse).
    assert plain["finetune"]["value"] is False and "value_updates" not in plain


def test_finetune_keeps_the_normalisers_of_the_simulators_data(run_and_data, tmp_path):
    """Fitted on the weighted mixture, the normalisers became those of the robot's one gait: on cheetah-run ten
    recorded episodes then broke the planner (64 against 211 with the simulator's; docs/results.md, adaptation)."""
    import shutil

    import torch

    from robot_wm.model.checkpoint import load_checkpoint_parts

    run, data = run_and_data
    run = Path(shutil.copytree(run, tmp_path / "run"))
    model, value, _ = load_checkpoint_parts(RunDir(run).latest_checkpoint())
    assert cli.main(["finetune", str(run), "--data", str(data), "--weight", "8", "--value", "--no-progress"]) == 0
    tuned, tuned_value, meta = load_checkpoint_parts(RunDir(run).latest_checkpoint())
    assert meta["finetune"]["weight"] == 8
    for before, after in ((model.obs_norm, tuned.obs_norm), (model.target_norm, tuned.target_norm),
                          (value.obs_norm, tuned_value.obs_norm)):
        assert torch.allclose(before.mean, after.mean, atol=1e-5) and torch.allclose(before.std, after.std, rtol=1e-4)
    robot = np.concatenate([e.obs for e in EpisodeDataset(run / "robot")])
    assert not np.allclose(robot.mean(0), tuned.obs_norm.mean.numpy(), atol=1e-2)  # the robot's own would differ


def test_finetune_trains_the_value_on_imagined_rows_too_when_asked(run_and_data, tmp_path):
    """value.imagined_steps reaches fine-tuning (one way to build the value's rows): the round says how many it
    imagined, from the simulated and the robot's states alike, and none without the field."""
    import shutil

    run, data = run_and_data
    run = Path(shutil.copytree(run, tmp_path / "run"))
    assert cli.main(["finetune", str(run), "--data", str(data), "--value", "value.imagined_steps=4", "--no-progress"]) == 0
    rec = RunDir(run).records("train")[-1]
    stored = rec["transitions"] + 4 * rec["finetune"]["robot_transitions"]  # the robot's rows repeated by the weight
    assert 0 < rec["imagined_rows"] <= 4 * -(-stored // 4) and np.isfinite(rec["q_loss"])


def test_a_finetune_that_did_not_finish_leaves_no_robot_data_behind(run_and_data, tmp_path, capsys):
    """An interrupted finetune left its import in RUN/robot with no record, and a later `train` trained on it at
    the default weight 4 instead of the 1 asked (probe 13). A failed fine-tuning takes its import back; episodes
    left by a killed one are refused by `train` until a finetune finishes on them."""
    import shutil

    run, data = run_and_data
    run = Path(shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("robot")))
    rounds = len(RunDir(run).records("train"))
    # A fine-tuning that diverges (real training, model.lr=10) raises after the import.
    assert cli.main(["finetune", str(run), "--data", str(data), "--weight", "1", "--no-progress", "model.lr=10",
                     "model.max_epochs=30"]) != 0
    assert "training diverged" in capsys.readouterr().err
    assert not list((run / "robot").glob("episode_*.npz")) and len(RunDir(run).records("train")) == rounds
    # A killed one: files in RUN/robot that no finished fine-tuning trained on.
    assert cli.main(["finetune", str(run), "--data", str(data), "--weight", "1", "--no-progress"]) == 0
    held = sorted((run / "robot").glob("episode_*.npz"))
    shutil.copy(held[0], run / "robot" / f"episode_{len(held):06d}.npz")
    capsys.readouterr()
    assert cli.main(["train", str(run), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert f"holds {len(held) + 1} episodes, but no fine-tuning finished on more than {len(held)}" in err, err
    assert f"robot-wm finetune {run}" in err


def test_train_after_finetune_keeps_the_robot_data_at_its_weight(run_and_data, tmp_path, capsys):
    """A plain `train` after `finetune` trained the next round on simulation alone, and nothing said so (tenth
    probe): the run's robot episodes stay in every later round, at the weight the fine-tuning gave them."""
    import shutil

    run, data = run_and_data
    run = Path(shutil.copytree(run, tmp_path / "run"))
    assert cli.main(["finetune", str(run), "--data", str(data), "--weight", "3", "--no-progress"]) in (0,)
    assert cli.main(["train", str(run), "model.max_epochs=2", "--no-progress"]) == 0
    rec = RunDir(run).records("train")[-1]
    assert "finetune" not in rec and rec["robot_episodes"] == 3 and rec["robot_weight"] == 3, rec


@pytest.mark.parametrize("edit, needle", [
    ({"scale": 1e6}, "is outside the action bounds"),
    ({"task": "cartpole-balance"}, "is from task 'cartpole-balance'"),
    ({"reward_known": False}, "has no known reward"),
    ({"action_repeat": 4}, "driven at action repeat 4"),
    ({"randomization": {"action_delay": 2}}, "were not realigned by that delay"),  # trained on as sent
    ({"imported_from": "somewhere"}, "imported_from='somewhere', expected {path, sha256}"),  # probe 13: a traceback
    ({"imported_from": {"path": "x", "sha256": [1]}}, "does not say which recorded file"),  # probe 19: trained on
    ({"step_unit": "physics_step"}, "counts its steps in 'physics_step', expected 'suite_step'"),  # probe 19: silent
])
def test_finetune_checks_the_runs_own_robot_episodes_again(run_and_data, tmp_path, capsys, edit, needle):
    """A file put or edited in RUN/robot/ was trained on by the next finetune with exit 0 (tenth probe)."""
    import shutil

    run, data = run_and_data
    run = Path(shutil.copytree(run, tmp_path / "run"))
    if not (run / "robot").is_dir():
        assert cli.main(["finetune", str(run), "--data", str(data), "--no-progress"]) == 0
    path = sorted((run / "robot").glob("episode_*.npz"))[-1]
    ep = Episode.load(path)
    action = ep.action * edit.get("scale", 1.0)
    meta = {**ep.meta, **{k: v for k, v in edit.items() if k != "scale"}}
    path.unlink()
    Episode(ep.obs, action, ep.reward, ep.physics_state, meta).save(path)
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert cli.main(["finetune", str(run), "--data", str(data), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert needle in err and path.name in err and "the run's robot data" in err, err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == checkpoints


def test_finetune_refuses_foreign_or_missing_data(run_and_data, tmp_path, capsys):
    run, data = run_and_data
    foreign = EpisodeDataset(tmp_path / "foreign", create=True)
    ep = EpisodeDataset(data)[0]
    foreign.append(Episode(ep.obs, ep.action, ep.reward, ep.physics_state, {**ep.meta, "task": "walker-walk"}))
    n_robot = len(EpisodeDataset(run / "robot")) if (run / "robot").exists() else 0
    assert cli.main(["finetune", str(run), "--data", str(tmp_path / "foreign"), "--no-progress"]) == 2
    assert "walker-walk" in capsys.readouterr().err
    other_rate = EpisodeDataset(tmp_path / "other_rate", create=True)  # was mixed in, exit 0: 1-step error 0.035 -> 2.16
    other_rate.append(Episode(ep.obs, ep.action, ep.reward, ep.physics_state, {**ep.meta, "action_repeat": 1}))
    assert cli.main(["finetune", str(run), "--data", str(tmp_path / "other_rate"), "--no-progress"]) == 2
    assert "driven at action repeat 1, the run's model at" in capsys.readouterr().err
    assert cli.main(["finetune", str(run), "--data", str(tmp_path / "typo"), "--no-progress"]) == 2
    assert "typo' does not exist" in capsys.readouterr().err  # "holds no recorded episodes" before (eighth probe)
    (tmp_path / "empty").mkdir()
    assert cli.main(["finetune", str(run), "--data", str(tmp_path / "empty"), "--no-progress"]) == 2
    assert "no recorded episodes" in capsys.readouterr().err
    units = EpisodeDataset(tmp_path / "units", create=True)  # logged in mm: fine-tuned on, the model broke on its own states
    units.append(Episode(ep.obs * 1000, ep.action, ep.reward, ep.physics_state, ep.meta))
    assert cli.main(["finetune", str(run), "--data", str(tmp_path / "units"), "--no-progress"]) == 2
    assert "lies far outside the run's own data" in capsys.readouterr().err
    paid = EpisodeDataset(tmp_path / "paid", create=True)  # rewards x1000: imagined returns 4 -> 215 (tenth probe)
    paid.append(Episode(ep.obs, ep.action, ep.reward * 1000 + 1000, ep.physics_state, ep.meta))
    assert cli.main(["finetune", str(run), "--data", str(tmp_path / "paid"), "--no-progress"]) == 2
    assert "this suite task pays 0 to 1 per environment step" in capsys.readouterr().err
    short = EpisodeDataset(tmp_path / "short", create=True)  # one command, acting after the recording ended
    short.append(Episode(ep.obs[:2], ep.action[:1], ep.reward[:1], ep.physics_state[:2],
                         {**ep.meta, "randomization": {**ep.meta["randomization"], "action_delay": 1},
                          "control_steps": 1, "return": float(ep.reward[:1].sum())}))
    assert cli.main(["finetune", str(run), "--data", str(tmp_path / "short"), "--no-progress"]) == 2
    assert "holds only commands sent within the robot's delay of its start" in capsys.readouterr().err
    wide = EpisodeDataset(tmp_path / "wide", create=True)  # probe 16: actions of up to 255 were dreamed on, exit 0
    wide.append(Episode(ep.obs, ep.action * 255, ep.reward, ep.physics_state, ep.meta))
    assert cli.main(["dream", str(run), "--data", str(tmp_path / "wide"), "--episode", "0", "--horizon", "3"]) == 2
    assert "outside the action bounds" in capsys.readouterr().err
    negated = EpisodeDataset(tmp_path / "negated", create=True)  # within the run's span: fine-tuned on (probe 11)
    negated.append(Episode(ep.obs, ep.action, -ep.reward - 0.5, ep.physics_state, ep.meta))
    assert cli.main(["finetune", str(run), "--data", str(tmp_path / "negated"), "--no-progress"]) == 2
    assert "rewards negated, in other units" in capsys.readouterr().err
    empty = EpisodeDataset(tmp_path / "no_step", create=True)  # imported, every later train failed (probe 11)
    empty.append(Episode(ep.obs[:1], ep.action[:0], ep.reward[:0], ep.physics_state[:1], ep.meta))
    assert cli.main(["finetune", str(run), "--data", str(tmp_path / "no_step"), "--no-progress"]) == 2
    assert "holds no transition" in capsys.readouterr().err
    assert cli.main(["finetune", str(run), "--data", str(data), "--weight", "0", "--no-progress"]) == 2
    assert "weight" in capsys.readouterr().err
    assert cli.main(["finetune", str(run), "--data", str(data), "--weight", "1000000000", "--no-progress"]) == 2
    assert "weight 1000000000 must be a whole number from 1 to 100" in capsys.readouterr().err  # was a MemoryError
    assert cli.main(["finetune", str(run), "--data", str(run / "episodes"), "--no-progress"]) == 2  # the run's own
    assert "is inside the run" in capsys.readouterr().err
    import shutil

    shutil.copytree(run / "episodes", tmp_path / "sim_episodes")
    assert cli.main(["finetune", str(run), "--data", str(tmp_path / "sim_episodes"), "--no-progress"]) == 2
    assert "not a recorded deployment" in capsys.readouterr().err
    assert (len(EpisodeDataset(run / "robot")) if (run / "robot").exists() else 0) == n_robot  # nothing copied


def test_rewards_of_a_robot_of_ones_own_are_checked_against_the_runs_range():
    from robot_wm.finetune import check_reward_scale

    check_reward_scale("ep.npz", np.array([0.0, 3.0, -2.0]), -1.0, 2.0)  # a little beyond: a robot may do worse
    with pytest.raises(ValueError, match=r"reward\[1\] = 5000 lies far outside the run's own rewards"):
        check_reward_scale("ep.npz", np.array([0.0, 5e3]), -1.0, 2.0)


def test_eval_on_a_named_shift_without_retraining(run_and_data, capsys):
    run, _ = run_and_data
    config = (run / "config.toml").read_bytes()
    assert cli.main(["eval", str(run), "--shift", "mass-1.3", "--planner", "random", "--episodes", "1",
                     "--no-progress"]) == 0
    assert "shift mass-1.3" in capsys.readouterr().out
    ep = RunDir(run).eval_dataset()[-1]
    assert ep.meta["randomization"]["mass"] == 1.3 and ep.meta["randomization"]["friction"] == 1.0
    assert (run / "config.toml").read_bytes() == config  # a one-off shift, never saved
    assert cli.main(["eval", str(run), "--shift", "mass-9", "--episodes", "1", "--no-progress"]) == 2
    assert "mass-9" in capsys.readouterr().err


def test_oracle_with_the_learned_value_as_the_model_gap_meter(run_and_data, capsys):
    run, _ = run_and_data
    assert cli.main(["eval", str(run), "--planner", "oracle-value", "--episodes", "1", "planner.samples=32",
                     "--no-progress"]) == 0
    assert "oracle-value planner" in capsys.readouterr().out
    assert RunDir(run).eval_dataset()[-1].meta["policy"] == "oracle-value"


def test_dream_and_whatif_of_a_recorded_deployment_show_the_models_error_on_the_robot(run_and_data, tmp_path, capsys):
    """``--data DIR``: a recorded deployment's episode beside what the run's model predicts for it (issue 13's
    predicted vs realised), as a video and a Rerun recording read back, and as whatif's table."""
    from robot_wm.viz.readback import read_rrd

    run, data = run_and_data
    rrd, mp4 = tmp_path / "robot.rrd", tmp_path / "robot.mp4"
    assert cli.main(["dream", str(run), "--data", str(data), "--episode", "1", "--step", "5", "--horizon", "20",
                     "--out", str(mp4), "--rrd", str(rrd), "--width", "64", "--height", "48"]) == 0
    assert "episode 1 from step 5" in capsys.readouterr().out and mp4.stat().st_size > 1000
    summary = read_rrd(rrd)  # a real .rrd read back: 21 frames and the predicted-vs-realised error per step
    assert summary.rows["dream/video"] == 21 and summary.rows["dream/error/mean"] == 21
    assert cli.main(["whatif", str(run), "--data", str(data), "--episode", "2", "--step", "0", "--random", "2"]) == 0
    assert "recorded" in capsys.readouterr().out
    rc = cli.main(["dream", str(run), "--data", str(data), "--episode", "3", "--out", str(mp4)])
    assert rc == 2 and f"--episode 3 is out of range: --data {str(data)!r} has 3 episodes" in capsys.readouterr().err
    rc = cli.main(["whatif", str(run), "--data", str(run / "episodes")])  # the run's own, not a deployment
    assert rc == 2 and "is not a recorded deployment" in capsys.readouterr().err
    # default names: a --data episode's dream never replaces the dream of the run's own episode of that number
    args = ["--episode", "1", "--step", "5", "--horizon", "3", "--width", "64", "--height", "48"]
    assert cli.main(["dream", str(run), *args]) == 0 and cli.main(["dream", str(run), "--data", str(data), *args]) == 0
    # ... nor that of another recording folder's episode 1 (probe 14), even one of the same folder name
    other = tmp_path / "elsewhere" / data.name
    shutil.copytree(data, other)
    assert cli.main(["dream", str(run), "--data", str(other), *args]) == 0
    names = {p.name for p in (run / "dreams").iterdir()}
    robot = sorted(n for n in names if n.startswith(f"robot_{data.name}_") and n.endswith("_episode000001_step5_h3.mp4"))
    assert "episode000001_step5_h3.mp4" in names and len(robot) == 2, names


def test_finetune_refuses_data_from_inside_the_run(run_and_data, capsys):
    """``--data RUN/robot`` copied the run's own robot episodes in again at every call (probe 2026-11-26)."""
    run, data = run_and_data
    assert cli.main(["finetune", str(run), "--data", str(data), "--no-progress"]) == 0
    robot = sorted(p.name for p in (run / "robot").iterdir())
    capsys.readouterr()
    assert cli.main(["finetune", str(run), "--data", str(run / "robot"), "--no-progress"]) == 2
    assert "is inside the run" in capsys.readouterr().err
    assert sorted(p.name for p in (run / "robot").iterdir()) == robot


def test_finetune_imports_each_episode_once_and_never_writes_through_a_link(run_and_data, tmp_path, capsys):
    """A copy of RUN/robot/ was imported again; a robot/ linked to another run's made finetune write into it
    without its lock (probe of 2026-11-26)."""
    import shutil

    run, data = run_and_data
    assert cli.main(["finetune", str(run), "--data", str(data), "--no-progress"]) == 0
    shutil.copytree(run / "robot", tmp_path / "copy")
    before = sorted(p.name for p in (run / "robot").iterdir())
    assert cli.main(["finetune", str(run), "--data", str(tmp_path / "copy"), "--no-progress"]) == 0
    assert sorted(p.name for p in (run / "robot").iterdir()) == before
    other = tmp_path / "other"
    shutil.copytree(run, other, ignore=shutil.ignore_patterns(".lock", "robot"))
    (other / "robot").symlink_to(run / "robot")
    capsys.readouterr()
    assert cli.main(["finetune", str(other), "--data", str(data), "--no-progress"]) == 2
    assert "outside the run directory" in capsys.readouterr().err
    assert sorted(p.name for p in (run / "robot").iterdir()) == before


@pytest.mark.parametrize("weight", [2.5, True, "4", 0])
def test_finetune_api_refuses_a_weight_that_is_not_a_whole_number_first(weight, tmp_path):
    """weight=2.5 passed the range check, imported the recordings, then failed with a TypeError; True was stored as
    `"weight": true` (tenth probe). Checked before the session or the data are touched."""
    from robot_wm.finetune import finetune

    with pytest.raises(ValueError, match=rf"robot data weight {weight!r} must be a whole number from 1 to 100"):
        finetune(None, tmp_path / "nothing", weight=weight)


def test_finetune_api_refuses_a_value_flag_that_is_not_a_bool(tmp_path):
    from robot_wm.finetune import finetune

    with pytest.raises(ValueError, match=r"value='no': expected True or False"):
        finetune(None, tmp_path / "nothing", value="no")


def test_forgetting_is_the_growth_of_the_simulator_error_or_none():
    rec = {"sim_multistep_mse_before": {"12": 0.17, "1": float("nan")}, "sim_multistep_mse_after": {"12": 0.26, "1": 0.1}}
    assert forgetting(rec, 12) == pytest.approx(0.26 / 0.17)
    assert forgetting(rec, 1) is None      # a segment too short for the horizon said nothing
    assert forgetting(rec, 5) is None      # not measured
    assert forgetting({}, 12) is None      # a record from before this measurement
    nan = {"sim_multistep_mse_before": {"12": 0.17}, "sim_multistep_mse_after": {"12": float("nan")}}
    assert forgetting(nan, 12) == float("inf")  # the same segments were measured: the NaN is the model's (probe 13)


def test_finetune_warns_when_the_model_forgot_the_simulator(run_and_data, tmp_path, capsys, monkeypatch):
    """Ten recorded episodes of one gait made cheetah-run's model 1.5x worse on the simulator's episodes and its
    planner fell to a quarter; the command says so instead of only reporting the lower error on the robot."""
    import shutil

    import robot_wm.finetune as ft

    run, data = run_and_data
    run = Path(shutil.copytree(run, tmp_path / "run"))
    monkeypatch.setattr(ft, "FORGET_RATIO", 0.0)  # any growth, or none, warns: the real run's figures decide it
    assert cli.main(["finetune", str(run), "--data", str(data), "--no-progress"]) == 0
    out = capsys.readouterr().out
    rec = RunDir(run).records("train")[-1]
    grew = forgetting(rec, RunDir(run).load_config().planner.horizon)  # the error at the planning horizon
    assert grew is not None and f"{grew:.2f}x worse" in out and "--planner pets" in out
    monkeypatch.setattr(ft, "FORGET_RATIO", grew + 1)
    assert cli.main(["finetune", str(run), "--data", str(data), "--no-progress"]) == 0
    assert "warning" not in capsys.readouterr().out


def test_drive_replays_a_recording_on_the_physics_it_was_recorded_with(run_and_data, tmp_path):
    """Probe 14: dream's and drive's simulator re-ran a recording of a mass x1.3 robot on the nominal one: its own
    actions led up to 1.38 away from the recorded states, and the model was compared with a robot never recorded.
    Replayed on the recorded physics (here also a delay, with the commands in flight at the start step), the
    recording's own actions reproduce its states."""
    from robot_wm.cli import _session
    from robot_wm.drive import replay

    run, _ = run_and_data
    data = EpisodeDataset(_record(tmp_path / "rec", episodes=1, steps=200, mass=(1.3, 1.3), action_delay=(1, 1)))
    ep = data[0]
    assert ep.meta["randomization"]["mass"] == 1.3 and ep.meta["randomization"]["action_delay"] == 1
    with _session(str(run), [], progress=False, lock=False) as s:
        model = s.latest_model()
        step, h = 5, 10
        d = replay(model, s.env, ep, step, ep.action[step:step + h])
        np.testing.assert_allclose(d.physics, ep.physics_state[step:step + h + 1], atol=1e-6)
        nominal = Episode(ep.obs, ep.action, ep.reward, ep.physics_state, {**ep.meta, "randomization": None})
        d = replay(model, s.env, nominal, step, ep.action[step:step + h])  # what the nominal robot does instead
        assert np.abs(d.physics - ep.physics_state[step:step + h + 1]).max() > 1e-3


def test_an_older_recorded_draw_replays_on_the_runs_own_mass_bodies():
    """Review: a draw recorded before it named its mass_bodies replayed the mass scale on every body; it takes the
    run's own (what the run's environment drew it with); a newer draw names its own."""
    from robot_wm.drive import recorded_physics

    old = {"randomization": {"mass": 1.3, "friction": 1.0, "damping": 1.0, "actuator_gain": 1.0, "obs_noise": 0.0,
                             "action_delay": 0}}
    assert recorded_physics(old, ["pole_1"]).mass_bodies == ["pole_1"] and recorded_physics(old).mass_bodies == []
    new = {"randomization": {**old["randomization"], "mass_bodies": ["cart"]}}
    assert recorded_physics(new, ["pole_1"]).mass_bodies == ["cart"] and recorded_physics(new).mass == (1.3, 1.3)
    assert recorded_physics({}) is None


def test_finetune_learns_from_a_delayed_robot_realigned(run_and_data, tmp_path, capsys):
    """`deploy --shift delay-1 --record` was refused by finetune (probe 16); its episodes are now imported realigned,
    and a file of a delayed robot put into the run's robot data unaligned is refused."""
    import shutil

    run, _ = run_and_data
    run = shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("robot"))
    late = _record(tmp_path / "late", episodes=2, steps=400, action_delay=(1, 1))
    raw = EpisodeDataset(late)
    assert cli.main(["finetune", str(run), "--data", str(late), "--weight", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out  # said, and the export it needs named (probe 18: neither)
    assert "2 of the robot's episodes were realigned by its delay (1 control steps" in out, out
    # the export named whole (probe 24: no --out, which export requires), and which recordings its delay is for
    assert f"Export again: `robot-wm export {run} --out planner.onnx planner.delay=1` for the delayed robot (2 of " \
           "the 2 robot episodes were recorded with a delay)" in out, out
    held = EpisodeDataset(tmp_path / "run" / "robot")
    assert [len(e) for e in held] == [len(e) - 1 for e in raw]
    assert all(e.meta["realigned_delay"] == 1 for e in held)
    np.testing.assert_array_equal(held[0].action, raw[0].action[:-1])
    # whatif --data shows the rows realigned, and says so (probe 19: "has 49 steps" for a recording of 50)
    n = len(raw[0])
    assert cli.main(["whatif", str(run), "--data", str(late), "--step", "3", "--horizon", "2", "--random", "0"]) == 0
    assert "step 3 (realigned by 1: recorded step 4), 2 steps ahead" in capsys.readouterr().out
    assert cli.main(["whatif", str(run), "--data", str(late), "--step", str(n - 1)]) == 2
    assert f"has {n - 1} steps (realigned by its delay of 1: its first 1 recorded rows dropped)" in capsys.readouterr().err
    # an export that does not compensate the delay the model was fine-tuned without is warned (probe 19: no word)
    assert cli.main(["export", str(run), "--out", str(tmp_path / "plain.onnx")]) == 0
    assert "fine-tuned on a robot's recordings realigned by its delay (1 control steps" in capsys.readouterr().err
    assert cli.main(["export", str(run), "--out", str(tmp_path / "late.onnx"), "planner.delay=1"]) == 0
    assert "realigned by its delay" not in capsys.readouterr().err
    # ... and so is one of a later round trained on the same robot data (probe 20: the fine-tuned round only)
    trained = shutil.copytree(run, tmp_path / "trained", ignore=shutil.ignore_patterns(".lock"))
    assert cli.main(["train", str(trained), "model.max_epochs=2", "--no-progress"]) == 0
    capsys.readouterr()
    assert cli.main(["export", str(trained), "--out", str(tmp_path / "plain2.onnx")]) == 0
    assert "fine-tuned on a robot's recordings realigned by its delay (1 control steps" in capsys.readouterr().err
    # a copy of the run's robot data imported again is skipped (review: "realigned already" refused the import)
    shutil.copytree(tmp_path / "run" / "robot", tmp_path / "copy")
    assert cli.main(["finetune", str(run), "--data", str(tmp_path / "copy"), "--weight", "1", "--no-progress"]) == 0
    assert RunDir(run).records("train")[-1]["finetune"]["added"] == 0 and len(EpisodeDataset(held.root)) == 2
    # ... and a folder holding both a realigned copy and the recorded file it came from imports one (probe 18: two)
    fresh = shutil.copytree(run, tmp_path / "fresh", ignore=shutil.ignore_patterns("robot", ".lock"))
    both = tmp_path / "both"
    both.mkdir()
    shutil.copy(held.paths()[0], both / "episode_000000.npz")
    shutil.copy(raw.paths()[0], both / "episode_000001.npz")
    assert cli.main(["finetune", str(fresh), "--data", str(both), "--weight", "1", "--no-progress"]) == 0
    assert len(EpisodeDataset(tmp_path / "fresh" / "robot")) == 1
    from robot_wm.io import file_sha256

    # a copy of a copy still names the recorded file (probe 18: its own digest)
    assert EpisodeDataset(tmp_path / "fresh" / "robot")[0].meta["imported_from"]["sha256"] == file_sha256(raw.paths()[0])
    # a robot recorded at two delays: the export names one, and the note says it fits only one (probe 19)
    later = _record(tmp_path / "later", episodes=1, steps=200, action_delay=(2, 2))
    assert cli.main(["finetune", str(fresh), "--data", str(later), "--weight", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "realigned by its delay (1 or 2 control steps" in out and "recorded at 2 delays: one planner.delay" in out
    assert "--out planner.onnx planner.delay=2` for the delayed robot" in out, out
    capsys.readouterr()
    # the same file put in unaligned (a copy whose meta says where it came from) is refused by the next finetune
    path = held.paths()[0]
    ep = Episode.load(path)
    meta = {k: v for k, v in ep.meta.items() if k != "realigned_delay"}
    path.unlink()
    Episode(raw[0].obs, raw[0].action, raw[0].reward, np.zeros((len(raw[0]) + 1, 0)), meta).save(path)
    assert cli.main(["finetune", str(run), "--data", str(late), "--no-progress"]) == 2
    assert "were not realigned by that delay" in capsys.readouterr().err


def test_a_delayed_robots_one_step_episode_is_left_out_not_the_whole_folder(run_and_data, tmp_path, capsys):
    """A one-command episode of a delayed robot (all its commands act after the recording ends) refused the whole
    folder (probe 18): it is left out and named, the others imported."""
    import shutil

    run, _ = run_and_data
    run = shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("robot", ".lock"))
    raw = EpisodeDataset(_record(tmp_path / "late", episodes=1, steps=200, action_delay=(1, 1)))
    mixed = EpisodeDataset(tmp_path / "mixed", create=True)
    ep = raw[0]
    mixed.append(Episode(ep.obs[:2], ep.action[:1], ep.reward[:1], ep.physics_state[:2],
                             {**ep.meta, "control_steps": 1, "return": float(ep.reward[:1].sum())}))
    mixed.append(ep)
    assert cli.main(["finetune", str(run), "--data", str(mixed.root), "--weight", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 recorded episodes were left out, each holding only commands sent within the robot's delay" in out, out
    assert str(mixed.paths()[0]) in out
    held = EpisodeDataset(run / "robot")
    assert [len(e) for e in held] == [len(ep) - 1]
    assert RunDir(run).records("train")[-1]["finetune"]["too_short"] == [str(mixed.paths()[0])]
    # the same folder again (a round more, or the advised rerun after a killed fine-tuning) is not refused (review)
    assert cli.main(["finetune", str(run), "--data", str(mixed.root), "--weight", "1", "--no-progress"]) == 0
    assert RunDir(run).records("train")[-1]["finetune"]["added"] == 0


def test_a_run_trained_with_a_randomised_delay_keeps_robot_data_as_sent(tmp_path, capsys):
    """A run trained with env.randomize.action_delay learned each state paired with the command sent; a delayed
    robot's recording realigned into it mixed two pairings (probe 18). It is kept as sent, said so, the export named
    without planner.delay; a realigned copy is refused there, naming the two pairings."""
    import shutil

    from tests.test_export import make_run_dir

    run = make_run_dir(tmp_path / "run", ["env.randomize.action_delay=[0,1]"])
    raw = EpisodeDataset(_record(tmp_path / "late", episodes=1, steps=200, action_delay=(1, 1)))
    assert cli.main(["finetune", str(run), "--data", str(raw.root), "--weight", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 episodes of a delayed robot were kept as sent" in out and "planner.delay=" not in out, out
    held = EpisodeDataset(run / "robot")
    assert len(held[0]) == len(raw[0]) and "realigned_delay" not in held[0].meta
    np.testing.assert_array_equal(held[0].action, raw[0].action)
    # a copy realigned elsewhere (another run's robot data) is refused: imported, it would mix the pairings
    other = make_run_dir(tmp_path / "nominal")
    assert cli.main(["finetune", str(other), "--data", str(raw.root), "--weight", "1", "--no-progress"]) == 0
    capsys.readouterr()
    copy = shutil.copytree(other / "robot", tmp_path / "realigned")
    fresh = shutil.copytree(run, tmp_path / "fresh", ignore=shutil.ignore_patterns("robot", ".lock"))
    assert cli.main(["finetune", str(fresh), "--data", str(copy), "--weight", "1", "--no-progress"]) == 2
    assert "learned each state paired with the command sent" in capsys.readouterr().err
    # whatif/dream --data show the recording as the run learned it: as sent, every recorded step (review)
    n = len(raw[0])
    assert cli.main(["whatif", str(run), "--data", str(raw.root), "--step", str(n - 1), "--horizon", "1",
                     "--random", "0"]) == 0
    assert f"step {n - 1}, 1 steps ahead" in capsys.readouterr().out
    # a realigned episode held since an earlier robot-wm is refused by train naming the recording to import again
    (fresh / "robot").mkdir(exist_ok=True)
    shutil.copy(copy / "episode_000000.npz", fresh / "robot" / "episode_000000.npz")
    assert cli.main(["train", str(fresh), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "was realigned by 1 control steps on import, but the run's simulated episodes pair" in err and f"again ({str(raw.paths()[0].resolve())!r})" in err, err


def test_a_stop_after_the_round_became_the_latest_keeps_its_import(run_and_data, tmp_path, monkeypatch):
    """A SIGTERM after the fine-tuned round was made the run's latest took its import back: the run then planned with
    a model of data it no longer held, and said nothing was kept (probe 19). A stop before keeps neither."""
    run, data = run_and_data
    real = RunDir.set_latest

    def then_stopped(self, stem):
        real(self, stem)
        raise KeyboardInterrupt  # what the CLI's SIGTERM handler raises, landing right after the rename

    monkeypatch.setattr(RunDir, "set_latest", then_stopped)
    after = shutil.copytree(run, tmp_path / "after", ignore=shutil.ignore_patterns("robot", ".lock"))
    before_latest = RunDir(after).latest_checkpoint()
    assert cli.main(["finetune", str(after), "--data", str(data), "--no-progress"]) == 130
    latest = RunDir(after).latest_checkpoint()
    held = EpisodeDataset(after / "robot")
    assert latest != before_latest and len(held) == len(EpisodeDataset(data))  # the round and its data, together
    assert json.loads(latest.read_text())["finetune"]["robot_episodes"] == len(held)

    def stopped_before(self, stem):
        raise KeyboardInterrupt  # the round saved, not yet the latest: the import goes with it

    monkeypatch.setattr(RunDir, "set_latest", stopped_before)
    early = shutil.copytree(run, tmp_path / "early", ignore=shutil.ignore_patterns("robot", ".lock"))
    before_latest = RunDir(early).latest_checkpoint()
    assert cli.main(["finetune", str(early), "--data", str(data), "--no-progress"]) == 130
    assert RunDir(early).latest_checkpoint() == before_latest
    assert not list((early / "robot").glob("episode_*.npz"))


def test_a_run_with_a_delayed_collect_keeps_robot_data_as_sent(run_and_data, tmp_path, capsys):
    """`collect RUN 'env.randomize.action_delay=[1,1]'` (a one-off override) added episodes paired as sent; the config
    alone said no delay, so a delayed robot's recording was realigned beside them (probe 19). The run's own episodes
    decide."""
    run, _ = run_and_data
    run = shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("robot", ".lock"))
    assert cli.main(["collect", str(run), "--episodes", "1", "env.randomize.action_delay=[1,1]", "env.max_env_steps=80",
                     "--no-progress"]) == 0
    raw = EpisodeDataset(_record(tmp_path / "late", episodes=1, steps=200, action_delay=(1, 1)))
    capsys.readouterr()
    assert cli.main(["finetune", str(run), "--data", str(raw.root), "--weight", "1", "--no-progress"]) == 0
    assert "1 episodes of a delayed robot were kept as sent" in capsys.readouterr().out
    assert len(EpisodeDataset(run / "robot")[0]) == len(raw[0])
    # ... and the other way round: a delayed collect into a run whose robot data was realigned is refused before it
    # runs (probe 20: it ran, and every later train and finetune refused the run's robot data)
    other = shutil.copytree(run_and_data[0], tmp_path / "other", ignore=shutil.ignore_patterns("robot", ".lock"))
    assert cli.main(["finetune", str(other), "--data", str(raw.root), "--weight", "1", "--no-progress"]) == 0
    capsys.readouterr()
    before = len(EpisodeDataset(other / "episodes"))
    assert cli.main(["collect", str(other), "--episodes", "1", "env.randomize.action_delay=[1,1]",
                     "env.max_env_steps=80", "--no-progress"]) == 2
    assert "holds robot data realigned by its delay" in capsys.readouterr().err
    assert len(EpisodeDataset(other / "episodes")) == before
    # probe 21: the same through the Python API (a session's one-off delay), which the command line alone refused
    from robot_wm.config import apply_overrides
    from robot_wm.finetune import finetune
    from robot_wm.runner import Session

    delayed = apply_overrides(RunDir(other).load_config(), ["env.randomize.action_delay=[1,1]", "env.max_env_steps=80"])
    with Session.open(delayed, RunDir(other), progress=False) as s, \
            pytest.raises(ValueError, match="holds robot data realigned by its delay"):
        s.collect(s.planner("random"), "train", before)
    assert len(EpisodeDataset(other / "episodes")) == before
    # ... and a fine-tuning in such a session pairs the robot data as the run does (realigned): it was kept as sent,
    # and the run then refused every later train
    fresh = shutil.copytree(run_and_data[0], tmp_path / "fresh", ignore=shutil.ignore_patterns("robot", ".lock"))
    delayed = apply_overrides(RunDir(fresh).load_config(), ["env.randomize.action_delay=[1,1]"])
    with Session.open(delayed, RunDir(fresh), progress=False) as s:
        rec = finetune(s, raw.root, weight=1, progress=False)
    assert rec["finetune"]["realigned"] == 1 and rec["finetune"]["kept_as_sent"] == 0
    assert cli.main(["train", str(fresh), "model.max_epochs=2", "--no-progress"]) == 0


def test_a_recording_cannot_say_it_was_realigned_nor_a_real_robot_draw_its_delay(tmp_path):
    """Extra metadata realigned_delay=1 on a real robot's recording: imported unaligned and announced as realigned;
    a draw of delay 0 in its extra metadata overrode its planner's delay (probe 19)."""
    from robot_wm.data.realign import acted_delay

    for key in ("realigned_delay", "recorded_steps", "imported_from"):
        with pytest.raises(ValueError, match=f"extra metadata \\['{key}'\\] would replace what the recorder or an import"):
            DeploymentRecorder(tmp_path / "r", task="cartpole-swingup", planner="p.onnx", action_repeat=8,
                               planner_delay=1, extra={key: 1})
    rec = DeploymentRecorder(tmp_path / "r", task="cartpole-swingup", planner="p.onnx", action_repeat=8,
                             planner_delay=1, extra={"randomization": {"action_delay": 0}})
    assert acted_delay(rec.meta) == 1  # the real robot's planner delay, its own "draw" ignored


def test_finetune_from_python_takes_a_numpy_weight(run_and_data, tmp_path):
    """`finetune(s, DIR, weight=np.int64(2))` trained the whole round, then failed writing its JSON and left an orphan
    weights file (probe 19)."""
    from robot_wm.finetune import finetune
    from robot_wm.runner import Session

    run, data = run_and_data
    run = RunDir(shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("robot", ".lock")))
    with Session.open(run.load_config(), run, progress=False) as s:
        rec = finetune(s, data, weight=np.int64(2), progress=False)
    assert rec["finetune"]["weight"] == 2 and type(rec["finetune"]["weight"]) is int
    assert json.loads(run.latest_checkpoint().read_text())["finetune"]["weight"] == 2


def test_a_robot_episode_edited_in_range_or_removed_after_its_fine_tuning_is_refused(run_and_data, tmp_path, capsys):
    """A held robot episode with its actions negated (within the bounds, its meta untouched), or one removed, was
    trained on by the next round without a word, where a training episode is refused (probe 20). Probe 21: the check
    went by place and claimed origin, so two files swapped with one edited, the first removed and the rest
    renumbered, or an edited file whose origin was changed too, all passed."""
    run, data = run_and_data
    run = shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("robot", ".lock"))
    assert cli.main(["finetune", str(run), "--data", str(data), "--weight", "1", "--no-progress"]) == 0
    n = len(EpisodeDataset(data))
    assert n >= 2

    def negate(path: Path, **meta) -> None:
        ep = Episode.load(path)
        path.unlink()
        Episode(ep.obs, -ep.action, ep.reward, ep.physics_state, {**ep.meta, **meta}).save(path)

    def refused(name: str, edit) -> None:
        copy = shutil.copytree(run, tmp_path / name, ignore=shutil.ignore_patterns(".lock"))
        edit(sorted((copy / "robot").glob("episode_*.npz")))
        capsys.readouterr()
        assert cli.main(["train", str(copy), "--no-progress"]) == 2, name
        assert re.search(rf"no longer holds 1 of the {n} episode files the fine-tuning of round \d+ trained on",
                         capsys.readouterr().err), name

    refused("edited", lambda paths: negate(paths[0]))
    refused("removed_last", lambda paths: paths[-1].unlink())

    def removed_first(paths):
        paths[0].unlink()
        for a, b in zip(paths[1:], paths):
            a.rename(b)
    refused("removed_first", removed_first)

    def swapped_and_edited(paths):
        negate(paths[0])
        tmp = paths[0].with_name("x.tmp")
        paths[0].rename(tmp)
        paths[1].rename(paths[0])
        tmp.rename(paths[1])
    refused("swapped", swapped_and_edited)
    refused("origin", lambda paths: negate(paths[0], imported_from={"path": "/x", "sha256": "0" * 64}))
    assert cli.main(["train", str(run), "model.max_epochs=2", "--no-progress"]) == 0  # untouched: trained on


def test_a_stop_between_two_copies_of_an_import_keeps_none(run_and_data, tmp_path, monkeypatch, capsys):
    """Probe 21 (FT-K3): Ctrl-C while finetune copied the recording into RUN/robot kept the episodes copied so far,
    never trained on; the import is taken back as a stop during the training takes it back."""
    from robot_wm.data.dataset import EpisodeFolder

    run, data = run_and_data
    run = shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("robot", ".lock"))
    real, calls = EpisodeFolder.append, []

    def append(self, episode):  # the user's Ctrl-C lands as the second episode is copied
        calls.append(self.root)
        if self.root.name == "robot" and len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, episode)

    monkeypatch.setattr(EpisodeFolder, "append", append)
    assert cli.main(["finetune", str(run), "--data", str(data), "--no-progress"]) == 130
    assert not list((run / "robot").glob("episode_*.npz"))
    monkeypatch.setattr(EpisodeFolder, "append", real)
    assert cli.main(["finetune", str(run), "--data", str(data), "--weight", "1", "--no-progress"]) == 0
    assert len(list((run / "robot").glob("episode_*.npz"))) == len(EpisodeDataset(data))


def test_a_recording_saved_again_or_left_by_a_killed_import_is_said(run_and_data, tmp_path, capsys):
    """Probe 21: a recording saved again with one more metadata key (another file digest, the same transitions) was
    imported a second time and counted twice; episodes left in RUN/robot by a fine-tuning killed after its import
    were trained on by the next one without a word."""
    from robot_wm.finetune import _checks, import_episodes
    from robot_wm.runner import Session

    _, data = run_and_data
    run = make_run_dir(tmp_path / "run", ["value.hidden=32", "model.max_epochs=5"])  # no fine-tuning recorded yet
    n = len(EpisodeDataset(data))
    with Session.open(RunDir(run).load_config(), RunDir(run), progress=False) as s:  # what a SIGKILL leaves behind
        got = import_episodes(s.run, data, *_checks(s, list(s.run.dataset())))
    assert len(got.added) == n
    again = tmp_path / "again"
    again.mkdir()
    for p in EpisodeDataset(data).paths():  # the same transitions in new files
        ep = Episode.load(p)
        Episode(ep.obs, ep.action, ep.reward, ep.physics_state, {**ep.meta, "note": "saved again"}).save(again / p.name)
    capsys.readouterr()
    assert cli.main(["finetune", str(run), "--data", str(again), "--weight", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    ft = RunDir(run).records("train")[-1]["finetune"]
    assert ft["added"] == 0 and ft["robot_episodes"] == n and ft["adopted"] == n
    assert f"{n} of the run's robot episodes were imported by an earlier fine-tuning that did not finish" in out
    assert len(list((run / "robot").glob("episode_*.npz"))) == n


def test_train_and_finetune_refuse_planner_settings_they_never_use(run_and_data, capsys):
    """Probe 21: `finetune RUN --data D planner.samples=64` was taken, recorded with the round, and planned nothing."""
    run, data = run_and_data
    for args in (["finetune", str(run), "--data", str(data), "planner.samples=37"],
                 ["train", str(run), "planner.iterations=5"]):
        assert cli.main(args) == 2, args
        err = capsys.readouterr().err
        assert "cannot change planner." in err and "it plans nothing" in err, err


def test_eval_says_when_the_planner_compensates_another_delay_than_the_robots(run_and_data, capsys):
    """Probe 21: `eval --shift delay-2 planner.delay=1` (and a delayed robot with no planner.delay) ran silently."""
    run, _ = run_and_data
    for args, note in ((["--shift", "delay-1"], "compensates 0"), (["--shift", "delay-1", "planner.delay=1"], None),
                       (["planner.delay=1"], "act 0 control step(s) late")):
        assert cli.main(["eval", str(run), "--episodes", "1", "planner.samples=16", "--no-progress", *args]) == 0
        err = capsys.readouterr().err
        assert (note in err) if note else "control step(s) late" not in err, (args, err)
    # probe 28: a delay past the planner's horizon was advised planner.delay=20, which the planner refuses ...
    assert cli.main(["eval", str(run), "--episodes", "1", "planner.samples=16", "--no-progress",
                     "env.randomize.action_delay=[20, 20]"]) == 0
    err = capsys.readouterr().err
    assert "a planner compensates at most planner.horizon - 1 = 7 steps" in err and "planner.delay=20" not in err, err
    # ... and one past the episode's 50 control steps let no command act, and its 0.0 was stored as an evaluation
    assert cli.main(["eval", str(run), "--episodes", "1", "--no-progress", "env.randomize.action_delay=[50, 50]"]) == 2
    err = capsys.readouterr().err
    assert "is 50 control steps, so a delay of 50 would let no command act; expected at most 49" in err, err


def test_a_runs_summary_says_it_trained_on_robot_data_too(run_and_data, tmp_path, capsys):
    """Probe 21: `run --resume` after a fine-tuning trained its later rounds on the robot's episodes too (at their
    weight), and its summary said nothing of them."""
    from robot_wm.report import print_summary
    from robot_wm.runner import Session, summarize

    _, data = run_and_data
    run = make_run_dir(tmp_path / "run", ["value.hidden=32", "model.max_epochs=5"])  # no fine-tuning recorded yet
    with Session.open(RunDir(run).load_config(), RunDir(run), progress=False) as s:
        assert "robot_episodes" not in summarize(s, [])
    assert cli.main(["finetune", str(run), "--data", str(data), "--weight", "3", "--no-progress"]) == 0
    assert cli.main(["train", str(run), "--no-progress"]) == 0  # a later round, as a resumed run trains
    with Session.open(RunDir(run).load_config(), RunDir(run), progress=False) as s:
        summary = summarize(s, [])
    assert summary["robot_episodes"] == len(EpisodeDataset(data)) and summary["robot_weight"] == 3
    capsys.readouterr()
    print_summary(summary, run)
    assert f"{len(EpisodeDataset(data))} (weight 3)" in capsys.readouterr().out


def _reseal(json_path: Path, edit) -> None:
    """Edit a checkpoint's tensors (``edit(dict)``) and recompute its hashes, as an attacker or a careless tool would."""
    import hashlib

    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    from robot_wm.model.checkpoint import sealed

    meta = json.loads(json_path.read_text())
    weights = json_path.parent / meta["weights"]
    tensors = {k: v.clone() for k, v in st_load(weights.read_bytes()).items()}
    edit(tensors)
    blob = st_save(tensors)
    weights.write_bytes(blob)
    json_path.write_text(json.dumps(sealed(dict(meta, sha256=hashlib.sha256(blob).hexdigest()))))


@pytest.mark.parametrize("edit, code, needle", [
    (lambda t: t["obs_norm.std"].zero_(), 2, "normaliser scales below 1e-06 in ['obs_norm.std']"),
    (lambda t: t["value.obs_norm.std"].fill_(-1), 2, "normaliser scales below 1e-06 in ['value.obs_norm.std']"),
    (lambda t: [t[k].mul_(100) for k in t if k.endswith(("action_low", "action_high"))], 2,
     "plans with action_low [-100.0], but the run's robot (cartpole-swingup) takes [-1.0]"),
    (lambda t: t["target_norm.std"].mul_(1e37), 3, "planning steps fell back"),
    # a weight of 1e30, which training never writes (one Q head's 1e38 was planned on, exit 0: probe 29)
    (lambda t: t["head.weight"].mul_(1e30), 2, "holds weights beyond +-1e+06 in ['head.weight']"),
    (lambda t: t["value.q.out.weight"][0].fill_(1e38), 2, "holds weights beyond +-1e+06 in ['value.q.out.weight']")])
def test_a_resealed_checkpoint_that_cannot_plan_is_refused_or_said(run_and_data, tmp_path, capsys, edit, code, needle):
    """Probe 22: a checkpoint with its normaliser's std zeroed, or its action bounds x100, hashes recomputed, was
    evaluated as the learned planner ("return 0.0", exit 0) while every step fell back, or planned over +-100 on a
    +-1 robot; eval now refuses such a file, and says how many steps fell back (exit 3 where most did)."""
    run, _ = run_and_data
    run = Path(shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("robot", ".lock")))
    _reseal(RunDir(run).latest_checkpoint(), edit)
    capsys.readouterr()
    assert cli.main(["eval", str(run), "--episodes", "1", "--no-progress"]) == code
    assert needle in capsys.readouterr().err


def test_a_recording_whose_metadata_contradicts_its_arrays_or_renamed_is_refused(run_and_data, tmp_path, capsys):
    """Probe 22: a recording whose meta said return=9999 or control_steps=5 beside other arrays was imported; a file
    renamed episode_1.npz was left out without a word; a file given as --data "held no recorded episodes"."""
    run, data = run_and_data
    before = sorted((run / "robot").glob("*.npz")) if (run / "robot").exists() else []

    def edited(name: str, **meta) -> Path:
        folder = Path(shutil.copytree(data, tmp_path / name))
        first = min(folder.glob("episode_*.npz"))
        ep = Episode.load(first)
        first.unlink()
        Episode(ep.obs, ep.action, ep.reward, ep.physics_state, {**ep.meta, **meta}).save(first)
        return folder

    renamed = Path(shutil.copytree(data, tmp_path / "renamed"))
    max(renamed.glob("episode_*.npz")).rename(renamed / "episode_1.npz")
    for folder, needle in ((edited("ret", **{"return": 9999.0}), "says return=9999.0 but its rewards sum to"),
                           (edited("steps", control_steps=5), "says control_steps=5 but holds"),
                           (renamed, "1 .npz file(s) that are not its numbered episodes (episode_1.npz)"),
                           (next(data.glob("episode_*.npz")), "is a file: expected the folder")):
        assert cli.main(["finetune", str(run), "--data", str(folder), "--no-progress"]) == 2, folder
        assert needle in capsys.readouterr().err, needle
    assert (sorted((run / "robot").glob("*.npz")) if (run / "robot").exists() else []) == before


def test_a_recordings_content_digest_holds_how_its_arrays_pair_up(run_and_data):
    """The content digest that finds a recording saved again (probe 21) also holds its action repeat and its robot's
    delay: the same arrays saved with a corrected delay are another recording, imported (review of session 20)."""
    from robot_wm.finetune import content_sha256

    _, data = run_and_data
    ep = EpisodeDataset(data)[0]
    again = Episode(ep.obs, ep.action, ep.reward, ep.physics_state, {**ep.meta, "note": "saved again"})
    late = Episode(ep.obs, ep.action, ep.reward, ep.physics_state,
                   {**ep.meta, "randomization": {**ep.meta["randomization"], "action_delay": 1}})
    assert content_sha256(again) == content_sha256(ep) != content_sha256(late)


def test_a_rebuilt_summary_describes_the_model_its_final_evaluation_played(run_and_data, tiny_run_dir, tmp_path):
    """Probe 28: summary.json gone after a `finetune` and a `train`, `run --resume` paired the final evaluation's
    return (of the run's own model) with the newest round's prediction error and its robot data."""
    from tests.conftest import tiny_run

    _, data = run_and_data
    run = shutil.copytree(tiny_run_dir, tmp_path / "run")
    before = json.loads((run / "summary.json").read_text())
    final_round = RunDir(run).manifest()["final_eval_round"]
    assert cli.main(["finetune", str(run), "--data", str(data), "--no-progress"]) == 0
    assert cli.main(["train", str(run), "--no-progress"]) == 0
    assert [r["round"] for r in RunDir(run).records("train")][-2:] == [final_round + 1, final_round + 2]
    (run / "summary.json").unlink()
    assert tiny_run(run, "--resume") == 0
    after = json.loads((run / "summary.json").read_text())
    assert after["eval_returns"] == before["eval_returns"] and "robot_episodes" not in after
    assert after["multistep_mse"] == before["multistep_mse"] != RunDir(run).records("train")[-1]["multistep_mse"]
