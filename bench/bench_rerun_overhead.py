"""How much does Rerun logging cost the control loop?

Trains a small model on one random episode, then runs learned-planner episodes alternately
without logging (the plain ``Observer``) and with the ``RerunObserver`` saving an .rrd (default
``RerunConfig`` settings unless overridden), in one process. A warm-up pair (not counted) first
pays the one-time costs (GL context, first JIT/allocations). Prints the control rate (control
steps per second of loop wall time: planning + physics + logging) of each, min/median/max over
episodes, the rate ratio with / without logging of each interleaved pair (the overhead figure is
1 - the median of those ratios), the same for CPU time per control step (all of this process's
threads: the control loop, Rerun's and the renderer's; far less sensitive than wall time to
other jobs on a shared machine), and the logging time the observer itself measured inside the
loop (logging + camera rendering) as a share of the logged episodes' wall time.

    MUJOCO_GL=egl .venv/bin/python bench/bench_rerun_overhead.py [--pairs 20] [key=value ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("MUJOCO_GL", "egl")

from robot_wm.config import RunConfig, apply_overrides  # noqa: E402
from robot_wm.observer import Observer  # noqa: E402
from robot_wm.run_dir import RunDir  # noqa: E402
from robot_wm.runner import Session  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="config overrides, e.g. planner.samples=200 rerun.every_n_steps=1")
    ap.add_argument("--pairs", type=int, default=20, help="episodes with and without logging (alternating)")
    ap.add_argument("--warmup", type=int, default=1, help="uncounted pairs first")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="bench-rerun-")
    cfg = apply_overrides(RunConfig(), ["env.max_env_steps=480", "model.max_epochs=3", *a.overrides,
                                        f"run_dir={root}", "rerun.mode=save"])
    s = Session.open(cfg.model_copy(update={"rerun": cfg.rerun.model_copy(update={"mode": "off"})}),
                     RunDir(root), progress=False)
    s.collect(s.planner("random", seed=0), "train", 0)
    model = s.train(0)
    s.cfg = cfg
    from robot_wm.viz.observer import RerunObserver

    viz = RerunObserver.for_session(s, label="bench")
    rates: dict[str, list[float]] = {"off": [], "rerun": []}
    cpu: dict[str, list[float]] = {"off": [], "rerun": []}  # process CPU seconds per control step
    main_cpu: dict[str, list[float]] = {"off": [], "rerun": []}  # the control loop's thread only
    logged_steps, logged_wall, own0 = 0, 0.0, 0.0
    for i in range(-a.warmup, a.pairs):
        for mode in (("off", "rerun") if i % 2 == 0 else ("rerun", "off")):
            s.observer = viz if mode == "rerun" else Observer()
            own = viz.overhead_s + viz.render_s
            c0, m0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
            rec = s.collect(s.planner("learned", model, seed=100 + i), "eval", 2 * (i + a.warmup) + (mode == "rerun"))
            wall, cpu_s, main_s = time.perf_counter() - t0, time.process_time() - c0, time.thread_time() - m0
            if i < 0:
                continue
            rates[mode].append(rec["control_steps"] / wall)
            cpu[mode].append(cpu_s / rec["control_steps"])
            main_cpu[mode].append(main_s / rec["control_steps"])
            if mode == "rerun":
                logged_steps += rec["control_steps"]
                logged_wall += wall
                own0 += viz.overhead_s + viz.render_s - own
    viz.close()
    print(f"task {cfg.env.task}, planner {cfg.planner.optimizer} samples={cfg.planner.samples} "
          f"horizon={cfg.planner.horizon} iterations={cfg.planner.iterations}, model hidden={cfg.model.hidden} "
          f"x{cfg.model.ensemble_size}, torch threads={cfg.threads}; rerun every_n_steps={cfg.rerun.every_n_steps} "
          f"ghosts={cfg.rerun.ghosts} camera every {cfg.rerun.camera_every_n_steps} "
          f"({cfg.rerun.camera_width}x{cfg.rerun.camera_height}); {a.pairs} pairs after {a.warmup} warm-up")
    for mode, r in rates.items():
        print(f"control rate, logging {mode:5s}: min {min(r):7.1f}  median {statistics.median(r):7.1f}  "
              f"max {max(r):7.1f} steps/s over {len(r)} episodes")
    ratios = [b / a for a, b in zip(rates["off"], rates["rerun"])]
    med = statistics.median(ratios)
    print(f"rate with / without logging per pair: min {min(ratios):.3f}  median {med:.3f}  max {max(ratios):.3f}")
    print(f"overhead (1 - median pair ratio): {100 * (1 - med):.1f}%   "
          f"[1 - ratio of median rates: {100 * (1 - statistics.median(rates['rerun']) / statistics.median(rates['off'])):.1f}%]")
    cratios = [a / b for a, b in zip(cpu["off"], cpu["rerun"])]
    print(f"CPU time per control step: without logging median {1e3 * statistics.median(cpu['off']):.2f} ms, with "
          f"{1e3 * statistics.median(cpu['rerun']):.2f} ms; ratio without / with per pair: min {min(cratios):.3f}  "
          f"median {statistics.median(cratios):.3f}  max {max(cratios):.3f} -> CPU overhead "
          f"{100 * (1 - statistics.median(cratios)):.1f}%; of it in the control loop's thread: "
          f"{1e3 * (statistics.median(main_cpu['rerun']) - statistics.median(main_cpu['off'])):.2f} ms/step, in other "
          f"threads (Rerun's, the renderer's): {1e3 * (statistics.median([c - m for c, m in zip(cpu['rerun'], main_cpu['rerun'])]) - statistics.median([c - m for c, m in zip(cpu['off'], main_cpu['off'])])):.2f} ms/step")
    print(f"logging time measured inside the loop (logging + camera rendering): "
          f"{1e3 * own0 / max(1, logged_steps):.2f} ms/step = {100 * own0 / max(logged_wall, 1e-9):.1f}% "
          f"of the logged episodes' wall time")
    print(f"recording: {viz.logger.path}")


if __name__ == "__main__":
    main()
