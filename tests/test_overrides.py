"""Issue 11, defects 2-6, on real run directories through the real ``robot-wm`` entry point:
one-off overrides never persist (and are recorded), network settings never come from a file, data from
another task is refused, the summary counts only the run's own final evaluation, and a run_dir that is not
a run (or an empty one, or a template naming anything but {task} and {seed}) is refused."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import TINY_RUN_ARGS
from test_faults import snapshot

from robot_wm import config as cfgmod
from robot_wm.cli import main
from robot_wm.data.dataset import EpisodeDataset
from robot_wm.data.episode import Episode
from robot_wm.io import read_jsonl
from robot_wm.run_dir import RunDir

pytestmark = pytest.mark.slow


def _cli(capsys, *args: str) -> tuple[int, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.err + out.out


@pytest.fixture
def run(tiny_run_dir, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(tiny_run_dir, dst)
    return dst


# --- defect 2: one-off overrides ----------------------------------------------------------------
def test_eval_override_is_one_off_and_recorded(run, tmp_path, capsys):
    """The issue's reproduction was `eval RUN env.action_repeat=2` (refused now: the model's time step is the
    run's); a one-off episode length, then a plain export must still write the run's action repeat (8) and
    control period (0.08 s)."""
    config = (run / "config.toml").read_bytes()
    rc, out = _cli(capsys, "eval", str(run), "env.max_env_steps=400", "--episodes", "1", "--no-progress")
    assert rc == 0, out
    assert (run / "config.toml").read_bytes() == config
    last = read_jsonl(run / "metrics.jsonl")[-1]
    assert last["phase"] == "eval" and last["overrides"] == ["env.max_env_steps=400"]
    assert last["control_steps"] == 50  # the override did apply to this command: 400 steps at repeat 8
    rc, out = _cli(capsys, "export", str(run), "--out", str(tmp_path / "p.onnx"))
    assert rc == 0, out
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "p.onnx")).metadata_props}
    assert meta["action_repeat"] == "8" and float(meta["control_period"]) == pytest.approx(0.08)
    assert "overrides" not in meta
    rc, out = _cli(capsys, "export", str(run), "planner.samples=64", "--out", str(tmp_path / "q.onnx"))
    assert rc == 0, out
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "q.onnx")).metadata_props}
    assert json.loads(meta["overrides"]) == ["planner.samples=64"] and meta["samples"] == "64"
    assert (run / "config.toml").read_bytes() == config


def test_collect_on_a_complete_run_says_the_summary_is_older(run, capsys):
    """collect on a complete run appended an episode while manifest.json and summary.json still said 2 episodes,
    and nothing said the headline no longer describes the data (ninth probe)."""
    rc, out = _cli(capsys, "collect", str(run), "--no-progress")
    assert rc == 0, out
    assert json.loads((run / "manifest.json").read_text())["episodes"] == len(list((run / "episodes").glob("*.npz")))
    assert "note: the run's summary.json describes it at 400 environment steps" in out
    # probe 40: `run --resume` then reprinted the summary calling 400 steps the run's training data, without a word
    rc, out = _cli(capsys, "run", f"run_dir={run}", "--resume", "--no-progress")
    assert rc == 0 and "note: the run's summary.json describes it at 400 environment steps; its training data now " \
        "holds 600" in out, out


def test_train_and_collect_overrides_are_one_off(run, capsys):
    config = (run / "config.toml").read_bytes()
    rc, out = _cli(capsys, "train", str(run), "model.max_epochs=2", "--no-progress")
    assert rc == 0 and read_jsonl(run / "metrics.jsonl")[-1]["overrides"] == ["model.max_epochs=2"]
    assert "note: the run's summary.json describes its own final evaluation, before round" in out, out  # probe 28
    assert _cli(capsys, "collect", str(run), "env.max_env_steps=160", "--no-progress")[0] == 0
    rec = read_jsonl(run / "metrics.jsonl")[-1]
    assert rec["overrides"] == ["env.max_env_steps=160"] and rec["env_steps"] == 160
    assert (run / "config.toml").read_bytes() == config


@pytest.mark.parametrize("bad, field", [("planner.samples=64", "planner.samples"), ("seed=5", "seed"),
                                        ("env.action_repeat=2", "env.action_repeat"),
                                        ("model.hidden=64", "model.hidden")])
def test_resume_refuses_fields_a_resume_may_not_change(run, bad, field, capsys):
    before = snapshot(run)
    rc, out = _cli(capsys, "run", f"run_dir={run}", bad, "--resume", "--no-progress")
    assert rc == 2 and field in out and "--resume cannot change" in out and "Traceback" not in out, out
    assert snapshot(run) == before


def test_resume_of_a_complete_run_refuses_a_new_budget(run, capsys):
    before = snapshot(run)
    rc, out = _cli(capsys, "run", f"run_dir={run}", "env_steps=5000", "--resume", "--no-progress")
    assert rc == 2 and "complete" in out and "env_steps=5000" in out, out
    assert "would change nothing" not in out and "--resume does not reopen it" in out, out  # it would add (probe 41)
    assert snapshot(run) == before
    assert cfgmod.load(run / "config.toml").env_steps == 400
    # a plain --resume (or one changing only this command's threads) just reports the finished run
    rc, out = _cli(capsys, "run", f"run_dir={run}", "threads=2", "--resume", "--no-progress")
    assert rc == 0 and snapshot(run) == before, out


def test_resume_of_nothing_is_refused_or_says_it_starts_a_new_run(tmp_path, capsys, caplog):
    """`run run_dir=TYPO --resume` started a new run on the defaults without a word (eighth probe), then with a
    warning easily missed above the progress bar (probe 40): a path that does not exist is refused, naming it. A
    script may pass --resume on every call (run, or go on): into a folder it made, it still starts, and says so."""
    rc, out = _cli(capsys, "run", f"run_dir={tmp_path / 'typo'}", *TINY_RUN_ARGS, "--resume", "--no-progress")
    assert rc == 2 and f"--resume: there is no run at {str(tmp_path / 'typo')!r} (no such folder)" in out, out
    assert not (tmp_path / "typo").exists()
    (tmp_path / "made").mkdir()
    with caplog.at_level("WARNING", logger="robot_wm.runner"):
        rc, out = _cli(capsys, "run", f"run_dir={tmp_path / 'made'}", *TINY_RUN_ARGS, "--resume", "--no-progress")
    assert rc == 0, out
    assert f"--resume: nothing to resume in {tmp_path / 'made'} (no run there); starting a new run" in caplog.text


def test_resume_refuses_a_budget_below_the_steps_collected(run, tmp_path, capsys):
    """An interrupted run holding more steps than a resume's env_steps completed silently, config.toml saying
    the smaller budget and summary.json the larger (eighth probe)."""
    import shutil

    cut = tmp_path / "cut"
    shutil.copytree(run, cut)
    manifest = json.loads((cut / "manifest.json").read_text())
    (cut / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))  # as if killed before the end
    before = snapshot(cut)
    rc, out = _cli(capsys, "run", f"run_dir={cut}", "env_steps=200", "--resume", "--no-progress")
    assert rc == 2 and "--resume env_steps=200" in out and "has collected 400 environment steps" in out, out
    assert snapshot(cut) == before


# --- defect 3: network settings ------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _can_bind(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def test_network_settings_are_never_read_from_a_run(run, capsys):
    """An untrusted config.toml asking for a listener on 0.0.0.0 opens nothing."""
    port = _free_port()
    text = (run / "config.toml").read_text()
    text = text.replace('[rerun]\nmode = "off"', f'[rerun]\nmode = "serve"\naddress = "0.0.0.0:{port}"')
    assert f"0.0.0.0:{port}" in text
    (run / "config.toml").write_text(text)
    cfg = RunDir(run).load_config()
    assert cfg.rerun.mode == "off" and cfg.rerun.address is None
    rc, out = _cli(capsys, "eval", str(run), "--planner", "random", "--episodes", "1", "--no-progress")
    assert rc == 0 and "serving" not in out and str(port) not in out, out
    assert _can_bind(port) and not list(run.glob("rerun/*.rrd"))


@pytest.mark.parametrize("address, error", [("0:9877", "not the name '0'"), ("::", "must look like host:port"),
                                            ("[::]", "must look like host:port")])
def test_an_address_serve_cannot_bind_is_refused_without_a_warning_first(run, capsys, address, error):
    """'0:9877' was warned about as an address Rerun "will listen on", then refused (probe 12)."""
    rc, out = _cli(capsys, "eval", str(run), "--planner", "random", "--episodes", "1", "--no-progress",
                   "--rerun", "serve", "--rerun-address", address)
    assert rc == 2 and error in out and "warning" not in out, out


def test_serve_on_a_public_address_warns_and_is_not_saved(run, capsys):
    port = _free_port()
    config = (run / "config.toml").read_bytes()
    rc, out = _cli(capsys, "eval", str(run), "--planner", "random", "--episodes", "1", "--no-progress",
                   "--rerun", "serve", "--rerun-address", f"0.0.0.0:{port}")
    assert rc == 0, out
    assert f"warning: Rerun will listen on 0.0.0.0:{port}" in out
    assert (run / "config.toml").read_bytes() == config
    # the next plain eval listens nowhere
    rc, out = _cli(capsys, "eval", str(run), "--planner", "random", "--episodes", "1", "--no-progress")
    assert rc == 0 and "serving" not in out and "warning: Rerun" not in out, out
    # a run created with --rerun serve does not save it either
    rd = RunDir(run.parent / "saved")
    rd.save_config(cfgmod.apply_overrides(cfgmod.RunConfig(), ["rerun.mode=serve", 'rerun.address="0.0.0.0:1"']))
    saved = rd.config_path.read_text()
    assert "serve" not in saved and "address" not in saved


def test_launch_file_may_not_set_network_settings(tmp_path, capsys):
    launch, new = tmp_path / "launch.toml", tmp_path / "new-run"
    launch.write_text(f'run_dir = "{new}"\n[rerun]\nmode = "serve"\naddress = "0.0.0.0:9877"\n')
    rc, out = _cli(capsys, "run", str(launch), "--no-progress")
    assert rc == 2 and "rerun.address='0.0.0.0:9877'" in out and "command line" in out, out
    assert not new.exists()
    # an address alone, with --rerun serve on the command line: told it needs --rerun serve (probe 28)
    launch.write_text(f'run_dir = "{new}"\n[rerun]\naddress = "0.0.0.0:9877"\n')
    rc, out = _cli(capsys, "run", str(launch), "--rerun", "serve", "--no-progress")
    assert rc == 2 and "rerun.address='0.0.0.0:9877'" in out and "never from a file" in out, out
    assert "add --rerun serve" not in out and not new.exists()


# --- defect 4: data from another task ------------------------------------------------------------
@pytest.mark.parametrize("command", ["collect", "train", "eval"])
def test_another_task_is_refused_before_anything_is_written(run, command, capsys):
    before = snapshot(run)
    rc, out = _cli(capsys, command, str(run), "env.task=walker-walk", "--no-progress")
    assert rc == 2 and "walker-walk" in out and "cartpole-swingup" in out and "Traceback" not in out, out
    assert snapshot(run) == before
    assert len(EpisodeDataset(run / "episodes")) == 2


def test_dataset_refuses_an_episode_of_other_sizes(run, tmp_path):
    data = EpisodeDataset(run / "episodes")
    rng = np.random.default_rng(0)
    walker = Episode(rng.normal(size=(4, 24)), rng.uniform(-1, 1, (3, 6)), np.zeros(3), np.zeros((4, 18)),
                     {"task": "walker-walk"})
    before = snapshot(run)
    with pytest.raises(ValueError, match="episode_000002.npz.*sizes"):
        data.append(walker)
    assert snapshot(run) == before and len(data) == 2
    # a foreign file dropped into the folder: the dataset refuses to load it, naming it
    walker.save(run / "episodes" / "episode_000002.npz")
    with pytest.raises(ValueError, match="episode_000002.npz"):
        EpisodeDataset(run / "episodes")


# --- defect 5: the headline counts only the run's own final evaluation ---------------------------
def test_summary_ignores_ad_hoc_eval_episodes(run, capsys):
    """An interrupted final evaluation (one of two episodes done), then an ad-hoc `eval --planner random
    --episodes 3`, then --resume: the summary averages the run's two learned episodes only."""
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["final_eval_episodes"] == [0]
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    rc, out = _cli(capsys, "eval", str(run), "--planner", "random", "--episodes", "3", "--no-progress")
    assert rc == 0, out
    rc, out = _cli(capsys, "run", f"run_dir={run}", "eval_episodes=2", "--resume", "--no-progress")
    assert rc == 0, out
    evals = EpisodeDataset(run / "eval")
    assert [e.meta["policy"] for e in evals] == ["learned", "random", "random", "random", "learned"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["eval_returns"] == pytest.approx([evals[0].total_return, evals[4].total_return])
    assert json.loads((run / "manifest.json").read_text())["final_eval_episodes"] == [0, 4]
    assert cfgmod.load(run / "config.toml").eval_episodes == 2  # a field a resume may change is saved
    # `eval RUN eval_episodes=1` ran --episodes' default 3 without a word (probe 20): refused, naming --episodes
    rc, out = _cli(capsys, "eval", str(run), "eval_episodes=1", "--no-progress")
    assert rc == 2 and "eval_episodes is the run's own final evaluation; `robot-wm eval` runs --episodes N" in out, out
    assert len(EpisodeDataset(run / "eval")) == 5
    # probe 22: the manifest edited to name an ad-hoc random episode as the final evaluation: its return became the
    # run's headline on --resume
    (run / "manifest.json").write_text(json.dumps({**json.loads((run / "manifest.json").read_text()),
                                                   "status": "running", "final_eval_episodes": [0, 2]}))
    rc, out = _cli(capsys, "run", f"run_dir={run}", "--resume", "--no-progress")
    assert rc == 2 and "final_eval_episodes [0, 2], but its final evaluation's record in metrics.jsonl names " \
        "[0, 4]" in out, out  # (probe 29; the planner's check named episode 2's 'random' planner before)
    # probe 42: an empty list was told it "repeats an episode or names one before the final evaluation"
    (run / "manifest.json").write_text(json.dumps({**json.loads((run / "manifest.json").read_text()),
                                                   "final_eval_episodes": []}))
    rc, out = _cli(capsys, "run", f"run_dir={run}", "--resume", "--no-progress")
    assert rc == 2 and "final_eval_episodes [], but its final evaluation's record in metrics.jsonl names [0, 4]" \
        in out, out


# --- defect 6: a user's folder, an empty argument, templates -------------------------------------
@pytest.mark.parametrize("files", [{"config.toml": "seed = 1\n"}, {"notes.txt": "mine"},
                                   {"sub/data.csv": "1,2"},
                                   # a web app's own manifest.json made the folder a run for --resume (probe 28)
                                   {"manifest.json": '{"name": "My App", "start_url": "/"}', "index.html": "<p/>"},
                                   {"manifest.json": "not json", "notes.txt": "mine"}])
def test_a_folder_that_is_not_a_run_is_never_written(tmp_path, files, capsys):
    folder = tmp_path / "mine"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    before = snapshot(folder)
    for args in (["run", f"run_dir={folder}", *TINY_RUN_ARGS, "--no-progress"],
                 ["run", f"run_dir={folder}", *TINY_RUN_ARGS, "--resume", "--no-progress"],
                 ["collect", str(folder), *TINY_RUN_ARGS, "--no-progress"],
                 ["eval", str(folder), "--no-progress"], ["train", str(folder), "--no-progress"]):
        rc, out = _cli(capsys, *args)
        assert rc == 2 and str(folder) in out and "Traceback" not in out, (args, out)
        assert "not a run" in out or "not a robot-wm run" in out, out
    assert snapshot(folder) == before and sorted(p.name for p in folder.iterdir()) == sorted(
        {Path(n).parts[0] for n in files})


def test_empty_arguments_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for args in (["run", ""], ["run", "run_dir="], ["run", "run_dir=  "], ["collect", ""], ["eval", ""],
                 ["run", "run_dir=\"{task:.0}\""], ["run", "run_dir=\" {task:.0} \""]):  # a template that fills in to '' (probe 28)
        rc, out = _cli(capsys, *args, "--no-progress")
        assert rc == 2 and "empty" in out and "Traceback" not in out, (args, out)
    assert not list(tmp_path.iterdir()), "nothing may be written into the current folder"


@pytest.mark.parametrize("arg, needle", [
    ("planner.samples\uff1d64", "holds '\uff1d' (U+FF1D), not '='"),  # a fullwidth '=' was a launch file's name
    ("planner.samples\u207c64", "holds '\u207c' (U+207C), not '='"),
    ("planner.samples\u2a7564", "holds '\u2a75' (U+2A75), not '='"),  # probe 37: a lookalike NFKC takes to '=='
    ("planner.samples\ua78a64", "holds '\ua78a' (U+A78A), not '='"),  # ... or to itself
    ("planner.samples\u30a064", "holds '\u30a0' (U+30A0), not '='"),
    ("planner.samples =64", "has a space before '=': expected planner.samples=64"),  # "unknown field" (probe 36)
])
def test_an_override_written_with_a_lookalike_or_a_space_is_named(arg, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc, out = _cli(capsys, "run", arg, "--no-progress")
    assert rc == 2 and needle in out and "Traceback" not in out, out
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("template", ["runs/{task.__class__}", "runs/{seed[0]}", "runs/{task!r}",
                                      "runs/{seed:{task}}", "runs/{user}", "runs/{0}", "runs/{}", "runs/{task"])
def test_run_dir_template_fields(template, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(cfgmod.ConfigError, match="run_dir"):
        cfgmod.apply_overrides(cfgmod.RunConfig(), [f"run_dir={template}"])
    rc, out = _cli(capsys, "run", f"run_dir={template}", "--no-progress")
    assert rc == 2 and "run_dir" in out and "Traceback" not in out and "<class" not in out
    assert not list(tmp_path.iterdir())


def test_documented_template_fields_work():
    cfg = cfgmod.apply_overrides(cfgmod.RunConfig(), ["run_dir=runs/{task}-{seed:03d}", "seed=7"])
    assert cfg.resolved_run_dir() == Path("runs/cartpole-swingup-007")


# --- defect 7 (part): the planner's memory is estimated from the config before anything is built -----
def test_a_planner_too_big_for_memory_is_refused_naming_the_fields(run, tmp_path, capsys):
    new = tmp_path / "big"
    rc, out = _cli(capsys, "run", f"run_dir={new}", "planner.samples=2000000", "--no-progress")
    assert rc == 2 and "planner.samples=2000000" in out and "GB" in out and "Traceback" not in out, out
    assert not new.exists()
    before = snapshot(run)
    # the tiny run's small model: 2,000,000 samples would fit (slowly); 200,000,000 cannot
    rc, out = _cli(capsys, "eval", str(run), "planner.samples=200000000", "--no-progress")
    assert rc == 2 and "planner.samples=200000000" in out and "model.hidden=32" in out, out
    assert snapshot(run) == before


def test_planner_memory_estimate_scales_and_uses_the_given_budget():
    from robot_wm.memory import check_memory, planner_memory_bytes

    small = cfgmod.RunConfig()
    big = cfgmod.apply_overrides(small, ["planner.samples=2560"])
    filter_bytes = 4 * 3 * 12 * 12  # the coloured-noise filter: horizon x horizon, not per sample
    assert planner_memory_bytes(big, 5, 1) - filter_bytes == 10 * (planner_memory_bytes(small, 5, 1) - filter_bytes)
    assert planner_memory_bytes(big, 5, 1) < 150e6  # 110 MB with five Q heads (the default since session 19)
    long = cfgmod.apply_overrides(small, ["planner.horizon=1000"])  # the filter alone is 12 MB there
    assert planner_memory_bytes(long, 5, 1) > 4 * 3 * 1000 * 1000
    check_memory(small, 5, 1, available=10**9)  # fits
    with pytest.raises(ValueError, match=r"planner.samples=256, planner.horizon=12.*model.hidden=200"):
        check_memory(small, 5, 1, available=10**6)


def test_training_memory_estimate_is_close_to_the_real_model_and_refuses_what_cannot_fit():
    from robot_wm.memory import check_memory, training_memory_bytes
    from robot_wm.model.value import new_value
    from robot_wm.train import new_model

    cfg = cfgmod.RunConfig()
    model = new_model(5, 1, np.array([-1.0]), np.array([1.0]), cfg.model)
    value = new_value(5, 1, np.array([-1.0]), np.array([1.0]), cfg.value, 125, 8)
    weights = 4 * (sum(p.numel() for p in model.parameters()) + sum(p.numel() for p in value.parameters()))
    est = training_memory_bytes(cfg, 5, 1)
    assert 4 * weights <= est <= 4 * weights + 4e7  # the real weights four times over, plus the batches
    huge = cfgmod.apply_overrides(cfg, ["model.hidden=1000000"])  # 20 TB of weights: refused, not allocated
    with pytest.raises(ValueError, match=r"training would need about .* GB \(model.ensemble_size=5, model.hidden=1000000"
                                         r".*lower model.hidden \(the default is 200\)"):
        check_memory(huge, 5, 1, available=24 * 2**30)
    deep = cfgmod.apply_overrides(cfg, ["model.layers=200000"])  # advised model.hidden before (tenth probe)
    with pytest.raises(ValueError, match=r"lower model.layers \(the default is 3\) or the others"):
        check_memory(deep, 5, 1, available=24 * 2**30)
    many = cfgmod.apply_overrides(cfg, ["planner.samples=100000000"])
    with pytest.raises(ValueError, match=r"lower planner.samples \(the default is 256\) or the others"):
        check_memory(many, 5, 1, available=24 * 2**30)
    # the review of session 20: each command checks what it runs, so that it may lower what the message names
    # (`eval` refused by the training estimate, and `eval model.batch_size=8` refused as "trains nothing")
    check_memory(huge, 5, 1, available=24 * 2**30, parts=("planner",))
    check_memory(many, 5, 1, available=24 * 2**30, parts=("training",))
    with pytest.raises(ValueError, match="the planner would need"):
        check_memory(many, 5, 1, available=24 * 2**30, parts=("planner",))


def test_model_too_big_is_refused_before_anything_is_written(tmp_path, capsys):
    from robot_wm.cli import main

    rc = main(["run", f"run_dir={tmp_path / 'r'}", "model.hidden=1000000", "env_steps=400", "--no-progress"])
    assert rc == 2 and "training would need about" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args,message", [
    (["run", "threads=100000"], "threads"),
    (["deploy", "x.onnx", "--task", "cartpole-swingup", "--threads", "100000"],
     "argument --threads: expected a whole number from 1 to 1024, got '100000'"),
])
def test_huge_thread_counts_are_refused(tmp_path, capsys, args, message):
    """`deploy --threads 100000` grew memory and segfaulted; `run threads=100000` crashed in MuJoCo."""
    from robot_wm.cli import main

    args = [a if a != "x.onnx" else str(tmp_path / "x.onnx") for a in args]
    if args[0] == "run":
        args += [f"run_dir={tmp_path / 'r'}", "--no-progress"]
    try:
        rc = main(args)
    except SystemExit as e:  # refused by argparse, before anything is loaded
        rc = e.code
    assert rc == 2 and message in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_inline_table_override_changes_only_the_fields_it_names():
    """`planner={samples=64,elites=4}` used to reset every other planner field to its default, silently."""
    base = cfgmod.apply_overrides(cfgmod.RunConfig(), ["planner.horizon=5", "env.randomize.mass=[0.8, 1.2]"])
    cfg = cfgmod.apply_overrides(base, ["planner={samples=64,elites=4}", "env={randomize={friction=[0.5,1.5]}}"])
    assert (cfg.planner.samples, cfg.planner.elites, cfg.planner.horizon) == (64, 4, 5)
    assert cfg.env.randomize.mass == (0.8, 1.2) or list(cfg.env.randomize.mass) == [0.8, 1.2]
    assert list(cfg.env.randomize.friction) == [0.5, 1.5] and cfg.env.task == base.env.task
    with pytest.raises(cfgmod.ConfigError, match="planner.samplez"):
        cfgmod.apply_overrides(base, ["planner={samplez=64}"])


@pytest.mark.parametrize("seed", ["-1", "99999999999999999999"])
def test_out_of_range_seed_is_a_config_error_before_anything_is_written(tmp_path, capsys, seed):
    """`run seed=-1` used to fail inside numpy after creating the run directory, and every --resume failed."""
    from robot_wm.cli import main

    rc = main(["run", f"run_dir={tmp_path / 'r'}", f"seed={seed}", "--no-progress"])
    assert rc == 2 and "seed" in capsys.readouterr().err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("command, extra", [("train", ["--no-progress"]), ("eval", ["--no-progress"]),
                                            ("export", ["--out", "OUT"])])
def test_network_sizes_cannot_be_overridden_on_a_trained_run(run, tmp_path, capsys, command, extra):
    """train kept the checkpoint's 200-wide ensemble while its record said model.hidden=64, and export wrote
    the checkpoint's networks with "model.hidden=64 value.hidden=7" in the file's metadata, both exit 0
    (probe of 2026-11-26)."""
    before = snapshot(run)
    args = [str(tmp_path / "x.onnx") if e == "OUT" else e for e in extra]
    rc, out = _cli(capsys, command, str(run), *args, "model.hidden=64", "value.hidden=7")
    assert rc == 2 and "model.hidden" in out and ("its checkpoints hold the run's" in out
                                                  or "the networks are the checkpoint's" in out), out
    assert snapshot(run) == before and not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("command", ["eval", "train", "whatif"])
@pytest.mark.parametrize("override", ["value.discount=0.5", "model.elites=2"])
def test_what_the_checkpoint_holds_cannot_be_overridden(run, capsys, command, override):
    """`eval RUN value.discount=0.5` (or model.elites=2) was recorded as an override while the checkpoint's
    discount and elites planned (eighth probe)."""
    before = snapshot(run)
    extra = ["--episode", "0", "--step", "2"] if command == "whatif" else ["--no-progress"]
    rc, out = _cli(capsys, command, str(run), *extra, override)
    assert rc == 2 and override.split("=")[0] in out and "its checkpoints hold the run's" in out, out
    assert snapshot(run) == before


@pytest.mark.parametrize("command", ["eval", "whatif"])
def test_planner_discount_with_the_value_is_refused_and_with_pets_applies(run, capsys, command):
    """`eval RUN planner.discount=0.5` on a run with a value was recorded and changed nothing (probe 13)."""
    before = snapshot(run)
    extra = ["--episode", "0", "--step", "2"] if command == "whatif" else ["--episodes", "1", "--no-progress"]
    rc, out = _cli(capsys, command, str(run), *extra, "planner.discount=0.5")
    assert rc == 2 and "planner.discount=0.5 would change nothing" in out and "--planner pets" in out, out
    assert snapshot(run) == before
    if command == "eval":
        rc, out = _cli(capsys, "eval", str(run), "--episodes", "1", "--no-progress", "--planner", "pets",
                       "planner.discount=0.5")
        assert rc == 0, out
        rc, out = _cli(capsys, "eval", str(run), "--episodes", "1", "--no-progress", "planner.discount=0.5",
                       "goal.joints={slider=0.5, hinge_1=0}", "goal.reward_weight=0")  # a goal alone: no value
        assert rc == 0, out


def test_finetune_refuses_rerun_settings(run, capsys):
    """`finetune RUN --data D rerun.mode=serve` opened a listener through the whole fine-tuning, which logs nothing
    to Rerun (probe 24)."""
    before = snapshot(run)
    rc, out = _cli(capsys, "finetune", str(run), "--data", str(run), "--no-progress", "rerun.mode=serve")
    assert rc == 2 and "finetune writes no Rerun recording" in out and "rerun.mode=serve" in out, out
    assert snapshot(run) == before


@pytest.mark.parametrize("override", ["env.randomize.mass=[2,2]", "env.max_env_steps=400"])
@pytest.mark.parametrize("command", ["train", "finetune"])
def test_training_refuses_episode_settings_it_would_not_use(run, capsys, command, override):
    """`train RUN 'env.randomize.mass=[2,2]'` (probe 13) and `finetune RUN --data D env.max_env_steps=400` (probe 24)
    were recorded as overrides, and training collects nothing."""
    before = snapshot(run)
    extra = ["--data", str(run)] if command == "finetune" else []
    rc, out = _cli(capsys, command, str(run), *extra, "--no-progress", override)
    assert rc == 2 and override.partition("=")[0] in out and "collects none" in out, out
    assert snapshot(run) == before


@pytest.mark.parametrize("override, needle", [
    ("env.action_repeat=4", "its episodes were collected with the run's values"),
    ("run_dir=/tmp/robot-wm-elsewhere", "the run is the command's RUN argument"),
])
def test_eval_refuses_another_time_step_or_run_dir(run, capsys, override, needle):
    """`eval RUN env.action_repeat=4` on a model of repeat 8 reported a return, exit 0; `eval RUN run_dir=X`
    ignored X silently (tenth probe)."""
    before = snapshot(run)
    rc, out = _cli(capsys, "eval", str(run), "--episodes", "1", "--no-progress", override)
    assert rc == 2 and override.split("=")[0] in out and needle in out, out
    assert snapshot(run) == before and not Path("/tmp/robot-wm-elsewhere").exists()


def test_eval_starts_repeats_the_start_states_of_an_earlier_evaluation(run, capsys):
    """Each eval drew its start states after the stored episodes: `eval RUN` then `eval RUN --shift mass-1.3`
    compared different starts (tenth probe). `--starts K` gives both the same ones."""
    from robot_wm.run_dir import RunDir

    for extra in ([], ["--shift", "mass-1.3"]):
        rc, out = _cli(capsys, "eval", str(run), "--episodes", "2", "--starts", "0", "--planner", "random",
                       "--no-progress", *extra)
        assert rc == 0, out
    evals = RunDir(run).eval_dataset()
    a, b = evals[len(evals) - 4], evals[len(evals) - 2]
    np.testing.assert_array_equal(a.obs[0], b.obs[0])
    assert not np.array_equal(a.obs[0], evals[len(evals) - 3].obs[0])  # the next start is another one
    recs = [r for r in RunDir(run).records() if r.get("phase") == "eval"][-4:]
    assert [r["seed"] for r in recs[:2]] == [r["seed"] for r in recs[2:]]  # the same starts, stored as new episodes
    assert len({r["index"] for r in recs}) == 4


def test_whatif_refuses_rerun_overrides_it_would_ignore(run, capsys):
    """`whatif RUN ... rerun.mode=save` exited 0 and wrote nothing (tenth probe)."""
    before = snapshot(run)
    rc, out = _cli(capsys, "whatif", str(run), "--episode", "0", "--step", "2", "rerun.mode=save")
    assert rc == 2 and "whatif writes no Rerun recording, so rerun.mode=save would do nothing" in out, out
    # probe 32: seed=5 was accepted and changed nothing (--seed draws the random candidates)
    rc, out = _cli(capsys, "whatif", str(run), "--episode", "0", "--step", "2", "seed=5")
    assert rc == 2 and "seed=5 would change nothing: whatif draws its random candidates from --seed" in out, out
    assert snapshot(run) == before


def test_whatifs_random_candidates_are_not_a_seed_episodes_actions(run):
    """Probe 32: `whatif RUN --random 3` showed random[0] equal to the recorded actions of episode 0 (a random seed
    episode drawn from the same default_rng(0))."""
    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.whatif import candidates

    ep = EpisodeDataset(run / "episodes")[0]
    assert ep.meta["policy"] == "random"
    names, seqs = candidates(ep.action[:5], np.array([-1.0]), np.array([1.0]), random=3, seed=0)
    for name, seq in zip(names, seqs):
        if name.startswith("random"):
            assert not np.allclose(seq, ep.action[:5]), name


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_training_cannot_drop_the_value_one_off(run, tmp_path, capsys, command):
    """`train RUN value.enabled=false` wrote a round without the value; the next plain train wrote one with a new
    value trained 0 updates, and eval reported the learned planner without it (tenth probe)."""
    before = snapshot(run)
    extra = ["--data", str(tmp_path)] if command == "finetune" else []
    rc, out = _cli(capsys, command, str(run), *extra, "--no-progress", "value.enabled=false")
    assert rc == 2 and "value.enabled (the run has True, got False)" in out and "--planner pets" in out, out
    assert snapshot(run) == before


def test_export_takes_only_overrides_that_change_the_planner(run, tmp_path, capsys):
    """env.randomize.* and eval_episodes were listed in the file's metadata though neither can change the planner
    (probe of 2026-11-26)."""
    rc, out = _cli(capsys, "export", str(run), "--out", str(tmp_path / "x.onnx"), "env.randomize.mass=[2.0, 2.0]",
                   "eval_episodes=9")
    assert rc == 2 and "an export takes only planner.*, goal.* and value.enabled overrides" in out, out
    assert not (tmp_path / "x.onnx").exists()
    assert _cli(capsys, "export", str(run), "--out", str(tmp_path / "y.onnx"), "planner.samples=48")[0] == 0
    # probe 21 (EXP-D1): a planner override on a dynamics export did nothing, and was named in the file
    rc, out = _cli(capsys, "export", str(run), "--what", "dynamics", "--out", str(tmp_path / "d.onnx"), "planner.delay=1")
    assert rc == 2 and "--what dynamics exports the world model alone" in out and not (tmp_path / "d.onnx").exists()


@pytest.mark.parametrize("args", [
    ["eval", "{run}", "--episodes", "1", "planner.explore_noise=10"],
    ["whatif", "{run}", "planner.explore_weight=100"],
    ["train", "{run}", "seed_noise_beta=1"],
    ["export", "{run}", "--out", "{tmp}/p.onnx", "planner.explore_noise=10"],
])
def test_training_only_overrides_are_refused_where_no_training_episode_is_collected(run, tmp_path, capsys, args):
    """`eval ... planner.explore_noise=10` and `export ... planner.explore_noise=10` were accepted, did nothing and
    were recorded as applied (probe 11)."""
    before = snapshot(run)
    assert main([a.format(run=run, tmp=tmp_path) for a in args] + ["--no-progress"] * (args[0] == "eval")) == 2
    err = capsys.readouterr().err
    assert "training episodes only" in err or "training-only planner.explore_" in err, err
    assert snapshot(run) == before and not (tmp_path / "p.onnx").exists()


def test_an_acting_only_override_is_refused_where_only_training_episodes_are_collected(run, capsys):
    """planner.value_pessimism acts in evaluation, export and deploy; training episodes plan with the heads' mean, so
    `collect RUN planner.value_pessimism=2` would be recorded as applied and do nothing."""
    before = snapshot(run)
    rc, out = _cli(capsys, "collect", str(run), "--episodes", "1", "--no-progress", "planner.value_pessimism=2")
    assert rc == 2 and "planner.value_pessimism (the run has 0.0, got 2.0)" in out, out
    assert "evaluation, export and deployment only" in out, out
    assert snapshot(run) == before


@pytest.mark.parametrize("args", [
    ["eval", "{run}", "--episodes", "1", "--no-progress", "--planner", "pets"],
    ["eval", "{run}", "--episodes", "1", "--no-progress", "--planner", "oracle"],
    ["eval", "{run}", "--episodes", "1", "--no-progress", "goal.joints={{slider=0.5}}"],
    ["eval", "{run}", "--episodes", "1", "--no-progress", "--planner", "oracle-value", "goal.joints={{slider=0.5}}"],
    ["export", "{run}", "--out", "{tmp}/p.onnx", "value.enabled=false"],
])
def test_value_pessimism_is_refused_where_the_planner_adds_no_value(run, tmp_path, capsys, args):
    """`eval --planner pets planner.value_pessimism=1` (or oracle, or a goal alone) exited 0 and recorded the override
    as applied: the planner had no value to be pessimistic about (probe 24)."""
    before = snapshot(run)
    rc, out = _cli(capsys, *[a.format(run=run, tmp=tmp_path) for a in args], "planner.value_pessimism=1")
    assert rc == 2 and "planner.value_pessimism" in out and "would change nothing" in out, out
    assert snapshot(run) == before and not (tmp_path / "p.onnx").exists()
    if args[0] == "eval" and "pets" in args:  # the same as a section's inline table (review), and the learned planner
        rc, out = _cli(capsys, *[a.format(run=run, tmp=tmp_path) for a in args], "planner={value_pessimism=1}")
        assert rc == 2 and "would change nothing" in out, out
        assert _cli(capsys, "eval", str(run), "--episodes", "1", "--no-progress", "planner.value_pessimism=1")[0] == 0


def test_the_value_guard_is_refused_where_it_would_change_nothing(run, tmp_path, capsys):
    """planner.value_guard acts on the learned value while acting: a planner without one, an export without one and
    a command collecting training episodes refuse it."""
    before = snapshot(run)
    for args in (["eval", str(run), "--episodes", "1", "--no-progress", "--planner", "pets", "planner.value_guard=0.4"],
                 ["eval", str(run), "--episodes", "1", "--no-progress", "--planner", "oracle-value",
                  "planner.value_guard=0.4"],  # never guarded: it was recorded as applied (review)
                 ["export", str(run), "--out", str(tmp_path / "p.onnx"), "value.enabled=false",
                  "planner.value_guard=0.4", "planner.value_guard_window=5"]):
        rc, out = _cli(capsys, *args)
        assert rc == 2 and "planner.value_guard" in out and "would change nothing" in out, out
    assert "planner.value_guard_window" in out, out
    rc, out = _cli(capsys, "collect", str(run), "--episodes", "1", "--no-progress", "planner.value_guard=0.4")
    assert rc == 2 and "evaluation, export and deployment only" in out, out
    assert snapshot(run) == before and not (tmp_path / "p.onnx").exists()


def test_a_name_holding_escape_sequences_is_shown_not_obeyed(run, tmp_path, capsys):
    """`wrote ...` lines of export, finetune, deploy and dream printed a run, --out or --record name raw: ESC ] 0;
    set the terminal's title and ESC [31m its colour (probe 11)."""
    out = tmp_path / "\x1b]0;PWNED\x07\x1b[31m.onnx"
    assert main(["export", str(run), "--what", "dynamics", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.exists() and "\x1b" not in printed and "\x07" not in printed and "\\x1b]0;PWNED\\x07" in printed


@pytest.fixture(scope="module")
def run_without_value(tmp_path_factory) -> Path:
    from test_export import make_run_dir

    return make_run_dir(tmp_path_factory.mktemp("novalue") / "run", ["value.enabled=false"])


@pytest.mark.parametrize("args", [["eval", "{run}", "--episodes", "1", "value.enabled=true"],
                                  ["export", "{run}", "--out", "{tmp}/p.onnx", "value.enabled=true"],
                                  ["train", "{run}", "value.enabled=true"]])
def test_a_value_cannot_be_added_one_off(run_without_value, tmp_path, capsys, args):
    """Probe 14: eval and export planned without a value yet recorded value.enabled=true as applied; train refused
    with the message for dropping a value (advising `export RUN value.enabled=false`)."""
    run = run_without_value
    before = snapshot(run)
    rc, out = _cli(capsys, *[a.format(run=run, tmp=tmp_path) for a in args], *([] if "export" in args else
                                                                               ["--no-progress"]))
    assert rc == 2 and ("cannot add a value to the run" in out or "holds no value" in out), out
    assert "trained without one" in out, out
    assert snapshot(run) == before and not (tmp_path / "p.onnx").exists()


def test_finetune_value_on_a_run_without_one_is_refused(run_without_value, tmp_path, capsys):
    """Probe 14: `finetune RUN --data DIR --value` on a run without a value fine-tuned the world model only, exit 0,
    and nothing said --value was ignored."""
    from test_finetune import _record

    data = _record(tmp_path / "rec", episodes=1, steps=80)
    before = snapshot(run_without_value)
    rc, out = _cli(capsys, "finetune", str(run_without_value), "--data", str(data), "--value", "--no-progress")
    assert rc == 2 and "--value: the run" in out and "has no value and policy to fine-tune" in out, out
    assert snapshot(run_without_value) == before


def test_planner_delay_only_where_a_plan_meets_a_delayed_robot(tmp_path, capsys):
    """Probe 16: `run planner.delay=2` trained around a delay its simulator does not have; `whatif planner.delay=3`
    and `eval --planner random planner.delay=2` were taken and changed nothing."""
    from test_export import make_run_dir

    from robot_wm.cli import main

    run = make_run_dir(tmp_path / "run")
    for args in (["run", f"run_dir={tmp_path / 'new'}", "planner.delay=2", "env_steps=100"],
                 ["collect", str(tmp_path / "new2"), "--policy", "random", "planner.delay=1"],
                 ["whatif", str(run), "--episode", "0", "--step", "1", "planner.delay=3"],
                 ["eval", str(run), "--planner", "random", "--episodes", "1", "planner.delay=2"],
                 ["train", str(run), "planner.delay=1"]):
        assert main(args) == 2, args
        assert "planner.delay=" in capsys.readouterr().err
    assert not (tmp_path / "new").exists() and not (tmp_path / "new2").exists()
    with pytest.raises(SystemExit):  # probe 16: a second --shift replaced the first without a word
        main(["eval", str(run), "--shift", "delay-1", "--shift", "nominal"])
    assert "argument --shift: given twice ('delay-1', then 'nominal')" in capsys.readouterr().err


@pytest.mark.parametrize("args", [
    ["finetune", "RUN", "--data", "a", "--data", "b"], ["finetune", "RUN", "--data", "a", "--weight", "2", "--weight", "3"],
    ["export", "RUN", "--out", "a.onnx", "--out", "b.onnx"], ["dream", "RUN", "--out", "a.mp4", "--out", "b.mp4"],
    ["dream", "RUN", "--data", "a", "--data", "b"], ["drive", "RUN", "--rrd", "a.rrd", "--rrd", "b.rrd"],
    ["whatif", "RUN", "--data", "a", "--data", "b"]])
def test_a_path_or_weight_given_twice_is_refused(args, capsys):
    """Probe 21 (FT-A2): `finetune RUN --data A --data B` imported B alone, A dropped without a word."""
    from robot_wm.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    flag = args[-2]
    assert e.value.code == 2 and f"argument {flag}: given twice" in capsys.readouterr().err


@pytest.mark.parametrize("override", ["env.randomize.mass=[3,3]", "env.randomize.obs_noise=5", "env.action_repeat=4",
                                      "planner.value_guard=0.4", "planner.value_guard_window=5",
                                      "planner={value_guard=0.4}"])
def test_whatif_refuses_robot_settings_it_cannot_use(run, capsys, override):
    """Probe 21 (WA-O1, WA-O2): `whatif RUN 'env.randomize.mass=[3,3]'` printed a table byte-identical to the one
    without it; `env.action_repeat=4` was refused blaming the episode files. Probe 25: the value guard's settings too."""
    rc, out = _cli(capsys, "whatif", str(run), "--episode", "0", "--step", "1", override)
    assert rc == 2 and f"so {override} would change nothing" in out and "episode file" not in out, out


@pytest.mark.parametrize("args, needle", [
    (["finetune", "{run}", "--data", "{run}", "env_steps=99999"], "cannot change env_steps"),
    (["train", "{run}", "eval_at=[100]"], "cannot change eval_at"),
    (["eval", "{run}", "--episodes", "1", "value.lr=0.5"], "`eval` trains nothing"),
    (["eval", "{run}", "--episodes", "1", "model.max_epochs=3"], "`eval` trains nothing"),
    (["collect", "{run}", "--policy", "random", "model.lr=0.5"], "`collect` trains nothing"),
    (["whatif", "{run}", "--episode", "0", "value.tau=0.5"], "`whatif` trains nothing")])
def test_an_override_the_command_never_reads_is_refused(tmp_path, capsys, args, needle):
    """Probe 22: `finetune RUN --data D env_steps=99999`, `eval RUN value.lr=0.5` and `collect RUN model.lr=0.5` were
    taken and recorded as the command's overrides, and changed nothing."""
    from test_export import make_run_dir

    from robot_wm.cli import main
    from robot_wm.run_dir import RunDir

    run = make_run_dir(tmp_path / "run")
    before = (len(RunDir(run).dataset()), len(RunDir(run).records()))
    assert main([a.replace("{run}", str(run)) for a in args]) == 2
    assert needle in capsys.readouterr().err
    assert (len(RunDir(run).dataset()), len(RunDir(run).records())) == before


@pytest.mark.parametrize("args", [["whatif", "RUN", "--episode", "0", "--episode", "1"],
                                  ["drive", "RUN", "--serve", "127.0.0.1:9990", "--serve", "127.0.0.1:9991"],
                                  ["deploy", "p.onnx", "--rate", "5", "--rate", "6"],
                                  ["sweep", "s.toml", "--cpus", "1", "--cpus", "2"]])
def test_every_flag_that_takes_a_value_is_given_once(args, capsys):
    """Probe 22: a repeated `whatif --episode` or `drive --serve` took the last without a word, where `--shift` and
    `--data` given twice were refused."""
    from robot_wm.cli import main

    with pytest.raises(SystemExit):
        main(args)
    assert f"argument {args[-2]}: given twice" in capsys.readouterr().err


def test_a_milestone_or_seed_episodes_past_the_budget_are_said(tmp_path, capsys, caplog):
    """Probe 22: `run env_steps=400 eval_at=[100000]` dropped the milestone without a word, and `seed_episodes=5`
    collected the 2 random episodes that fit and no learned one."""
    import logging

    with caplog.at_level(logging.WARNING, logger="robot_wm"):
        rc, out = _cli(capsys, "run", f"run_dir={tmp_path / 'r'}", *TINY_RUN_ARGS, "eval_at=[100000]", "seed_episodes=5",
                       "--no-progress")
    assert rc == 0, out
    assert "eval_at [100000] lies past env_steps=400: never reached" in caplog.text
    assert "seed_episodes=5 random episodes of 200 steps fill env_steps=400: only 2 are collected" in caplog.text


def test_a_milestone_within_the_last_episode_is_said_and_a_resumed_runs_wall_clock_counts_every_session(
        tmp_path, capsys, caplog):
    """Probe 31: `eval_at=[300]` with 200-step episodes and env_steps=400 was dropped without a word (reached
    within the last episode); a resumed run's wall_s counted its last session only."""
    import logging

    run = tmp_path / "r"
    with caplog.at_level(logging.WARNING, logger="robot_wm"):
        rc, out = _cli(capsys, "run", f"run_dir={run}", *TINY_RUN_ARGS, "eval_at=[300]", "--no-progress")
    assert rc == 0, out
    assert "eval_at [300] was reached within the last training episode" in caplog.text
    # an earlier session of 1000 s, as a killed run leaves it in its manifest
    manifest = json.loads((run / "manifest.json").read_text())
    assert 0 < manifest["wall_s"] < 1000
    (run / "summary.json").unlink()
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": "running", "wall_s": 1000.0}))
    rc, out = _cli(capsys, "run", f"run_dir={run}", "--resume", "--no-progress")
    assert rc == 0, out
    assert json.loads((run / "summary.json").read_text())["wall_s"] >= 1000.0
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": "running", "wall_s": "abc"}))
    (run / "summary.json").unlink()
    rc, out = _cli(capsys, "run", f"run_dir={run}", "--resume", "--no-progress")
    assert rc == 2 and "wall_s = \"abc\" is not a number of seconds" in out, out


@pytest.mark.parametrize("flags", [["--rerun-address", "127.0.0.1:9999"], ["--rerun", "save", "--rerun-address",
                                                                          "0.0.0.0:9999"], ["rerun.address=0.0.0.0:9998"]])
def test_an_address_without_a_socket_to_use_it_is_refused(run, capsys, flags):
    """Probe 22: `eval RUN --rerun-address 127.0.0.1:9999` without --rerun serve was ignored without a word: nothing
    listened, and a user waiting for a live view got none."""
    before = snapshot(run)
    rc, out = _cli(capsys, "eval", str(run), "--planner", "random", "--episodes", "1", "--no-progress", *flags)
    assert rc == 2 and "nothing would use it: add --rerun serve (or spawn)" in out, out
    assert snapshot(run) == before


@pytest.mark.parametrize("flags", [[], ["--rerun", "serve"]])
def test_a_recording_path_without_save_to_use_it_is_refused(run, tmp_path, capsys, flags):
    """Probe 29: `eval RUN rerun.path=new.rrd` without --rerun save recorded nothing, exit 0, no word."""
    before = snapshot(run)
    rc, out = _cli(capsys, "eval", str(run), "--planner", "random", "--episodes", "1", "--no-progress",
                   f"rerun.path={tmp_path / 'new.rrd'}", *flags)
    assert rc == 2 and "is the file --rerun save writes" in out and "add --rerun save" in out, out
    assert snapshot(run) == before


def test_a_goal_run_planning_without_its_value_resumes_its_final_evaluation(tmp_path, capsys):
    """Review of session 20: the check that the manifest's final-evaluation episodes are the run's own planner's took
    "learned" for every run with a value, but a run toward a goal alone plans without it ("pets"): such a run could
    never be resumed after its final evaluation began."""
    run = tmp_path / "goal"
    rc, out = _cli(capsys, "run", f"run_dir={run}", *TINY_RUN_ARGS, "goal.joints={slider=0.5}", "--no-progress")
    assert rc == 0, out
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["final_eval_episodes"] and EpisodeDataset(run / "eval")[0].meta["policy"] == "pets"
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))  # killed before it completed
    (run / "summary.json").unlink()
    rc, out = _cli(capsys, "run", f"run_dir={run}", "--resume", "--no-progress")
    assert rc == 0 and (run / "summary.json").exists(), out


def test_planner_settings_with_random_actions_are_refused(run, capsys):
    """Probe 23: `eval --planner random planner.samples=64` and `collect --policy random planner.iterations=5` were
    taken and recorded with every episode, and changed nothing."""
    before = snapshot(run)
    for args in (["eval", str(run), "--planner", "random", "--episodes", "1", "planner.samples=64"],
                 ["collect", str(run), "--policy", "random", "--episodes", "1", "planner.iterations=5"]):
        rc, out = _cli(capsys, *args, "--no-progress")
        assert rc == 2 and "random actions plan nothing" in out and args[-1].split("=")[0] in out, out
    assert snapshot(run) == before
    rc, out = _cli(capsys, "eval", str(run), "--planner", "random", "--episodes", "1", "--no-progress")
    assert rc == 0, out
