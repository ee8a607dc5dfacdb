"""Property-based invariants (hypothesis): planners, normalisers, episodes and datasets, config and
file loaders. Examples are kept few (the machine is shared); every property is still checked on
inputs nobody hand-picked."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from policies.mpc.planner import MPCPlanner, PlanStep
from policies.mpc.step import StepSpec, colored_filter, plan_step
from robot_wm import config as cfgmod
from robot_wm.data.dataset import EpisodeDataset
from robot_wm.data.episode import Episode
from robot_wm.model.normalizer import Normalizer

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32)


# --- planners --------------------------------------------------------------------------------------
class RandomObjective:
    """Return = a random quadratic in the actions plus a state-dependent term; finite for finite input."""

    def __init__(self, seed: int, horizon: int, act_dim: int):
        g = torch.Generator().manual_seed(seed)
        self.target = torch.randn(horizon, act_dim, generator=g) * 2
        self.weight = torch.rand(horizon, act_dim, generator=g) + 0.1

    def __call__(self, state, actions):
        ret = -(self.weight * (actions - self.target) ** 2).sum(dim=(1, 2)) + torch.tanh(state).sum()
        return ret, torch.zeros_like(ret)


def _spec(optimizer: str, horizon: int, **kw) -> StepSpec:
    base = dict(optimizer=optimizer, horizon=horizon, samples=24, iterations=3, elites=6,
                keep_elites=2 if optimizer == "icem" else 0, temperature=0.3)
    return StepSpec(**{**base, **kw})


def _planner(optimizer: str, seed: int, low, high, horizon: int = 4, obj_seed: int = 0) -> MPCPlanner:
    spec = _spec(optimizer, horizon)
    low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
    return MPCPlanner(PlanStep(RandomObjective(obj_seed, horizon, len(low)), spec, low, high), seed=seed,
                      name=optimizer)


bounds = st.integers(1, 3).flatmap(lambda a: st.tuples(
    hnp.arrays(np.float32, a, elements=st.floats(-10, 9, width=32)),
    hnp.arrays(np.float32, a, elements=st.floats(0.0625, 10, width=32))))


@FAST
@given(optimizer=st.sampled_from(["cem", "mppi", "icem"]), seed=st.integers(0, 2**31 - 1), b=bounds,
       states=st.lists(hnp.arrays(np.float32, 3, elements=finite), min_size=1, max_size=4))
def test_planner_actions_always_within_bounds_and_finite(optimizer, seed, b, states):
    low, width = b
    high = low + width
    p = _planner(optimizer, seed, low, high)
    for s in states:
        a = p.act(s)
        assert a.shape == low.shape and np.all(np.isfinite(a))
        assert np.all(a >= low) and np.all(a <= high), (a, low, high)
    assert p.fallbacks == 0  # finite input, finite objective: never a fallback


@FAST
@given(optimizer=st.sampled_from(["cem", "mppi", "icem"]), seed=st.integers(0, 2**31 - 1),
       obj_seed=st.integers(0, 1000), states=st.lists(hnp.arrays(np.float32, 3, elements=finite),
                                                      min_size=1, max_size=3))
def test_identical_seed_identical_output(optimizer, seed, obj_seed, states):
    a = _planner(optimizer, seed, [-1.0, -2.0], [1.0, 2.0], obj_seed=obj_seed)
    b = _planner(optimizer, seed, [-1.0, -2.0], [1.0, 2.0], obj_seed=obj_seed)
    for s in states:
        assert np.array_equal(a.act(s), b.act(s.copy()))
        assert torch.equal(a.plan, b.plan)


@FAST
@given(seed=st.integers(0, 2**31 - 1), obj_seed=st.integers(0, 1000), keep=st.integers(1, 4),
       iterations=st.integers(2, 6), init_std=st.floats(0.05, 2.0))
def test_best_score_never_worse_across_iterations_when_elites_are_carried(seed, obj_seed, keep, iterations,
                                                                       init_std):
    spec = _spec("icem", 5, iterations=iterations, keep_elites=keep, init_std=init_std)
    low, high = torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 2.0])
    score = RandomObjective(obj_seed, spec.horizon, 2)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(spec.noise_shape(2), generator=g)
    plan = (torch.rand(spec.horizon, 2, generator=g) * 2 - 1) * high
    prev_top = -np.inf
    for i in range(1, iterations + 1):  # a noise prefix replays the first i iterations exactly
        sub = StepSpec(**{**spec.__dict__, "iterations": i})
        out = plan_step(torch.zeros(3), plan, noise[:i], score, sub, low, high,
                        colored_filter(sub.horizon, sub.noise_beta))
        top = float(out.scores.max())
        assert top >= prev_top - 1e-5 * max(1.0, abs(prev_top)), (i, top, prev_top)
        prev_top = top


@FAST
@given(optimizer=st.sampled_from(["cem", "mppi", "icem"]), seed=st.integers(0, 2**31 - 1),
       state=hnp.arrays(np.float32, 3, elements=st.floats(width=32)),
       prev=hnp.arrays(np.float32, (4, 2), elements=st.floats(width=32)))
def test_any_input_even_non_finite_gives_finite_in_bound_action(optimizer, seed, state, prev):
    """Finite output for any input: NaN/Inf in the state or the warm start fall back, counted."""
    low, high = torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 2.0])
    spec = _spec(optimizer, 4)
    noise = torch.randn(spec.noise_shape(2), generator=torch.Generator().manual_seed(seed))
    out = plan_step(torch.from_numpy(state), torch.from_numpy(prev), noise, RandomObjective(0, 4, 2), spec, low,
                    high, colored_filter(4, spec.noise_beta if optimizer == "icem" else 0.0))
    for x in (out.action, out.next_plan):
        assert torch.all(torch.isfinite(x)) and torch.all(x >= low) and torch.all(x <= high)
    if not np.all(np.isfinite(state)):
        assert not bool(out.valid)


@pytest.fixture(scope="module")
def learned_planner_parts():
    from robot_wm.config import ModelConfig
    from robot_wm.train import new_model

    torch.manual_seed(0)
    model = new_model(3, 2, np.array([-1.0, -0.5]), np.array([1.0, 0.5]),
                      ModelConfig(ensemble_size=2, elites=2, hidden=16))
    return model, _spec("icem", 4, samples=16, elites=4, keep_elites=1)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), state=hnp.arrays(np.float32, 3, elements=st.floats(width=32)))
def test_learned_planner_any_state_gives_finite_in_bound_action(learned_planner_parts, seed, state):
    """Through a real (untrained) world model: huge states overflow the model and must fall back."""
    model, spec = learned_planner_parts
    p = MPCPlanner.learned(model, spec, seed)
    a = p.act(state)
    assert np.all(np.isfinite(a)) and np.all(a >= [-1.0, -0.5]) and np.all(a <= [1.0, 0.5])
    if not np.all(np.isfinite(state)):
        assert p.fallbacks == 1


# --- normalisers -----------------------------------------------------------------------------------
@FAST
@given(x=st.integers(1, 4).flatmap(lambda d: hnp.arrays(np.float32, st.tuples(st.integers(1, 30), st.just(d)),
                                                         elements=st.floats(-1e4, 1e4, width=32))))
def test_normalizer_round_trip(x):
    n = Normalizer(x.shape[1])
    t = torch.from_numpy(x)
    n.fit(t)
    back = n.denormalize(n.normalize(t))
    assert torch.all(torch.isfinite(n.normalize(t)))
    torch.testing.assert_close(back, t, rtol=1e-5, atol=1e-5 * float(t.abs().max() + 1))


@FAST
@given(x=hnp.arrays(np.float32, (12, 3), elements=st.floats(-1e3, 1e3, width=32)))
def test_normalizer_state_survives_a_checkpoint_exactly(x):
    from safetensors.torch import load, save

    n = Normalizer(3)
    n.fit(torch.from_numpy(x))
    m = Normalizer(3)
    m.load_state_dict(load(save({k: v.contiguous() for k, v in n.state_dict().items()})))
    assert torch.equal(m.mean, n.mean) and torch.equal(m.std, n.std)


# --- episodes and datasets -------------------------------------------------------------------------
def _episodes(max_steps: int = 12):
    def build(t, s, a, p, meta_seed):
        return st.tuples(
            hnp.arrays(np.float32, (t + 1, s), elements=finite),
            hnp.arrays(np.float32, (t, a), elements=finite),
            hnp.arrays(np.float32, (t,), elements=finite),
            hnp.arrays(np.float64, (t + 1, p), elements=st.floats(-1e12, 1e12)),
            st.dictionaries(st.text(min_size=1, max_size=8), st.one_of(st.integers(-10**9, 10**9), st.text(max_size=8),
                                                                        st.booleans()), max_size=3),
        ).map(lambda z: Episode(*z[:4], meta=z[4]))

    return st.tuples(st.integers(0, max_steps), st.integers(1, 4), st.integers(1, 3), st.integers(1, 5),
                     st.just(0)).flatmap(lambda z: build(*z))


def _same(a: Episode, b: Episode) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) and getattr(a, k).dtype == getattr(b, k).dtype
               for k in ("obs", "action", "reward", "physics_state")) and a.meta == b.meta


@FAST
@given(ep=_episodes())
def test_episode_round_trip_is_exact(ep):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "episode_000000.npz"
        ep.save(path)
        assert _same(Episode.load(path), ep)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(eps=st.lists(_episodes(6), min_size=1, max_size=5))
def test_appending_never_changes_earlier_episodes(eps):
    # a dataset holds one observation/action/physics-state size: take the first episode's and adapt the rest
    s, a, p = eps[0].obs.shape[1], eps[0].action.shape[1], eps[0].physics_state.shape[1]
    eps = [Episode(np.resize(e.obs, (len(e.obs), s)), np.resize(e.action, (len(e.action), a)), e.reward,
                   np.resize(e.physics_state, (len(e.physics_state), p)), e.meta) for e in eps]
    with tempfile.TemporaryDirectory() as d:
        data, hashes = EpisodeDataset(d), []
        for i, e in enumerate(eps):
            path = data.append(e)
            hashes.append(hashlib.sha256(path.read_bytes()).hexdigest())
            now = [hashlib.sha256(p.read_bytes()).hexdigest() for p in data.paths()]
            assert now == hashes, f"append {i} changed an earlier episode file"
        again = EpisodeDataset(d)
        assert len(again) == len(eps) and all(_same(x, y) for x, y in zip(again, eps))


# --- config and loaders: any input gives a valid object or a clear error, nothing else ----------
FIELDS = [line.split("=")[0].strip() for line in cfgmod.help_text()]


@settings(max_examples=60, deadline=None)
@given(key=st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=12)),
       value=st.one_of(st.integers(-10**12, 10**12).map(str), st.floats().map(repr), st.text(max_size=12),
                       st.sampled_from(["true", "[1, 2]", "{a = 1}", '"x"', "-0", "inf", "nan", ""])))
def test_any_override_is_a_valid_config_or_a_config_error(key, value):
    try:
        cfg = cfgmod.apply_overrides(cfgmod.RunConfig(), [f"{key}={value}"])
    except cfgmod.ConfigError as e:
        assert str(e)
        return
    # accepted: it survives the launch-file round trip unchanged
    assert cfgmod.from_dict(cfgmod.tomllib.loads(cfgmod.to_toml(cfg))) == cfg


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_launch_file_round_trip(data):
    cfg = cfgmod.RunConfig(
        seed=data.draw(st.integers(0, 2**31)),
        env_steps=data.draw(st.integers(1, 10**7)),
        planner=cfgmod.PlannerConfig(horizon=data.draw(st.integers(1, 50)), samples=64, elites=8,
                                     keep_elites=data.draw(st.integers(0, 8)),
                                     momentum=data.draw(st.floats(0, 0.99)),
                                     optimizer=data.draw(st.sampled_from(["cem", "mppi", "icem"]))),
        model=cfgmod.ModelConfig(lr=data.draw(st.floats(1e-6, 1.0)), hidden=data.draw(st.integers(1, 512))))
    with tempfile.TemporaryDirectory() as d:
        cfgmod.save(cfg, Path(d) / "c.toml")
        assert cfgmod.load(Path(d) / "c.toml") == cfg


@pytest.fixture(scope="module")
def saved_episode_bytes():
    rng = np.random.default_rng(0)
    ep = Episode(rng.normal(size=(21, 3)), rng.uniform(-1, 1, (20, 1)), rng.normal(size=20), rng.normal(size=(21, 4)),
                 {"task": "x", "env_steps": 20})
    with tempfile.TemporaryDirectory() as d:
        ep.save(Path(d) / "e.npz")
        return ep, (Path(d) / "e.npz").read_bytes()


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_damaged_episode_file_loads_identically_or_is_a_clear_error(saved_episode_bytes, data):
    ep, blob = saved_episode_bytes
    kind = data.draw(st.sampled_from(["flip", "truncate", "splice"]))
    i = data.draw(st.integers(0, len(blob) - 1))
    if kind == "flip":
        bad = blob[:i] + bytes([blob[i] ^ data.draw(st.integers(1, 255))]) + blob[i + 1:]
    elif kind == "truncate":
        bad = blob[:i]
    else:
        bad = blob[:i] + data.draw(st.binary(min_size=1, max_size=16)) + blob[i:]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "e.npz"
        path.write_bytes(bad)
        try:
            got = Episode.load(path)
        except ValueError as e:
            assert "e.npz" in str(e)
            return
        assert _same(got, ep), "a damaged file loaded as a different episode"


@pytest.fixture(scope="module")
def saved_checkpoint():
    from robot_wm.config import ModelConfig
    from robot_wm.model.checkpoint import save_checkpoint
    from robot_wm.train import new_model

    torch.manual_seed(0)
    model = new_model(2, 1, np.array([-1.0]), np.array([1.0]), ModelConfig(ensemble_size=2, elites=1, hidden=8))
    d = Path(tempfile.mkdtemp())
    js = save_checkpoint(model, d / "m", [0])
    return model, js.read_bytes(), js.with_suffix(".safetensors").read_bytes()


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_damaged_checkpoint_loads_identically_or_is_a_clear_error(saved_checkpoint, data):
    from robot_wm.model.checkpoint import load_checkpoint

    model, js, st_blob = saved_checkpoint
    which = data.draw(st.sampled_from(["json", "weights"]))
    blob = js if which == "json" else st_blob
    i = data.draw(st.integers(0, len(blob) - 1))
    if data.draw(st.booleans()):
        blob = blob[:i] + bytes([blob[i] ^ data.draw(st.integers(1, 255))]) + blob[i + 1:]
    else:
        blob = blob[:i]
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "m.json").write_bytes(blob if which == "json" else js)
        (Path(d) / "m.safetensors").write_bytes(blob if which == "weights" else st_blob)
        try:
            got, meta = load_checkpoint(Path(d) / "m.json")
        except ValueError as e:
            assert "m.json" in str(e) or "m.safetensors" in str(e)
            return
        for k, v in model.state_dict().items():  # whatever loads is exactly the saved model
            assert torch.equal(got.state_dict()[k], v)
        assert meta["elites"] == [0]
