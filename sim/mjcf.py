"""Bring your own robot: any MJCF file plus Python task functions, behind the ``Env`` interface."""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import logging
import math
import numbers
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import mujoco
import numpy as np

from sim.env import STATE_SPEC, Env, check_episode_seed, physics_diverged
from sim.spec import MAX_CONTROL_PERIOD_S, BoxSpec

RewardFn = Callable[[mujoco.MjModel, mujoco.MjData], float]
ObserveFn = Callable[[mujoco.MjModel, mujoco.MjData], np.ndarray]
ResetFn = Callable[[mujoco.MjModel, mujoco.MjData, np.random.Generator], None]


log = logging.getLogger(__name__)

MAX_CONTROL = 1e9  # largest control bound: MuJoCo ignores (zeroes) controls above 1e10
MAX_OBSERVATION = 100_000  # numbers per observation: far above any robot's state, far below a memory error


def import_callable(path: str, what: str, signature: str) -> Callable:
    """Resolve ``"package.module:function"`` by import (config strings are never evaluated) and check that it
    is a Python function of the user's, callable with the arguments of ``signature`` (e.g.
    ``"reward(model, data)"``). Python's standard library is refused: ``os:system`` is not a reward."""
    module, sep, attr = path.partition(":")
    if not sep or not module or not attr.isidentifier():
        raise ValueError(f"{what} must look like 'package.module:function', got {path!r}")
    expected = f"expected your own function {signature}"
    if module.partition(".")[0] in sys.stdlib_module_names:
        raise ValueError(f"{what} {path!r} is in Python's standard library: {expected}")
    # The working directory, as `python -m robot_wm.cli` and sweep trials have it: the installed `robot-wm`
    # command did not find a reward module beside the robot (tenth probe).
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    _check_not_from_a_run(module, path, what)
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{what} {path!r} cannot be imported: {e}") from e
    if not callable(fn):
        raise ValueError(f"{what} {path!r} is not callable")
    nargs = signature.count(",") + 1
    try:
        inspect.signature(fn).bind(*[None] * nargs)
    except ValueError:  # a builtin without a signature
        raise ValueError(f"{what} {path!r} is not a Python function: {expected}") from None
    except TypeError as e:
        raise ValueError(f"{what} {path!r} cannot be called with {nargs} arguments ({e}): {expected}") from None
    return fn


def _check_not_from_a_run(module: str, path: str, what: str) -> None:
    """Refuse a module that would be imported from inside a run folder: a received run whose config.toml named
    ``env.reward = "task:reward"`` ran the ``task.py`` that came with it when a command was started in the folder
    (probe 28). Finding a top-level module runs none of its code."""
    top = module.partition(".")[0]
    if top in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return  # the import itself says why
    where = spec and (spec.origin if spec.has_location else next(iter(spec.submodule_search_locations or ()), None))
    if not where:
        return
    from robot_wm.run_dir import RunDir

    for folder in Path(where).resolve().parents:
        if RunDir(folder).is_run():
            raise ValueError(f"{what} {path!r} would import {where!r}, from inside the run folder {str(folder)!r}: "
                             "robot-wm runs no code that came with a run's files; keep your task module outside run "
                             "folders (beside your MJCF file, or installed)")


def _model_sha256(model: mujoco.MjModel) -> str:
    """A compiled model's identity: the sha256 of its binary (MJB) form, the same for the same XML and includes."""
    buf = np.empty(mujoco.mj_sizeModel(model), np.uint8)
    mujoco.mj_saveModel(model, None, buf)
    return hashlib.sha256(buf.tobytes()).hexdigest()


def _source_sha256(fn: Callable) -> str | None:
    """The sha256 of the file that defines ``fn`` (its helpers included), or None where Python has none."""
    try:
        return hashlib.sha256(Path(inspect.getsourcefile(fn)).read_bytes()).hexdigest()
    except (TypeError, OSError):
        return None


