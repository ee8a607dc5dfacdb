"""The main job: seed episodes -> train -> MPC episodes (retraining between them) -> evaluation."""

from __future__ import annotations

import logging
import math
import os
import reprlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from policies.mpc.planner import MPCPlanner
from policies.mpc.step import StepSpec
from policies.random import RandomPolicy
from robot_wm import config as config_mod
from robot_wm.config import RunConfig
from robot_wm.data.dataset import check_action_bounds
from robot_wm.data.realign import realigned_delays
from robot_wm.finetune import (
    check_pairing,
    check_suite_reward,
    held_robot_episodes,
    mixed_split,
    robot_weight,
    sim_states,
)
from robot_wm.io import RunLockedError, file_sha256
from robot_wm.memory import check_memory
from robot_wm.metrics import multistep_error
from robot_wm.model.checkpoint import check_time_step, load_checkpoint_parts, save_checkpoint, time_step
from robot_wm.model.ensemble import WorldModel
from robot_wm.model.value import ActorCritic, new_value
from robot_wm.observer import Observer
from robot_wm.run_dir import RunDir, RunLock
from robot_wm.seeding import episode_seed, seed_everything
from robot_wm.train import fit_model, new_model
from robot_wm.train_value import TDData, ValueOptimizers, train_value, with_imagined
from sim.collect import run_episode
from sim.env import STEP_UNIT, Env
from sim.goal import resolve_goal
from sim.registry import make_env

log = logging.getLogger(__name__)


