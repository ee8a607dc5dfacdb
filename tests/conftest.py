"""Shared fixtures: headless rendering, single-threaded torch, a tiny synthetic world, a tiny run."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest
import torch

from robot_wm.config import ModelConfig
from robot_wm.data.dataset import EpisodeDataset
from robot_wm.data.episode import Episode

torch.set_num_threads(1)

# The synthetic 1-D system whose answers are known in closed form:
#   next_state = state + GAIN * action,   reward = -(state + action)^2,   action in [-1, 1].
GAIN = 0.1


def true_step(s: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, a = np.asarray(s, dtype=np.float64), np.asarray(a, dtype=np.float64)
    return s + GAIN * a, -((s + a) ** 2).sum(-1)


def true_return(s0: float, actions: np.ndarray) -> float:
    s, total = np.array([s0], dtype=np.float64), 0.0
    for a in np.asarray(actions, dtype=np.float64).reshape(-1, 1):
        s, r = true_step(s, a)
        total += float(r)
    return total


def synthetic_episode(rng: np.random.Generator, steps: int) -> Episode:
    obs = [rng.uniform(-1.0, 1.0, size=1)]
    actions = rng.uniform(-1.0, 1.0, size=(steps, 1))
    rewards = []
    for a in actions:
        nxt, r = true_step(obs[-1], a)
        obs.append(nxt)
        rewards.append(float(r))
    obs = np.array(obs)
    return Episode(obs, actions, np.array(rewards), obs.astype(np.float64).copy(),
                   {"task": "synthetic", "env_steps": steps})


def synthetic_dataset(root, episodes: int = 40, steps: int = 25, seed: int = 0) -> EpisodeDataset:
    rng = np.random.default_rng(seed)
    data = EpisodeDataset(root, create=True)
    for _ in range(episodes):
        data.append(synthetic_episode(rng, steps))
    return data


SMALL_MODEL = ModelConfig(ensemble_size=3, elites=2, hidden=32, layers=2, lr=3e-3, batch_size=128,
                          max_epochs=60, patience=60, val_fraction=0.2)


@pytest.fixture(scope="session")
def trained_synthetic(tmp_path_factory):
    """(model, report, dataset) of a small ensemble trained on the synthetic system (shared; do not mutate)."""
    from robot_wm.train import new_model, train_model

    data = synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "episodes")
    torch.manual_seed(0)
    model = new_model(1, 1, np.array([-1.0]), np.array([1.0]), SMALL_MODEL)
    report = train_model(model, data, SMALL_MODEL, seed=0, progress=False)
    return model, report, data


TINY_RUN_ARGS = [
    "env.task=cartpole-swingup", "env.max_env_steps=200", "env_steps=400", "seed_episodes=1",
    "eval_episodes=1", "planner.samples=32", "planner.horizon=5", "planner.iterations=2", "planner.elites=4",
    "planner.keep_elites=1", "model.hidden=32", "model.layers=2", "model.max_epochs=5",
    "model.val_fraction=0.4", "value.hidden=32", "value.batch_size=64", "threads=1",
]


def tiny_run(run_dir, *extra: str) -> int:
    from robot_wm.cli import main

    return main(["run", f"run_dir={run_dir}", *TINY_RUN_ARGS, *extra, "--no-progress"])


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory):
    """A finished tiny end-to-end run on cartpole-swingup (shared; copy it before changing anything)."""
    root = tmp_path_factory.mktemp("tiny") / "run"
    assert tiny_run(root) == 0
    torch.set_num_threads(1)
    return root


def one_buffer_robot(task: str = "cartpole-swingup"):
    """A ``SimRobot`` whose driver keeps its physics state in one buffer, refilled in place (as many drivers do), reset
    to episode seed 0."""
    from robot_wm.config import EnvConfig
    from robot_wm.runtime import SimRobot
    from sim.registry import make_env

    class OneBuffer(SimRobot):
        buf = None

        def physics_state(self):
            s = self.env.get_state()
            self.buf = s if self.buf is None else self.buf
            self.buf[...] = s
            return self.buf

    robot = OneBuffer(make_env(EnvConfig(task=task, max_env_steps=400)))
    robot.reset(0)
    return robot


def record_one_buffer_robot(folder: Path, steps: int):
    """``steps`` full-force steps of a ``one_buffer_robot`` through a real ``DeploymentRecorder`` into ``folder``:
    (the robot, the physics states the episode read back holds)."""
    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.runtime.record import DeploymentRecorder

    robot = one_buffer_robot()
    rec = DeploymentRecorder(folder, task="cartpole-swingup", planner="p.onnx", action_repeat=8, planner_delay=0)
    rec.begin(robot, seed=0)
    for _ in range(steps):
        robot.send_action(np.array([1.0]))
        rec.step(robot, np.array([1.0]), 0.002, None)
    rec.end()
    return robot, EpisodeDataset(folder)[0].physics_state


def write_lying_header_episode(real: Path, dst: Path, member: str = "obs.npy", rows: int = 10**10) -> None:
    """``dst``: the episode ``real`` with its observations' own .npy header declaring ``rows`` rows (10**10: 186 GiB)
    over the same few bytes, stored as ``member`` (``obs``: without the extension np.load reads it all the same);
    the zip directory declares the true, small sizes."""
    import io
    import zipfile

    with zipfile.ZipFile(real) as zin:
        members = {i.filename: zin.read(i.filename) for i in zin.infolist()}
    arr = np.load(io.BytesIO(members.pop("obs.npy")))
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(arr.dtype),
                                               "fortran_order": False, "shape": (rows, arr.shape[1])})
    members[member] = buf.getvalue() + arr.tobytes()
    with zipfile.ZipFile(dst, "w") as zout:
        for name, blob in members.items():
            zout.writestr(name, blob)


def write_zip_bomb_episode(real: Path, dst: Path, inflated_bytes: int) -> None:
    """``dst``: the episode ``real`` with its observations replaced by zeros that inflate to more than
    ``inflated_bytes`` (an obs.npy header declaring that many float32 rows x 3) but deflate to ~1/1000."""
    import zipfile

    rows = (inflated_bytes + 2**27) // 12
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 3), np.float32)) | {"shape": (rows, 3)}
    with zipfile.ZipFile(real) as src, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name in src.namelist():
            if name != "obs.npy":
                zf.writestr(name, src.read(name))
        with zf.open("obs.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            chunk = bytes(2**24)
            for _ in range(rows * 12 // len(chunk) + 1):
                f.write(chunk)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups (--dist loadgroup, pyproject.toml)
def pytest_collection_modifyitems(items):
    """Under pytest-xdist a module's tests stay in one test process, in their order (each module its own group, unless
    it names one): some tests take a module fixture as an earlier test left it (test_finetune's run_and_data is
    fine-tuned by its first test; the normaliser test fails alone, session 28)."""
    for item in items:
        if next(item.iter_markers("xdist_group"), None) is None:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
