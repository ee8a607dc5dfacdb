"""Make any environment from its config: DMC tasks by name, the example arm, or your MJCF."""

from __future__ import annotations

from sim.dmc import DMCEnv, dmc_task_names
from sim.env import Env
from sim.mjcf import MJCFEnv, import_callable

# Tasks with tuned launch files and covered by the contract test.
LISTED_TASKS = (
    "cartpole-swingup", "pendulum-swingup", "reacher-easy", "cheetah-run",
    "walker-walk", "finger-spin", "cup-catch", "acrobot-swingup",
)
CUSTOM_TASKS = ("arm-reach", "mjcf")


def task_names() -> list[str]:
    return [*dmc_task_names(), *CUSTOM_TASKS]


def make_env(cfg) -> Env:
    """Build the environment described by an ``EnvConfig``."""
    if cfg.task == "arm-reach":
        from sim import arm_reach

        return MJCFEnv(arm_reach.XML, arm_reach.reward, arm_reach.observe, arm_reach.reset,
                       cfg.action_repeat, cfg.max_env_steps or 500, name="arm-reach")
    if cfg.task == "mjcf":
        if not cfg.mjcf or not cfg.reward:
            raise ValueError("env.task='mjcf' needs env.mjcf (an MJCF path) and env.reward ('module:function')")
        pick = lambda p, what: import_callable(p, what) if p else None  # noqa: E731
        return MJCFEnv(cfg.mjcf, pick(cfg.reward, "env.reward"), pick(cfg.observe, "env.observe"),
                       pick(cfg.reset, "env.reset"), cfg.action_repeat, cfg.max_env_steps or 1000)
    if cfg.task not in dmc_task_names():
        raise ValueError(f"unknown task {cfg.task!r}; valid tasks: {', '.join(task_names())}")
    return DMCEnv(cfg.task, cfg.action_repeat, cfg.max_env_steps)
