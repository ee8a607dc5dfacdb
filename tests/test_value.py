"""The learned value and policy: TD targets, learning a known discounted return, policy improvement,
bounds of the proposals, the planner's objective with and without the value, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from policies.mpc.planner import LearnedScore, MPCPlanner
from policies.mpc.step import StepSpec
from robot_wm.config import ValueConfig
from robot_wm.data.episode import Episode
from robot_wm.model.checkpoint import load_checkpoint, load_checkpoint_parts, save_checkpoint, sealed
from robot_wm.model.ensemble import MAX_STATE_Z
from robot_wm.model.imagine import imagine, score_sequences
from robot_wm.model.value import ActorCritic, ValueSpec, episode_discount, new_value
from robot_wm.train_value import TDData, ValueOptimizers, imagined_rows, td_targets, train_value

FAST = ValueConfig(hidden=64, batch_size=128, lr=3e-3, tau=0.05)


def _transitions(obs, act, rew, nxt, gamma) -> TDData:
    """One-step rows."""
    obs, act, rew, nxt = (np.asarray(x, np.float32) for x in (obs, act, rew, nxt))
    return TDData(obs, act, rew, nxt, np.full(len(act), gamma, np.float32))


def test_td_targets_hand_computed():
    got = td_targets(torch.tensor([1.0, 0.5, 0.0]), torch.tensor([10.0, -2.0, 3.0]), 0.9)
    torch.testing.assert_close(got, torch.tensor([1.0 + 9.0, 0.5 - 1.8, 2.7]))
    per_row = td_targets(torch.tensor([1.0, 1.0]), torch.tensor([10.0, 10.0]), torch.tensor([0.81, 0.9]))
    torch.testing.assert_close(per_row, torch.tensor([9.1, 10.0]))


def test_nstep_rows_hand_computed():
    """Rewards 1, 2, 3, 4 over four steps, n = 2, discount 0.5: each row sums two rewards and bootstraps
    from two steps on; the last row has one step left, so it sums one reward and discounts once."""
    obs = np.arange(5, dtype=np.float32)[:, None] * 10
    ep = Episode(obs, np.zeros((4, 1)), np.array([1.0, 2.0, 3.0, 4.0]), np.zeros((5, 2)))
    rows = TDData.from_episodes([ep, ep], n=2, discount=0.5)
    assert len(rows) == 8
    np.testing.assert_allclose(rows.ret[:4], [1 + 0.5 * 2, 2 + 0.5 * 3, 3 + 0.5 * 4, 4])
    np.testing.assert_allclose(rows.next_obs[:4, 0], [20, 30, 40, 40])
    np.testing.assert_allclose(rows.discount[:4], [0.25, 0.25, 0.25, 0.5])
    np.testing.assert_allclose(rows.obs[:4, 0], [0, 10, 20, 30])
    one = TDData.from_episodes([ep], n=1, discount=0.5)
    np.testing.assert_allclose(one.ret, [1, 2, 3, 4])
    np.testing.assert_allclose(one.next_obs[:, 0], [10, 20, 30, 40])
    with pytest.raises(ValueError, match="n=0"):
        TDData.from_episodes([ep], n=0, discount=0.5)
    with pytest.raises(ValueError, match=r"discount=1.5 must be in \(0, 1\]"):  # accepted before (tenth probe)
        TDData.from_episodes([ep], n=1, discount=1.5)


@pytest.mark.parametrize("updates", [-5, 2.5, True])
def test_train_value_refuses_an_update_count_that_is_not_a_whole_number(value_and_model, updates):
    """updates=-5 returned a report of NaN losses (tenth probe)."""
    _, ac = value_and_model
    ep = Episode(np.zeros((5, 1)), np.zeros((4, 1)), np.ones(4), np.zeros((5, 0)), {})
    with pytest.raises(ValueError, match=rf"updates={updates!r} must be a whole number >= 0"):
        train_value(ac, TDData.from_episodes([ep], 1, 0.9), ValueConfig(), updates, seed=0)


def test_discount_from_episode_length():
    assert episode_discount(125) == pytest.approx(0.96)     # cartpole at action repeat 8
    assert episode_discount(500) == pytest.approx(0.99)     # walker at action repeat 2
    assert episode_discount(1000) == pytest.approx(0.995)   # clipped above
    assert episode_discount(20) == pytest.approx(0.95)      # clipped below
    with pytest.raises(ValueError, match="discount=1.0"):
        ValueSpec(3, 1, discount=1.0)
    with pytest.raises(ValueError, match="q_heads=1"):
        ValueSpec(3, 1, q_heads=1)


def test_value_learns_the_discounted_return_of_a_linear_system():
    """s' = 0.8 s, r = s, actions have no effect: Q(s, a) = s / (1 - 0.8 gamma) exactly."""
    rng = np.random.default_rng(0)
    s = rng.uniform(-1, 1, (4000, 1))
    a = rng.uniform(-1, 1, (4000, 1))
    gamma = 0.9
    data = _transitions(s, a, s[:, 0], 0.8 * s, gamma)
    torch.manual_seed(0)
    ac = ActorCritic(ValueSpec(1, 1, hidden=64, discount=gamma, value_scale=4.0), torch.tensor([-1.0]),
                     torch.tensor([1.0]))
    rep = train_value(ac, data, FAST, updates=1500, seed=0, progress=False)
    probe = torch.tensor([[-0.9], [-0.4], [0.0], [0.5], [0.9]])
    with torch.no_grad():
        q = ac.q_values(probe, torch.zeros(5, 1))
        v = ac.value(probe)
    truth = probe[:, 0] / (1 - 0.8 * gamma)
    assert torch.allclose(q.mean(0), truth, atol=0.15), (q.mean(0), truth)
    assert torch.allclose(v, truth, atol=0.15)
    assert q.shape == (2, 5) and rep.updates == 1500 and np.isfinite(rep.q_loss)


