"""``robot-wm finetune RUN --data DIR``: add recorded deployments to a run and fine-tune on them
(``robot_wm.finetune``); kept apart so that building the parser imports no torch."""

from __future__ import annotations

import argparse
import math

from robot_wm.cli_args import path_arg
from robot_wm.text import echo


def cmd_finetune(a: argparse.Namespace) -> int:
    from robot_wm.cli import DATA_FIELDS, _session
    from robot_wm.finetune import finetune

    with _session(a.run_dir, a.args, not a.no_progress, command="finetune", fixed=DATA_FIELDS,
                  trains=True) as s:
        rec = finetune(s, a.data, a.weight, progress=not a.no_progress)
    info, before, after = rec["finetune"], rec["robot_multistep_mse_before"], rec["robot_multistep_mse_after"]
    echo(f"fine-tuned round {rec['round']} on {info['sim_episodes']} simulated + {info['robot_episodes']} robot "
          f"episodes ({info['added']} new, weight {info['weight']}); multi-step mse on the robot's episodes "
          + ", ".join(f"h={k}: {_mse(before[k])} -> {_mse(after[k])}" for k in before)
          + f". Export again: robot-wm export {a.run_dir}")
    return 0


def _mse(v) -> str:
    """An error, or why there is none: "nan -> nan" for a 1-step recording said nothing (tenth probe)."""
    return f"{v:.4g}" if isinstance(v, (int, float)) and math.isfinite(v) else "n/a (the episodes are shorter)"


def register(sub) -> None:
    p = sub.add_parser("finetune", help="add recorded deployments (deploy --record DIR) to a run and fine-tune on them")
    p.add_argument("run_dir")
    p.add_argument("--data", type=path_arg, required=True, metavar="DIR", help="folder written by `robot-wm deploy --record`")
    p.add_argument("--weight", type=int, default=4, help="each robot transition counts this many times (default 4; "
                   "later `train` rounds keep the weight of the last fine-tuning)")
    p.add_argument("args", nargs="*", metavar="key=value", help="one-off overrides for this command")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_finetune)
