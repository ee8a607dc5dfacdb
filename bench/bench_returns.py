"""Learning-curve benchmark: evaluation return after 10k/20k/50k env steps per task and seed,
beside the published TD-MPC2 / DreamerV3 / SAC returns at 100k steps and our oracle planner.

The full table takes hours on 2 cores, so this runs cell by cell: one run per (task, seed) up to the
largest --steps, evaluating at each milestone; every finished cell is appended to the results file
and cells already there are skipped. Run as much as you have time for; `--table` prints it.

    python bench/bench_returns.py --tasks cartpole-swingup --seeds 0 1 2 --steps 10000
    python bench/bench_returns.py --oracle --tasks cartpole-swingup     # oracle reference
    python bench/bench_returns.py --table                               # markdown table
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import statistics
import time
from pathlib import Path

from robot_wm import config as cfgmod
from robot_wm.io import append_jsonl, read_jsonl
from sim.registry import LISTED_TASKS

HERE = Path(__file__).parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "returns.jsonl"


def launch_config(task: str) -> cfgmod.RunConfig:
    path = ROOT / "launch" / f"{task}.toml"
    return cfgmod.load(path) if path.exists() else cfgmod.apply_overrides(cfgmod.RunConfig(), [f"env.task={task}"])


def done_cells(results: Path) -> set[tuple]:
    return {(r["task"], r["seed"], r["env_steps"], r["system"]) for r in read_jsonl(results)}


def run_cells(task: str, seed: int, steps: list[int], results: Path) -> None:
    from robot_wm.runner import run

    todo = [s for s in steps if (task, seed, s, "robot-wm") not in done_cells(results)]
    if not todo:
        print(f"{task} seed {seed}: all cells present, skipped")
        return
    run_dir = HERE / "results" / "runs" / f"{task}-s{seed}-{max(steps)}"
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = launch_config(task).model_copy(update={"seed": seed, "run_dir": str(run_dir), "env_steps": max(steps),
                                                 "eval_at": sorted(steps)})
    t0 = time.perf_counter()
    summary = run(cfg, progress=True)
    wall = time.perf_counter() - t0
    curve = {int(k): v for k, v in summary["learning_curve"].items()}
    for s in todo:
        hit = min((k for k in curve if k >= s), default=None)
        if hit is None:
            continue
        rets = curve[hit]
        append_jsonl(results, {"task": task, "seed": seed, "env_steps": s, "system": "robot-wm",
                               "return": statistics.fmean(rets), "episodes": len(rets), "measured_at": hit,
                               "wall_s": round(wall, 1), "plan_hz": summary["plan_hz"]})
        print(f"{task} seed {seed} @ {s} steps: {statistics.fmean(rets):.1f}")


def run_oracle(task: str, episodes: int, results: Path) -> None:
    from robot_wm.run_dir import RunDir
    from robot_wm.runner import Session, evaluate

    if (task, 0, 0, "oracle") in done_cells(results):
        print(f"{task} oracle: present, skipped")
        return
    run_dir = HERE / "results" / "runs" / f"{task}-oracle"
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = launch_config(task).model_copy(update={"run_dir": str(run_dir)})
    s = Session.open(cfg, RunDir(run_dir), progress=True)
    t0 = time.perf_counter()
    recs = evaluate(s, "oracle", None, episodes)
    rets = [r["return"] for r in recs]
    append_jsonl(results, {"task": task, "seed": 0, "env_steps": 0, "system": "oracle",
                           "return": statistics.fmean(rets), "episodes": len(rets),
                           "wall_s": round(time.perf_counter() - t0, 1),
                           "plan_hz": statistics.median(r["plan_hz"] for r in recs)})
    print(f"{task} oracle: {statistics.fmean(rets):.1f}")


def anchors() -> dict[tuple[str, str], float]:
    rows = [r for r in (HERE / "anchors" / "dmc_returns.csv").read_text().splitlines() if not r.startswith("#")]
    return {(r["task"], r["system"]): float(r["mean_return"])
            for r in csv.DictReader(rows) if r["env_steps"] == "100000"}


def table(results: Path, steps: list[int]) -> str:
    res = read_jsonl(results)
    ref = anchors()
    head = (["task"] + [f"ours @{s // 1000}k" for s in steps] +
            ["oracle", "TD-MPC2 @100k", "DreamerV3 @100k", "SAC @100k", "plan Hz", "wall s (run)", "gap to TD-MPC2 @20k"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task in LISTED_TASKS:
        cells, at20 = [], None
        for s in steps:
            rets = [r["return"] for r in res if r["task"] == task and r["env_steps"] == s and r["system"] == "robot-wm"]
            if rets:
                spread = statistics.pstdev(rets) if len(rets) > 1 else 0.0
                cells.append(f"{statistics.fmean(rets):.0f} ± {spread:.0f} (n={len(rets)})")
                at20 = statistics.fmean(rets) if s == 20000 else at20
            else:
                cells.append("not measured")
        oracle = [r for r in res if r["task"] == task and r["system"] == "oracle"]
        ours = [r for r in res if r["task"] == task and r["system"] == "robot-wm"]
        hz = f"{statistics.median(r['plan_hz'] for r in ours):.0f}" if ours else "–"
        wall = f"{max(r['wall_s'] for r in ours):.0f}" if ours else "–"
        td = ref.get((task, "tdmpc2"), math.nan)
        gap = f"{at20 - td:+.0f}" if at20 is not None else "not measured"
        lines.append("| " + " | ".join([task, *cells, f"{oracle[0]['return']:.0f}" if oracle else "not measured",
                                        f"{td:.0f}", f"{ref.get((task, 'dreamerv3'), math.nan):.0f}",
                                        f"{ref.get((task, 'sac'), math.nan):.0f}", hz, wall, gap]) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(LISTED_TASKS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", nargs="+", type=int, default=[10_000, 20_000, 50_000])
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--oracle", action="store_true", help="measure the oracle planner (true simulator) instead")
    p.add_argument("--oracle-episodes", type=int, default=1)
    p.add_argument("--table", action="store_true", help="only print the table of what is measured")
    a = p.parse_args()
    if not a.table:
        for task in a.tasks:
            if a.oracle:
                run_oracle(task, a.oracle_episodes, a.results)
            else:
                for seed in a.seeds:
                    run_cells(task, seed, a.steps, a.results)
    print(table(a.results, a.steps))
    print(json.dumps({"results": str(a.results)}))


if __name__ == "__main__":
    main()
