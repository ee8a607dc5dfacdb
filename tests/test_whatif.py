"""Counterfactual ("what if?") queries: known answers on the synthetic system, shapes, errors, the CLI."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from conftest import true_return

from robot_wm.cli import main
from robot_wm.whatif import what_if

S0 = 0.5
H = 6


def _optimal(s0: float, h: int) -> np.ndarray:
    """a_t = -s_t makes every reward -(s + a)^2 zero: the best possible return (rewards are <= 0)."""
    s, out = s0, []
    for _ in range(h):
        out.append(-s)
        s = s + 0.1 * -s
    return np.array(out).reshape(h, 1)


def _candidates() -> tuple[list[str], np.ndarray]:
    names = ["optimal", "zero", "plus", "minus", "half-way"]
    seqs = [_optimal(S0, H), np.zeros((H, 1)), np.ones((H, 1)), -np.ones((H, 1)), _optimal(S0, H) / 2]
    return names, np.stack(seqs)


def test_better_actions_get_higher_predicted_return(trained_synthetic):
    model, report, _ = trained_synthetic
    elite = model.subset(report.elites)
    names, seqs = _candidates()
    res = what_if(elite, [S0], seqs)
    truth = np.array([true_return(S0, a) for a in seqs])
    # True returns: optimal 0 > half-way > zero > minus > plus; the model must rank them the same way.
    assert list(np.argsort(-truth)) == [0, 4, 1, 3, 2]
    assert [names[i] for i in res.ranking()] == [names[i] for i in np.argsort(-truth)]
    assert res.returns[0] == res.returns.max() and abs(res.returns[0]) < 0.3
    np.testing.assert_allclose(res.returns, truth, atol=0.1 * H * 0.5 + 0.05 * np.abs(truth).max())
    # Predicted trajectories follow next = s + 0.1 a.
    true_states = S0 + 0.1 * np.concatenate([[0.0], np.cumsum(seqs[0, :, 0])])
    np.testing.assert_allclose(res.states[0, :, 0], true_states, atol=0.02)


def test_result_shapes_and_consistency(trained_synthetic):
    model = trained_synthetic[0]  # all 3 members
    _, seqs = _candidates()
    res = what_if(model, np.array([S0]), seqs)
    k, e = len(seqs), model.members
    assert res.states.shape == (k, H + 1, 1) and res.member_states.shape == (e, k, H + 1, 1)
    assert res.rewards.shape == (k, H) and res.disagreement.shape == (k, H)
    assert res.returns.shape == res.return_spread.shape == (k,)
    assert np.all(res.states[:, 0, 0] == np.float32(S0)) and np.all(res.member_states[:, :, 0, 0] == np.float32(S0))
    np.testing.assert_allclose(res.states, res.member_states.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.returns, res.rewards.sum(-1), rtol=1e-5, atol=1e-5)
    assert np.all(res.return_spread >= 0) and np.all(res.disagreement >= 0)
    assert np.any(res.return_spread > 0), "distinct members must disagree somewhat"
    assert sorted(res.ranking().tolist()) == list(range(k))
    # Discounting weighs later rewards less.
    disc = what_if(model, [S0], seqs, discount=0.5)
    np.testing.assert_allclose(disc.returns, (res.rewards * 0.5 ** np.arange(H)).sum(-1), rtol=1e-5, atol=1e-5)
    # A single (H, A) sequence is one candidate.
    one = what_if(model, [S0], seqs[0])
    assert one.returns.shape == (1,)
    np.testing.assert_allclose(one.returns, res.returns[:1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("discount", [float("nan"), -5.0, 0.0, 1.5])
def test_a_discount_outside_0_1_is_refused(trained_synthetic, discount):
    model = trained_synthetic[0]
    with pytest.raises(ValueError, match=r"discount=.*expected a number in \(0, 1\]"):
        what_if(model, np.zeros(model.spec.obs_dim), np.zeros((1, 3, model.spec.act_dim)), discount=discount)


@pytest.mark.parametrize("kwargs, needle", [
    ({"discount": True}, "discount=True: expected a number in (0, 1]"),
    ({"goal": (np.zeros(3), np.ones(3))}, "goal.state has 3 values, expected 1"),  # a torch traceback before
    ({"goal": (np.full(1, np.nan), np.ones(1))}, "goal.state is not finite"),  # NaN scores before
    ({"goal": (np.zeros(1), np.full(1, 1e308))}, "goal.weights [1e+308] has values beyond"),  # beyond float32 (probe 30)
    ({"goal": "up"}, "goal='up': expected a Goal (state, weights)"),
    ({"goal": (np.zeros(1), np.ones(1)), "reward_weight": float("nan")}, "reward_weight=nan: expected a number"),
    ({"goal": (np.zeros(1), np.ones(1)), "reward_weight": -5}, "reward_weight=-5: expected a number from 0"),
])
def test_odd_what_if_arguments_are_named(trained_synthetic, kwargs, needle):
    """The eighth probe's Python API cases: each was a traceback, a NaN score or a silent change."""
    with pytest.raises(ValueError) as err:
        what_if(trained_synthetic[0], [S0], np.zeros((1, 3, 1)), **kwargs)
    assert needle in str(err.value)


