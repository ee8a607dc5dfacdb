"""``robot-wm dream RUN`` (a video of what the model imagines beside the real episode) and ``robot-wm drive RUN``
(step the model by hand beside the simulator); kept apart so that building the parser imports no torch."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from robot_wm.cli_args import address_arg, integer, number, path_arg, seed, whole
from robot_wm.text import echo


def _source(data: str | None) -> str:
    """The default video name's prefix for an episode of ``--data DIR``: its folder's name and a digest of its path
    (the eighth probe: --data's episode 1 replaced the dream of the run's own; probe 14: two recording folders'
    episode 1 replaced each other's)."""
    if not data:
        return ""
    import hashlib

    where = Path(data).resolve()
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in where.name)[:40]
    return f"robot_{name}_{hashlib.sha256(os.fsencode(where)).hexdigest()[:6]}_"  # any bytes (a Latin-1 name)


def _dreams(run) -> Path:
    """``RUN/dreams``, a folder of the run's: a link to one of its files was a raw "[Errno 17] File exists"."""
    folder = run.own_folder("dreams")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is not a folder (a file, or a link to one): remove it, or give --out")
    return folder


def _require_physics(ep, a: argparse.Namespace, why: str, env=None) -> None:
    if ep.physics_state.shape[1] == 0:
        raise ValueError(f"episode {a.episode} has no physics state (a real robot's recording, or one brought in by "
                         f"finetune): {why}; `robot-wm whatif --data` gives the predictions as numbers")
    if env is not None and ep.physics_state.shape[1] != (size := env.get_state().size):  # MuJoCo's TypeError (probe 17)
        raise ValueError(f"episode {a.episode} holds physics states of {ep.physics_state.shape[1]} numbers, the "
                         f"simulated robot's have {size}: the file was edited, or is another robot's")


def cmd_dream(a: argparse.Namespace) -> int:
    """Read-only on the run (no lock): writes only the video (and the .rrd) it is asked for."""
    from robot_wm.dream import dream, dream_span, log_dream, render_dream, write_video

    _check_video_args(a)
    from robot_wm.cli import _session, model_and_episode

    # its own outputs only: a run created with --rerun also wrote a stray RUN/rerun recording (ninth probe)
    with _session(a.run_dir, ["rerun.mode=off"], progress=False, lock=False, command="dream") as s:
        model, ep = model_and_episode(s, a)
        _require_physics(ep, a, "the video renders the robot from it", s.env)
        if a.member is not None and not 0 <= a.member < model.members:
            raise ValueError(f"--member {a.member}: the model has {model.members} members (0 to {model.members - 1})")
        if a.candidate == "recorded":
            d = dream(model, ep, a.step, a.horizon)
        else:
            d = _candidate_dream(a, s, model, ep, dream_span(len(ep.action), a.step, a.horizon))
        frames = render_dream(s.env, d, _decoder(s), a.member, (a.height, a.width))
        period = s.env.control_timestep
        tag = "" if a.candidate == "recorded" else "_" + "".join(c for c in a.candidate if c.isalnum())
        tag += "" if a.member is None else f"_member{a.member}"
        # what else picks the dream: another horizon, actions file or seed replaced the video of one (probe 29)
        tag += "" if a.horizon is None else f"_h{a.horizon}"
        if a.candidate.startswith("file"):
            tag += "_" + "".join(c for c in Path(a.actions).stem if c.isalnum() or c in "-_")[:40]
        elif a.candidate.startswith("random") and a.seed:
            tag += f"_seed{a.seed}"
        out = Path(a.out) if a.out else _dreams(s.run) / f"{_source(a.data)}episode{a.episode:06d}_step{a.step}{tag}.mp4"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_video(out, frames, fps=a.fps or 1.0 / period)
        shown = "the members' mean" if a.member is None else f"member {a.member}"
        echo(f"wrote {out}: {len(frames)} frames, episode {a.episode} from step {a.step}, candidate {a.candidate}, "
              f"{shown}; state error (data std units) after 1 step {d.error[:, 1].mean():.3f}, at the end "
              f"{d.error[:, -1].mean():.3f}")
        if a.rrd:
            echo(f"wrote {log_dream(a.rrd, frames, d, period)} (open it with `rerun {a.rrd}`)")
    return 0


def _candidate_dream(a: argparse.Namespace, s, model, ep, horizon: int):
    """What-if candidate ``a.candidate`` (whatif's names) dreamt beside the simulator re-run with its actions."""
    from robot_wm.drive import replay
    from robot_wm.whatif import candidates, check_query

    names, seqs = candidates(ep.action[a.step:a.step + horizon], s.env.action_spec.low, s.env.action_spec.high,
                             a.random, a.seed, a.actions)
    if a.candidate not in names:
        shown = ", ".join(names[:6]) + (f", ... {names[-1]}" if len(names) > 6 else "")
        raise ValueError(f"--candidate {a.candidate!r}: expected one of {shown}")
    _, seqs = check_query(model, ep.obs[a.step], seqs)  # a file's actions within the bounds
    return replay(model, s.env, ep, a.step, seqs[names.index(a.candidate)])


