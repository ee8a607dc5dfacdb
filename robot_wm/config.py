"""The one typed config tree. A launch file (TOML) is a saved instance of ``RunConfig``.

Every field's docstring is its ``--help`` text. Unknown keys, wrong types and impossible values
are errors that name the field.
"""

from __future__ import annotations

import os
import re
import reprlib
import string
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from robot_wm.goal import MAX_REWARD_WEIGHT
from robot_wm.io import atomic_write_text, check_parent_folder, check_regular_file


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True, strict=True,
                              allow_inf_nan=False)  # a NaN weight would silently disable planning

    @field_validator("*", mode="before")
    @classmethod
    def _plain_numbers(cls, value):
        """numpy scalars (alone, or in a list or array) as the Python numbers they hold, also on assignment (strict
        mode named np.int64(8) "not a valid integer", a raw pydantic error for a config built in Python: probes 19,
        20); numpy booleans stay refused where numbers are due, and a complex number is refused (its imaginary part
        was dropped with a warning)."""
        if isinstance(value, complex | np.complexfloating):
            raise ValueError(f"{value!r} is complex: expected a real number")  # noqa: TRY004 -- pydantic reports a ValueError
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if isinstance(value, list | tuple):
            return type(value)(_plain(v) for v in value)
        return _plain(value)


def _plain(value):
    """A numpy integer or float as the Python number it holds; anything else as it is."""
    return value.item() if isinstance(value, np.integer | np.floating) else value


Range = Annotated[tuple[float, float], Field(strict=False)]  # [low, high]; TOML has lists, not tuples
IntRange = Annotated[tuple[int, int], Field(strict=False)]


MIN_SCALE = 0.01
"""The smallest mass or actuator-gain scale: a robot of a hundredth of its mass is still that robot."""
MAX_EPISODES = 1_000_000
"""The most episodes a count in the config may ask for (eval --episodes has the same bound; a run holds at most a
million training rounds); `eval_episodes=10**9` was accepted (probe 23)."""


class RandomizeConfig(_Section):
    """Domain randomisation (``sim.randomize``): per-episode scales drawn uniformly from [low, high] with
    the episode seed and recorded in the episode's metadata. low == high is a fixed perturbation (e.g.
    ``mass = [1.3, 1.3]`` with ``mass_bodies = ["pole"]``); all at 1 / 0: the nominal model."""

    mass: Range = (1.0, 1.0)
    """Scale range of body mass and inertia (of mass_bodies, or of every body)."""
    mass_bodies: list[str] = []
    """Bodies whose mass is scaled, by MJCF name (empty: every body)."""
    friction: Range = (1.0, 1.0)
    """Scale range of every geom's sliding friction."""
    damping: Range = (1.0, 1.0)
    """Scale range of every joint's damping."""
    actuator_gain: Range = (1.0, 1.0)
    """Scale range of every actuator's gain."""
    obs_noise: float = Field(0.0, ge=0, le=100)
    """Standard deviation of Gaussian noise added to every observation (observation units; at most 100:
    1e30 made every planning step fall back, 1e308 was reported as diverged physics)."""
    action_delay: IntRange = (0, 0)
    """Range of the delay, in control steps, between a command and its effect."""

    @model_validator(mode="after")
    def _ranges(self) -> RandomizeConfig:
        for name in ("mass", "friction", "damping", "actuator_gain", "action_delay"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"env.randomize.{name}=[{lo}, {hi}] is inverted: expected [low, high] with low <= high")
            if lo < 0 or (name in ("mass", "actuator_gain") and lo < MIN_SCALE):
                # mass [1e-300, 1e-300] was positive and ended in MuJoCo's PhysicsError (mjWARN_INERTIA)
                what = "a delay in control steps must be" if name == "action_delay" else "scales must be"
                raise ValueError(f"env.randomize.{name}=[{lo}, {hi}]: {what} "
                                 f"{f'at least {MIN_SCALE}' if name in ('mass', 'actuator_gain') else 'non-negative'}")
        if self.action_delay[1] > 100:
            raise ValueError(f"env.randomize.action_delay={list(self.action_delay)}: at most 100 control steps")
        if max(self.mass[1], self.friction[1], self.damping[1], self.actuator_gain[1]) > 100:
            raise ValueError("env.randomize: scales above 100x are not a perturbation of the same robot")
        return self


MAX_EPISODE_ENV_STEPS = 100_000
"""The longest episode robot-wm collects, in environment steps (``env.max_env_steps``)."""


