"""``robot-wm`` command line: run, collect, train, eval, whatif (and the commands registered below)."""

from __future__ import annotations

import sys

STARTING_STOPPED = "robot-wm: interrupted while starting; nothing was written."
"""Said for a Ctrl-C before a command began (its modules loading, its arguments parsed): one line, not a traceback."""

try:  # Ctrl-C in the first moments: a traceback from inside numpy's import (probe 36)
    import argparse
    import contextlib
    import ctypes
    import ctypes.util
    import errno
    import importlib
    import logging
    import os
    import signal
    import threading
    import unicodedata
    from collections import Counter
    from pathlib import Path

    import numpy as np

    from robot_wm import config as cfgmod
    from robot_wm.cli_args import integer, once_everywhere, path_arg, seed, whole
    from robot_wm.io import STOP_SIGNALS, RunLockedError, dangling_link
    from robot_wm.text import OutputGuard
    from robot_wm.viz.cli import add_rerun_flag, rerun_overrides, warn_network
except KeyboardInterrupt:
    sys.stderr.write(STARTING_STOPPED + "\n")
    raise SystemExit(130) from None

# Modules that add their own subcommands through ``register(subparsers)``.
PLUGINS: list[str] = ["robot_wm.export.cli", "robot_wm.runtime.cli", "robot_wm.viz.cli", "robot_wm.finetune_cli",
                     "robot_wm.sweep.cli", "robot_wm.dream_cli"]


def _is_launch_arg(arg: str) -> bool:
    """A launch file: an argument without '=', or an existing .toml file whose path holds one (a sweep's trial
    folder, `.../cartpole-swingup-s1-planner.samples=256/my.toml`, was read as an override: probe 34)."""
    return "=" not in arg or (arg.lower().endswith(".toml") and os.path.isfile(arg))


def _looks_like_equals(c: str) -> bool:
    """A character other than '=' that reads as one: '＝', '⁼', '⩵' (NFKC holds '='), '꞊' (an EQUALS SIGN by name),
    '゠' (a DOUBLE HYPHEN)."""
    name = unicodedata.name(c, "")
    return c != "=" and ("=" in unicodedata.normalize("NFKC", c) or "EQUALS" in name or "DOUBLE HYPHEN" in name)


def _split_launch(args: list[str]) -> tuple[str | None, list[str]]:
    is_launch = [_is_launch_arg(a) for a in args]
    launch = [a for a, yes in zip(args, is_launch, strict=True) if yes]
    if len(launch) > 1:
        raise cfgmod.ConfigError(f"expected at most one launch file, got {launch}")
    if launch and not launch[0].strip():
        raise cfgmod.ConfigError("the launch file argument is empty ('' : an unset shell variable?); pass a "
                                 "launch file path, or nothing for the embedded default")
    for a in launch:  # 'planner.samples＝64' was "launch file ... does not exist" (probes 36, 37: '⩵', '꞊', '゠')
        if (like := [c for c in dict.fromkeys(a) if _looks_like_equals(c)]) and not os.path.exists(a):
            raise cfgmod.ConfigError(f"{a!r} holds {', '.join(f'{c!r} (U+{ord(c):04X})' for c in like)}, not '=': no "
                                     "launch file has that name; an override is written key=value with a plain '='")
    return (launch[0] if launch else None), [a for a, yes in zip(args, is_launch, strict=True) if not yes]


def resolve_config(launch: str | None, overrides: list[str]) -> cfgmod.RunConfig:
    """The launch file (or the default) plus overrides. A launch file may not set network settings (``load``)."""
    cfg = cfgmod.load(launch) if launch is not None else cfgmod.RunConfig()
    return cfgmod.apply_overrides(cfg, overrides)


def _check_run_dir_arg(run_dir: str) -> None:
    if not str(run_dir).strip():
        raise cfgmod.ConfigError("the run directory argument is empty ('' : an unset shell variable?)")
    try:
        cfgmod.check_utf8(run_dir, "the run directory")
    except ValueError as e:
        raise cfgmod.ConfigError(str(e)) from None


# Fields that say what a stored transition means: collect and train refuse to change them on an existing run.
DATA_FIELDS = ("env.task", "env.action_repeat", "env.substeps", "env.mjcf", "env.reward", "env.observe")


# What a run's checkpoints hold (the networks' sizes, the elite members, the value's discount), so no command's
# override can change them: `eval value.discount=0.5` and `eval model.elites=2` were recorded and ignored.
ARCHITECTURE_FIELDS = ("model.ensemble_size", "model.hidden", "model.layers", "model.activation", "model.elites",
                       "value.q_heads", "value.hidden", "value.layers", "value.discount")


TRAINING_FIXED = ("value.enabled",)
"""What a command that writes a checkpoint round (train, finetune) may not change one-off: `train RUN
value.enabled=false` wrote a round without the value, and the next plain train started a new one (tenth probe)."""
MAIN_JOB_ONLY = ("env_steps", "seed_episodes", "eval_episodes", "eval_at")
"""What only the main job reads (``robot-wm run``, which continues a run with ``--resume``): `finetune RUN
env_steps=99999` was taken and recorded (probe 22)."""
TRAINING_SETTINGS = ("model.lr", "model.weight_decay", "model.batch_size", "model.max_epochs", "model.patience",
                     "model.val_fraction", "value.lr", "value.batch_size", "value.updates_per_step", "value.n_step",
                     "value.tau", "value.entropy_coef")
"""How a round is trained: only train and finetune read them (`eval RUN value.lr=0.5` was taken: probe 22)."""
PLANS_NOTHING = tuple(f"planner.{k}" for k in cfgmod.PlannerConfig.model_fields if k not in ("horizon", "delay"))
"""What train and finetune take no override of: they plan nothing, and the round they write holds no planner setting
(`finetune RUN --data D planner.samples=64` was taken and recorded, probe 21). ``planner.horizon`` sets the longest
multi-step error they report; ``planner.delay`` has its own message."""