def test_value_optimizers_carry_their_moments_from_round_to_round():
    """A fresh Adam per round moved every weight by ~lr on its first steps, whatever the gradient; the runner
    keeps one pair per ActorCritic. Moments made for another ActorCritic are refused."""
    rng = np.random.default_rng(0)
    s = rng.uniform(-1, 1, (500, 1))
    data = _transitions(s, rng.uniform(-1, 1, (500, 1)), s[:, 0], 0.8 * s, 0.9)
    spec = ValueSpec(1, 1, hidden=16, discount=0.9, value_scale=4.0)
    ac = ActorCritic(spec, torch.tensor([-1.0]), torch.tensor([1.0]))
    opts = ValueOptimizers.new(ac, FAST.lr)
    for round_ in range(3):
        train_value(ac, data, FAST, updates=20, seed=round_, progress=False, optimizers=opts)
    steps = {float(st["step"]) for opt in (opts.q, opts.pi) for st in opt.state.values()}
    assert steps == {60.0}
    other = ActorCritic(spec, torch.tensor([-1.0]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="another ActorCritic"):
        train_value(other, data, FAST, updates=1, seed=0, progress=False, optimizers=opts)


def test_training_rounds_continue_the_value_optimizers_until_the_value_is_reloaded(tmp_path):
    """The runner's rounds share one pair of optimizers; a value loaded from a checkpoint gets new ones."""
    from conftest import TINY_RUN_ARGS

    from robot_wm.config import RunConfig, apply_overrides
    from robot_wm.run_dir import RunDir
    from robot_wm.runner import Session

    cfg = apply_overrides(RunConfig(), [*TINY_RUN_ARGS, "value.updates_per_step=0.2", f"run_dir={tmp_path / 'run'}"])
    with Session.open(cfg, RunDir(cfg.resolved_run_dir()), progress=False) as s:
        updates = []
        for round_ in range(2):
            s.collect(s.planner("random", seed=round_), "train", round_)
            s.train(round_)
            updates.append(s.run.records("train")[-1]["value_updates"])
        assert updates[0] > 0 and updates[1] > 0
        steps = {float(st["step"]) for opt in (s._value_opt.q, s._value_opt.pi) for st in opt.state.values()}
        assert steps == {float(sum(updates))}
        s.load(s.run.latest_checkpoint())
        s.collect(s.planner("random", seed=2), "train", 2)
        s.train(2)
        steps = {float(st["step"]) for st in s._value_opt.q.state.values()}
        assert steps == {float(s.run.records("train")[-1]["value_updates"])}


def test_policy_learns_the_best_action():
    """r = -(a - 0.5)^2 whatever the state: the policy's mean action moves to 0.5."""
    rng = np.random.default_rng(1)
    s = rng.uniform(-1, 1, (3000, 2))
    a = rng.uniform(-1, 1, (3000, 1))
    data = _transitions(s, a, -((a[:, 0] - 0.5) ** 2), rng.uniform(-1, 1, (3000, 2)), 0.5)
    torch.manual_seed(0)
    ac = ActorCritic(ValueSpec(2, 1, hidden=64, discount=0.5, value_scale=1.0), torch.tensor([-1.0]),
                     torch.tensor([1.0]))
    train_value(ac, data, FAST, updates=1500, seed=0, progress=False)
    with torch.no_grad():
        mean_action = ac.policy(torch.as_tensor(s[:50], dtype=torch.float32))[0]
    assert torch.all((mean_action - 0.5).abs() < 0.15), mean_action.ravel()


@pytest.fixture(scope="module")
def value_and_model(trained_synthetic):
    model, report, _ = trained_synthetic
    torch.manual_seed(0)
    ac = new_value(1, 1, [-1.0], [1.0], FAST, control_steps=25, action_repeat=1)
    with torch.no_grad():  # a value that is not flat, so the terminal term matters
        ac.q.out.weight.normal_(0, 0.5)
    return model.subset(report.elites), ac


def test_policy_proposals_obey_the_bounds(value_and_model):
    model, ac = value_and_model
    score = LearnedScore(model, value=ac)
    for scale in (0.0, 1.0, 1e3, -1e3):
        eps = torch.full((6, 7, 1), scale)
        with torch.no_grad():
            props = score.propose(torch.tensor([0.4]), eps)
        assert props.shape == (6, 7, 1) and torch.isfinite(props).all()
        assert (props >= -1).all() and (props <= 1).all()


def test_objective_with_and_without_value(value_and_model):
    model, ac = value_and_model
    state, acts = torch.tensor([0.3]), torch.rand(9, 5, 1) * 2 - 1
    with torch.no_grad():
        imag = imagine(model, state, acts)
        gamma = ac.spec.discount
        per_member = imag.returns(gamma) + gamma**5 * ac.value(imag.last)
        ret, spread = score_sequences(model, state, acts, gamma, ac)
        plain, _ = score_sequences(model, state, acts, gamma)
        torch.testing.assert_close(ret, per_member.mean(0))
        torch.testing.assert_close(spread, per_member.std(0, unbiased=False))
        torch.testing.assert_close(plain, imag.returns(gamma).mean(0))
        assert not torch.allclose(ret, plain)
        # The planner's score is the same function on the folded model.
        torch.testing.assert_close(LearnedScore(model, value=ac)(state, acts)[0], ret, atol=1e-4, rtol=1e-4)


def test_a_pessimistic_value_is_the_heads_mean_less_their_std_in_the_planner_and_whatif(value_and_model):
    """planner.value_pessimism: the planner's terminal value is the mean over Q heads less k x their std; whatif scores
    the same futures the same way, and k=0 is the mean."""
    from robot_wm.whatif import what_if

    model, ac = value_and_model
    # seeded: the module's other tests move the global generator, and some draws end where every value is clipped
    # (low == mean everywhere: a failure that depended on which tests ran before in the process)
    acts = torch.rand(9, 5, 1, generator=torch.Generator().manual_seed(3)) * 2 - 1
    state = torch.tensor([0.3])
    with torch.no_grad():
        imag = imagine(model, state, acts)
        q = ac.q_values(imag.last, ac.act(imag.last))
        assert (q.std(0) > 0).any()
        torch.testing.assert_close(ac.value(imag.last, 1.5), ac.clip(q.mean(0) - 1.5 * q.std(0)))
        torch.testing.assert_close(ac.value(imag.last, 0.0), ac.clip(q.mean(0)))
        gamma = ac.spec.discount
        for k in (0.0, 1.5):
            ret, _ = score_sequences(model, state, acts, gamma, ac, pessimism=k)
            torch.testing.assert_close(ret, (imag.returns(gamma) + gamma**5 * ac.value(imag.last, k)).mean(0))
            torch.testing.assert_close(LearnedScore(model, value=ac, pessimism=k)(state, acts)[0], ret,
                                       atol=1e-4, rtol=1e-4)
            res = what_if(model, state.numpy(), acts.numpy(), value=ac, pessimism=k)
            np.testing.assert_allclose(res.returns, ret.numpy(), atol=1e-4, rtol=1e-4)
        low, mean = (LearnedScore(model, value=ac, pessimism=k)(state, acts)[0] for k in (1.5, 0.0))
        assert (low <= mean).all() and (low < mean).any()  # equal where both are clipped to -value_scale
    with pytest.raises(ValueError, match="pessimism=-1"):
        LearnedScore(model, value=ac, pessimism=-1)
    with pytest.raises(ValueError, match="pessimism=nan"):
        what_if(model, state.numpy(), acts.numpy(), value=ac, pessimism=float("nan"))


def test_value_and_td_targets_are_clipped_to_what_the_task_can_pay():
    """A head that extrapolates far past the returns the task can pay neither pulls the plan nor the targets."""
    spec = ValueSpec(obs_dim=2, act_dim=1, hidden=16, discount=0.9, value_scale=10.0)
    ac = ActorCritic(spec, torch.tensor([-1.0]), torch.tensor([1.0]))
    with torch.no_grad():
        for q in (ac.q, ac.q_target):
            q.out.bias.fill_(50.0)  # every head says Q = 500
    obs = torch.randn(7, 2)
    assert torch.allclose(ac.q_values(obs, torch.zeros(7, 1)), torch.tensor(500.0))  # the raw heads are not clipped
    assert torch.equal(ac.value(obs), torch.full((7,), 10.0))
    with torch.no_grad():
        for q in (ac.q, ac.q_target):
            q.out.bias.fill_(-50.0)
    assert torch.equal(ac.value(obs), torch.full((7,), -10.0))
    # One update on rows whose bootstrap says -500: the TD target is clipped, so Q moves toward -10 only.
    data = _transitions(np.zeros((64, 2)), np.zeros((64, 1)), np.zeros(64), np.zeros((64, 2)), 0.9)
    rep = train_value(ac, data, ValueConfig(hidden=16, batch_size=64, lr=1e-3), updates=1, seed=0, progress=False)
    assert rep.q_loss == pytest.approx(((500.0 - 10.0) / 10.0) ** 2, rel=1e-3)


def test_planner_with_value_uses_proposals_and_stays_in_bounds(value_and_model):
    model, ac = value_and_model
    spec = StepSpec(horizon=5, samples=40, iterations=2, elites=8, keep_elites=2, policy_samples=10)
    planner = MPCPlanner.learned(model, spec, seed=0, value=ac)
    pets = MPCPlanner.learned(model, spec, seed=0)
    assert planner.step.spec.policy_samples == 10 and pets.step.spec.policy_samples == 0
    assert planner.name == "learned" and pets.name == "pets"
    for obs in ([0.2], [-0.7], [0.9]):
        a = planner.act(np.array(obs))
        assert a.shape == (1,) and np.all(np.abs(a) <= 1) and bool(planner.last.valid)


def test_proposals_join_every_iteration():
    """A score that rewards one sequence far from the sampling distribution: only a proposal finds it."""
    from policies.mpc.step import colored_filter, plan_step

    target = torch.full((5, 1), 0.9)
    def score(state, cand):
        return -(cand - target).abs().sum((1, 2)), torch.zeros(len(cand))

    spec = StepSpec(horizon=5, samples=20, iterations=2, elites=4, keep_elites=0, init_std=0.01, min_std=0.0,
                    policy_samples=3)
    low, high = torch.tensor([-1.0]), torch.tensor([1.0])
    noise = torch.randn(2, 20, 5, 1, generator=torch.Generator().manual_seed(0))
    args = (torch.zeros(1), torch.zeros(5, 1), noise, score, spec, low, high, colored_filter(5, 0.0))
    without = plan_step(*args)
    with_props = plan_step(*args, proposals=torch.stack([target, -target, target * 2]))
    assert float(with_props.scores.max()) == pytest.approx(0.0, abs=1e-6)
    assert float(without.scores.max()) < -4.0
    assert with_props.scores.shape == (20,)  # proposals replace samples: the candidate count stays
    assert float(with_props.action) > 0.5    # the refit moved the plan toward the proposal


def test_checkpoint_round_trip_with_value(value_and_model, tmp_path):
    model, ac = value_and_model
    path = save_checkpoint(model, tmp_path / "m", [0, 1], extra={"round": 0}, value=ac)
    meta = json.loads(path.read_text())
    assert meta["format"] == "robot-wm/world-model/3" and meta["value_spec"]["q_heads"] == FAST.q_heads
    _, v2, _ = load_checkpoint_parts(path)
    probe = torch.tensor([[0.1], [0.8]])
    with torch.no_grad():
        torch.testing.assert_close(v2.value(probe), ac.value(probe))
        torch.testing.assert_close(v2.q_values(probe, probe, target=True), ac.q_values(probe, probe, target=True))
    assert load_checkpoint(path)[0].spec == model.spec
    # A world-model-only checkpoint loads without a value.
    plain = save_checkpoint(model, tmp_path / "plain", [0, 1])
    assert load_checkpoint_parts(plain)[1] is None
    # what the loader refuses is never written (review): repeated elites, or a value scale new_value never builds
    with pytest.raises(ValueError, match=r"elites \[0, 0\]: expected distinct member indices"):
        save_checkpoint(model, tmp_path / "twice", [0, 0])
    odd = ActorCritic(ValueSpec(**{**ac.spec.__dict__, "value_scale": 1e30}), ac.action_low, ac.action_high)
    with pytest.raises(ValueError, match="value_scale 1e\\+30 is not the action repeat"):
        save_checkpoint(model, tmp_path / "odd", [0, 1], value=odd)
    assert not list(tmp_path.glob("twice*")) and not list(tmp_path.glob("odd*"))
    assert load_checkpoint_parts(save_checkpoint(model, tmp_path / "unsorted", [1, 0]))[2]["elites"] == [0, 1]


def _as_format_2(path, meta: dict) -> dict:
    """``meta`` as a format-2 robot-wm wrote it (no JSON hash; weights without a format in their header, rewritten)."""
    import hashlib

    from safetensors.torch import load_file, save

    weights = path.with_name(meta["weights"])
    blob = save(load_file(weights))
    weights.write_bytes(blob)
    return {k: v for k, v in meta.items() if k != "config_sha256"} | {"format": "robot-wm/world-model/2",
                                                                      "sha256": hashlib.sha256(blob).hexdigest()}


def test_checkpoint_refuses_damaged_or_foreign_value(value_and_model, tmp_path):
    model, ac = value_and_model
    path = save_checkpoint(model, tmp_path / "m", [0, 1], value=ac)
    meta = json.loads(path.read_text())
    bad = dict(meta, value_spec={**meta["value_spec"], "hidden": 999})  # spec that does not fit the tensors
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"changed after it was written \(its config_sha256"):
        load_checkpoint_parts(path)
    path.write_text(json.dumps(sealed(bad)))  # the same edit with its hash recomputed: the tensors refuse it
    with pytest.raises(ValueError, match=r"does not fit.*value tensors"):
        load_checkpoint_parts(path)
    # Relabelled as format 2 (which had no hash) with its value scale edited: the hash it carries still counts.
    downgraded = dict(meta, format="robot-wm/world-model/2",
                      value_spec={**meta["value_spec"], "value_scale": meta["value_spec"]["value_scale"] * 6000})
    path.write_text(json.dumps(downgraded))
    with pytest.raises(ValueError, match=r"changed after it was written \(its config_sha256"):
        load_checkpoint_parts(path)
    legacy = _as_format_2(path, meta)
    path.write_text(json.dumps(legacy))  # a real format-2 file (no hash, no format in its weights) still loads
    meta = dict(meta, sha256=legacy["sha256"])  # the rewritten weights, for the cases below
    assert load_checkpoint_parts(path)[1] is not None
    # ... but not where the weights' own header says format 3: relabelled, hash deleted (probe 12)
    fresh = save_checkpoint(model, tmp_path / "fresh", [0, 1], value=ac)
    fresh.write_text(json.dumps({k: v for k, v in json.loads(fresh.read_text()).items() if k != "config_sha256"}
                                | {"format": "robot-wm/world-model/2", "elites": [1]}))
    with pytest.raises(ValueError, match=r"says format 'robot-wm/world-model/2', but its weights 'fresh.safetensors' "
                                         r"were written as 'robot-wm/world-model/3'"):
        load_checkpoint_parts(fresh)
    # ... nor as a later round of a run whose earlier round is format 3 (weights of a real format-2 file)
    r0 = save_checkpoint(model, tmp_path / "model_r0000", [0, 1], extra={"round": 0}, value=ac)
    r1 = save_checkpoint(model, tmp_path / "model_r0001", [0, 1], extra={"round": 1}, value=ac)
    r1.write_text(json.dumps(_as_format_2(r1, json.loads(r1.read_text()))))
    with pytest.raises(ValueError, match=r"says format 'robot-wm/world-model/2'.*earlier round 'model_r0000.json'"):
        load_checkpoint_parts(r1)
    r0.write_text(json.dumps(_as_format_2(r0, json.loads(r0.read_text()))))
    assert load_checkpoint_parts(r1)[1] is not None  # a run of legacy rounds throughout still loads
    path.write_text(json.dumps(dict(meta, format="robot-wm/world-model/3 ")))
    with pytest.raises(ValueError, match=r"no robot-wm writes that format \(an edited or damaged file\?\)"):
        load_checkpoint_parts(path)
    path.write_text(json.dumps(dict(meta, format="robot-wm/world-model/4")))
    with pytest.raises(ValueError, match=r"format 'robot-wm/world-model/4'.*newer robot-wm"):
        load_checkpoint_parts(path)
    path.write_text(json.dumps(sealed(dict(meta, value_spec=None))))  # value tensors without a spec
    with pytest.raises(ValueError, match="does not fit"):
        load_checkpoint_parts(path)


