"""Closed-loop return of the deployed ONNX planner vs the torch planner: same model, same task,
same episode seeds and the same noise stream (numpy, seeded per episode) on both sides.

    .venv/bin/python bench/bench_deploy_parity.py [--tasks cartpole-swingup cheetah-run]
        [--episodes 5] [--runs /tmp/robot-wm-parity] [key=value ...]

For each task it trains a model in ``RUNS/TASK`` unless one is there already (random episodes, then
a few rounds of learned-planner episodes and retraining, all from the default config read at run
time plus overrides), exports it (noise input and in-graph RNG) and runs evaluation episodes:
torch planner (``MPCPlanner``, eager) through ``sim.collect.run_episode``; ONNX planner through
``robot_wm.runtime`` (``ControlLoop`` + ``SimRobot``), as ``robot-wm deploy`` does.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies.mpc.planner import MPCPlanner
from policies.mpc.step import StepSpec
from policies.random import RandomPolicy
from robot_wm import config as cfgmod
from robot_wm.export.onnx_export import export_planner
from robot_wm.export.source import load_source
from robot_wm.run_dir import RunDir
from robot_wm.runner import Session
from robot_wm.runtime import ControlLoop, PlannerSession, SimRobot
from sim.collect import run_episode
from sim.registry import make_env


class NumpyNoiseMPC(MPCPlanner):
    """The torch planner fed the runtime's noise stream (numpy default_rng(seed), float32)."""

    def __init__(self, *args, noise_seed: int = 0, **kw):
        super().__init__(*args, **kw)
        self.rng = np.random.default_rng(noise_seed)

    def noise(self) -> torch.Tensor:
        return torch.from_numpy(self.rng.standard_normal(self.step.spec.noise_shape(self.act_dim), dtype=np.float32))


def train_run(root: Path, task: str, overrides: list[str], random_eps: int, rounds: int) -> Path:
    run = RunDir(root)
    if run.latest_checkpoint() is not None:
        return root
    cfg = cfgmod.apply_overrides(cfgmod.RunConfig(), [f"env.task={task}", f"run_dir={root}", *overrides])
    s = Session.open(cfg, run, progress=False)
    model = None
    for i in range(random_eps):
        s.collect(RandomPolicy(s.env.action_spec, seed=i), "train", i)
    for r in range(rounds + 1):
        model = s.train(r)
        if r < rounds:
            rec = s.collect(s.planner("learned", model, seed=r), "train", random_eps + r)
            print(f"  [{task}] round {r}: learned-planner episode return {rec['return']:.1f}", flush=True)
    return root


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*")
    p.add_argument("--tasks", nargs="+", default=["cartpole-swingup", "cheetah-run"])
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--runs", default="/tmp/robot-wm-parity")
    p.add_argument("--random-episodes", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    for task in a.tasks:
        t0 = time.perf_counter()
        root = train_run(Path(a.runs) / task, task, a.overrides, a.random_episodes, a.rounds)
        src = load_source(root)
        spec = StepSpec.from_config(src.cfg.planner)
        files = {n: root / f"planner_{n}.onnx" for n in ("input", "internal")}
        for n, f in files.items():
            export_planner(src.model, spec, f, noise=n)
        env = make_env(src.cfg.env)
        robot = SimRobot(env)
        res = {"torch": [], "onnx": [], "onnx in-graph RNG": []}
        lat = {}
        for ep in range(a.episodes):
            seed = 10_000 + ep
            torch_planner = NumpyNoiseMPC(MPCPlanner.learned(src.model, spec).step, noise_seed=seed)
            res["torch"].append(run_episode(env, torch_planner, seed).meta["return"])
            for label, f in (("onnx", files["input"]), ("onnx in-graph RNG", files["internal"])):
                sess = PlannerSession(f, provider="cpu", threads=a.threads, seed=seed)
                sess.warmup()
                loop = ControlLoop(sess, robot, deadline_s=10.0, realtime=False)  # parity: no deadline fallbacks
                robot.reset(seed)
                stats = loop.run(env.max_control_steps, done=lambda: robot.done)  # noqa: B023
                res[label].append(robot.ret)
                lat.setdefault(label, []).extend(stats.latencies)
        tm, om = np.mean(res["torch"]), np.mean(res["onnx"])
        gap = abs(om - tm) / max(abs(tm), 1e-9)
        rows.append((task, res, gap))
        print(f"\n{task} ({spec.optimizer} H={spec.horizon} N={spec.samples} I={spec.iterations}, "
              f"{src.model.members} members; {a.episodes} episodes, seeds 10000..; {time.perf_counter() - t0:.0f} s)")
        for label, rets in res.items():
            extra = ""
            if label in lat:
                ms = np.array(lat[label]) * 1e3
                extra = f"   latency p50 {np.percentile(ms, 50):.2f} ms p99 {np.percentile(ms, 99):.2f} ms"
            print(f"  {label:<18} return {np.mean(rets):8.1f} ± {np.std(rets):6.1f}  "
                  f"[{', '.join(f'{r:.1f}' for r in rets)}]{extra}")
        print(f"  |onnx - torch| / |torch| = {gap:.2%} (target < 5%)", flush=True)
    print("\nsummary: " + "; ".join(f"{t}: torch {np.mean(r['torch']):.1f}, onnx {np.mean(r['onnx']):.1f} "
                                    f"({g:.2%})" for t, r, g in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