@dataclass
class Session:
    """Everything a run-directory command works on."""

    cfg: RunConfig
    run: RunDir
    env: Env
    progress: bool = True
    started: float = field(default_factory=time.perf_counter)
    observer: Observer = field(default_factory=Observer)
    model: WorldModel | None = None
    """The full ensemble trained so far; each training round continues from it."""
    model_round: int | None = None
    """The training round ``model`` comes from (loaded, or trained last); episodes it plans record it."""
    value: ActorCritic | None = None
    """The Q ensemble and policy trained so far (None until the first round, or with value.enabled false)."""
    _value_opt: ValueOptimizers | None = None
    """The value's optimizers, continued round to round (not saved: a resumed run starts fresh ones)."""

    lock: RunLock | None = None
    """The run directory's writer lock while this session holds it (``close`` releases it)."""

    @classmethod
    def open(cls, cfg: RunConfig, run: RunDir, progress: bool = True, *, lock: bool = True,
             command: str | None = None, memory: tuple[str, ...] = ("planner", "training"),
             writes: str = "run") -> Session:
        """Open ``run`` for ``cfg``: a new run (a new or empty folder: its config.toml is written now, the
        only time it is written in full) or an existing one (its config.toml is never rewritten: ``cfg``
        then holds this command's one-off overrides). With ``lock`` (every command that writes) the run's
        lock is held until ``close``; read-only users pass ``lock=False``. Refused before anything is
        written: a folder that is not a run, a task or observation/action sizes other than the run's, a
        run in the old step unit, a run another process is writing, a run whose folders ``writes`` (a command of
        ``RunDir.WRITES``) stores into cannot be written."""
        if not isinstance(run, RunDir):  # a path was "'str' object has no attribute 'check_usable'" (probe 20)
            raise TypeError(f"run={run!r}: expected a RunDir (robot_wm.run_dir.RunDir(path))")
        seed_everything(cfg.seed, cfg.threads)
        run.check_usable()
        saved = run.load_config() if run.config_path.exists() else None
        _check_task(run, saved, cfg)
        env = make_env(cfg.env)  # an unknown task fails here, before the run directory is touched
        if cfg.goal.active:  # so does a goal the robot cannot take (an unknown joint failed after round 0)
            env.reset(0)
            resolve_goal(env, cfg.goal.state, cfg.goal.joints, cfg.goal.weights)
        check_device(cfg.device)
        check_memory(cfg, env.observation_spec.dim, env.action_spec.dim, parts=memory)  # a planner or model too big
        held = run.lock(command) if lock else None
        try:
            run.check_usable()  # again under the lock: another writer may have created it meanwhile
            if lock:
                run.check_writable(writes)
            creating = not run.config_path.exists()
            if creating and not lock:
                raise FileNotFoundError(f"{str(run.root)!r} is not a run directory (no config.toml)")
            if creating and (made := run.has_work()):  # defaults were written into a complete run (probe 11)
                raise ValueError(f"the run {str(run.root)!r} has lost its config.toml but holds {made}: its "
                                 "settings cannot be guessed; restore config.toml (from a copy of the run) and run "
                                 "the command again, or use another run_dir")
            if creating:  # the manifest first: a folder with a manifest is a run (and --resume finishes it)
                if not run.manifest_path.exists():
                    run.update_manifest(status="created", task=cfg.env.task, run_id=uuid.uuid4().hex,
                                        **({"robot": fp} if (fp := env.fingerprint()) else {}))
                run.save_config(cfg)
            elif not run.manifest_path.exists() and (made := run.has_work()):  # rebuilt without a word, nor the
                # run's id, status or final evaluation: a complete run's final evaluation was done again (probe 28)
                raise ValueError(f"the run {str(run.root)!r} has lost its manifest.json but holds {made}: its id, "
                                 "status and final evaluation cannot be guessed; restore manifest.json (from a copy "
                                 "of the run) and run the command again, or use another run_dir")
            elif saved is None:  # another command created the run between the first look and the lock
                now_saved = run.load_config()
                _check_task(run, now_saved, cfg)
                # its other settings counted too: two `collect NEWDIR` at action repeats 8 and 4 filled one run
                # with episodes of both (probe 11)
                if differ := [f for f in config_mod.changed_fields(now_saved, cfg) if not f.startswith("rerun.")]:
                    raise ValueError(f"another command created the run {str(run.root)!r} meanwhile with other "
                                     f"settings ({', '.join(differ[:5])}{' ...' if len(differ) > 5 else ''}); "
                                     "nothing was written: run the command again to add to that run, or use "
                                     "another run_dir")
            _check_robot(run, cfg, env)
            run.check_step_unit()  # so does a run that counted steps in another unit
            _check_shapes(run, env)
            _check_episodes_are_the_runs(run, saved or run.load_config(), env)
            if lock and (stale := run.remove_temp_files()):
                log.warning("removed %d unfinished temp file(s) left by an interrupted command: %s", len(stale),
                            ", ".join(str(p.relative_to(run.root)) for p in stale[:5]))
            s = cls(cfg, run, env, progress, lock=held)
            if cfg.rerun.mode != "off":  # visual debugging (robot_wm.viz); closed by ``close``
                from robot_wm.viz.observer import RerunObserver

                s.observer = RerunObserver.for_session(s) or Observer()
        except BaseException:
            if held is not None:
                held.release()
            raise
        return s

    def close(self) -> None:
        """Close what the session opened: the observer (a Rerun recording), then the run's lock."""
        try:
            self.observer.close()
        finally:
            if self.lock is not None:
                self.lock.release()

    def _check_writer(self, what: str) -> None:
        """Only a session that holds the run's lock writes it: one opened with ``lock=False`` (read-only) or closed
        collected into a run another process held (probe 17)."""
        if self.lock is None or not self.lock.active:
            raise RuntimeError(f"Session.{what}: this session does not hold the run's lock (opened with lock=False, "
                               "or closed): open one with the lock to write the run")
        if not self.lock.in_place():
            raise self._moved()

    def _moved(self) -> RunLockedError:
        return RunLockedError(f"the run folder {str(self.run.root)!r} was moved or replaced while this command held it "
                              "(another folder is at its path now): stopped before writing into it; nothing of this "
                              "command's is in the folder now at that path")

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        try:  # a check that failed on what is at the path now: the folder put there, not this run, is at fault (a
            # writer's own run moved away and another put back was said to hold a checkpoint "copied in": probe 33)
            if isinstance(exc, ValueError) and self.lock is not None and self.lock.active and not self.lock.in_place():
                raise self._moved() from exc
        finally:
            self.close()

    def wall(self) -> float:
        return time.perf_counter() - self.started

    # --- policies ---------------------------------------------------------------------------
    def planner(self, kind: str, model: WorldModel | None = None, seed: int = 0, explore: bool = False):
        """``learned``: the world model with the value and policy where the run has them; ``pets``: the
        same world model without them (imagined reward over the horizon only); ``oracle``; ``random``.
        ``explore`` (training episodes only, never evaluation) colours random actions by seed_noise_beta,
        adds planner.explore_weight x the members' disagreement on the imagined states to the objective
        (optimism where the model is unsure), executes actions drawn with planner.explore_noise x the
        planner's own sampling std, and plans with the value heads' mean and no value guard (planner.value_pessimism
        and planner.value_guard are for evaluation only)."""
        spec = StepSpec.from_config(self.cfg.planner)
        if explore:  # a training episode plans with the value heads' mean, unguarded: both are for acting only
            spec = replace(spec, value_pessimism=0.0, value_guard=0.0)
        novelty = self.cfg.planner.explore_weight if explore else 0.0
        noise = self.cfg.planner.explore_noise if explore else 0.0
        goal = self.cfg.goal
        goal_fn = (lambda: resolve_goal(self.env, goal.state, goal.joints, goal.weights)) if goal.active else None
        if kind == "random":  # a training (seed) episode's actions are coloured as the run says
            beta = self.cfg.seed_noise_beta if explore else 0.0
            return RandomPolicy(self.env.action_spec, seed, beta=beta, length=self.env.max_control_steps)
        if kind in ("oracle", "oracle-value"):  # the true simulator; oracle-value adds the learned terminal value
            from policies.oracle import oracle_planner

            if kind == "oracle-value" and self.value is None:
                raise ValueError("the oracle-value planner needs the run's value: train with value.enabled=true")
            return oracle_planner(self.env, spec, seed, value=self.value if kind == "oracle-value" else None,
                                  goal_fn=goal_fn, reward_weight=goal.reward_weight)
        if kind in ("learned", "pets"):
            if model is None:
                raise ValueError(f"the {kind} planner needs a trained model: run `robot-wm train` first")
            value = self.value if kind == "learned" and goal.uses_value else None
            return MPCPlanner.learned(model, spec, seed, value=value, novelty_weight=novelty, goal_fn=goal_fn,
                                      reward_weight=goal.reward_weight, action_noise=noise)
        raise ValueError(f"unknown planner {kind!r}; expected one of: learned, pets, oracle, oracle-value, random")

    # --- data -------------------------------------------------------------------------------
    def collect(self, policy, phase: str, index: int, total_env_steps: int | None = None,
                start_index: int | None = None, final: bool = False) -> dict:
        """Run and store episode ``index`` of ``phase``; its start state is drawn as that of episode
        ``start_index`` (default: ``index``), so that two evaluations can start alike. ``final``: an episode of the
        run's own final evaluation (its record says so)."""
        self._check_writer("collect")
        if phase not in ("train", "eval"):  # 'banana' was stored as training data (probe 21)
            raise ValueError(f"phase={phase!r}: expected 'train' (the run's training data) or 'eval'")
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or index < 0:
            raise ValueError(f"index={index!r}: expected a whole number >= 0 (the episode's number, which seeds it)")
        index = int(index)  # np.int64 reached the record's JSON after the episode was stored (review)
        evaluating = phase == "eval"
        if not evaluating:  # a delayed episode into a run whose robot data was realigned: every later train refused
            check_pairing(self.run, self.cfg)
        data = self.run.eval_dataset() if evaluating else self.run.dataset()
        if not evaluating:  # what train refuses, refused before an episode is stored after it (probe 23)
            self.run.check_recorded_episodes(data)
            self.run.log_unlogged_last(data)
        if not evaluating and index < len(data):  # index 0 again: episode 0's start and seed, stored twice (probe 21)
            raise ValueError(f"index={index}: training episode {index} is stored already; the next is {len(data)}")
        seed = episode_seed(self.cfg.seed, index if start_index is None else start_index, eval=evaluating)
        obs = self.observer
        obs.on_episode_start(phase, index, self.env, policy)
        meta = {"phase": phase, **({"run": rid} if (rid := self.run.manifest().get("run_id")) else {})}
        ep = run_episode(self.env, policy, seed, meta=meta,
                         on_step=lambda t, o, a, r, n: obs.on_step(t, o, a, r, n, policy))
        record = {"kind": "episode", "phase": phase, "index": index, "policy": policy.name, "seed": seed,
                  "wall_s": round(self.wall(), 2), "return": float("nan"), "env_steps": 0, "physics_steps": 0,
                  "diverged": True}
        if ep is not None:
            self._check_writer("collect")  # the folder may have been moved during the episode (probe 33)
            path = data.append(ep)
            record.update(file=path.name, sha256=file_sha256(path))  # checked before each training (probe 12)
            record.update({k: ep.meta[k] for k in ("return", "control_steps", "env_steps", "physics_steps",
                                                   "diverged", "plan_hz")})
            if policy.name in ("learned", "pets", "oracle-value") and self.model_round is not None:  # which model
                record["model_round"] = self.model_round  # planned: an ad-hoc eval of a rolled-back round (probe 29)
            if isinstance(fell := getattr(policy, "fallbacks", None), int):  # a planner that never planned scored
                record["fallbacks"] = fell  # "return 0.0" as the learned planner's (probe 22)
            if getattr(policy, "guard", None) is not None:  # the value guard's: steps planned without the value
                record["value_off_steps"] = policy.value_off_steps
            if (goal := getattr(policy, "goal", None)) is not None:  # where the episode ended, from its goal
                record["goal_distance"] = goal.distance(ep.obs[-1])
        record["total_env_steps"] = (self.run.dataset().env_steps if total_env_steps is None else total_env_steps)
        if final:  # an ad-hoc eval's episode named in the manifest's final list made the headline (probe 32)
            record["final_eval"] = True
        self.run.log(record)
        obs.on_episode_end(record)
        return record

    # --- model ------------------------------------------------------------------------------
    def train(self, round_: int) -> WorldModel:
        """Train (continuing from ``self.model``), checkpoint, log errors; return the elite model."""
        self._check_writer("train")
        data = self.run.dataset()
        self.run.check_recorded_episodes(data)
        if not len(data):  # "no transitions: the dataset is empty", naming neither the cause nor the reset (probe 29)
            diverged = sum(1 for r in self.run.records("episode") if r.get("phase") == "train" and r.get("diverged"))
            raise ValueError(f"the run {str(self.run.root)!r} holds no training episode to train on" + (
                f": all {diverged} collected diverged at their first physics step, so none was stored; the robot's start "
                "state (env.reset, or the MJCF's initial pose) makes MuJoCo diverge at once" if diverged else ""))
        obs_dim, act_spec = self.env.observation_spec.dim, self.env.action_spec
        model = self.model
        if model is None:
            model = new_model(obs_dim, act_spec.dim, act_spec.low, act_spec.high, self.cfg.model, self.cfg.device)
        t0 = time.perf_counter()
        # The run's fine-tuning data (RUN/robot) stays in every later round, at the weight it was given: a plain
        # train after finetune trained on simulation alone and nothing said so (tenth probe)
        robot = held_robot_episodes(self, list(data))
        weight = robot_weight(self.run, len(robot))
        mix = mixed_split(list(data), robot, weight, self.cfg.model.val_fraction)
        report = fit_model(model, mix.train, mix.val, self.cfg.model, seed=self.cfg.seed * 7919 + round_,
                           progress=self.progress, norm_from=mix.sim_train)
        elite = model.subset(report.elites)
        value_rec = self._train_value(data, round_, robot * weight, elite) if self.cfg.value.enabled else {}
        horizons = tuple(sorted({1, 5, 10, self.cfg.planner.horizon}))
        errors = multistep_error(elite, mix.sim_val, horizons)  # the simulator's held-out segments
        transitions = sum(len(e) for e in data)
        # the delays its robot data was realigned by: export warns where the planner does not compensate them (probe
        # 20: said for the fine-tuned round only)
        delays = realigned_delays(robot)
        self._check_writer("train")  # the folder may have been moved during training (probe 33)
        stem = self.run.checkpoint_stem(round_)
        if put := [p.name for p in (stem.with_suffix(".json"), stem.with_suffix(".safetensors")) if os.path.lexists(p)]:
            # a copy put there by hand while the run trained was replaced by its round, without a word (probe 42)
            raise FileExistsError(f"{', '.join(put)} appeared in {str(self.run.checkpoints)!r} while this command "
                                  f"trained round {round_} (robot-wm had not written it): nothing was overwritten; move "
                                  "it out of the folder and run the command again (a run goes on with --resume)")
        stem = save_checkpoint(model, stem, report.elites, extra={
            "task": self.cfg.env.task, **time_step(self.cfg.env), **self.run.id_field(), "round": round_,
            "transitions": transitions,
            "multistep_mse": {str(k): v for k, v in errors.items()},
            **({"robot_realigned_delays": delays} if delays else {})}, value=self.value)
        self.run.set_latest(stem)
        record = {"kind": "train", "round": round_, "epochs": report.epochs,
                  "train_s": round(time.perf_counter() - t0, 2), "val_mse": report.val_mse,
                  "elites": report.elites, "episodes": len(data), "transitions": transitions,
                  "multistep_mse": {str(k): v for k, v in errors.items()}, **value_rec, "history": report.history,
                  **({"robot_episodes": len(robot), "robot_weight": weight} if robot else {})}
        self.run.log(record)
        self.observer.on_train(record, elite)
        self.model, self.model_round = model, round_
        return elite

    def _train_value(self, data, round_: int, robot: list, model: WorldModel) -> dict:
        """Continue the value and policy on every stored transition (and the ``robot`` episodes, repeated by
        their weight): ``updates_per_step`` updates per simulated control step collected since the last round.
        Returns the fields of the train record."""
        env, cfg = self.env, self.cfg
        if self.value is None:
            spec = env.action_spec
            self.value = new_value(env.observation_spec.dim, spec.dim, spec.low, spec.high, cfg.value,
                                   env.max_control_steps, env.action_repeat, cfg.device)
        stored = TDData.from_episodes(list(data) + list(robot or []), cfg.value.n_step, self.value.spec.discount)
        rows, imagined = with_imagined(stored, model, self.value, cfg.value.imagined_steps, cfg.seed * 7919 + round_)
        before = next((r["transitions"] for r in reversed(self.run.records("train")) if "transitions" in r), 0)
        updates = round(cfg.value.updates_per_step * max(0, sum(len(e) for e in data) - before))
        if self._value_opt is None or self._value_opt.ac is not self.value:  # a new or reloaded value: new moments
            self._value_opt = ValueOptimizers.new(self.value, cfg.value.lr)
        rep = train_value(self.value, rows, cfg.value, updates, seed=cfg.seed * 7919 + round_ + 1,
                          progress=self.progress,  # the normaliser: stored states only, never imagined ones (review)
                          norm_from=sim_states(data, cfg.value.n_step, self.value.spec.discount),
                          optimizers=self._value_opt)
        return {"value_updates": rep.updates, "value_train_s": round(rep.train_s, 2), "q_loss": rep.q_loss,
                **({"imagined_rows": imagined} if cfg.value.imagined_steps else {}),
                "pi_loss": rep.pi_loss, "mean_q": rep.mean_q, "discount": self.value.spec.discount}

    def load(self, path) -> dict:
        """Continue from checkpoint ``path``: its full ensemble and its value; returns its JSON."""
        self.model, value, meta = load_checkpoint_parts(path, self.cfg.device)
        self.model_round = meta.get("round") if isinstance(meta.get("round"), int) else None
        self.run.check_own_checkpoint(meta, path)
        self._check_sizes(path, value, meta)
        check_time_step(meta, self.cfg.env, path)
        if not self.cfg.value.enabled:  # `eval RUN value.enabled=false` planned with the value all the same
            self.value = None
        elif value is not None:
            self.value = value
        return meta

    def _check_sizes(self, path, value, meta: dict) -> None:
        """The run's config and its checkpoint agree on the networks: a size edited into config.toml by hand was
        ignored by eval and train without a word (the override was refused; probe 15)."""
        m, v = self.cfg.model, self.cfg.value
        held = {"model.ensemble_size": (m.ensemble_size, self.model.spec.ensemble_size),
                "model.hidden": (m.hidden, self.model.spec.hidden), "model.layers": (m.layers, self.model.spec.layers),
                "model.activation": (m.activation, self.model.spec.activation),
                "model.elites": (m.elites, len(meta["elites"]))}
        if value is not None:
            held |= {"value.q_heads": (v.q_heads, value.spec.q_heads), "value.hidden": (v.hidden, value.spec.hidden),
                     "value.layers": (v.layers, value.spec.layers)}
        spec = self.env.action_spec  # a resealed checkpoint planned over +-100 on a +-1 robot, exit 0 (probe 22)
        for name, mine, theirs in (("low", spec.low, self.model.action_low), ("high", spec.high, self.model.action_high)):
            if not np.allclose(np.asarray(mine, np.float64), theirs.detach().cpu().double().numpy(), atol=1e-6):
                raise ValueError(f"{str(path)!r} plans with action_{name} {theirs.tolist()}, but the run's robot "
                                 f"({self.cfg.env.task}) takes {np.asarray(mine).tolist()}: the checkpoint was edited "
                                 "or belongs to another robot; use another round or retrain")
        if bad := {k: pair for k, pair in held.items() if pair[0] != pair[1]}:
            said = ", ".join(f"{k}={c!r} (the checkpoint: {h!r})" for k, (c, h) in bad.items())
            raise ValueError(f"the run's config says {said}, but {str(path)!r} holds other networks: config.toml "
                             "was edited by hand? Put the values back, or start a new run for other networks")

    def latest_model(self) -> WorldModel | None:
        path = self.run.latest_checkpoint()
        return None if path is None else self._model_at(path)

    def model_of_round(self, round_: int) -> WorldModel:
        """The model training round ``round_`` saved (its checkpoint must be there: it is named by the run's files)."""
        path = self.run.checkpoint_stem(round_).with_suffix(".json")
        if not path.is_file():
            raise FileNotFoundError(f"{str(path)!r} is missing: the run's manifest names round {round_} as the model "
                                    "of its final evaluation; restore the checkpoint from a copy of the run")
        return self._model_at(path)

    def _model_at(self, path: Path) -> WorldModel:
        meta = self.load(path)  # sets self.model
        return self.model.subset(meta["elites"])


