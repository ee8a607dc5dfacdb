"""``robot-wm finetune RUN --data DIR``: add recorded deployments to a run and fine-tune on them
(``robot_wm.finetune``); kept apart so that building the parser imports no torch."""

from __future__ import annotations

import argparse
import math

from robot_wm.cli_args import integer, path_arg
from robot_wm.text import echo


def cmd_finetune(a: argparse.Namespace) -> int:
    from robot_wm.cli import DATA_FIELDS, _session
    from robot_wm.finetune import FORGET_RATIO, finetune, forgetting

    if given := [o for o in a.args if o.partition("=")[0].strip().startswith("rerun.")]:  # a listener for nothing
        raise ValueError(f"finetune writes no Rerun recording, so {', '.join(given)} would only open one (probe 24: "
                         "rerun.mode=serve listened through the whole fine-tuning); to see the fine-tuned model on the "
                         "robot's recordings, `robot-wm dream RUN --data DIR --rrd FILE.rrd`")
    with _session(a.run_dir, a.args, not a.no_progress, command="finetune", fixed=DATA_FIELDS,
                  trains=True) as s:
        rec = finetune(s, a.data, a.weight, progress=not a.no_progress, value=a.value)
    info, before, after = rec["finetune"], rec["robot_multistep_mse_before"], rec["robot_multistep_mse_after"]
    held_b, held_a = rec["robot_heldout_multistep_mse_before"], rec["robot_heldout_multistep_mse_after"]
    echo(f"fine-tuned round {rec['round']} on {info['sim_episodes']} simulated + {info['robot_episodes']} robot "
          f"episodes ({info['added']} new{held_note(info)}, weight {info['weight']}); multi-step mse on the robot's episodes "
          "(trained on) " + ", ".join(f"h={k}: {_mse(before[k])} -> {_mse(after[k])}" for k in before)
          + "; on their held-out segments " + ", ".join(f"h={k}: {_mse(held_b[k])} -> {_mse(held_a[k])}" for k in held_b)
          + realigned_note(info) + ". " + export_advice(a.run_dir, info))
    h = s.cfg.planner.horizon
    if (grew := forgetting(rec, h)) is not None and grew > FORGET_RATIO:
        sim_b, sim_a = rec["sim_multistep_mse_before"][str(h)], rec["sim_multistep_mse_after"][str(h)]
        echo(f"warning: the fine-tuned model predicts the simulator's held-out episodes {grew:.2f}x worse "
             f"(h={h}: {_mse(sim_b)} -> {_mse(sim_a)}): it may plan worse wherever the robot's episodes did not go. "
             f"Compare `robot-wm eval {a.run_dir} --planner pets` with the previous round before deploying, or "
             "fine-tune on fewer robot episodes or a lower --weight.")
    if s.run.summary_path.exists():  # its headline stayed the round before's, without a word (probe 21)
        echo(f"note: the run's summary.json describes its own final evaluation (before this fine-tuning); evaluate "
             f"the fine-tuned round with `robot-wm eval {a.run_dir}` (on the robot: `--shift S`)")
    return 0


def export_advice(run_dir: str, info: dict) -> str:
    """The export command to run next, whole and quoted so that it pastes: it printed no --out (which export requires)
    and a planner.delay that only some of the recordings had (probe 24)."""
    import shlex

    command = f"robot-wm export {shlex.quote(str(run_dir))} --out planner.onnx"
    if not (delays := info.get("realigned_delays")):
        return f"Export again: `{command}`"
    return (f"Export again: `{command} planner.delay={delays[-1]}` for the delayed robot ({info['realigned']} of the "
            f"{info['robot_episodes']} robot episodes were recorded with a delay), without planner.delay for a robot "
            "whose commands act at once")


def realigned_note(info: dict) -> str:
    """What ``finetune``'s record says of realigned episodes (a delayed robot's), or ""."""
    note = ""
    if info.get("realigned"):
        delays = " or ".join(map(str, info["realigned_delays"]))
        note = (f"; {info['realigned']} of the robot's episodes were realigned by its delay ({delays} control steps: "
                "each state paired with the command that moved it, the first rows dropped)")
        if len(info["realigned_delays"]) > 1:  # the export named the largest without a word (probe 19)
            note += (f"; the robot was recorded at {len(info['realigned_delays'])} delays: one planner.delay fits one "
                     "robot, the export below names the largest")
    if info.get("kept_as_sent"):
        note += (f"; {info['kept_as_sent']} episodes of a delayed robot were kept as sent, as the run's simulated ones "
                 "(trained with env.randomize.action_delay, its model learned the delay: export without planner.delay)")
    if adopted := info.get("adopted"):
        note += (f"; {adopted} of the run's robot episodes were imported by an earlier fine-tuning that did not finish "
                 "(stopped), and are trained on with these")
    if short := info.get("too_short"):
        note += (f"; {len(short)} recorded episodes were left out, each holding only commands sent within the robot's "
                 f"delay of its start (no transition once realigned): {', '.join(short[:3])}"
                 + (" ..." if len(short) > 3 else ""))
    return note


def _mse(v) -> str:
    """An error, or why there is none: "nan -> nan" for a 1-step recording said nothing (tenth probe)."""
    if isinstance(v, (int, float)) and math.isinf(v):  # printed as "n/a (the episodes are shorter)" (probe 13)
        return "inf (the model's predictions overflowed)"
    return f"{v:.4g}" if isinstance(v, (int, float)) and math.isfinite(v) else "n/a (the episodes are shorter)"


def register(sub) -> None:
    p = sub.add_parser("finetune", help="add recorded deployments (deploy --record DIR) to a run and fine-tune on them")
    p.add_argument("run_dir")
    p.add_argument("--data", type=path_arg, required=True, metavar="DIR", help="folder written by `robot-wm deploy --record`")
    p.add_argument("--weight", type=integer, default=4, help="each robot transition counts this many times (default 4; "
                   "later `train` rounds keep the weight of the last fine-tuning)")
    p.add_argument("--value", action="store_true", help="fine-tune the value and policy too (off by default: on "
                   "cheetah-run they made the planner worse; the world model alone adapted it)")
    p.add_argument("args", nargs="*", metavar="key=value", help="one-off overrides for this command")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_finetune)


def held_note(info: dict) -> str:
    """', K of --data held already' where files of the folder given were skipped (each is imported once, by content)."""
    n = info.get("held_already", 0)
    return f", {n} of --data held already (the same recording imported before, or a copy of one)" if n else ""
