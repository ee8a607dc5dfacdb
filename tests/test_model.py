"""World model: normalisers, the ensemble learning a known system, elites, checkpoints, multi-step error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import SMALL_MODEL, synthetic_dataset, true_step

from robot_wm.data.dataset import concat
from robot_wm.metrics import multistep_error
from robot_wm.model.checkpoint import load_checkpoint, save_checkpoint, sealed
from robot_wm.model.ensemble import WorldModel, WorldModelSpec
from robot_wm.model.folded import FoldedModel
from robot_wm.model.imagine import imagine, score_sequences
from robot_wm.model.normalizer import Normalizer
from robot_wm.train import new_model, train_model, validation_mse


def _grid(n: int = 21) -> tuple[torch.Tensor, torch.Tensor]:
    s, a = torch.meshgrid(torch.linspace(-0.9, 0.9, n), torch.linspace(-0.9, 0.9, n), indexing="ij")
    return s.reshape(-1, 1), a.reshape(-1, 1)


@torch.no_grad()
def _predict(model, s, a):
    e = model.members
    return model.step(s.expand(e, *s.shape), a.expand(e, *a.shape))


# --- normaliser -------------------------------------------------------------------------------

def test_normalizer_round_trip_and_constant_dim():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, 4, generator=gen) * torch.tensor([1e-2, 1.0, 50.0, 0.0]) + torch.tensor([5.0, -2.0, 0.0, 3.0])
    norm = Normalizer(4)
    norm.fit(x)
    z = norm.normalize(x)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(z[:, :3].mean(0), torch.zeros(3), atol=1e-3, rtol=0)
    torch.testing.assert_close(z[:, :3].std(0, unbiased=False), torch.ones(3), atol=1e-3, rtol=0)
    # The constant dimension passes through (unit scale), it is not blown up by a ~0 std.
    assert norm.std[3] == 1.0 and torch.all(z[:, 3] == 0)
    torch.testing.assert_close(norm.denormalize(z), x, atol=1e-5, rtol=1e-5)
    # A single row gives unit scale too.
    one = Normalizer(2)
    one.fit(torch.tensor([[1.0, 2.0]]))
    assert torch.equal(one.std, torch.ones(2)) and torch.equal(one.mean, torch.tensor([1.0, 2.0]))


@pytest.mark.parametrize("bad", [torch.zeros(0, 3), torch.zeros(5, 2), torch.zeros(5), torch.full((5, 3), float("nan"))])
def test_normalizer_rejects_bad_data(bad):
    with pytest.raises(ValueError):
        Normalizer(3).fit(bad)


# --- learning ---------------------------------------------------------------------------------

def test_ensemble_learns_known_system(trained_synthetic):
    model, report, _ = trained_synthetic
    first, last = np.mean(report.history[0]["val_mse"]), np.mean(report.val_mse)
    assert last < 0.02, f"validation MSE {last:.4f} (normalised) is too high"
    assert last < first / 20, f"validation MSE barely dropped: {first:.4f} -> {last:.4f}"
    s, a = _grid()
    nxt, rew = _predict(model, s, a)
    true_next, true_rew = true_step(s.numpy(), a.numpy())
    # Every member is close to the truth (state change is 0.1 * a, reward spans [-3.24, 0]; the grid's
    # corners, |s + a| near 1.8, are rare under uniform random data and fit worst).
    assert np.abs(nxt.numpy() - true_next).max() < 0.01
    assert np.abs(rew.numpy() - true_rew).max() < 0.5
    assert np.abs(rew.mean(0).numpy() - true_rew).mean() < 0.04
    assert np.corrcoef(rew.mean(0).numpy(), true_rew)[0, 1] > 0.995


def test_elites_are_the_lowest_validation_mse(trained_synthetic):
    model, report, data = trained_synthetic
    assert len(report.elites) == SMALL_MODEL.elites and report.elites == sorted(set(report.elites))
    # Recompute every member's validation error independently from the held-out segments.
    _, val = data.split(SMALL_MODEL.val_fraction)
    t = concat(val)
    obs, act, rew, nxt = (torch.as_tensor(x) for x in (t.obs, t.action, t.reward, t.next_obs))
    y = model.target_norm.normalize(model.targets(obs, nxt, rew))
    with torch.no_grad():
        mean, _ = model(model.inputs(obs, act).expand(model.members, -1, -1))
    mse = ((mean - y) ** 2).mean(dim=(1, 2)).numpy()
    np.testing.assert_allclose(mse, report.val_mse, rtol=1e-5)
    others = [i for i in range(model.members) if i not in report.elites]
    assert max(mse[report.elites]) <= min(mse[others])
    # The elite sub-model predicts exactly what those members predict.
    elite = model.subset(report.elites)
    s, a = _grid(5)
    full_next, full_rew = _predict(model, s, a)
    sub_next, sub_rew = _predict(elite, s, a)
    assert torch.equal(sub_next, full_next[report.elites]) and torch.equal(sub_rew, full_rew[report.elites])


def test_training_is_deterministic_for_a_seed(tmp_path):
    data = synthetic_dataset(tmp_path, episodes=6, steps=10)
    cfg = SMALL_MODEL.model_copy(update={"max_epochs": 3})
    weights = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        model = new_model(1, 1, np.array([-1.0]), np.array([1.0]), cfg)
        report = train_model(model, data, cfg, seed=seed, progress=False)
        weights.append((report.val_mse, model.head.weight.detach().clone()))
    assert weights[0][0] == weights[1][0] and torch.equal(weights[0][1], weights[1][1])
    assert not torch.equal(weights[0][1], weights[2][1])


def test_imagine_shapes_and_discount(trained_synthetic):
    model = trained_synthetic[0]
    acts = torch.rand(4, 6, 1) * 2 - 1
    out = imagine(model, torch.tensor([0.3]), acts, keep_states=True)
    assert out.rewards.shape == (3, 4, 6) and out.states.shape == (3, 4, 7, 1)
    assert torch.all(out.states[:, :, 0, 0] == 0.3)
    torch.testing.assert_close(out.returns(1.0), out.rewards.sum(-1))
    w = 0.9 ** torch.arange(6, dtype=torch.float32)
    torch.testing.assert_close(out.returns(0.9), (out.rewards * w).sum(-1))
    ret, spread = score_sequences(model, torch.tensor([0.3]), acts)
    assert ret.shape == spread.shape == (4,) and torch.all(spread >= 0)
    # Batched start states: one per sequence.
    starts = torch.tensor([[0.3], [-0.3], [0.0], [0.9]])
    assert imagine(model, starts, acts, keep_states=True).states[:, :, 0].eq(starts).all()


# --- folded (planning) form ----------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["silu", "relu"])
def test_folded_model_predicts_what_the_model_predicts(activation):
    """Normalisers and biases folded into the weights: same next state and reward, far from unit scale."""
    gen = torch.Generator().manual_seed(1)
    model = WorldModel(WorldModelSpec(5, 2, 4, 48, 3, activation), torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 3.0]))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
        model.obs_norm.mean.copy_(torch.tensor([40.0, -3.0, 0.0, 1.0, 7.0]))
        model.obs_norm.std.copy_(torch.tensor([10.0, 0.1, 1.0, 2.0, 0.5]))
        model.target_norm.mean.copy_(torch.randn(6, generator=gen))
        model.target_norm.std.copy_(torch.rand(6, generator=gen) + 0.1)
    folded = FoldedModel.of(model)
    assert folded.members == 4 and len(folded.weights) == 4
    obs = model.obs_norm.mean + model.obs_norm.std * torch.randn(4, 64, 5, generator=gen)
    act = torch.tensor([-1.0, -2.0]) + torch.rand(4, 64, 2, generator=gen) * torch.tensor([2.0, 5.0])
    with torch.no_grad():
        for x, y in zip(model.step(obs, act), folded.step(obs, act), strict=True):
            torch.testing.assert_close(y, x, atol=2e-5, rtol=1e-5)
        # It is a snapshot: changing the source model afterwards does not change it.
        before = folded.step(obs, act)[1].clone()
        model.head.bias.add_(1.0)
        assert torch.equal(folded.step(obs, act)[1], before)


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation 'tanh'"):
        WorldModelSpec(3, 1, activation="tanh")


# --- checkpoints ------------------------------------------------------------------------------

def test_checkpoint_round_trip_gives_identical_predictions(trained_synthetic, tmp_path):
    model, report, _ = trained_synthetic
    path = save_checkpoint(model, tmp_path / "ckpt" / "model_r0000", report.elites, extra={"round": 0})
    assert path.name == "model_r0000.json" and (tmp_path / "ckpt" / "model_r0000.safetensors").exists()
    loaded, meta = load_checkpoint(path)
    assert meta["elites"] == report.elites and meta["round"] == 0
    assert loaded.spec == model.spec
    s, a = _grid(7)
    for x, y in zip(_predict(model, s, a), _predict(loaded, s, a)):
        assert torch.equal(x, y)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    # The .safetensors sibling names the same checkpoint.
    again, _ = load_checkpoint(tmp_path / "ckpt" / "model_r0000.safetensors")
    assert torch.equal(again.head.weight, model.head.weight)


@pytest.mark.parametrize("damage", ["flip", "truncate", "missing", "json", "foreign"])
def test_damaged_checkpoint_raises_value_error(trained_synthetic, tmp_path, damage):
    model, report, _ = trained_synthetic
    path = save_checkpoint(model, tmp_path / "m", report.elites)
    weights = tmp_path / "m.safetensors"
    blob = weights.read_bytes()
    if damage == "flip":
        weights.write_bytes(blob[:-10] + bytes([blob[-10] ^ 0xFF]) + blob[-9:])
    elif damage == "truncate":
        weights.write_bytes(blob[: len(blob) // 3])
    elif damage == "missing":
        weights.unlink()
    elif damage == "json":
        path.write_text(path.read_text()[:20])
    else:  # weights of another architecture, with a matching hash: must still be refused
        other = new_model(1, 1, np.array([-1.0]), np.array([1.0]), SMALL_MODEL.model_copy(update={"hidden": 8}))
        other_json = save_checkpoint(other, tmp_path / "other", [0])
        meta = json.loads(path.read_text())
        meta.update(weights="other.safetensors", sha256=json.loads(other_json.read_text())["sha256"])
        path.write_text(json.dumps(sealed(meta)))
    with pytest.raises(ValueError) as err:
        load_checkpoint(path)
    assert "m.json" in str(err.value) or "m.safetensors" in str(err.value) or "other.safetensors" in str(err.value)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="x.json"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="nope.json"):
        load_checkpoint(tmp_path / "nope.json")


# --- multi-step error -------------------------------------------------------------------------

def test_multistep_error_keys_and_values(trained_synthetic):
    model, report, data = trained_synthetic
    _, held_out = data.split(SMALL_MODEL.val_fraction)  # 25 steps, 20% held out -> 5-step segments
    elite = model.subset(report.elites)
    errors = multistep_error(elite, held_out, (5, 1, 3, 1, 8))
    assert sorted(errors) == [1, 3, 5, 8]
    assert np.isnan(errors[8]), "no held-out segment is 8 steps long"
    assert all(np.isfinite(errors[k]) and errors[k] >= 0 for k in (1, 3, 5))
    assert errors[1] < 0.01 and errors[5] < 0.05
    # An untrained model with the same normalisers is much worse.
    fresh = new_model(1, 1, np.array([-1.0]), np.array([1.0]), SMALL_MODEL)
    fresh.obs_norm.load_state_dict(model.obs_norm.state_dict())
    fresh.target_norm.load_state_dict(model.target_norm.state_dict())
    assert multistep_error(fresh, held_out, (5,))[5] > 10 * errors[5]
    assert multistep_error(elite, [], (1,)) == {1: pytest.approx(float("nan"), nan_ok=True)}


def test_multistep_error_in_given_units_compares_two_models(trained_synthetic):
    """Each training refits the model's normaliser: fine-tuning's before/after errors were in two units. Given
    one normaliser, the error is in its units: twice its std, a quarter of the error."""
    model, report, data = trained_synthetic
    _, held_out = data.split(SMALL_MODEL.val_fraction)
    elite = model.subset(report.elites)
    own = multistep_error(elite, held_out, (1, 5))
    wide = Normalizer(1)
    wide.mean.copy_(elite.obs_norm.mean)
    wide.std.copy_(2 * elite.obs_norm.std)
    assert multistep_error(elite, held_out, (1, 5), elite.obs_norm) == own
    in_wide = multistep_error(elite, held_out, (1, 5), wide)
    for k in (1, 5):
        assert in_wide[k] == pytest.approx(own[k] / 4, rel=1e-4)


def test_fit_model_fits_the_normalisers_on_what_it_is_given(trained_synthetic):
    """A weighted mixture's statistics are those of its repeated robot rows: the normalisers come from
    ``norm_from`` (the simulator's transitions) when given, from the training transitions otherwise."""
    import copy as copymod
    import dataclasses

    from robot_wm.train import fit_model

    model, _, data = trained_synthetic
    train_t, val = data.split(SMALL_MODEL.val_fraction)
    shifted = dataclasses.replace(train_t, obs=train_t.obs * 3 + 1, next_obs=train_t.next_obs * 3 + 1)
    cfg = SMALL_MODEL.model_copy(update={"max_epochs": 1})
    kept, refit = copymod.deepcopy(model), copymod.deepcopy(model)
    fit_model(kept, shifted, val, cfg, seed=0, progress=False, norm_from=train_t)
    fit_model(refit, shifted, val, cfg, seed=0, progress=False)
    assert torch.allclose(kept.obs_norm.mean, torch.as_tensor(train_t.obs).mean(0))
    assert torch.allclose(refit.obs_norm.mean, torch.as_tensor(shifted.obs).mean(0))
    for name in ("obs_norm", "target_norm"):  # fitted on the same transitions as before: the same statistics
        assert all(torch.allclose(v, getattr(kept, name).state_dict()[k], atol=1e-6)
                   for k, v in getattr(model, name).state_dict().items())


def test_a_held_out_jump_in_a_dimension_still_in_training_is_not_divergence():
    """An object at rest in training (std 1e-5) that moves once in the held-out segment gives any model a huge
    normalised error: judged against predicting the mean, the round is kept; lr=10's garbage is not (probe 13)."""
    from robot_wm.config import ModelConfig
    from robot_wm.data.dataset import Transitions
    from robot_wm.data.episode import Episode
    from robot_wm.model.checkpoint import TrainingDivergedError
    from robot_wm.train import fit_model

    rng = np.random.default_rng(0)
    n = 200
    act = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    obs = np.zeros((n + 1, 2), np.float32)
    for t in range(n):
        obs[t + 1, 0] = 0.9 * obs[t, 0] + 0.1 * act[t, 0]
    obs[:, 1] = 1e-5 * rng.standard_normal(n + 1)
    rew = obs[1:, 0].copy()
    train_t = Transitions(obs[:-1], act, rew, obs[1:])
    held = obs[:41].copy()
    held[20:, 1] += 0.02  # the object moved once, in the held-out segment only
    val = [Episode(held, act[:40], rew[:40], np.zeros((41, 0)), {})]
    cfg = ModelConfig(ensemble_size=2, elites=1, hidden=16, layers=1, max_epochs=5, patience=5, batch_size=64)
    torch.manual_seed(0)
    report = fit_model(new_model(2, 1, [-1.0], [1.0], cfg), train_t, val, cfg, seed=0, progress=False)
    assert min(report.val_mse) > 100  # the absolute bound of the first fix stopped this run
    with pytest.raises(TrainingDivergedError, match="against .* for predicting the mean"):
        fit_model(new_model(2, 1, [-1.0], [1.0], cfg), train_t, val, cfg.model_copy(update={"lr": 10.0}),
                  seed=0, progress=False)


def test_validation_mse_per_member(trained_synthetic):
    model = trained_synthetic[0]
    x = torch.zeros(10, 2)
    y = torch.zeros(10, 2)
    assert validation_mse(model, x, y).shape == (model.members,)


@pytest.mark.parametrize("low, high, obs_dim", [([1.0], [-1.0], 5), ([np.nan], [1.0], 5), ([-1.0, -1.0], [1.0], 5),
                                                ([-1.0], [1.0], 0)])
def test_a_world_model_with_impossible_bounds_or_sizes_is_refused(low, high, obs_dim):
    """Inverted and NaN bounds and obs_dim=0 were built; two lows for one action were a torch error (probe 17)."""
    from robot_wm.config import ModelConfig
    from robot_wm.train import new_model

    with pytest.raises(ValueError, match=r"action bounds low=|world model obs_dim=0"):
        new_model(obs_dim, 1, low, high, ModelConfig())