def _session(run_dir: str, overrides: list[str], progress: bool, *, lock: bool = True, command: str = "",
             fixed: tuple[str, ...] = (), trains: bool = False, collects: bool = False, plans: bool = True):
    """A session on an existing run directory: its saved config plus this command's one-off ``overrides``
    (never saved; every record the command writes names them). ``fixed``: fields the overrides may not
    change. ``lock``: hold the run's writer lock (every command that writes). ``plans``: False where the command acts
    with random actions (``planner.*`` is then refused: it was recorded and unused, probe 23)."""
    from robot_wm.run_dir import RunDir
    from robot_wm.runner import Session

    _check_run_dir_arg(run_dir)
    run = RunDir(run_dir)
    run.check_is_run()
    saved = run.load_config()
    cfg = cfgmod.apply_overrides(saved, overrides)
    if cfg.env.task != saved.env.task:  # one task in the other spelling "cannot change env.task" (probe 17)
        from sim.dmc import task_key

        if task_key(cfg.env.task) == task_key(saved.env.task):
            cfg = cfgmod.apply_overrides(cfg, [f"env.task={saved.env.task}"])
    changes = cfgmod.changed_fields(saved, cfg)
    if cfg.value.enabled and not saved.value.enabled:  # eval/export planned without one and recorded it (probe 14)
        raise cfgmod.ConfigError(
            f"robot-wm {command} cannot add a value to the run {str(run.root)!r} (value.enabled=true): it was trained "
            "without one, and a value learns beside the world model from the run's start; start a new run with "
            "value.enabled=true (the default)")
    for fields, why in ((ARCHITECTURE_FIELDS, ("its checkpoints hold the run's (networks, elites, the value's "
                                               "discount)")),  # train and export
                        (fixed, "its episodes were collected with the run's values"),  # kept them, exit 0, before
                        (("run_dir",), "the run is the command's RUN argument (the override was ignored)"),
                        (TRAINING_FIXED if trains else (), ("the round it writes would drop the run's value, and "
                         "the next round would start a new one; to plan without the value: `robot-wm eval RUN "
                         "--planner pets` or `robot-wm export RUN value.enabled=false`")),
                        (() if collects else cfgmod.TRAINING_ONLY, "it acts on training episodes only, which this "
                         "command does not collect"),
                        (cfgmod.ACTING_ONLY if collects else (), ("it acts on evaluation, export and deployment "
                                                                  "only (training episodes plan with the value heads' "
                                                                  "mean, never pessimistic nor guarded): set it on "
                                                                  "eval, export or deploy")),
                        (("env.randomize", "env.max_env_steps", "env.reset") if trains else (), (
                            "it acts on collected episodes only, and this command collects none (`train RUN "
                            "'env.randomize.mass=[2,2]'` was recorded and unused: probe 13; `finetune RUN --data D "
                            "env.max_env_steps=400`: probe 24)")),
                        (MAIN_JOB_ONLY, ("they set the main job (`robot-wm run`): a run not yet complete continues "
                                         f"with `robot-wm run run_dir={run.root} --resume env_steps=N` (or eval_at, "
                                         "eval_episodes); other settings need a new run_dir")),
                        (() if trains else TRAINING_SETTINGS, (f"they set how a round is trained, and `{command}` "
                                                               "trains nothing (train and finetune do)")),
                        (PLANS_NOTHING if trains else (), ("it plans nothing, and the round it writes holds no planner "
                                                            "setting; set planner.* on eval, export or deploy")),
                        # planner.delay on random actions has its own message (_check_no_delay)
                        (() if plans else (*PLANS_NOTHING, "planner.horizon"), "random actions plan nothing")):
        if bad := [k for k in changes if any(k == f or k.startswith(f + ".") for f in fields)]:  # a section: its keys
            old, new = cfgmod.flat(saved), cfgmod.flat(cfg)
            raise cfgmod.ConfigError(
                f"robot-wm {command} cannot change {', '.join(f'{k} (the run has {old[k]!r}, got {new[k]!r})' for k in bad)}"
                f" on the run {str(run.root)!r}: {why}; use another run_dir")
    warn_network(cfg)
    run.overrides = cfgmod.changes(saved, cfg)  # what this command changes, named in every record it writes
    # what the command runs is what must fit: `eval` refused by the training estimate could not lower it (review)
    return Session.open(cfg, run, progress, lock=lock, memory=("training",) if trains else ("planner",),
                        writes=command)


def cmd_run(a: argparse.Namespace) -> int:
    from robot_wm.report import print_summary
    from robot_wm.run_dir import RunDir
    from robot_wm.runner import run

    launch, overrides = _split_launch(a.args)
    overrides += rerun_overrides(a)
    cfg = resolve_config(launch, overrides)
    rd = RunDir(cfg.resolved_run_dir())
    a.run_root = rd.root  # for resume_hint: only a run that was made can be resumed
    if a.resume and not os.path.lexists(rd.root):  # a mistyped path started the full default run (probe 40)
        raise FileNotFoundError(f"--resume: there is no run at {str(rd.root)!r} (no such folder): check the path; to "
                                "start a new run there, leave out --resume (a script that passes --resume on every "
                                "call can make the folder first: an empty folder starts a new run)")
    if a.resume and rd.config_path.exists():  # continue with the run's own config (plus any overrides)
        if launch:
            logging.getLogger("robot_wm").warning(
                "--resume continues %s with its saved config.toml; launch file %s is not used "
                "(key=value overrides still apply)", rd.root, launch)
        rd.check_is_run()
        cfg = cfgmod.apply_overrides(rd.load_config(), overrides)
    warn_network(cfg)
    _check_no_delay(cfg, "run", TRAINING_DELAY)
    summary = run(cfg, progress=not a.no_progress, resume=a.resume)
    print_summary(summary, cfg.resolved_run_dir())
    if a.resume and (held := rd.dataset().env_steps) > summary.get("env_steps", held):  # `collect` said so, and
        # then `run --resume` called the summary's 400 steps the run's training data without a word (probe 40)
        print(_more_data_note(summary["env_steps"], held))
    return 0