class EnvConfig(_Section):
    task: str = "cartpole-swingup"
    """DMC task as 'domain-task' (e.g. cheetah-run; the suite's spelling ball_in_cup-catch works too),
    'arm-reach' (the example robot), or 'mjcf' for your own."""
    action_repeat: int = Field(8, ge=1)
    """Environment steps each agent action is held for (one planner decision per action_repeat steps)."""
    max_env_steps: int | None = Field(None, ge=1, le=MAX_EPISODE_ENV_STEPS)
    """Episode length in environment steps (see env_steps); None keeps the task's own (1,000 on the suite). At
    most 100,000 (an episode is held in memory until it is stored: 10^9 on an MJCF robot grew without bound and
    stored nothing, probe 14)."""
    substeps: int | None = Field(None, ge=1)
    """MJCF robots only: MuJoCo physics steps per environment step, so that one environment step is the
    robot's control period (substeps x the MJCF timestep). None: 1. Suite tasks fix their own."""
    mjcf: str | None = None
    """Path of an MJCF file when task='mjcf'."""
    reward: str | None = None
    """'module:function' computing reward(model, data) for task='mjcf'."""
    observe: str | None = None
    """'module:function' computing observe(model, data) -> vector for task='mjcf' (default: qpos, qvel)."""
    reset: str | None = None
    """'module:function' reset(model, data, rng) for task='mjcf' (default: small qpos noise)."""
    randomize: RandomizeConfig = RandomizeConfig()
    """Domain randomisation and fixed perturbations (per episode, from its seed)."""

    @model_validator(mode="after")
    def _own_robot_fields(self) -> EnvConfig:
        given = [f"env.{k}" for k in ("mjcf", "reward", "observe", "reset") if getattr(self, k) is not None]
        if given and self.task != "mjcf":  # `deploy --sim reward=os:system` on cartpole was ignored, no word (probe 29)
            raise ValueError(f"{', '.join(given)} describe{'s' * (len(given) == 1)} your own robot (env.task='mjcf'); the "
                             f"task {self.task!r} brings its own: leave {'it' if len(given) == 1 else 'them'} out")
        return self


class ModelConfig(_Section):
    ensemble_size: int = Field(5, ge=1)
    """Members of the probabilistic ensemble."""
    elites: int = Field(4, ge=1)
    """Members with the best validation loss used for planning. onnxruntime splits the batched matmul
    by member over its threads, so an even count suits 2 cores: 4 plan ~1.35x faster than 5."""
    hidden: int = Field(200, ge=1)
    """Width of each hidden layer."""
    layers: int = Field(3, ge=1)
    """Number of hidden layers."""
    activation: Literal["silu", "relu"] = "silu"
    """Hidden-layer activation. relu plans ~8% faster on a CPU but learned cartpole worse (703 vs 769,
    mean of 8 seeds at 10k steps)."""
    lr: float = Field(1e-3, gt=0, le=10)
    """Adam learning rate."""
    weight_decay: float = Field(5e-5, ge=0, le=1)
    """AdamW weight decay (at most 1: 1e308 diverged, blamed on the learning rate)."""
    batch_size: int = Field(64, ge=1)
    """Minibatch size (per member)."""
    max_epochs: int = Field(200, ge=1)
    """Upper bound on epochs per training round."""
    patience: int = Field(12, ge=1)
    """Stop a round after this many epochs without validation improvement."""
    val_fraction: float = Field(0.15, ge=0.05, lt=0.9)
    """Fraction of every episode held out (one contiguous segment, at a place drawn per episode) for validation:
    early stopping, the elite members, the divergence check and the multi-step errors. At least 0.05: with 0 all of
    them ran on the training data and nothing said so (probe 14)."""

    @model_validator(mode="after")
    def _elites_fit(self) -> ModelConfig:
        if self.elites > self.ensemble_size:
            raise ValueError(f"elites={self.elites} exceeds ensemble_size={self.ensemble_size}")
        return self


class ValueConfig(_Section):
    enabled: bool = True
    """Learn a Q ensemble and a policy next to the world model; the planner then scores the value of the
    last imagined state and draws planner.policy_samples candidates from the policy. False: the
    PETS-style objective (imagined reward over the horizon only)."""
    q_heads: int = Field(5, ge=2)
    """Q functions in the ensemble (TD targets take the min of two random ones; the planner their mean). 5, as TD-MPC2
    (2 before 2026-11-27): the cartpole main job's weak seeds held the cart off centre with two heads; on 16 untuned
    seeds (500-507, 700-707) five scored 829 on average against 768 (paired +61 +- 38), lowest 685 against 407."""
    hidden: int = Field(128, ge=1)
    """Width of each hidden layer of the Q functions and the policy (128: on 2 CPU cores a training update
    takes ~2/3 and the planner's value term ~1/4 of what 256 costs)."""
    layers: int = Field(2, ge=1)
    """Hidden layers of the Q functions and the policy (each with layer norm)."""
    lr: float = Field(3e-4, gt=0, le=10)
    """Adam learning rate of the Q functions and the policy."""
    batch_size: int = Field(256, ge=1)
    """Transitions per update."""
    updates_per_step: float = Field(1.0, ge=0, le=100)
    """Gradient updates per new control step of data (update-to-data ratio), run after each episode (at most 100;
    BRO and SimbaV2 use 8-10)."""
    n_step: int = Field(3, ge=1, le=100)
    """TD targets sum this many rewards before bootstrapping (cut short at the episode's end)."""
    tau: float = Field(0.05, gt=0, le=1)
    """Polyak rate of the target Q functions. 0.05: the value reaches its Monte-Carlo level in ~600 updates
    instead of ~2,000 at 0.01 (n_step 3, cartpole), so it keeps up with ~125 updates per episode; cartpole
    seeds 100/103/106 scored 812/818/808 against 859/739/751 at 0.01."""
    entropy_coef: float = Field(1e-3, ge=0, le=10)
    """Weight of the policy's entropy bonus (Q in units of its value scale; at most 10)."""
    imagined_steps: int = Field(0, ge=0, le=1000)
    """Dyna: each round (and finetune --value) also trains on one-step transitions the world model imagines this many
    steps out from stored states, actions from the policy (``train_value.imagined_rows``), about as many rows as
    stored ones. 0 (default): stored transitions only. 5 on the cartpole main job (session 26): -19 +- 32 paired on
    8 fresh seeds (940-947), though it lifted seed 915 from 12 to 863; cheetah-run seeds 200/201: 97/245 against
    226/203; docs/results.md."""
    discount: float | None = Field(None, gt=0, lt=1)
    """Per control step; None derives it from the episode length in control steps (TD-MPC2's rule:
    (L/5 - 1) / (L/5), clipped to [0.95, 0.995]). With a value the planner discounts by it too."""