_OWN_PACKAGES = tuple(Path(__file__).resolve().parents[1] / name for name in ("robot_wm", "sim", "policies"))
"""robot-wm's own code: a user's module importing it is not the user's robot (an upgrade is not another robot)."""


def _installed_paths() -> tuple[Path, ...]:
    """Where the standard library and installed packages live: modules there are versioned software, not the
    user's robot (robot-wm's own packages are excluded by ``_OWN_PACKAGES``)."""
    import site
    import sysconfig

    paths = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths |= set(getattr(site, "getsitepackages", list)())
    return tuple(Path(p).resolve() for p in paths if p)


def _imported_names(tree: ast.AST, package: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Dotted module names a file imports: import statements, and ``importlib.import_module("x")`` or
    ``__import__("x")`` with a literal name (a helper loaded so was missed: probe 11)."""
    names: list[tuple[str, ...]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [tuple(a.name.split(".")) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = tuple((node.module or "").split(".")) if node.module else ()
            if node.level:  # relative: from the importing file's package
                base = package[: len(package) - (node.level - 1)] + base
            names += [base] + [base + (a.name,) for a in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) and \
                isinstance(node.args[0].value, str) and \
                getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__"):
            names.append(tuple(node.args[0].value.split(".")))
    return [n for n in names if n and all(n)]


def _module_files(parts: tuple[str, ...], root: Path) -> list[Path]:
    """Files a dotted module name can be: beside the user's file (under ``root``), else where Python's path finds
    its top-level package (PYTHONPATH: a helper there was missed, probe 11; found without importing it)."""
    beside = [root.joinpath(*parts).with_suffix(".py"),
              *(root.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts) + 1))]
    if any(c.is_file() for c in beside):
        return beside
    import importlib.util

    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:  # a package: its __init__ and the submodules named
        base = Path(next(iter(spec.submodule_search_locations), ""))
        return [base / "__init__.py", base.joinpath(*parts[1:]).with_suffix(".py"),
                *(base.joinpath(*parts[1:i], "__init__.py") for i in range(2, len(parts) + 1))]
    return [Path(spec.origin)] if spec.origin and spec.origin.endswith(".py") else []


def _local_imports(fn: Callable) -> list[Path]:
    """The user's own modules that ``fn``'s file imports, directly or through each other: the ``.py`` files
    found beside it (under the folder its top-level module was imported from) or on Python's path outside the
    standard library and installed packages, read from the source (never from what happens to be imported),
    sorted. A helper module changed from ``SCALE = 1`` to ``-1000`` scored another reward under an unchanged
    fingerprint (tenth probe). Not covered: data files the function reads, and modules whose names it computes."""
    try:
        first = Path(inspect.getsourcefile(fn)).resolve()
    except (TypeError, OSError):
        return []
    depth = len(str(getattr(fn, "__module__", "") or "").split(".")) - (first.name != "__init__.py")
    root = first.parents[depth] if depth < len(first.parents) else first.parent
    installed = _installed_paths()
    seen, todo = {first}, [first]
    while todo:
        path = todo.pop()
        try:
            tree = ast.parse(path.read_bytes())
        except (OSError, SyntaxError, ValueError):
            continue
        package = path.parent.relative_to(root).parts if path.is_relative_to(root) else ()
        for parts in _imported_names(tree, package):  # the module itself, or a package and every package above it
            for cand in _module_files(parts, root):
                if cand.is_file() and (c := cand.resolve()) not in seen and \
                        not any(c.is_relative_to(p) for p in (*_OWN_PACKAGES, *installed)):
                    seen.add(c)
                    todo.append(c)
    return sorted(seen - {first})


def _imports_sha256(fn: Callable) -> str | None:
    """One sha256 over the user's modules ``fn``'s file imports (names and contents), None where there are none."""
    files = _local_imports(fn)
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _name(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


MAX_REWARD = 1e30
"""The largest reward magnitude a user's function may return: stored as float32 (at most 3.4e38), and summed."""


def checked_reward(fn: RewardFn, model: mujoco.MjModel, data: mujoco.MjData) -> float:
    """``fn(model, data)`` as a float; an exception, a non-number or a non-finite result is an error naming ``fn``."""
    timestep = model.opt.timestep
    try:
        r = fn(model, data)
    except (Exception, SystemExit) as e:  # noqa: BLE001 -- the user's function: say whose (sys.exit(0): probe 28)
        raise ValueError(f"reward function {_name(fn)} raised {type(e).__name__}: {e}") from e
    _check_timestep_kept(model, timestep, "reward", fn)
    try:
        if not isinstance(r, numbers.Real | np.ndarray | np.generic):  # asarray(None) would be nan
            raise TypeError
        v = float(np.asarray(r, dtype=np.float64).item())
    except (TypeError, ValueError, OverflowError):  # 10**400: a traceback (probe 29)
        raise ValueError(f"reward function {_name(fn)} returned {r!r:.60}; expected one finite number") from None
    if not (math.isfinite(v) and abs(v) <= MAX_REWARD):  # 1e308 overflowed float32 in the episode file, unnamed
        raise ValueError(f"reward function {_name(fn)} returned {v}; expected one finite number within "
                         f"+-{MAX_REWARD:g} (rewards are stored as float32)")
    return v


def _check_timestep_kept(model: mujoco.MjModel, timestep: float, what: str, fn: Callable) -> None:
    """A user's function that changed the physics timestep (put back, and refused naming it): the episodes were
    stored with a control period the physics did not have (a reset's, probe 13; a reward's or observe's, probe 29)."""
    if model.opt.timestep != timestep:
        new, model.opt.timestep = model.opt.timestep, timestep
        raise ValueError(f"{what} function {_name(fn)} changed the physics timestep from {timestep:g} to {new:g} s: "
                         "the control period is the MJCF's; set it in <option timestep>")


def checked_observation(fn: ObserveFn, model: mujoco.MjModel, data: mujoco.MjData, dim: int | None) -> np.ndarray:
    """``fn(model, data)`` as a flat float64 array of ``dim`` finite values, else an error naming ``fn``."""
    timestep = model.opt.timestep
    try:
        o = fn(model, data)
    except (Exception, SystemExit) as e:  # noqa: BLE001 -- the user's function: say whose (sys.exit(0): probe 28)
        raise ValueError(f"observe function {_name(fn)} raised {type(e).__name__}: {e}") from e
    _check_timestep_kept(model, timestep, "observe", fn)
    if isinstance(o, np.ndarray) and o.size > MAX_OBSERVATION:  # before a float64 copy of it
        raise ValueError(f"observe function {_name(fn)} returned {o.size} values; at most "
                         f"{MAX_OBSERVATION} are expected")
    try:
        obs = np.asarray(o, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"observe function {_name(fn)} returned {type(o).__name__} {o!r:.80}; expected "
                         "an array of numbers") from None
    if dim is not None and obs.size != dim:
        raise ValueError(f"observe function {_name(fn)} returned {obs.size} values, {dim} before")
    if not np.isfinite(obs).all():
        raise ValueError(f"observe function {_name(fn)} returned non-finite values at indices "
                         f"{np.flatnonzero(~np.isfinite(obs))[:8].tolist()}")
    return obs


def compile_mjcf(xml: Path) -> mujoco.MjModel:
    """``MjModel.from_xml_path`` in a worker thread. MuJoCo compiles in C with the GIL released, but Python runs
    signal handlers only in the main thread between bytecodes: compiled there, a huge model (probe 12: 200,000
    bodies, an hour) left Ctrl-C and SIGTERM unanswered. The main thread now waits in short joins, so a stop ends the
    command at once (the worker is a daemon: nothing it holds is written anywhere)."""
    out: dict = {}

    def work() -> None:
        try:
            out["model"] = mujoco.MjModel.from_xml_path(str(xml))
        except BaseException as e:  # handed to the caller as is
            out["error"] = e

    worker = threading.Thread(target=work, name=f"compile {xml.name}", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.05)
    if "error" in out:
        raise out["error"]
    return out["model"]


def default_observe(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    return np.concatenate([data.qpos, data.qvel])


class MJCFEnv(Env):
    def __init__(
        self,
        xml: str | Path,
        reward: RewardFn,
        observe: ObserveFn | None = None,
        reset: ResetFn | None = None,
        action_repeat: int = 1,
        max_env_steps: int = 1000,
        name: str | None = None,
        substeps: int = 1,
    ):
        """One environment step is ``substeps`` MuJoCo physics steps: the robot's control period
        (``substeps`` x the MJCF timestep), like a suite step. An agent action holds for
        ``action_repeat`` environment steps; an episode lasts ``max_env_steps`` of them."""
        xml = Path(xml)
        if not xml.is_file():
            where = "" if xml.is_absolute() else f" (a relative path is read from the working directory {os.getcwd()!r})"
            raise FileNotFoundError(f"MJCF file {str(xml)!r} " + ("is not a file" if xml.exists() else "does not exist")
                                    + where)
        try:
            self._model = compile_mjcf(xml)
        except ValueError as e:  # MuJoCo's parse and compile errors name a line, not the file
            raise ValueError(f"MJCF file {str(xml)!r} does not load: {e}") from None
        if self._model.nu == 0:
            raise ValueError(f"MJCF file {str(xml)!r} has no actuators: nothing for a planner to command")
        self._data = mujoco.MjData(self._model)
        self._scratch = mujoco.MjData(self._model)
        self._reward, self._observe, self._reset = reward, observe or default_observe, reset
        self.name = name or xml.stem
        self.action_repeat, self._substeps = int(action_repeat), int(substeps)
        if self._substeps < 1:
            raise ValueError(f"env.substeps={substeps} must be at least 1")
        if int(max_env_steps) < self.action_repeat:
            raise ValueError(f"env.max_env_steps={max_env_steps} is shorter than one agent step "
                             f"(env.action_repeat={self.action_repeat})")
        self.max_control_steps = int(max_env_steps) // self.action_repeat
        if not (math.isfinite(self._model.opt.timestep) and self._model.opt.timestep > 0):
            raise ValueError(f"{xml}: <option timestep=\"{self._model.opt.timestep:g}\">: expected a positive "
                             "physics timestep (with 0 the physics never moves)")
        if (period := self._model.opt.timestep * (self._substeps * self.action_repeat)) > MAX_CONTROL_PERIOD_S:
            raise ValueError(f"{xml}: <option timestep=\"{self._model.opt.timestep:g}\"> x env.substeps={self._substeps} "
                             f"x env.action_repeat={self.action_repeat} = {period:g} s per agent action; expected at most "
                             f"{MAX_CONTROL_PERIOD_S:g} s (a deployed planner may not declare a longer control period)")
        self._init_qpos = self._data.qpos.copy()
        lo, hi = self._model.actuator_ctrlrange.T.copy()
        unlimited = self._model.actuator_ctrllimited == 0
        lo[unlimited], hi[unlimited] = -1.0, 1.0
        if unlimited.any():
            log.warning("%s: actuators %s have no ctrlrange: they are planned in [-1, 1] (give ctrlrange to change it)",
                        xml, [mujoco.mj_id2name(self._model, mujoco.mjtObj.mjOBJ_ACTUATOR, i) or i
                              for i in np.flatnonzero(unlimited)])
        if not np.all(np.abs(np.concatenate([lo, hi])) <= MAX_CONTROL):  # MuJoCo zeroes a control above 1e10
            raise ValueError(f"{xml}: actuator ctrlrange [{lo.tolist()}, {hi.tolist()}]: expected bounds within "
                             f"±{MAX_CONTROL:g} (MuJoCo sets a larger control to 0, so stored actions would be wrong)")
        self._act_spec = BoxSpec((self._model.nu,), lo, hi, "action")
        mujoco.mj_forward(self._model, self._data)
        dim = checked_observation(self._observe, self._model, self._data, None).size  # both checked before any work
        if dim < 1:
            raise ValueError(f"{xml}: the observation is empty (env.observe returned 0 numbers): a model cannot "
                             "learn or plan from no state")
        checked_reward(self._reward, self._model, self._data)
        if reset is not None:  # checked once here too, on the scratch state: a reset leaving NaN was found only
            mujoco.mj_resetData(self._model, self._scratch)  # after the run directory was made (probe 28)
            self._checked_reset(self._scratch, np.random.default_rng(0))
        self._obs_spec = BoxSpec((dim,), np.full(dim, -np.inf), np.full(dim, np.inf), "observation")
        fns = [(what, fn) for what, fn in (("reward", reward), ("observe", observe), ("reset", reset)) if fn is not None]
        self._fingerprint = {"model_sha256": _model_sha256(self._model),
                             **{f"{what}_sha256": _source_sha256(fn) for what, fn in fns},
                             **{f"{what}_imports_sha256": _imports_sha256(fn) for what, fn in fns}}

    def fingerprint(self) -> dict:
        """The compiled model (before any randomisation) and the source files of the user's functions."""
        return dict(self._fingerprint)

    physics_steps_per_env_step = property(lambda self: self._substeps)
    observation_spec = property(lambda self: self._obs_spec)
    action_spec = property(lambda self: self._act_spec)
    model = property(lambda self: self._model)
    data = property(lambda self: self._data)

    @property
    def control_timestep(self) -> float:
        return float(self._model.opt.timestep) * self.physics_steps_per_control_step

    def reset(self, seed: int | None = None) -> np.ndarray:
        check_episode_seed(seed)
        rng = np.random.default_rng(seed)
        self._randomize_episode(seed)
        mujoco.mj_resetData(self._model, self._data)
        if self._reset is not None:
            self._checked_reset(self._data, rng)
        else:
            self._data.qpos[:] = self._init_qpos + rng.uniform(-0.1, 0.1, self._model.nq)
        mujoco.mj_forward(self._model, self._data)
        return self._begin_episode()

    def _checked_reset(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        """The user's reset function on ``data``, checked: its exception, non-finite state or a changed timestep is a
        ValueError naming it."""
        timestep = self._model.opt.timestep
        try:
            self._reset(self._model, data, rng)
        except (Exception, SystemExit) as e:  # the user's function: say whose exception it is (sys.exit: probe 28)
            raise ValueError(f"reset function {_name(self._reset)} raised {type(e).__name__}: {e}") from e
        if not (np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all()):
            raise ValueError(f"reset function {_name(self._reset)} left non-finite values in qpos/qvel")
        _check_timestep_kept(self._model, timestep, "reset", self._reset)

    def _env_step(self, action: np.ndarray) -> tuple[float, bool]:
        self._data.ctrl[:] = action
        mujoco.mj_step(self._model, self._data, nstep=self._substeps)
        if physics_diverged(self._model, self._data):
            return 0.0, True
        # mj_step leaves positions derived from qpos (site and body poses) one physics step behind; the
        # reward and the observation must see the state they report (as reward_of_state does).
        mujoco.mj_forward(self._model, self._data)
        return checked_reward(self._reward, self._model, self._data), False

    def _observation(self) -> np.ndarray:
        return checked_observation(self._observe, self._model, self._data, self._obs_spec.dim)

    def observation_of_state(self, state: np.ndarray) -> np.ndarray:
        mujoco.mj_setState(self._model, self._scratch, np.asarray(state, dtype=np.float64), STATE_SPEC)
        mujoco.mj_forward(self._model, self._scratch)
        return checked_observation(self._observe, self._model, self._scratch, self._obs_spec.dim)

    def reward_of_state(self, state: np.ndarray, ctrl: np.ndarray | None = None) -> float:
        mujoco.mj_setState(self._model, self._scratch, np.asarray(state, dtype=np.float64), STATE_SPEC)
        self._scratch.ctrl[:] = 0.0 if ctrl is None else ctrl
        mujoco.mj_forward(self._model, self._scratch)
        return checked_reward(self._reward, self._model, self._scratch)
