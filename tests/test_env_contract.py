"""The environment contract every task honours (in the spirit of dm_control's own env tests), plus
divergence handling. Real MuJoCo throughout."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robot_wm.config import EnvConfig
from sim.collect import run_episode
from sim.mjcf import MJCFEnv
from sim.registry import LISTED_TASKS, make_env

ROOT = Path(__file__).resolve().parents[1]
TASKS = (*LISTED_TASKS, "arm-reach")
STEPS = 30  # control steps per contract episode


def _env(task: str, control_steps: int = STEPS, action_repeat: int = 2):
    probe = make_env(EnvConfig(task=task, action_repeat=action_repeat))
    per = probe.env_steps_per_control_step
    return make_env(EnvConfig(task=task, action_repeat=action_repeat, max_env_steps=control_steps * per))


def _replay(env, action, beyond=None):
    """Step ``action`` from the current state, then again (``beyond`` if given) after set_state.

    Returns (first, after set_state only, after set_state + restored solver warm start). ``STATE_SPEC``
    (mjSTATE_FULLPHYSICS) leaves out ``qacc_warmstart``: with constraints active (contacts, limits) the
    solver then starts from another guess, so only the warm-started replay is bit-exact; the plain one
    agrees within the solver tolerance."""
    state, warm = env.get_state(), env.data.qacc_warmstart.copy()
    first = env.step(action)
    replays = []
    for restore_warm in (False, True):
        env.set_state(state)
        np.testing.assert_array_equal(env.get_state(), state)
        if restore_warm:
            env.data.qacc_warmstart[:] = warm
        replays.append(env.step(action if beyond is None else beyond))
    return first, *replays


def _assert_same_step(first, plain, warm, what: str) -> None:
    np.testing.assert_array_equal(first.observation, warm.observation, err_msg=what)
    assert first.reward == warm.reward, what
    np.testing.assert_allclose(first.observation, plain.observation, rtol=0, atol=1e-9, err_msg=what)
    assert abs(first.reward - plain.reward) <= 1e-9, what


def _rollout(env, seed: int, actions: np.ndarray) -> list[np.ndarray]:
    obs = [env.reset(seed)]
    for a in actions:
        obs.append(env.step(a).observation)
    return obs


@pytest.mark.parametrize("task", TASKS)
def test_env_contract(task):
    env = _env(task)
    assert env.max_control_steps == STEPS
    osp, asp = env.observation_spec, env.action_spec

    # Specs: a non-empty float vector observation; finite, non-degenerate action bounds.
    assert len(osp.shape) == 1 and osp.dim > 0
    assert len(asp.shape) == 1 and asp.dim > 0
    assert asp.low.shape == asp.high.shape == asp.shape
    assert np.all(np.isfinite(asp.low)) and np.all(np.isfinite(asp.high))
    assert np.all(asp.low < asp.high)

    # reset() returns a finite observation of the spec's shape.
    obs0 = env.reset(0)
    assert obs0.shape == osp.shape and np.all(np.isfinite(obs0))

    # Random actions for a whole (short) episode: no divergence, finite everything, truncation at the end.
    rng = np.random.default_rng(123)
    actions = rng.uniform(asp.low, asp.high, size=(STEPS, asp.dim))
    obs = [obs0]
    for t, a in enumerate(actions):
        res = env.step(a)
        assert not res.diverged, f"{task} diverged at step {t} under random actions"
        assert res.observation.shape == osp.shape and np.all(np.isfinite(res.observation))
        assert np.isfinite(res.reward)
        assert not res.terminated
        assert res.truncated == (t == STEPS - 1), f"truncated={res.truncated} at step {t} of {STEPS}"
        obs.append(res.observation)
    assert res.done

    # Determinism: same seed and actions -> identical observations; another seed starts elsewhere.
    again = _rollout(env, 0, actions)
    for t, (x, y) in enumerate(zip(obs, again)):
        np.testing.assert_array_equal(x, y, err_msg=f"{task}: observation {t} differs between identical runs")
    other = env.reset(1)
    assert not np.array_equal(other, obs0), f"{task}: seeds 0 and 1 give the same initial observation"

    # get_state/set_state round trip reproduces the next step exactly (mid-episode).
    env.reset(2)
    for a in actions[:5]:
        env.step(a)
    _assert_same_step(*_replay(env, actions[5]), f"{task}: set_state round trip changed the next step")

    # The observation of a saved state is the observation the env returned in it (the oracle's value input).
    mid = env.step(actions[6]).observation
    np.testing.assert_allclose(env.observation_of_state(env.get_state()), mid, rtol=0, atol=1e-9,
                               err_msg=f"{task}: observation_of_state differs from the step's observation")

    # Out-of-bounds actions are clamped: they act exactly like the bound itself.
    for bound, beyond in ((asp.high, asp.high + 10.0), (asp.low, asp.low - 10.0)):
        _assert_same_step(*_replay(env, bound, beyond), f"{task}: out-of-bounds action not clamped to the bound")

    # ... and the action matters at all (so the comparison above is not vacuous).
    state = env.get_state()
    up = env.step(asp.high).observation
    env.set_state(state)
    down = env.step(asp.low).observation
    assert not np.allclose(up, down, rtol=0, atol=1e-12), f"{task}: the action has no effect"

    # NaN and wrong-shape actions are rejected with an error naming the value.
    bad = np.zeros(asp.shape)
    bad[0] = np.nan
    with pytest.raises(ValueError, match="nan"):
        env.step(bad)
    with pytest.raises(ValueError, match=r"\(%d,\)" % (asp.dim + 1)):
        env.step(np.zeros(asp.dim + 1))


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError) as err:
        make_env(EnvConfig(task="no-such-task"))
    msg = str(err.value)
    assert "no-such-task" in msg
    for name in (*TASKS, "mjcf"):
        assert name in msg


def test_step_before_reset_is_an_error():
    env = _env("pendulum-swingup")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(env.action_spec.shape))


def test_misuse_of_an_env_is_named(tmp_path):
    """Probe 15: stepping past the time limit was accepted; a NaN or complex physics state was taken; reset(1.5)
    and render(100000, 1) gave numpy's and MuJoCo's own errors."""
    env = _slider(tmp_path, "1")
    env.reset(0)
    for _ in range(env.max_control_steps):
        res = env.step(np.zeros(1))
    assert res.truncated
    with pytest.raises(RuntimeError, match=f"ended at its time limit \\({env.max_control_steps} control steps\\)"):
        env.step(np.zeros(1))
    env.reset(1)
    state = env.get_state()
    with pytest.raises(ValueError, match="physics state holds 1 non-finite"):
        env.set_state(np.where(np.arange(state.size) == 1, np.nan, state))
    with pytest.raises(ValueError, match="physics state is complex"):
        env.set_state(state + 1j)
    np.testing.assert_array_equal(env.get_state(), state)  # untouched
    for seed in (1.5, "3", True, -1, 2**32):
        with pytest.raises(ValueError, match="episode seed="):
            env.reset(seed)
    for h, w in ((100000, 1), (-5, 10), (2.5, 10)):
        with pytest.raises(ValueError, match="render (height|width)="):
            env.render(h, w)
    assert env.render(8, 12).shape == (8, 12, 3)


# --- divergence ---------------------------------------------------------------------------------

SLIDER_XML = """
<mujoco>
  <option timestep="0.01"/>
  <worldbody>
    <body name="block">
      <joint name="x" type="slide" axis="1 0 0"/>
      <geom type="sphere" size="0.1" mass="1"/>
    </body>
  </worldbody>
  <actuator>
    <motor joint="x" gear="{gear}" ctrlrange="-1 1" ctrllimited="true"/>
  </actuator>