def _check_video_args(a: argparse.Namespace) -> None:
    from robot_wm.dream import check_video_path

    if a.out is not None:
        check_video_path(a.out)
    if a.rrd is not None and getattr(a, "serve", None) is not None:  # --serve was ignored (probe 11)
        raise ValueError(f"--rrd {a.rrd!r} and --serve {a.serve!r}: give one (a file to open later, or a live viewer)")
    if a.rrd is not None:  # before any work: --rrd RUN/metrics.jsonl replaced the run's log
        from robot_wm.config import check_rrd_target

        check_rrd_target(a.rrd, "--rrd")  # nor a run's own recording (tenth probe), nor one through a hard link
    for flag, v in (("--width", a.width), ("--height", a.height)):
        if not (16 <= v <= 4096 and v % 16 == 0):
            raise ValueError(f"{flag} {v}: expected a multiple of 16 from 16 to 4096 (what H.264 encodes unscaled)")


def _decoder(s):
    """Observation -> joint positions for the run's robot (fitted on its last 20 episodes where not exact)."""
    from robot_wm.viz.kinematics import QposDecoder

    decoder, data = QposDecoder(s.env.model, s.cfg.env.task), s.run.dataset()
    if decoder.exact is None:
        for i in range(max(0, len(data) - 20), len(data)):
            decoder.add_episode(data[i].obs, data[i].physics_state)
        decoder.fit()
    return decoder


def cmd_drive(a: argparse.Namespace) -> int:
    """Read-only on the run (no lock)."""
    from robot_wm.dream import (
        Panels,
        check_video_memory,
        dream_blueprint,
        log_frame,
        render_dream,
        state_error,
        video_fits,
        write_video,
    )
    from robot_wm.drive import Drive, scripted_actions, typed_actions, typed_lines
    from robot_wm.viz.logger import FLUSH_TIMEOUT_S, open_stream

    _check_video_args(a)
    from robot_wm.cli import _session, model_and_episode

    with _session(a.run_dir, ["rerun.mode=off"], progress=False, lock=False, command="drive") as s:
        model, ep = model_and_episode(s, a)
        _require_physics(ep, a, "drive starts the simulator from it")  # a MuJoCo traceback before (seventh probe)
        drive, dim = Drive(model, s.env, ep, a.step), s.env.action_spec.dim
        actions = scripted_actions(a.actions, dim) if a.actions else typed_actions(typed_lines(sys.stdin), dim, print)
        if a.out and a.actions:  # before the drive, not after it (probe 11): the frames are known
            check_video_memory(min(len(actions), a.max_steps) + 1, (a.height, a.width))
        rec = None
        if a.rrd or a.serve:
            if a.serve and not a.rrd:
                from robot_wm.viz.cli import warn_non_loopback

                warn_non_loopback("serve", a.serve, "--serve")  # as eval --rerun serve does (eighth probe)
            rec = open_stream("save" if a.rrd else "serve", path=a.rrd, address=None if a.rrd else a.serve,
                              application_id="robot-wm-drive", blueprint=dream_blueprint("drive"), flag="--serve")
        decoder, panels = _decoder(s), Panels(s.env.model, (a.height, a.width))
        qpos0, period = panels.qpos(drive.physics[0]), s.env.control_timestep
        broke = False
        try:
            for i, act in enumerate(actions):
                if i >= a.max_steps:
                    print(f"stopped after --max-steps {a.max_steps}")
                    break
                if a.out and not a.actions and not video_fits(i + 2, (a.height, a.width)):
                    print(f"stopped after {i} steps: the video for --out of one more would not fit in memory "
                          "(it is written for the steps so far)")
                    break
                t = drive.step(act)
                if not np.isfinite(t.error) and not broke:  # said once, instead of numpy's overflow warnings (probe 12)
                    broke = True
                    print(f"step {t.step}: the model's prediction left any finite range (it diverged): its errors "
                          "from here on are not meaningful")
                clipped = " (clipped to the bounds)" if not np.allclose(act, t.action) else ""  # probe 11
                print(f"step {t.step}: action {np.round(t.action, 3).tolist()}{clipped}  members disagree "
                      f"{t.disagreement:.3f}  error vs simulator {t.error:.3f}"
                      + ("  SIMULATOR DIVERGED (its last valid state is kept)" if t.diverged else ""), flush=True)
                if rec is not None:
                    mean = np.stack(drive.imagined, 1).mean(0)
                    q = decoder.trajectories(mean, qpos_now=qpos0)[-1]
                    frame = np.concatenate([panels.real(drive.physics[-1]), panels.imagined(q)], axis=1)
                    err = state_error(drive.imagined[-1][:, None], drive.real[-1][None], drive.std)[:, 0]
                    log_frame(rec, "drive", t.step * period, frame, err)
                if t.ended:  # stepping on was a RuntimeError traceback at the time limit (review of probe 15's fix)
                    print("the simulator's episode ended here (" + ("it diverged" if t.diverged else
                          f"its time limit, {s.env.max_control_steps} control steps into the episode") + ")")
                    break
        finally:
            panels.close()
            if rec is not None:
                rec.flush(timeout_sec=FLUSH_TIMEOUT_S)
                rec.disconnect()
        d = drive.as_dream()
        echo(f"drove {len(d.real) - 1} steps from episode {a.episode} step {a.step}; error vs simulator at the end "
              f"{drive.final_error():.3f} (the members' mean prediction, data std units)")
        if a.out and len(d.real) > 1:
            write_video(a.out, render_dream(s.env, d, decoder, None, (a.height, a.width)), fps=1.0 / period)
            echo(f"wrote {a.out}")
        elif a.out:  # exit 0 and no file, without a word (probe 17)
            echo(f"no step was driven: {a.out} not written")
        if a.rrd:  # written without a word (probe 32)
            echo(f"wrote the Rerun recording {a.rrd} (open it with `rerun {a.rrd}`)")
    return 0


