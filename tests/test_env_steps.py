"""The environment-step unit (``sim.env.STEP_UNIT``): one suite step, action repeat counted, so that every
suite episode is 1,000 steps whatever the action repeat and budgets mean what the field means by them."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from policies.random import RandomPolicy
from robot_wm.cli import main
from robot_wm.config import EnvConfig
from robot_wm.data.episode import Episode
from sim.collect import run_episode
from sim.env import STEP_UNIT
from sim.mjcf import MJCFEnv
from sim.registry import make_env

# Physics steps in one suite step, read off dm_control 1.0.50 (the numbers the old unit counted).
SUITE_SUBSTEPS = {"cartpole-swingup": 1, "walker-walk": 10, "cup-catch": 10}


@pytest.mark.parametrize("task", sorted(SUITE_SUBSTEPS))
@pytest.mark.parametrize("action_repeat", [1, 2, 4, 8])
def test_suite_episode_is_1000_env_steps_at_any_action_repeat(task, action_repeat):
    env = make_env(EnvConfig(task=task, action_repeat=action_repeat))
    ep = run_episode(env, RandomPolicy(env.action_spec, seed=0), seed=0)
    assert not ep.meta["diverged"]
    assert ep.meta["env_steps"] == 1000 and ep.meta["step_unit"] == STEP_UNIT
    assert len(ep) == 1000 // action_repeat == ep.meta["control_steps"]
    assert ep.meta["physics_steps"] == 1000 * SUITE_SUBSTEPS[task] == env.physics_steps_per_control_step * len(ep)
    assert env.dm_env._step_count == 1000, "our episode must end exactly where the suite's own does"
    assert env.control_timestep == pytest.approx(env.dm_env.control_timestep() * action_repeat)


def test_max_env_steps_past_the_suite_limit_is_refused():
    with pytest.raises(ValueError, match=r"env.max_env_steps=1200 exceeds walker-walk's own episode length of 1000"):
        make_env(EnvConfig(task="walker-walk", max_env_steps=1200))
    with pytest.raises(ValueError, match=r"env.max_env_steps=3 is shorter than one agent step"):
        make_env(EnvConfig(task="cartpole-swingup", max_env_steps=3, action_repeat=4))


@pytest.mark.parametrize("spellings", [
    ("point_mass-easy", "point-mass-easy"),
    ("ball_in_cup-catch", "ball-in-cup-catch", "cup-catch"),
    ("cartpole-swingup_sparse", "cartpole-swingup-sparse"),
])
def test_suite_and_our_spellings_resolve_to_the_same_environment(spellings):
    envs = [make_env(EnvConfig(task=name, action_repeat=2)) for name in spellings]
    assert len({e.name for e in envs}) == 1
    first = [e.reset(seed=3) for e in envs]
    for e, obs in zip(envs[1:], first[1:]):
        np.testing.assert_array_equal(obs, first[0])
        assert e.action_spec.shape == envs[0].action_spec.shape
        assert e.physics_steps_per_env_step == envs[0].physics_steps_per_env_step


def test_unknown_task_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown task 'cup_cach'.*cup-catch.*point-mass-easy"):
        make_env(EnvConfig(task="cup_cach"))
    # probe 28: a name pasted from a PDF (U+2010 for '-') looked like the listed one and nothing said why
    with pytest.raises(ValueError, match=r"'cartpole\u2010swingup' \(it holds U\+2010 HYPHEN"):
        make_env(EnvConfig(task="cartpole\u2010swingup"))
    with pytest.raises(ValueError) as plain:
        make_env(EnvConfig(task="cup_cach"))
    assert "it holds" not in str(plain.value)


def test_suite_substeps_are_fixed_by_the_suite():
    assert make_env(EnvConfig(task="walker-walk", substeps=10)).physics_steps_per_env_step == 10
    with pytest.raises(ValueError, match=r"env.substeps=3 does not apply to walker-walk.*10 physics steps"):
        make_env(EnvConfig(task="walker-walk", substeps=3))


def test_mjcf_env_step_is_one_control_period_of_substeps(tmp_path):
    from sim import arm_reach

    env = MJCFEnv(arm_reach.XML, arm_reach.reward, arm_reach.observe, arm_reach.reset, action_repeat=3,
                  max_env_steps=60, substeps=5)
    timestep = float(env.model.opt.timestep)
    assert env.control_timestep == pytest.approx(timestep * 5 * 3)
    env.reset(0)
    t0 = env.data.time
    env.step(np.zeros(env.action_spec.dim))
    assert env.data.time - t0 == pytest.approx(timestep * 15)
    ep = run_episode(env, RandomPolicy(env.action_spec, seed=0), seed=0)
    assert (len(ep), ep.meta["env_steps"], ep.meta["physics_steps"]) == (20, 60, 300)
    with pytest.raises(ValueError, match="env.substeps=0"):
        MJCFEnv(arm_reach.XML, arm_reach.reward, substeps=0)


def test_budget_gives_the_expected_number_of_episodes(tmp_path):
    """walker-walk (10 physics steps per suite step): 1,000 env steps of 200-step episodes are 5 episodes,
    whatever the action repeat; under the old unit they were half an episode."""
    root = tmp_path / "run"
    rc = main(["run", f"run_dir={root}", "env.task=walker-walk", "env.action_repeat=4", "env.max_env_steps=200",
               "env_steps=1000", "seed_episodes=5", "eval_episodes=0", "model.hidden=16", "model.layers=1",
               "model.max_epochs=1", "threads=1", "--no-progress"])
    assert rc == 0
    rows = list(csv.DictReader((root / "episodes.csv").open()))
    assert [int(r["env_steps"]) for r in rows] == [200] * 5
    assert [int(r["physics_steps"]) for r in rows] == [2000] * 5
    assert [int(r["control_steps"]) for r in rows] == [50] * 5
    assert [int(r["total_env_steps"]) for r in rows] == [200, 400, 600, 800, 1000]
    summary = json.loads((root / "summary.json").read_text())
    assert (summary["env_steps"], summary["episodes"], summary["step_unit"]) == (1000, 5, STEP_UNIT)


def test_run_in_the_old_unit_is_refused_not_mixed(tiny_run_dir, tmp_path, capsys):
    root = tmp_path / "old"
    shutil.copytree(tiny_run_dir, root)
    (root / "manifest.json").write_text(json.dumps({"status": "running", "episodes": 2}))
    path = root / "episodes" / "episode_000001.npz"
    ep = Episode.load(path)
    ep.meta.pop("step_unit")
    ep.save(path)
    before = {p.name: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    for argv in (["run", f"run_dir={root}", "--resume", "--no-progress"], ["eval", str(root), "--no-progress"],
                 ["collect", str(root), "--no-progress"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "counted physics steps" in err and "episode_000001.npz" in err and "Start a new run" in err
    after = {p.name: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert after == before, "a refused command must leave the old run untouched"