def test_a_value_of_another_task_or_not_a_value_is_named(trained_synthetic):
    """Probe 15: another task's value was torch's "size of tensor a (5) must match", a model an AttributeError."""
    from robot_wm.config import ValueConfig
    from robot_wm.model.value import new_value

    model = trained_synthetic[0]
    other = new_value(3, 1, [-1.0], [1.0], ValueConfig(), control_steps=100, action_repeat=1)
    for value, needle in ((other, "the value is for states of 3 and actions of 1 values, the model's are 1 and 1"),
                          (model, "expected the run's ActorCritic"), ("x", "value='x'")):
        with pytest.raises(ValueError, match=re.escape(needle)):
            what_if(model, [S0], np.zeros((1, 3, 1)), value=value)


def test_a_state_no_robot_can_be_in_is_an_error_not_nan(trained_synthetic):
    """A finite state of 1e38 gave NaN returns with no error (eighth probe); one of 1e19 was scored (probe 15), where
    the planner now falls back: what_if scores what the planner scores."""
    model = trained_synthetic[0]
    for far in (1e38, -1e19):
        with pytest.raises(ValueError, match=r"state\[0\] = .* lies more than 10000 of the data's std"):
            what_if(model, [far], np.zeros((1, 3, 1)))
    centre, scale = (float(x[0]) for x in model.state_reach())
    assert np.isfinite(what_if(model, [centre + 100 * scale], np.zeros((1, 3, 1))).returns).all()


@pytest.mark.parametrize("state, actions, needle", [
    ([S0], np.full((2, 3, 1), 1.5), "1.5"),
    ([S0], np.array([[[0.0], [-0.0], [-2.25]]]), "-2.25"),
    ([np.nan], np.zeros((1, 3, 1)), "nan"),
    ([np.inf], np.zeros((1, 3, 1)), "inf"),
    ([S0, 0.1], np.zeros((1, 3, 1)), "(2,)"),
    ([S0], np.zeros((1, 3, 2)), "(1, 3, 2)"),
    ([S0], np.zeros((1, 0, 1)), "(1, 0, 1)"),
    ([S0], np.full((1, 3, 1), np.nan), "NaN"),
    ([S0], [[[0.0], [0.1]], [[0.0]]], "actions must be an array of numbers of one shape"),  # ragged lists
    ("abc", np.zeros((1, 3, 1)), "state holds <U3 values: expected numbers"),
    (np.array(["1"], dtype=object), np.zeros((1, 3, 1)), "state holds object values"),  # converted (ninth probe)
    ([S0], np.ones((1, 3, 1), bool), "actions holds bool values"),
    ([S0], np.zeros((0, 3, 1)), "(0, 3, 1)"),  # no candidate: empty arrays and torch warnings before
    ([S0], np.full((1, 3, 1), 1e300), "action[0, 0, 0] = 1e+300 is outside the bounds"),  # "NaN/Inf" (probe 15)
    ([1e300], np.zeros((1, 3, 1)), "state holds values beyond float32"),
    ([S0], np.zeros((1, 10_001, 1)), "at most 10000 steps ahead"),  # 100,000 steps took over 100 s
    ([S0], np.broadcast_to(np.float32(0), (200, 5_001, 1)), "1,000,000 imagined steps"),
])
def test_bad_queries_name_the_value(trained_synthetic, state, actions, needle):
    with pytest.raises(ValueError) as err:
        what_if(trained_synthetic[0], state, actions)
    assert needle in str(err.value)


def test_bound_violation_names_the_index(trained_synthetic):
    acts = np.zeros((3, 4, 1))
    acts[2, 1, 0] = -1.01
    with pytest.raises(ValueError, match=r"action\[2, 1, 0\] = -1\.01 is outside the bounds \[-1, 1\]"):
        what_if(trained_synthetic[0], [S0], acts)
    acts[2, 1, 0] = -1.0  # the bound itself is fine
    assert what_if(trained_synthetic[0], [S0], acts).returns.shape == (3,)


# --- the CLI ----------------------------------------------------------------------------------

