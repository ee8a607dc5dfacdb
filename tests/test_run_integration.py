"""End to end: a tiny ``robot-wm run`` on cartpole-swingup and every file it writes; the run-directory
subcommands (collect, train, eval); determinism for a seed."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import mujoco
import numpy as np
import pytest
from conftest import TINY_RUN_ARGS, tiny_run

from robot_wm import config as cfgmod
from robot_wm.cli import main
from robot_wm.data.dataset import EpisodeDataset
from robot_wm.io import read_jsonl
from robot_wm.model.checkpoint import load_checkpoint
from robot_wm.run_dir import EPISODE_COLUMNS
from sim.env import STATE_SPEC

pytestmark = pytest.mark.slow

EPISODE_STEPS = 25  # 200 env steps / action repeat 8
OBS, ACT = 5, 1     # cartpole: position (3) + velocity (2); one motor


def _strict_json(path: Path):
    def refuse(name):
        raise AssertionError(f"{path.name} holds {name}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def _state_size() -> int:
    from robot_wm.config import EnvConfig
    from sim.registry import make_env

    env = make_env(EnvConfig(task="cartpole-swingup"))
    return mujoco.mj_stateSize(env.model, STATE_SPEC)


def _check_episode(ep, phase: str, policy: str) -> None:
    assert ep.obs.shape == (EPISODE_STEPS + 1, OBS) and ep.action.shape == (EPISODE_STEPS, ACT)
    assert ep.reward.shape == (EPISODE_STEPS,) and ep.physics_state.shape == (EPISODE_STEPS + 1, _state_size())
    assert np.all(np.abs(ep.action) <= 1.0)
    assert np.all((ep.reward >= 0) & (ep.reward <= 8.0)), "cartpole rewards are in [0, 1] per physics step"
    m = ep.meta
    assert (m["phase"], m["policy"], m["task"]) == (phase, policy, "cartpole-swingup")
    assert m["diverged"] is False and m["control_steps"] == EPISODE_STEPS and m["env_steps"] == 200
    assert m["return"] == pytest.approx(ep.total_return, rel=1e-5)


def test_run_writes_every_output(tiny_run_dir):
    root = tiny_run_dir
    # config.toml: the resolved config, loadable and equal to what the command line asked for.
    expected = cfgmod.apply_overrides(cfgmod.RunConfig(), [f"run_dir={root}", *TINY_RUN_ARGS])
    assert cfgmod.load(root / "config.toml") == expected

    # episodes/: 400 env steps of 200-step episodes -> a random seed episode, then one learned.
    train = EpisodeDataset(root / "episodes")
    assert [p.name for p in train.paths()] == ["episode_000000.npz", "episode_000001.npz"]
    _check_episode(train[0], "train", "random")
    _check_episode(train[1], "train", "learned")
    assert train.env_steps == 400
    evals = EpisodeDataset(root / "eval")
    assert len(evals) == 1
    _check_episode(evals[0], "eval", "learned")

    # checkpoints/: one round before the learned episode, one final; latest.json names the last.
    ck = root / "checkpoints"
    rounds = sorted(p.stem for p in ck.glob("model_r*.json"))
    assert rounds == ["model_r0000", "model_r0001"]
    assert sorted(p.stem for p in ck.glob("*.safetensors")) == rounds
    assert _strict_json(ck / "latest.json")["checkpoint"] == "model_r0001.json"
    for i, stem in enumerate(rounds):
        model, meta = load_checkpoint(ck / f"{stem}.json")
        assert (model.spec.obs_dim, model.spec.act_dim, model.spec.hidden, model.spec.layers) == (OBS, ACT, 32, 2)
        assert model.members == 5 and meta["round"] == i and meta["task"] == "cartpole-swingup"
        assert meta["transitions"] == EPISODE_STEPS * (i + 1)

    # metrics.jsonl: one record per episode, per training round and per evaluation.
    records = read_jsonl(root / "metrics.jsonl")
    kinds = [r["kind"] for r in records]
    assert kinds.count("episode") == 3 and kinds.count("train") == 2 and kinds.count("eval") == 1
    assert set(kinds) <= {"episode", "train", "eval"}
    for r in (r for r in records if r["kind"] == "train"):
        assert 1 <= r["epochs"] <= 5 and len(r["val_mse"]) == 5 and all(math.isfinite(v) for v in r["val_mse"])
        assert sorted(r["elites"]) == r["elites"] and len(r["elites"]) == expected.model.elites
        assert set(r["multistep_mse"]) == {"1", "5", "10"}
    ep_records = [r for r in records if r["kind"] == "episode"]
    assert [(r["phase"], r["index"], r["policy"]) for r in ep_records] == [
        ("train", 0, "random"), ("train", 1, "learned"), ("eval", 0, "learned")]

    # episodes.csv: the same episodes as rows.
    with open(root / "episodes.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and list(rows[0]) == list(EPISODE_COLUMNS)
    for row, ep in zip(rows, [train[0], train[1], evals[0]]):
        assert float(row["return"]) == pytest.approx(ep.total_return, rel=1e-5)
        assert int(row["env_steps"]) == 200 and row["diverged"] == "False"

    # summary.json: strict JSON, every number finite.
    summary = _strict_json(root / "summary.json")
    for key in ("task", "seed", "env_steps", "episodes", "eval_returns", "eval_return_mean", "eval_return_std",
                "train_returns", "multistep_mse", "plan_hz", "wall_s"):
        assert key in summary, key
    assert (summary["task"], summary["seed"], summary["env_steps"], summary["episodes"]) == (
        "cartpole-swingup", 0, 400, 2)
    assert summary["eval_returns"] == [pytest.approx(evals[0].total_return, rel=1e-5)]
    assert summary["train_returns"] == [pytest.approx(e.total_return, rel=1e-5) for e in train]
    assert set(summary["multistep_mse"]) == {"1", "5", "10"}
    numbers = [summary["eval_return_mean"], summary["eval_return_std"], summary["plan_hz"], summary["wall_s"],
               *summary["multistep_mse"].values()]
    assert all(isinstance(x, (int, float)) and math.isfinite(x) for x in numbers), numbers
    assert summary["plan_hz"] > 0

    # Nothing half-written is left behind.
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_run_refuses_a_used_run_dir(tiny_run_dir, tmp_path, capsys):
    dst = tmp_path / "run"
    shutil.copytree(tiny_run_dir, dst)
    before = (dst / "episodes" / "episode_000000.npz").read_bytes()
    assert tiny_run(dst) == 2
    assert "already" in capsys.readouterr().err
    assert (dst / "episodes" / "episode_000000.npz").read_bytes() == before


def test_same_seed_same_run(tiny_run_dir, tmp_path):
    again = tmp_path / "again"
    assert tiny_run(again) == 0
    for sub in ("episodes", "eval"):
        a, b = EpisodeDataset(tiny_run_dir / sub), EpisodeDataset(again / sub)
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):
            for k in ("obs", "action", "reward", "physics_state"):
                np.testing.assert_array_equal(getattr(x, k), getattr(y, k), err_msg=f"{sub}/{k}")
    ck = lambda root: _strict_json(root / "checkpoints" / "model_r0001.json")["sha256"]  # noqa: E731
    assert ck(again) == ck(tiny_run_dir), "same seed must train bit-identical weights"

    other = tmp_path / "other"
    assert tiny_run(other, "seed=1") == 0
    assert not np.array_equal(EpisodeDataset(other / "episodes")[0].obs, EpisodeDataset(tiny_run_dir / "episodes")[0].obs)


def test_subcommands_on_a_run_dir(tiny_run_dir, tmp_path, capsys):
    root = tmp_path / "run"
    shutil.copytree(tiny_run_dir, root)

    # collect: appends episodes (random, then with the learned planner) after the stored ones.
    assert main(["collect", str(root), "--episodes", "1", "--no-progress"]) == 0
    assert main(["collect", str(root), "--episodes", "1", "--policy", "learned", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "episode 2: return" in out and "episode 3: return" in out
    data = EpisodeDataset(root / "episodes")
    assert len(data) == 4
    _check_episode(data[2], "train", "random")
    _check_episode(data[3], "train", "learned")

    # train: a new round on all four episodes, and latest.json moves to it.
    assert main(["train", str(root), "--no-progress"]) == 0
    assert "trained round 2" in capsys.readouterr().out
    assert _strict_json(root / "checkpoints" / "latest.json")["checkpoint"] == "model_r0002.json"
    _, meta = load_checkpoint(root / "checkpoints" / "model_r0002.json")
    assert meta["transitions"] == 4 * EPISODE_STEPS

    # eval with each planner: one more evaluation episode each, recorded with the planner's name.
    for planner in ("random", "learned", "oracle"):
        assert main(["eval", str(root), "--planner", planner, "--episodes", "1", "--no-progress"]) == 0
        said = " (model of round 2)" if planner == "learned" else ""  # which model planned (probe 29)
        assert f"{planner} planner on cartpole-swingup{said}: return" in capsys.readouterr().out
    evals = EpisodeDataset(root / "eval")
    assert [e.meta["policy"] for e in evals] == ["learned", "random", "learned", "oracle"]
    for e in evals:
        _check_episode(e, "eval", e.meta["policy"])
    # The oracle plans with the true simulator: it should beat random actions on swing-up.
    assert evals[3].total_return > evals[1].total_return

    # Unknown run directories are a clear error, not a traceback.
    assert main(["train", str(tmp_path / "nowhere"), "--no-progress"]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_collect_creates_a_new_run_dir(tmp_path, capsys):
    root = tmp_path / "fresh"
    args = [a for a in TINY_RUN_ARGS]
    assert main(["collect", str(root), *args, "--episodes", "2", "--no-progress"]) == 0
    cfg = cfgmod.load(root / "config.toml")
    assert cfg.run_dir == str(root) and cfg.env.max_env_steps == 200 and cfg.model.hidden == 32
    data = EpisodeDataset(root / "episodes")
    assert len(data) == 2
    for ep in data:
        _check_episode(ep, "train", "random")
    assert not np.array_equal(data[0].obs, data[1].obs), "episodes must use distinct seeds"
    # No model yet: the learned planner and what-if say so.
    assert main(["eval", str(root), "--planner", "learned", "--episodes", "1", "--no-progress"]) == 2
    assert "robot-wm train" in capsys.readouterr().err
    # a learned collect into a new folder is refused before the folder is made (ninth probe: it was made, then
    # refused, and the half-made run refused every later command)
    assert main(["collect", str(tmp_path / "new"), *args, "--policy", "learned", "--no-progress"]) == 2
    assert "needs a trained model" in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_run_from_launch_file(tmp_path):
    launch = Path(__file__).resolve().parents[1] / "launch" / "cartpole-swingup.toml"
    if not launch.exists():
        pytest.skip("no cartpole launch file")
    root = tmp_path / "launched"
    assert main(["run", str(launch), f"run_dir={root}", *TINY_RUN_ARGS, "--no-progress"]) == 0
    saved = cfgmod.load(root / "config.toml")
    assert saved == cfgmod.apply_overrides(cfgmod.load(launch), [f"run_dir={root}", *TINY_RUN_ARGS])
    assert _strict_json(root / "summary.json")["env_steps"] == 400


def test_run_dir_tilde_is_home_and_the_summary_shows_names_as_text(tmp_path, monkeypatch, capsys):
    """A launch file's run_dir "~/runs/{task}" made a folder named "~" in the working directory; a folder name
    holding ESC sequences or [markup] drove the terminal from the summary table (ninth probe)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = cfgmod.apply_overrides(cfgmod.RunConfig(), ['run_dir="~/runs/{task}"'])
    assert cfg.resolved_run_dir() == tmp_path / "home" / "runs" / "cartpole-swingup"
    from robot_wm.report import print_summary

    summary = {"task": "t", "seed": 0, "eval_return_mean": 1.0, "eval_return_std": 0.0, "eval_returns": [1.0],
               "train_returns": [1.0], "env_steps": 1, "multistep_mse": {}, "plan_hz": 1.0, "wall_s": 1.0}
    print_summary(summary, Path("runs/\x1b[31mred[bold]x"))
    out = capsys.readouterr().out
    assert "\x1b[31m" not in out and "\\x1b[31mred[bold]x" in out
