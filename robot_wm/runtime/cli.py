"""``robot-wm deploy planner.onnx --task TASK``: episodes in simulation through the ``Robot``
interface, using only the ONNX file (numpy + onnxruntime on the control path, never torch)."""

from __future__ import annotations

import argparse
import logging
import math
import sys

import numpy as np

from robot_wm.cli_args import decimal, number, path_arg, seed, whole
from robot_wm.runtime.loop import MAX_RATE_HZ, MIN_RATE_HZ
from robot_wm.text import echo

log = logging.getLogger(__name__)


def cmd_deploy(a: argparse.Namespace) -> int:
    from robot_wm.runtime.interrupt import steps_end_on_signals
    from robot_wm.runtime.session import ProviderError

    try:
        with steps_end_on_signals():
            return _deploy(a)
    except ProviderError as e:
        echo(f"robot-wm deploy: error: {e}")
        return 2


def _deploy(a: argparse.Namespace) -> int:
    from robot_wm.config import EnvConfig
    from robot_wm.cpus import at_most_cpus
    from robot_wm.runtime.loop import ControlLoop, LoopStats
    from robot_wm.runtime.robot import SimRobot
    from robot_wm.runtime.session import PlannerSession
    from sim.dmc import task_key
    from sim.registry import make_env

    a.threads = at_most_cpus(a.threads, "--threads")
    if a.record:  # a file as --record was refused after the planner loaded and its banner (probe 38)
        from robot_wm.runtime.record import check_record_folder

        check_record_folder(a.record)
    planner = PlannerSession(a.planner, provider=a.provider, threads=a.threads, seed=a.seed,
                             cuda_graph=not a.no_cuda_graph)
    m = planner.meta
    task = a.task or m.task
    if not task:
        raise ValueError("the planner file names no task: pass --task")
    repeat = a.action_repeat or m.action_repeat or EnvConfig().action_repeat
    sim_env = _robot_env(task, repeat, a.shift, a.sim)
    task = sim_env.task  # what the robot runs (--sim task=...): a recording labelled with the planner's was trusted
    robot = SimRobot(make_env(sim_env))
    m.check_robot(robot.state_dim, robot.action_low, robot.action_high, robot.control_period)
    if m.task and task_key(task) != task_key(m.task):  # the balance task under a swing-up planner, without a word
        echo(f"robot-wm deploy: warning: the planner was trained for {m.task!r}; the simulated robot runs {task!r} "
             "(the same sizes, so it plans with the other task's model and reward)", file=sys.stderr)
    lo, hi = sim_env.randomize.action_delay  # the simulated robot's delay range, against the planner's (probe 16)
    if not lo <= m.delay <= hi:
        echo(f"robot-wm deploy: warning: the planner compensates a delay of {m.delay} control step(s) (planner.delay), "
             f"the simulated robot's commands act {lo if lo == hi else f'{lo} to {hi}'} step(s) late", file=sys.stderr)
    if not math.isfinite(m.control_period):
        echo(f"robot-wm deploy: warning: {a.planner} does not say its control period (metadata control_period="
              f"{m.raw.get('control_period')!r}): the robot's {robot.control_period:g} s is used unchecked",
              file=sys.stderr)
    if a.safe_action is not None and not a.safe_action.strip():  # an unset variable ran with no safe action
        raise ValueError("--safe-action is empty ('': an unset shell variable?); expected comma-separated numbers, "
                         "one per action dimension, or leave the flag out")
    safe = np.array(_floats(a.safe_action, "--safe-action"), np.float32) if a.safe_action else None
    goal_file = _goal(a, planner)
    planner.warmup()
    loop = ControlLoop(planner, robot, rate_hz=a.rate, deadline_s=a.deadline_ms / 1e3 if a.deadline_ms else None,
                       safe_action=safe, realtime=a.realtime, max_fallbacks=a.max_fallbacks)
    echo(f"deploy {a.planner} on {task}: provider {planner.provider}, {a.threads} threads, "
          f"{m.optimizer} H={m.horizon} N={m.samples} I={m.iterations}, noise {m.noise}, "
          f"{f'delay {m.delay}, ' if m.delay else ''}"
          f"{loop.rate_hz:.1f} Hz, deadline {loop.deadline_s * 1e3:.1f} ms"
          f"{', real time' if a.realtime else ''}")
    rec = None
    if a.record:
        from robot_wm.runtime.record import DeploymentRecorder

        rec = DeploymentRecorder(a.record, task=task, planner=str(a.planner), action_repeat=repeat,
                                 planner_delay=m.delay, source="sim-robot",
                                 extra={"shift": a.shift, "sim_overrides": a.sim})
    total, returns, lost = LoopStats(loop.rate_hz, loop.deadline_s), [], []
    for i in range(a.episodes):
        seed = (a.seed + i) % 2**32  # --seed is at most 2**32 - 1: the episodes after it wrap
        robot.reset(seed)
        loop.reset()
        ticks, goals = [], _goal_log(planner, 0, [])
        if rec is not None:
            rec.begin(robot, seed)
            ticks.append(rec.hook(loop, robot))
        if goal_file is not None:  # a changed goal file is in force from the next step on (and recorded)
            ticks.append(lambda act, goals=goals: goal_file.poll() and _goal_log(planner, robot.steps, goals))
        on_tick = (lambda act, ticks=ticks: [f(act) for f in ticks]) if ticks else None
        cut = True
        try:
            stats = loop.run(robot.env.max_control_steps, done=lambda: robot.done, on_tick=on_tick)
            cut = False
        finally:  # an interrupted episode keeps what it recorded, and says it was cut short
            path = _save(rec, robot, goals, lost, interrupted=cut, safe_stop=loop.stopped) if rec is not None else None
        total.merge(stats)
        returns.append(robot.ret)
        echo(f"episode {i} (seed {seed}): return {robot.ret:.1f} over {robot.steps} steps; {stats.format()}"
              + (f"; final goal distance {planner.goal.distance(robot.read_state()):.4f}" if planner.goal else "")
              + (f"; recorded {path}" if path else ""))
        if loop.stopped is not None:
            break
    echo(f"return {np.mean(returns):.1f} ± {np.std(returns):.1f} over {len(returns)} episodes "
          f"({', '.join(f'{r:.1f}' for r in returns)})")
    print(f"all episodes: {total.format()}")
    if loop.stopped is not None:
        echo(f"robot-wm deploy: SAFE STOP after {loop.stopped}; the deployment ended with the safe action",
              file=sys.stderr)
        return 3
    if lost:  # a full disk recorded nothing and the command exited 0
        echo(f"robot-wm deploy: {len(lost)} of {len(returns)} episodes were NOT recorded in {rec.data.root} "
              f"(the first: {lost[0]})", file=sys.stderr)
        return 1
    if total.fallbacks > total.steps / 2:
        echo(f"robot-wm deploy: {total.fallbacks} of {total.steps} steps fell back to the previous plan or the "
              "safe action: the planner did not control this robot", file=sys.stderr)
        return 3
    return 0


