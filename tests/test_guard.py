"""The value guard (planner.value_guard): a planner whose plans keep promising what never comes drops the value for a
while; one whose promises are kept never does."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_export import make_run_dir

from policies.mpc.guard import initial_guard, next_guard, value_weight
from policies.mpc.planner import LearnedScore, MPCPlanner
from policies.mpc.step import StepSpec
from robot_wm.export.source import load_source

DISCOUNT, UNIT, WINDOW = 0.96, 8.0, 20


def _run(objectives, rewards, threshold=0.4, valid=None):
    """The guard after each step of a sequence of (objective, first reward), and whether each step trusted the value."""
    g, trusted = initial_guard(), []
    for t, (j, r) in enumerate(zip(objectives, rewards)):
        trusted.append(bool(value_weight(g)))
        ok = torch.tensor(True if valid is None else valid[t])
        g = next_guard(g, torch.tensor(float(j)), torch.tensor(float(r)), ok, DISCOUNT, UNIT, WINDOW, threshold)
    return g, trusted


def test_a_plan_that_keeps_promising_and_never_pays_trips_the_guard_then_it_trusts_again():
    """A cartpole at the bottom planning "a swing-up after the horizon" every step: J stays ~95, nothing is paid,
    each step owes (1 - discount) x 95 / 8 = 0.475 units; averaged over ~20 steps it passes 0.4 within the episode."""
    steps = 60
    _, trusted = _run([95.0] * steps, [0.0] * steps)
    first_off = trusted.index(False)
    assert 20 < first_off < 50, first_off
    assert trusted[first_off:first_off + WINDOW] == [False] * WINDOW  # rests for a window
    assert trusted[first_off + WINDOW], "then trusts the value again, with nothing owed"


def test_a_plan_whose_promises_are_kept_never_trips_it():
    """Each step's objective is its first reward plus the discounted next objective (a consistent plan, pole up)."""
    j = [190.0] * 126
    r = [j[t] - DISCOUNT * j[t + 1] for t in range(125)]
    _, trusted = _run(j[:125], r)
    assert all(trusted)
    # objectives rising faster than the discount takes (a swing-up nearing its payoff) owe less than nothing
    _, trusted = _run([95.0 * 1.05**t for t in range(40)], [0.0] * 40)
    assert all(trusted)


def test_steps_that_fell_back_leave_the_guard_as_it_was():
    g0 = torch.tensor([95.0, 0.0, 0.39, 0.0])
    g = next_guard(g0, torch.tensor(float("nan")), torch.tensor(0.0), torch.tensor(False), DISCOUNT, UNIT, WINDOW, 0.4)
    assert torch.equal(g, g0)
    g = next_guard(g0, torch.tensor(0.0), torch.tensor(float("inf")), torch.tensor(True), DISCOUNT, UNIT, WINDOW, 0.4)
    assert torch.equal(g, g0), "a non-finite predicted reward is no evidence either"


def test_a_rest_counts_the_steps_that_fell_back_too():
    """The rest is a window of control steps: a fallback during it used to leave it as it was, so each one lengthened
    it (review, session 25). Outside a rest a fallback still changes nothing (the test above)."""
    resting = torch.tensor([float("nan"), 0.0, 0.0, 3.0])
    g = next_guard(resting, torch.tensor(float("nan")), torch.tensor(0.0), torch.tensor(False), DISCOUNT, UNIT, WINDOW, 0.4)
    assert float(g[3]) == 2.0 and float(g[2]) == 0.0
    steps = 40
    _, trusted = _run([95.0] * steps, [0.0] * steps)
    first_off = trusted.index(False)
    fell_back = [first_off + 2 <= t < first_off + 7 for t in range(steps)]  # five fallback steps inside the rest
    _, with_fallbacks = _run([95.0] * steps, [0.0] * steps, valid=[not f for f in fell_back])
    assert with_fallbacks[:first_off + WINDOW + 1] == trusted[:first_off + WINDOW + 1], "the rest ends on time"
    # a raw guard fed from outside with a NaN or inf rest is sanitised by a fallback step too (it was kept as fed, so
    # its value stayed off for as long as the steps kept falling back: review, session 26)
    for rest in (float("nan"), float("inf")):
        fed = torch.tensor([95.0, 0.0, float("nan"), rest])
        g = next_guard(fed, torch.tensor(float("nan")), torch.tensor(0.0), torch.tensor(False), DISCOUNT, UNIT, WINDOW, 0.4)
        assert torch.isfinite(g[2:]).all() and bool(value_weight(g)), (rest, g)


