"""How a sweep's wall clock scales with the CPUs of its embedded Ray instance: the same sweep file run
once per CPU count (``robot-wm sweep FILE --cpus N`` into a fresh directory each), then the speedup
over the first count, the parallel efficiency and the trials' own wall clock (which grows when
trials share memory bandwidth).

    .venv/bin/python bench/bench_sweep_scaling.py bench/sweep_scaling.toml --cpus 1 4 16 [--repeats 1]

Every trial takes ``threads`` CPUs (1 in the sweep files of ``bench/``), so N CPUs run N trials at once.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def run_once(sweep_file: Path, cpus: int, storage: Path) -> dict:
    cmd = [sys.executable, "-m", "robot_wm.cli", "sweep", str(sweep_file), "--cpus", str(cpus), "--storage", str(storage)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall = time.perf_counter() - t0
    rows = list(csv.DictReader((storage / "results.csv").open())) if (storage / "results.csv").exists() else []
    done = [r for r in rows if r.get("status") == "complete"]
    if proc.returncode != 0 or len(done) != len(rows) or not rows:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"sweep --cpus {cpus} failed (exit {proc.returncode}, {len(done)}/{len(rows)} trials complete)")
    trial_s = [float(r["wall_s"]) for r in done]
    return {"cpus": cpus, "wall_s": wall, "trials": len(done), "trial_s_mean": float(np.mean(trial_s)),
            "trial_s_sum": float(np.sum(trial_s))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep_file", type=Path)
    p.add_argument("--cpus", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--repeats", type=int, default=1, help="runs per CPU count; the table shows min/median/max")
    p.add_argument("--json", help="write the measurements here too")
    a = p.parse_args(argv)
    if any(c < 1 for c in a.cpus) or a.repeats < 1:
        p.error(f"--cpus {a.cpus} and --repeats {a.repeats}: expected positive counts")
    print(f"{os.cpu_count()} CPUs on this machine; sweep {a.sweep_file}; CPU counts {a.cpus}, {a.repeats} repeat(s)",
          flush=True)
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="sweep_scaling_") as tmp:
        for rep in range(a.repeats):
            for cpus in a.cpus:
                r = run_once(a.sweep_file.resolve(), cpus, Path(tmp) / f"r{rep}_cpus{cpus}")
                results.append(r)
                print(f"  repeat {rep + 1}: --cpus {cpus:>3}: {r['wall_s']:7.1f} s for {r['trials']} trials "
                      f"(a trial's own wall clock {r['trial_s_mean']:.1f} s on average)", flush=True)

    def mmm(xs) -> str:
        return f"{min(xs):.1f} / {float(np.median(xs)):.1f} / {max(xs):.1f}"

    base = [r["wall_s"] for r in results if r["cpus"] == a.cpus[0]]
    print(f"\n{'cpus':>5} {'sweep wall s (min/med/max)':>28} {'speedup vs ' + str(a.cpus[0]) + ' CPU(s)':>22} "
          f"{'efficiency':>11} {'trial s (mean)':>15}")
    for cpus in a.cpus:
        walls = [r["wall_s"] for r in results if r["cpus"] == cpus]
        speed = [b / w for b, w in zip(base, walls, strict=True)]  # within one repeat: same machine state
        eff = [s * a.cpus[0] / cpus for s in speed]
        trial = [r["trial_s_mean"] for r in results if r["cpus"] == cpus]
        print(f"{cpus:>5} {mmm(walls):>28} {mmm(speed):>22} {mmm([e * 100 for e in eff]) + ' %':>11} "
              f"{float(np.median(trial)):>15.1f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"sweep": str(a.sweep_file), "machine_cpus": os.cpu_count(),
                                            "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
