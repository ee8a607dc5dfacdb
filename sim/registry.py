"""Make any environment from its config: DMC tasks by name, the example arm, or your MJCF."""

from __future__ import annotations

from sim.dmc import DMCEnv, canonical_task, dmc_task_names
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


def known_task(name: str) -> bool:
    """A task ``make_env`` can build (a suite task in any accepted spelling, or one of ours)."""
    return name in CUSTOM_TASKS or canonical_task(name) is not None


def odd_characters(name: str) -> str:
    """`` (it holds U+2010 HYPHEN ...)`` for a task name with characters no task name has: 'cartpole‐swingup' pasted
    from a PDF looks like a listed task (probe 28); '' for a plain name."""
    import unicodedata

    odd = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "-_"))})
    if not odd:
        return ""
    shown = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'unnamed')} {c!r}" for c in odd[:3])
    return f" (it holds {shown}: task names are ASCII letters, digits, '-' and '_')"


def make_env(cfg) -> Env:
    """Build the environment described by an ``EnvConfig`` (randomised by its ``randomize`` section)."""
    if not isinstance(getattr(cfg, "task", None), str):  # a dict or a task name was an AttributeError (ninth probe)
        raise TypeError(f"make_env expects an EnvConfig (robot_wm.config.EnvConfig(task=...)), got "
                        f"{type(cfg).__name__} {cfg!r:.60}")
    env = _make_env(cfg)
    env.randomize(getattr(cfg, "randomize", None))
    return env


def _make_env(cfg) -> Env:
    if cfg.task == "arm-reach":
        from sim import arm_reach

        return MJCFEnv(arm_reach.XML, arm_reach.reward, arm_reach.observe, arm_reach.reset,
                       cfg.action_repeat, cfg.max_env_steps or 500, name="arm-reach", substeps=cfg.substeps or 1)
    if cfg.task == "mjcf":
        if not cfg.mjcf or not cfg.reward:
            raise ValueError("env.task='mjcf' needs env.mjcf (an MJCF path) and env.reward ('module:function')")
        pick = lambda p, what, sig: import_callable(p, what, sig) if p else None  # noqa: E731
        return MJCFEnv(cfg.mjcf, pick(cfg.reward, "env.reward", "reward(model, data) -> float"),
                       pick(cfg.observe, "env.observe", "observe(model, data) -> vector"),
                       pick(cfg.reset, "env.reset", "reset(model, data, rng)"), cfg.action_repeat,
                       cfg.max_env_steps or 1000,
                       substeps=cfg.substeps or 1)
    if canonical_task(cfg.task) is None:
        raise ValueError(f"unknown task {cfg.task!r}{odd_characters(cfg.task)}; valid tasks: {', '.join(task_names())} "
                         "(the suite's own spellings, e.g. ball_in_cup-catch, work too)")
    env = DMCEnv(cfg.task, cfg.action_repeat, cfg.max_env_steps)
    if cfg.substeps is not None and cfg.substeps != env.physics_steps_per_env_step:
        raise ValueError(f"env.substeps={cfg.substeps} does not apply to {env.name}: a suite step holds "
                         f"{env.physics_steps_per_env_step} physics steps, fixed by the suite")
    return env
