"""Export of the planning step to ONNX: file format, metadata, checks, and parity with torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from policies.mpc.guard import initial_guard
from policies.mpc.planner import PlanStep, learned_score
from policies.mpc.step import StepSpec, initial_plan
from robot_wm import config as cfgmod
from robot_wm.export.format import PLANNER_FORMAT, PLANNER_KEYS
from robot_wm.export.onnx_export import export_planner
from robot_wm.export.source import load_source
from robot_wm.runtime.session import PlannerSession

SMALL = ["env.task=cartpole-swingup", "model.hidden=32", "model.layers=2", "model.ensemble_size=3",
         "model.elites=2", "model.max_epochs=2", "planner.horizon=8", "planner.samples=64",
         "planner.iterations=3", "planner.elites=8", "planner.keep_elites=2", "planner.policy_fraction=0.125",
         "value.hidden=32", "value.updates_per_step=1.0"]


def make_run_dir(root: Path, extra: list[str] = ()) -> Path:
    """A real run directory: one short random cartpole episode and a briefly trained small model."""
    from policies.random import RandomPolicy
    from robot_wm.run_dir import RunDir
    from robot_wm.runner import Session

    cfg = cfgmod.apply_overrides(cfgmod.RunConfig(), [*SMALL, f"run_dir={root}", "env.max_env_steps=400",
                                                      "env_steps=1600", *extra])
    with Session.open(cfg, RunDir(root), progress=False) as s:  # closed: a later writer in this process may lock it
        for i in range(2):
            s.collect(RandomPolicy(s.env.action_spec, seed=i), "train", i)
        s.train(0)
    return root


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("run"))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robot_wm.cli", *args], check=False, capture_output=True, text=True, timeout=300)


def test_export_cli_writes_one_checked_file_with_metadata(run_dir, tmp_path):
    out = tmp_path / "planner.onnx"
    r = _cli("export", str(run_dir), "--out", str(out), "--noise", "internal")
    assert r.returncode == 0, r.stderr
    assert "torchvision" not in r.stderr, r.stderr  # torch's exporter logged 4 lines of it on every export (probe 29)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["planner.onnx"]  # no side file, no temp left
    m = onnx.load(str(out))
    onnx.checker.check_model(m, full_check=True)
    assert m.opset_import[0].version >= 18
    assert [i.name for i in m.graph.input] == ["state", "prev_plan"]
    assert [o.name for o in m.graph.output] == ["action", "next_plan", "best_return", "spread", "valid"]
    assert any(n.op_type.startswith("RandomNormal") for n in m.graph.node)  # draws its own noise
    meta = {p.key: p.value for p in m.metadata_props}
    assert set(PLANNER_KEYS) <= set(meta)
    src = load_source(run_dir)
    assert meta["robot_wm.format"] == PLANNER_FORMAT
    assert meta["source_sha256"] == src.sha256 and len(meta["source_sha256"]) == 64
    assert (int(meta["state_dim"]), int(meta["action_dim"])) == (5, 1)
    assert int(meta["horizon"]) == src.cfg.planner.horizon == 8 and int(meta["samples"]) == 64
    assert float(meta["control_period"]) == pytest.approx(0.01 * src.cfg.env.action_repeat)
    assert json.loads(meta["action_low"]) == [-1.0] and json.loads(meta["action_high"]) == [1.0]
    # In-graph noise: two runs from the same inputs differ, both within bounds.
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    feed = {"state": np.zeros(5, np.float32), "prev_plan": np.zeros((8, 1), np.float32)}
    a1, a2 = (sess.run(None, feed)[1] for _ in range(2))
    assert not np.array_equal(a1, a2) and np.all(np.abs(a1) <= 1)


@pytest.mark.parametrize(("optimizer", "with_value", "delay", "pessimism"),
                         [("icem", True, 0, 0.0), ("mppi", True, 0, 0.0), ("cem", True, 0, 0.0), ("icem", False, 0, 0.0),
                          ("icem", True, 2, 0.0), ("icem", True, 0, 1.0)])
def test_onnx_matches_torch_planner_with_same_noise(run_dir, tmp_path, optimizer, with_value, delay, pessimism):
    """The full planner, terminal value and policy proposals included (with_value), or the PETS-style one;
    with a delay, the commands in flight (the warm start's first ones) kept and the action sent further ahead;
    with a pessimistic value (its heads' mean less their std), the std in the graph too."""
    src = load_source(run_dir, [f"planner.optimizer={optimizer}", f"planner.delay={delay}",
                                f"planner.value_pessimism={pessimism}"]
                      + (["planner.keep_elites=0"] if optimizer != "icem" else []))
    value = src.value if with_value else None
    assert (value is not None) == with_value, "the run directory's checkpoint holds a value"
    spec = StepSpec.from_config(src.cfg.planner)
    out = tmp_path / "p.onnx"
    export_planner(src.model, spec, out, noise="input", value=value)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert (meta["value"], meta["policy_samples"]) == (("1", str(spec.policy_samples)) if with_value else ("0", "0"))
    assert meta["delay"] == str(delay) == str(PlannerSession(out).meta.delay)
    step = PlanStep(*learned_score(src.model, spec, value), src.model.action_low, src.model.action_high)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(0)
    data = src.model.obs_norm
    plan_t = initial_plan(step.low, step.high, spec.horizon)
    if delay:  # commands in flight that are not the middle of the range
        plan_t = step.low + (step.high - step.low) * torch.rand(plan_t.shape, generator=gen)
    plan_o = plan_t.numpy().copy()
    for k in range(5):  # a few warm-started steps from states around the data
        state = data.mean + data.std * torch.randn(5, generator=gen)
        noise = torch.randn(spec.noise_shape(1), generator=gen)
        with torch.inference_mode():
            ref = step(state, plan_t, noise)
        action, next_plan, best, spread, valid = sess.run(
            None, {"state": state.numpy(), "prev_plan": plan_o, "noise": noise.numpy()})
        np.testing.assert_allclose(action, ref.action.numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(next_plan, ref.next_plan.numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(best, ref.best_return.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(spread, ref.spread.numpy(), rtol=1e-3, atol=1e-4)
        assert bool(valid) and bool(ref.valid)
        if delay:
            np.testing.assert_array_equal(next_plan[: delay - 1], plan_o[1:delay])  # still in flight
            np.testing.assert_array_equal(next_plan[delay - 1], action)
        plan_t, plan_o = ref.next_plan, next_plan


def test_onnx_value_guard_matches_torch_and_is_carried_as_state(run_dir, tmp_path):
    """A planner with the value guard takes its state as the last input and returns the next one; torch and
    onnxruntime agree on it and on the plan, from a trusting guard, one about to trip, and one resting."""
    src = load_source(run_dir, ["planner.value_guard=0.3", "planner.value_guard_window=5"])
    spec = StepSpec.from_config(src.cfg.planner)
    out = tmp_path / "g.onnx"
    export_planner(src.model, spec, out, noise="input", value=src.value)
    m = onnx.load(str(out))
    assert [i.name for i in m.graph.input][-1] == "guard" and [o.name for o in m.graph.output][-1] == "next_guard"
    assert {p.key: p.value for p in m.metadata_props}["value_guard"] == "1"
    step = PlanStep(*learned_score(src.model, spec, src.value), src.model.action_low, src.model.action_high)
    assert step.guarded
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(1)
    data = src.model.obs_norm
    plan = initial_plan(step.low, step.high, spec.horizon)
    guards = [initial_guard(), torch.tensor([1e6, 0.0, 0.29, 0.0]), torch.tensor([float("nan"), 0.0, 0.0, 3.0])]
    tripped = False
    for guard in guards:
        g = guard
        for _ in range(3):
            state = data.mean + data.std * torch.randn(5, generator=gen)
            noise = torch.randn(spec.noise_shape(1), generator=gen)
            with torch.inference_mode():
                ref = step(state, plan, noise, guard=g)
            got = sess.run(None, {"state": state.numpy(), "prev_plan": plan.numpy(), "noise": noise.numpy(),
                                  "guard": g.numpy()})
            np.testing.assert_allclose(got[0], ref.action.numpy(), atol=1e-4, rtol=0)
            np.testing.assert_allclose(got[2], ref.best_return.numpy(), rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(got[5], ref.guard.numpy(), rtol=1e-4, atol=1e-4, equal_nan=True)
            tripped |= bool(g[3] <= 0 and ref.guard[3] == 5)
            g, plan = ref.guard, ref.next_plan
    assert tripped, "the guard given a shortfall near the threshold and a far smaller objective tripped"
    assert float(guards[2][3]) == 3.0


def test_non_finite_state_falls_back_in_graph(run_dir, tmp_path):
    src = load_source(run_dir)
    spec = StepSpec.from_config(src.cfg.planner)
    out = tmp_path / "p.onnx"
    export_planner(src.model, spec, out, noise="input")
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    prev = np.linspace(-0.5, 0.5, spec.horizon, dtype=np.float32)[:, None]
    noise = np.zeros(spec.noise_shape(1), np.float32)
    # NaN, and finite values no robot's state can hold (probe 15: 2**62 and 1e19 were planned as valid)
    for bad in (np.nan, 2.0**62, -1e19):
        state = np.array([bad, 0, 0, 0, 0], np.float32)
        action, next_plan, _, _, valid = sess.run(None, {"state": state, "prev_plan": prev, "noise": noise})
        assert not valid, bad
        np.testing.assert_allclose(action, prev[0])
        np.testing.assert_allclose(next_plan, np.concatenate([prev[1:], prev[-1:]]))
    # far outside the data, yet within the model's reach (1,000 of the data's std): planned
    centre, scale = (x.numpy() for x in src.model.state_reach())
    far = (centre + 1000 * scale).astype(np.float32)
    assert sess.run(None, {"state": far, "prev_plan": prev, "noise": noise})[4]


def test_export_dynamics_alone(run_dir, tmp_path):
    src = load_source(run_dir)
    out = tmp_path / "new" / "sub" / "dyn.onnx"  # missing folders are created, and said (a typo passed unseen)
    r = _cli("export", str(src.checkpoint), "--what", "dynamics", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert f"(created the folder {str(tmp_path / 'new')!r})" in r.stdout, r.stdout
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["state", "action"]
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["robot_wm.format"] == "robot-wm/dynamics-onnx/1" and meta["source_sha256"] == src.sha256
    g = torch.Generator().manual_seed(1)
    for b in (1, 7):  # dynamic batch
        s, a = torch.randn(b, 5, generator=g), torch.rand(b, 1, generator=g) * 2 - 1
        nxt, rew = sess.run(None, {"state": s.numpy(), "action": a.numpy()})
        e = src.model.members
        with torch.inference_mode():
            rn, rr = src.model.step(s.expand(e, b, 5), a.expand(e, b, 1))
        np.testing.assert_allclose(nxt, rn.numpy(), atol=1e-5)
        np.testing.assert_allclose(rew, rr.numpy(), atol=1e-5)
    # --noise was taken and ignored here, where overrides are refused (probe 28)
    r = _cli("export", str(src.checkpoint), "--what", "dynamics", "--noise", "internal", "--out", str(tmp_path / "d.onnx"))
    assert r.returncode == 2 and "--noise internal: --what dynamics exports the world model alone" in r.stderr, r.stderr
    assert not (tmp_path / "d.onnx").exists()


def test_export_refuses_missing_or_untrained_sources(tmp_path):
    r = _cli("export", str(tmp_path / "nope"), "--out", str(tmp_path / "p.onnx"))
    assert r.returncode == 2 and "neither a run directory nor a checkpoint" in r.stderr
    assert not (tmp_path / "p.onnx").exists()


def test_export_cli_default_takes_noise_as_input_so_deploy_is_seedable(run_dir, tmp_path):
    out = tmp_path / "planner.onnx"
    r = _cli("export", str(run_dir), "--out", str(out))
    assert r.returncode == 0, r.stderr
    m = onnx.load(str(out))
    assert [i.name for i in m.graph.input] == ["state", "prev_plan", "noise"]
    assert not any(n.op_type.startswith("RandomNormal") for n in m.graph.node)


@pytest.mark.parametrize("where", ["checkpoint weights", "checkpoint json", "config", "directory", "no suffix"])
def test_export_out_that_would_destroy_a_file_or_is_a_directory_is_refused(run_dir, tmp_path, where):
    """``--out`` onto the source checkpoint used to overwrite it with the ONNX file; a directory was a traceback."""
    from robot_wm.run_dir import RunDir

    ckpt = RunDir(run_dir).latest_checkpoint()
    out = {"checkpoint weights": ckpt.with_suffix(".safetensors"), "checkpoint json": ckpt,
           "config": run_dir / "config.toml", "directory": tmp_path, "no suffix": tmp_path / "planner"}[where]
    before = {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != ".lock"}
    r = _cli("export", str(run_dir), "--out", str(out))
    assert r.returncode == 2 and f"--out '{out}'" in r.stderr, r.stderr
    assert ("is a directory" if where == "directory" else "not an .onnx path") in r.stderr
    assert {p: p.read_bytes() for p in before} == before and not (tmp_path / "planner").exists()


def test_export_overrides_may_follow_the_flags_as_the_docs_show(run_dir, tmp_path):
    """docs/deploy.md's `export RUN --out x.onnx planner.samples=256` was 'unrecognized arguments'."""
    import onnx

    out = tmp_path / "p.onnx"
    r = _cli("export", str(run_dir), "--out", str(out), "planner.samples=48")
    assert r.returncode == 0, r.stderr
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["samples"] == "48" and "planner.samples=48" in meta["overrides"]


def test_export_warns_before_tracing_a_long_unrolled_planner(run_dir, tmp_path):
    """export planner.horizon=200 (legal: the bound is 1000) traced for minutes without a word (seventh probe).
    The warning comes from the spec, before anything is traced; the export itself is the test above."""
    from robot_wm.config import PlannerConfig
    from robot_wm.export.cli import slow_export_note

    assert slow_export_note(StepSpec.from_config(PlannerConfig(horizon=50, iterations=2))) is None
    note = slow_export_note(StepSpec.from_config(PlannerConfig(horizon=200, iterations=2)))
    assert note.startswith("horizon 200 x 2 iterations = 400 planning steps unrolled")


def test_planning_step_compiles_to_one_graph_without_breaks(run_dir):
    """torch.compile (and its CUDA graphs) get the whole step. On torch 2.11 a ParameterList slice broke
    the graph and the pieces ran eager on the GPU (13.95 ms instead of 2.1 ms per step on an H100); this
    torch traced that slice, so the test guards against any new break rather than that one."""
    src = load_source(run_dir)
    spec = StepSpec.from_config(src.cfg.planner)
    step = PlanStep(*learned_score(src.model, spec, src.value), src.model.action_low, src.model.action_high)
    plan = initial_plan(step.low, step.high, spec.horizon)
    with torch.inference_mode():
        explained = torch._dynamo.explain(step)(src.model.obs_norm.mean, plan, torch.randn(spec.noise_shape(1)))
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons
    guarded = StepSpec(**{**spec.__dict__, "value_guard": 0.4})  # the value guard's state in and out, same graph
    step = PlanStep(*learned_score(src.model, guarded, src.value), src.model.action_low, src.model.action_high)
    with torch.inference_mode():
        explained = torch._dynamo.explain(step)(src.model.obs_norm.mean, plan, torch.randn(spec.noise_shape(1)),
                                                guard=initial_guard())
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons


def test_export_out_never_replaces_a_file_that_is_no_onnx_model(run_dir, tmp_path):
    """`export --out notes.onnx` replaced a user's file of that name (probe 19); a planner exported before is replaced
    as the workflow wants (export again to the same path)."""
    from robot_wm.dream import check_video_path
    from robot_wm.export.cli import check_out

    notes = tmp_path / "notes.onnx"
    notes.write_text("my notes")
    r = _cli("export", str(run_dir), "--out", str(notes))
    assert r.returncode == 2 and "exists and is not an ONNX file" in r.stderr and notes.read_text() == "my notes"
    planner = tmp_path / "planner.onnx"
    assert _cli("export", str(run_dir), "--out", str(planner)).returncode == 0
    check_out(str(planner))  # replaceable: a model
    for name in ("notes.mp4", "notes.gif"):  # dream/drive --out likewise
        (tmp_path / name).write_text("my notes")
        with pytest.raises(ValueError, match="exists and is not a video"):
            check_video_path(tmp_path / name)
    # probe 21 (EXP-O1): `--out planner.onnx/` (a folder meant) replaced the planner file: pathlib drops the slash
    with pytest.raises(ValueError, match="ends in a slash"):
        check_out(f"{planner}/")
    with pytest.raises(ValueError, match="ends in a slash"):
        check_video_path(f"{tmp_path / 'v.mp4'}/")


def test_export_refuses_a_planner_the_runtime_would_refuse(run_dir, tmp_path):
    """`export planner.samples=100000000` wrote a planner that `deploy` always refused (probe 20)."""
    out = tmp_path / "big.onnx"
    r = _cli("export", str(run_dir), "--out", str(out), "planner.samples=100000000")
    assert r.returncode == 2 and "noise values per step, above the 67,108,864 the runtime allocates" in r.stderr, r.stderr
    assert not out.exists()


def test_a_web_sites_folder_is_not_a_run_to_export_nor_a_planner(tmp_path, capsys):
    """Probe 28: a Hugo site's config.toml was called a damaged run's by export, and deploy told to export it."""
    from robot_wm.cli import main

    site = tmp_path / "site"
    site.mkdir()
    (site / "config.toml").write_text('baseURL = "https://example.org/"\ntitle = "My site"\n')
    assert main(["export", str(site), "--out", str(tmp_path / "p.onnx")]) == 2
    err = capsys.readouterr().err
    assert "is not a run directory: it has a config.toml but no manifest.json" in err and "damaged" not in err, err
    assert main(["deploy", str(site), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and "robot-wm export" not in err, err
    assert not (tmp_path / "p.onnx").exists() and sorted(p.name for p in site.iterdir()) == ["config.toml"]


def test_export_says_when_this_computer_could_not_run_the_planner():
    """Probe 39: `export planner.samples=3000000` wrote a planner of 36.7 GB a step without a word; deploy then refused
    it here. The file is still written (a bigger robot computer may run it), with a note."""
    import onnx

    from robot_wm.export.cli import _too_big_here_note
    from robot_wm.sysmem import available_memory

    proto = onnx.ModelProto()
    proto.metadata_props.add(key="planner_memory_bytes", value=str(10 * (available_memory() or 1 << 40)))
    assert "GB a planning step, more than 80% of the" in _too_big_here_note(proto)
    proto.metadata_props[0].value = "1000"
    assert _too_big_here_note(proto) == ""


def test_export_refuses_more_nodes_than_the_runtime_builds(run_dir, tmp_path, monkeypatch, capsys):
    """Probe 40: the runtime's node cap no longer trusts the metadata's iterations: every planner holds at most
    `MAX_NODES`. An export beyond it (here the cap lowered, as tracing 1,500 planned steps takes an hour) is refused
    before it is written, naming the settings that unroll it."""
    from robot_wm.cli import main
    from robot_wm.export import onnx_export

    monkeypatch.setattr(onnx_export, "MAX_NODES", 50)
    out = tmp_path / "p.onnx"
    assert main(["export", str(run_dir), "--out", str(out), "planner.horizon=2", "planner.iterations=1"]) == 2
    err = capsys.readouterr().err
    assert "(horizon 2 x 1 iterations) holds" in err and "nodes, more than the 50 deploy builds: lower planner.horizon " \
        "or planner.iterations" in err, err
    assert not out.exists()
