"""The planning step (CEM, MPPI, iCEM) on analytic objectives with known optima, and the MPC planner."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.mpc.planner import MPCPlanner, PlanStep
from policies.mpc.step import StepSpec, colored_filter, initial_plan, plan_step
from robot_wm.config import PlannerConfig

OPTIMIZERS = ("cem", "mppi", "icem")
LOW, HIGH = torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 2.0])


def _spec(optimizer: str, **kw) -> StepSpec:
    base = dict(optimizer=optimizer, horizon=6, samples=64, iterations=3, elites=8,
                keep_elites=2 if optimizer == "icem" else 0, temperature=0.1)
    return StepSpec(**{**base, **kw})


def _filter(spec: StepSpec) -> torch.Tensor:
    return colored_filter(spec.horizon, spec.noise_beta if spec.optimizer == "icem" else 0.0)


def quadratic(target: torch.Tensor):
    """Return = -||actions - target||^2 over the whole sequence (NaN when the state is not finite)."""

    def score(state: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ret = -((actions - target) ** 2).sum(dim=(1, 2)) + 0.0 * state.sum()
        return ret, torch.zeros_like(ret)

    return score


def _solve(optimizer: str, target, calls: int = 15, seed: int = 0, low=LOW, high=HIGH, **kw):
    spec = _spec(optimizer, **{"samples": 128, "elites": 12, "iterations": 4, **kw})
    gen = torch.Generator().manual_seed(seed)
    plan, score, filt = initial_plan(low, high, spec.horizon), quadratic(torch.as_tensor(target)), _filter(spec)
    outs = []
    for _ in range(calls):
        noise = torch.randn(spec.noise_shape(len(low)), generator=gen)
        out = plan_step(torch.zeros(3), plan, noise, score, spec, low, high, filt)
        plan = out.next_plan
        outs.append(out)
    return outs


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_converges_to_interior_optimum(optimizer):
    target = torch.tensor([0.5, -1.2])
    outs = _solve(optimizer, target)
    first, last = outs[0], outs[-1]
    half = (HIGH - LOW) / 2
    assert last.valid
    # Started 0.5 / 0.6 half-ranges away; sampling MPC converges to within its sampling noise.
    assert torch.all((last.action - target).abs() / half < 0.15), last.action
    assert float(((last.next_plan[:-2] - target).abs() / half).mean()) < 0.08, last.next_plan
    assert last.best_return > -0.5 and last.best_return > first.best_return
    # The diagnostics describe the last iteration: elites best first, scores of every sample.
    assert last.scores.shape == (128,) and last.elite_plans.shape == (12, 6, 2)
    elite_scores = quadratic(target)(torch.zeros(3), last.elite_plans)[0]
    assert torch.all(elite_scores[:-1] >= elite_scores[1:])
    assert elite_scores[0] == last.scores.max()


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_target_outside_bounds_clamps_at_the_bound(optimizer):
    target = torch.tensor([3.0, -5.0])  # beyond high[0] and low[1]
    outs = _solve(optimizer, target)
    for out in outs:
        for x in (out.action, out.next_plan, out.elite_plans):
            assert torch.all(x >= LOW) and torch.all(x <= HIGH)
    bound = torch.tensor([1.0, -2.0])
    assert torch.all((outs[-1].action - bound).abs() / ((HIGH - LOW) / 2) < 0.15), outs[-1].action


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(optimizer=st.sampled_from(OPTIMIZERS), seed=st.integers(0, 2**31 - 1),
       lo=st.floats(-5, 4), width=st.floats(0.01, 5), target=st.floats(-20, 20),
       prev=st.floats(-50, 50), init_std=st.floats(0.01, 3))
def test_actions_always_within_bounds(optimizer, seed, lo, width, target, prev, init_std):
    low, high = torch.tensor([lo]), torch.tensor([lo + width])
    spec = _spec(optimizer, samples=16, elites=4, keep_elites=1 if optimizer == "icem" else 0, init_std=init_std)
    noise = torch.randn(spec.noise_shape(1), generator=torch.Generator().manual_seed(seed)) * 10
    out = plan_step(torch.zeros(1), torch.full((spec.horizon, 1), prev), noise, quadratic(torch.tensor(target)),
                    spec, low, high, _filter(spec))
    assert out.valid
    for x in (out.action, out.next_plan, out.elite_plans):
        assert torch.all(torch.isfinite(x)) and torch.all(x >= low) and torch.all(x <= high)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_same_noise_same_output(optimizer):
    spec = _spec(optimizer)
    gen = torch.Generator().manual_seed(5)
    noise = torch.randn(spec.noise_shape(2), generator=gen)
    plan = torch.rand(spec.horizon, 2, generator=gen) - 0.5
    args = (quadratic(torch.tensor([0.2, 0.3])), spec, LOW, HIGH, _filter(spec))
    a = plan_step(torch.zeros(3), plan, noise, *args)
    b = plan_step(torch.zeros(3), plan.clone(), noise.clone(), *args)
    assert a.guard is None and b.guard is None  # no value guard without one
    for x, y in zip(a[:-1], b[:-1]):
        assert torch.equal(x, y)
    c = plan_step(torch.zeros(3), plan, torch.randn(spec.noise_shape(2), generator=gen), *args)
    assert not torch.equal(a.scores, c.scores)


def test_icem_best_return_never_decreases_across_iterations():
    spec = _spec("icem", iterations=6, samples=24, elites=6, keep_elites=2, init_std=1.0)
    score = quadratic(torch.tensor([0.7, 1.5]))
    for seed in range(5):
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(spec.noise_shape(2), generator=gen)
        plan = torch.rand(spec.horizon, 2, generator=gen) * 2 - 1
        plan_score = score(None if False else torch.zeros(3), plan.clamp(LOW, HIGH)[None])[0][0]
        prev_top = -np.inf
        for iters in range(1, spec.iterations + 1):
            # The same noise prefix replays the first `iters` iterations exactly.
            sub = StepSpec(**{**spec.__dict__, "iterations": iters})
            out = plan_step(torch.zeros(3), plan, noise[:iters], score, sub, LOW, HIGH, _filter(sub))
            top = float(out.scores.max())
            assert top >= prev_top, f"seed {seed}: iteration {iters} lost the carried elite ({top} < {prev_top})"
            assert top >= float(plan_score), "the warm start is scored: never worse than it"
            prev_top = top


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_best_return_is_the_score_of_the_plan_executed(optimizer):
    """Not the best sample seen: the refit plan (its first action executed, the rest the warm start)."""
    spec = _spec(optimizer, iterations=3, samples=32, elites=8, keep_elites=2)
    quad = quadratic(torch.tensor([0.3, -0.8]))

    def score(state, actions):  # a spread that differs per sequence, so the test can tell them apart
        return quad(state, actions)[0], actions.abs().sum((1, 2))

    spec = replace(spec, uncertainty_weight=0.1)
    gen = torch.Generator().manual_seed(3)
    out = plan_step(torch.zeros(3), torch.zeros(spec.horizon, 2), torch.randn(spec.noise_shape(2), generator=gen),
                    score, spec, LOW, HIGH, _filter(spec))
    executed = torch.cat([out.action[None], out.next_plan[:-1]])
    ret, spread = score(torch.zeros(3), executed[None])
    assert float(out.best_return) == pytest.approx(float(ret[0] - 0.1 * spread[0]), abs=1e-5)
    assert float(out.spread) == pytest.approx(float(spread[0]), abs=1e-5)


@pytest.mark.parametrize("horizon", [1, 2, 5, 12, 30])
@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0, 3.5])
def test_colored_filter_rows_have_unit_norm(horizon, beta):
    m = colored_filter(horizon, beta)
    assert m.shape == (horizon, horizon) and torch.isfinite(m).all()
    torch.testing.assert_close(m.norm(dim=1), torch.ones(horizon), atol=1e-5, rtol=0)


def test_colored_noise_is_unit_variance_and_smooth():
    gen = torch.Generator().manual_seed(0)
    white = torch.randn(20000, 16, generator=gen)
    red = white @ colored_filter(16, 2.0).T
    torch.testing.assert_close(red.var(0), torch.ones(16), atol=0.05, rtol=0)
    lag1 = lambda x: float((x[:, 1:] * x[:, :-1]).mean())
    assert lag1(red) > 0.5 and abs(lag1(white)) < 0.05
    assert torch.equal(colored_filter(7, 0.0), torch.eye(7))


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_non_finite_state_falls_back(optimizer):
    spec = _spec(optimizer)
    noise = torch.randn(spec.noise_shape(2), generator=torch.Generator().manual_seed(0))
    prev = torch.tensor([[0.3, 5.0], [float("nan"), -0.5]] + [[0.1, 0.1]] * (spec.horizon - 2))
    for bad in (float("nan"), float("inf")):
        state = torch.tensor([0.0, bad, 1.0])
        out = plan_step(state, prev, noise, quadratic(torch.zeros(2)), spec, LOW, HIGH, _filter(spec))
        assert not bool(out.valid)
        assert torch.isfinite(out.action).all() and torch.isfinite(out.next_plan).all()
        assert torch.all(out.action >= LOW) and torch.all(out.action <= HIGH)
        # The fallback is the previous plan (clamped, NaN -> 0), shifted by one.
        torch.testing.assert_close(out.action, torch.tensor([0.3, 2.0]))
        torch.testing.assert_close(out.next_plan[0], torch.tensor([0.0, -0.5]))


def test_non_finite_scores_never_become_elites():
    spec = _spec("cem")

    def score(state, actions):
        ret = -((actions - 0.5) ** 2).sum(dim=(1, 2))
        ret = torch.where(actions[:, 0, 0] > 0.6, torch.full_like(ret, float("nan")), ret)  # "model blew up"
        return ret, torch.zeros_like(ret)

    noise = torch.randn(spec.noise_shape(2), generator=torch.Generator().manual_seed(1))
    out = plan_step(torch.zeros(3), initial_plan(LOW, HIGH, spec.horizon), noise, score, spec, LOW, HIGH,
                    _filter(spec))
    assert bool(out.valid) and torch.isfinite(out.best_return)
    assert torch.all(out.elite_plans[:, 0, 0] <= 0.6)


class _QuadraticScore(torch.nn.Module):
    def __init__(self, target):
        super().__init__()
        self.fn = quadratic(torch.as_tensor(target, dtype=torch.float32))

    def forward(self, state, actions):
        # Depends on the state, so that planning differs along a trajectory.
        ret, spread = self.fn(state, actions)
        return ret - (actions[:, 0, 0] - state[0]) ** 2, spread


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_mpc_planner_is_deterministic_per_seed(optimizer):
    spec = _spec(optimizer)

    def episode(seed):
        planner = MPCPlanner(PlanStep(_QuadraticScore([0.2, -0.4]), spec, LOW.numpy(), HIGH.numpy()), seed=seed)
        obs = [np.array([0.1 * t, 0.0, 1.0]) for t in range(6)]
        acts = [planner.act(o) for o in obs]
        planner.reset()
        assert torch.equal(planner.plan, initial_plan(planner.step.low, planner.step.high, spec.horizon))
        return np.array(acts), planner

    a, planner = episode(3)
    b, _ = episode(3)
    c, _ = episode(4)
    assert a.dtype == np.float64 and a.shape == (6, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(a >= LOW.numpy()) and np.all(a <= HIGH.numpy())
    # A non-finite observation is survived: counted, and the action is still valid.
    act = planner.act(np.array([np.nan, 0.0, 0.0]))
    assert planner.fallbacks == 1 and np.all(np.isfinite(act)) and np.all(act >= LOW.numpy())


def test_action_noise_draws_around_the_plan_with_the_planners_own_std():
    """Exploring training episodes execute plan + noise x the refit std of the first action (TD-MPC2's
    training actions); the warm start stays the plan, the noise is repeatable per seed and in bounds."""
    spec = _spec("icem", samples=128, elites=12, iterations=4)
    obs = np.array([0.0, 0.0, 1.0])

    def first_step(noise: float, seed: int = 5):
        planner = MPCPlanner(PlanStep(_QuadraticScore([0.2, -0.4]), spec, LOW.numpy(), HIGH.numpy()), seed=seed,
                             action_noise=noise)
        return planner.act(obs), planner

    plain, p0 = first_step(0.0)
    noisy, p1 = first_step(1.0)
    again, _ = first_step(1.0)
    np.testing.assert_array_equal(noisy, again)
    np.testing.assert_allclose(plain, p0.last.action.numpy())
    assert torch.equal(p0.plan, p1.plan), "the warm start is the plan, not the executed noisy action"
    assert not np.allclose(noisy, plain)
    std = p1.last.action_std.numpy()
    assert np.all(std >= spec.min_std * (HIGH - LOW).numpy() / 2 - 1e-6)
    # Over many steps from one state, the executed actions spread around the plan by about that std.
    planner = MPCPlanner(PlanStep(_QuadraticScore([0.2, -0.4]), spec, LOW.numpy(), HIGH.numpy()), seed=1,
                         action_noise=1.0)
    dev = []
    for _ in range(300):
        planner.reset()
        a = planner.act(obs)
        dev.append((a - planner.last.action.numpy()) / planner.last.action_std.numpy())
        assert np.all(a >= LOW.numpy()) and np.all(a <= HIGH.numpy())
    assert 0.7 < np.std(dev) < 1.3
    with pytest.raises(ValueError, match="action_noise=nan"):
        MPCPlanner(PlanStep(_QuadraticScore([0.2, -0.4]), spec, LOW.numpy(), HIGH.numpy()), action_noise=float("nan"))


def test_step_spec_from_config_carries_every_field():
    cfg = PlannerConfig(optimizer="mppi", horizon=7, samples=50, elites=5, keep_elites=1, temperature=2.0)
    spec = StepSpec.from_config(cfg)
    for name in StepSpec.__dataclass_fields__:
        assert getattr(spec, name) == getattr(cfg, name)
    assert spec.carried == 0 and StepSpec(optimizer="icem", keep_elites=3).carried == 3
    # the Python API's defaults are the config's (policy_samples follows from policy_fraction and a value)
    default, defaults = StepSpec(), PlannerConfig()
    assert {k: getattr(default, k) for k in StepSpec.__dataclass_fields__ if k != "policy_samples"} == \
        {k: getattr(defaults, k) for k in StepSpec.__dataclass_fields__ if k != "policy_samples"}


def test_learned_planner_finds_the_known_optimal_action(trained_synthetic):
    """On the synthetic system (next = s + 0.1 a, reward = -(s + a)^2) the best first action is a = -s."""
    model, report, _ = trained_synthetic
    elite = model.subset(report.elites)
    spec = StepSpec(optimizer="icem", horizon=5, samples=128, iterations=4, elites=12, keep_elites=3)
    planner = MPCPlanner.learned(elite, spec, seed=0)
    for s in (0.5, -0.3):
        planner.reset()
        for _ in range(4):  # a few replans at the same state refine the warm start
            act = planner.act(np.array([s]))
        assert abs(act[0] + s) < 0.1, (s, act)


@pytest.mark.parametrize("field, value, needle", [
    ("samples", 0, "samples=0: Input should be greater than or equal to 2"), ("horizon", -3, "horizon=-3"),
    ("optimizer", "bogus", "optimizer='bogus': Input should be 'cem', 'mppi' or 'icem'"),
    ("temperature", float("nan"), "temperature=nan: Input should be a finite number"),
    ("discount", 2.0, "discount=2.0: Input should be less than or equal to 1"),
    ("elites", 300, "spec: Value error, elites=300 exceeds samples=256"),
    ("policy_samples", 300, "policy_samples=300: expected a whole number from 0 to"),
])
def test_step_spec_built_by_hand_is_checked(field, value, needle):
    """The Python API's StepSpec checked nothing: torch's "index out of range", or a bogus optimizer and a NaN
    temperature planned silently (tenth probe)."""
    with pytest.raises(ValueError, match=re.escape(f"StepSpec {needle}")):
        StepSpec(**{field: value})


@pytest.mark.parametrize("kw", [{"reward_weight": float("nan")}, {"reward_weight": -5.0},
                                {"novelty_weight": float("inf")}])
def test_learned_score_weights_are_checked(trained_synthetic, kw):
    from policies.mpc.planner import LearnedScore

    model, report, _ = trained_synthetic
    with pytest.raises(ValueError, match=f"{next(iter(kw))}=.*expected a finite number >= 0"):
        LearnedScore(model.subset(report.elites), **kw)


def test_a_noise_filter_that_underflows_is_an_error_naming_the_exponent():
    """Past the configured bound (4) the filter's 1/f^beta gains underflow: NaN, and every plan fell back (probe 14)."""
    from policies.mpc.step import colored_filter

    assert torch.isfinite(colored_filter(1000, 4.0)).all()
    with pytest.raises(ValueError, match=r"planner.noise_beta=50 gives a non-finite noise filter over 12 steps"):
        colored_filter(12, 50.0)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_delay_keeps_the_commands_in_flight_and_sends_the_action_delay_steps_ahead(optimizer):
    spec = _spec(optimizer, delay=2)
    gen = torch.Generator().manual_seed(3)
    prev = LOW + (HIGH - LOW) * torch.rand(spec.horizon, 2, generator=gen)  # commands in flight: prev[:2]
    out = plan_step(torch.zeros(3), prev, torch.randn(spec.noise_shape(2), generator=gen),
                    quadratic(torch.tensor([0.5, -1.2])), spec, LOW, HIGH, _filter(spec))
    assert torch.equal(out.elite_plans[:, :2], prev[:2].expand(len(out.elite_plans), 2, 2))
    assert torch.equal(out.next_plan[0], prev[1])   # still in flight at the next step
    assert torch.equal(out.next_plan[1], out.action)  # the command sent now, in flight next