</mujoco>
"""


def _slider(tmp_path, gear: str) -> MJCFEnv:
    xml = tmp_path / "slider.xml"
    xml.write_text(SLIDER_XML.format(gear=gear))
    return MJCFEnv(xml, reward=lambda m, d: -float(d.qpos[0] ** 2), action_repeat=2, max_env_steps=40)


class _PushAfter:
    """Zero force for ``calm`` steps, then full force (which the huge gear turns into a blow-up)."""

    name = "push-after"

    def __init__(self, calm: int, dim: int = 1):
        self.calm, self.dim, self.t = calm, dim, 0

    def reset(self) -> None:
        self.t = 0

    def act(self, obs):
        self.t += 1
        return np.full(self.dim, 0.0 if self.t <= self.calm else 1.0)


def test_step_reports_divergence_and_keeps_last_valid_observation(tmp_path):
    env = _slider(tmp_path, "1e20")
    env.reset(0)
    ok = env.step(np.zeros(1))
    assert not ok.diverged
    res = env.step(np.ones(1))
    assert res.diverged and res.done and res.reward == 0.0
    np.testing.assert_array_equal(res.observation, ok.observation)
    with pytest.raises(RuntimeError, match="the episode ended when the physics diverged at control step 1; call "
                                           "reset"):
        env.step(np.zeros(1))  # the episode is over until the next reset ("before reset()", probe 15)
    # A sane gear on the same model never diverges over a whole episode.
    sane = _slider(tmp_path, "1")
    ep = run_episode(sane, _PushAfter(3), seed=0)
    assert ep is not None and not ep.meta["diverged"] and len(ep) == sane.max_control_steps


def test_run_episode_drops_diverged_step_mjcf(tmp_path):
    env = _slider(tmp_path, "1e20")
    ep = run_episode(env, _PushAfter(4), seed=0)
    assert ep.meta["diverged"] is True
    assert len(ep) == 4 and ep.meta["control_steps"] == 4 and ep.meta["env_steps"] == 8
    assert np.all(ep.action == 0.0), "the action of the diverged step must not be stored"
    assert np.all(np.isfinite(ep.obs)) and np.all(np.abs(ep.obs) < 1.0)
    assert np.all(np.isfinite(ep.physics_state))
    # Diverging on the very first step leaves nothing to store.
    assert run_episode(env, _PushAfter(0), seed=0) is None


class _Saboteur:
    """Random actions, but before step ``at`` it sets every joint velocity to 1e30 in the live physics."""

    name = "saboteur"

    def __init__(self, env, at: int):
        self.env, self.at, self.t = env, at, 0
        self.rng = np.random.default_rng(0)

    def reset(self) -> None:
        self.t = 0

    def act(self, obs):
        if self.t == self.at:
            self.env.data.qvel[:] = 1e30
        self.t += 1
        return self.rng.uniform(self.env.action_spec.low, self.env.action_spec.high)


@pytest.mark.parametrize("task", ["cartpole-swingup", "arm-reach"])
def test_run_episode_drops_diverged_step_qvel(task):
    env = _env(task)
    ep = run_episode(env, _Saboteur(env, at=5), seed=0)
    assert ep.meta["diverged"] is True
    assert len(ep) == 5 and len(ep.obs) == 6
    assert np.all(np.isfinite(ep.obs)) and np.all(np.abs(ep.obs) < 1e6)
    assert np.all(np.abs(ep.physics_state) < 1e6)
    # The env recovers on the next reset.
    clean = run_episode(env, _PushAfter(10**6, env.action_spec.dim), seed=0)
    assert not clean.meta["diverged"] and len(clean) == env.max_control_steps


@pytest.mark.parametrize("reward,message", [
    (lambda m, d: "high", "returned 'high'; expected one finite number"),
    (lambda m, d: None, "returned None; expected one finite number"),
    (lambda m, d: float("nan"), "returned nan; expected one finite number"),
    (lambda m, d: 1e308, "returned 1e+308; expected one finite number within +-1e+30"),  # float32 overflow (ninth probe)
    (lambda m, d: np.ones(3), "returned array([1., 1., 1.]); expected one finite number"),
])
def test_bad_reward_function_is_named_before_any_step(tmp_path, reward, message):
    xml = tmp_path / "slider.xml"
    xml.write_text(SLIDER_XML.format(gear="1"))
    with pytest.raises(ValueError, match=r"reward function test_env_contract:.*<lambda> " + re.escape(message)):
        MJCFEnv(xml, reward=reward, max_env_steps=40)


def test_observe_function_going_bad_mid_episode_is_named(tmp_path):
    """Fine at first, then NaN (or another size) after a few steps: an error naming it, not a stored NaN."""
    xml = tmp_path / "slider.xml"
    xml.write_text(SLIDER_XML.format(gear="1"))
    for bad, message in ((lambda d: np.array([np.nan, d.qvel[0]]), r"non-finite values at indices \[0\]"),
                         (lambda d: np.zeros(5), "5 values, 2 before")):
        def observe(m, d, bad=bad):
            return bad(d) if d.time > 0.05 else np.concatenate([d.qpos, d.qvel])

        env = MJCFEnv(xml, reward=lambda m, d: 0.0, observe=observe, max_env_steps=400)
        env.reset(0)
        with pytest.raises(ValueError, match=r"observe function test_env_contract:.*observe returned " + message):
            for _ in range(200):
                env.step(np.zeros(1))


@pytest.mark.parametrize("fields, message", [
    (["env.reward=my_task:reward"], "reward function my_task:reward returned 'a lot'"),
    # a reset leaving NaN was found after the run directory was made, which --resume could not fix (probe 28)
    (["env.reward=my_task:zero", "env.reset=my_task:reset_nan"], "reset function my_task:reset_nan left non-finite"),
    # sys.exit(0) in the user's function ended the run with exit 0 and no word (probe 28)
    (["env.reward=my_task:leave"], "reward function my_task:leave raised SystemExit")])
def test_bad_reward_or_reset_function_from_the_command_line_is_a_message(tmp_path, fields, message):
    """A user's task module in a real process: ``robot-wm run`` names the function and writes nothing."""
    (tmp_path / "my_task.py").write_text("def reward(model, data):\n    return 'a lot'\n\n"
                                         "def zero(model, data):\n    return 0.0\n\n"
                                         "def reset_nan(model, data, rng):\n    data.qpos[:] = float('nan')\n\n"
                                         "def leave(model, data):\n    import sys\n    sys.exit(0)\n")
    xml = tmp_path / "slider.xml"
    xml.write_text(SLIDER_XML.format(gear="1"))
    r = subprocess.run([sys.executable, "-m", "robot_wm.cli", "run", f"run_dir={tmp_path / 'run'}", "env.task=mjcf",
                        f"env.mjcf={xml}", *fields, "env_steps=200", "--no-progress"],
                       capture_output=True, text=True, timeout=300, check=False,
                       env={**os.environ, "MUJOCO_GL": "egl", "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "run").exists()


def test_a_robot_whose_physics_never_moves_or_that_observes_nothing_is_refused(tmp_path):
    """Both ran to exit 0 before (probe of 2026-11-26): timestep 0 trained on a frozen robot, an empty
    observation trained a model and exported a planner no runtime could load."""
    xml = tmp_path / "slider.xml"
    xml.write_text(SLIDER_XML.format(gear="1").replace('timestep="0.01"', 'timestep="0"'))
    with pytest.raises(ValueError, match=r'<option timestep="0">: expected a positive physics timestep'):
        MJCFEnv(xml, reward=lambda m, d: 0.0, max_env_steps=40)
    # probe 13: timestep 1000 trained and exported (8000 s per action), then deploy refused its own file
    xml.write_text(SLIDER_XML.format(gear="1").replace('timestep="0.01"', 'timestep="1000"'))
    with pytest.raises(ValueError, match=r"= 8000 s per agent action; expected at most 60 s"):
        MJCFEnv(xml, reward=lambda m, d: 0.0, max_env_steps=40000, action_repeat=8)
    xml.write_text(SLIDER_XML.format(gear="1"))
    with pytest.raises(ValueError, match="the observation is empty"):
        MJCFEnv(xml, reward=lambda m, d: 0.0, observe=lambda m, d: np.zeros(0), max_env_steps=40)


def test_a_malformed_mjcf_and_a_raising_reward_function_are_named(tmp_path):
    xml = tmp_path / "broken.xml"
    xml.write_text("<mujoco><worldbody>")
    with pytest.raises(ValueError, match=r"MJCF file '.*broken.xml' does not load: XML parse error"):
        MJCFEnv(xml, reward=lambda m, d: 0.0, max_env_steps=40)
    xml.write_text(SLIDER_XML.format(gear="1"))

    def reward(m, d):
        raise KeyError("boom")
    with pytest.raises(ValueError, match=r"reward function test_env_contract:.*reward raised KeyError: 'boom'"):
        MJCFEnv(xml, reward=reward, max_env_steps=40)


@pytest.mark.parametrize("field, path, needle", [
    ("reward", "os:system", "is in Python's standard library: expected your own function reward(model, data)"),
    ("reward", "os.path:join", "in Python's standard library"),
    ("reset", "my_task:two_args", "cannot be called with 3 arguments"),
    ("reward", "my_task:three_args", "cannot be called with 2 arguments"),
])
def test_task_functions_that_are_not_the_users_own_or_take_other_arguments_are_refused(tmp_path, monkeypatch,
                                                                                       field, path, needle):
    """``env.reward=os:system`` was imported and called with (model, data) (probe of 2026-11-26): the
    standard library is refused and the signature is checked before any call."""
    from robot_wm.config import EnvConfig
    from sim.registry import make_env

    (tmp_path / "my_task.py").write_text("def two_args(model, data):\n    pass\n\n"
                                         "def three_args(model, data, rng):\n    return 0.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    xml = tmp_path / "slider.xml"
    xml.write_text(SLIDER_XML.format(gear="1"))
    fields = {"reward": "my_task:three_args" if field != "reward" else path, field: path}
    if field == "reset":
        fields["reward"] = "my_task:two_args"
    with pytest.raises(ValueError, match=re.escape(f"env.{field} {path!r}") + ".*" + re.escape(needle)):
        make_env(EnvConfig(task="mjcf", mjcf=str(xml), **fields))


def test_a_reset_that_leaves_nan_or_an_observation_of_a_billion_numbers_is_named(tmp_path):
    """The NaN was blamed on the observe function; the huge observation was a MemoryError (probe 2026-11-26)."""
    xml = tmp_path / "slider.xml"
    xml.write_text(SLIDER_XML.format(gear="1"))

    def reset(m, d, rng):
        d.qpos[:] = np.nan
    with pytest.raises(ValueError, match=r"reset function test_env_contract:.*reset left non-finite values"):
        MJCFEnv(xml, reward=lambda m, d: 0.0, reset=reset, max_env_steps=40)  # tried once before any work

    def nan_later(m, d, rng):  # one that goes wrong on a later episode is named there
        d.qpos[:] = np.nan if rng.uniform() < 0.5 else 0.0
    env = MJCFEnv(xml, reward=lambda m, d: 0.0, reset=nan_later, max_env_steps=40)
    with pytest.raises(ValueError, match=r"reset function test_env_contract:.*nan_later left non-finite values"):
        for seed in range(50):
            env.reset(seed)

    def slow_physics(m, d, rng):  # probe 13: trained on 4 s control steps, exported as 0.08 s
        m.opt.timestep = 0.5
    with pytest.raises(ValueError, match=r"slow_physics changed the physics timestep from 0.01 to 0.5 s"):
        MJCFEnv(xml, reward=lambda m, d: 0.0, reset=slow_physics, max_env_steps=40)

    def slow_reward(m, d):  # probe 29: the guard was the reset's alone
        m.opt.timestep = 1e6
        return 0.0
    with pytest.raises(ValueError, match=r"reward function .*slow_reward changed the physics timestep from 0.01 to"):
        MJCFEnv(xml, reward=slow_reward, max_env_steps=40)

    def slow_observe(m, d):
        m.opt.timestep = 1e6
        return d.qpos.copy()
    with pytest.raises(ValueError, match=r"observe function .*slow_observe changed the physics timestep"):
        MJCFEnv(xml, reward=lambda m, d: 0.0, observe=slow_observe, max_env_steps=40)
    with pytest.raises(ValueError, match=r"reward function .* returned 1000000000000000000000.*; expected one finite"):
        MJCFEnv(xml, reward=lambda m, d: 10**400, max_env_steps=40)  # OverflowError traceback (probe 29)
    with pytest.raises(ValueError, match=r"returned 1000000000 values; at most 100000"):
        MJCFEnv(xml, reward=lambda m, d: 0.0, observe=lambda m, d: np.broadcast_to(np.uint8(0), (10**9,)),
                max_env_steps=40)
    with pytest.raises(FileNotFoundError, match=r"MJCF file '.*' is not a file"):
        MJCFEnv(tmp_path, reward=lambda m, d: 0.0)


def test_control_bounds_mujoco_would_zero_are_refused(tmp_path):
    """ctrlrange ±1e30: MuJoCo zeroes a control above 1e10, so the stored actions were not what the robot did
    (probe of 2026-11-26)."""
    xml = tmp_path / "slider.xml"
    xml.write_text(SLIDER_XML.format(gear="1").replace('ctrlrange="-1 1"', 'ctrlrange="-1e30 1e30"'))
    with pytest.raises(ValueError, match=r"expected bounds within ±1e\+09"):
        MJCFEnv(xml, reward=lambda m, d: 0.0, max_env_steps=40)
    with pytest.raises(FileNotFoundError, match=r"relative path is read from the working directory"):
        MJCFEnv("no/such/robot.xml", reward=lambda m, d: 0.0)


def test_a_run_refuses_another_robot_found_under_the_same_names(tmp_path):
    """env.mjcf and env.reward are found from the working directory: `eval RUN` run from another folder with
    another robot.xml (gear reversed) and another reward module appended that robot's episodes to the run
    (ninth probe). The run records its robot when created and refuses another."""
    def robot(folder, gear: str, sign: str):
        folder.mkdir()
        (folder / "slider.xml").write_text(SLIDER_XML.format(gear=gear))
        (folder / "helper.py").write_text("SCALE = 1.0\n")
        (folder / "my_task.py").write_text(f"from helper import SCALE\n\n\ndef reward(model, data):\n"
                                           f"    return {sign}SCALE * float(data.qpos[0])\n")
        return folder

    a, b, run = robot(tmp_path / "a", "1", ""), robot(tmp_path / "b", "-1", "-"), tmp_path / "run"

    def cli(cwd, *args):
        return subprocess.run([sys.executable, "-m", "robot_wm.cli", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=300, check=False,
                              env={**os.environ, "MUJOCO_GL": "egl", "PYTHONPATH": f"{cwd}:{ROOT}"})

    r = cli(a, "run", f"run_dir={run}", "env.task=mjcf", "env.mjcf=slider.xml", "env.reward=my_task:reward",
            "env_steps=80", "env.max_env_steps=40", "seed_episodes=1", "eval_episodes=1", "model.max_epochs=2",
            "planner.samples=16", "planner.horizon=3", "planner.elites=4", "planner.keep_elites=1", "--no-progress")
    assert r.returncode == 0, r.stderr
    episodes = sorted(p.name for p in (run / "eval").glob("*.npz"))
    r = cli(b, "eval", str(run), "--episodes", "1", "--no-progress")
    assert r.returncode == 2 and "the robot is not the one run" in r.stderr, r.stderr
    assert "env.mjcf 'slider.xml' compiles to another model" in r.stderr
    assert "env.reward 'my_task:reward' is defined in another or a changed file" in r.stderr
    assert sorted(p.name for p in (run / "eval").glob("*.npz")) == episodes  # nothing appended
    assert cli(a, "eval", str(run), "--episodes", "1", "--no-progress").returncode == 0  # its own robot: fine
    # A module the reward imports from beside it, changed: another reward under the same file (tenth probe).
    (a / "helper.py").write_text("SCALE = -1000.0\n")
    r = cli(a, "collect", str(run), "--episodes", "1", "--no-progress")
    assert r.returncode == 2 and "a module env.reward 'my_task:reward' imports from beside it differs" in r.stderr, \
        r.stderr
    assert len(list((run / "episodes").glob("*.npz"))) == 2  # nothing appended


def test_a_reward_module_in_the_working_directory_is_found_without_it_on_the_path(tmp_path, monkeypatch):
    """The installed `robot-wm` command has no working directory on sys.path (`python -m` has): a reward module
    beside the robot was 'No module named ...' (tenth probe)."""
    from sim.mjcf import import_callable

    (tmp_path / "cwd_reward_mod.py").write_text("def reward(model, data):\n    return 1.0\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    fn = import_callable("cwd_reward_mod:reward", "env.reward", "reward(model, data)")
    assert fn(None, None) == 1.0 and sys.path[-1] == str(tmp_path)


def test_local_imports_follow_the_users_modules_only(tmp_path, monkeypatch):
    """The robot fingerprint's helper modules: absolute and relative imports beside the function's file,
    transitively; the standard library and installed packages are not the user's."""
    from sim.mjcf import _imports_sha256, _local_imports

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "task.py").write_text("import os\nimport numpy as np\nfrom .util import K\n\n\n"
                                 "def reward(m, d):\n    return K\n")
    (pkg / "util.py").write_text("from shared import BASE\nK = BASE\n")
    (tmp_path / "shared.py").write_text("BASE = 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    fn = importlib.import_module("pkg.task").reward
    assert sorted(str(p.relative_to(tmp_path)) for p in _local_imports(fn)) == ["pkg/__init__.py", "pkg/util.py",
                                                                                "shared.py"]
    before = _imports_sha256(fn)
    (tmp_path / "shared.py").write_text("BASE = -1000.0\n")
    assert _imports_sha256(fn) != before
    import json

    assert _local_imports(np.sum) == [] and _imports_sha256(json.dumps) is None  # installed and standard: none


def test_local_imports_found_on_the_python_path_or_by_a_literal_import_module(tmp_path, monkeypatch):
    """A helper on PYTHONPATH outside the reward's folder, and one loaded with importlib.import_module("name"),
    changed the reward under an unchanged fingerprint (probe 11)."""
    from sim.mjcf import _imports_sha256, _local_imports

    (tmp_path / "robot").mkdir()
    (tmp_path / "libs").mkdir()
    (tmp_path / "robot" / "task_p11.py").write_text(
        "import importlib\nimport json\nfrom pathhelper_p11 import SCALE\n\n\n"
        "def reward(m, d):\n    return SCALE * importlib.import_module('dynhelper_p11').K\n")
    (tmp_path / "libs" / "pathhelper_p11.py").write_text("SCALE = 1.0\n")
    (tmp_path / "libs" / "dynhelper_p11.py").write_text("K = 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path / "libs"))
    monkeypatch.syspath_prepend(str(tmp_path / "robot"))
    import importlib

    fn = importlib.import_module("task_p11").reward
    assert [p.name for p in _local_imports(fn)] == ["dynhelper_p11.py", "pathhelper_p11.py"]  # json: the stdlib
    before = _imports_sha256(fn)
    (tmp_path / "libs" / "dynhelper_p11.py").write_text("K = -1000.0\n")
    assert _imports_sha256(fn) != before


@pytest.mark.parametrize("cfg", [{"task": "cartpole-swingup"}, "cartpole-swingup", None])
def test_make_env_names_what_it_expects(cfg):
    """A dict, a task name or None was a raw AttributeError (ninth probe)."""
    with pytest.raises(TypeError, match="make_env expects an EnvConfig"):
        make_env(cfg)


@pytest.mark.parametrize("action, needle", [("0.5", "holds <U3 values"), (None, "holds object values"),
                                            ([True], "holds True (bool)")])
def test_run_episode_refuses_an_action_that_is_not_numbers(action, needle):
    """A policy returning the string '0.5' was driven as 0.5; None was reported as "not finite" (tenth probe)."""
    from sim.collect import run_episode

    class Odd:
        name = "odd"

        def reset(self):
            pass

        def act(self, obs):
            return action

    env = make_env(EnvConfig(task="cartpole-swingup", max_env_steps=40))
    with pytest.raises(ValueError, match=rf"the action of policy 'odd' {re.escape(needle)}"):
        run_episode(env, Odd(), seed=0)


def test_sigterm_stops_a_command_while_a_huge_model_compiles(tmp_path):
    """Probe 12: a 200,000-body MJCF compiled for an hour in MuJoCo's C code with Ctrl-C and SIGTERM unanswered
    (Python runs signal handlers in the main thread only). 20,000 bodies compile for over a minute here."""
    bodies = "".join(f'<body pos="{i * 0.01} 0 0"><joint name="j{i}" type="hinge"/><geom size="0.01"/></body>'
                     for i in range(20_000))
    xml = tmp_path / "huge.xml"
    xml.write_text(f'<mujoco><worldbody>{bodies}</worldbody><actuator><motor joint="j0"/></actuator></mujoco>')
    (tmp_path / "huge_task.py").write_text("print('task module imported', flush=True)\n"
                                          "def reward(model, data):\n    return 0.0\n")
    proc = subprocess.Popen([sys.executable, "-m", "robot_wm.cli", "run", f"run_dir={tmp_path / 'run'}",
                             "env.task=mjcf", f"env.mjcf={xml}", "env.reward=huge_task:reward", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "MUJOCO_GL": "egl", "PYTHONPATH": str(tmp_path)})
    seen = [proc.stdout.readline() for _ in range(1)]
    while "task module imported" not in seen[-1] and seen[-1] and len(seen) < 200:  # warnings may come first
        seen.append(proc.stdout.readline())
    assert "task module imported" in seen[-1], seen  # the compile starts right after
    time.sleep(1.0)
    stopped_at = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143 and "terminated (SIGTERM)" in out and "Traceback" not in out, out
    assert time.monotonic() - stopped_at < 15.0, "the stop waited for the compile (over a minute)"


@pytest.mark.parametrize("action, needle", [(np.array(["0.5"]), "holds <U3 values"), ([True], "holds True (bool)"),
                                            ([1 + 2j], "is complex")])
def test_env_step_refuses_an_action_that_is_not_numbers(action, needle):
    """Probe 14: Env.step, used as a library, applied the string '0.5' as 0.5 and True as 1.0."""
    env = make_env(EnvConfig(task="cartpole-swingup", max_env_steps=40))
    env.reset(0)
    with pytest.raises(ValueError, match=rf"cartpole-swingup: the action {re.escape(needle)}"):
        env.step(action)


def test_a_task_module_inside_a_run_folder_is_never_imported(tiny_run_dir, tmp_path, monkeypatch):
    """Probe 28: a received run whose config.toml names env.reward 'task:reward', with a task.py beside it, ran
    that file when a command was started inside the folder. Finding the module runs none of its code."""
    from sim.mjcf import import_callable

    run = shutil.copytree(tiny_run_dir, tmp_path / "run")
    (run / "received_task_mod.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n"
                                              "def reward(model, data):\n    return 1.0\n")
    monkeypatch.setattr(sys, "path", list(sys.path))  # import_callable adds the working directory
    monkeypatch.chdir(run)
    with pytest.raises(ValueError, match=r"env.reward 'received_task_mod:reward' would import .* from inside the run "
                                         r"folder .*run'"):
        import_callable("received_task_mod:reward", "env.reward", "reward(model, data)")
    assert not (tmp_path / "ran").exists() and "received_task_mod" not in sys.modules
    # the same module beside the run, not in it, is the user's own
    shutil.move(run / "received_task_mod.py", tmp_path / "received_task_mod.py")
    monkeypatch.chdir(tmp_path)
    assert import_callable("received_task_mod:reward", "env.reward", "reward(model, data)")(None, None) == 1.0
    del sys.modules["received_task_mod"]


def test_a_start_state_that_diverges_at_once_is_named_not_an_empty_dataset(tmp_path, monkeypatch, capsys):
    """Probe 29: a reset function putting the robot at qpos 1e200 (finite) diverged at every first step, and the run
    ended "no transitions: the dataset is empty", naming neither the divergence nor the reset."""
    from conftest import TINY_RUN_ARGS

    from robot_wm.cli import main

    xml = tmp_path / "slider.xml"
    xml.write_text(SLIDER_XML.format(gear="1"))
    (tmp_path / "far_away_task.py").write_text("def reward(m, d):\n    return 0.0\n\n\n"
                                               "def reset(m, d, rng):\n    d.qpos[:] = 1e200\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rc = main(["run", f"run_dir={tmp_path / 'run'}", *TINY_RUN_ARGS, "env.task=mjcf", f"env.mjcf={xml}",
               "env.reward=far_away_task:reward", "env.reset=far_away_task:reset", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "all 1 collected diverged at their first physics step" in err and "env.reset" in err, err