@pytest.fixture
def run_copy(tiny_run_dir, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(tiny_run_dir, dst)
    return dst


def test_cli_whatif(run_copy, tmp_path, capsys, monkeypatch):
    acts = tmp_path / "cands.npy"
    np.save(acts, np.stack([np.full((4, 1), 0.5), np.full((4, 1), -0.5)]))
    rc = main(["whatif", str(run_copy), "--episode", "1", "--step", "3", "--horizon", "4", "--random", "3",
               "--actions", str(acts)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "episode 1, step 3, 4 steps ahead" in out
    for name in ("recorded", "zero", "file[0]", "file[1]", "random[0]", "random[2]"):
        assert name in out, name
    # 1 recorded + 2 from file + zero + 3 random = 7 ranked rows, each with a finite predicted return.
    rows = [[c.strip() for c in line.strip("│").split("│")] for line in out.splitlines() if line.startswith("│")]
    assert len(rows) == 7
    assert [r[0] for r in rows] == [str(i) for i in range(1, 8)]
    returns = [float(r[2]) for r in rows]
    assert all(np.isfinite(returns)) and returns == sorted(returns, reverse=True)
    # COLUMNS=3 printed the table as empty boxes, no numbers (probe 11)
    monkeypatch.setenv("COLUMNS", "3")
    assert main(["whatif", str(run_copy), "--episode", "1", "--step", "3", "--horizon", "4", "--random", "0"]) == 0
    narrow = capsys.readouterr().out
    assert "recorded" in narrow and "zero" in narrow and any(c.isdigit() for c in narrow.split("zero")[1])
    # a horizon past the episode's end is cut, and said (probe 18: cut without a word)
    from robot_wm.data.dataset import EpisodeDataset

    n = len(EpisodeDataset(run_copy / "episodes")[1])
    assert main(["whatif", str(run_copy), "--episode", "1", "--step", str(n - 2), "--horizon", "50", "--random", "0"]) == 0
    cut = capsys.readouterr()
    assert f"the horizon 50 is cut to 2: episode 1 ends 2 steps after step {n - 2}" in cut.err
    assert f"step {n - 2}, 2 steps ahead" in cut.out


def test_cli_whatif_errors(run_copy, tmp_path, capsys):
    assert main(["whatif", str(run_copy), "--episode", "99"]) == 2
    assert "--episode 99 is out of range" in capsys.readouterr().err
    assert main(["whatif", str(run_copy), "--step", "10000"]) == 2
    assert "--step 10000 is out of range" in capsys.readouterr().err
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((1, 4, 1), 7.0))
    assert main(["whatif", str(run_copy), "--horizon", "4", "--actions", str(bad)]) == 2
    assert "sequence 0, step 0, action 0 is 7; expected a finite number within the bounds" in capsys.readouterr().err
    assert main(["whatif", str(run_copy), "--horizon", "6", "--actions", str(bad)]) == 2  # 4 steps, 6 wanted
    assert "holds (1, 4, 1) float64; expected (K, H, 1) with K >= 1 sequences and H >= 6" in capsys.readouterr().err
    np.save(bad, np.zeros((0, 5, 1)))  # no sequence: the table had no file row and nothing said why (probe 29)
    assert main(["whatif", str(run_copy), "--horizon", "4", "--actions", str(bad)]) == 2
    assert "holds (0, 5, 1) float64; expected (K, H, 1) with K >= 1 sequences" in capsys.readouterr().err
    np.save(bad, np.full((2, 4, 1), np.inf, np.float16))  # "actions hold NaN/Inf", no file, recorded[0] counted
    assert main(["whatif", str(run_copy), "--horizon", "4", "--actions", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"--actions {str(bad)!r}: sequence 0, step 0, action 0 is inf" in err, err
    np.save(bad, np.array([["a"] * 4]))
    assert main(["whatif", str(run_copy), "--horizon", "4", "--actions", str(bad)]) == 2
    assert "it holds <U1 values, expected numbers" in capsys.readouterr().err
    np.save(bad, np.ones((1, 4, 1), bool))  # taken as actions 1.0 and ranked (eighth probe)
    assert main(["whatif", str(run_copy), "--horizon", "4", "--actions", str(bad)]) == 2
    assert "it holds bool values, expected numbers" in capsys.readouterr().err
    np.save(bad, np.zeros((1, 4, 1)))
    data = bad.read_bytes()  # the same 32 bytes of data under a header declaring 8e11 bytes (padding kept)
    bad.write_bytes(data.replace(b"(1, 4, 1), }" + b" " * 9, b"(9999999, 9999, 1), }"))
    assert main(["whatif", str(run_copy), "--horizon", "4", "--actions", str(bad)]) == 2
    assert "its header declares shape (9999999, 9999, 1) of float64" in capsys.readouterr().err
    np.save(bad, np.zeros((250_001, 4, 1), np.float32))  # 4 MB: refused by its count before 250,001 names (probe 28)
    assert main(["whatif", str(run_copy), "--horizon", "4", "--actions", str(bad)]) == 2
    assert "holds 250,001 sequences: at most 1,000,000 imagined steps (K x H = 250,001 x 4)" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # was silently the planner's horizon (0) or a shape error naming no flag (-3)
        main(["whatif", str(run_copy), "--horizon", "0"])
    assert "argument --horizon: expected a whole number from 1 to 10000, got '0'" in capsys.readouterr().err
    # A run directory without a trained model says what to do.
    shutil.rmtree(run_copy / "checkpoints")
    assert main(["whatif", str(run_copy)]) == 2
    assert "robot-wm train" in capsys.readouterr().err
    assert main(["whatif", str(tmp_path / "nowhere")]) == 2
    assert "not a run directory" in capsys.readouterr().err