def test_a_guard_fed_from_outside_with_non_finite_or_huge_values_recovers():
    """A raw onnxruntime caller may feed anything: a NaN shortfall never tripped again and an inf (or 1e30) rest never
    ended (probe 25)."""
    def steps(g, n, j=95.0):
        trusted = []
        for _ in range(n):
            trusted.append(bool(value_weight(g)))
            g = next_guard(g, torch.tensor(j), torch.tensor(0.0), torch.tensor(True), DISCOUNT, UNIT, WINDOW, 0.4)
        return trusted

    assert False in steps(torch.tensor([95.0, 0.0, float("nan"), 0.0]), 60), "a NaN shortfall still trips"
    for rest in (float("inf"), 1e30, float("nan")):
        trusted = steps(torch.tensor([float("nan"), 0.0, 0.0, rest]), WINDOW + 2)
        assert trusted[WINDOW + 1], f"a rest of {rest} ends within a window: {trusted}"


def test_a_higher_threshold_waits_longer_and_the_first_step_owes_nothing():
    g, _ = _run([95.0], [0.0])
    assert float(g[2]) == 0.0 and float(g[0]) == 95.0  # nothing to compare the first plan with
    _, low = _run([95.0] * 80, [0.0] * 80, threshold=0.3)
    _, high = _run([95.0] * 80, [0.0] * 80, threshold=0.45)
    assert low.index(False) < high.index(False)


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return load_source(make_run_dir(tmp_path_factory.mktemp("run")))


def test_a_value_weight_of_zero_scores_as_the_planner_without_the_value(src):
    """What the guard plans with while it rests: the imagined reward alone, at the value's discount."""
    with_value = LearnedScore(src.model, value=src.value)
    without = LearnedScore(src.model, discount=src.value.spec.discount)
    state = src.model.obs_norm.mean
    actions = torch.rand(16, 8, 1, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ret0, spread0 = with_value(state, actions, value_weight=torch.tensor(0.0))
    ret, spread = without(state, actions)
    torch.testing.assert_close(ret0, ret)
    torch.testing.assert_close(spread0, spread)
    ret1, _ = with_value(state, actions, value_weight=torch.tensor(1.0))
    torch.testing.assert_close(ret1, with_value(state, actions)[0])
    assert not torch.allclose(ret1, ret0), "the value term is there at weight 1"


def test_the_learned_planner_counts_the_steps_it_planned_without_the_value_per_episode(src):
    spec = StepSpec.from_config(src.cfg.planner)
    guarded = StepSpec(**{**spec.__dict__, "value_guard": 1e-6, "value_guard_window": 1})
    planner = MPCPlanner.learned(src.model, guarded, seed=0, value=src.value)
    assert planner.guard is not None and planner.value_off_steps == 0
    gen = torch.Generator().manual_seed(2)
    for _ in range(30):
        state = src.model.obs_norm.mean + src.model.obs_norm.std * torch.randn(5, generator=gen)
        action = planner.act(state.numpy())
        assert all(math.isfinite(a) for a in action)
    assert planner.value_off_steps > 0, "a threshold of ~0 trips on the first shortfall"
    planner.reset()
    assert planner.value_off_steps == 0 and bool(value_weight(planner.guard))
    assert MPCPlanner.learned(src.model, spec, seed=0, value=src.value).guard is None  # value_guard=0: no guard
    assert MPCPlanner.learned(src.model, guarded, seed=0).guard is None  # nothing to guard without a value


def test_eval_with_the_guard_says_how_many_steps_planned_without_the_value_and_records_them(tmp_path):
    import json
    import subprocess
    import sys

    run = make_run_dir(tmp_path / "run")
    r = subprocess.run([sys.executable, "-m", "robot_wm.cli", "eval", str(run), "--episodes", "1", "--no-progress",
                        "planner.value_guard=1e-6", "planner.value_guard_window=1"],
                       capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr
    rec = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert rec["phase"] == "eval" and 0 < rec["value_off_steps"] <= rec["control_steps"], rec
    assert f"the value guard planned {rec['value_off_steps']} of {rec['control_steps']} steps without the value" \
        in r.stderr, r.stderr


def test_the_oracle_with_the_value_is_never_guarded(src):
    """The true simulator predicts no first reward to check promises against: planner.value_guard leaves it as it is."""
    from policies.oracle import oracle_planner
    from sim.registry import make_env

    env = make_env(src.cfg.env)
    spec = StepSpec.from_config(src.cfg.planner)
    planner = oracle_planner(env, StepSpec(**{**spec.__dict__, "value_guard": 0.4, "samples": 16, "elites": 4,
                                              "keep_elites": 1}), value=src.value)
    assert not planner.step.guarded and planner.guard is None
    obs = env.reset(0)
    assert np.all(np.isfinite(planner.act(obs)))


def test_the_guard_is_refused_with_a_goal_or_an_uncertainty_weight_naming_both():
    from robot_wm import config as cfgmod

    for extra, needle in ((["goal.joints={slider=0.5}"], "with a goal"),
                          (["planner.uncertainty_weight=1"], "with planner.uncertainty_weight=1")):
        with pytest.raises(cfgmod.ConfigError, match=f"planner.value_guard=0.4 {needle}"):
            cfgmod.apply_overrides(cfgmod.RunConfig(), ["planner.value_guard=0.4", *extra])
    cfgmod.apply_overrides(cfgmod.RunConfig(), ["planner.value_guard=0.4"])  # alone it is fine