@pytest.mark.parametrize("part", ["world model", "value"])
def test_checkpoint_with_nan_weights_and_a_matching_hash_is_refused(value_and_model, tmp_path, part):
    """A diverged training writes NaN faithfully: the hash matches, the weights still cannot plan."""
    import hashlib

    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    model, ac = value_and_model
    path = save_checkpoint(model, tmp_path / "m", [0, 1], value=ac)
    meta = json.loads(path.read_text())
    weights = tmp_path / meta["weights"]
    tensors = st_load(weights.read_bytes())
    key = next(k for k in tensors if k.startswith("value.") == (part == "value") and "weight" in k)
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[3] = float("nan")
    blob = st_save(tensors)
    weights.write_bytes(blob)
    path.write_text(json.dumps(sealed(dict(meta, sha256=hashlib.sha256(blob).hexdigest()))))
    with pytest.raises(ValueError, match=rf"non-finite weights in \['{key}'\]"):
        load_checkpoint_parts(path)


def test_exploration_bonus_only_in_training_episodes(tiny_run_dir, tmp_path):
    import shutil

    from robot_wm import config as cfgmod
    from robot_wm.run_dir import RunDir
    from robot_wm.runner import Session

    root = tmp_path / "run"
    shutil.copytree(tiny_run_dir, root)
    run = RunDir(root)
    cfg = cfgmod.apply_overrides(run.load_config(), ["planner.explore_weight=2.5", "planner.uncertainty_weight=0.5",
                                                         "planner.explore_noise=0.5", "planner.value_pessimism=0.75"])
    s = Session.open(cfg, run, progress=False)
    model = s.latest_model()
    assert s.value is not None, "the default run learns a value"
    train = s.planner("learned", model, explore=True)
    evaluation = s.planner("learned", model)
    assert train.step.score.novelty_weight == pytest.approx(2.5) and evaluation.step.score.novelty_weight == 0
    assert train.action_noise == pytest.approx(0.5) and evaluation.action_noise == 0
    assert train.step.spec.uncertainty_weight == evaluation.step.spec.uncertainty_weight == pytest.approx(0.5)
    # the value's pessimism is the other way round: evaluation only (training episodes plan with the heads' mean)
    assert evaluation.step.score.pessimism == pytest.approx(0.75) and train.step.score.pessimism == 0
    assert train.step.score.value is s.value and s.planner("pets", model).step.score.value is None
    state = torch.as_tensor(np.zeros(model.spec.obs_dim, np.float32))
    acts = torch.rand(16, train.step.spec.horizon, model.spec.act_dim, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():  # the same sequences score higher where the members disagree, never lower
        bonus = train.step.score(state, acts)[0] - evaluation.step.score(state, acts)[0]
    assert (bonus > 0).all() and torch.isfinite(bonus).all()


def test_state_disagreement_is_zero_when_members_agree_and_grows_with_their_spread():
    """The exploration bonus: members' std on each imagined state, in units of the data's std."""
    from robot_wm.model.imagine import Imagined, state_disagreement

    e, n, h, s = 4, 3, 5, 2
    same = torch.randn(1, n, h + 1, s).expand(e, n, h + 1, s)
    im = Imagined(torch.zeros(e, n, h), same, same[:, :, -1])
    scale = torch.tensor([1.0, 10.0])
    assert torch.allclose(state_disagreement(im, scale), torch.zeros(n))
    spread = same.clone()
    spread[:, 1, 1:, 0] += torch.tensor([-1.0, 1.0, -1.0, 1.0])[:, None]  # std 1 on dim 0 of sequence 1, every step
    spread[:, 2, 1:, 1] += torch.tensor([-1.0, 1.0, -1.0, 1.0])[:, None]  # std 1 on dim 1, whose data std is 10
    d = state_disagreement(Imagined(im.rewards, spread, spread[:, :, -1]), scale)
    assert d[0] == pytest.approx(0.0, abs=1e-6)
    assert d[1] == pytest.approx(h * 1.0 / 2) and d[2] == pytest.approx(h * 0.1 / 2)  # mean over the 2 dims


def test_oracle_adds_the_value_of_the_last_true_state():
    """The model-gap meter with the value: true dynamics + the same terminal term as the learned planner."""
    from policies.oracle import TrueModelScore, oracle_planner
    from robot_wm.config import EnvConfig
    from sim.registry import make_env

    env = make_env(EnvConfig(task="cartpole-swingup", action_repeat=4, max_env_steps=200))
    env.reset(0)
    spec = ValueSpec(obs_dim=env.observation_spec.dim, act_dim=1, hidden=16, discount=0.9, value_scale=40.0)
    ac = ActorCritic(spec, torch.tensor([-1.0]), torch.tensor([1.0]))
    with torch.no_grad():  # a value that varies with the state, so the test can tell the states apart
        ac.q.out.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    acts = torch.rand(5, 3, 1, generator=torch.Generator().manual_seed(0)) * 2 - 1
    plain, with_v = TrueModelScore(env, 0.9), TrueModelScore(env, 0.5, value=ac)  # the value's discount wins
    for s in (plain, with_v):
        s.state = env.get_state()
    base = plain(None, acts)[0]
    v_at = []  # replay each sequence in the env itself, read V at the last state
    start = env.get_state()
    for seq in acts:
        env.set_state(start)
        for a in seq:
            obs = env.step(a.double().numpy()).observation
        with torch.no_grad():
            v_at.append(float(ac.value(torch.as_tensor(obs, dtype=torch.float32)[None])[0]))
    env.set_state(start)
    torch.testing.assert_close(with_v(None, acts)[0], base + 0.9**3 * torch.tensor(v_at, dtype=base.dtype),
                               rtol=1e-5, atol=1e-5)
    assert oracle_planner(env, StepSpec(horizon=3, samples=8, elites=2, keep_elites=1), value=ac).name == "oracle-value"
    assert oracle_planner(env, StepSpec(horizon=3, samples=8, elites=2, keep_elites=1)).name == "oracle"


def test_imagined_rows_chain_one_member_at_a_time_under_the_policy(value_and_model):
    """Dyna rows: each next state and reward is one elite's prediction for the row's state and the policy's action,
    each step starts where the last one ended, and the rows bootstrap with one step's discount. Repeatable by seed."""
    model, ac = value_and_model
    starts = np.linspace(-0.8, 0.8, 16, dtype=np.float32)[:, None]
    rows = imagined_rows(model, ac, starts, horizon=3, seed=0)
    assert len(rows) == 48
    np.testing.assert_array_equal(rows.obs[:16], starts)
    np.testing.assert_array_equal(rows.obs[16:32], rows.next_obs[:16])
    np.testing.assert_array_equal(rows.obs[32:], rows.next_obs[16:32])
    np.testing.assert_allclose(rows.discount, ac.spec.discount)
    assert np.all(np.abs(rows.action) <= 1.0)
    with torch.no_grad():
        e, n = model.members, len(rows)
        s, a = torch.as_tensor(rows.obs), torch.as_tensor(rows.action)
        nxt, r = model.step(s.expand(e, n, 1), a.expand(e, n, 1))
    member_err = (nxt[..., 0] - torch.as_tensor(rows.next_obs[:, 0])).abs() + (r - torch.as_tensor(rows.ret)).abs()
    assert float(member_err.min(0).values.max()) < 1e-5  # every row is some member's prediction
    picked = member_err.argmin(0)
    assert len(set(picked.tolist())) > 1  # and the members are drawn at random, not the first one always
    # the policy's own noise: the same states give other actions than its mean
    assert not np.allclose(rows.action[:16], ac.act(torch.as_tensor(starts)).detach().numpy())
    again, other = imagined_rows(model, ac, starts, 3, seed=0), imagined_rows(model, ac, starts, 3, seed=1)
    np.testing.assert_array_equal(again.next_obs, rows.next_obs)
    assert not np.array_equal(other.next_obs, rows.next_obs)


def test_imagined_rows_stop_where_the_model_cannot_speak(value_and_model):
    """A start beyond the model's reach gives no row, and a rollout leaving it gives none from there on."""
    model, ac = value_and_model
    centre, scale = (x.numpy() for x in model.state_reach())
    far = (centre + 10 * MAX_STATE_Z * scale)[None].astype(np.float32)
    assert len(imagined_rows(model, ac, far, horizon=4, seed=0)) == 0
    both = np.concatenate([far, np.zeros((1, 1), np.float32)])
    rows = imagined_rows(model, ac, both, horizon=4, seed=0)
    assert len(rows) == 4 and np.all(np.abs(rows.obs - far) > 1)  # only the rollout from 0
    assert np.all(np.isfinite(rows.ret)) and np.all(np.isfinite(rows.next_obs))


def _drifting_model(delta: float, reward: float, members: int = 3):
    """A real ``WorldModel`` (1-D state, centre 0, scale 1) whose every member moves the state by ``delta`` and pays
    ``reward`` each step, whatever the action: its head outputs 0, so each prediction is the target normaliser's mean."""
    from robot_wm.config import ModelConfig
    from robot_wm.train import new_model

    model = new_model(1, 1, np.array([-1.0]), np.array([1.0]), ModelConfig(ensemble_size=members, elites=members,
                                                                            hidden=8, layers=1))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.target_norm.mean.copy_(torch.tensor([delta, reward]))
    return model


def test_imagined_rollouts_end_at_the_first_state_beyond_the_models_reach(value_and_model):
    """Reach is MAX_STATE_Z scales from the centre (0 here). Drifting 0.4 MAX_STATE_Z per step from 0: 0 -> 0.4 -> 0.8
    are rows, the step to 1.2 leaves reach, and nothing after it is a row. From just beyond reach (-1.0001): no row
    at all, though its first step lands back in reach (the mask is cumulative)."""
    _, ac = value_and_model
    delta = 0.4 * MAX_STATE_Z
    model = _drifting_model(delta, 0.25)
    rows = imagined_rows(model, ac, np.array([[0.0]], np.float32), horizon=6, seed=0)
    np.testing.assert_allclose(rows.obs[:, 0], [0.0, delta], rtol=1e-6)
    np.testing.assert_allclose(rows.next_obs[:, 0], [delta, 2 * delta], rtol=1e-6)
    np.testing.assert_allclose(rows.ret, 0.25, rtol=1e-6)
    back = imagined_rows(model, ac, np.array([[-1.0001 * MAX_STATE_Z]], np.float32), horizon=6, seed=0)
    assert len(back) == 0
    both = imagined_rows(model, ac, np.array([[-1.0001 * MAX_STATE_Z], [0.0]], np.float32), horizon=6, seed=0)
    np.testing.assert_allclose(both.obs[:, 0], [0.0, delta], rtol=1e-6)
    with pytest.raises(ValueError, match="horizon=0 must be a whole number >= 1"):
        imagined_rows(model, ac, np.zeros((1, 1), np.float32), horizon=0, seed=0)


def test_with_imagined_adds_about_as_many_rows_as_stored_ones_in_chunks(value_and_model, monkeypatch):
    """ceil(N / steps) starts drawn from the stored rows, rolled out in chunks (as many rows whatever the chunk size);
    the stored rows come first, unchanged; no steps, no rows."""
    import robot_wm.train_value as tv

    model, ac = value_and_model
    rng = np.random.default_rng(0)
    stored = _transitions(rng.uniform(-0.5, 0.5, (101, 1)), rng.uniform(-1, 1, (101, 1)), np.zeros(101),
                          rng.uniform(-0.5, 0.5, (101, 1)), 0.95)
    rows, n = tv.with_imagined(stored, model, ac, steps=4, seed=3)
    assert n == 4 * 26 and len(rows) == 101 + n  # every rollout stays in reach here
    np.testing.assert_array_equal(rows.obs[:101], stored.obs)
    assert set(np.round(rows.obs[101:127, 0], 6)) <= set(np.round(stored.obs[:, 0], 6))  # starts are stored states
    monkeypatch.setattr(tv, "IMAGINED_CHUNK", 10)
    _, m = tv.with_imagined(stored, model, ac, steps=4, seed=3)
    assert m == n
    assert tv.with_imagined(stored, model, ac, steps=0, seed=3) == (stored, 0)


def test_a_run_with_imagined_steps_trains_its_value_on_them_too(tmp_path, tiny_run_dir):
    """value.imagined_steps reaches the runner: each train record counts the imagined rows (as many as stored ones,
    less those dropped), and the run completes."""
    from conftest import tiny_run
    root = tmp_path / "run"
    assert tiny_run(root, "value.imagined_steps=3") == 0
    recs = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r.get("kind") == "train"]
    assert train and all(0 < r["imagined_rows"] <= 3 * -(-r["transitions"] // 3) for r in train)
    assert all(np.isfinite(r["q_loss"]) for r in train)
    # the rows reach the value: the same run without them learns another one (same seed, same first episode) ...
    from robot_wm.model.checkpoint import load_checkpoint_parts
    from robot_wm.run_dir import RunDir

    _, value, _ = load_checkpoint_parts(RunDir(root).latest_checkpoint())
    _, plain, _ = load_checkpoint_parts(RunDir(tiny_run_dir).latest_checkpoint())
    assert not torch.equal(value.q.out.weight, plain.q.out.weight)
    # ... whose state normaliser is fitted on the stored states only, never on imagined ones (review, session 26)
    episodes = list(RunDir(root).dataset())
    states = np.concatenate([e.obs[:-1] for e in episodes] + [episodes[-1].obs[-1:]])
    np.testing.assert_allclose(value.obs_norm.mean.numpy(), states.mean(0), rtol=1e-4, atol=1e-5)