class PlannerConfig(_Section):
    optimizer: Literal["cem", "mppi", "icem"] = "icem"
    """Sampling optimizer: cem, mppi or icem (colored noise + elite reuse)."""
    horizon: int = Field(12, ge=1, le=1000)
    """Planning horizon in control steps (at most 1,000: a suite episode)."""
    samples: int = Field(256, ge=2)
    """Action sequences sampled per iteration. 256 (128 before 2026-11-27; every suite launch file but cartpole's,
    reacher's and the arm's already used 256): the cartpole main job's weak seeds were search-limited. The same
    trained models planned with 256 at evaluation scored 800 on seeds 500-507 against 733 with 128 (lowest 708
    against 539); trained and evaluated with 256, 16 seeds (500-507, 700-707) gained 63 +- 38 on average."""
    iterations: int = Field(2, ge=1, le=100)
    """Optimizer iterations per control step (at most 100: the exported graph unrolls them, and tracing 100
    already takes minutes)."""
    elites: int = Field(16, ge=1)
    """Best sequences that refit the sampling distribution."""
    keep_elites: int = Field(4, ge=0)
    """Elites carried into the next iteration (icem; 0 for cem/mppi)."""
    temperature: float = Field(0.5, gt=0)
    """MPPI softmax temperature (in units of return)."""
    momentum: float = Field(0.1, ge=0.0, lt=1.0)
    """Weight of the old mean/std when refitting."""
    init_std: float = Field(0.5, gt=0)
    """Initial sampling std as a fraction of the action half-range."""
    min_std: float = Field(0.05, ge=0)
    """Floor on the sampling std (fraction of the action half-range)."""
    noise_beta: float = Field(2.0, ge=0, le=4)
    """Colored-noise exponent for icem (0 = white, 2 = smooth/red; at most 4: past ~20 the filter underflows to
    NaN and every plan falls back, probe 14)."""
    uncertainty_weight: float = Field(0.0, ge=-1e6, le=1e6)
    """Return penalty per unit of ensemble spread (negative = bonus), in every episode."""
    explore_weight: float = Field(10.0, ge=0, le=1e6)
    """Optimism for sparse rewards and thin data, in training episodes only (never in evaluation, export or deploy): a
    bonus per unit of the members' disagreement on the imagined states (std over members in units of the data's std,
    mean over dimensions, summed over the horizon), which is there before any reward is seen. 10 (the default, the
    cartpole main job's, since 2026-11-28; 1 before): the data then covers the rail and the final cart is held centred
    instead of where the training swing-ups ended; on 20 untuned seeds (910-917, 920-927, 930-933) 781 against 716
    with 1, ahead on 15 (one seed fell to 12 with it, one to 0.3 without). Every other launch file keeps 1: cheetah-run
    seeds 200/201 scored 210/142 with 10 against 226/203, pendulum-swingup 899/60 against 654/649 (where 1 had turned
    0 into 690), the rest unmeasured. A task named without its launch file (`env.task=...`, a sweep's ``tasks``) runs
    on this default, 10 (docs/results.md)."""
    explore_noise: float = Field(0.0, ge=0, le=10)
    """Action noise in training episodes only (never in evaluation, export or deploy): the executed action
    is the plan's first action plus this many times the planner's refit sampling std of it times
    standard-normal noise, clamped to the bounds (TD-MPC2 samples its training actions so, with 1). The
    std is large while the planner cannot tell its candidates apart (no reward seen yet) and shrinks once
    it can. The next step's warm start stays the plan."""
    discount: float = Field(1.0, gt=0, le=1)
    """Discount applied to imagined rewards when the run has no value (with one, value.discount applies)."""
    value_pessimism: float = Field(0.0, ge=0, le=10)
    """In evaluation, export and deploy only (training episodes plan with the heads' mean): the terminal value the
    planner adds is the mean over the Q heads less this many times their std (0: the mean). Optimisation exploits
    where the heads are wrong (planner.iterations=3 scored 717 and 118 on two cartpole seeds, 856 and 818 with 2);
    pessimism in training episodes too hurt (812 and 682). 1 at evaluation only, the same models from the same
    starts: +14 paired on eight default cartpole runs, -14 +- 14 on sixteen others (seeds 800-815): 0 stays the
    default (docs/results.md)."""
    value_guard: float = Field(0.0, ge=0, le=100)
    """In evaluation, export and deploy only: stop trusting the value while the plans keep promising a future that never
    comes. Each step the plan's predicted objective should equal its first predicted reward plus the discounted objective
    of the next step's plan; a planner that keeps finding a plan worth J which starts paying only after the horizon (a
    cartpole that keeps "about to swing up" at the bottom: seeds 901 and 902 scored 0.2-320) falls short of it every
    step. When that shortfall, in units of the most one control step can pay and averaged over about
    ``value_guard_window`` steps, exceeds this threshold, the planner drops the terminal value (imagined reward alone,
    at the value's discount; the policy proposals stay) for ``value_guard_window`` planned steps, then trusts it
    again. Not with a goal or an uncertainty weight (their terms do not follow that recursion); never on the oracle.
    0 (the default): never. 0.4 on the same runs, same starts: 902 0.2 -> 670, 901 320 -> 615, no episode of ten good runs touched; on untuned seeds
    910-917 +16 +- 16 paired (917 574 -> 699, the rest unchanged). Not yet the default: untested on seeds 800-815
    (docs/results.md, "The value guard")."""
    value_guard_window: int = Field(20, ge=1, le=1000)
    """Control steps the value guard averages its shortfall over, and that it plans without the value once it trips."""
    delay: int = Field(0, ge=0, le=999)
    """Control steps between a command and its effect on the robot: a known actuation latency, to compensate
    (at most horizon - 1). The first ``delay`` actions of every imagined sequence are the commands already in
    flight (the warm-start plan carries them), and the command sent is the plan's action ``delay`` steps
    ahead. 0 (the default): a command acts within its own control step, as in the simulator. Set it on
    ``eval``/``export`` for a robot with a measured delay (e.g. ``--shift delay-1 planner.delay=1``); the
    world model is trained on undelayed data."""
    policy_fraction: float = Field(0.1875, ge=0, lt=1)
    """Share of each iteration's samples that are policy rollouts through the world model, rounded
    (0.1875: 24 of 128; runs with a value only; the rest are noise samples around the current mean)."""

    @property
    def policy_samples(self) -> int:
        return round(self.policy_fraction * self.samples)

    @model_validator(mode="after")
    def _counts_fit(self) -> PlannerConfig:
        if self.elites > self.samples:
            raise ValueError(f"elites={self.elites} exceeds samples={self.samples}")
        if self.keep_elites > self.elites:
            raise ValueError(f"keep_elites={self.keep_elites} exceeds elites={self.elites}")
        if self.delay >= self.horizon:
            raise ValueError(f"delay={self.delay} must be less than horizon={self.horizon}: the plan must reach "
                             "past the commands already in flight")
        if self.keep_elites + self.policy_samples + 2 > self.samples:
            raise ValueError(f"keep_elites={self.keep_elites} and policy_fraction={self.policy_fraction} "
                             f"({self.policy_samples} policy samples) leave no room for new samples "
                             f"(samples={self.samples})")
        return self


