"""How much does Rerun logging cost the control loop?

Trains a small model on one random episode, then runs learned-planner episodes alternately
without logging (the plain ``Observer``) and with the ``RerunObserver`` saving an .rrd (default
``RerunConfig`` settings unless overridden), in one process. Prints the control rate (control
steps per second of loop wall time, planning + physics + logging) of each, min/median/max over
episodes, and the overhead = 1 - median rate with logging / median rate without.

    MUJOCO_GL=egl .venv/bin/python bench/bench_rerun_overhead.py [--pairs 3] [key=value ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("MUJOCO_GL", "egl")

from robot_wm.config import RunConfig, apply_overrides  # noqa: E402
from robot_wm.run_dir import RunDir  # noqa: E402
from robot_wm.runner import Observer, Session  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="config overrides, e.g. planner.samples=200 rerun.every_n_steps=1")
    ap.add_argument("--pairs", type=int, default=3, help="episodes with and without logging (alternating)")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="bench-rerun-")
    cfg = apply_overrides(RunConfig(), ["env.max_env_steps=480", "model.max_epochs=3", *a.overrides,
                                        f"run_dir={root}", "rerun.mode=save"])
    s = Session.open(cfg.model_copy(update={"rerun": cfg.rerun.model_copy(update={"mode": "off"})}),
                     RunDir(root), progress=False)
    s.collect(s.planner("random", seed=0), "train", 0)
    model = s.train(None, 0)
    s.cfg = cfg
    from robot_wm.viz.observer import RerunObserver

    viz = RerunObserver.for_session(s, label="bench")
    rates: dict[str, list[float]] = {"off": [], "rerun": []}
    for i in range(a.pairs):
        for mode in (("off", "rerun") if i % 2 == 0 else ("rerun", "off")):
            s.observer = viz if mode == "rerun" else Observer()
            t0 = time.perf_counter()
            rec = s.collect(s.planner("learned", model, seed=100 + i), "eval", 2 * i + (mode == "rerun"))
            rates[mode].append(rec["control_steps"] / (time.perf_counter() - t0))
    viz.close()
    print(f"task {cfg.env.task}, planner {cfg.planner.optimizer} samples={cfg.planner.samples} "
          f"horizon={cfg.planner.horizon} iterations={cfg.planner.iterations}, model hidden={cfg.model.hidden} "
          f"x{cfg.model.ensemble_size}; rerun every_n_steps={cfg.rerun.every_n_steps} ghosts={cfg.rerun.ghosts} "
          f"camera every {cfg.rerun.camera_every_n_steps} ({cfg.rerun.camera_width}x{cfg.rerun.camera_height})")
    for mode, r in rates.items():
        print(f"control rate, logging {mode:5s}: min {min(r):7.1f}  median {statistics.median(r):7.1f}  "
              f"max {max(r):7.1f} steps/s over {len(r)} episodes")
    off, on = statistics.median(rates["off"]), statistics.median(rates["rerun"])
    ratios = [b / a for a, b in zip(rates["off"], rates["rerun"])]
    print(f"rate with / without logging per pair: min {min(ratios):.3f}  median {statistics.median(ratios):.3f}  "
          f"max {max(ratios):.3f}")
    print(f"overhead (1 - median rate ratio): {100 * (1 - on / off):.1f}%   "
          f"[logging's own time in on_step: {1e3 * viz.overhead_s / max(1, viz.logger.step + 1):.2f} ms/step]")
    print(f"recording: {viz.logger.path}")


if __name__ == "__main__":
    main()
