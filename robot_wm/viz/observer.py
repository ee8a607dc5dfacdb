"""``RerunObserver``: the run's ``Observer`` that shows what the robot imagined.

Every control step: the state, action, reward, planning latency and the robot's bodies. Every
``rerun.every_n_steps`` steps: the planner's best ``rerun.ghosts`` sampled sequences, as many of
its policy proposals (replayed from the step's own noise) and the chosen plan rolled out through the
learned model (``what_if``), decoded to qpos and drawn as ghost body trajectories; each member's
rollout of the chosen plan (the spread); the predicted states with their ± std band; the chosen
plan's objective split into imagined reward, terminal value and (toward a goal) goal cost; the
distribution of the sampled scores. After each training round: losses per member, validation and
multi-step error.

The camera frame is rendered through one reused ``mujoco.Renderer``; by default without shadows,
reflections and multisampling (``camera_fast``): on a software renderer (EGL on llvmpipe) that is
~10x cheaper (~4 ms instead of ~40 ms at 320x240) and shows the same scene.
"""

from __future__ import annotations

import logging
import time

import mujoco
import numpy as np
import torch

from policies.mpc.planner import LearnedScore, MPCPlanner, proposal_noise
from robot_wm.observer import Observer
from robot_wm.viz.kinematics import QposDecoder
from robot_wm.viz.logger import RerunLogger
from robot_wm.whatif import what_if
from sim.env import renderer_for

log = logging.getLogger(__name__)


def obs_names(env) -> list[str] | None:
    """Per-dimension names of a DMC observation ('position[0]', ...), when the env exposes them."""
    try:
        spec = env.dm_env.observation_spec()
    except AttributeError:
        return None
    names = []
    for key, s in spec.items():
        n = int(np.prod(s.shape))
        names += [key] if n == 1 and not s.shape else [f"{key}[{i}]" for i in range(n)]
    return names


