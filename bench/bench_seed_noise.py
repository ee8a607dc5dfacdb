"""How often random seed episodes see a sparse reward, by the colour of their actions (``seed_noise_beta``).

    python bench/bench_seed_noise.py finger-spin --episodes 60 --betas 0 1 2

Each episode starts from the task's seeded reset (seeds 2000, 2001, ...: the same start states for every
colour) and runs the run's seed-episode policy (``policies.random.RandomPolicy``) at the launch file's action
repeat. Prints, per colour, the episodes with any reward, the mean and the largest return.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from policies.random import RandomPolicy  # noqa: E402
from robot_wm.config import load  # noqa: E402
from sim.collect import run_episode  # noqa: E402
from sim.registry import make_env  # noqa: E402

LAUNCH = Path(__file__).resolve().parents[1] / "launch"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("task", help="a task with a launch file in launch/ (its action repeat is used)")
    p.add_argument("--episodes", type=int, default=60)
    p.add_argument("--betas", type=float, nargs="+", default=[0.0, 1.0, 2.0])
    a = p.parse_args()
    env = make_env(load(LAUNCH / f"{a.task}.toml").env)
    print(f"{a.task}, action repeat {env.action_repeat}, {a.episodes} episodes per colour (seeds 2000-)")
    for beta in a.betas:
        t0 = time.perf_counter()
        returns = np.array([float(run_episode(env, RandomPolicy(env.action_spec, s, beta, env.max_control_steps), s)
                                  .reward.sum()) for s in range(2000, 2000 + a.episodes)])
        print(f"beta={beta:g}: reward in {np.sum(returns > 0)}/{a.episodes} episodes, mean return "
              f"{returns.mean():.1f}, largest {returns.max():.0f} ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