def check_device(device: str) -> None:
    """Refuse a torch device this machine does not have, naming it, before anything is built or written."""
    if device == "cpu":
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        have = f"{count} CUDA device(s)" if count else f"no CUDA device (torch {torch.__version__})"
        raise ValueError(f"device={device!r}: this machine has {have}; use device=cpu")


def _check_task(run: RunDir, saved: RunConfig | None, cfg: RunConfig) -> None:
    from sim.dmc import task_key

    if saved is not None and task_key(saved.env.task) != task_key(cfg.env.task):
        raise ValueError(f"env.task={cfg.env.task!r} differs from the run's task {saved.env.task!r} "
                         f"({str(run.config_path)!r}); a run holds one task: use another run_dir")


def _check_robot(run: RunDir, cfg: RunConfig, env: Env) -> None:
    """Refuse a robot other than the one the run was created with: env.mjcf and env.reward are found from the
    working directory, so a command run elsewhere used another robot.xml or reward module and appended its
    episodes to the run (ninth probe)."""
    recorded, now = run.manifest().get("robot"), env.fingerprint()
    if not isinstance(recorded, dict) or not now or recorded == now:
        return  # a suite task, or a run created before robots were recorded
    parts = {"model_sha256": f"env.mjcf {cfg.env.mjcf!r} compiles to another model"}
    for what in ("reward", "observe", "reset"):
        name = getattr(cfg.env, what)
        parts[f"{what}_sha256"] = f"env.{what} {name!r} is defined in another or a changed file"
        parts[f"{what}_imports_sha256"] = f"a module env.{what} {name!r} imports from beside it differs"
    # keys a run created before they were recorded lacks are not compared; nor helper modules recorded as none
    # where this robot-wm finds some (it looks on PYTHONPATH too now): the function's own file says if it changed
    differ = [why for k, why in parts.items() if k in recorded and recorded.get(k) != now.get(k)
              and not (k.endswith("_imports_sha256") and recorded.get(k) is None)]
    if not differ:
        return
    raise ValueError(f"the robot is not the one run {str(run.root)!r} was created with: {'; '.join(differ)} (relative "
                     f"paths and modules are found from the working directory, {os.getcwd()!r}). Run the command "
                     "where the run's robot files are, or start a new run_dir for this robot")