class GoalConfig(_Section):
    """Goal-conditioned planning: the planner's objective adds minus the weighted distance of every imagined
    state to a goal state (discounted, summed over the horizon). The goal is an input of the planning step
    and of the exported graph, so a robot can change it while it runs."""

    state: list[float] | None = None
    """A target state: one value per dimension of the world model's state (the flattened observation);
    [] clears it."""
    joints: dict[str, float] = {}
    """Or target positions of named joints (rad or m), observed as the robot would observe that pose from
    each episode's start with every velocity zero: e.g. {shoulder = 0.5, elbow = -1.0}. An override replaces
    the whole mapping ({} clears it)."""
    weights: list[float] | None = None
    """Weight of each state dimension in the distance (>= 0). None: 1 on every dimension for ``state``;
    for ``joints`` 1 on the dimensions those joints move, 0 on the rest (velocities, other bodies)."""
    reward_weight: float = Field(0.0, ge=0, le=MAX_REWARD_WEIGHT)
    """Weight of the task's own reward (and learned value) next to the goal: 0 plans toward the goal alone."""

    @property
    def active(self) -> bool:
        return self.state is not None or bool(self.joints)

    @property
    def uses_value(self) -> bool:
        """Whether the planner consults the task's value and policy: not toward a goal alone (they would only
        cost time there)."""
        return not self.active or self.reward_weight > 0

    @field_validator("state")
    @classmethod
    def _empty_is_none(cls, v: list[float] | None) -> list[float] | None:
        return v or None

    @model_validator(mode="after")
    def _one_goal(self) -> GoalConfig:
        if self.state is not None and self.joints:
            raise ValueError("goal.state and goal.joints are both set; give the goal one way (to replace a "
                             "saved one, clear the other: goal.joints={} or goal.state=[])")
        if self.weights is not None and not self.active:
            raise ValueError("goal.weights is set but there is no goal (goal.state or goal.joints)")
        if self.weights is not None and (any(w < 0 for w in self.weights) or not any(w > 0 for w in self.weights)):
            raise ValueError(f"goal.weights {self.weights} must be >= 0 with at least one > 0")
        return self