def cmd_collect(a: argparse.Namespace) -> int:
    from robot_wm.run_dir import RunDir
    from robot_wm.runner import Session

    _check_run_dir_arg(a.run_dir)
    run = RunDir(a.run_dir)
    if not run.config_path.exists():  # a new run directory (refused if the folder holds anything else)
        if a.policy in ("learned", "pets"):  # refused after the new run's files were written (ninth probe)
            raise ValueError(f"collect --policy {a.policy} needs a trained model, and {a.run_dir!r} holds no run yet: "
                             "collect with --policy random first (or run `robot-wm run`)")
        launch, overrides = _split_launch(a.args)
        cfg = resolve_config(launch, overrides)
        literal = str(a.run_dir).replace("{", "{{").replace("}", "}}")  # a path, not a template
        cfg = cfgmod.from_dict({**cfg.model_dump(), "run_dir": literal}, "collect")
        warn_network(cfg)
        _check_no_delay(cfg, "collect", TRAINING_DELAY)
        s = Session.open(cfg, run, not a.no_progress, writes="collect")
    else:
        s = _session(a.run_dir, a.args, not a.no_progress, command="collect", fixed=DATA_FIELDS, collects=True,
                     plans=a.policy != "random")
    with s:
        _check_no_delay(s.cfg, "collect", TRAINING_DELAY)
        model = s.latest_model() if a.policy in ("learned", "pets") else None
        s.run.check_recorded_episodes(s.run.dataset())  # before the manifest counts a file train refuses (probe 23)
        start = len(s.run.dataset())
        kept = bool(s.run.manifest().get("status"))  # the manifest counts the episodes (ninth probe)
        described = _checked_summary(s.run)  # an edited one was found after the episode was stored (probe 35)
        try:
            for i in range(a.episodes):
                policy = s.planner(a.policy, model, seed=s.cfg.seed * 31 + start + i, explore=True)
                rec = s.collect(policy, "train", start + i)
                if kept:
                    s.run.update_manifest(episodes=len(s.run.dataset()))
                fell = (f"; {rec['fallbacks']} of its {rec['control_steps']} planning steps fell back (non-finite state "
                        "or scores)" if rec.get("fallbacks") else "")  # all-zero actions stored as 'learned' (probe 22)
                print(f"episode {start + i}: return {rec['return']:.1f} ({rec['env_steps']} env steps{fell})")
        finally:  # stopped between an episode and its count (probe 14: SIGTERM left the count stale for good)
            if kept and s.run.manifest().get("episodes") != len(s.run.dataset()):
                s.run.update_manifest(episodes=len(s.run.dataset()))
        if a.episodes and kept and described is not None:
            print(_more_data_note(described.get("env_steps"), s.run.dataset().env_steps))
    return 0


def _more_data_note(described, held: int) -> str:
    """The note where a complete run's data has grown past what its summary.json describes."""
    return (f"note: the run's summary.json describes it at {described} environment steps; its training data now "
            f"holds {held} (train and evaluate again with `robot-wm train` and `robot-wm eval`)")


def _checked_summary(run) -> dict | None:
    """A complete run's ``summary.json``, checked before a command works on the run (None: not complete, or none)."""
    if run.manifest().get("status") != "complete" or not (run.summary_path.exists() or run.summary_path.is_symlink()):
        return None
    return run.summary()


def cmd_train(a: argparse.Namespace) -> int:
    with _session(a.run_dir, a.args, not a.no_progress, command="train", fixed=DATA_FIELDS, trains=True) as s:
        _check_no_delay(s.cfg, "train", "training plans nothing, and it would be recorded with the round")
        _checked_summary(s.run)  # the note below speaks of it: another run's was called this run's (probe 35)
        s.latest_model()
        s.train(s.run.next_round())
        last = s.run.records("train")[-1]
        complete = s.run.manifest().get("status") == "complete"
    print(f"trained round {last['round']}: {last['epochs']} epochs, val mse {np.mean(last['val_mse']):.4f}, "
          f"multi-step mse {last['multistep_mse']}")
    if complete:  # export then shipped a round the headline never evaluated, unsaid (collect and finetune say it: probe 28)
        print(f"note: the run's summary.json describes its own final evaluation, before round {last['round']}; "
              "evaluate this round with `robot-wm eval`")
    return 0


def _check_discount_is_used(s, with_value: bool, planner: str = "learned") -> None:
    """A planner with the value discounts by the value's discount: `eval RUN planner.discount=0.5` was recorded
    as an override and changed nothing (probe 13). One without it has no value to be pessimistic about: `eval RUN
    --planner pets planner.value_pessimism=1` was recorded as applied (probe 24)."""
    with_value = with_value and s.cfg.value.enabled
    given = set(cfgmod.changed_fields(s.run.load_config(), s.cfg))  # 'planner={value_pessimism=1}' too (review)
    if with_value and "planner.discount" in given:
        raise cfgmod.ConfigError(
            f"planner.discount={s.cfg.planner.discount:g} would change nothing: with the run's value the planner "
            "discounts by value.discount, which its checkpoints hold; planner.discount applies to `--planner pets`")
    if planner == "oracle-value" and (inert := [f for f in cfgmod.GUARD_FIELDS if f in given]):  # no first reward
        raise cfgmod.ConfigError(f"{', '.join(inert)} would change nothing: --planner oracle-value is never guarded (the "
                                 "value guard checks the learned model's predicted rewards); it applies to the learned "
                                 "planner")
    if not with_value and (inert := [f for f in cfgmod.VALUE_ONLY if f in given]):
        shown = ", ".join(f"{f}={getattr(s.cfg.planner, f.partition('.')[2]):g}" for f in inert)
        raise cfgmod.ConfigError(
            f"{shown} would change nothing: this planner adds no learned value (--planner pets or oracle, a goal with "
            "goal.reward_weight=0, or a run without one); it applies to the learned planner (and pessimism to --planner "
            "oracle-value)")