def _delayed_integrator(planner_delay: int, robot_delay: int = 2, steps: int = 30) -> np.ndarray:
    """x' = x + 0.5 * (the command sent ``robot_delay`` steps ago), from x = 3 toward 0, planned on the undelayed
    model (reward -x^2 per step) with ``planner_delay``: the positions visited."""
    spec = StepSpec(optimizer="icem", horizon=8, samples=64, iterations=3, elites=8, keep_elites=2,
                    delay=planner_delay)
    low, high = torch.tensor([-1.0]), torch.tensor([1.0])

    def score(state, actions):
        x = state[0] + 0.5 * actions[..., 0].cumsum(-1)
        ret = -(x**2).sum(-1)
        return ret, torch.zeros_like(ret)

    gen = torch.Generator().manual_seed(0)
    plan, x, sent, xs = initial_plan(low, high, spec.horizon), 3.0, [0.0] * robot_delay, []
    for _ in range(steps):
        out = plan_step(torch.tensor([x]), plan, torch.randn(spec.noise_shape(1), generator=gen), score, spec, low,
                        high, _filter(spec))
        plan = out.next_plan
        sent.append(float(out.action[0]))
        x += 0.5 * sent[-1 - robot_delay]
        xs.append(x)
    return np.array(xs)


def test_delay_compensation_stops_the_overshoot_of_a_delayed_robot():
    """A robot whose commands act two steps late: a planner that ignores it keeps pushing while its
    commands are in flight and overshoots the target; one told the delay settles on it."""
    naive, compensated = _delayed_integrator(0), _delayed_integrator(2)
    assert naive.min() < -0.9 and np.abs(naive[-10:]).max() > 0.3  # overshoots, still swinging at the end
    assert compensated.min() > -0.3 and np.abs(compensated[-10:]).max() < 0.1
    assert (compensated[8:] ** 2).sum() < 0.1 * (naive[8:] ** 2).sum()  # after both first reach the target


def test_delay_must_leave_room_to_plan():
    with pytest.raises(ValueError, match="delay=12 must be less than horizon=12"):
        PlannerConfig(delay=12)
    with pytest.raises(ValueError, match="delay"):
        StepSpec(horizon=4, delay=4)


def test_exploration_noise_with_a_delay_keeps_the_noisy_command_sent_as_the_one_in_flight():
    spec = _spec("icem", delay=1)
    planner = MPCPlanner(PlanStep(quadratic(torch.tensor([0.5, -1.2])), spec, LOW, HIGH), seed=0, action_noise=1.0)
    for _ in range(3):
        sent = planner.act(np.zeros(3))
        assert torch.equal(planner.plan[0], torch.as_tensor(sent, dtype=torch.float32))  # what acts next step
        assert not torch.equal(planner.plan[0], planner.last.action)  # the noise was added to the plan's action
