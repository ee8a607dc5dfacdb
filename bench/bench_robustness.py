"""Robustness of trained runs to robots that differ from the training simulator: the learned planner's
return on each named shift (``sim.randomize.SHIFTS``) against its nominal return, without retraining.

    python bench/bench_robustness.py RUN [RUN ...] --episodes 3 [--shifts mass-1.3 delay-1] [--planner learned]
        [--compensate-delay]   # each delay shift once more with planner.delay set to it

Each cell is ``robot-wm eval RUN --shift S`` (the evaluation episodes are stored in the run like any
other, with the shift in their metadata). Prints a markdown table: mean return, and the share of the
run's nominal return kept (the goal for a randomised model: >= 90 % on every shift).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from robot_wm.cli import _session  # noqa: E402
from robot_wm.runner import evaluate  # noqa: E402
from sim.randomize import SHIFTS, shift_overrides  # noqa: E402


def measure(run: str, shift: str, planner: str, episodes: int, extra: tuple[str, ...] = ()) -> list[float]:
    with _session(run, [*shift_overrides(shift), *extra], progress=False,
                  command=f"bench_robustness {shift} {' '.join(extra)}".rstrip()) as s:
        model = s.latest_model() if planner in ("learned", "pets") else None
        return [r["return"] for r in evaluate(s, planner, model, episodes)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run directories (e.g. one trained nominally, one randomised)")
    p.add_argument("--shifts", nargs="*", default=list(SHIFTS), help=f"default: all of {', '.join(SHIFTS)}")
    p.add_argument("--planner", default="learned", choices=("learned", "pets"))
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--compensate-delay", action="store_true",
                   help="also measure each delay shift with the planner told the delay (planner.delay)")
    a = p.parse_args()
    cells_of = [(shift, ()) for shift in a.shifts]
    if a.compensate_delay:
        cells_of += [(shift, (f"planner.delay={SHIFTS[shift]['action_delay'][0]}",)) for shift in a.shifts
                     if SHIFTS[shift].get("action_delay", (0, 0))[0] > 0]
    rows = []
    for run in a.runs:
        nominal = measure(run, "nominal", a.planner, a.episodes)
        base = float(np.mean(nominal))
        cells = [f"{base:.0f} ± {np.std(nominal):.0f}"]
        for shift, extra in cells_of:
            r = measure(run, shift, a.planner, a.episodes, extra)
            cells.append(f"{np.mean(r):.0f} ± {np.std(r):.0f} ({100 * np.mean(r) / base:.0f} %)" if base > 0
                         else f"{np.mean(r):.0f}")
            print(f"{run} {' + '.join([shift, *extra])}: {np.mean(r):.1f} ({', '.join(f'{x:.0f}' for x in r)})",
                  flush=True)
        rows.append([run, *cells])
    print(f"\n{a.planner} planner, {a.episodes} episodes per cell (mean ± std; share of the nominal return)\n")
    names = [" + ".join([shift, *extra]) for shift, extra in cells_of]
    print("| run | nominal | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 2) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