TRAINING_DELAY = ("training episodes pair each state with the command sent, and the simulator applies it at once "
                  "(env.randomize.action_delay, if any, is drawn per episode)")


def _check_no_delay(cfg, command: str, why: str) -> None:
    """``planner.delay`` compensates a robot's measured latency when evaluating or deploying; elsewhere it was taken
    and changed nothing, or planned a training run around a delay its simulator does not have (probe 16)."""
    if cfg.planner.delay:
        raise cfgmod.ConfigError(f"planner.delay={cfg.planner.delay} on `{command}`: {why}. Set it on `eval` or "
                                 "`export` for a robot whose commands act late")


def cmd_eval(a: argparse.Namespace) -> int:
    from robot_wm.finetune import double_delay_note, unmatched_delay_note
    from robot_wm.runner import evaluate
    from sim.randomize import shift_then

    if given := [o for o in a.args if o.partition("=")[0].strip() == "eval_episodes"]:  # ignored, 3 run (probe 20)
        raise ValueError(f"{given[0]}: eval_episodes is the run's own final evaluation; `robot-wm eval` runs "
                         "--episodes N (default 3)")
    # the named shift first: an env.randomize.* override of the command line then changes it, not the reverse
    # env.action_repeat=4 on a model of repeat 8 ran and reported a return, exit 0 (deploy refuses it: tenth probe)
    with _session(a.run_dir, shift_then(a.shift, a.args) + rerun_overrides(a), not a.no_progress, command="eval",
                  fixed=DATA_FIELDS, plans=a.planner != "random") as s:
        _check_discount_is_used(s, a.planner in ("oracle-value", "learned") and s.cfg.goal.uses_value, a.planner)
        if a.planner == "random":
            _check_no_delay(s.cfg, "eval --planner random", "random actions have no plan to hold commands in flight")
        elif s.cfg.planner.delay or s.cfg.env.randomize.action_delay[1]:
            sim, trained = list(s.run.dataset()), s.run.load_config()  # the run's own, not this command's robot
            for note in (double_delay_note(trained, sim, s.cfg.planner.delay), unmatched_delay_note(trained, sim, s.cfg)):
                if note:
                    print(f"robot-wm eval: {note}", file=sys.stderr)
        model = s.latest_model() if a.planner in ("learned", "pets", "oracle-value") else None
        recs = evaluate(s, a.planner, model, a.episodes, starts=a.starts)
    rets = [r["return"] for r in recs]
    used = recs[0].get("policy", a.planner) if recs else a.planner  # "learned" without a value plans as pets
    fell, steps = sum(r.get("fallbacks", 0) for r in recs), sum(r.get("control_steps", 0) for r in recs)
    rounds = sorted({r["model_round"] for r in recs if "model_round" in r})  # which model: a rolled-back latest.json
    print(f"{used} planner on {s.cfg.env.task}{'' if a.shift == 'nominal' else ' (shift ' + a.shift + ')'}"  # (probe 29)
          f"{' (model of round ' + ', '.join(map(str, rounds)) + ')' if rounds else ''}: "
          f"return {np.mean(rets):.1f} ± {np.std(rets):.1f} "
          f"over {len(rets)} episodes ({', '.join(f'{r:.1f}' for r in rets)})")
    if dists := [r["goal_distance"] for r in recs if "goal_distance" in r]:
        print(f"final distance to the goal: {np.median(dists):.4f} median ({', '.join(f'{d:.4f}' for d in dists)})")
    if fell:
        print(f"robot-wm eval: {fell} of {steps} planning steps fell back (non-finite state or scores: the previous "
              "plan was held)", file=sys.stderr)
    if off := [r["value_off_steps"] for r in recs if r.get("value_off_steps")]:
        print(f"robot-wm eval: the value guard planned {sum(off)} of {steps} steps without the value, in {len(off)} of "
              f"{len(recs)} episodes (its plans kept promising more than came: planner.value_guard)", file=sys.stderr)
    if (most := fell > steps / 2) or (lost := uncontrolled_episodes(recs)):  # as deploy: the return is not the planner's
        why = ("its checkpoint may be damaged (its normalisers, weights or bounds), or the robot's states lie far "
               "from the run's data" if used in ("learned", "pets") else "the simulated robot's states were not finite")
        where = "" if most else f" in {len(lost)} of {len(recs)} episodes (most of their steps fell back)"
        print(f"robot-wm eval: the {used} planner did not control this robot{where}: {why}", file=sys.stderr)
        return 3
    return 0


def uncontrolled_episodes(recs: list[dict]) -> list[int]:
    """The positions of the episode records most of whose planning steps fell back: one such episode beside two good
    ones averaged into a return that looked like the planner's, exit 0 (probe 23)."""
    return [i for i, r in enumerate(recs) if r.get("fallbacks", 0) > r.get("control_steps", 0) / 2]