def _goal(a: argparse.Namespace, planner):
    """Set --goal/--goal-weights on a goal-conditioned planner; return the --goal-file watcher (or None)."""
    given = [v is not None for v in (a.goal, a.goal_weights, a.goal_file)]
    if any(given) and planner.meta.goal is None:
        raise ValueError(f"--goal, --goal-weights and --goal-file need a goal-conditioned planner; {a.planner!r} "
                         "was exported without a goal (export with goal.state=[...] or goal.joints={...})")
    if a.goal_file is not None and a.goal is not None:  # the file's goal replaced --goal without a word (probe 29)
        raise ValueError("--goal and --goal-file both set the goal (the file from its first reading on): give one")
    if a.goal is not None or a.goal_weights is not None:
        planner.set_goal(_floats(a.goal, "--goal") if a.goal is not None else planner.goal.state,
                         _floats(a.goal_weights, "--goal-weights") if a.goal_weights is not None else None)
    if a.goal_file is None:
        return None
    from robot_wm.runtime.goal_file import GoalFile

    watcher = GoalFile(a.goal_file, planner)
    if not watcher.poll(quiet=True):  # the export's default goal was driven to, exit 0 (probe 30): none of the user's
        raise ValueError(f"--goal-file {a.goal_file!r} cannot be used at the start ({watcher.why}): fix it, or leave it "
                         "out to plan toward the planner's default goal; once running, a bad version is ignored")
    return watcher