TRAINING_ONLY = ("planner.explore_weight", "planner.explore_noise", "seed_noise_beta")
"""Settings that act on training episodes only: an evaluation, an export or a deployment never uses them, so a
one-off override of them there is refused (it was recorded as applied: probe 11)."""
GUARD_FIELDS = ("planner.value_guard", "planner.value_guard_window")
VALUE_ONLY = ("planner.value_pessimism", *GUARD_FIELDS)
"""Settings of the learned value's use by the planner: a planner without a value (``--planner pets``, a goal alone,
``value.enabled=false``) refuses them as one-off overrides, which would change nothing."""
ACTING_ONLY = VALUE_ONLY
"""Settings that act on evaluation, export and deployment only: training episodes never use them, so a one-off
override of them on a command that collects training episodes alone is refused."""

RRD_SUFFIX, RRD_MAGIC = ".rrd", b"RRF2"  # a Rerun recording's name, and its first bytes


def check_rrd_path(path: str, what: str) -> str:
    """``path`` if it names a Rerun recording (``*.rrd``) that may be written: it is overwritten, so nothing else
    may be named, nor reached through a link (a link named x.rrd to RUN/config.toml replaced the config)."""
    text = str(path)
    if not text.lower().endswith(RRD_SUFFIX) or text.lower() == RRD_SUFFIX or "\x00" in text:
        raise ValueError(f"{what} {text!r}: expected a file name ending in {RRD_SUFFIX} (the file is "
                         "overwritten with the recording)")
    p = Path(text)
    if p.is_symlink():
        raise ValueError(f"{what} {text!r} is a symbolic link (to {os.readlink(p)!r}); expected a plain file name: "
                         "the recording would replace the link's target")
    if p.exists():
        if not p.is_file():
            raise ValueError(f"{what} {text!r} exists and is not a file (a folder?); expected a new or recording file")
        with p.open("rb") as f:
            if f.read(4) not in (RRD_MAGIC, b""):
                raise ValueError(f"{what} {text!r} exists and is not a Rerun recording; refusing to overwrite it")
    return path


def check_rrd_target(path: str, what: str) -> str:
    """``check_rrd_path``, then what only the moment of writing can tell: an existing recording with other names
    (a hard link: the run's recording was rewritten through one) or one of a run's own recordings
    (``RUN/rerun/*.rrd``, of this run or another: eval and run replaced them; probe 11) is never overwritten."""
    check_rrd_path(path, what)
    check_parent_folder(path, what)
    p = Path(str(path))
    if p.exists():
        if (links := p.stat().st_nlink) > 1:
            raise ValueError(f"{what} {str(path)!r} has {links} names (hard links): writing it would change the "
                             "recording under every one of them; name a new file")
        where = p.resolve().parent
        from robot_wm.run_dir import RunDir  # run_dir imports this module

        if where.name == "rerun" and RunDir(where.parent).is_run():
            raise ValueError(f"{what} {str(path)!r} is one of the run {str(where.parent)!r}'s own recordings; "
                             "refusing to replace it: name a new file (e.g. in RUN/dreams/)")
    return path


class RerunConfig(_Section):
    mode: Literal["off", "save", "spawn", "serve"] = "off"
    """Rerun visual debugging: off, save (a .rrd file in the run directory), spawn (a live viewer), serve (gRPC)."""
    path: str | None = None
    """.rrd file for mode=save; None writes RUN_DIR/rerun/<timestamp>.rrd. It must end in .rrd (the file is
    overwritten: config.toml or metrics.jsonl of a run were), and a run never saves it: a later command on the
    run (or a run directory from someone else) writes into the run's own rerun/ folder instead."""
    address: str | None = None
    """serve: 'host:port' to bind (default 127.0.0.1:9876); spawn: viewer port."""
    every_n_steps: int = Field(10, ge=1)
    """Log the plan (ghosts, score distribution, predictions) every N control steps."""
    ghosts: int = Field(5, ge=0)
    """Best sampled sequences rolled out through the model and drawn as ghosts each logged plan."""
    camera_every_n_steps: int = Field(20, ge=0)
    """Log a rendered camera frame every N control steps (0: no camera)."""
    camera_width: int = Field(320, ge=16, le=4096)
    """Camera frame width in pixels (16 to 4096, as ``dream --width``)."""
    camera_height: int = Field(240, ge=16, le=4096)
    """Camera frame height in pixels (16 to 4096)."""

    @field_validator("path")
    @classmethod
    def _rrd(cls, v: str | None) -> str | None:
        return v if v is None else check_rrd_path(v, "rerun.path")

    @model_validator(mode="after")
    def _address_for_a_socket(self) -> RerunConfig:
        if self.address is not None and self.mode not in ("spawn", "serve"):  # ignored without a word (probe 22)
            raise ValueError(f"rerun.address={self.address!r} (--rerun-address) is where --rerun serve listens or "
                             f"--rerun spawn's viewer is reached; with rerun.mode={self.mode!r} nothing would use it: "
                             "add --rerun serve (or spawn), or leave the address out")
        if self.path is not None and self.mode != "save":  # ignored without a word, where the address was refused
            raise ValueError(f"rerun.path={self.path!r} is the file --rerun save writes; with rerun.mode={self.mode!r} "
                             "nothing would use it: add --rerun save, or leave the path out")  # (probe 29)
        return self