class RerunObserver(Observer):
    def __init__(self, logger: RerunLogger, env, *, task: str | None = None, ghosts: int = 5,
                 camera_size: tuple[int, int] = (240, 320), discount: float = 1.0, episodes=(),
                 camera_fast: bool = True):
        self.logger, self.env, self.ghosts, self.discount = logger, env, int(ghosts), discount
        self.camera_size, self.camera_fast = camera_size, camera_fast
        self.decoder = QposDecoder(env.model, task)
        for ep in episodes:
            self.decoder.add_episode(ep.obs, ep.physics_state)
        if self.decoder.pairs and self.decoder.exact is None:
            self.decoder.fit()
        self._renderer = None
        self._camera_failed = False
        self._policy = None
        self._snap: dict | None = None
        self._next_t = 0
        self.overhead_s = 0.0  # time spent logging in on_step (camera frames are rendered in act's wrapper)
        self.render_s = 0.0    # time spent rendering camera frames (in act's wrapper)

    @classmethod
    def for_session(cls, s, label: str = "run", max_prefit_episodes: int = 20) -> RerunObserver | None:
        """The observer a ``Session`` gets when ``cfg.rerun.mode`` is not 'off' (else None)."""
        rc = s.cfg.rerun
        logger = RerunLogger.from_config(rc, s.run.root, label=label, mj_model=s.env.model,
                                         obs_names=obs_names(s.env))
        if logger is None:
            return None
        data = s.run.dataset()
        episodes = [data[i] for i in range(max(0, len(data) - max_prefit_episodes), len(data))]
        return cls(logger, s.env, task=s.cfg.env.task, ghosts=rc.ghosts,
                   camera_size=(rc.camera_height, rc.camera_width), discount=s.cfg.planner.discount,
                   episodes=episodes)

    # --- hooks ------------------------------------------------------------------------------
    def on_episode_start(self, phase: str, index: int, env, policy) -> None:
        self.env = env
        self.logger.begin_episode(index, phase)
        self._next_t = 0
        self._wrap(policy)

    def _wrap(self, policy) -> None:
        """Time the policy's ``act`` and snapshot the state it plans from (the pose before the
        action): an instance attribute shadowing the method, removed at the episode's end."""
        self._unwrap()
        act = policy.act

        def timed_act(obs):
            d = self.env.data
            snap = {"qpos": d.qpos.copy(), "frame": None}
            if self.logger.camera_due(self._next_t):
                t0 = time.perf_counter()
                snap["frame"] = self._render()
                self.render_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            out = act(obs)
            snap["latency"] = time.perf_counter() - t0
            self._snap = snap
            self._next_t += 1
            return out

        policy.act = timed_act
        self._policy = policy

    def _unwrap(self) -> None:
        if self._policy is not None and "act" in vars(self._policy):
            del self._policy.act
        self._policy = None

    def on_step(self, t: int, obs, action, reward: float, next_obs, policy) -> None:
        t0 = time.perf_counter()
        lg, snap = self.logger, self._snap or {}
        lg.begin_step()
        qpos = snap.get("qpos")
        if qpos is not None and self.decoder.exact is None:  # pairs only feed the least-squares fit
            self.decoder.add(obs, qpos)
        lg.log_step(obs, action, reward, latency_s=snap.get("latency"), qpos=qpos)
        if snap.get("frame") is not None:
            lg.log_camera(snap["frame"])
        if lg.plan_due(t) and isinstance(policy, MPCPlanner) and policy.last is not None:
            self._log_plan(t, obs, qpos, policy)
        self.overhead_s += time.perf_counter() - t0

    def on_episode_end(self, record: dict) -> None:
        self._unwrap()
        if self.decoder.exact is None and self.decoder.pairs:
            self.decoder.fit()

    def on_train(self, record: dict, model) -> None:
        self.logger.log_train(record.get("round", 0), record.get("history", []), record.get("val_mse"),
                              record.get("multistep_mse"))

    def close(self) -> None:
        self._unwrap()
        if self._renderer is not None:
            try:
                self._renderer.close()
            except Exception:  # noqa: BLE001 - EGL teardown noise must not fail the run
                pass
            self._renderer = None
        self.logger.close()

    # --- pieces -----------------------------------------------------------------------------
    def _render(self) -> np.ndarray | None:
        if self._camera_failed:
            return None
        try:
            if self._renderer is None:
                self._renderer = self._new_renderer()
                self._camera = 0 if self.env.model.ncam > 0 else -1
            self._renderer.update_scene(self.env.data, camera=self._camera)
            return self._renderer.render().copy()
        except Exception as e:  # noqa: BLE001 - no GL on this machine: log everything but frames
            log.warning("rerun: camera frames disabled, MuJoCo rendering failed (%s); set MUJOCO_GL=egl", e)
            self._camera_failed = True
            return None

    def _new_renderer(self) -> mujoco.Renderer:
        h, w = self.camera_size
        model = self.env.model
        if not self.camera_fast:
            return renderer_for(model, h, w)
        quality = model.vis.quality
        samples = int(quality.offsamples)
        quality.offsamples = 0  # read when the GL context is made; the env's model is left as it was
        try:
            renderer = renderer_for(model, h, w)
        finally:
            quality.offsamples = samples
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        return renderer

    @torch.no_grad()
    def _log_plan(self, t: int, obs, qpos, policy: MPCPlanner) -> None:
        out = policy.last
        lg = self.logger
        kw = dict(best_return=float(out.best_return), spread=float(out.spread),
                  scores=out.scores.detach().cpu().numpy(), horizon=policy.step.spec.horizon)
        score = policy.step.score
        if not isinstance(score, LearnedScore):  # e.g. the oracle: no learned model to imagine with
            lg.log_plan(**kw)
            return
        model, spec = score.model, policy.step.spec
        inflight = policy.last_warm_start[: spec.delay].clamp(policy.step.low, policy.step.high)  # (delay, A)
        first = inflight[:1] if spec.delay else out.action[None]
        chosen = torch.cat([first, out.next_plan[:-1]])                    # (H, A) the plan being executed
        k = min(self.ghosts, len(out.elite_plans))
        props = out.elite_plans[:0]
        if spec.policy_samples and policy.last_noise is not None:          # the same proposals the step made
            state = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=chosen.device)
            props = score.propose(state, proposal_noise(spec, policy.last_noise)[:self.ghosts],
                                  inflight if spec.delay else None)
        seqs = torch.cat([chosen[None], out.elite_plans[:k], props]).cpu().numpy()  # chosen, elites, proposals
        low, high = model.action_low.cpu().numpy(), model.action_high.cpu().numpy()
        # ghosts scored as the step scored them: without the value while the value guard had it off (imagined
        # reward alone, at the value's discount)
        trusted = getattr(policy, "last_value_trusted", True)
        res = what_if(model, np.asarray(obs, dtype=np.float32), np.clip(seqs, low, high),
                      self.discount if trusted else score.discount, score.value if trusted else None,
                      goal=policy.goal, reward_weight=score.reward_weight, pessimism=getattr(score, "pessimism", 0.0))
        members = res.member_states[:, 0]                                   # (E, H+1, S)
        kw.update(ghost_returns=res.returns[1:k + 1], pred_obs=res.states[0], pred_obs_std=members.std(0),
                  steps_left=self.env.max_control_steps - t - 1, imagined_reward=float(res.rewards[0].sum()),
                  objective_parts=(float(res.reward_return[0]), float(res.terminal_value[0])),
                  goal_cost=float(res.goal_cost[0]) if policy.goal is not None else None)
        if self.decoder.exact is None and self.decoder.weights is None and self.decoder.pairs:
            self.decoder.fit()
        if self.decoder.ready and qpos is not None:
            q = self.decoder.trajectories(np.concatenate([res.states, members]), qpos)  # one batch
            n = len(res.states)
            kw.update(ghost_qpos=q[1:k + 1], chosen_qpos=q[0], member_qpos=q[n:], proposal_qpos=q[k + 1:n])
        lg.log_plan(**kw)