def _check_shapes(run: RunDir, env: Env) -> None:
    """Refuse an environment whose observation or action sizes differ from the run's stored episodes."""
    for data in (run.dataset(), run.eval_dataset()):
        if len(data):
            ep = data[0]
            got, want = (env.observation_spec.dim, env.action_spec.dim), (ep.obs.shape[1], ep.action.shape[1])
            if got != want:
                raise ValueError(f"the environment {env.name!r} has observation/action sizes {got[0]}/{got[1]}, "
                                 f"the run {str(run.root)!r} holds {want[0]}/{want[1]} ({data.paths()[0].name}); "
                                 "a run holds one task: use another run_dir")


WHICH_IS_WRONG = ("if config.toml was edited, restore it; if the episode file was copied in from elsewhere, "
                  "remove it")
"""The way out of an episode that disagrees with its run: the user's data was advised away where the config changed."""


def _check_episodes_are_the_runs(run: RunDir, saved: RunConfig, env: Env) -> None:
    """Refuse training episodes recorded on another task or at another action repeat than the run's (same
    sizes: cartpole-balance in a cartpole-swingup run, or repeat 2 in a repeat-8 run, were trained on), or
    with actions outside the task's bounds."""
    from sim.dmc import canonical_task, task_key

    per_step, suite = env.env_steps_per_control_step, canonical_task(saved.env.task) is not None
    for path, ep in zip(run.dataset().paths(), run.dataset()):
        check_action_bounds(path, ep.action, env.action_spec.low, env.action_spec.high)
        task, repeat, steps = ep.meta.get("task"), ep.meta.get("action_repeat"), ep.meta.get("env_steps")
        # a file without `task` or `action_repeat` skipped these checks (probe 12): every collected episode names both
        if not isinstance(task, str) or (saved.env.task != "mjcf" and task_key(task) != task_key(saved.env.task)):
            raise ValueError(f"episode file {str(path)!r} is from task {task!r}, the run's config.toml says "
                             f"{saved.env.task!r}: a run's episodes are its own ({WHICH_IS_WRONG})")
        # the budget adds these up: -100000 collected on past it, 10**9 ended the run at once (probe 12)
        if isinstance(steps, bool) or steps != len(ep) * per_step:
            raise ValueError(f"episode file {str(path)!r} says env_steps={steps!r}, but its {len(ep)} control steps "
                             f"are {len(ep) * per_step} environment steps on this task ({WHICH_IS_WRONG})")
        if suite:
            check_suite_reward(path, ep.reward, saved.env.action_repeat, what="episode file")
        if isinstance(repeat, bool) or repeat != saved.env.action_repeat:
            raise ValueError(f"episode file {str(path)!r} was collected at action repeat {repeat!r}, the run's "
                             f"config.toml says {saved.env.action_repeat}: its transitions span another time step "
                             f"({WHICH_IS_WRONG})")


