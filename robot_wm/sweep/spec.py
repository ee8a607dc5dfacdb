"""The sweep file: a typed, validated grid of ordinary runs (TOML, like a launch file).

```toml
sweep_dir = "sweeps/returns"            # where run directories and results.csv go (relative to the cwd)
launch = ["../launch/cartpole-swingup.toml"]   # launch files, relative to this sweep file ...
tasks = ["pendulum-swingup"]            # ... and/or task names on the embedded default config
seeds = [100, 101, 102]
env_steps = 20000                       # the budget of every trial (default: each launch file's)
eval_at = [10000]                       # learning-curve evaluations (default: each launch file's)
overrides = ["threads=1"]               # key=value applied to every trial

[grid]                                  # every combination is a trial (for each launch/task and seed)
"planner.samples" = [256, 512]

[search]                                # random search: `samples` settings drawn from these ranges, each
samples = 8                             # one a trial per launch/task, seed and grid combination; the draw
seed = 0                                # is repeatable (same file, same settings, same trial names)
[search.space]
"planner.temperature" = {uniform = [0.1, 1.0]}
"value.lr" = {loguniform = [1e-4, 1e-3]}
"planner.horizon" = {choice = [8, 12, 16]}
"planner.iterations" = {randint = [1, 3]}   # both ends included
```

One trial is one ``robot-wm run`` with its own run directory ``SWEEP_DIR/runs/NAME``, NAME read from its
launch file (or task), seed and grid values. Every trial's config is built and validated when the file
is loaded, so a bad key or value is an error naming it before anything runs.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from robot_wm import config as cfgmod
from robot_wm.config import MAX_TOML_BYTES, toml_value
from robot_wm.io import check_regular_file
from sim.dmc import task_key
from sim.registry import known_task, odd_characters, task_names


def _signless_zero(v: Any) -> Any:
    """``v`` with every -0.0 as the 0.0 it runs as: repr told them apart, so a grid [0.0, -0.0] was two
    trials of one run (eighth probe)."""
    if type(v) is float:
        return v + 0.0
    if isinstance(v, list | tuple):
        return type(v)(_signless_zero(x) for x in v)
    return v


class SweepError(cfgmod.ConfigError):
    """A sweep file that does not fit: names the field and what was expected."""


SWEEP_OWNED = {"seed": "the sweep sets each trial's seed: list them in seeds = [...]",
               "run_dir": "the sweep sets each trial's run directory (SWEEP_DIR/runs/NAME): set sweep_dir instead",
               # a grid of tasks ran pendulum under the name cartpole-swingup-s1-..., past the tasks' checks (probe 42)
               "env.task": "each trial's task is named by tasks = [...] (or its launch file): list the tasks there"}
"""Run fields the sweep itself sets per trial: refused in its grid and overrides."""


DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
SIGNIFICANT = 4
"""Drawn floats keep this many significant digits: readable trial names, values that TOML reads back exactly."""


class SearchSpec(BaseModel):
    """``samples`` settings of the ``space`` keys drawn with ``numpy.random.default_rng(seed)`` when the file
    is loaded. The draw is part of the file, not of the run: a sweep started again draws the same settings,
    so its finished trials are skipped and its interrupted ones resumed as with a grid."""

    model_config = ConfigDict(extra="forbid", strict=True)

    samples: int = Field(ge=1, le=10_000)
    """How many settings to draw (distinct: a repeated draw is drawn again)."""
    seed: int = Field(0, ge=0)
    """Seed of the draw (not of the runs: those take the sweep's seeds)."""
    space: dict[str, Any] = Field(min_length=1)
    """key -> one of {uniform = [lo, hi]}, {loguniform = [lo, hi]} (lo > 0), {randint = [lo, hi]} (both
    included) or {choice = [v1, v2, ...]}; TOML tables nest as in the grid."""

    @field_validator("space")
    @classmethod
    def _distributions(cls, v: dict[str, Any]) -> dict[str, tuple[str, list]]:
        out: dict[str, tuple[str, list]] = {}

        def leaf(key: str, d: dict) -> tuple[str, list]:
            (kind, arg), = d.items()
            if kind == "choice":
                if not isinstance(arg, list) or not arg or len({toml_value(x) for x in arg}) != len(arg):
                    raise ValueError(f"search key {key}: choice expects a non-empty list of distinct values, got {arg!r}")
                return kind, arg
            ints = kind == "randint"
            num = (int,) if ints else (int, float)
            if (not isinstance(arg, list) or len(arg) != 2 or any(isinstance(x, bool) or not isinstance(x, num)
                                                                  or not math.isfinite(x) for x in arg)):
                raise ValueError(f"search key {key}: {kind} expects [low, high] of finite "
                                 f"{'integers' if ints else 'numbers'}, got {arg!r}")
            lo, hi = arg
            if not math.isfinite(float(hi) - float(lo)):  # [-1e308, 1e308]: numpy's OverflowError when drawn
                raise ValueError(f"search key {key}: {kind} [{lo}, {hi}] is wider than a float holds; expected a "
                                 "narrower range")
            if not (lo <= hi if ints else lo < hi) or (kind == "loguniform" and lo <= 0):
                raise ValueError(f"search key {key}: {kind} [{lo}, {hi}] is empty; expected low < high"
                                 f"{' and low > 0' if kind == 'loguniform' else ''}")
            return kind, [lo, hi]

        def walk(node: dict, prefix: str) -> None:
            for k, val in node.items():
                key = f"{prefix}{k}"
                if not isinstance(val, dict) or not val:
                    raise ValueError(f"search key {key}: expected {{uniform|loguniform|randint|choice = ...}}, "
                                     f"got {val!r}")
                if set(val) & set(DISTRIBUTIONS):
                    if len(val) != 1:
                        raise ValueError(f"search key {key}: expected exactly one of {', '.join(DISTRIBUTIONS)}, "
                                         f"got {', '.join(map(str, val))}")
                    if key in SWEEP_OWNED:
                        raise ValueError(f"search key {key}: {SWEEP_OWNED[key]}")
                    if key in out:
                        raise ValueError(f"search key {key} is given twice (dotted and as a table); expected it once")
                    out[key] = leaf(key, val)
                else:
                    walk(val, f"{key}.")
        walk(v, "")
        return out

    def draw(self) -> list[tuple]:
        """``samples`` distinct settings, each a tuple of values in the order of ``space``."""
        keys = list(self.space)
        finite = math.prod(len(a) if k == "choice" else a[1] - a[0] + 1 for k, a in self.space.values()
                           if k in ("choice", "randint")) if all(k in ("choice", "randint")
                                                                  for k, _ in self.space.values()) else None
        if finite is not None and self.samples > finite:
            raise ValueError(f"search: samples={self.samples} but the space holds only {finite} distinct settings "
                             f"({', '.join(keys)}); expected samples <= {finite} (or a grid)")
        rng = np.random.default_rng(self.seed)

        def one(kind: str, arg: list):
            if kind == "choice":
                return arg[int(rng.integers(len(arg)))]
            if kind == "randint":
                return int(rng.integers(arg[0], arg[1], endpoint=True))
            x = rng.uniform(*arg) if kind == "uniform" else math.exp(rng.uniform(math.log(arg[0]), math.log(arg[1])))
            return float(f"{x:.{SIGNIFICANT}g}")

        out, seen = [], set()
        for _ in range(100 * self.samples):
            combo = tuple(one(*self.space[k]) for k in keys)
            if (key := toml_value(list(combo))) not in seen:
                seen.add(key)
                out.append(combo)
                if len(out) == self.samples:
                    return out
        raise ValueError(f"search: drew only {len(out)} distinct settings of {self.samples} in {100 * self.samples} "
                         f"draws ({', '.join(keys)}); expected a wider space or fewer samples")


class EarlyStopSpec(BaseModel):
    """ASHA (Ray Tune's ``AsyncHyperBandScheduler``) on the trials' learning-curve evaluations: at each
    budget of ``eval_at`` a trial whose mean evaluation return falls below the best ``1/reduction_factor``
    of the trials that reached that budget before it is stopped there. Returns are compared across
    trials, so every trial must run the same task with the same budgets."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reduction_factor: float = Field(3.0, gt=1, le=100)
    """Keep the best 1/reduction_factor at each budget (ASHA's eta)."""


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, strict=True)

    sweep_dir: str | None = None
    """Where the trials' run directories and results.csv go (default: sweeps/<sweep file name>)."""
    launch: list[str] = []
    """Launch files (relative to the sweep file), each a source of trials."""
    tasks: list[str] = []
    """Task names, each a source of trials on the embedded default config (env.task=NAME)."""
    seeds: list[int] = Field(min_length=1)
    """Seeds: every launch file / task runs once per seed."""
    env_steps: int | None = Field(None, ge=1)
    """The budget of every trial in environment steps (default: each launch file's env_steps)."""
    eval_at: list[int] | None = None
    """Budgets at which to evaluate (learning curve; default: each launch file's eval_at)."""
    overrides: list[str] = []
    """key=value overrides applied to every trial."""
    grid: dict[str, Any] = {}
    """key -> list of values; every combination of the keys is a trial (TOML tables nest: [grid.planner])."""
    search: SearchSpec | None = None
    """Random search: settings drawn from ranges, each crossed with the grid (see ``SearchSpec``)."""
    early_stop: EarlyStopSpec | None = None
    """Stop trials that fall behind at the eval_at budgets (ASHA; see ``EarlyStopSpec``)."""

    @field_validator("sweep_dir")
    @classmethod
    def _sweep_dir(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():  # an unset variable: the sweep wrote into sweeps/<stem> instead
            raise ValueError("sweep_dir is empty; expected a folder path (or leave it out for sweeps/<file name>)")
        if v is not None and "\x00" in v:
            raise ValueError(f"sweep_dir {v!r} holds a NUL byte; expected a folder path")
        return v

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds {v} repeat a seed; expected distinct seeds")
        return v

    @field_validator("tasks", "launch")
    @classmethod
    def _unique_sources(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):  # two trials of one name wrote into one run directory
            raise ValueError(f"{v} repeats an entry; expected each launch file or task once (seeds repeat a run)")
        return v

    @field_validator("eval_at")
    @classmethod
    def _positive_budgets(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(b < 1 for b in v):
            raise ValueError(f"eval_at {v}: expected budgets of at least 1 environment step")
        return sorted(set(v)) if v is not None else v

    @field_validator("grid")
    @classmethod
    def _flat_grid(cls, v: dict[str, Any]) -> dict[str, list]:
        out: dict[str, list] = {}

        def walk(node: dict, prefix: str) -> None:
            for k, val in node.items():
                if isinstance(val, dict):
                    walk(val, f"{prefix}{k}.")
                elif not isinstance(val, list) or not val:
                    raise ValueError(f"grid key {prefix}{k!s}: expected a non-empty list of values, got {val!r}")
                elif f"{prefix}{k}" in out:  # "planner.horizon" and [grid.planner] horizon: one was dropped
                    raise ValueError(f"grid key {prefix}{k} is given twice (dotted and as a table); expected it once")
                elif len({toml_value(x) for x in val}) != len(val):  # [5, 5]: two identical trials
                    raise ValueError(f"grid key {prefix}{k}: {val} repeats a value; expected distinct values")
                elif f"{prefix}{k}" in SWEEP_OWNED:
                    raise ValueError(f"grid key {prefix}{k}: {SWEEP_OWNED[f'{prefix}{k}']}")
                else:
                    out[f"{prefix}{k}"] = val
        walk(v, "")
        return out

    @field_validator("overrides")
    @classmethod
    def _not_owned(cls, v: list[str]) -> list[str]:
        for item in v:
            key = item.partition("=")[0].strip()
            if key in SWEEP_OWNED:  # run_dir was ignored, seed made every trial's name and row say another seed
                raise ValueError(f"override {item!r}: {SWEEP_OWNED[key]}")
        return v

    @model_validator(mode="after")
    def _sources(self) -> SweepSpec:
        if not self.launch and not self.tasks:
            raise ValueError("no trials: expected at least one launch file (launch = [...]) or task (tasks = [...])")
        if self.search is not None and (both := sorted(set(self.grid) & set(self.search.space))):
            raise ValueError(f"{', '.join(both)} in both [grid] and [search.space]; expected each key in one of them")
        if self.env_steps is not None and self.eval_at and max(self.eval_at) > self.env_steps:
            raise ValueError(f"eval_at {self.eval_at} goes past env_steps {self.env_steps}; expected budgets "
                             "no larger than env_steps")
        return self


def _readable(v: Any) -> str:
    return v if isinstance(v, str) else toml_value(v).replace('"', "").replace(" ", "")


@dataclass(frozen=True)
class Trial:
    """One run of the sweep."""

    name: str
    """Unique folder name: launch/task, seed, grid values."""
    source: str
    """The launch file (absolute path) or the task name."""
    is_launch: bool
    seed: int
    grid: tuple[str, ...]
    """This trial's grid values as key=value."""
    overrides: tuple[str, ...] = field(default=())
    """Every override applied on top of the source (seed, budgets, the sweep's overrides, grid values)."""
    task: str = ""
    threads: int = 1
    budgets: tuple[int, ...] = ()
    """Learning-curve budgets (eval_at and env_steps)."""

    def config(self, run_dir: Path) -> cfgmod.RunConfig:
        """The trial's run config, writing into ``run_dir``."""
        base = cfgmod.load(self.source) if self.is_launch else cfgmod.RunConfig()
        literal = str(run_dir).replace("{", "{{").replace("}", "}}")  # a path, not a template
        return cfgmod.apply_overrides(base, [*self.overrides, f"run_dir={literal}"])

    def payload(self, run_dir: Path) -> dict:
        """What a worker needs to run the trial (plain data: it crosses process and machine boundaries)."""
        return {"name": self.name, "source": self.source, "is_launch": self.is_launch, "seed": self.seed,
                "grid": list(self.grid), "overrides": list(self.overrides), "run_dir": str(run_dir),
                "task": self.task, "threads": self.threads, "budgets": list(self.budgets)}

    @classmethod
    def from_payload(cls, p: dict) -> Trial:
        return cls(name=p["name"], source=p["source"], is_launch=p["is_launch"], seed=p["seed"],
                   grid=tuple(p["grid"]), overrides=tuple(p["overrides"]), task=p["task"], threads=p["threads"],
                   budgets=tuple(p["budgets"]))


NAME_CHARS = re.compile(r"[^A-Za-z0-9._=+-]+")
MAX_NAME = 120


def default_dir(path: Path, sweep_dir: str | None) -> Path:
    """Where the sweep file ``path`` writes, given its ``sweep_dir`` (None: sweeps/<file name>, under the cwd)."""
    return Path(sweep_dir) if sweep_dir else Path("sweeps") / Path(path).stem


@dataclass
class Sweep:
    """A loaded sweep file: its spec, where it was read from and every trial."""

    spec: SweepSpec
    path: Path
    trials: list[Trial]

    def default_dir(self) -> Path:
        return default_dir(self.path, self.spec.sweep_dir)


def _format(err: ValidationError, source: str) -> str:
    lines = [f"invalid sweep file ({source}):"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "<root>"
        got = f" (got {e['input']!r})" if e["type"] != "missing" and not isinstance(e["input"], dict) else ""
        lines.append(f"  {where}: {e['msg']}{got}")
    return "\n".join(lines)


MAX_TRIALS = 10_000
"""Most trials one sweep file may make (each is a run directory)."""


def parse(data: dict[str, Any], path: Path) -> Sweep:
    """Validate ``data`` (a sweep file's TOML read from ``path``) and build every trial's config."""
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as e:
        raise SweepError(_format(e, str(path))) from None
    sources = [(str((path.parent / p).resolve()), True, Path(p).stem) for p in spec.launch]
    sources += [(t, False, t) for t in spec.tasks]
    seen: dict[str, str] = {}
    for (src, is_launch, _), given in zip(sources, [*spec.launch, *spec.tasks], strict=True):
        key = os.path.realpath(src) if is_launch else task_key(src)  # one file spelled two ways,
        if key in seen:                                                            # a task and its alias
            raise SweepError(f"sweep file {str(path)!r}: {given!r} and {seen[key]!r} are the same "
                             f"{'launch file' if is_launch else 'task'}; expected each once")
        seen[key] = given
    for src in (src for src, is_launch, _ in sources if is_launch):
        try:  # /dev/zero or a FIFO "did not exist" (probe 40)
            check_regular_file(Path(src), "launch file", MAX_TOML_BYTES)
        except FileNotFoundError:
            raise SweepError(f"sweep file {str(path)!r}: launch file {src!r} does not exist (launch paths are "
                             "relative to the sweep file)") from None
        except (ValueError, OSError) as e:
            raise SweepError(f"sweep file {str(path)!r}: {e}") from None
    keys = list(spec.grid)
    drawn = spec.search.samples if spec.search is not None else 1
    count = len(sources) * len(spec.seeds) * math.prod(len(spec.grid[k]) for k in keys) * drawn
    if count > MAX_TRIALS:  # counted before any trial is built: a 10^6-trial grid used to hang silently
        sizes = ", ".join([f"{len(sources)} launch files/tasks", f"{len(spec.seeds)} seeds",
                           *(f"{len(spec.grid[k])} values of {k}" for k in keys),
                           *([f"{drawn} search samples"] if spec.search is not None else [])])
        raise SweepError(f"sweep file {str(path)!r} makes {count:,} trials ({sizes}); at most {MAX_TRIALS:,} "
                         "in one sweep: split it or use fewer values")
    combos = list(itertools.product(*(spec.grid[k] for k in keys)))
    if spec.search is not None:
        try:
            samples = spec.search.draw()
        except ValueError as e:
            raise SweepError(f"sweep file {str(path)!r}: {e}") from None
        keys += list(spec.search.space)
        combos = [(*c, *d) for c in combos for d in samples]
    # an address alone was refused by the config's own check, which advised `--rerun serve`, an option no sweep has
    addressed = [o for o in (*spec.overrides, *(f"{k}=" for k in keys)) if (k := o.partition("=")[0].strip())
                 == "rerun.address" or (k == "rerun" and "address" in o.partition("=")[2])]  # (probe 28)
    if addressed:
        raise SweepError(cfgmod.network_refusal(f"sweep file {str(path)!r}", addressed[0].partition("=")[0].strip(), ""))
    trials, names, configs = [], set(), {}
    for (src, is_launch, label), seed, combo in itertools.product(sources, spec.seeds, combos):
        grid = tuple(f"{k}={toml_value(v)}" for k, v in zip(keys, combo, strict=True))
        fixed = [f"seed={seed}"]
        fixed += [f"env_steps={spec.env_steps}"] if spec.env_steps is not None else []
        fixed += [f"eval_at={toml_value(spec.eval_at)}"] if spec.eval_at is not None else []
        fixed += [] if is_launch else [f"env.task={src}"]
        overrides = (*fixed, *spec.overrides, *grid)
        name = NAME_CHARS.sub("_", "-".join([label, f"s{seed}", *(f"{k}={_readable(v)}"
                                                                    for k, v in zip(keys, combo, strict=True))]))
        trial = Trial(name=name, source=src, is_launch=is_launch, seed=seed, grid=grid, overrides=overrides)
        try:
            cfg = trial.config(Path("unused"))
        except cfgmod.ConfigError as e:
            where = f"launch file {src!r}" if is_launch else f"task {src!r}"
            raise SweepError(f"sweep file {str(path)!r}, trial {name} ({where}, seed {seed}"
                             f"{', ' + ' '.join(grid) if grid else ''}): {e}") from None
        try:
            cfgmod.check_no_network(cfg, f"sweep file {str(path)!r}")
        except cfgmod.ConfigError as e:
            raise SweepError(str(e)) from None
        if cfg.rerun.path is not None and cfg.rerun.mode == "save":  # every trial wrote the one file, in turn or at once
            where = f"launch file {src!r}" if is_launch else "the sweep's overrides"
            raise SweepError(f"sweep file {str(path)!r}, trial {name}: rerun.path={cfg.rerun.path!r} (from {where}) "
                             "would be written by every trial; leave it out: each trial records into its own run "
                             "directory's rerun/ folder")
        settings = cfgmod.flat(cfg)  # the same run spelled twice: [1, 1.0], a task and its alias in a grid
        settings["env.task"] = task_key(cfg.env.task)
        key = repr(sorted((k, _signless_zero(v)) for k, v in settings.items() if k != "run_dir"))
        if key in configs:
            raise SweepError(f"sweep file {str(path)!r}: trials {configs[key]} and {name} are the same run (the same "
                             "settings spelled two ways); expected each setting once")
        configs[key] = name
        if spec.early_stop is not None and cfg.eval_episodes < 1:  # ASHA compared NaNs at every budget
            raise SweepError(f"sweep file {str(path)!r}: [early_stop] compares the trials' evaluation returns, but "
                             f"{name} has eval_episodes=0 (no return at any budget); expected at least 1")
        if not known_task(cfg.env.task):  # found by the trial's run before: after Ray started, results written
            raise SweepError(f"sweep file {str(path)!r}, trial {name}: unknown task {cfg.env.task!r}"
                             f"{odd_characters(cfg.env.task)}; expected one of "
                             f"{', '.join(task_names())}")
        if cfg.env.task == "mjcf" and not (cfg.env.mjcf and cfg.env.reward):  # found after Ray started (probe 22)
            raise SweepError(f"sweep file {str(path)!r}, trial {name}: task 'mjcf' needs env.mjcf (an MJCF path) and "
                             "env.reward ('module:function'), in its launch file or the sweep's overrides")
        if cfg.eval_at and max(cfg.eval_at) > cfg.env_steps:
            raise SweepError(f"sweep file {str(path)!r}, trial {name}: eval_at {cfg.eval_at} goes past env_steps "
                             f"{cfg.env_steps}; expected budgets no larger than env_steps")
        if len(name) > MAX_NAME or name in names:  # still readable, made unique by a short hash of the trial
            digest = hashlib.sha256(repr((src, seed, grid)).encode()).hexdigest()[:8]
            name = f"{name[:MAX_NAME - 9]}-{digest}"
        if name in names:  # the sources and grid values are distinct, so this is a bug, not the user's file
            raise SweepError(f"sweep file {str(path)!r}: two trials are both named {name!r}")
        names.add(name)
        budgets = tuple(sorted({*cfg.eval_at, cfg.env_steps}))
        trials.append(Trial(name=name, source=src, is_launch=is_launch, seed=seed, grid=grid, overrides=overrides,
                            task=cfg.env.task, threads=cfg.threads, budgets=budgets))
    if spec.early_stop is not None:
        _check_comparable(trials, path)
    return Sweep(spec=spec, path=path, trials=trials)


def _check_comparable(trials: list[Trial], path: Path) -> None:
    """Early stopping compares the trials' returns at the same budgets: one task, the same budgets, and at
    least one evaluation before the end."""
    where = f"sweep file {str(path)!r}: [early_stop]"
    if len(tasks := sorted({t.task for t in trials})) > 1:
        raise SweepError(f"{where} compares returns across trials, but the trials run {len(tasks)} tasks "
                         f"({', '.join(tasks)}); expected one task per sweep (one sweep file per task)")
    if len(budgets := {t.budgets for t in trials}) > 1:
        raise SweepError(f"{where} compares trials at the same budgets, but they differ ({sorted(budgets)}); "
                         "expected one env_steps and eval_at for the whole sweep")
    if len(trials[0].budgets) < 2:
        raise SweepError(f"{where} stops trials at their learning-curve evaluations, but there are none before "
                         f"env_steps {trials[0].budgets[-1]}; expected eval_at = [budgets below env_steps]")


def load(path: str | Path) -> Sweep:
    path = Path(path)
    return parse(cfgmod.read_toml(path, "sweep file", SweepError), path)