class RunConfig(_Section):
    seed: int = Field(0, ge=0, lt=2**32)
    """Seeds the environment, model init, minibatches and planner noise (0 to 2^32 - 1)."""
    run_dir: str = "runs/{task}-s{seed}"
    """Output directory; {task} and {seed} are filled in (the only template fields; e.g. {seed:03d}). It must be
    new, empty or an existing robot-wm run."""
    env_steps: int = Field(10_000, ge=1, le=10**9)
    """Budget for data collection in environment steps, the unit of every step count in robot-wm: one
    dm_control suite step (or one control period of an MJCF robot), action repeat counted, so a suite
    episode is 1,000 steps on every task, as the field counts them. Evaluation is not counted."""
    seed_episodes: int = Field(1, ge=1, le=MAX_EPISODES)
    """Random-action episodes before the first model is trained."""
    seed_noise_beta: float = Field(0.0, ge=0, le=4)
    """Colour of the seed episodes' random actions: 0 draws each action uniformly; beta > 0 draws them as
    Gaussian 1/f^beta noise along the episode (1: pink), clipped to the bounds, which reaches states that
    independent actions rarely do (`bench/bench_seed_noise.py`: random pendulum-swingup episodes that saw a
    reward, uniform / pink / red: 9 / 13 / 18 of 200; finger-spin 16 / 25 / 4 of 60)."""
    eval_episodes: int = Field(3, ge=0, le=MAX_EPISODES)
    """Evaluation episodes with the final model (not counted in env_steps)."""
    eval_at: list[Annotated[int, Field(ge=1)]] = Field([], max_length=10_000)
    """Also evaluate when the collected environment steps first reach each of these (learning curves; each
    at least 1)."""
    threads: int = Field(2, ge=1, le=1024)
    """CPU threads for torch (at most 1024)."""
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?)$")
    """Torch device for training and planning: cpu, cuda or cuda:N (checked to exist before any work)."""
    env: EnvConfig = EnvConfig()
    model: ModelConfig = ModelConfig()
    value: ValueConfig = ValueConfig()
    planner: PlannerConfig = PlannerConfig()
    goal: GoalConfig = GoalConfig()
    rerun: RerunConfig = RerunConfig()

    @model_validator(mode="after")
    def _guard_checks_a_plain_objective(self) -> RunConfig:
        """The value guard checks objective = first reward + discount x next objective, which a goal's distance or an
        uncertainty penalty in the objective does not follow (review): refused with either."""
        p = self.planner
        if p.value_guard > 0 and (self.goal.active or p.uncertainty_weight != 0):
            other = "a goal (goal.state or goal.joints)" if self.goal.active else \
                f"planner.uncertainty_weight={p.uncertainty_weight:g}"
            raise ValueError(f"planner.value_guard={p.value_guard:g} with {other}: the guard compares the plans' "
                             "objectives with their predicted rewards, which that objective adds to; use one or the other")
        return self

    @field_validator("eval_at")
    @classmethod
    def _distinct_budgets(cls, v: list[int]) -> list[int]:
        return sorted(set(v))  # [100, 100, 100, 100] ran four evaluations of one model

    @field_validator("run_dir")
    @classmethod
    def _run_dir_template(cls, v: str) -> str:
        check_run_dir_template(v)
        return v

    def resolved_run_dir(self) -> Path:
        """The template filled in, a leading ``~`` as the home folder (a launch file's "~/runs/{task}" made a
        folder named "~" in the working directory: ninth probe)."""
        return Path(os.path.expanduser(self.run_dir.format(task=self.env.task, seed=self.seed)))


RUN_DIR_FIELDS = ("task", "seed")
"""The only fields a ``run_dir`` template may name."""