RESUME_FIELDS = ("env_steps", "eval_at", "eval_episodes")
"""What ``--resume`` may change and save into the run's config.toml: the budget and its evaluations."""
ONE_OFF_FIELDS = ("threads", "device", "run_dir")
"""What any command may set for itself alone (with every ``rerun.*`` field): never saved."""


def is_one_off(key: str) -> bool:
    return key in ONE_OFF_FIELDS or key.startswith("rerun.")


def resume_changes(run: RunDir, saved: RunConfig, cfg: RunConfig) -> tuple[dict, list[str]]:
    """What ``cfg`` changes against the run's saved config: (the RESUME_FIELDS values to save, every change
    as key=value for the records). Refuses any other change, and any change of the budget on a complete run."""
    from robot_wm.config import ConfigError, flat

    old, new = flat(saved), flat(cfg)
    changed = [k for k in sorted(old) if old[k] != new[k] and k != "run_dir"]
    bad = [k for k in changed if k not in RESUME_FIELDS and not is_one_off(k)]
    if bad:
        raise ConfigError(
            f"--resume cannot change {', '.join(f'{k} (the run has {old[k]!r}, got {new[k]!r})' for k in bad)}: "
            f"they define the run in {str(run.root)!r}. A resume may change {', '.join(RESUME_FIELDS)} (saved) and "
            f"{', '.join(ONE_OFF_FIELDS[:2])} or rerun.* (this command only); start a new run_dir to change the rest")
    persist = {k: new[k] for k in changed if k in RESUME_FIELDS}
    if persist and run.manifest().get("status") == "complete":
        raise ConfigError(
            # "would change nothing" was said of a larger budget, which would collect more (probe 41)
            f"run {str(run.root)!r} is complete (its final evaluation is done): --resume does not reopen it, so "
            f"{' '.join(f'{k}={new[k]!r}' for k in persist)} is refused; start a new run_dir to train longer, or add "
            "to this run with `robot-wm collect` and `robot-wm train`, and evaluate it again with `robot-wm eval`")
    if "env_steps" in persist and persist["env_steps"] < (have := run.dataset().env_steps):
        # the run completed at the steps it held, config.toml said the smaller budget and summary.json the
        # larger, with no word (eighth probe)
        raise ConfigError(
            f"--resume env_steps={persist['env_steps']}: run {str(run.root)!r} has collected {have} environment "
            f"steps already; expected a budget of at least {have} (collected steps are not taken back)")
    return persist, [c for c in config_mod.changes(saved, cfg) if not c.startswith("run_dir=")]