def cmd_whatif(a: argparse.Namespace) -> int:
    # read-only: no lock; no Rerun recording (whatif logs none: a run made with --rerun got an empty one each call)
    if given := [o for o in a.args if o.partition("=")[0].strip().startswith("rerun.")]:  # ignored silently before
        raise ValueError(f"whatif writes no Rerun recording, so {', '.join(given)} would do nothing: to see imagined "
                         "futures in Rerun, `robot-wm dream RUN --candidate K --rrd FILE.rrd`")
    # whatif scores futures in the model from stored episodes: a robot's settings change neither (env.randomize.* gave
    # a byte-identical table, env.action_repeat blamed the episode files: probe 21)
    if given := [o for o in a.args if o.partition("=")[0].strip().startswith("env.")]:
        raise ValueError(f"whatif scores futures in the run's model from its stored episodes, so {', '.join(given)} "
                         "would change nothing (the robot's settings are the run's); to see the model on a shifted robot, "
                         "`robot-wm eval RUN --shift S` or `robot-wm dream RUN --data DIR` on a recording")
    if given := [o for o in a.args if o.partition("=")[0].strip() == "seed"]:  # accepted, changed nothing (probe 32)
        raise ValueError(f"{', '.join(given)} would change nothing: whatif draws its random candidates from --seed")
    # the value guard acts over an episode's successive plans; whatif scores each future once (the table was
    # byte-identical with and without it: probe 25)
    if given := [o for o in a.args if (k := o.partition("=")[0].strip()) in cfgmod.GUARD_FIELDS
                 or (k == "planner" and "value_guard" in o)]:
        raise ValueError(f"whatif scores each future once, always with the value, so {', '.join(given)} would change "
                         "nothing: the value guard acts over an episode's successive plans (`robot-wm eval RUN "
                         "planner.value_guard=T`)")
    with _session(a.run_dir, [*a.args, "rerun.mode=off"], progress=False, lock=False, command="whatif") as s:
        return _whatif(a, s)


def model_and_episode(s, a: argparse.Namespace):
    """The run's latest model and episode ``a.episode`` of its dataset, or of the recorded deployments in
    ``a.data`` (``--data DIR``: what the model predicts on the robot; a delayed robot's episode realigned by its delay,
    so its first rows are dropped), for whatif, dream and drive; or a clear error."""
    model = s.latest_model()
    if model is None:
        raise ValueError(f"{a.run_dir!r} has no trained model yet: run `robot-wm train {a.run_dir}`")
    if getattr(a, "data", None) is None:  # another run's episode copied in was refused by train, read here (probe 24)
        data, what = s.run.dataset(), "the dataset"
        s.run.check_recorded_episodes(data)
    else:
        from robot_wm.finetune import recorded_episodes

        spec = s.env.action_spec  # actions outside the bounds were dreamed on (probe 16: uint8 actions of 255)
        data, what = recorded_episodes(a.data, s.cfg.env.task, s.env.observation_spec.dim, spec.dim,
                                       s.cfg.env.action_repeat, (spec.low, spec.high)), f"--data {a.data!r}"
    if not 0 <= a.episode < len(data):
        raise ValueError(f"--episode {a.episode} is out of range: {what} has {len(data)} episodes")
    if getattr(a, "data", None) is None:
        return model, data[a.episode]
    # a delayed robot's commands paired with the states they moved, unless the run learned them as sent (finetune)
    from robot_wm.data.realign import realign
    from robot_wm.finetune import pairs_as_sent

    return model, realign(data[a.episode], data.paths()[a.episode], pairs_as_sent(s.run, list(s.run.dataset())))


def _whatif(a: argparse.Namespace, s) -> int:
    from robot_wm.report import print_whatif
    from robot_wm.whatif import candidates, what_if

    _check_discount_is_used(s, s.cfg.goal.uses_value)
    _check_no_delay(s.cfg, "whatif", "it scores whole candidate sequences from a recorded state, commands in flight "
                    "included, so a delay would change nothing")
    model, ep = model_and_episode(s, a)
    h = a.horizon or s.cfg.planner.horizon
    if not 0 <= a.step < len(ep):
        cut = ep.meta.get("realigned_delay")  # "has 49 steps" for a recording of 50 (probe 19)
        raise ValueError(f"--step {a.step} is out of range: episode {a.episode} has {len(ep)} steps"
                         + (f" (realigned by its delay of {cut}: its first {cut} recorded rows dropped)" if cut else ""))
    if h > len(ep) - a.step:  # cut without a word (probe 18)
        print(f"robot-wm whatif: the horizon {h} is cut to {len(ep) - a.step}: episode {a.episode} ends "
              f"{len(ep) - a.step} steps after step {a.step}", file=sys.stderr)
        h = len(ep) - a.step
    names, seqs = candidates(ep.action[a.step:a.step + h], s.env.action_spec.low, s.env.action_spec.high,
                             a.random, a.seed, a.actions)
    g, goal = s.cfg.goal, None
    if g.active:  # as the planner would see it in that episode: joints observed from the episode's own start
        from sim.goal import resolve_goal

        s.env.reset(ep.meta.get("seed") or 0)
        goal = resolve_goal(s.env, g.state, g.joints, g.weights)
    res = what_if(model, ep.obs[a.step], seqs, s.cfg.planner.discount,
                  value=s.value if g.uses_value else None, goal=goal, reward_weight=g.reward_weight,
                  pessimism=s.cfg.planner.value_pessimism)
    actual = float(ep.reward[a.step:a.step + h].sum())
    print_whatif(names, res, actual, a.episode, a.step, h, ep.meta.get("realigned_delay") or 0)  # probe 19
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="robot-wm", description="Imagine before you act: world models + MPC.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    fields = "\n".join(cfgmod.help_text())
    r = sub.add_parser("run", help="collect -> train -> plan -> evaluate, end to end",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=f"config fields (override any as key=value):\n{fields}")
    r.add_argument("args", nargs="*", help="optional launch file (TOML), then key=value overrides")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in the same run_dir from its last complete checkpoint")
    add_rerun_flag(r)
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("collect", help="append episodes to a run directory")
    c.add_argument("run_dir")
    c.add_argument("args", nargs="*", help="launch file (new run dir only) and key=value overrides")
    c.add_argument("--episodes", type=whole(1, 1_000_000), default=1)
    c.add_argument("--policy", choices=("random", "learned", "pets", "oracle"), default="random")
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=cmd_collect)

    t = sub.add_parser("train", help="train a new model round on a run directory's episodes")
    t.add_argument("run_dir")
    t.add_argument("args", nargs="*", help="key=value overrides")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluation episodes with a planner")
    e.add_argument("run_dir")
    e.add_argument("args", nargs="*", help="key=value overrides")
    e.add_argument("--planner", choices=("learned", "pets", "oracle", "oracle-value", "random"), default="learned",
                   help="learned: world model + value + policy proposals; pets: the same world model, imagined "
                        "reward over the horizon only; oracle: the true simulator (oracle-value: plus the learned "
                        "terminal value); random actions")
    e.add_argument("--shift", default="nominal",
                   help="evaluate on a perturbed robot without retraining: nominal, mass-0.7, mass-1.3, "
                        "friction-0.5, friction-1.5, gain-0.8, delay-1 (or env.randomize.* overrides)")
    e.add_argument("--episodes", type=whole(1, 1_000_000), default=3)
    e.add_argument("--starts", type=whole(0, 2**31), default=None, metavar="K",
                   help="start the episodes as evaluation episodes K, K+1, ... did (the same K: the same start "
                        "states, e.g. nominal against --shift); default: after the stored ones")
    e.add_argument("--no-progress", action="store_true")
    add_rerun_flag(e)
    e.set_defaults(func=cmd_eval)

    w = sub.add_parser("whatif", help="counterfactual query: predicted returns of alternative action sequences")
    w.add_argument("run_dir")
    w.add_argument("args", nargs="*", metavar="KEY=VALUE", help="one-off overrides, e.g. goal.joints={...}")
    w.add_argument("--episode", type=integer, default=0, help="episode whose state to start from")
    w.add_argument("--data", type=path_arg, default=None, metavar="DIR",
                   help="take the episode from recorded deployments (deploy --record DIR) instead of the run's dataset")
    w.add_argument("--step", type=integer, default=0, help="control step within that episode")
    w.add_argument("--horizon", type=whole(1, 10_000), default=None, help="sequence length (default: planner.horizon)")
    w.add_argument("--random", type=whole(0, 10_000), default=8, help="random candidate sequences to add")
    w.add_argument("--actions", type=path_arg, help=".npy file of candidate sequences (K, H, A)")
    w.add_argument("--seed", type=seed, default=0)
    w.set_defaults(func=cmd_whatif)

    for name in PLUGINS:
        importlib.import_module(name).register(sub)
    once_everywhere(p)
    return p


