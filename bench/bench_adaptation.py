"""Adaptation to a robot that differs from the simulator: a nominal run's planner deployed on a shifted
simulated robot, K recorded episodes, fine-tuned on them, exported and deployed again.

    python bench/bench_adaptation.py RUN --shift mass-1.3 --k 1 3 10 --episodes 3 [--delay D] [--work DIR]

Every step is the user's command (`robot-wm export`, `deploy --record`, `finetune`, `deploy`), run on a copy
of RUN per K (RUN itself is only read). The K episodes are the first K of one recording made with the
nominal planner on the shifted robot (seeds 2000...); every return is the mean over the same evaluation
seeds (1000...) on that robot. Prints a markdown table: the return against K, and the model's multi-step
prediction error on the robot's episodes before and after fine-tuning (``finetune``'s own record).
``--delay D``: the robot's commands also act D control steps late (``--sim randomize.action_delay=[D,D]``), every
planner is exported with ``planner.delay=D``, and ``finetune`` realigns the recordings by that delay.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from robot_wm.cli import main as cli  # noqa: E402
from robot_wm.data.dataset import EpisodeDataset  # noqa: E402
from robot_wm.run_dir import RunDir  # noqa: E402

EVAL_SEED, RECORD_SEED = 1000, 2000


def run(*args: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli(list(args))
    if rc != 0:
        raise SystemExit(f"robot-wm {' '.join(args)} failed ({rc}):\n{err.getvalue()}{out.getvalue()[-2000:]}")


def deploy(planner: Path, shift: str, episodes: int, seed: int, record: Path, threads: int,
           delay: int = 0) -> list[float]:
    """Returns of ``episodes`` deployed episodes (read back from their recording) on a robot whose commands act
    ``delay`` control steps late. The simulated robot waits for the planner (a 10 s deadline): this measures
    control, not latency (see bench_planner_latency.py)."""
    run("deploy", str(planner), "--shift", shift, "--episodes", str(episodes), "--seed", str(seed),
        "--threads", str(threads), "--record", str(record), "--deadline-ms", "10000",
        *(["--sim", f"randomize.action_delay=[{delay},{delay}]"] if delay else []))
    return [float(e.meta["return"]) for e in EpisodeDataset(record)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a run trained on the nominal simulator")
    p.add_argument("--shift", default="mass-1.3", help="the robot's difference (a named shift, see eval --shift)")
    p.add_argument("--k", type=int, nargs="+", default=[1, 3, 10], help="recorded episodes to fine-tune on")
    p.add_argument("--episodes", type=int, default=3, help="evaluation episodes per cell")
    p.add_argument("--weight", type=int, default=4, help="finetune --weight")
    p.add_argument("--value", action="store_true", help="finetune --value (the value and policy too)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--delay", type=int, default=0, help="the robot's commands act this many control steps late too; "
                   "the planners compensate it (planner.delay)")
    p.add_argument("--work", default=None, help="where the copies go (default: a temporary folder, removed)")
    a = p.parse_args()
    if not 0 <= a.delay:
        p.error(f"--delay {a.delay}: expected a whole number of control steps >= 0")
    comp = [f"planner.delay={a.delay}"] if a.delay else []
    shifted = lambda planner, episodes, seed, record: deploy(
        planner, a.shift, episodes, seed, record, a.threads, a.delay)
    src = Path(a.run_dir)
    RunDir(src).check_is_run()
    with contextlib.ExitStack() as stack:
        work = Path(a.work) if a.work else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="adapt-")))
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        run("export", str(src), "--out", str(work / "undelayed.onnx"))  # the reference: the simulator's own robot
        nominal = deploy(work / "undelayed.onnx", "nominal", a.episodes, EVAL_SEED, work / "eval-nominal", a.threads)
        run("export", str(src), "--out", str(work / "nominal.onnx"), *comp)
        before = shifted(work / "nominal.onnx", a.episodes, EVAL_SEED, work / "eval-shifted")
        shifted(work / "nominal.onnx", max(a.k), RECORD_SEED, work / "recorded")
        where = f"{a.shift}" + (f" with a {a.delay}-step delay (compensated)" if a.delay else "")
        print(f"nominal planner: {np.mean(nominal):.1f} on the nominal robot, {np.mean(before):.1f} on {where} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        rows = [("0 (nominal planner)", before, None)]
        for k in sorted(a.k):
            data = work / f"robot-k{k}"
            data.mkdir()
            for f in sorted((work / "recorded").glob("episode_*.npz"))[:k]:
                shutil.copy(f, data / f.name)
            copy = work / f"run-k{k}"
            shutil.copytree(src, copy, ignore=shutil.ignore_patterns(".lock", "robot", "rerun", "dreams"))
            run("finetune", str(copy), "--data", str(data), "--weight", str(a.weight), "--no-progress",
                *(["--value"] if a.value else []), f"threads={a.threads}")
            rec = RunDir(copy).records("train")[-1]
            run("export", str(copy), "--out", str(work / f"k{k}.onnx"), *comp)
            after = shifted(work / f"k{k}.onnx", a.episodes, EVAL_SEED, work / f"eval-k{k}")
            rows.append((str(k), after, rec))
            print(f"K={k}: {np.mean(after):.1f} ({', '.join(f'{x:.0f}' for x in after)}); "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    base = float(np.mean(nominal))
    print(f"\n{src} on {where}: learned planner, {a.episodes} episodes per cell (mean ± std, share of the nominal "
          f"planner's {base:.0f} on the nominal robot); error: normalised multi-step MSE on the K robot episodes\n")
    print("| K recorded episodes | return on the shifted robot | share | 1-step error before → after | "
          "5-step error before → after | simulator's held-out 5-step error before → after |")
    print("|---|---|---|---|---|---|")
    for k, r, rec in rows:
        err = ["–", "–", "–"] if rec is None else [
            f"{rec[f'{who}_multistep_mse_before'][h]:.4f} → {rec[f'{who}_multistep_mse_after'][h]:.4f}"
            for who, h in (("robot", "1"), ("robot", "5"), ("sim", "5"))]
        print(f"| {k} | {np.mean(r):.0f} ± {np.std(r):.0f} | {100 * np.mean(r) / base:.0f} % | {' | '.join(err)} |")


if __name__ == "__main__":
    main()
