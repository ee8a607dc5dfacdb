"""Coloured random actions for the seed episodes: uniform stays what it was, coloured noise is in bounds,
repeatable per seed, correlated along time as its colour says, and only training episodes get it."""

from __future__ import annotations

import numpy as np
import pytest

from policies.random import RandomPolicy
from robot_wm.config import ConfigError, RunConfig, apply_overrides
from robot_wm.run_dir import RunDir
from robot_wm.runner import Session
from sim.spec import BoxSpec

SPEC = BoxSpec((2,), np.array([-1.0, 0.0]), np.array([1.0, 4.0]))


def _actions(policy: RandomPolicy, n: int) -> np.ndarray:
    policy.reset()
    return np.stack([policy.act(np.zeros(3)) for _ in range(n)])


def _lag1(a: np.ndarray) -> float:
    return float(np.mean([np.corrcoef(a[:-1, i], a[1:, i])[0, 1] for i in range(a.shape[1])]))


def test_uniform_is_the_stream_it_always_was():
    expected = np.random.default_rng(7)
    got = _actions(RandomPolicy(SPEC, seed=7), 50)
    assert np.array_equal(got, np.stack([expected.uniform(SPEC.low, SPEC.high) for _ in range(50)]))
    assert abs(_lag1(_actions(RandomPolicy(SPEC, seed=1), 2000))) < 0.1


@pytest.mark.parametrize("beta, lag1", [(1.0, 0.4), (2.0, 0.9)])
def test_coloured_actions_are_in_bounds_repeatable_and_correlated(beta, lag1):
    a = _actions(RandomPolicy(SPEC, seed=3, beta=beta, length=500), 500)
    assert np.all(a >= SPEC.low) and np.all(a <= SPEC.high)
    assert _lag1(a) > lag1
    assert np.array_equal(a, _actions(RandomPolicy(SPEC, seed=3, beta=beta, length=500), 500))
    assert not np.allclose(a, _actions(RandomPolicy(SPEC, seed=4, beta=beta, length=500), 500))
    # Unit std of the half-range, clipped: the bounds are reached (red noise wanders, so one of them at least).
    assert np.any((a == SPEC.low) | (a == SPEC.high))


def test_each_episode_draws_new_noise_and_a_longer_one_goes_on():
    policy = RandomPolicy(SPEC, seed=0, beta=1.0, length=40)
    first, second = _actions(policy, 40), _actions(policy, 100)  # 100 > length: a second stretch follows
    assert not np.allclose(first, second[:40])
    assert np.all(np.isfinite(second)) and not np.allclose(second[:40], second[40:80])


@pytest.mark.parametrize("beta", [-1.0, 4.5, float("nan"), True, "1"])
def test_bad_colour_is_named(beta):
    with pytest.raises(ValueError, match="beta="):
        RandomPolicy(SPEC, beta=beta)


def test_unbounded_actions_are_refused():
    with pytest.raises(ValueError, match="finite bounds"):
        RandomPolicy(BoxSpec((1,), np.array([-np.inf]), np.array([1.0])), beta=1.0)


def test_only_training_episodes_are_coloured(tmp_path):
    cfg = apply_overrides(RunConfig(), ["env.task=pendulum-swingup", "env.max_env_steps=200", "seed_noise_beta=2"])
    with Session.open(cfg, RunDir(tmp_path / "run"), progress=False) as s:
        seed_policy, baseline = s.planner("random", seed=0, explore=True), s.planner("random", seed=0)
        assert (seed_policy.beta, baseline.beta) == (2.0, 0.0)
        s.collect(seed_policy, "train", 0)
        ep = s.run.dataset()[0]
    assert _lag1(ep.action) > 0.9  # the stored seed episode holds the coloured actions
    with pytest.raises(ConfigError, match="seed_noise_beta"):
        apply_overrides(RunConfig(), ["seed_noise_beta=5"])