def _given_twice(items: list[str], what: str) -> list[str]:
    """A note for each key given more than once among ``key=value`` items: the last one is used (a command line built
    from defaults and an override relies on it)."""
    given = [(item.partition("=")[0].strip(), item) for item in items if "=" in item]
    last = dict(given)
    return [f"note: {what} {k} given {n} times; the last, {last[k]!r}, is used"
            for k, n in Counter(k for k, _ in given).items() if n > 1]


def main(argv: list[str] | None = None) -> int:
    """The program; a Ctrl-C before the command's own handling began (its modules loading, its arguments parsed) ends
    it with one line, not a traceback from inside an import (probe 36)."""
    # Ctrl-C's are remembered from the start: inside a C extension's start-up (mujoco's) one came out as "ImportError:
    # initialization failed" (probe 36)
    own = threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGINT) is signal.default_int_handler
    _INTERRUPTED.clear()
    if own:
        signal.signal(signal.SIGINT, _interrupt)
    try:
        return _main(argv)
    except (KeyboardInterrupt, ImportError) as e:
        if isinstance(e, ImportError) and not _INTERRUPTED:
            raise
        print(STARTING_STOPPED, file=sys.stderr)
        return 130
    finally:
        if own:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    if os.environ["MUJOCO_GL"] == "osmesa" and ctypes.util.find_library("OSMesa") is None:  # import mujoco failed
        print("robot-wm: error: MUJOCO_GL=osmesa but the OSMesa library is not installed (e.g. libosmesa6); install "
              "it, or unset MUJOCO_GL (egl)", file=sys.stderr)
        return 2
    if sys.stderr is None:  # `2>&-` (a cron line): the progress bars' writes failed, rc 1 and no word (probe 31)
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 -- the process's own, open to its end
    for stream in (sys.stdout, sys.stderr):  # an ASCII-only terminal: '?' for '…' and '±', not UnicodeEncodeError
        if hasattr(stream, "reconfigure") and not str(getattr(stream, "encoding", "utf-8")).lower().startswith("utf"):
            stream.reconfigure(errors="replace")
    parser = build_parser()
    args, extra = parser.parse_known_args(_bare_rerun(sys.argv[1:] if argv is None else list(argv)))
    if extra:  # key=value overrides may follow flags: `run --no-progress seed=1`, `export RUN --out p.onnx k=v`
        field = next((f for f in ("args", "overrides") if hasattr(args, f)), None)
        if field is None or not all("=" in e and not e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        setattr(args, field, [*getattr(args, field), *extra])
    for field, what in (("args", "override"), ("overrides", "override"), ("sim", "--sim")):
        for note in _given_twice(getattr(args, field, None) or [], what):  # the last won without a word (probe 17)
            print(f"robot-wm {args.command}: {note}", file=sys.stderr)
    try:
        os.getcwd()
    except FileNotFoundError:  # torch's oneMKL then ended the program with "Cannot load libtorch_cpu.so", exit 0 (33)
        print(f"robot-wm {args.command}: error: the current folder was deleted after this shell entered "
              "it: `cd` to a folder that exists and run the command again", file=sys.stderr)
        return 2
    from robot_wm.sysmem import address_space_refusal

    if why := address_space_refusal(args.command):  # before the libraries that hang or fail under it
        print(f"robot-wm {args.command}: error: {why}", file=sys.stderr)
        return 2
    # standard error may go away too: `run ... 2>&1 | head -n 1` stopped the run at its next warning, exit 1, its
    # manifest left "running" and nothing said (probe 42); it goes on, its files finished
    stderr = sys.stderr
    sys.stderr = OutputGuard(stderr)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    main_thread = threading.current_thread() is threading.main_thread()
    _TERMINATED.clear()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None  # a service stop ends like Ctrl-C
    # A closed terminal or ssh session (SIGHUP) killed a deployment at once: the episode being recorded was lost and
    # no safe action was sent (tenth probe); so did a stray `kill -USR1` (probe 33). Where one is ignored (nohup), it
    # stays ignored.
    stops = [sig for sig in STOP_SIGNALS if signal.getsignal(sig) == signal.SIG_DFL] if main_thread else []
    for sig in stops:
        signal.signal(sig, _terminate)
    sigint = signal.getsignal(signal.SIGINT) if main_thread else None
    stdout = sys.stdout  # None where it was closed (`>&-`): print() then prints nothing, as wanted (probe 16)
    sys.stdout = guard = OutputGuard(stdout) if stdout is not None else None
    try:
        rc = args.func(args)
        if guard is None:
            return rc
        guard.flush()
        if guard.lost is not None and guard.lost.errno != errno.EPIPE:  # a reader that left chose to; a full disk not
            print(f"robot-wm {args.command}: error: its standard output could not be written ({guard.lost.strerror}): "
                  "what it printed is incomplete. The files it wrote are complete.", file=sys.stderr)
            return max(rc, 1)
        return rc
    except (cfgmod.ConfigError, ValueError, FileNotFoundError, FileExistsError, RunLockedError) as e:
        raw = isinstance(e, OSError) and e.errno is not None and str(e).startswith("[Errno")  # the OS's own words
        print(f"robot-wm {args.command}: error: {describe_os_error(e, args) if raw else e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        if main_thread:  # a second Ctrl-C a moment later was a traceback from inside this handler (ninth probe), and
            for sig in (signal.SIGINT, signal.SIGTERM):  # a second SIGTERM one from the cleanup below (probe 31)
                signal.signal(sig, signal.SIG_IGN)
            for sig in stops:
                signal.signal(sig, signal.SIG_IGN)
        return _stopped(args, _TERMINATED[-1] if _TERMINATED else signal.SIGTERM if isinstance(e, Terminated) else None)
    except ImportError as e:  # a stop signal while a C extension (mujoco) initialised: "initialization failed" (35)
        if not (_TERMINATED or _INTERRUPTED or isinstance(e.__cause__ or e.__context__, KeyboardInterrupt)):
            raise
        return _stopped(args, _TERMINATED[-1] if _TERMINATED else None)
    except ctypes.ArgumentError as e:  # Ctrl-C landing while ctypes converted an argument (ctypes wraps it)
        if "KeyboardInterrupt" not in str(e) and "Terminated" not in str(e):
            raise
        return _stopped(args, _TERMINATED[-1] if _TERMINATED else signal.SIGTERM if "Terminated" in str(e) else None)
    except OSError as e:
        hint = "" if e.errno == errno.ENAMETOOLONG else resume_hint(args)  # resuming fails the same way
        print(f"robot-wm {args.command}: error: {describe_os_error(e, args)} {hint}".rstrip(), file=sys.stderr)
        return 1
    except RuntimeError as e:
        if str(e).startswith("Symlink loop from "):  # Path.resolve() on a link loop (probe 20): one line, not a traceback
            print(f"robot-wm {args.command}: error: {str(e)[len('Symlink loop from '):]} is a symbolic link loop (it "
                  "leads back to itself): remove it or point it at a folder", file=sys.stderr)
            return 2
        if "MUJOCO_GL" not in str(e):
            raise
        print(f"robot-wm {args.command}: error: {e} (unset it, or set egl or osmesa for headless rendering, glfw "
              "with a display)", file=sys.stderr)
        return 2
    finally:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stdout.flush()
        sys.stdout = stdout
        sys.stderr = stderr
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
            for sig in stops:
                signal.signal(sig, signal.SIG_DFL)
            if sigint is not None:  # None: a handler set outside Python, left as it was
                signal.signal(signal.SIGINT, sigint)


def _stopped(args: argparse.Namespace, sig: int | None) -> int:
    """Ctrl-C (130), SIGTERM (143), SIGHUP (129) or another of ``STOP_SIGNALS`` (``sig``, None for Ctrl-C): said,
    with how to go on."""
    what = "interrupted" if sig is None else f"terminated ({signal.Signals(sig).name})"
    with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
        print(f"robot-wm {args.command}: {what}. {SAVED} {resume_hint(args)}", file=sys.stderr)
    return 130 if sig is None else 128 + int(sig)


class Terminated(KeyboardInterrupt):
    """SIGTERM, SIGHUP or another of ``STOP_SIGNALS``, raised where the program is, so that it stops like Ctrl-C (what was written stays
    complete)."""


_TERMINATED = []  # set by the handler: a library (Ray Tune) may re-raise our Terminated as a plain KeyboardInterrupt
_INTERRUPTED = []  # Ctrl-C's, likewise


def _interrupt(signum, frame) -> None:
    _INTERRUPTED.append(signum)
    raise KeyboardInterrupt


def _terminate(signum, frame) -> None:
    _TERMINATED.append(signum)
    raise Terminated


SAVED = "Every file written before is complete (each is written atomically); nothing half-written was kept."


def resume_hint(args: argparse.Namespace) -> str:
    """How to go on after a stop, where the command writes a run directory."""
    if args.command == "run":  # `run_dir=/sys/kernel/x` was told to resume a run never made (probe 29)
        root = getattr(args, "run_root", None)
        made = root is not None and _is_made(root)
        return "Continue with the same command and --resume." if made else ""
    if args.command == "sweep":
        return "Run the same `robot-wm sweep` again: it skips finished trials and resumes the others."
    if getattr(args, "run_dir", None) and args.command == "collect":  # "again to go on" read as "the rest" (probe 42)
        return (f"The episodes collected before the stop are stored; `robot-wm collect {args.run_dir} --episodes N` "
                "collects N more (it does not count those).")
    if getattr(args, "run_dir", None) and args.command in ("train", "finetune"):
        return f"Run `robot-wm {args.command} {args.run_dir} ...` again to go on."
    return ""


def _bare_rerun(argv: list[str]) -> list[str]:
    """`--rerun` followed by an override means the bare flag (save): `eval RUN --rerun rerun.ghosts=3` was refused as
    "invalid choice: 'rerun.ghosts=3'" (probe 30)."""
    return [f"{a}=save" if a == "--rerun" and i + 1 < len(argv) and "=" in argv[i + 1]
            and not argv[i + 1].startswith("-") else a for i, a in enumerate(argv)]


def _is_made(root: Path) -> bool:
    try:
        return (root / "manifest.json").is_file()
    except OSError:
        return False


def _target_of(path: str) -> str:
    """The file the user asked for where ``path`` is ``atomic_write``'s hidden ``.NAME.XXXX.tmp`` beside it."""
    from robot_wm.io import TEMP_SUFFIX

    p = Path(path)
    if p.name.startswith(".") and p.name.endswith(TEMP_SUFFIX) and p.name.count(".") >= 3:
        return str(p.with_name(p.name[1:-len(TEMP_SUFFIX)].rsplit(".", 1)[0]))
    return path


def describe_os_error(e: OSError, args: argparse.Namespace | None = None) -> str:
    """An operating-system error as a sentence naming the file and what to do about it."""
    name = repr(_target_of(str(e.filename))) if e.filename else "a file"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device writing {name}: free some space. {SAVED}"
    if e.errno == errno.EFBIG:
        return (f"{name} would grow past the file size limit ({e.strerror}: ulimit -f or a quota): raise it or free "
                f"some. {SAVED}")
    if "does not take" in str(e.strerror):  # hard links or locks, not a permission: "make it writable" (probes 35, 36)
        return f"cannot store {name}: {e.strerror}. {SAVED}"
    if e.errno == errno.EACCES and e.filename and os.path.exists(e.filename) and not os.access(e.filename, os.R_OK):
        # a checkpoint of mode 000, which eval only reads, was "cannot write ...: make it writable" (probe 40)
        return f"cannot read {name} ({e.strerror}): make it readable. {SAVED}"
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        # only the flags the command has: eval/train/collect on a read-only run were told to use --out
        out_given = bool(getattr(args, "out", None))  # advised --out to a user who had given it (tenth probe)
        rrd = getattr(args, "rrd", None)  # `dream --rrd` into a folder it cannot write was told "--out" (probe 42)
        if rrd and e.filename and os.path.dirname(os.path.abspath(_target_of(str(e.filename)))) == \
                os.path.dirname(os.path.abspath(str(rrd))):
            return f"cannot write {name} ({e.strerror}): make it writable or choose another --rrd. {SAVED}"
        where = ["make it writable"] + [w for w, has in (("choose a writable run_dir", getattr(args, "command", None)
                                                          == "run"), ("choose another --out" if out_given else
                                                                      "--out", hasattr(args, "out")),
                                                         ("--storage", hasattr(args, "storage"))) if has]
        return f"cannot write {name} ({e.strerror}): {' or '.join(where)}. {SAVED}"
    if e.errno == errno.ENAMETOOLONG:
        # ENAMETOOLONG is either one name over 255 bytes or the whole path over 4,096 (PATH_MAX): say which (probe 28)
        longest = max((len(os.fsencode(p)) for p in Path(str(e.filename or "")).parts), default=0)
        if e.filename and longest <= 255:
            return (f"the path {name} is longer than the file system allows ({len(os.fsencode(str(e.filename))):,} "
                    "bytes; 4,096 a path): choose a shorter path")
        return f"a name in {name} is longer than the file system allows (255 bytes a name): choose a shorter path"
    if e.errno == errno.EEXIST and e.filename and (link := dangling_link(e.filename)):
        # "File exists: 'loopd/a'" for a folder that is a link leading nowhere (probe 31)
        return f"{link}: remove it or point it at a folder"
    if e.errno == errno.ENOENT:  # "[Errno 2] No such file or directory: '/proc/self/x'" (probe 29)
        return (f"cannot make or open {name} ({e.strerror}): a folder on its path is missing, or the file system there "
                "holds no such files")
    if e.errno == errno.EADDRINUSE:
        return f"the address is already in use ({e.strerror}): choose another port"
    return f"{e.strerror or e}: {name}"


def entry() -> None:
    """The ``robot-wm`` program: ``main`` and its exit code. After a stop (Ctrl-C 130, SIGTERM 143, any 128 + N), or
    while an onnxruntime build or step a stop abandoned still runs, the code is handed to the OS directly: CPython
    exits by SIGINT instead (status -2) when the interrupt landed inside Python code that a C extension ran through
    ``PyRun_*`` (pybind11's exec), even though ``main`` handled it (seen about once in 8 Ctrl-C's of a run), and
    onnxruntime aborts an interpreter that finalizes around a running build ("terminate called": probe 40). Every
    file is complete by then; the streams are flushed first."""
    code = main()
    session = sys.modules.get("robot_wm.runtime.session")
    running = session is not None and any(not e.is_set() for e in session.ABANDONED_RUNS)
    if code > 128 or running:  # stopped by a signal (SIGUSR1 138, SIGQUIT 131 ... too)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