MilestoneHook = Callable[[RunDir, int, float], None]
"""Called after each learning-curve evaluation is stored: (the run, the budget reached, mean return)."""


def run(cfg: RunConfig, progress: bool = True, resume: bool = False,
        on_milestone: MilestoneHook | None = None) -> dict:
    """The whole loop, end to end, into ``cfg.resolved_run_dir()``. Returns the summary.

    With ``resume`` an interrupted run (even one killed with SIGKILL) continues from its last
    complete checkpoint; every finished episode is kept, and only ``RESUME_FIELDS`` may differ from the
    run's saved config (``ONE_OFF_FIELDS`` and rerun.* apply to this call only). Files are written
    atomically, ``manifest.json`` says what is complete, and the run's lock is held throughout."""
    rd = RunDir(cfg.resolved_run_dir())
    rd.check_usable()
    if not resume and (rd.manifest_path.exists() or any((rd.root / "episodes").glob("episode_*.npz"))):
        raise FileExistsError(f"run directory {str(rd.root)!r} already holds a run; pass --resume to "
                              "continue it, or choose another run_dir")
    if resume and not (rd.root.is_dir() and any(rd.root.iterdir())):  # a typo started the default run unannounced
        log.warning("--resume: nothing to resume in %s (no run there); starting a new run", rd.root)
    persist, changes = {}, []
    if resume and rd.config_path.exists():
        saved = rd.load_config()
        persist, changes = resume_changes(rd, saved, cfg)
    with Session.open(cfg, rd, progress) as s:
        if persist:  # under the lock; the run's config takes only these fields
            from robot_wm.config import from_dict

            data = saved.model_dump()
            data.update(persist)
            rd.save_config(from_dict(data, "--resume"))
        rd.overrides = changes
        return _run(s, resume, on_milestone)


