"""Domain randomisation on real MuJoCo models: the physics changes as declared (read back from the
model), draws repeat per seed and never compound, delays and noise act on what the agent sees,
and bad ranges or body names get an error naming them."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from policies.random import RandomPolicy
from robot_wm.config import ConfigError, EnvConfig, RandomizeConfig, RunConfig, apply_overrides
from sim.collect import run_episode
from sim.registry import make_env


def _env(task="cartpole-swingup", **randomize):
    return make_env(EnvConfig(task=task, action_repeat=2, max_env_steps=60, randomize=RandomizeConfig(**randomize)))


def _body(env, name):
    return mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_BODY, name)


def test_fixed_perturbation_changes_only_what_it_names():
    nominal = _env()
    env = _env(mass=(1.3, 1.3), mass_bodies=["pole_1"], friction=(0.5, 0.5), damping=(2.0, 2.0))
    env.reset(0)
    pole, cart = _body(env, "pole_1"), _body(env, "cart")
    m0, m = nominal.model, env.model
    assert m.body_mass[pole] == pytest.approx(1.3 * m0.body_mass[pole])
    np.testing.assert_allclose(m.body_inertia[pole], 1.3 * m0.body_inertia[pole])
    assert m.body_mass[cart] == m0.body_mass[cart]
    np.testing.assert_allclose(m.geom_friction[:, 0], 0.5 * m0.geom_friction[:, 0])
    np.testing.assert_array_equal(m.geom_friction[:, 1:], m0.geom_friction[:, 1:])
    np.testing.assert_allclose(m.dof_damping, 2.0 * m0.dof_damping)
    assert np.any(m0.dof_damping > 0)  # so the damping check is not vacuous
    # ... and the physics feels it: the same actions from the same start go elsewhere.
    a = np.full((20, 1), 0.7)
    o_nom = [nominal.reset(0)] + [nominal.step(x).observation for x in a]
    o_pert = [env.reset(0)] + [env.step(x).observation for x in a]
    np.testing.assert_array_equal(o_nom[0], o_pert[0])
    assert not np.allclose(o_nom[-1], o_pert[-1], atol=1e-3)


def test_draws_repeat_per_seed_differ_across_seeds_and_never_compound():
    env, again = (_env(mass=(0.5, 1.5), friction=(0.7, 1.3), actuator_gain=(0.8, 1.2)) for _ in range(2))
    nominal_mass = _env().model.body_mass.copy()
    draws = []
    for seed in (3, 4, 3):
        env.reset(seed)
        draws.append(env.episode_info()["randomization"])
        np.testing.assert_allclose(env.model.body_mass[1:], nominal_mass[1:] * draws[-1]["mass"])  # from nominal
    assert draws[0] == draws[2] and draws[0] != draws[1]
    assert 0.5 <= draws[1]["mass"] <= 1.5 and 0.8 <= draws[1]["actuator_gain"] <= 1.2
    again.reset(3)
    assert again.episode_info()["randomization"] == draws[0]
    pol = RandomPolicy(env.action_spec, 0)
    ep_a, ep_b = run_episode(env, pol, 11), run_episode(again, RandomPolicy(env.action_spec, 0), 11)
    np.testing.assert_array_equal(ep_a.obs, ep_b.obs)
    assert ep_a.meta["randomization"] == ep_b.meta["randomization"]  # recorded in the episode


def test_actuator_gain_on_the_mjcf_arm():
    nominal, env = _env("arm-reach"), _env("arm-reach", actuator_gain=(0.8, 0.8))
    env.reset(0)
    np.testing.assert_allclose(env.model.actuator_gainprm[:, 0], 0.8 * nominal.model.actuator_gainprm[:, 0])
    assert "randomization" not in nominal.episode_info()  # nominal: nothing to record


def test_action_delay_applies_the_command_of_k_steps_before():
    k = 2
    delayed, plain = _env(action_delay=(k, k)), _env()
    acts = np.random.default_rng(0).uniform(-1, 1, size=(10, 1))
    delayed.reset(5)
    plain.reset(5)
    seen = [delayed.step(a).observation for a in acts]
    shifted = np.concatenate([np.zeros((k, 1)), acts[:-k]])  # the middle of [-1, 1] first, then the commands
    expect = [plain.step(a).observation for a in shifted]
    np.testing.assert_allclose(seen, expect, rtol=0, atol=1e-12)


def test_observation_noise_is_what_the_agent_sees_not_the_physics():
    env = _env(obs_noise=0.05)
    obs = env.reset(1)
    diffs = []
    for _ in range(25):
        true = env.observation_of_state(env.get_state())
        diffs.append(obs - true)
        obs = env.step(np.array([0.3])).observation
    d = np.concatenate(diffs)
    assert 0.035 < d.std() < 0.065 and abs(d.mean()) < 0.02


@pytest.mark.parametrize("override, needle", [
    ("env.randomize.mass=[1.3, 0.7]", "inverted"),
    ("env.randomize.friction=[-0.5, 1.0]", "non-negative"),
    ("env.randomize.actuator_gain=[0, 1]", "at least 0.01"),
    ("env.randomize.mass=[1e-300, 1e-300]", r"mass=\[1e-300, 1e-300\]: scales must be at least 0.01"),  # PhysicsError
    ("env.randomize.obs_noise=-1", "obs_noise"),
    ("env.randomize.action_delay=[0, 1000]", "at most 100"),
    ("env.randomize.action_delay=[-1, 1]", "a delay in control steps must be non-negative"),  # "scales" (probe 19)
    ("env.randomize.mass=[1, 2, 3]", "mass"),
    ("env.randomize.heat=[1, 2]", "heat"),
])
def test_bad_ranges_are_refused_naming_them(override, needle):
    with pytest.raises(ConfigError, match=needle):
        apply_overrides(RunConfig(), [override])


@pytest.mark.parametrize("mass", [(1.2, 1.2), (1.0, 1.0)])
def test_unknown_body_is_refused_naming_it_and_the_bodies(mass):
    """At a unit mass scale too: the typo was accepted and surfaced only once the mass changed (tenth probe)."""
    with pytest.raises(ValueError, match=r"\['pole_9'\].*cart"):
        _env(mass=mass, mass_bodies=["pole_9"])


def test_a_named_shift_replaces_the_runs_own_randomisation():
    """`eval --shift` on a run trained with randomisation measures exactly the shift (nominal: none)."""
    from sim.randomize import SHIFTS, shift_overrides

    trained = apply_overrides(RunConfig(), ["env.randomize.friction=[0.5, 1.5]", 'env.randomize.mass_bodies=["pole_1"]',
                                            "env.randomize.action_delay=[0, 1]", "env.randomize.obs_noise=0.01"])
    assert apply_overrides(trained, shift_overrides("nominal")).env.randomize == RandomizeConfig()
    for name, fields in SHIFTS.items():
        assert apply_overrides(trained, shift_overrides(name)).env.randomize == RandomizeConfig(**fields)
    with pytest.raises(ValueError, match="gravity"):
        shift_overrides("gravity")


def test_randomising_again_starts_from_the_nominal_model():
    env, nominal = _env(mass=(2.0, 2.0)), _env()
    env.reset(0)
    env.randomize(RandomizeConfig(mass=(1.5, 1.5)))
    env.reset(0)
    np.testing.assert_allclose(env.model.body_mass, 1.5 * nominal.model.body_mass)  # not 3.0x
    env.randomize(None)
    env.reset(0)
    np.testing.assert_array_equal(env.model.body_mass, nominal.model.body_mass)
