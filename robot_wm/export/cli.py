"""``robot-wm export RUN_DIR_OR_CHECKPOINT --out planner.onnx [--what planner|dynamics] [--noise ...]``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from robot_wm.cli_args import path_arg
from robot_wm.io import check_parent_folder, check_replaceable
from robot_wm.text import echo

SLOW_EXPORT_STEPS = 100
"""Above this many unrolled planning steps (horizon x iterations) export warns that it will take minutes."""


def uncompensated_note(meta: dict, delay: int) -> str | None:
    """A warning where the checkpoint was fine-tuned on a robot's recordings realigned by a delay that the planner
    being exported does not compensate (exported without a word: probe 19), else None."""
    ft = meta.get("finetune")  # a fine-tuned round, or a later round trained on the same robot data
    delays = ft.get("realigned_delays") if isinstance(ft, dict) else meta.get("robot_realigned_delays")
    if not isinstance(delays, list) or not delays or delay in delays:
        return None
    said = " or ".join(map(str, delays))
    return (f"warning: the model was fine-tuned on a robot's recordings realigned by its delay ({said} control steps: "
            f"the model learned the robot without it), but this planner compensates {delay}: on that robot, export "
            f"with planner.delay={delays[-1]}")


def check_deployable(spec, act_dim: int) -> None:
    """Refuse a planner whose noise input the runtime refuses to allocate: `export planner.samples=100000000` wrote a
    file that `deploy` always refused (probe 20)."""
    import math

    from robot_wm.runtime.session import MAX_INPUT_ELEMENTS

    shape = spec.noise_shape(act_dim)
    if (n := math.prod(shape)) > MAX_INPUT_ELEMENTS:
        raise ValueError(f"planner.iterations x samples x horizon x action size = {' x '.join(map(str, shape))} = "
                         f"{n:,} noise values per step, above the {MAX_INPUT_ELEMENTS:,} the runtime allocates: "
                         "lower planner.samples (or iterations, horizon)")


def cmd_export(a: argparse.Namespace) -> int:
    """Read-only on the run directory: no lock is taken (a run being trained can be exported meanwhile)."""
    from policies.mpc.step import StepSpec
    from robot_wm.export.onnx_export import export_dynamics, export_planner, model_flops
    from robot_wm.export.source import control_period, load_source
    from robot_wm.finetune import double_delay_note

    check_out(a.out)
    made = missing_folder(a.out)  # created by the write: said, so that a typo'd folder does not pass unseen (probe 25)
    made = f" (created the folder {str(made)!r})" if made is not None else ""
    if a.what == "dynamics" and a.overrides:  # planner.delay=1 was taken, did nothing and was named in the file (probe 21)
        raise ValueError(f"{', '.join(a.overrides)}: --what dynamics exports the world model alone, which no override "
                         "changes (they set how the planner plans); export it without them")
    if a.what == "dynamics" and a.noise is not None:  # taken and ignored, where overrides were refused (probe 28)
        raise ValueError(f"--noise {a.noise}: --what dynamics exports the world model alone, which draws no noise "
                         "(the planner's samples do); export it without --noise")
    noise = a.noise or "input"
    src = load_source(a.source, a.overrides)
    common = {"source_sha256": src.sha256, "source_checkpoint": src.checkpoint.name, "task": src.cfg.env.task,
              "action_repeat": src.cfg.env.action_repeat, "control_period": repr(control_period(src.cfg))}
    if a.overrides:  # one-off: applied to this file only (the run's config.toml is never changed), and named in it
        import json

        common["overrides"] = json.dumps(list(a.overrides))
    if a.what == "dynamics":
        export_dynamics(src.model, a.out, common)
        echo(f"wrote {a.out}{made}: dynamics ensemble ({src.model.members} members) from {src.checkpoint}")
        return 0
    spec = StepSpec.from_config(src.cfg.planner)
    check_deployable(spec, src.model.spec.act_dim)
    (goal, note), g = default_goal(src.cfg), src.cfg.goal
    if note:
        echo(note)
    value = src.value if g.uses_value else None
    # the run's episodes too (a delayed one-off collect trained it); a checkpoint outside its run: the config alone
    sim = _episodes_for_note(src.run) if src.cfg.planner.delay and src.run is not None else []
    if note := double_delay_note(src.cfg, sim, src.cfg.planner.delay):  # export takes no env.* override: the run's
        echo(f"robot-wm export: {note}", file=sys.stderr, flush=True)
    if note := uncompensated_note(src.meta, src.cfg.planner.delay):
        echo(f"robot-wm export: {note}", file=sys.stderr, flush=True)
    if note := slow_export_note(spec):  # horizon 200 ran for minutes without a word
        echo(f"robot-wm export: {note}", file=sys.stderr, flush=True)
    proto = export_planner(src.model, spec, a.out, noise=noise, metadata=common, value=value, goal=goal,
                           reward_weight=g.reward_weight)
    if note := _too_big_here_note(proto):
        echo(f"robot-wm export: {note}", file=sys.stderr, flush=True)
    extras = (f"value + {spec.policy_samples} policy proposals" if value is not None
              else "no value (imagined reward only)" if goal is None else "no value")
    if goal is not None:
        extras += f", goal input (default {[round(float(x), 4) for x in goal.state]}, reward weight {g.reward_weight:g})"
    if spec.delay:
        extras += f", commands act {spec.delay} control step{'s' * (spec.delay > 1)} late (planner.delay)"
    echo(f"wrote {a.out}{made}: {spec.optimizer} planner, horizon {spec.horizon}, {spec.samples} samples x "
          f"{spec.iterations} iterations, {src.model.members} members, {extras}, noise {noise}, "
          f"{model_flops(src.model, spec, value) / 1e9:.2f} GFLOP/step, from {src.checkpoint}")
    return 0


def _too_big_here_note(proto) -> str:
    """A word where the planner written needs more memory a step than ``deploy`` allows on this computer: 3,000,000
    samples (36.7 GB a step) were written without one, and deploy refused the file here (probe 39). It may be meant
    for a bigger robot computer, so it is written."""
    from robot_wm.sysmem import beyond_share

    need = int({p.key: p.value for p in proto.metadata_props}.get("planner_memory_bytes", 0))
    if not (too_much := beyond_share(need)):
        return ""
    return (f"this planner needs about {need / 1e9:.1f} GB a planning step, {too_much}: `robot-wm deploy` refuses it "
            "here (fewer planner.samples or a shorter horizon fit)")


def missing_folder(out: str) -> Path | None:
    """The outermost folder of ``out`` that does not exist yet (writing ``out`` creates it), or None."""
    missing = None
    for p in (Path(out).parent, *Path(out).parent.parents):
        if os.path.lexists(p):
            break
        missing = p
    return missing


def slow_export_note(spec) -> str | None:
    """A warning for a planner whose unrolled graph takes minutes to trace (None where it does not)."""
    if (unrolled := spec.horizon * spec.iterations) <= SLOW_EXPORT_STEPS:
        return None
    return (f"horizon {spec.horizon} x {spec.iterations} iterations = {unrolled} planning steps unrolled into the "
            f"graph: tracing them takes minutes ({SLOW_EXPORT_STEPS}: about 2 minutes on 2 cores); a shorter "
            "planner.horizon exports faster")


def default_goal(cfg) -> tuple:
    """(the goal a goal-conditioned export starts with, a note for the user or ""); (None, "") without a goal.
    The robot sets its own through the ``goal`` input; this default is ``goal.state``, or ``goal.joints``
    observed from the task's start state for ``cfg.seed``. A joints goal's dimensions that differ between
    episode starts (e.g. a target drawn per episode) cannot hold for every episode in a fixed file: without
    ``goal.weights`` they get weight 0, with them the note warns."""
    if not cfg.goal.active:
        return None, ""
    import numpy as np

    from robot_wm.goal import Goal
    from sim.goal import resolve_goal
    from sim.registry import make_env

    env, g = make_env(cfg.env), cfg.goal
    goals = []
    for k in range(3 if g.joints else 1):
        env.reset((cfg.seed + k) % 2**32)  # the seed is at most 2**32 - 1: wrap, as episodes do
        goals.append(resolve_goal(env, g.state, g.joints, g.weights))
    goal = goals[0]
    varies = np.any([np.abs(x.state - goal.state) > 1e-5 for x in goals], axis=0) & (goal.weights > 0)
    if not varies.any():
        return goal, ""
    dims = np.flatnonzero(varies).tolist()
    if g.weights is not None:
        return goal, (f"warning: state dimensions {dims} of this goal differ from one episode start to the next "
                      "(they depend on more than the named joints); with your goal.weights they stay weighted")
    weights = np.where(varies, 0.0, goal.weights).astype(np.float32)
    if not weights.any():
        raise ValueError(f"goal.joints {g.joints}: every dimension they set differs between episode starts, so no "
                         "fixed goal fits every episode; give goal.state (or goal.weights) instead")
    return Goal(goal.state, weights), (f"note: state dimensions {dims} of this goal differ between episode starts "
                                       "(they depend on more than the named joints): weight 0 in the exported "
                                       "default (the robot may set its own goal_weights)")


def check_out(out: str) -> None:
    """Refuse an ``--out`` that is not a new or existing ONNX file path before anything is loaded: a
    directory, or any other file (a checkpoint, a config) that the export would replace."""
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out {out!r} is a directory; give a file path such as {str(path / 'planner.onnx')!r}")
    if path.suffix.lower() != ".onnx":
        what = "would replace that file" if path.exists() else "expected a path ending in .onnx"
        raise ValueError(f"--out {out!r} is not an .onnx path ({what}); e.g. --out planner.onnx")
    check_parent_folder(out, "--out")  # below a file: the whole export ran, then "Not a directory" (probe 18)
    folder = next(p for p in Path(out).absolute().parents if p.exists())
    if not os.access(folder, os.W_OK | os.X_OK):  # found only when the file was written, after the export (probe 29)
        raise ValueError(f"--out {out!r}: cannot write into {str(folder)!r} (Permission denied): make it writable or "
                         "choose another --out")
    # an ONNX model is a protobuf whose first field is its IR version (tag byte 0x08)
    check_replaceable(out, "--out", "an ONNX file", lambda head: head[:1] == b"\x08")


def _episodes_for_note(run) -> list:
    """The run's training episodes for a warning (none where they cannot be read: a damaged one refuses no export, and
    a read-only command creates no folder)."""
    from robot_wm.data.dataset import EpisodeDataset

    folder = run.root / "episodes"
    try:
        return list(EpisodeDataset(folder)) if folder.is_dir() else []
    except (OSError, ValueError):
        return []


def register(sub) -> None:
    p = sub.add_parser("export", help="export the planner (or the dynamics ensemble) as one ONNX file")
    p.add_argument("source", help="run directory (its latest checkpoint) or a checkpoint NAME.json")
    p.add_argument("overrides", nargs="*", help="key=value config overrides (e.g. planner.samples=200)")
    p.add_argument("--out", type=path_arg, required=True, help="output .onnx path (written atomically)")
    p.add_argument("--what", choices=("planner", "dynamics"), default="planner")
    p.add_argument("--noise", choices=("internal", "input"), default=None,
                   help="input (default): noise is an input, filled by the runtime from a seeded generator, so a "
                        "seed makes deploy repeatable; internal: the graph draws its own (unseeded) noise")
    p.set_defaults(func=cmd_export)
