"""Resolve what to export: a run directory (its latest checkpoint and its config) or a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robot_wm import config as cfgmod
from robot_wm.config import RunConfig


@dataclass
class Source:
    model: object          # WorldModel, the elite members only
    value: object          # ActorCritic (value + policy), or None for a checkpoint without one
    cfg: RunConfig
    checkpoint: Path
    sha256: str
    meta: dict
    run: object = None     # RunDir the checkpoint belongs to, None for one outside a run directory


EXPORT_FIELDS = ("planner.", "goal.", "value.enabled=", "threads=", "device=")
"""Overrides an export takes: how to plan (and with which goal), not what was learned nor on which robot."""


def load_source(path: str | Path, overrides: list[str] | None = None) -> Source:
    """``path``: a run directory, or a checkpoint ``NAME.json``/``NAME.safetensors``. The planner and
    environment settings come from the run directory's config.toml (read now, never hard-coded),
    falling back to the defaults with the checkpoint's task and time step (refused for a checkpoint that does not
    say its time step); ``overrides`` are key=value on top."""
    from robot_wm.model.checkpoint import TIME_STEP_KEYS, check_time_step, load_checkpoint_parts
    from robot_wm.run_dir import RunDir

    path = Path(path)
    if path.is_dir():
        run = RunDir(path)
        run.check_is_run()  # a web site's config.toml was a "damaged" run's (probe 28)
        cfg = run.load_config()
        ckpt = run.latest_checkpoint()
        if ckpt is None:
            raise ValueError(f"run directory {str(path)!r} has no checkpoint yet: run `robot-wm train {path}`")
    else:
        ckpt = path
        if not ckpt.with_suffix(".json").exists():
            raise FileNotFoundError(f"{str(path)!r} is neither a run directory nor a checkpoint")
        run = RunDir(ckpt.parent.parent)  # a config.toml beside a folder that is not a run said another task (probe 18)
        if not (ckpt.parent.name == "checkpoints" and run.is_run()):
            run = None
        cfg = run.load_config() if run is not None else None
    model, value, meta = load_checkpoint_parts(ckpt)
    if run is not None:
        run.check_own_checkpoint(meta, ckpt)
    if cfg is None:  # the robot from the checkpoint: its task and time step (probe 17: repeat 8 for a repeat-4 model)
        if not isinstance(meta.get("action_repeat"), int):
            raise ValueError(f"{str(ckpt)!r} is outside its run directory and does not say its action repeat (written "
                             "before 2026-11-27): export it from its run directory (`robot-wm export RUN`), whose "
                             "config.toml says the robot")
        given = {"task": meta.get("task"), **{k: meta.get(k) for k in TIME_STEP_KEYS}}
        cfg = cfgmod.apply_overrides(RunConfig(), [f"env.{k}={v}" for k, v in given.items() if v is not None])
    check_time_step(meta, cfg.env, ckpt)
    inert = [o for o in overrides or [] if not o.startswith(EXPORT_FIELDS) or o.startswith(cfgmod.TRAINING_ONLY)]
    if inert:  # the networks come from the checkpoint, the robot from the run: the file's metadata listed these
        raise cfgmod.ConfigError(f"{', '.join(inert)}: an export takes only planner.*, goal.* and value.enabled "
                                 "overrides (not the training-only planner.explore_*); the networks are the checkpoint's and the robot is the run's (train "
                                 "another run to change them)")
    before, cfg = cfg, cfgmod.apply_overrides(cfg, overrides or [])
    asked = any(o.partition("=")[0].strip() == "value.enabled" for o in overrides or [])
    if asked and cfg.value.enabled and value is None:  # planned without one, the file said value.enabled=true (probe 14)
        raise cfgmod.ConfigError(f"value.enabled=true: the checkpoint {str(ckpt)!r} holds no value (its run was "
                                 "trained without one); export it without that override")
    if not cfg.value.enabled:
        value = None
    given = cfgmod.changed_fields(before, cfg)  # 'planner={value_pessimism=1}' too, as eval reads them
    if (value is None or not cfg.goal.uses_value) and (inert := [f for f in cfgmod.VALUE_ONLY if f in given]):
        raise cfgmod.ConfigError(f"{', '.join(inert)} would change nothing: the exported planner adds no learned "
                                 "value (value.enabled=false, a goal with goal.reward_weight=0, or a run without one)")
    return Source(model.subset(meta["elites"]).eval(), value.eval() if value is not None else None, cfg, ckpt,
                  meta["sha256"], meta, run)


def control_period(cfg: RunConfig) -> float:
    from sim.registry import make_env

    return float(make_env(cfg.env).control_timestep)