def _run(s: Session, resume: bool, on_milestone: MilestoneHook | None = None) -> dict:
    cfg, data, manifest = s.cfg, s.run.dataset(), s.run.manifest()
    if (len(data) or manifest.get("status") not in (None, "created")) and not resume:
        raise FileExistsError(f"run directory {str(s.run.root)!r} already holds a run; pass --resume to "
                              "continue it, or choose another run_dir")
    per_episode = s.env.max_control_steps * s.env.env_steps_per_control_step
    if not resume and cfg.seed_episodes * per_episode >= cfg.env_steps:  # cut to fit, without a word (probe 22)
        log.warning("seed_episodes=%d random episodes of %d steps fill env_steps=%d: %s", cfg.seed_episodes,
                    per_episode, cfg.env_steps, f"only {-(-cfg.env_steps // per_episode)} are collected, all random, "
                    "and no episode plans with the learned model")
    if past := [m for m in cfg.eval_at if m > cfg.env_steps]:  # dropped without a word (probe 22)
        log.warning("eval_at %s lies past env_steps=%d: never reached, so not evaluated (the final evaluation is at "
                    "env_steps)", past, cfg.env_steps)
    if manifest.get("status") == "complete":
        if s.run.summary_path.exists() or s.run.summary_path.is_symlink():
            s.run.check_recorded_episodes(data)  # an emptied metrics.jsonl passed, the summary reprinted (probe 40)
            return s.run.summary()
        # "does not exist: the run is not complete" sent --resume in a circle (probe 11): finish it again
        log.warning("%s is missing: it is rebuilt from the run's final evaluation", s.run.summary_path)
    _check_final_list(s.run, manifest, s.run.eval_dataset())
    if (ckpt := s.run.latest_checkpoint()) is not None:
        s.load(ckpt)
    round_ = s.run.next_round()
    # the main job's wall clock over every session: a resumed run's summary counted its last one only (probe 31)
    before = manifest.get("wall_s") or 0.0
    s.run.update_manifest(status="running", episodes=len(data))
    evaluated = {r.get("milestone") for r in s.run.records("eval")}
    milestones = sorted(m for m in cfg.eval_at if m < cfg.env_steps and m not in evaluated)
    bar = tqdm(total=cfg.env_steps, initial=min(data.env_steps, cfg.env_steps), desc=f"{cfg.env.task}",
               unit="env step", disable=not s.progress)
    index = first = len(data)
    while data.env_steps < cfg.env_steps:
        if index < cfg.seed_episodes:
            policy = s.planner("random", seed=cfg.seed + index, explore=True)
        else:
            model = s.train(round_)
            round_ += 1
            passed = [m for m in milestones if data.env_steps >= m]
            if passed:  # budgets reached in the same episode share one evaluation of the same model
                milestones = milestones[len(passed):]
                milestone_eval(s, model, passed, on_milestone)
            policy = s.planner("learned", model, seed=cfg.seed * 31 + index, explore=True)
        rec = s.collect(policy, "train", index)
        data.refresh()
        s.run.update_manifest(episodes=len(data), wall_s=round(before + s.wall(), 1))
        bar.update(rec["env_steps"])
        bar.set_postfix(ret=f"{rec['return']:.0f}", hz=f"{rec.get('plan_hz', 0):.0f}")
        index += 1
    bar.close()
    if milestones:  # reached within the last episode: dropped without a word (probe 31)
        log.warning("eval_at %s was reached within the last training episode, after which only the final evaluation "
                    "(at %d environment steps) is made: it stands for %s", milestones, data.env_steps,
                    "it" if len(milestones) == 1 else "them")
    # The final evaluation: the run's own episodes are listed in the manifest as each one is stored, so
    # an ad-hoc `robot-wm eval` between an interrupted final evaluation and --resume is never counted.
    final, final_round = manifest.get("final_eval_from"), manifest.get("final_eval_round")
    at = manifest.get("final_eval_data")  # the training episodes the evaluated model had (None: runs before it)
    if final is not None and index > first:  # `--resume env_steps=1200` after a final evaluation at 400 was cut
        # short: its round-1 episodes were the headline at 1200 steps (probe 31). A new final evaluation is made.
        log.warning("the final evaluation interrupted at %d environment steps was of a smaller budget than "
                    "env_steps=%d: it is done again on the model trained on all %d", data.env_steps_of(at or first),
                    cfg.env_steps, data.env_steps)
        final = None
    if final is None:
        model, final_round, at = s.train(round_), round_, len(data)
        final, done = len(s.run.eval_dataset()), []
        s.run.update_manifest(final_eval_from=final, final_eval_episodes=done, final_eval_round=final_round,
                              final_eval_data=at)
    else:  # the model the final evaluation began with: a `finetune` since made a newer round (probe 28)
        model = s.latest_model() if final_round is None else s.model_of_round(final_round)
        done = manifest.get("final_eval_episodes")
        if done is None:  # a manifest written before the list: every evaluation episode since final_eval_from
            done = list(range(final, len(s.run.eval_dataset())))

    if len(done) > cfg.eval_episodes and manifest.get("status") != "complete":  # `--resume eval_episodes=1` after 3
        # of 30 played: the headline averaged 3 beside a config.toml that says 1 (probe 31)
        log.warning("eval_episodes=%d: the final evaluation had played %d episodes; the first %d make the headline",
                    cfg.eval_episodes, len(done), cfg.eval_episodes)
        done = done[:cfg.eval_episodes]
        s.run.update_manifest(final_eval_episodes=done)

    def own(rec: dict) -> None:
        if "control_steps" in rec:  # stored (an episode whose physics diverged is not)
            done.append(len(s.run.eval_dataset()) - 1)
            s.run.update_manifest(final_eval_episodes=done, wall_s=round(before + s.wall(), 1))

    evaluate(s, "learned", model, cfg.eval_episodes - len(done), first=len(done), on_episode=own, final=True)
    evals = s.run.eval_dataset()
    s.run.check_recorded_episodes(evals, "eval")  # an edited one was the rebuilt summary's headline (probe 29)
    finals = [evals[i] for i in done]
    from sim.dmc import canonical_task

    if canonical_task(cfg.env.task) is not None:  # rewards x1000, sha256 re-recorded: a headline of 9776 (probe 31)
        for i in done:
            check_suite_reward(evals.paths()[i], evals[i].reward, cfg.env.action_repeat, what="evaluation episode file")
    # episodes a `collect` stored after the final evaluation are not the evaluated model's: a rebuilt summary said
    # 800 steps for a model trained on 400 (probe 31)
    at = len(data) if at is None or at > len(data) else at
    record = {"kind": "eval", "env_steps": data.env_steps_of(at), "final": True, "episodes": list(done),
              "returns": [e.total_return for e in finals]}
    logged = s.run.records("eval")
    for r in logged:  # its episodes give the returns its record holds (a swapped episode: probe 32)
        if r.get("final") is True and r.get("episodes") == list(done) and not _same_returns(r.get("returns"),
                                                                                            record["returns"]):
            raise ValueError(f"the final evaluation's episodes {list(done)} in {str(evals.root)!r} give the returns "
                             f"{[round(x, 3) for x in record['returns']]}, its record in metrics.jsonl "
                             f"{reprlib.repr(r.get('returns'))}: an episode was replaced after it was stored; "
                             "restore it, or start a new run")
    if not any(all(r.get(k) == v for k, v in record.items()) for r in logged):  # a rebuilt summary: logged once
        s.run.log(record)
    summary = summarize(s, [{"return": e.total_return, "plan_hz": e.meta.get("plan_hz")} for e in finals],
                        final_round, at, before)
    s.run.write_summary(summary)
    s.run.update_manifest(status="complete")
    return summary


def _same_returns(logged, now: list[float]) -> bool:
    """Whether ``logged`` (a record's returns, as read back) are ``now``'s, to float rounding."""
    return isinstance(logged, list) and len(logged) == len(now) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in logged) and bool(
        np.allclose(logged, now, rtol=1e-5, atol=1e-4, equal_nan=True))


