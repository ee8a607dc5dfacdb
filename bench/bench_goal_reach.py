"""Goal reaching: a trained run's learned planner (and the oracle on the true dynamics) driven toward random
commanded joint poses instead of the task reward.

    python bench/bench_goal_reach.py RUN --goals 20 [--planners learned oracle] [--steps 200] [--seed 0]
    python bench/bench_goal_reach.py runs/cartpole --joints slider --set hinge_1=0   # cart anywhere, pole up

Each goal draws every hinge or slide joint named in ``--joints`` (default: all of the robot's) uniformly
within its range (hinges without one: [-pi, pi]), from a seeded generator, and the ones in ``--set`` at
the given position; each episode starts from the
task's own seeded reset. The goal is ``goal.joints`` (weights: the observation dimensions those joints
move), a one-off override like ``robot-wm eval RUN goal.joints={...}``; the episodes are stored in the
run's eval/ folder with the goal distance in their records. Prints per planner: median final distance,
success rate (final distance < ``--tol``), median time to first come within ``--tol`` (seconds, among
the successes) and the planning rate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402

from robot_wm import config as cfgmod  # noqa: E402
from robot_wm.cli import _session  # noqa: E402


def joint_goals(model: mujoco.MjModel, names: list[str] | None, n: int, seed: int,
                fixed: dict[str, float]) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    picked = []
    for j in range(model.njnt):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
        kind = int(model.jnt_type[j])
        if kind not in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
            continue
        if (names is None and name not in fixed) or (names is not None and name in names):
            lo, hi = model.jnt_range[j] if model.jnt_limited[j] else (-np.pi, np.pi)
            picked.append((name, float(lo), float(hi)))
    return [{**{name: round(float(rng.uniform(lo, hi)), 4) for name, lo, hi in picked}, **fixed} for _ in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="a trained run directory (e.g. of launch/arm-reach.toml)")
    p.add_argument("--goals", type=int, default=20)
    p.add_argument("--planners", nargs="+", default=["learned", "oracle"], choices=("learned", "oracle"))
    p.add_argument("--joints", nargs="*", default=None, help="joints to command (default: every hinge/slide)")
    p.add_argument("--set", nargs="*", default=[], metavar="JOINT=POS", help="joints held at one position in every goal")
    p.add_argument("--steps", type=int, default=200, help="environment steps per episode")
    p.add_argument("--tol", type=float, default=0.1, help="success: final weighted distance below this")
    p.add_argument("--seed", type=int, default=0, help="seed of the goals")
    a = p.parse_args()
    rows = []
    for planner in a.planners:
        dists, reach_s, hz = [], [], []
        with _session(a.run, [f"env.max_env_steps={a.steps}"], progress=False,
                      command=f"bench_goal_reach {planner}") as s:
            fixed = {k: float(v) for k, _, v in (x.partition("=") for x in a.set)}
            goals = joint_goals(s.env.model, a.joints, a.goals, a.seed, fixed)
            model = s.latest_model() if planner == "learned" else None
            base = s.cfg
            for i, goal in enumerate(goals):
                s.cfg = cfgmod.apply_overrides(base, [f"goal.joints={cfgmod.toml_value(goal)}"])
                policy = s.planner(planner, model, seed=i)
                t0 = time.perf_counter()
                rec = s.collect(policy, "eval", 10_000 + i)
                data = s.run.eval_dataset()
                obs = data[len(data) - 1].obs
                d = np.array([policy.goal.distance(o) for o in obs])
                within = np.flatnonzero(d < a.tol)
                dists.append(rec["goal_distance"])
                if d[-1] < a.tol and within.size:
                    reach_s.append(within[0] * s.env.control_timestep)
                hz.append(rec["plan_hz"])
                print(f"{planner} goal {i} {goal}: start {d[0]:.3f} final {d[-1]:.4f}"
                      f"{f', within {a.tol} after {within[0] * s.env.control_timestep:.2f} s' if within.size else ''}"
                      f" ({time.perf_counter() - t0:.0f} s)", flush=True)
            s.cfg = base
        rows.append((planner, statistics.median(dists), np.mean(np.array(dists) < a.tol),
                     statistics.median(reach_s) if reach_s else float("nan"), statistics.median(hz)))
    print(f"\n{a.goals} random joint goals (seed {a.seed}), {a.steps} environment steps each, success: final "
          f"distance < {a.tol}\n")
    print("| planner | median final distance | success | median time to reach (s) | plan Hz |")
    print("|---|---|---|---|---|")
    for planner, med, ok, t, h in rows:
        print(f"| {planner} | {med:.4f} | {100 * ok:.0f} % | {t:.2f} | {h:.1f} |")


if __name__ == "__main__":
    main()