def _floats(text: str, flag: str) -> list[float]:
    try:  # ASCII decimals: '٠.٥' and '1_0' were read as 0.5 and 10 (probe 17)
        return [decimal(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected comma-separated numbers") from None


def _goal_log(planner, step: int, log_: list) -> list:
    """``log_`` with the goal in force from ``step`` on appended (a goal-conditioned planner only)."""
    if planner.goal is not None:
        log_.append({"from_step": step, "state": planner.goal.state.tolist(), "weights": planner.goal.weights.tolist()})
    return log_


def _save(rec, robot, goals: list, lost: list, interrupted: bool = False, safe_stop: str | None = None):
    """Write the recorded episode (with the goals in force, where the planner has one); a failed write (full
    disk, ...) is reported and added to ``lost`` (deploy then exits 1), never ends the deployment."""
    from robot_wm.io import signals_deferred

    with signals_deferred():  # a second Ctrl-C during the save lost the episode (probe 31): it waits for the save
        return _save_now(rec, robot, goals, lost, interrupted, safe_stop)


def _save_now(rec, robot, goals: list, lost: list, interrupted: bool, safe_stop: str | None):
    try:
        path = rec.end(interrupted=interrupted, safe_stop=safe_stop, **robot.episode_info(),
                       **({"goals": goals} if goals else {}))
        if (interrupted or safe_stop) and path is not None:  # its return covers only these steps: said, and in its meta
            why = "meta interrupted=true" if interrupted else "meta safe_stop"
            # what the file holds: the command sent at the stop had no state after it, a bad state cuts the rest
            kept = rec.written_steps
            sent = "" if kept == robot.steps else f" of the {robot.steps} commands sent"
            echo(f"recorded the episode cut short ({kept} control steps{sent}; {why}) in {path}")
        return path
    except (OSError, ValueError) as e:
        log.error("could not record the episode in %s: %s", rec.data.root, e)
        echo(f"robot-wm deploy: the episode was NOT recorded in {rec.data.root}: {e}")
        lost.append(str(e))
        return None


def _robot_env(task: str, repeat: int, shift: str, overrides: list[str]):
    """The simulated robot's ``EnvConfig``: the task, perturbed by a named shift and ``env.*`` overrides."""
    from robot_wm.config import EnvConfig, RunConfig, apply_overrides
    from sim.randomize import shift_then

    extra = [o if o.startswith("env.") else f"env.{o}" for o in overrides]
    if task == "mjcf" and not any(o.startswith(("env.mjcf=", "env.reward=")) for o in extra):
        raise ValueError("the planner is for your own MJCF robot (task 'mjcf'): simulate it with --sim mjcf=ROBOT.xml "
                         "reward=module:function (as in the run's config.toml), or drive the real robot through "
                         "robot_wm.runtime (ControlLoop with your Robot)")
    cfg = RunConfig(env=EnvConfig(task=task, action_repeat=repeat))
    fields = set(EnvConfig.model_fields)
    if bad := [o for o in overrides if o.partition("=")[0].strip().removeprefix("env.").split(".")[0] not in fields]:
        # `--sim seed=3` was "unknown field 'env.seed'", a name the user never typed (probe 14)
        raise ValueError(f"--sim {' '.join(bad)}: --sim takes the simulated robot's env fields only "
                         f"({', '.join(sorted(fields))}); the episode seed is --seed")
    return apply_overrides(cfg, shift_then(shift, extra)).env


def _sim_override(text: str) -> str:
    """One ``--sim`` value: the planner file given after ``--sim`` was taken as one, and argparse said "the following
    arguments are required: planner" (probe 29)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE: --sim takes every word after it up to the next "
                                         "flag; put the planner file before --sim")
    return text


def register(sub) -> None:
    p = sub.add_parser("deploy", help="run an exported planner.onnx in closed loop (simulation stands in for the robot)")
    p.add_argument("planner", type=path_arg, help="planner .onnx from `robot-wm export`")
    p.add_argument("--task", help="simulated task (default: the task named in the file)")
    p.add_argument("--action-repeat", type=whole(1, 1000), default=None, help="default: the file's")
    p.add_argument("--episodes", type=whole(1, 1_000_000), default=3)
    p.add_argument("--seed", type=seed, default=0, help="first episode seed (and the noise seed of a planner exported "
                   "with --noise input; one with in-graph noise draws its own, so its episodes differ run to run)")
    p.add_argument("--provider", default="auto", choices=("auto", "tensorrt", "cuda", "cpu"),
                   help="auto tries tensorrt -> cuda -> cpu; naming one makes any fallback an error")
    p.add_argument("--threads", type=whole(1, 1024), default=2,
                   help="onnxruntime intra-op threads (more than this machine's CPUs: its CPUs, with a warning; 600 "
                        "under a memory limit hung deploy, deaf to SIGTERM: probe 14)")
    p.add_argument("--rate", type=number(MIN_RATE_HZ, MAX_RATE_HZ), default=None,
                   help="control rate in Hz, 0.1 to 10000 (default: 1 / control period)")
    p.add_argument("--deadline-ms", type=number(0, 60_000, lo_open=True), default=None,
                   help="planning deadline in ms, at most 60000 (default: one period)")
    p.add_argument("--safe-action", default=None, help="comma-separated fallback action (default: shifted plan)")
    p.add_argument("--realtime", action="store_true", help="sleep to hold the rate (default: as fast as possible)")
    p.add_argument("--no-cuda-graph", action="store_true", help="disable CUDA graphs on GPU providers")
    p.add_argument("--max-fallbacks", type=whole(1, 1_000_000), default=25,
                   help="consecutive fallbacks before a safe stop (safe action, exit code 3)")
    p.add_argument("--goal", default=None, metavar="V,V,...",
                   help="goal state of a goal-conditioned planner (default: the one in the file); a first value "
                        "below zero needs the = form: --goal=-0.5,1,0")
    p.add_argument("--goal-weights", default=None, metavar="W,W,...", help="per-dimension weights of the goal")
    p.add_argument("--goal-file", type=path_arg, default=None, metavar="JSON",
                   help='{"state": [...], "weights": [...]}, read again whenever it changes: the goal can move '
                        "while the robot runs (a bad file is logged and the goal in force stays)")
    p.add_argument("--record", type=path_arg, default=None, metavar="DIR",
                   help="write every deployed episode to DIR in the episode format (states, actions, rewards, "
                        "latency, fallbacks), atomically; DIR reads as a dataset")
    p.add_argument("--shift", default="nominal",
                   help="simulate a robot that differs from the training simulator: nominal, mass-0.7, mass-1.3, "
                        "friction-0.5, friction-1.5, gain-0.8, delay-1")
    p.add_argument("--sim", nargs="*", default=[], metavar="KEY=VALUE", action="extend", type=_sim_override,  # twice: the first was
                   help="more env overrides of the simulated robot, e.g. randomize.mass=[0.9,1.1] "  # dropped (probe 17)
                        "(--sim may be given more than once)")
    p.set_defaults(func=cmd_deploy)