def _check_final_list(run: RunDir, manifest: dict, evals) -> None:
    """The manifest's list of the final evaluation's episodes, edited: one episode three times, or the milestone
    evaluations' episodes, made a rebuilt summary's headline, exit 0 (probe 29); an ad-hoc `eval --planner oracle`
    named there, its return the headline (probe 22). Each episode once, none before ``final_eval_from``, each played
    by the run's own planner ("learned", or "pets" where it plans without the value: no value, or a goal alone), and
    the list the final evaluation's record in metrics.jsonl names, where there is one."""
    done, start = manifest.get("final_eval_episodes"), manifest.get("final_eval_from")
    if done is None:
        return
    if any(i >= (n := len(evals)) for i in done):
        run.check_none_removed(evals, "eval")  # a removed episode was blamed on the manifest (probe 40)
        raise ValueError(f"{str(run.manifest_path)!r}: final_eval_episodes {done} name evaluation episodes beyond the "
                         f"{n} stored: the file is damaged or was edited")
    logged = [r["episodes"] for r in run.records("eval") if r.get("final") is True and isinstance(r.get("episodes"), list)]
    # the last record's list begins the manifest's (a resume with more eval_episodes extends it)
    if logged and done[:len(logged[-1])] != logged[-1] and len(set(done)) == len(done):  # [] was told it "repeats
        # an episode or names one before the final evaluation" (probe 42)
        raise ValueError(f"{str(run.manifest_path)!r}: final_eval_episodes {done}, but its final evaluation's record "
                         f"in metrics.jsonl names {logged[-1]}: the file is damaged or was edited")
    if len(set(done)) != len(done) or (start is not None and any(i < start for i in done)):
        said = f"; its final evaluation's record in metrics.jsonl names {logged[-1]}" if logged else ""
        raise ValueError(f"{str(run.manifest_path)!r}: final_eval_episodes {done} (from {start}) repeat an episode "
                         f"or name one before the final evaluation{said}: the file is damaged or was edited")
    if manifest.get("status") == "complete" and logged and done != logged[-1]:  # [0] -> [0, 1], an ad-hoc eval's (32)
        raise ValueError(f"{str(run.manifest_path)!r}: final_eval_episodes {done}, but the run's complete final "
                         f"evaluation's record in metrics.jsonl names {logged[-1]}: the file is damaged or was edited")
    if manifest.get("final_eval_data") is not None:  # a final evaluation begun since its episodes' records say so
        marked = {r.get("file") for r in run.records("episode") if r.get("phase") == "eval" and r.get("final_eval")}
        if bad := [i for i in done if evals.paths()[i].name not in marked]:
            raise ValueError(f"{str(run.manifest_path)!r}: final_eval_episodes names evaluation episode(s) {bad}, which "
                             "the run's final evaluation did not play (an ad-hoc `robot-wm eval`'s?): the file is damaged "
                             "or was edited")
    for i in done:
        if (played := evals[i].meta.get("policy")) not in ("learned", "pets"):
            raise ValueError(f"{str(run.manifest_path)!r}: final_eval_episodes names evaluation episode {i} "
                             f"({evals.paths()[i].name}), played by the {played!r} planner, not the run's own learned "
                             "one: the manifest was edited, or that episode file was replaced (swapped with another)")


def milestone_eval(s: Session, model: WorldModel, milestones: list[int],
                   on_milestone: MilestoneHook | None = None) -> None:
    """One evaluation of ``model``, recorded for each budget in ``milestones`` (all reached by now), then
    ``on_milestone`` told of the largest (a sweep's early stopping may end the run there)."""
    recs = evaluate(s, "learned", model, s.cfg.eval_episodes)
    returns = [r["return"] for r in recs]
    for m in milestones:
        s.run.log({"kind": "eval", "env_steps": s.run.dataset().env_steps, "milestone": m, "returns": returns})
    if on_milestone is not None:
        finite = [r for r in returns if math.isfinite(r)]
        on_milestone(s.run, max(milestones), float(np.mean(finite)) if finite else float("nan"))


def evaluate(s: Session, kind: str, model: WorldModel | None, episodes: int, first: int = 0,
             on_episode=None, starts: int | None = None, final: bool = False) -> list[dict]:
    """``episodes`` evaluation episodes appended to the run's eval/ folder (planner seeds from ``first``);
    ``on_episode(record)`` is called after each one is stored. ``starts``: draw their start states as those of
    evaluation episodes ``starts``, ``starts + 1``, ... (default: the next ones), e.g. nominal against a shift."""
    out = []
    s.run.check_none_removed(data := s.run.eval_dataset(), "eval")
    start = len(data)
    for i in tqdm(range(episodes), desc=f"eval ({kind})", disable=not s.progress, leave=False):
        policy = s.planner(kind, model, seed=s.cfg.seed * 17 + 1000 + first + i)
        out.append(s.collect(policy, "eval", start + i, total_env_steps=s.run.dataset().env_steps,
                             start_index=None if starts is None else starts + i, final=final))
        if on_episode is not None:
            on_episode(out[-1])
    return out


def summarize(s: Session, evals: list[dict], model_round: int | None = None, episodes: int | None = None,
              wall_before: float = 0.0) -> dict:
    """The run's headline. ``model_round``: the training round of the evaluated model; rounds after it (a
    `finetune` or `train` since) are not its figures (a rebuilt summary paired the old return with the newest
    round's error and robot data: probe 28). ``episodes``: the training episodes that model had (all by default).
    ``wall_before``: the wall clock of the run's earlier sessions."""
    train = [r for r in s.run.records("train") if model_round is None or r.get("round", 0) <= model_round]
    returns = [r["return"] for r in evals]
    hz = [r["plan_hz"] for r in evals if r.get("plan_hz") and math.isfinite(r["plan_hz"])]
    data = s.run.dataset()
    n = len(data) if episodes is None else min(episodes, len(data))
    return {
        "task": s.cfg.env.task, "seed": s.cfg.seed, "env_steps": data.env_steps_of(n),
        "step_unit": STEP_UNIT,
        "episodes": n, "eval_returns": returns,
        "eval_return_mean": float(np.mean(returns)) if returns else float("nan"),
        "eval_return_std": float(np.std(returns)) if returns else float("nan"),
        "train_returns": [e.total_return for e in list(data)[:n]],
        "learning_curve": {str(r["env_steps"]): r["returns"] for r in s.run.records("eval")},
        "multistep_mse": train[-1]["multistep_mse"] if train else {},
        "plan_hz": float(np.median(hz)) if hz else float("nan"),
        "wall_s": round(wall_before + s.wall(), 1),
        "train_s": round(sum(r["train_s"] for r in train), 1),
        "value_train_s": round(sum(r.get("value_train_s", 0.0) for r in train), 1),
        "torch_threads": torch.get_num_threads(),
        **_robot_data(train[-1] if train else {}),
    }


def _robot_data(last: dict) -> dict:
    """The summary's word on the robot data the latest round trained on beside the simulator's (a resumed run after
    a fine-tuning trained on it and its summary said nothing: probe 21); {} where none."""
    ft = last.get("finetune") if isinstance(last.get("finetune"), dict) else {}
    n, w = last.get("robot_episodes", ft.get("robot_episodes")), last.get("robot_weight", ft.get("weight"))
    return {"robot_episodes": n, "robot_weight": w} if isinstance(n, int) and n > 0 else {}