def check_utf8(path: str, what: str) -> None:
    """A path robot-wm writes into its records (JSON, TOML) must be text: a byte that is not UTF-8 (a Latin-1
    folder name) became a surrogate that no record can hold, and the error named nothing (probe 14)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError as e:
        bad = str(path)[e.start:e.end].encode("utf-8", "surrogateescape")
        shown = str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise ValueError(f"{what} '{shown}' holds the byte(s) {bad!r}, "
                         "which are not UTF-8 text: robot-wm records the path in its files; rename the folder") from None


def check_run_dir_template(template: str) -> None:
    """Refuse an empty ``run_dir`` and a template that names anything but {task} or {seed} (no attribute or
    item access, conversions or nested fields: ``{task.__class__}`` is never evaluated)."""
    if not template.strip():
        raise ValueError("run_dir is empty (an unset shell variable?); expected a folder path such as "
                         "runs/{task}-s{seed}")
    if "\x00" in template:
        raise ValueError(f"run_dir {template!r} holds a NUL byte; expected a folder path")
    check_utf8(template, "run_dir")
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as e:
        raise ValueError(f"run_dir {template!r} is not a valid template ({e}); use {{task}} and {{seed}}, "
                         "and double braces for a literal brace") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in RUN_DIR_FIELDS or conversion is not None or "{" in (spec or ""):
            field = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"run_dir {template!r} uses the template field {field}; only "
                             f"{', '.join('{' + f + '}' for f in RUN_DIR_FIELDS)} are filled in "
                             "(with an optional format such as {seed:03d})")
        # a width, a precision, an alignment and d or s only: {seed:c} made seed 47 a '/' (a nested folder), 10 a
        # newline, 8238 a right-to-left override; a fill character too is any character (probe 34)
        if spec and not re.fullmatch(r"[<>^]?0?\d*(\.\d+)?[ds]?", spec):
            raise ValueError(f"run_dir {template!r}: the format {{{name}:{spec}}} is not a width, a precision or an "
                             "alignment; expected a short format such as {seed:03d}")
        # {seed:01000000000d} built a 1 GB name; the value counts, not its digits ({seed:0003d} is 3 wide)
        if spec and any(len(w.lstrip("0")) > 3 for w in re.findall(r"\d+", spec)):
            raise ValueError(f"run_dir {template!r}: the format {{{name}:{spec}}} asks for a width or precision over "
                             "999; expected a short format such as {seed:03d}")
    try:
        filled = template.format(task="cartpole-swingup", seed=0)
    except (ValueError, TypeError) as e:
        raise ValueError(f"run_dir {template!r}: {e}") from None
    if not filled.strip():  # {task:.0} filled in to '' and the run was written into the working folder (probe 28)
        raise ValueError(f"run_dir {template!r} fills in to an empty path; expected a folder path such as "
                         "runs/{task}-s{seed}")


class ConfigError(ValueError):
    """A launch file or override that does not fit the config tree."""


_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxlevel = 200, 200, 12, 3


def _format(err: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "<root>"
        # a list of 119,999 budgets was echoed whole: 849 KB on the terminal (probe 34)
        got = f" (got {_SHORT.repr(e['input'])})" if e["type"] != "missing" and not isinstance(e["input"], dict) else ""
        lines.append(f"  {where}: {e['msg']}{got}")
    return "\n".join(lines)


def from_dict(data: dict[str, Any], source: str = "<dict>") -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format(e, source)) from None


MAX_TOML_BYTES = 2**20
"""Largest launch, sweep or run config file read (1 MiB; a launch file is about 1 KiB)."""


def read_toml(path: str | Path, what: str = "launch file", error: type[ConfigError] | None = None) -> dict[str, Any]:
    """The TOML table in ``path``; a missing, unreadable or invalid file raises ``error`` (a ``ConfigError``)
    naming ``what`` and the path."""
    error = error or ConfigError
    try:
        check_regular_file(Path(path), what, MAX_TOML_BYTES)
        return tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))  # a Windows editor's byte-order mark
    except FileNotFoundError:
        raise error(f"{what} {str(path)!r} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise error(f"{what} {str(path)!r} is not valid TOML: {e}") from None
    except ValueError as e:  # from check_regular_file: a FIFO, a device, a directory or a huge file
        raise error(str(e)) from None
    except RecursionError:
        raise error(f"{what} {str(path)!r} nests too deeply") from None
    except OSError as e:  # a directory, no permission, ...
        raise error(f"{what} {str(path)!r} cannot be read: {e.strerror or e}") from None


def load(path: str | Path) -> RunConfig:
    """A launch file's config. Network settings in it are refused before anything else is checked (an address alone
    was told to add --rerun serve, which the command line had: probe 28)."""
    data = read_toml(path)
    if isinstance(rerun := data.get("rerun"), dict):
        _refuse_network(rerun.get("mode"), rerun.get("address"), f"launch file {str(path)!r}")
    return from_dict(data, str(path))


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except RecursionError:  # a traceback on the command line, where a launch file said so (probe 22)
        raise ConfigError(f"a value nested {text.count('[') + text.count('{')} deep is too deep for a setting") from None
    except tomllib.TOMLDecodeError as e:
        if text.lstrip().startswith(("{", "[")):  # a table or array that is not valid TOML: say why, not "a string"
            raise ConfigError(f"{text!r} is not a valid TOML value: {e}") from None
        return text  # bare words are strings: env.task=cheetah-run


def _merged(base: dict, update: dict, prefix: str, leaves: set[str]) -> dict:
    """``base`` with ``update``'s fields set, config sections merged field by field; a mapping-valued field
    (one of ``leaves``, e.g. goal.joints) is replaced whole, so an override can shrink or clear it."""
    out = dict(base)
    for k, v in update.items():
        sub = isinstance(out.get(k), dict) and isinstance(v, dict) and f"{prefix}{k}" not in leaves
        out[k] = _merged(out[k], v, f"{prefix}{k}.", leaves) if sub else v
    return out


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply ``section.field=value`` overrides (TOML values; bare words are strings)."""
    data, leaves = cfg.model_dump(), set(flat(cfg))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. planner.horizon=20)")
        if key != key.rstrip():  # 'planner.samples =64' was "unknown field 'planner.samples '" (probe 36)
            raise ConfigError(f"override {item!r} has a space before '=': expected {key.strip()}={text.strip()} (no "
                              "spaces around '=')")
        if text.startswith("="):  # `run_dir==/tmp/x` made a folder named "=" in the working directory
            raise ConfigError(f"override {item!r} has '==': expected {key}={text[1:]} (a value that starts "
                              "with '=' is written as a quoted TOML string)")
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a config section")
            node = node[p]
        if leaf not in node:
            raise ConfigError(f"override {item!r}: unknown field {key!r}")
        try:
            value = _parse_value(text)
        except ConfigError as e:  # a 6,000-character override was echoed whole (probe 22)
            shown = item if len(item) <= 120 else f"{item[:100]}... ({len(item):,} characters)"
            raise ConfigError(f"override {shown!r}: {e}") from None
        if text.strip() == "None":  # as `--help` shows an unset default (env.max_env_steps=None): unset (probe 28)
            value = None
        if isinstance(node[leaf], float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(node[leaf], dict) and isinstance(value, dict) and key not in leaves:
            value = _merged(node[leaf], value, f"{key}.", leaves)  # `planner={samples=64}` changes samples alone
        node[leaf] = value
    return from_dict(data, "command line overrides")


NETWORK_MODES = ("spawn", "serve")
"""Rerun modes that open a socket: set only on the command line, never saved nor read from a file."""


def saved_form(cfg: RunConfig) -> RunConfig:
    """``cfg`` as a run saves it: no Rerun recording (rerun.mode off), no network settings (rerun.address), no
    rerun.path (a saved path made every later command on the run overwrite that file). ``--rerun`` is one command's:
    a run created with it recorded every later eval on the run unasked (probe 31)."""
    rr = cfg.rerun
    if rr.mode == "off" and rr.address is None and rr.path is None:
        return cfg
    return cfg.model_copy(update={"rerun": rr.model_copy(update={"mode": "off", "address": None, "path": None})})


def check_no_network(cfg: RunConfig, source: str) -> None:
    """Refuse network settings that come from a file: a launch file (or a copied config.toml) must not make
    robot-wm listen or connect anywhere; pass --rerun serve/spawn and --rerun-address on the command line."""
    _refuse_network(cfg.rerun.mode, cfg.rerun.address, source)


def _refuse_network(mode: Any, address: Any, source: str) -> None:
    bad = [f"rerun.mode={mode!r}"] if mode in NETWORK_MODES else []
    bad += [f"rerun.address={address!r}"] if address is not None else []
    if bad:
        raise ConfigError(network_refusal(source, " and ".join(bad)))


def network_refusal(source: str, what: str, flags: str = " (--rerun serve|spawn, --rerun-address HOST:PORT)") -> str:
    """The one sentence refusing a network setting ``what`` found in a file ``source``; ``flags``: the command's own
    (a sweep has no --rerun)."""
    return f"{source} sets {what}: network settings are taken only from the command line{flags}, never from a file"


def flat(cfg: RunConfig) -> dict[str, Any]:
    """Every leaf field by its dotted name (a mapping-valued field such as goal.joints is one leaf)."""
    out: dict[str, Any] = {}

    def walk(node: BaseModel, prefix: str) -> None:
        dumped = node.model_dump()
        for k in type(node).model_fields:
            if isinstance(v := getattr(node, k), BaseModel):
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = dumped[k]
    walk(cfg, "")
    return out


def changed_fields(old: RunConfig, new: RunConfig) -> list[str]:
    """Dotted names of the leaf fields whose values differ."""
    a, b = flat(old), flat(new)
    return sorted(k for k in a if a[k] != b[k])


def toml_value(v: Any) -> str:
    """``v`` as the text after ``key=`` in an override (TOML on one line: a mapping as an inline table)."""
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_value(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
    return tomli_w.dumps({"v": v}).strip()[len("v = "):]


def changes(old: RunConfig, new: RunConfig) -> list[str]:
    """What ``new`` changes against ``old``, as ``key=value`` overrides (``apply_overrides`` reads them back)."""
    a, b = flat(old), flat(new)
    return [f"{k}={toml_value(b[k])}" for k in sorted(a) if a[k] != b[k]]


def to_toml(cfg: RunConfig) -> str:
    return tomli_w.dumps(cfg.model_dump(exclude_none=True))


def save(cfg: RunConfig, path: str | Path) -> None:
    atomic_write_text(Path(path), to_toml(cfg))


def help_text(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    """One line per field: dotted name, default, docstring (for --help). The default is shown as an override gives it
    back (TOML; ``None`` where unset): Python's ``True`` and ``(1.0, 1.0)`` were refused as overrides (probe 28)."""
    lines = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            lines += help_text(ann, f"{prefix}{name}.")
        else:
            doc = " ".join((field.description or "").split())  # a multi-line docstring as one line
            shown = "None" if field.default is None else toml_value(field.default)
            lines.append(f"  {prefix}{name}={shown}  {doc}")
    return lines