def register(sub) -> None:
    d = sub.add_parser("dream", help="video of what the model imagines under an episode's actions, beside the real one")
    d.add_argument("run_dir")
    d.add_argument("--episode", type=integer, default=0, help="episode of the run's dataset (or of --data)")
    d.add_argument("--data", type=path_arg, default=None, metavar="DIR",
                   help="recorded deployments (deploy --record DIR): the model's predictions beside what the robot did")
    d.add_argument("--step", type=integer, default=0, help="control step to start imagining from")
    d.add_argument("--horizon", type=integer, default=None, help="steps to imagine (default: to the episode's end)")
    d.add_argument("--member", type=integer, default=None, help="show one ensemble member (default: their mean)")
    d.add_argument("--candidate", default="recorded",
                   help="whose actions, named as `robot-wm whatif` names them: recorded (the episode's own, beside "
                        "the recorded states), zero, random[i], file[i] (with --actions); any but recorded is "
                        "shown beside the simulator re-run from the same state with those actions")
    d.add_argument("--actions", type=path_arg, default=None, help=".npy file of candidate sequences (K, H, A), for file[i]")
    d.add_argument("--random", type=whole(0, 10_000), default=8, help="random candidates to draw (as whatif)")
    d.add_argument("--seed", type=seed, default=0, help="seed of the random candidates (as whatif)")
    d.add_argument("--out", type=path_arg, default=None, help="mp4 or gif path (default: RUN/dreams/episodeNNNNNN_stepT[_hH...].mp4, "
                                               "robot_FOLDER_DIGEST_episodeNNNNNN_stepT.mp4 for an episode of "
                                               "--data)")
    d.add_argument("--rrd", type=path_arg, default=None, help="also write the frames and error curves to this .rrd file")
    d.add_argument("--fps", type=number(0.1, 1000), default=None,  # 1e-9 reached ffmpeg as "-r 0"
                   help="frames per second (default: real time, 1 / control period)")
    d.add_argument("--width", type=integer, default=320, help="width of each panel in pixels (multiple of 16)")
    d.add_argument("--height", type=integer, default=240, help="height of each panel in pixels (multiple of 16)")
    d.set_defaults(func=cmd_dream)

    v = sub.add_parser("drive", help="step the learned model by hand (keyboard or action file) beside the simulator")
    v.add_argument("run_dir")
    v.add_argument("--episode", type=integer, default=0, help="episode of the run's dataset to start from")
    v.add_argument("--step", type=integer, default=0, help="its state to start from")
    v.add_argument("--actions", type=path_arg, default=None, help="scripted actions: .npy (K, A) or text, one per line "
                   "(default: type them, one line per step; empty repeats; q quits)")
    v.add_argument("--max-steps", type=whole(1, 1_000_000), default=1000)
    v.add_argument("--rrd", type=path_arg, default=None, help="log every step to this .rrd file")
    v.add_argument("--serve", type=address_arg, default=None, metavar="HOST:PORT", nargs="?", const="127.0.0.1:9876",
                   help="serve the steps live to a Rerun viewer (default 127.0.0.1:9876)")
    v.add_argument("--out", type=path_arg, default=None, help="at the end, a dream video (mp4 or gif) of the whole drive")
    v.add_argument("--width", type=integer, default=320)
    v.add_argument("--height", type=integer, default=240)
    v.set_defaults(func=cmd_drive)
