"""Learning-curve benchmark: evaluation return after 10k/20k/50k environment steps per task and seed,
beside the published returns at the nearest budgets (BRO at 25k/50k/100k, MR.Q at 50k/100k, TD-MPC2 at
100k, from bench/anchors/dmc_returns.csv) and our oracle planner.

Steps are environment steps (``sim.env.STEP_UNIT``: suite steps, action repeat counted; 1,000 per suite
episode), the field's unit. Every result row carries its unit, and the table refuses rows in another.

The full table takes hours on 2 cores, so this runs cell by cell: one run per (task, seed) up to the
largest --steps, evaluating at each milestone; every finished cell is appended to the results file
(bench/results/returns.jsonl, committed) and cells already there are skipped. `--table` prints it.
The default seeds (100-102) are not ones any default was tuned on.

    python bench/bench_returns.py --tasks cartpole-swingup --seeds 100 --steps 10000 20000
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
from robot_wm.sweep.report import read_anchors
from sim.env import STEP_UNIT
from sim.registry import LISTED_TASKS

HERE = Path(__file__).parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "returns.jsonl"


def launch_config(task: str) -> cfgmod.RunConfig:
    path = ROOT / "launch" / f"{task}.toml"
    return cfgmod.load(path) if path.exists() else cfgmod.apply_overrides(cfgmod.RunConfig(), [f"env.task={task}"])


def rows(results: Path) -> list[dict]:
    """Result rows in today's step unit; rows measured in another unit are never mixed in."""
    return [r for r in read_jsonl(results) if r.get("step_unit") == STEP_UNIT]


def done_cells(results: Path) -> set[tuple]:
    return {(r["task"], r["seed"], r["env_steps"], r["system"]) for r in rows(results)}


def run_cells(task: str, seed: int, steps: list[int], results: Path, threads: int | None = None) -> None:
    from robot_wm.runner import run

    todo = [s for s in steps if (task, seed, s, "robot-wm") not in done_cells(results)]
    if not todo:
        print(f"{task} seed {seed}: all cells present, skipped")
        return
    run_dir = HERE / "results" / "runs" / f"{task}-s{seed}-{max(steps)}"
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = launch_config(task).model_copy(update={"seed": seed, "run_dir": str(run_dir), "env_steps": max(steps),
                                                 "eval_at": sorted(steps)})
    if threads:
        cfg = cfg.model_copy(update={"threads": threads})
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
                               "wall_s": round(wall, 1), "plan_hz": summary["plan_hz"], "step_unit": STEP_UNIT,
                               "action_repeat": cfg.env.action_repeat})
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
                           "wall_s": round(time.perf_counter() - t0, 1), "step_unit": STEP_UNIT,
                           "plan_hz": statistics.median(r["plan_hz"] for r in recs)})
    print(f"{task} oracle: {statistics.fmean(rets):.1f}")


ANCHORS = (("bro_utd10", 25_000, "BRO @25k"), ("bro_utd10", 50_000, "BRO @50k"), ("mrq", 50_000, "MR.Q @50k"),
           ("tdmpc2", 100_000, "TD-MPC2 @100k"))


def anchors() -> dict[tuple[str, str, int], float]:
    """(task, system, env steps) -> published mean return, from bench/anchors/dmc_returns.csv."""
    return read_anchors(HERE / "anchors" / "dmc_returns.csv")


def best_at(ref: dict, task: str, steps: int) -> tuple[str, float]:
    """The best published return on ``task`` at exactly ``steps`` (any system but random)."""
    cands = [(v, sys) for (t, sys, s), v in ref.items() if t == task and s == steps and sys != "random"]
    v, sys = max(cands) if cands else (math.nan, "none")
    return sys, v


def _mean_cell(rets: list[float]) -> str:
    if not rets:
        return "not measured"
    spread = f" ± {statistics.pstdev(rets):.0f}" if len(rets) > 1 else ""
    return f"{statistics.fmean(rets):.0f}{spread} (n={len(rets)})"


def table(results: Path, steps: list[int]) -> str:
    res, ref = rows(results), anchors()
    head = (["task", "AR"] + [f"ours @{s // 1000}k" for s in steps] + [a[2] for a in ANCHORS] +
            ["best @100k", "ours @20k - best @100k", "oracle", "plan Hz", "wall s (run)"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fmt = lambda v: "–" if math.isnan(v) else f"{v:.0f}"  # noqa: E731
    for task in LISTED_TASKS:
        ours = [r for r in res if r["task"] == task and r["system"] == "robot-wm"]
        per = {s: [r["return"] for r in ours if r["env_steps"] == s] for s in steps}
        oracle = [r for r in res if r["task"] == task and r["system"] == "oracle"]
        sys, best = best_at(ref, task, 100_000)
        gap = f"{statistics.fmean(per[20_000]) - best:+.0f}" if per.get(20_000) else "–"
        lines.append("| " + " | ".join([
            task, str(ours[0]["action_repeat"]) if ours else "–", *(_mean_cell(per[s]) for s in steps),
            *(fmt(ref.get((task, a, s), math.nan)) for a, s, _ in ANCHORS), f"{best:.0f} ({sys})", gap,
            f"{oracle[0]['return']:.0f}" if oracle else "–",
            f"{statistics.median(r['plan_hz'] for r in ours):.0f}" if ours else "–",
            f"{max(r['wall_s'] for r in ours):.0f}" if ours else "–"]) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(LISTED_TASKS))
    p.add_argument("--seeds", nargs="+", type=int, default=[100, 101, 102])
    p.add_argument("--steps", nargs="+", type=int, default=[10_000, 20_000, 50_000])
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--oracle", action="store_true", help="measure the oracle planner (true simulator) instead")
    p.add_argument("--oracle-episodes", type=int, default=1)
    p.add_argument("--table", action="store_true", help="only print the table of what is measured")
    p.add_argument("--threads", type=int, help="torch threads per run (default: the launch file's)")
    a = p.parse_args()
    if not a.table:
        for task in a.tasks:
            if a.oracle:
                run_oracle(task, a.oracle_episodes, a.results)
            else:
                for seed in a.seeds:
                    run_cells(task, seed, a.steps, a.results, a.threads)
    print(table(a.results, a.steps))
    print(json.dumps({"results": str(a.results)}))


if __name__ == "__main__":
    main()
