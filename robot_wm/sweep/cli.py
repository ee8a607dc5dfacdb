"""``robot-wm sweep SWEEP.toml`` and ``robot-wm report SWEEP_DIR`` (no ray, torch or matplotlib at import)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robot_wm.cli_args import integer, path_arg


def cmd_sweep(a: argparse.Namespace) -> int:
    from robot_wm.cpus import available_cpus
    from robot_wm.sweep import results, spec
    from robot_wm.sweep.ray_runner import RayStartError, run_sweep

    if a.cpus is not None and a.cpus < 1:
        raise ValueError(f"--cpus {a.cpus}: expected at least 1 CPU")
    if a.cpus is not None and a.address is None and a.cpus > (have := available_cpus()):
        # probe 14: --cpus 100000 on 2 cores started every trial at once (each 3x slower, plan rates skewed)
        print(f"robot-wm sweep: --cpus {a.cpus}: this machine has {have} CPUs for the embedded Ray; using {have} "
              "(for more, join a cluster with --address)", file=sys.stderr)
        a.cpus = have
    if a.address is not None and a.cpus is not None:
        raise ValueError("--cpus sizes the embedded Ray instance; with --address the cluster's own CPUs are used "
                         "(give them to `ray start --num-cpus N` on each node)")
    sweep = spec.load(a.sweep_file)
    sweep_dir = Path(a.storage) if a.storage else sweep.default_dir()
    cpus = a.cpus if a.cpus is not None or a.address is not None else available_cpus()
    try:
        rows = run_sweep(sweep, sweep_dir, cpus=cpus, address=a.address, out=lambda s: print(s, flush=True))
    except RayStartError as e:
        print(f"robot-wm sweep: error: {e}", file=sys.stderr)
        return 1
    failed = [r for r in rows if r["status"] not in ("complete", results.STOPPED)]
    return 1 if failed else 0


def cmd_report(a: argparse.Namespace) -> int:
    from robot_wm.sweep.report import report

    report(Path(a.sweep_dir), out=a.out,
           anchors=Path(a.anchors) if a.anchors else None)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("sweep", help="run a grid of runs (tasks x seeds x overrides) on Ray, resumable",
                       description="Run every trial of a sweep file (one ordinary run each, with its own run "
                                   "directory under the sweep directory) on an embedded Ray instance bound to "
                                   "127.0.0.1, or on an existing Ray cluster (--address). Started again, it skips "
                                   "complete trials and resumes interrupted ones; writes results.csv.")
    s.add_argument("sweep_file", help="the sweep file (TOML): launch/tasks, seeds, env_steps, eval_at, overrides, [grid]")
    s.add_argument("--cpus", type=integer, default=None,
                   help="CPUs of the embedded Ray instance (default: all of this machine's); each trial takes "
                        "its config's threads")
    s.add_argument("--address", default=None,
                   help="join an existing Ray cluster (e.g. 10.0.0.5:6379, started with `ray start --head`) "
                        "instead of the embedded instance")
    s.add_argument("--storage", type=path_arg, default=None,
                   help="the sweep directory (run directories, results.csv, Ray Tune's state); default: the sweep "
                        "file's sweep_dir. With --address, a path every node reaches (a shared filesystem)")
    s.set_defaults(func=cmd_sweep)

    r = sub.add_parser("report", help="a sweep's results table and learning curves (PNG)")
    r.add_argument("sweep_dir", help="a directory written by `robot-wm sweep` (it holds results.csv)")
    r.add_argument("--out", type=path_arg, default=None, help="the PNG to write (default: SWEEP_DIR/learning_curves.png)")
    r.add_argument("--anchors", type=path_arg, default=None,
                   help="published returns to mark (task,system,env_steps,mean_return CSV; default: "
                        "bench/anchors/dmc_returns.csv of this checkout, when present)")
    r.set_defaults(func=cmd_report)
