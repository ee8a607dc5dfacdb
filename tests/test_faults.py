"""Fault injection: a real ``robot-wm run`` killed with SIGKILL at several points and resumed; damaged,
truncated, foreign and hand-made files; bad launch files; NaN sensors, non-finite model output,
diverging physics and a planner overrunning its deadline.

"Nothing lost" is checked with hashes: every file that existed before a fault is byte-identical after
it (or, for kills, every complete episode is kept unchanged by the resumed run).

The helpers at the top are shared with ``bench/fault_report.py`` (which counts the same faults).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robot_wm.io import atomic_write, leftover_temp_files

os.environ.setdefault("MUJOCO_GL", "egl")

# A tiny but complete run: 8 short cartpole episodes (one random, seven planned, a training round
# before each), a final training round and one evaluation episode.
TINY = ["env.task=cartpole-swingup", "env.max_env_steps=200", "env_steps=1600", "seed_episodes=1",
        "eval_episodes=1", "planner.samples=32", "planner.elites=4", "planner.keep_elites=1",
        "model.max_epochs=5", "model.hidden=32", "value.hidden=32", "value.batch_size=64", "planner.horizon=6",
        "threads=1"]
EPISODE = re.compile(r"^episode_\d{6}\.npz$")


# --- helpers -------------------------------------------------------------------------------------
def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path -> hash), except a run's lock file ``.lock``: a
    writer's PID line lives there only while it holds the lock (a command refused after taking the lock
    leaves it empty again, or creates the empty file)."""
    root = Path(root)
    return {str(p.relative_to(root)): sha(p) for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


HOLDER = """
import sys, time
from robot_wm.run_dir import RunDir
lock = RunDir(sys.argv[1]).lock("robot-wm fake-holder " + sys.argv[1])
print("locked", flush=True)
time.sleep(600)
"""


def hold_lock(run_dir: Path) -> subprocess.Popen:
    """Another real process that takes ``run_dir``'s writer lock and keeps it (until killed)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "MUJOCO_GL": "egl"})
    line = proc.stdout.readline()
    if line.strip() != "locked":
        proc.kill()
        raise RuntimeError(f"the lock holder did not start: {line!r}")
    return proc


def episode_hashes(run: Path) -> dict[str, str]:
    """Every complete-named episode file of a run (train and eval) -> hash."""
    out = {}
    for sub in ("episodes", "eval"):
        d = Path(run) / sub
        if d.is_dir():
            out.update({f"{sub}/{p.name}": sha(p) for p in sorted(d.iterdir()) if EPISODE.match(p.name)})
    return out


def run_cmd(run_dir: Path, resume: bool = False, extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "robot_wm.cli", "run", f"run_dir={run_dir}", *TINY, *extra, "--no-progress",
            *(["--resume"] if resume else [])]


def start_run(run_dir: Path, resume: bool = False) -> subprocess.Popen:
    log = open(Path(run_dir).parent / f"{Path(run_dir).name}.log", "ab")
    env = {**os.environ, "MUJOCO_GL": "egl", "PYTHONUNBUFFERED": "1"}
    # Ctrl-C as a terminal delivers it: a test suite started in the background (`cmd &` without job control)
    # inherits SIGINT ignored, and Python then keeps ignoring it in the run (which finished with exit 0)
    return subprocess.Popen(run_cmd(run_dir, resume), stdout=log, stderr=subprocess.STDOUT, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def kill_when(proc: subprocess.Popen, predicate, timeout: float = 150.0, poll: float = 0.003) -> bool:
    """SIGKILL ``proc`` as soon as ``predicate()`` holds. False if it finished first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            hit = predicate()
        except (OSError, ValueError):  # a file vanished or is mid-write between two looks
            hit = False
        if hit:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(poll)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    raise TimeoutError("kill point never reached")


def _names(d: Path) -> list[str]:
    return os.listdir(d) if d.is_dir() else []


def kill_points(run: Path):
    """(name, factory) pairs; a factory, called when the process starts, returns the kill predicate
    relative to what is on disk at that moment."""
    ep, ck = run / "episodes", run / "checkpoints"

    def n_episodes():
        return sum(1 for n in _names(ep) if EPISODE.match(n))

    def n_weights():
        return sum(1 for n in _names(ck) if n.endswith(".safetensors"))

    def train_records():
        m = run / "metrics.jsonl"
        return m.read_text().count('"kind": "train"') if m.exists() else 0

    def during_training():  # training round k starts right after episode k is stored
        start = max(n_episodes(), 1)
        return lambda: n_episodes() > start

    def new_temp(d: Path):  # a temp file that was not there when the process started
        old = {n for n in _names(d) if n.endswith(".tmp")}
        return lambda: any(n.endswith(".tmp") and n not in old for n in _names(d))

    def checkpoint_write():  # a checkpoint's temp file (or new weights without their JSON yet)
        start, temp = n_weights(), new_temp(ck)
        return lambda: temp() or n_weights() > start

    def episode_write():
        start, temp = n_episodes(), new_temp(ep)
        return lambda: temp() or n_episodes() > start

    def after_train_record():
        start = train_records()
        return lambda: train_records() > start

    def final_eval():
        return lambda: "final_eval_from" in json.loads((run / "manifest.json").read_text())

    return [("during training (new episode stored -> next round)", during_training),
            ("during a checkpoint write", checkpoint_write),
            ("during collection / an episode write", episode_write),
            ("right after a training round is logged", after_train_record),
            ("during the final evaluation", final_eval)]


def check_consistent(run: Path) -> None:
    """What a killed run leaves is readable: every episode file loads, the latest checkpoint (if any)
    loads, the manifest parses. A partial file is never taken for a complete one."""
    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.model.checkpoint import load_checkpoint
    from robot_wm.run_dir import RunDir

    r = RunDir(run)
    EpisodeDataset(run / "episodes")
    EpisodeDataset(run / "eval")
    if (ckpt := r.latest_checkpoint()) is not None:
        load_checkpoint(ckpt)
    r.manifest()


def kill_resume_chain(run: Path, points=None, report=None) -> dict:
    """Run, SIGKILL at each kill point in turn (resuming each time), then resume to completion.
    Returns what happened; raises AssertionError if anything complete was lost."""
    kept: dict[str, str] = {}
    events = []
    proc = start_run(run)
    for name, factory in points or kill_points(run):
        while not (run / "config.toml").exists() and proc.poll() is None:
            time.sleep(0.01)
        killed = kill_when(proc, factory())
        now = episode_hashes(run)
        lost = {k: v for k, v in kept.items() if now.get(k) != v}
        assert not lost, f"after kill '{name}': complete episodes changed or vanished: {sorted(lost)}"
        check_consistent(run)
        kept.update(now)
        temps = [str(p.relative_to(run)) for p in run.rglob("*.tmp")]
        events.append({"point": name, "killed": killed, "episodes": len(now), "temp_files": temps})
        if report:
            report(events[-1])
        if not killed:
            break
        proc = start_run(run, resume=True)
    rc = proc.wait(timeout=300)
    assert rc == 0, (run.parent / f"{run.name}.log").read_text()[-3000:]
    final = episode_hashes(run)
    lost = {k for k, v in kept.items() if final.get(k) != v}
    assert not lost, f"episodes lost or changed by the resumed run: {sorted(lost)}"
    check_consistent(run)
    manifest = json.loads((run / "manifest.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert manifest["status"] == "complete"
    n_train = sum(1 for k in final if k.startswith("episodes/"))
    assert manifest["episodes"] == n_train == summary["episodes"]
    assert summary["env_steps"] >= 1600 and len(summary["eval_returns"]) == 1
    return {"events": events, "kept": len(kept), "final_episodes": len(final)}


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A small real run directory (two episodes, one checkpoint); copy before damaging."""
    from test_export import make_run_dir

    return make_run_dir(tmp_path_factory.mktemp("faults") / "run")


@pytest.fixture
def run_copy(base_run, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(base_run, dst)
    # the copy's config names its own directory
    cfg = (dst / "config.toml").read_text().replace(str(base_run), str(dst))
    (dst / "config.toml").write_text(cfg)
    return dst


@pytest.fixture(scope="module")
def planner_file(base_run) -> Path:
    return export_files(base_run)


def export_files(base_run: Path) -> Path:
    """``planner.onnx`` (noise input) and ``dynamics.onnx`` beside the run; returns the planner."""
    from policies.mpc.step import StepSpec
    from robot_wm.export.onnx_export import export_planner, export_dynamics
    from robot_wm.export.source import control_period, load_source

    src = load_source(base_run)
    meta = {"task": src.cfg.env.task, "action_repeat": src.cfg.env.action_repeat,
            "control_period": repr(control_period(src.cfg)), "source_sha256": src.sha256}
    out = base_run.parent / "planner.onnx"
    export_planner(src.model, StepSpec.from_config(src.cfg.planner), out, noise="input", metadata=meta)
    export_dynamics(src.model, base_run.parent / "dynamics.onnx", meta)
    return out


def cli(*args: str) -> tuple[int, str]:
    """``robot-wm ARGS`` in a subprocess: (exit code, stderr + stdout)."""
    r = subprocess.run([sys.executable, "-m", "robot_wm.cli", *args], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "MUJOCO_GL": "egl"})
    return r.returncode, r.stderr + r.stdout


def main_in_process(capsys, *args: str) -> tuple[int, str]:
    from robot_wm.cli import main

    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.err + out.out


# --- crashes lose nothing ------------------------------------------------------------------------
@pytest.mark.slow
def test_sigkill_at_several_points_then_resume_loses_nothing(tmp_path):
    res = kill_resume_chain(tmp_path / "run")
    killed = [e for e in res["events"] if e["killed"]]
    assert len(killed) >= 3, res["events"]  # the run is short; the last point may come after it ended
    assert res["kept"] >= 2


def test_killed_before_anything_complete_then_resume(tmp_path):
    """Killed while the very first episode is being collected: --resume starts it cleanly."""
    run = tmp_path / "run"
    proc = start_run(run)
    kill_when(proc, lambda: (run / "config.toml").exists())
    assert not episode_hashes(run)
    (run / "episodes").mkdir(parents=True, exist_ok=True)
    (run / "episodes" / ".episode_000000.npz.abc12def.tmp").write_bytes(b"partial")  # as a torn write leaves it
    from robot_wm.data.dataset import EpisodeDataset

    assert len(EpisodeDataset(run / "episodes")) == 0  # the partial file is not an episode
    rc, out = cli(*run_cmd(run, resume=True)[3:])
    assert rc == 0, out
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"


def test_a_run_that_lost_its_config_is_never_given_the_defaults(run_copy, capsys):
    """config.toml deleted from a complete run: --resume wrote the embedded defaults into it and exited 0 (probe 11)."""
    (run_copy / "config.toml").unlink()
    before = snapshot(run_copy)
    for args in (["run", f"run_dir={run_copy}", "--resume"], ["collect", str(run_copy), "--episodes", "1"]):
        rc, out = main_in_process(capsys, *args, "--no-progress")
        assert rc == 2 and "has lost its config.toml but holds episodes" in out, out
    assert snapshot(run_copy) == before


def test_a_damaged_run_config_is_not_called_a_launch_file(run_copy, capsys):
    """Probe 31: `eval RUN` on a run whose config.toml is not TOML said "launch file 'RUN/config.toml' is not valid
    TOML", though no launch file was given."""
    (run_copy / "config.toml").write_text("garbage[\n")
    before = snapshot(run_copy)
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--no-progress")
    assert rc == 2 and f"the run's config {str(run_copy / 'config.toml')!r} is not valid TOML" in out, out
    assert "launch file" not in out and snapshot(run_copy) == before


def test_a_run_that_lost_its_manifest_is_not_rebuilt_without_a_word(run_copy, capsys):
    """manifest.json deleted from a complete run: --resume rebuilt it silently, without the run's id, and did the
    final evaluation again (probe 28)."""
    (run_copy / "manifest.json").unlink()
    before = snapshot(run_copy)
    for args in (["run", f"run_dir={run_copy}", "--resume"], ["collect", str(run_copy), "--episodes", "1"],
                 ["eval", str(run_copy), "--episodes", "1"], ["train", str(run_copy)]):
        rc, out = main_in_process(capsys, *args, "--no-progress")
        assert rc == 2 and "has lost its manifest.json but holds episodes" in out, (args, out)
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("args", [("run", "--resume"), ("train", "model.max_epochs=1"),
                                  ("eval", "--episodes", "1", "--planner", "random")])
def test_a_writer_removes_temp_files_of_unfinished_writes(run_copy, capsys, caplog, args):
    """A writer killed between its temp file and the rename leaves ``.NAME.XXXX.tmp`` behind: the next command that
    takes the run's lock deletes those and nothing else (only `run --resume` did, so a killed `train`'s stayed:
    probe 39). Those in rerun/ and dreams/ stay: commands without the lock write there."""
    stale = [run_copy / "episodes" / ".episode_000009.npz.k2j3x_9q.tmp",
             run_copy / "checkpoints" / ".latest.json.a1b2c3d4.tmp",
             run_copy / "checkpoints" / "model_r0099.safetensors"]  # weights whose JSON never came (probe 15)
    for p in stale:
        p.write_bytes(b"half a write")
    (run_copy / ".mynotes.tmp").write_text("mine")
    (run_copy / "rerun").mkdir(exist_ok=True)
    busy = run_copy / "rerun" / ".whatif.rrd.q8w7e6r5.tmp"
    busy.write_bytes(b"a recording being written")
    episodes = episode_hashes(run_copy)
    command, *rest = args
    rc, out = main_in_process(capsys, command, *([f"run_dir={run_copy}"] if command == "run" else [str(run_copy)]),
                              *rest, "--no-progress")
    assert rc == 0, out
    assert not any(p.exists() for p in stale) and "removed 3 unfinished temp file(s)" in caplog.text, out
    assert (run_copy / ".mynotes.tmp").read_text() == "mine"  # a user's own hidden file (deleted: probe 29)
    assert busy.exists()
    after = episode_hashes(run_copy)
    assert {k: after.get(k) for k in episodes} == episodes  # every finished episode kept as it was


def test_run_without_resume_refuses_to_overwrite(run_copy, capsys):
    before = snapshot(run_copy)
    rc, out = main_in_process(capsys, "run", f"run_dir={run_copy}", *TINY, "--no-progress")
    assert rc == 2 and "--resume" in out and str(run_copy) in out
    assert snapshot(run_copy) == before


def test_torn_metrics_line_loses_only_itself(tmp_path):
    from robot_wm.io import append_jsonl, read_jsonl

    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, {"a": 1})
    with open(path, "a") as f:
        f.write('{"kind": "episo')  # killed mid-write
    append_jsonl(path, {"b": 2})
    assert read_jsonl(path) == [{"a": 1}, {"b": 2}]


def test_a_byte_order_mark_before_the_runs_records_is_read_past(run_copy, capsys):
    """Probe 34: metrics.jsonl saved by an editor as 'UTF-8 with BOM': its first record was "not JSON", and train
    then refused the episode it records ("no record ... restore metrics.jsonl")."""
    path = run_copy / "metrics.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    rc, out = main_in_process(capsys, "whatif", str(run_copy))
    assert rc == 0 and "not JSON" not in out and "no record" not in out, out
    rc, out = main_in_process(capsys, "train", str(run_copy), "--no-progress")
    assert rc == 0 and "no record" not in out, out


# --- damaged and hostile files -------------------------------------------------------------------
def damage_bytes(path: Path, how: str) -> None:
    blob = path.read_bytes()
    if how == "truncate":
        path.write_bytes(blob[: len(blob) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "flip":
        i = len(blob) * 2 // 3
        path.write_bytes(blob[:i] + bytes([blob[i] ^ 0xFF]) + blob[i + 1:])
    elif how == "garbage":
        path.write_bytes(os.urandom(len(blob)))
    else:
        raise ValueError(how)


CHECKPOINT_DAMAGE = ["weights-truncate", "weights-flip", "weights-empty", "weights-missing", "json-garbage",
                     "json-no-weights", "json-bad-elites", "json-repeated-elites", "json-value-scale", "foreign-model", "huge-spec", "json-of-another-round",
                     "json-one-value-changed", "json-100000-elites", "weights-sparse-giant"]


def damage_checkpoint(run: Path, how: str) -> Path:
    """Damage the run's latest checkpoint; returns the JSON path."""
    import torch

    from robot_wm.model.checkpoint import save_checkpoint, sealed
    from robot_wm.run_dir import RunDir
    from robot_wm.train import new_model
    from robot_wm.config import ModelConfig

    js = RunDir(run).latest_checkpoint()
    st = js.with_suffix(".safetensors")
    meta = json.loads(js.read_text())
    if how.startswith("weights-"):
        if how == "weights-missing":
            st.unlink()
        elif how == "weights-sparse-giant":  # a sparse 7 GiB file was read whole to find its hash wrong (probe 34)
            with open(st, "r+b") as f:
                f.truncate(64 << 20)
        else:
            damage_bytes(st, how.split("-")[1])
    elif how == "json-garbage":
        damage_bytes(js, "garbage")
    elif how == "json-no-weights":  # hand-made JSONs below carry a matching config hash: the later checks refuse them
        js.write_text(json.dumps(sealed({"format": meta["format"]})))
    elif how == "json-bad-elites":
        js.write_text(json.dumps(sealed({**meta, "elites": [99]})))
    elif how == "json-value-scale":  # a value clipped to 1e30 planned a third worse, re-sealed (probe 24)
        js.write_text(json.dumps(sealed({**meta, "value_spec": {**meta["value_spec"], "value_scale": 1e30}})))
    elif how == "json-repeated-elites":  # one member planned with four times (probe 24)
        js.write_text(json.dumps(sealed({**meta, "elites": [meta["elites"][0]] * len(meta["elites"])})))
    elif how == "json-100000-elites":  # refused, but the message printed the whole list: 300 KB (probe 31)
        js.write_text(json.dumps(sealed({**meta, "elites": [0] * 100_000})))
    elif how == "foreign-model":  # another model's weights, with a hash that matches them
        torch.manual_seed(1)
        other = new_model(3, 2, np.full(2, -1.0), np.ones(2), ModelConfig(hidden=8, ensemble_size=2, elites=1))
        o = save_checkpoint(other, run.parent / "foreign", [0])
        shutil.copy(o.with_suffix(".safetensors"), st)
        js.write_text(json.dumps(sealed({**meta, "sha256": json.loads(o.read_text())["sha256"]})))
    elif how == "huge-spec":  # a hand-made spec asking for terabytes, hash intact
        js.write_text(json.dumps(sealed({**meta, "spec": {**meta["spec"], "hidden": 10**7}})))
    elif how == "json-of-another-round":  # evaluated that round's weights while latest.json named this one
        js.write_text(json.dumps(sealed({**meta, "round": meta["round"] - 1,
                                         "weights": f"model_r{meta['round'] - 1:04d}.safetensors"})))
    elif how == "json-one-value-changed":  # value_scale 159.99 -> 959.99 loaded silently (probe 10)
        js.write_text(js.read_text().replace('"value_scale": 1', '"value_scale": 9', 1))
        assert json.loads(js.read_text()) != meta
    else:
        raise ValueError(how)
    return js


@pytest.mark.parametrize("how", CHECKPOINT_DAMAGE)
def test_damaged_checkpoint_clear_error_nothing_changed(run_copy, how, capsys):
    js = damage_checkpoint(run_copy, how)
    before = snapshot(run_copy)
    out_onnx = run_copy.parent / "out.onnx"
    rc, out = main_in_process(capsys, "whatif", str(run_copy))
    assert rc == 2 and "Traceback" not in out and len(out) < 2000, out[:3000]
    assert js.stem in out, out  # the message names the checkpoint
    assert how != "weights-sparse-giant" or "are 67,108,864 bytes, but the model" in out, out
    rc, out = main_in_process(capsys, "export", str(run_copy), "--out", str(out_onnx))
    assert rc == 2 and js.stem in out, out
    assert not out_onnx.exists()
    assert snapshot(run_copy) == before


EPISODE_DAMAGE = ["truncate", "flip", "empty", "garbage", "pickled", "missing-array", "nan", "meta-list",
                  "other-task", "ragged", "broken-link"]


def damage_episode(path: Path, how: str) -> None:
    if how in ("truncate", "flip", "empty", "garbage"):
        damage_bytes(path, how)
        return
    if how == "broken-link":  # "No such file or directory" for a file `ls` shows (probe 32)
        path.unlink()
        path.symlink_to(path.parent / "missing.npz")
        return
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    if how == "pickled":
        arrays["obs"] = np.array([{"__reduce__": "os.system"}], dtype=object)
        np.savez(path, allow_pickle=True, **arrays)
        return
    if how == "missing-array":
        arrays.pop("reward")
    elif how == "nan":
        arrays["obs"][3, 0] = np.nan
    elif how == "meta-list":
        arrays["meta"] = np.array("[1, 2]")
    elif how == "other-task":
        arrays["obs"] = np.zeros((len(arrays["obs"]), 17), np.float32)
    elif how == "ragged":
        arrays["reward"] = arrays["reward"][:-1]
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("how", EPISODE_DAMAGE)
def test_damaged_episode_clear_error_nothing_changed(run_copy, how, capsys):
    ep = run_copy / "episodes" / "episode_000001.npz"
    damage_episode(ep, how)
    before = snapshot(run_copy)
    rc, out = main_in_process(capsys, "run", f"run_dir={run_copy}", "--resume", "--no-progress")
    assert rc == 2 and "Traceback" not in out, out
    assert "episode_000001.npz" in out, out
    assert how != "broken-link" or "is a symbolic link to" in out and "that leads nowhere" in out, out
    assert snapshot(run_copy) == before


ONNX_DAMAGE = ["truncate", "flip", "empty", "garbage", "dynamics-model", "no-metadata", "external-data",
               "other-robot", "directory", "huge-declared-sizes", "edited-metadata", "hash-removed", "guard-claimed",
               "loop-node", "long-doc-string", "loop-in-function", "huge-metadata",
               "huge-constant", "sparse-initializer", "string-initializer", "matmul-chain", "determinant",
               "external-constant", "forged-shapes-constant", "forged-shapes-chain", "lrn-scratch", "einsum-three",
               "einsum-spaces", "many-nodes", "many-nodes-forged-iterations", "sparse-not-a-planner",
               "layernorm-axis", "ir-version-99", "duplicate-key"]


def rehash_metadata(model) -> None:
    """Recompute an ONNX planner's metadata hash after an edit (a deliberate edit, made to reach the checks
    behind the hash)."""
    from robot_wm.export.format import META_HASH_KEY, metadata_sha256

    props = {p.key: p for p in model.metadata_props}
    if META_HASH_KEY in props:
        props[META_HASH_KEY].value = metadata_sha256({k: p.value for k, p in props.items()})


def edit_metadata(src: Path, dst: Path, edits: dict[str, str], rehash: bool = True) -> Path:
    """A copy of planner ``src`` with metadata entries replaced (None: removed)."""
    import onnx

    m = onnx.load(str(src))
    props = [(p.key, edits.get(p.key, p.value)) for p in m.metadata_props]
    del m.metadata_props[:]
    for key, value in props:
        if value is not None:
            m.metadata_props.add(key=key, value=value)
    if rehash:
        rehash_metadata(m)
    onnx.save(m, str(dst))
    return dst


def damage_onnx(src: Path, dst: Path, how: str) -> Path:
    import onnx

    if how in ("truncate", "flip", "empty", "garbage"):
        shutil.copy(src, dst)
        damage_bytes(dst, how)
    elif how == "dynamics-model":
        shutil.copy(src.parent / "dynamics.onnx", dst)
    elif how == "no-metadata":
        m = onnx.load(str(src))
        del m.metadata_props[:]
        onnx.save(m, str(dst))
    elif how == "external-data":
        onnx.save_model(onnx.load(str(src)), str(dst), save_as_external_data=True, all_tensors_to_one_file=True,
                        location="weights.bin", size_threshold=0)
    elif how == "other-robot":  # a valid planner whose metadata names a 7-dim state
        edit_metadata(src, dst, {"state_dim": "7"})
    elif how == "guard-claimed":  # a value guard the graph was not built with (no guard input), re-sealed
        edit_metadata(src, dst, {"value_guard": "1"})
    elif how == "edited-metadata":  # samples 999 for a graph of fewer, the hash left as exported
        edit_metadata(src, dst, {"samples": "999"}, rehash=False)
    elif how == "hash-removed":  # probe 7: the hash key deleted, then the period and repeat edited consistently
        from robot_wm.export.format import META_HASH_KEY

        m = onnx.load(str(src))
        keep = [p for p in m.metadata_props if p.key != META_HASH_KEY]
        del m.metadata_props[:]
        m.metadata_props.extend(keep)
        for p in m.metadata_props:
            p.value = {"control_period": "0.02", "action_repeat": "2"}.get(p.key, p.value)
        onnx.save(m, str(dst))
    elif how == "directory":
        dst.mkdir()
    elif how == "huge-declared-sizes":  # metadata, graph input and hash agree on 2 x 10^9 samples (96 GB of noise)
        from robot_wm.export.format import GRAPH_HASH_KEY, graph_sha256

        m = onnx.load(str(src))
        props = {p.key: p for p in m.metadata_props}
        shape = json.loads(props["noise_shape"].value)
        shape[1] = 2 * 10**9
        props["noise_shape"].value, props["samples"].value = json.dumps(shape), str(shape[1])
        noise = next(i for i in m.graph.input if i.name == "noise")
        noise.type.tensor_type.shape.dim[1].dim_value = shape[1]
        props[GRAPH_HASH_KEY].value = graph_sha256(m.graph)
        rehash_metadata(m)
        onnx.save(m, str(dst))
    elif how == "long-doc-string":  # a field ONNX defines, outside both hashes: 300 MiB took 1.7 GB (probe 32)
        m = onnx.load(str(src))
        m.doc_string = "x" * (2 << 20)
        onnx.save(m, str(dst))
    elif how == "loop-node":  # a Loop of 10^8 trips, hashes recomputed: one step took 86 s, deaf to SIGTERM (probe 31)
        m = onnx.load(str(src))
        add_spin_loop(m, 10**8)
        reseal_graph(m)
        onnx.save(m, str(dst))
    elif how == "loop-in-function":  # the same Loop inside a model-local function the graph calls (probe 34)
        m = onnx.load(str(src))
        add_spin_loop(m, 10**8, in_function=True)
        reseal_graph(m)
        onnx.save(m, str(dst))
    elif how == "huge-constant":  # a ConstantOfShape of 3 x 2^28 floats, hashes recomputed: 3.5 GB (probe 34)
        from onnx import TensorProto, helper

        m = onnx.load(str(src))
        m.graph.initializer.append(helper.make_tensor("big_shape", TensorProto.INT64, [1], [3 << 28]))
        m.graph.node.append(helper.make_node("ConstantOfShape", ["big_shape"], ["big"], name="big",
                                             value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0])))
        m.graph.node.append(helper.make_node("ReduceSum", ["big"], ["big_sum"], keepdims=0))
        m.graph.output.append(helper.make_tensor_value_info("big_sum", TensorProto.FLOAT, []))
        reseal_graph(m)
        onnx.save(m, str(dst))
    elif how == "sparse-initializer":  # 1 value declaring 2^28 floats: 1 GiB densified at load, 4 of them 4.4 GB (35)
        from onnx import TensorProto, helper

        m = onnx.load(str(src))
        values = helper.make_tensor("sp_values", TensorProto.FLOAT, [1], [1.0])
        m.graph.sparse_initializer.append(helper.make_sparse_tensor(
            values, helper.make_tensor("sp_indices", TensorProto.INT64, [1], [0]), [1 << 28]))
        reseal_graph(m)
        onnx.save(m, str(dst))
    elif how == "duplicate-key":  # state_dim given twice, hashes recomputed: the last silently won (probe 42)
        m = onnx.load(str(src))
        m.metadata_props.add(key="state_dim", value="7")
        rehash_metadata(m)
        onnx.save(m, str(dst))
    elif how == "ir-version-99":  # a newer onnx's file: "truncated, corrupted or not ONNX" (probe 40)
        m = onnx.load(str(src))
        m.ir_version = 99
        onnx.save(m, str(dst))
    elif how == "layernorm-axis":  # onnxruntime refuses the graph: "truncated, corrupted or not ONNX" (probe 40)
        from onnx import helper

        m = onnx.load(str(src))
        producer = next(node for node in m.graph.node if "best_return" in node.output)
        producer.output[list(producer.output).index("best_return")] = "best_return_raw"
        m.graph.node.append(helper.make_node("LayerNormalization", ["best_return_raw", "best_return_raw"],
                                             ["best_return"], axis=7))
        reseal_graph(m)
        onnx.save(m, str(dst))
    elif how == "sparse-not-a-planner":  # probe 40: the same, the format key naming another kind of file (re-hashed):
        # the graph bounds were a planner's only, and onnxruntime built it (4.4 GB for 2 GiB) before the format's refusal
        damage_onnx(src, dst, "sparse-initializer")
        m = onnx.load(str(dst))
        m.graph.sparse_initializer[0].dims[0] = 1 << 29
        reseal_graph(m)
        onnx.save(m, str(dst))
        edit_metadata(dst, dst, {"robot_wm.format": "robot-wm/dynamics-onnx/1"})
    elif how == "string-initializer":  # strings: 29 doublings of one made 512 MB from a shape of [1] (probe 35)
        from onnx import TensorProto, helper

        m = onnx.load(str(src))
        m.graph.initializer.append(helper.make_tensor("words", TensorProto.STRING, [1], [b"x"]))
        reseal_graph(m)
        onnx.save(m, str(dst))
    elif how == "determinant":  # Det of a 20,000 x 20,000 draw: 8 x 10^12 operations from 4 x 10^8 values (probe 36)
        from onnx import helper

        m = onnx.load(str(src))
        producer = next(node for node in m.graph.node if "best_return" in node.output)
        producer.output[list(producer.output).index("best_return")] = "best_return_raw"
        m.graph.node.extend([helper.make_node("RandomNormal", [], ["draw"], shape=[200, 200]),
                             helper.make_node("Det", ["draw"], ["det"]),
                             helper.make_node("Add", ["best_return_raw", "det"], ["best_return"])])
        reseal_graph(m)
        onnx.save(m, str(dst))
    elif how == "many-nodes-forged-iterations":  # probe 40: 100,000 more one-value nodes under a cap lifted by
        # iterations=100,000 in the metadata, its planner_spec and noise_shape agreeing (re-hashed): 40 s, 460 MB
        from onnx import helper

        damage_onnx(src, dst, "many-nodes")
        m = onnx.load(str(dst))
        names = ["best_return_raw", *[f"more{i}" for i in range(40_001)]]
        first = next(node for node in m.graph.node if list(node.input) == ["best_return_raw"])
        first.input[0] = names[-1]
        m.graph.node.extend(helper.make_node("Neg", [a], [b]) for a, b in itertools.pairwise(names))
        reseal_graph(m)
        onnx.save(m, str(dst))
        props = {p.key: p.value for p in m.metadata_props}
        spec, noise = json.loads(props["planner_spec"]), json.loads(props["noise_shape"])
        spec["iterations"] = noise[0] = 100_000
        edit_metadata(dst, dst, {"iterations": "100000", "planner_spec": json.dumps(spec, sort_keys=True),
                                 "noise_shape": json.dumps(noise)})
    elif how in ("einsum-spaces", "many-nodes"):  # work the count missed (probe 39): an Einsum "i j,j k->i k" (its
        # spaces paired with the dimensions: 170x undercounted), 60,000 one-value nodes (minutes to build, 3 GB)
        from onnx import TensorProto, helper

        m = onnx.load(str(src))
        producer = next(node for node in m.graph.node if "best_return" in node.output)
        producer.output[list(producer.output).index("best_return")] = "best_return_raw"
        if how == "einsum-spaces":
            m.graph.initializer.append(helper.make_tensor("sq", TensorProto.INT64, [2], [600, 600]))
            nodes = [helper.make_node("Expand", ["best_return_raw", "sq"], ["ein_x"]),
                     helper.make_node("Einsum", ["ein_x", "ein_x"], ["ein_y"], equation="i j,j k->i k"),
                     helper.make_node("ReduceMax", ["ein_y"], ["best_return"], keepdims=0)]
        else:
            names = ["best_return_raw", *[f"neg{i}" for i in range(59_999)], "best_return"]
            nodes = [helper.make_node("Neg", [a], [b]) for a, b in itertools.pairwise(names)]
        m.graph.node.extend(nodes)
        reseal_graph(m)
        onnx.save(m, str(dst))
    elif how in ("lrn-scratch", "einsum-three"):  # work and memory behind small tensors (probe 38): an LRN of size
        # 10^9 on one value (4 GB of scratch), a three-operand Einsum building a [30000, 30000] intermediate
        from onnx import TensorProto, helper

        m = onnx.load(str(src))
        producer = next(node for node in m.graph.node if "best_return" in node.output)
        producer.output[list(producer.output).index("best_return")] = "best_return_raw"
        if how == "lrn-scratch":
            m.graph.initializer.extend([helper.make_tensor("four_d", TensorProto.INT64, [4], [1, 1, 1, 1]),
                                        helper.make_tensor("scalar", TensorProto.INT64, [0], [])])
            nodes = [helper.make_node("Reshape", ["best_return_raw", "four_d"], ["lrn_in"]),
                     helper.make_node("LRN", ["lrn_in"], ["lrn_out"], size=10**9 + 1),
                     helper.make_node("Reshape", ["lrn_out", "scalar"], ["best_return"])]
        else:
            m.graph.initializer.extend([helper.make_tensor("col", TensorProto.INT64, [2], [30000, 1]),
                                        helper.make_tensor("row", TensorProto.INT64, [2], [1, 30000])])
            nodes = [helper.make_node("Expand", ["best_return_raw", "col"], ["ein_a"]),
                     helper.make_node("Expand", ["best_return_raw", "row"], ["ein_b"]),
                     helper.make_node("Einsum", ["ein_a", "ein_b", "ein_a"], ["ein_out"], equation="ij,jk,kl->il"),
                     helper.make_node("ReduceMax", ["ein_out"], ["best_return"], keepdims=0)]
        m.graph.node.extend(nodes)
        reseal_graph(m)
        onnx.save(m, str(dst))
    elif how == "external-constant":  # a Constant node's value in a side file: onnxruntime's own error first (36)
        from onnx import TensorProto, helper

        m = onnx.load(str(src))
        value = helper.make_tensor("side", TensorProto.FLOAT, [1], [0.0])
        value.data_location = TensorProto.EXTERNAL
        value.external_data.add(key="location", value="side.bin")
        del value.float_data[:]
        m.graph.node.append(helper.make_node("Constant", [], ["side_value"], value=value))
        reseal_graph(m)
        onnx.save(m, str(dst))
    elif how in ("forged-shapes-constant", "forged-shapes-chain"):  # the big tensors declared [1] or [1, 1] in the
        # graph's value_info, which shape inference kept: 3 GB deployed, or 4 x 10^11 operations counted as 6 x 10^6
        from onnx import TensorProto, helper  # (probe 37)

        damage_onnx(src, dst, how.replace("forged-shapes-constant", "huge-constant").replace(
            "forged-shapes-chain", "matmul-chain"))
        m = onnx.load(str(dst))
        lies = ["big"] if how == "forged-shapes-constant" else ["chain_x"] + [f"chain_y{i}" for i in range(100)]
        m.graph.value_info.extend(helper.make_tensor_value_info(x, TensorProto.FLOAT, [1] * (1 + (x != "big")))
                                  for x in lies)
        reseal_graph(m)
        onnx.save(m, str(dst))
    elif how == "matmul-chain":  # 100 products of 500 x 500 into best_return (30,000: minutes a step, probe 35)
        m = onnx.load(str(src))
        add_matmul_chain(m, 100)
        reseal_graph(m)
        onnx.save(m, str(dst))
    elif how == "huge-metadata":  # a 2 MiB metadata entry, the metadata hash recomputed: 300 MiB took 1.75 GB (34)
        m = onnx.load(str(src))
        m.metadata_props.add(key="notes", value="x" * (2 << 20))
        rehash_metadata(m)
        onnx.save(m, str(dst))
    else:
        raise ValueError(how)
    return dst


def add_spin_loop(model, trips: int, in_function: bool = False) -> None:
    """Route a planner's ``state`` through a Loop of ``trips`` iterations that pass it on unchanged (a graph
    onnxruntime loads and runs: 10^8 trips take minutes a step); ``in_function``: the Loop inside a model-local
    function (domain ``evil``) that one graph node calls."""
    from onnx import TensorProto, helper

    vi = helper.make_tensor_value_info
    body = helper.make_graph([helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Identity", ["x_in"], ["x_out"])],
                             "body", [vi("i", TensorProto.INT64, []), vi("c_in", TensorProto.BOOL, []),
                                      vi("x_in", TensorProto.FLOAT, None)],
                             [vi("c_out", TensorProto.BOOL, []), vi("x_out", TensorProto.FLOAT, None)])
    for node in model.graph.node:
        node.input[:] = ["state_looped" if x == "state" else x for x in node.input]
    model.graph.initializer.append(helper.make_tensor("trips", TensorProto.INT64, [], [trips]))
    loop = helper.make_node("Loop", ["trips", "", "state"], ["state_looped"], name="spin", body=body)
    if not in_function:
        model.graph.node.insert(0, loop)
        return
    model.functions.append(helper.make_function("evil", "Spin", ["trips", "state"], ["state_looped"], [loop],
                                                [helper.make_opsetid("", 18)]))
    model.opset_import.append(helper.make_opsetid("evil", 1))
    model.graph.node.insert(0, helper.make_node("Spin", ["trips", "state"], ["state_looped"], name="spin_call",
                                                domain="evil"))


def add_matmul_chain(model, n: int, dim: int = 500) -> None:
    """Add ``n`` chained products of ``dim`` x ``dim`` matrices (zeros, from the state) into ``best_return``: work far
    beyond what the metadata declares, every tensor small."""
    from onnx import TensorProto, helper

    g = model.graph
    producer = next(node for node in g.node if "best_return" in node.output)
    producer.output[list(producer.output).index("best_return")] = "best_return_raw"
    g.initializer.extend([helper.make_tensor("chain_shape", TensorProto.INT64, [2], [dim, dim]),
                          helper.make_tensor("chain_zero", TensorProto.FLOAT, [], [0.0])])
    nodes = [helper.make_node("ReduceSum", ["state"], ["chain_s"], keepdims=0),
             helper.make_node("Mul", ["chain_s", "chain_zero"], ["chain_0"]),
             helper.make_node("Expand", ["chain_0", "chain_shape"], ["chain_x"])]
    prev = "chain_x"
    for i in range(n):
        nodes.append(helper.make_node("MatMul", [prev, "chain_x"], [f"chain_y{i}"]))
        prev = f"chain_y{i}"
    nodes += [helper.make_node("ReduceSum", [prev], ["chain_sum"], keepdims=0),
              helper.make_node("Add", ["best_return_raw", "chain_sum"], ["best_return"])]
    g.node.extend(nodes)


def reseal_graph(model) -> None:
    """Recompute a planner's graph and metadata hashes after a deliberate edit of its graph."""
    from robot_wm.export.format import GRAPH_HASH_KEY, graph_sha256

    props = {p.key: p for p in model.metadata_props}
    props[GRAPH_HASH_KEY].value = graph_sha256(model.graph)
    rehash_metadata(model)


@pytest.mark.parametrize("fault", ["reshape", "gather"])
def test_a_planner_that_fails_when_it_runs_is_a_message_at_warm_up(planner_file, tmp_path, capfd, fault):
    """Probe 31: a graph edited to fail at run time (its action reshaped to [3]), hashes recomputed: deploy's
    warm-up ended in onnxruntime's traceback. It names the file and what to do, before any command is sent. Probe 40:
    a `Gather` index beyond its data printed onnxruntime's own error line first, in raw ANSI colour."""
    import onnx
    from onnx import TensorProto, helper

    m = onnx.load(str(planner_file))
    out = next(o for o in m.graph.output if o.name == "action")
    producer = next(n for n in m.graph.node if "action" in n.output)
    producer.output[list(producer.output).index("action")] = "action_raw"
    if fault == "reshape":
        m.graph.initializer.append(helper.make_tensor("bad_shape", TensorProto.INT64, [1], [3]))
        m.graph.node.append(helper.make_node("Reshape", ["action_raw", "bad_shape"], [out.name]))
    else:
        m.graph.initializer.append(helper.make_tensor("far", TensorProto.INT64, [1], [-(2**62)]))
        m.graph.node.append(helper.make_node("Gather", ["action_raw", "far"], [out.name]))
    reseal_graph(m)
    bad = tmp_path / "fails.onnx"
    onnx.save(m, str(bad))
    rc, msg = main_in_process(capfd, "deploy", str(bad), "--episodes", "1")
    assert rc == 2 and "Traceback" not in msg, msg
    assert "fails.onnx' fails when it runs (onnxruntime:" in msg and "export the planner again" in msg, msg
    assert "onnxruntime:, sequential_executor" not in msg and "\x1b[" not in msg, msg  # its own log line (probe 40)


_EINSUM_REFUSED = ("holds a Einsum node (unnamed, not of the form ab,bc->ac)",)
_BIG_CONSTANT = ("its tensor 'big' of shape [805306368] takes 3,221,225,472 bytes",)
ONNX_REFUSALS: dict[str, tuple[str, ...]] = {
    "long-doc-string": ("holds more than 1 MiB outside its graph and metadata (up to field 'doc_string')",),
    "huge-metadata": ("holds more than 1 MiB of metadata",),
    "sparse-initializer": ("holds 1 sparse initializer(s), which a robot-wm planner never has",),
    "string-initializer": ("its tensor 'words' holds strings",),
    "matmul-chain": ("operations a step, more than 4 x the",),
    "determinant": ("holds a Det node",),
    "lrn-scratch": ("holds a LRN node",),
    "einsum-spaces": _EINSUM_REFUSED,
    "einsum-three": _EINSUM_REFUSED,
    "many-nodes": ("nodes, more than 200 for each of the horizon",),
    "many-nodes-forged-iterations": ("nodes, more than the 100,000 any robot-wm planner holds",),
    "duplicate-key": ("its metadata key 'state_dim' appears more than once",),
    "ir-version-99": ("is written in ONNX IR version 99; this onnxruntime (",),
    "layernorm-axis": ("': onnxruntime cannot build its graph ([ONNXRuntimeError]",),
    "sparse-not-a-planner": ("is not a robot-wm planner (metadata robot_wm.format='robot-wm/dynamics-onnx/1'",),
    "external-constant": ("references external data",),
    "huge-constant": _BIG_CONSTANT,
    "forged-shapes-constant": _BIG_CONSTANT,
    "forged-shapes-chain": ("its tensor 'chain_x' of shape [500, 500] takes 1,000,000 bytes",
                            "operations a step, more than 4 x the"),
}
"""The words each kind of damage is refused in (any one of them), where the test asserts more than the file being
named."""


@pytest.mark.parametrize("how", ONNX_DAMAGE)
def test_bad_onnx_file_clear_error_nothing_changed(planner_file, tmp_path, how):
    from robot_wm.runtime.session import ModelFileError, PlannerSession

    bad = damage_onnx(planner_file, tmp_path / "bad.onnx", how)
    before = snapshot(tmp_path)
    with pytest.raises(ModelFileError) as err:
        s = PlannerSession(bad, provider="cpu")
        s.meta.check_robot(5, [-1.0], [1.0])  # deploy checks the file against the robot before any step
    assert "bad.onnx" in str(err.value) or "does not match the robot" in str(err.value)
    if how in ONNX_REFUSALS:
        assert any(words in str(err.value) for words in ONNX_REFUSALS[how]), str(err.value)
    if how == "many-nodes":
        assert "it holds 60,6" in str(err.value), str(err.value)
    if how == "sparse-not-a-planner":  # refused as it is read, before onnxruntime builds it (4.4 GB: probe 40)
        with pytest.raises(ModelFileError, match="is not a robot-wm planner"):
            PlannerSession._read(bad)
    if how in ("loop-node", "loop-in-function"):  # onnxruntime loads that graph (below): the refusal is ours
        assert "holds a Loop node (spin, in its " in str(err.value), str(err.value)
        assert "control flow that a robot-wm planner never has" in str(err.value)
        assert "function evil.Spin" in str(err.value) or how == "loop-node"
        import onnxruntime as ort

        ort.InferenceSession(bad.read_bytes(), providers=["CPUExecutionProvider"])
    assert snapshot(tmp_path) == before


def _slow_planner(planner_file: Path, dst: Path, n: int) -> Path:
    """A chain of ``n`` 500 x 500 products (1.3 ms each here alone, 7 ms under load) with its declared work inflated
    to pass the work bound, hashes recomputed: a graph whose every check passes and whose step lasts."""
    import onnx

    m = onnx.load(str(planner_file))
    add_matmul_chain(m, n)
    reseal_graph(m)
    onnx.save(m, str(dst))
    return edit_metadata(dst, dst, {"model_flops_per_step": str(10**14)})


def test_a_planning_step_that_runs_too_long_is_ended_at_warm_up(planner_file, tmp_path, monkeypatch):
    """Probe 35: a graph whose step lasts minutes (30,000 products, its declared work inflated, hashes recomputed)
    warmed up for 11 minutes. A warm-up step past WARMUP_LIMIT_S is ended between two nodes and the file refused."""
    from robot_wm.runtime import session as session_mod

    slow = _slow_planner(planner_file, tmp_path / "slow.onnx", 2000)
    monkeypatch.setattr(session_mod, "WARMUP_LIMIT_S", 0.5)
    s = session_mod.PlannerSession(slow, provider="cpu")
    t0 = time.monotonic()
    with pytest.raises(session_mod.ModelFileError, match="a planning step ran past 0.5 s at warm-up and was ended"):
        s.warmup()
    assert time.monotonic() - t0 < 5.0
    with pytest.raises(session_mod.StepAbandoned, match="this session takes no other step"):  # its buffers are the
        s.step(np.zeros(s.meta.state_dim, np.float32), s.initial_plan())                      # abandoned run's


def one_long_product(planner_file: Path, dst: Path, dim: int = 5000) -> Path:
    """A planner with one more node, a product of two ``dim`` x ``dim`` tensors, its declared work and memory raised to
    pass the bounds (hashes recomputed): one node that runs for seconds."""
    import onnx

    m = onnx.load(str(planner_file))
    add_matmul_chain(m, 1, dim=dim)
    reseal_graph(m)
    onnx.save(m, str(dst))
    return edit_metadata(dst, dst, {"model_flops_per_step": str(10**14), "planner_memory_bytes": str(10**9)})


def test_one_long_node_is_abandoned_at_warm_up(planner_file, tmp_path, monkeypatch):
    """Probe 41: one product of two 16,384 x 16,384 tensors, its declared work and memory raised to match (hashes
    recomputed): onnxruntime ends a step between two nodes only, so the warm-up's watchdog could not end it, and
    SIGTERM waited 152 s. The step runs in a thread of its own; the wait for it ends at once, the run left to end by
    itself. Here a product of 5,000 x 5,000 tensors on one thread (seconds) and a watchdog of 0.3 s."""
    from robot_wm.runtime import session as session_mod

    long = one_long_product(planner_file, tmp_path / "long.onnx")
    monkeypatch.setattr(session_mod, "WARMUP_LIMIT_S", 0.3)
    s = session_mod.PlannerSession(long, provider="cpu", threads=1)
    t0, before = time.monotonic(), len(session_mod.ABANDONED_RUNS)
    with pytest.raises(session_mod.ModelFileError, match="a planning step ran past 0.3 s at warm-up and was ended"):
        s.warmup()
    assert len(session_mod.ABANDONED_RUNS) == before + 1  # left running: one node, no "between two nodes"
    took, running = time.monotonic() - t0, not session_mod.ABANDONED_RUNS[-1].is_set()
    t1 = time.monotonic()
    assert session_mod.ABANDONED_RUNS[-1].wait(120)  # the node's run ends by itself
    assert running and took < 0.3 + (time.monotonic() - t1), (took, time.monotonic() - t1)


def test_sigterm_ends_a_planning_step_onnxruntime_is_running(planner_file, tmp_path):
    """Probe 35: SIGTERM to deploy while onnxruntime ran a long step went unheard until the step returned (Python runs
    handlers between bytecodes): still running 30 s later. The signal ends the step; deploy stops as usual."""
    slow = _slow_planner(planner_file, tmp_path / "slow.onnx", 3000)  # about 20 s a step here
    proc = subprocess.Popen([sys.executable, "-m", "robot_wm.cli", "deploy", str(slow), "--episodes", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "MUJOCO_GL": "egl"})
    time.sleep(8.0)  # loaded, inside the first warm-up step
    assert proc.poll() is None, proc.stdout.read()
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 143 and "terminated (SIGTERM)" in out, out
    assert time.monotonic() - sent < 5.0, f"{time.monotonic() - sent:.1f} s to stop"


def test_a_planner_with_external_data_is_refused_from_its_own_folder(planner_file, tmp_path, monkeypatch):
    """Probe 32: from the folder holding its side file, onnxruntime read the weights of a planner saved with external
    data (zeroed weights there deployed, exit 0). Refused wherever it is run from."""
    from robot_wm.runtime.session import ModelFileError, PlannerSession

    bad = damage_onnx(planner_file, tmp_path / "ext.onnx", "external-data")
    assert (tmp_path / "weights.bin").exists()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelFileError, match="references external data"):
        PlannerSession(bad.name, provider="cpu")


def test_deploy_names_a_checkpoint_and_a_link_loop_given_as_the_planner(base_run, tmp_path, capsys):
    """Probe 32: a checkpoint's JSON was "truncated or corrupted (Wire format was corrupt)", and a symbolic link loop
    "Too many levels of symbolic links" with exit 1. Each is named, exit 2."""
    ckpt = max((base_run / "checkpoints").glob("model_r*.json"))
    (tmp_path / "a.onnx").symlink_to("b.onnx")
    (tmp_path / "b.onnx").symlink_to("a.onnx")
    for path, needle in ((ckpt, "is a JSON or safetensors file (a checkpoint?)"),
                         (ckpt.with_suffix(".safetensors"), "is a JSON or safetensors file (a checkpoint?)"),
                         (tmp_path / "a.onnx", "is a symbolic link loop")):
        rc, out = main_in_process(capsys, "deploy", str(path), "--episodes", "1")
        assert rc == 2 and needle in out and "Traceback" not in out, out


def test_deploy_cli_bad_onnx_is_a_clear_error(planner_file, tmp_path, capsys):
    bad = damage_onnx(planner_file, tmp_path / "bad.onnx", "truncate")
    rc, out = main_in_process(capsys, "deploy", str(bad), "--task", "cartpole-swingup", "--episodes", "1")
    assert rc == 2 and "bad.onnx" in out and "Traceback" not in out


def _under_address_limit(limit: int, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``robot-wm ARGV`` as a real process under ``ulimit -v`` = ``limit`` bytes."""
    return subprocess.run(["prlimit", f"--as={limit}", sys.executable, "-m", "robot_wm.cli", *argv],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "MUJOCO_GL": "egl"})


def test_a_small_address_space_limit_is_named_before_any_work(base_run, planner_file, tmp_path):
    """Under `ulimit -v` 1 GB, `dream` hung for hours in OpenBLAS's start-up (inside dm_control's import of scipy),
    and under 600 MB `deploy` called a good planner file "truncated, corrupted or not ONNX" (probe 30): both name
    the limit and what they need, at once, and write nothing."""
    before = sorted(p.name for p in tmp_path.iterdir())
    r = _under_address_limit(10**9, "dream", str(base_run), "--out", str(tmp_path / "d.mp4"), timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "ulimit -v" in r.stderr and "953 MiB" in r.stderr and "2048 MiB" in r.stderr, r.stderr
    r = _under_address_limit(600 * 2**20, "deploy", str(planner_file), "--episodes", "1", timeout=60)
    assert r.returncode == 2 and "ulimit -v" in r.stderr and "600 MiB" in r.stderr, r.stderr
    assert "corrupted" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    # enough for deploy: it runs (an episode of the tiny planner), the limit never mentioned
    r = _under_address_limit(900 * 2**20, "deploy", str(planner_file), "--episodes", "1", "--task",
                             "cartpole-swingup", timeout=300)
    assert r.returncode == 0 and "ulimit" not in r.stderr, r.stderr


def test_a_deleted_current_folder_is_named_before_torch_loads(tmp_path):
    """Started in a folder deleted since (`rm -r` from another shell): torch's oneMKL printed "Cannot load
    libtorch_cpu.so" and the command ended, exit 0, nothing done (probe 33)."""
    gone, run = tmp_path / "gone", tmp_path / "run"
    gone.mkdir()
    root = Path(__file__).resolve().parents[1]
    script = (f'cd "{gone}" && rmdir "{gone}" && exec "{sys.executable}" -m robot_wm.cli run run_dir="{run}" '
              'env_steps=400 --no-progress')
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120,
                       check=False, env={**os.environ, "MUJOCO_GL": "egl", "PYTHONPATH": str(root)})
    assert r.returncode == 2 and "the current folder was deleted" in r.stderr, (r.returncode, r.stderr)
    assert "oneMKL" not in r.stderr and not run.exists()


def test_a_library_failure_under_an_address_limit_blames_the_limit():
    """onnxruntime's "PosixThread ... Resource temporarily unavailable" under `ulimit -v` read as a damaged file; a
    real process under a limit names it, and without a limit the library's words stand."""
    code = ("import resource, sys\n"
            "from robot_wm.sysmem import memory_blamed\n"
            "msg = 'onnxruntime::PosixThread::PosixThread pthread_create failed: Resource temporarily unavailable'\n"
            "print(memory_blamed(msg)); print(memory_blamed('Protobuf parsing failed'))\n"
            "resource.setrlimit(resource.RLIMIT_AS, (800 * 2**20, resource.getrlimit(resource.RLIMIT_AS)[1]))\n"
            "print(memory_blamed(msg)); print(memory_blamed('Protobuf parsing failed'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=60).stdout.splitlines()
    assert out[:2] == ["None", "None"] and out[3] == "None", out
    assert "ulimit -v" in out[2] and "800 MiB" in out[2], out


LAUNCH_FAULTS = {
    "unknown-key": ('[planner]\nhorizn = 5\n', "planner.horizn"),
    "wrong-type": ('[planner]\nhorizon = "long"\n', "planner.horizon"),
    "negative-horizon": ('[planner]\nhorizon = -3\n', "planner.horizon"),
    "zero-samples": ('[planner]\nsamples = 0\n', "planner.samples"),
    "float-for-int": ('env_steps = 1.5\n', "env_steps"),
    "unknown-task": ('[env]\ntask = "cartpole-swingupp"\n', "cartpole-swingupp"),
    "not-toml": ('[planner\nhorizon = 5\n', "not valid TOML"),
    "elites-over-samples": ('[planner]\nsamples = 4\nelites = 8\n', "elites=8"),
}


@pytest.mark.parametrize("name", sorted(LAUNCH_FAULTS))
def test_bad_launch_file_clear_error_nothing_written(tmp_path, name, capsys):
    text, needle = LAUNCH_FAULTS[name]
    launch, run = tmp_path / "launch.toml", tmp_path / "new-run"
    launch.write_text(f'run_dir = "{run}"\n' + text)
    before = snapshot(tmp_path)
    rc, out = main_in_process(capsys, "run", str(launch), "--no-progress")
    assert rc == 2 and needle in out and "Traceback" not in out, out
    assert snapshot(tmp_path) == before and not run.exists()


def test_bad_override_on_resume_never_rewrites_the_runs_config(run_copy, capsys):
    before = snapshot(run_copy)
    for bad in ("env.task=nope", "planner.horizon=-1", "planner.samples=0", "model.hiden=3"):
        rc, out = main_in_process(capsys, "run", f"run_dir={run_copy}", bad, "--resume", "--no-progress")
        assert rc == 2 and bad.split("=")[0].split(".")[-1] in out, out
    assert snapshot(run_copy) == before


def test_a_launch_file_whose_path_holds_an_equals_sign_is_read(tmp_path, capsys, monkeypatch):
    """Probe 34: a launch file in a sweep's trial folder (`...-planner.samples=256/my.toml`) or named `a=b.toml` was
    taken for an override ("'' is not a config section"), whatever form of the path was given."""
    folder = tmp_path / "cartpole-swingup-s1-planner.samples=256"
    folder.mkdir()
    for launch in (folder / "my.toml", tmp_path / "a=b.toml"):
        launch.write_text('[planner]\nhorizn = 5\n')  # read as a launch file, its own error is named
        monkeypatch.chdir(launch.parent)
        for given in (str(launch), f"./{launch.name}", launch.name):
            rc, out = main_in_process(capsys, "run", given, "env_steps=400", "--no-progress")
            assert rc == 2 and "planner.horizn" in out and "is not a config section" not in out, out
    assert not (tmp_path / "runs").exists()
    rc, out = main_in_process(capsys, "run", "missing=x.toml", "--no-progress")  # no such file: an override
    assert rc == 2 and "missing" in out, out


def test_launch_file_is_a_directory(tmp_path, capsys):
    rc, out = main_in_process(capsys, "run", str(tmp_path), "--no-progress")
    assert rc == 2 and str(tmp_path) in out and "Traceback" not in out


# --- the control path: non-finite input never becomes a command ----------------------------------
def _learned_planner(base_run, seed=0):
    from policies.mpc.planner import MPCPlanner
    from policies.mpc.step import StepSpec
    from robot_wm.model.checkpoint import load_checkpoint
    from robot_wm.run_dir import RunDir

    model, meta = load_checkpoint(RunDir(base_run).latest_checkpoint())
    spec = StepSpec(horizon=5, samples=32, iterations=2, elites=4, keep_elites=1)
    return MPCPlanner.learned(model.subset(meta["elites"]), spec, seed), model


NAN_AT = {3: np.nan, 7: np.inf, 8: -np.inf, 12: np.nan,
          15: 2.0**62, 17: -1e19}  # finite but no state a robot can be in: planned as valid before (probe 15)


def test_nan_sensors_into_mpc_planner_fall_back_and_are_counted(base_run):
    from robot_wm.config import EnvConfig
    from sim.registry import make_env

    planner, _ = _learned_planner(base_run)
    env = make_env(EnvConfig(task="cartpole-swingup", max_env_steps=200))
    obs, lo, hi = env.reset(0), env.action_spec.low, env.action_spec.high
    for t in range(20):
        seen = obs.copy()
        if t in NAN_AT:
            seen[t % len(seen)] = NAN_AT[t]  # one corrupted sensor channel
        a = planner.act(seen)
        assert np.all(np.isfinite(a)) and np.all(a >= lo) and np.all(a <= hi), (t, a)
        obs = env.step(a).observation
    assert planner.fallbacks == len(NAN_AT)


def test_non_finite_model_output_never_becomes_a_command(base_run):
    import torch

    planner, _ = _learned_planner(base_run)
    with torch.no_grad():
        planner.step.score.net.weights[-1].fill_(float("nan"))
    for t in range(5):
        a = planner.act(np.array([0.1, 0.9, -0.2, 0.3, 0.0]))
        assert np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1)
    assert planner.fallbacks == 5


@pytest.mark.parametrize("bad", [np.zeros(4), np.zeros((5, 1)), np.float32(1.0), np.array(["a"] * 5)])
def test_wrong_shape_or_dtype_observation_is_a_clear_error(base_run, bad):
    planner, _ = _learned_planner(base_run)
    with pytest.raises(ValueError, match="observation"):
        planner.act(bad)


class FaultyRobot:
    """A simulated robot whose sensor reads NaN/Inf at chosen ticks."""

    def __init__(self, env, nan_at: dict):
        from robot_wm.runtime.robot import SimRobot

        self.inner, self.nan_at, self.t = SimRobot(env), nan_at, 0
        for k in ("state_dim", "action_low", "action_high", "control_period"):
            setattr(self, k, getattr(self.inner, k))
        self.sent = []

    def read_state(self):
        s = self.inner.read_state().copy()
        if self.t in self.nan_at:
            s[self.t % len(s)] = self.nan_at[self.t]
        return s

    def send_action(self, a):
        self.sent.append(np.array(a))
        self.t += 1
        self.inner.send_action(a)

    def time(self):
        return self.inner.time()


class SlowPlanner:
    """Wraps a planner session; sleeps past the deadline at chosen ticks."""

    def __init__(self, inner, slow_at, sleep_s):
        self.inner, self.slow_at, self.sleep_s, self.k = inner, set(slow_at), sleep_s, 0

    def initial_plan(self):
        return self.inner.initial_plan()

    def step(self, state, prev):
        k, self.k = self.k, self.k + 1
        if k in self.slow_at:
            time.sleep(self.sleep_s)
        return self.inner.step(state, prev)


def _sim_env():
    from robot_wm.config import EnvConfig
    from sim.registry import make_env

    return make_env(EnvConfig(task="cartpole-swingup", max_env_steps=200))


def test_nan_sensors_into_onnx_runtime_loop_fall_back_and_are_counted(planner_file, caplog):
    from robot_wm.runtime.loop import ControlLoop
    from robot_wm.runtime.session import PlannerSession

    robot = FaultyRobot(_sim_env(), NAN_AT)
    robot.inner.reset(0)
    session = PlannerSession(planner_file, provider="cpu", threads=1)
    loop = ControlLoop(session, robot, deadline_s=30.0, realtime=False)
    with caplog.at_level("WARNING", logger="robot_wm.runtime.loop"):
        stats = loop.run(20)
    assert stats.invalid == len(NAN_AT) and stats.fallbacks == len(NAN_AT) and stats.errors == 0
    # each fallback names the dimension and its value (probe 18: "beyond the model's reach", nothing more)
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert "step 3: planner flagged invalid input or scores: state[3] = nan is not finite (1 of 5" in said, said
    assert "step 15: planner flagged invalid input or scores: state[0] = 4.61169e+18 is beyond the model's reach [" in said
    assert "state[2] = -1e+19 is beyond the model's reach" in said
    low, high = session.meta.reach  # the graph's own gate, as the file says it: the mean +- 10^4 stds
    assert np.all(low < -100) and np.all(high > 100) and np.all(low < high)
    for a in robot.sent:
        assert np.all(np.isfinite(a)) and np.all(a >= robot.action_low) and np.all(a <= robot.action_high)


def test_planner_overrunning_its_deadline_falls_back_and_is_counted(planner_file):
    from robot_wm.runtime.loop import ControlLoop, LoopStats
    from robot_wm.runtime.session import PlannerSession

    robot = FaultyRobot(_sim_env(), {})
    robot.inner.reset(0)
    planner = SlowPlanner(PlannerSession(planner_file, provider="cpu", threads=1), slow_at={2, 5}, sleep_s=0.5)
    loop = ControlLoop(planner, robot, deadline_s=0.25, realtime=False)
    stats, plans = LoopStats(loop.rate_hz, loop.deadline_s), []
    for _ in range(8):
        plans.append(loop.plan.copy())
        loop.tick(stats)
    assert stats.overruns == 2 and stats.fallbacks == 2
    for k in (2, 5):  # the late plan is discarded: the previous plan's next action is applied
        np.testing.assert_allclose(robot.sent[k], np.clip(plans[k][0], robot.action_low, robot.action_high))
    assert all(np.all(np.isfinite(a)) for a in robot.sent)


# --- diverging physics is never stored -----------------------------------------------------------
@pytest.mark.parametrize("at", [0, 4])
def test_diverging_physics_never_stored(run_copy, at):
    from test_env_contract import _Saboteur

    from robot_wm.run_dir import RunDir
    from robot_wm.runner import Session

    run = RunDir(run_copy)
    s = Session.open(run.load_config(), run, progress=False)
    before = episode_hashes(run_copy)
    rec = s.collect(_Saboteur(s.env, at=at), "train", len(s.run.dataset()))
    assert rec["diverged"] is True
    after = episode_hashes(run_copy)
    assert {k: after[k] for k in before} == before
    data = s.run.dataset()
    if at == 0:  # nothing valid to store
        assert len(after) == len(before)
    else:
        assert len(after) == len(before) + 1
        ep = data[-1]
        assert len(ep) == at and ep.meta["diverged"] is True
        assert np.all(np.abs(ep.obs) < 1e6) and np.all(np.abs(ep.physics_state) < 1e6)


@pytest.mark.parametrize("umask,expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_users_umask(tmp_path, umask, expected):
    """Atomic writes (config, manifest, checkpoints, episodes) get 0666 less the umask, in a real process; a file they
    replace keeps its own bits."""
    code = ("import os, sys; os.umask(int(sys.argv[2], 8)); from pathlib import Path; "
            "from robot_wm.io import atomic_write_text; atomic_write_text(Path(sys.argv[1]), 'x')")
    target = tmp_path / "f.json"
    subprocess.run([sys.executable, "-c", code, str(target), oct(umask)[2:]], check=True,
                   cwd=Path(__file__).resolve().parents[1])
    assert stat.S_IMODE(target.stat().st_mode) == expected
    # a file replaced keeps its permission bits, whatever the umask (a group-shared file stayed shared: probe 28)
    target.chmod(0o664)
    subprocess.run([sys.executable, "-c", code, str(target), oct(umask)[2:]], check=True,
                   cwd=Path(__file__).resolve().parents[1])
    assert stat.S_IMODE(target.stat().st_mode) == 0o664


@pytest.mark.parametrize("device,message", [("cuda:99", "device='cuda:99': this machine has"),
                                            ("gpu", "device: String should match pattern")])
def test_unavailable_or_unknown_device_is_refused_before_anything_is_written(tmp_path, capsys, device, message):
    rc, out = main_in_process(capsys, "run", f"run_dir={tmp_path / 'r'}", *TINY, f"device={device}", "--no-progress")
    assert rc == 2 and message in out, out
    assert "Traceback" not in out and not (tmp_path / "r").exists()


# --- stops that are not crashes: Ctrl-C, a full disk, a read-only directory -----------------------
def test_ctrl_c_stops_with_a_message_and_resume_loses_nothing(tmp_path):
    """SIGINT (Ctrl-C) in the middle of a real run: no traceback, exit 130, how to go on; --resume completes."""
    run = tmp_path / "run"
    proc = start_run(run)
    end = time.monotonic() + 150
    while proc.poll() is None and not episode_hashes(run) and time.monotonic() < end:
        time.sleep(0.05)
    before = episode_hashes(run)
    assert proc.poll() is None and before, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    log = (tmp_path / "run.log").read_text()
    assert "interrupted" in log and "--resume" in log and "Traceback" not in log, log
    assert not leftover_temp_files(run)
    rc, out = cli(*run_cmd(run, resume=True)[3:])
    assert rc == 0, out
    after = episode_hashes(run)
    assert all(after[k] == v for k, v in before.items())  # what was there is kept, byte for byte
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"


@pytest.fixture
def small_mount(tmp_path):
    """A real small filesystem (tmpfs) to fill up or make read-only; skipped where mounting is not allowed."""
    mounts = []

    def make(size: str, *options: str) -> Path:
        where = tmp_path / f"mnt{len(mounts)}"
        where.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", str(where)],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}): needs root")
        mounts.append(where)
        return where

    yield make
    for m in mounts:
        subprocess.run(["umount", "-l", str(m)], check=False)


def test_full_disk_is_a_message_naming_the_file_and_resume_finishes(small_mount):
    disk = small_mount("120k")
    run = disk / "run"
    rc, out = cli(*run_cmd(run)[3:])
    assert rc == 1 and "no space left on the device writing" in out and "--resume" in out, out
    assert "Traceback" not in out and not leftover_temp_files(run)
    kept = episode_hashes(run)
    subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)
    rc, out = cli(*run_cmd(run, resume=True)[3:])
    assert rc == 0, out
    assert all(episode_hashes(run)[k] == v for k, v in kept.items())


def test_read_only_run_directory_is_a_message(small_mount):
    ro = small_mount("1m", "ro")
    rc, out = cli(*run_cmd(ro / "run")[3:])
    assert rc == 1 and f"cannot write '{ro / 'run'}" in out and "Read-only file system" in out, out
    assert "Traceback" not in out


def test_export_into_a_read_only_folder_is_refused_before_exporting(small_mount, run_copy, capsys):
    """Probe 29: the folder was found read-only when the file was written, after the whole export (minutes for a
    long horizon): exit 1 then, a refusal before any work now (exit 2)."""
    ro = small_mount("1m", "ro")
    rc, out = main_in_process(capsys, "export", str(run_copy), "--out", str(ro / "p.onnx"))
    assert rc == 2 and f"cannot write into {str(ro)!r} (Permission denied)" in out, out


@pytest.fixture
def read_only_bind(run_copy):
    """``run_copy/NAME`` made read-only by a bind mount over itself; skipped where mounting is not allowed."""
    done = []

    def make(name: str) -> Path:
        where = run_copy / name
        if not where.exists():
            where.mkdir()
        for opts in (["--bind"], ["-o", "remount,ro,bind"]):
            r = subprocess.run(["mount", *opts, str(where), str(where)], capture_output=True, text=True, check=False)
            if r.returncode != 0:
                pytest.skip(f"cannot bind-mount here ({r.stderr.strip()}): needs root")
            done.append(where) if opts == ["--bind"] else None
        return where

    yield make
    for m in done:
        subprocess.run(["umount", "-l", str(m)], check=False)


@pytest.mark.parametrize("name, command", [("checkpoints", "train"), ("metrics.jsonl", "collect"),
                                           ("episodes", "collect")])
def test_a_read_only_part_of_the_run_is_refused_before_any_work(run_copy, read_only_bind, capsys, name, command):
    """Probe 36: a read-only checkpoints/ was found when the first checkpoint was written, after training (and a
    read-only episodes/ after collecting); probe 37: a read-only metrics.jsonl after the episode was stored. Every
    writer checks the run's files and the folders it writes before it works."""
    ro = read_only_bind(name)
    before = snapshot(run_copy)
    extra = ["model.max_epochs=1"] if command == "train" else ["--episodes", "1", "--policy", "random"]
    rc, out = main_in_process(capsys, command, str(run_copy), *extra, "--no-progress")
    assert rc == 1 and f"cannot write {str(ro)!r} (Read-only file system)" in out, out
    assert "Traceback" not in out and snapshot(run_copy) == before


@pytest.mark.parametrize("name, command", [("manifest.json", "collect"), ("episodes", "collect"),
                                           ("checkpoints/latest.json", "train")])
def test_an_append_only_part_of_the_run_is_refused_before_any_work(run_copy, capsys, name, command):
    """Probe 38: `chattr +a` on manifest.json (it cannot be replaced) was found after the episode was stored and
    logged; on episodes/, the episode's temp file (a hard link) stayed for good. os.access calls both writable."""
    target = run_copy / name
    if subprocess.run(["chattr", "+a", str(target)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +a is not allowed here (needs root and a file system with attributes)")
    try:
        before = snapshot(run_copy)
        extra = ["model.max_epochs=1"] if command == "train" else ["--episodes", "1", "--policy", "random"]
        rc, out = main_in_process(capsys, command, str(run_copy), *extra, "--no-progress")
        assert rc == 1 and f"cannot write {str(target)!r} (Operation not permitted: it is append-only" in out, out
        assert snapshot(run_copy) == before and not leftover_temp_files(run_copy)
    finally:
        subprocess.run(["chattr", "-a", str(target)], check=False)


def test_a_recording_into_an_append_only_folder_is_refused_leaving_nothing(run_copy, capsys):
    """Probe 39: `eval --rerun` into an append-only rerun/ left its 1 MiB preflight file there, one more a command."""
    rerun = run_copy / "rerun"
    rerun.mkdir()
    if subprocess.run(["chattr", "+a", str(rerun)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +a is not allowed here (needs root and a file system with attributes)")
    try:
        rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--planner", "random", "--rerun",
                                  "save", "--no-progress")
        assert rc == 1 and "its folder is append-only (chattr +a)" in out and not list(rerun.iterdir()), out
    finally:
        subprocess.run(["chattr", "-a", str(rerun)], check=False)


def test_a_folder_made_append_only_mid_write_keeps_the_stored_file_and_names_the_temp_file(tmp_path, caplog):
    """Probe 39: a folder made append-only while `deploy --record` drove: the episode was stored (a hard link), its
    temp file could not be deleted, and that error reported the stored episode as lost (saved again beside); a temp
    file that could not be deleted was named by the file it was for. Stored is stored now; the temp file is named."""
    folder = tmp_path / "rec"
    folder.mkdir()

    def locked_while_writing(f):
        f.write(b"episode")
        if subprocess.run(["chattr", "+a", str(folder)], capture_output=True, check=False).returncode != 0:
            pytest.skip("chattr +a is not allowed here (needs root and a file system with attributes)")

    try:
        with caplog.at_level(logging.WARNING, logger="robot_wm.io"):
            atomic_write(folder / "ep.npz", locked_while_writing, exclusive=True)
            assert (folder / "ep.npz").read_bytes() == b"episode"
            (left,) = leftover_temp_files(folder)
            assert f"could not delete the temp file {str(left)!r}" in caplog.text
            assert f"{str(folder / 'ep.npz')!r} was stored whole" in caplog.text
            caplog.clear()
            with pytest.raises(PermissionError) as e:  # a replace cannot happen there: the write's own error
                atomic_write(folder / "ep.npz", lambda f: f.write(b"other"))
            assert e.value.filename2 == str(folder / "ep.npz") and (folder / "ep.npz").read_bytes() == b"episode"
            assert "could not delete the temp file" in caplog.text and "stored whole" not in caplog.text
    finally:
        subprocess.run(["chattr", "-a", str(folder)], check=False)


def test_a_read_only_folder_the_command_does_not_write_is_no_refusal(run_copy, read_only_bind, capsys):
    """Probe 37: a user's read-only dreams/ (videos kept safe) refused `train` naming it, and a read-only checkpoints/
    refused `collect`; probe 39: a read-only config.toml refused `eval`. Each command checks what it writes."""
    read_only_bind("dreams")
    read_only_bind("checkpoints")
    rc, out = main_in_process(capsys, "collect", str(run_copy), "--episodes", "1", "--policy", "random", "--no-progress")
    assert rc == 0, out
    read_only_bind("config.toml")
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--planner", "random", "--no-progress")
    assert rc == 0, out


def test_an_output_that_is_a_device_or_a_fifo_is_never_replaced(run_copy, tmp_path, capsys):
    """export --out x.onnx (and dream --out x.mp4) where x is a FIFO or a device node: the node was replaced by
    a regular file, exit 0 (ninth probe). Every file robot-wm writes goes through atomic_write."""
    fifo = tmp_path / "x.onnx"
    os.mkfifo(fifo)
    rc, out = main_in_process(capsys, "export", str(run_copy), "--out", str(fifo))
    assert rc == 2 and "is a device, a FIFO or a socket, not a file" in out, out
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_recording_that_cannot_be_written_is_an_error_not_a_hang(run_copy):
    """eval --rerun under a file size limit (a full disk): Rerun's sink logged "File too large" and save() then
    blocked forever on a lock, holding the run's lock and ignoring SIGTERM (ninth probe)."""
    r = subprocess.run(["prlimit", "--fsize=30000", sys.executable, "-m", "robot_wm.cli", "eval", str(run_copy),
                        "--episodes", "1", "--no-progress", "--rerun", "save"],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 1 and ".rrd" in r.stderr and "File too large" in r.stderr, r.stderr
    assert not list((run_copy / "rerun").glob(".*preflight")) if (run_copy / "rerun").exists() else True


def test_ctrl_c_wrapped_by_ctypes_stops_like_ctrl_c(monkeypatch, capsys):
    """Ctrl-C landing while ctypes converted an argument reached the user as 'ctypes.ArgumentError: argument 1:
    KeyboardInterrupt', exit 1 (eighth probe, 1 of 15 Ctrl-C's of a finetune). The same error, raised by ctypes."""
    import ctypes

    import robot_wm.cli as cli_mod

    class Interrupting:
        @classmethod
        def from_param(cls, obj):
            raise KeyboardInterrupt

    def train_interrupted_in_ctypes(a):
        fn = ctypes.CDLL(None).abs
        fn.argtypes = [Interrupting]
        fn(1)

    monkeypatch.setattr(cli_mod, "cmd_train", train_interrupted_in_ctypes)
    assert cli_mod.main(["train", "/nowhere"]) == 130
    err = capsys.readouterr().err
    assert "robot-wm train: interrupted" in err and "ArgumentError" not in err


def test_a_read_only_file_is_told_with_the_flags_the_command_has():
    """eval, train, finetune and collect on a read-only run were told to "use a writable run_dir or --out";
    none of them has --out (eighth probe)."""
    import errno

    from robot_wm.cli import build_parser, describe_os_error

    e = OSError(errno.EROFS, "Read-only file system", "/r/checkpoints/x")
    told = {argv[0]: describe_os_error(e, build_parser().parse_args(argv)) for argv in (
        ["train", "/r"], ["eval", "/r"], ["run", "run_dir=/r"], ["export", "/r", "--out", "/x.onnx"])}
    assert all(t.startswith("cannot write '/r/checkpoints/x' (Read-only file system): make it writable") for t in told.values())
    assert "--out" not in told["train"] + told["eval"] + told["run"] and "--out" in told["export"]
    assert "run_dir" in told["run"] and "run_dir" not in told["train"]
    # the hidden temp file of an atomic write is named as the file the user asked for (tenth probe)
    tmp = OSError(errno.EPERM, "Operation not permitted", "/ro/.p.onnx.yt67wb6i.tmp")
    told = describe_os_error(tmp, build_parser().parse_args(["export", "/r", "--out", "/ro/p.onnx"]))
    assert told.startswith("cannot write '/ro/p.onnx' (Operation not permitted)") and "another --out" in told, told
    # `dream --rrd` into a folder it cannot write was told to choose another --out (probe 42)
    rrd = OSError(errno.EACCES, "Permission denied", "/ro/.d.rrd.ab12cd34.tmp")
    told = describe_os_error(rrd, build_parser().parse_args(["dream", "/r", "--rrd", "/ro/d.rrd"]))
    assert told.startswith("cannot write '/ro/d.rrd' (Permission denied)") and "another --rrd" in told, told
    assert "--out" not in told, told


def test_a_path_too_long_says_whether_a_name_or_the_whole_path_is(tmp_path, capsys):
    """25 names of 200 bytes (5,000 bytes in all) were told "a name ... is longer than ... 255 bytes a name" (probe 28)."""
    deep = tmp_path.joinpath(*["b" * 200] * 25)
    rc, out = main_in_process(capsys, "run", f"run_dir={deep}", "--no-progress")
    assert rc != 0 and "4,096 a path" in out and "255 bytes a name" not in out and "Traceback" not in out, out[-300:]
    rc, out = main_in_process(capsys, "run", f"run_dir={tmp_path / ('a' * 300)}", "--no-progress")
    assert rc != 0 and "255 bytes a name" in out and "Traceback" not in out, out[-300:]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name, command", [("metrics.jsonl", "train"), ("metrics.jsonl", "eval"),
                                           ("summary.json", "run"), ("config.toml", "eval")])
def test_a_runs_own_file_that_is_a_fifo_is_named_not_waited_on(run_copy, tiny_run_dir, tmp_path, name, command):
    """RUN/metrics.jsonl or summary.json as a FIFO hung train, finetune and --resume until killed; eval said "File
    or stream is not seekable" naming no file; a FIFO config.toml was "no config.toml" (eighth probe)."""
    if name == "summary.json":  # read back by --resume of a complete run
        run_copy = tmp_path / "complete"
        shutil.copytree(tiny_run_dir, run_copy)
    (run_copy / name).unlink()
    os.mkfifo(run_copy / name)
    args = [f"run_dir={run_copy}", "--resume"] if command == "run" else [str(run_copy)]
    if command == "eval":
        args += ["--episodes", "1"]
    r = subprocess.run([sys.executable, "-m", "robot_wm.cli", command, *args, "--no-progress"], capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode == 2 and name in r.stderr and "not a regular file" in r.stderr, r.stderr


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_episode_that_is_a_fifo_or_a_device_is_refused_not_read(run_copy, capsys, kind):
    """A FIFO used to block `train` forever; a symlink to /dev/zero grew it to 22 GB until the OOM killer."""
    target = run_copy / "episodes" / f"episode_{len(list((run_copy / 'episodes').glob('episode_*.npz'))):06d}.npz"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/zero")
    rc, out = main_in_process(capsys, "train", str(run_copy), "--no-progress")
    assert rc == 2 and target.name in out and "has an episode's name but is not a file" in out, out


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_an_episode_stored_twice_under_two_names_is_refused(run_copy, capsys, link):
    """A link to another episode of the run was trained on as a third episode while the manifest said 2 (probe 13)."""
    episodes = run_copy / "episodes"
    first = episodes / "episode_000000.npz"
    target = episodes / f"episode_{len(list(episodes.glob('episode_*.npz'))):06d}.npz"
    target.symlink_to(first) if link == "symlink" else os.link(first, target)
    rc, out = main_in_process(capsys, "train", str(run_copy), "--no-progress")
    assert rc == 2 and f"{target.name}' is the same file as episode_000000.npz (a link)" in out, out


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge"])
def test_launch_file_that_is_a_fifo_a_device_or_huge_is_refused(tmp_path, capsys, kind):
    path = tmp_path / "l.toml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.write_text("# " + "x" * 2**21 + "\n")
    rc, out = main_in_process(capsys, "run", str(path), "--no-progress")
    assert rc == 2 and str(path) in out and ("not a regular file" in out or "at most 1 MiB" in out), out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGQUIT])
def test_sigterm_stops_deploy_like_ctrl_c_and_keeps_the_cut_short_episode(planner_file, tmp_path, sig):
    """A service stop (SIGTERM) used to kill `deploy --record` at once, losing the episode in progress; a closed
    terminal or ssh session (SIGHUP) did the same until the tenth probe, a stray `kill -USR1` until probe 33, Ctrl-\\
    (SIGQUIT) until probe 34."""
    rec = tmp_path / "rec"
    proc = subprocess.Popen([sys.executable, "-m", "robot_wm.cli", "deploy", str(planner_file), "--task",
                             "cartpole-swingup", "--episodes", "50", "--realtime", "--record", str(rec)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "MUJOCO_GL": "egl"},  # the default disposition, as in a terminal
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    end = time.monotonic() + 120
    while proc.poll() is None and not (rec / "episode_000000.npz").exists() and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(1.0)  # into the second episode
    assert proc.poll() is None, proc.stdout.read()
    proc.send_signal(sig)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 128 + sig and f"terminated ({sig.name})" in out and "Traceback" not in out, out
    from robot_wm.data.episode import Episode

    cut = Episode.load(rec / "episode_000001.npz")
    assert 0 < len(cut) and not leftover_temp_files(rec)
    # ... and says it was cut short: its return covers only these steps (eighth probe: nothing said so)
    assert cut.meta["interrupted"] is True and "interrupted" not in Episode.load(rec / "episode_000000.npz").meta
    # ... counting the steps the file holds, not the commands sent: the safe action at the stop has no state after
    # it (probe 16: "58 steps" of a file of 57)
    assert f"recorded the episode cut short ({len(cut)} control steps" in out, out


def test_a_file_of_the_wrong_kind_is_named_as_such(run_copy, planner_file, capsys):
    """`eval PLANNER.onnx` said "no such folder" of an existing file; `deploy EPISODE.npz` called an intact
    episode "truncated or corrupted" (tenth probe)."""
    rc, out = main_in_process(capsys, "eval", str(planner_file))
    assert rc == 2 and "is a file, not a run directory (a planner file: `robot-wm deploy` runs it)" in out, out
    rc, out = main_in_process(capsys, "deploy", str(run_copy / "episodes" / "episode_000000.npz"))
    assert rc == 2 and "is a zip archive (an episode .npz?), not an ONNX planner" in out, out
    rc, out = main_in_process(capsys, "deploy", "/proc/self/mem")  # "Input/output error: a file" (probe 34)
    assert rc == 1 and "(reading the planner file): '/proc/self/mem'" in out, out
    # probe 25: a loop of symbolic links was "no such folder"
    (run_copy.parent / "loop_a").symlink_to(run_copy.parent / "loop_b")
    (run_copy.parent / "loop_b").symlink_to(run_copy.parent / "loop_a")
    (run_copy.parent / "missing_link").symlink_to(run_copy.parent / "nowhere")
    for name in ("loop_a", "missing_link"):
        rc, out = main_in_process(capsys, "eval", str(run_copy.parent / name))
        assert rc == 2 and "is a symbolic link to" in out and "that leads nowhere (broken, or a loop of links)" in out, out
    # a broken link in a folder above the run (it was "no such folder": session 25's review)
    rc, out = main_in_process(capsys, "eval", str(run_copy.parent / "missing_link" / "run"))
    assert rc == 2 and "its folder" in out and "missing_link' is a symbolic link to" in out, out
    # a path through a file said "no such folder" (session 25's review)
    rc, out = main_in_process(capsys, "eval", str(planner_file / "run"))
    assert rc == 2 and f"{str(planner_file)!r} is a file, not a folder" in out, out
    rc, out = main_in_process(capsys, "eval", str(run_copy.parent / "no_such_run"))
    assert rc == 2 and "is not a run directory: no such folder" in out, out


def test_a_deleted_latest_pointer_falls_back_to_the_highest_round(run_copy, capsys, caplog):
    """With checkpoints/latest.json gone every command said "no trained model: run train first" beside the
    checkpoints (tenth probe): the highest round on disk is used, with a warning."""
    from robot_wm.run_dir import RunDir

    want = RunDir(run_copy).latest_checkpoint()
    (run_copy / "checkpoints" / "latest.json").unlink()
    with caplog.at_level(logging.WARNING, logger="robot_wm"):
        assert RunDir(run_copy).latest_checkpoint() == want
    assert "latest.json is missing: using " + want.name in caplog.text
    rc, out = main_in_process(capsys, "whatif", str(run_copy), "--episode", "0", "--step", "2", "--random", "2")
    assert rc == 0, out


@pytest.mark.parametrize("pointer", ['{"checkpoint": "../../other/checkpoints/model_r0000.json"}',
                                     '{"checkpoint": "/etc/model.json"}', '{"checkpoint": 5}', "[]", "{}",
                                     b"\xff\xfe{"])
def test_latest_pointer_leading_outside_the_run_or_malformed_is_refused(run_copy, capsys, pointer):
    """latest.json used to be followed anywhere (another run's model exported silently) or crash."""
    path = run_copy / "checkpoints" / "latest.json"
    path.write_bytes(pointer if isinstance(pointer, bytes) else pointer.encode())
    rc, out = main_in_process(capsys, "export", str(run_copy), "--out", str(run_copy.parent / "p.onnx"))
    assert rc == 2 and "latest.json" in out and "does not name a checkpoint file of this run" in out, out
    assert "Traceback" not in out and not (run_copy.parent / "p.onnx").exists()


@pytest.mark.parametrize("manifest, needle", [
    ("[]", "holds a JSON list, expected an object"),
    ('{"status": 5}', "status = 5 is not created or running or complete"),
    ('{"status": "running", "episodes": "x"}', 'episodes = "x" is not a count'),
    ('{"status": "running", "episodes": 2, "final_eval_from": -1}', "final_eval_from = -1 is not a count"),
    ('{"status": "running", "episodes": 2, "final_eval_from": 0, "final_eval_episodes": [0, 99]}',
     "final_eval_episodes [0, 99] name evaluation episodes beyond the 0 stored"),
    ("{\"status\": \"runn", "is not valid JSON"),
])
def test_edited_manifest_is_refused_naming_the_field_before_anything_is_written(run_copy, capsys, manifest, needle):
    """A hand-edited manifest.json crashed --resume with AttributeError/TypeError, or ran on from it."""
    (run_copy / "manifest.json").write_text(manifest)
    before = snapshot(run_copy)
    rc, out = main_in_process(capsys, "run", f"run_dir={run_copy}", "--resume", "--no-progress")
    assert rc == 2 and "manifest.json" in out and needle in out and "Traceback" not in out, out
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("where", ["episode", "checkpoint"])
def test_json_nested_past_the_recursion_limit_is_named_not_a_traceback(run_copy, capsys, where):
    """200,000 brackets in an episode's meta or a checkpoint's JSON: a RecursionError traceback from train,
    eval, finetune, dream and whatif (eighth probe)."""
    deep = "[" * 200_000 + "]" * 200_000
    if where == "episode":
        path = run_copy / "episodes" / "episode_000000.npz"
        z = dict(np.load(path))
        z["meta"] = np.array(deep)
        np.savez(path, **z)
    else:
        path = Path(str(run_copy / "checkpoints" / json.loads((run_copy / "checkpoints" / "latest.json").read_text())[
            "checkpoint"]))
        path.write_text('{"format": ' + deep + "}")
    rc, out = main_in_process(capsys, "train" if where == "episode" else "eval", str(run_copy), "--no-progress")
    assert rc == 2 and path.name in out and "nested deeper than robot-wm reads" in out, out
    assert "Traceback" not in out and "RecursionError" not in out


@pytest.mark.parametrize("log", ["deleted", "truncated"])
def test_a_lost_log_never_makes_train_overwrite_a_checkpoint(run_copy, capsys, log):
    """With metrics.jsonl deleted or cut, train numbered its round from the records and wrote round 0 over
    checkpoints/model_r0000 (eighth probe); since probe 29 such a run is refused, nothing written (the next round is
    still numbered past every checkpoint on disk: RunDir.next_round)."""
    metrics = run_copy / "metrics.jsonl"
    if log == "deleted":
        metrics.unlink()
    else:
        metrics.write_text(metrics.read_text().splitlines()[0] + "\n")
    if log == "deleted":  # probe 29: without records the episodes cannot be checked (an edited one was trained on)
        before = snapshot(run_copy)
        rc, out = main_in_process(capsys, "train", str(run_copy), "--no-progress", "model.max_epochs=1")
        assert rc == 2 and "metrics.jsonl' holds no record of the" in out and "restore metrics.jsonl" in out, out
        assert snapshot(run_copy) == before
        return
    before = {p.name: p.read_bytes() for p in (run_copy / "checkpoints").glob("model_r*")}
    last = max(int(n[len("model_r"):len("model_r") + 4]) for n in before)
    rc, out = main_in_process(capsys, "train", str(run_copy), "--no-progress", "model.max_epochs=1")
    assert rc == 0 and f"trained round {last + 1}" in out, out  # the last episode alone lost its record: taken
    assert all((run_copy / "checkpoints" / n).read_bytes() == b for n, b in before.items())


def test_resume_finishes_a_complete_run_whose_summary_was_deleted(tiny_run_dir, tmp_path, capsys):
    """summary.json deleted from a complete run: --resume answered "does not exist: the run is not complete", the
    advice in a circle (probe 11). It evaluates again and writes the summary."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    (run / "config.toml").write_text((run / "config.toml").read_text().replace(str(tiny_run_dir), str(run)))
    (run / "summary.json").unlink()
    episodes = episode_hashes(run)
    rc, out = main_in_process(capsys, "run", f"run_dir={run}", "--resume", "--no-progress")
    assert rc == 0, out
    assert json.loads((run / "summary.json").read_text())["episodes"] == len([k for k in episodes if "eval" not in k])
    after = episode_hashes(run)
    assert {k: after.get(k) for k in episodes} == episodes  # kept; no training episode collected again
    assert len([k for k in after if "eval" not in k]) == len([k for k in episodes if "eval" not in k])


def test_records_are_never_appended_through_a_link_inside_the_run(run_copy, capsys):
    """RUN/metrics.jsonl a link to RUN/manifest.json: eval appended its records to the manifest and every later
    command failed on it (probe 11)."""
    (run_copy / "metrics.jsonl").unlink()
    (run_copy / "metrics.jsonl").symlink_to("manifest.json")
    before, manifest = snapshot(run_copy), (run_copy / "manifest.json").read_bytes()
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--no-progress")
    assert rc != 0 and "is a link (to 'manifest.json')" in out, out
    assert (run_copy / "manifest.json").read_bytes() == manifest
    assert {k: v for k, v in snapshot(run_copy).items() if "eval" not in k} == \
        {k: v for k, v in before.items() if "eval" not in k}


def test_metrics_records_robot_wm_did_not_write_are_skipped_with_a_warning(run_copy, capsys, caplog):
    """Hand-edited metrics.jsonl lines (not an object, a field of the wrong type) crashed train and resume."""
    from robot_wm.run_dir import RunDir

    good = RunDir(run_copy).records("train")
    with open(run_copy / "metrics.jsonl", "a") as f:
        f.write('[1, 2]\n5\n{"kind": "train", "round": "a"}\n{"kind": "eval", "milestone": "x", "env_steps": 1}\n')
    with caplog.at_level("WARNING"):
        assert RunDir(run_copy).records("train") == good and good
    assert "skipped 4 record(s) that robot-wm did not write" in caplog.text
    r = subprocess.run([sys.executable, "-m", "robot_wm.cli", "train", str(run_copy), "--no-progress",
                        "model.max_epochs=1"], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0 and "trained round 1" in r.stdout, r.stdout + r.stderr
    assert r.stderr.count("skipped 4 record(s)") == 1, r.stderr  # said once, not at every read (seventh probe)


def test_eval_applies_randomisation_overrides_on_top_of_the_named_shift(run_copy, capsys):
    """`eval RUN env.randomize.mass=[1.3,1.3]` evaluated the nominal robot and exited 0: the default
    `--shift nominal` was applied after the command line's overrides and replaced them."""
    from robot_wm.run_dir import RunDir

    for args, expect in ((["env.randomize.mass=[1.3, 1.3]"], {"mass": 1.3, "friction": 1.0}),
                         (["--shift", "friction-0.5", "env.randomize.mass=[1.3, 1.3]"], {"mass": 1.3, "friction": 0.5})):
        rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--no-progress", *args)
        assert rc == 0, out
        evals = RunDir(run_copy).eval_dataset()
        draw = evals[len(evals) - 1].meta["randomization"]
        assert {k: draw[k] for k in expect} == pytest.approx(expect), draw
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "env.randomize.mass=[1e9, 1e9]")
    assert rc == 2 and "env.randomize" in out and "scales above 100x" in out, out  # checked as `run` checks it
    n = len(RunDir(run_copy).eval_dataset())  # the field the shift sets, overridden: ran, labelled as the shift
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--shift", "friction-1.5",
                              "env.randomize.friction=[0.1, 0.1]")
    assert rc == 2 and "--shift friction-1.5 sets env.randomize.friction" in out, out
    assert len(RunDir(run_copy).eval_dataset()) == n


def test_the_largest_seed_runs_and_keeps_small_seeds_episodes_as_they_were(tmp_path):
    """Episode seeds were run_seed x 100,003 + index: any seed from 42,949 up overflowed the 32 bits an
    environment takes and the run failed at its first episode ('Seed must be between 0 and 2**32 - 1')."""
    from conftest import tiny_run

    from robot_wm.run_dir import RunDir
    from robot_wm.seeding import episode_seed

    assert episode_seed(7, 3) == 7 * 100_003 + 3 and episode_seed(7, 3, eval=True) == 7 * 100_003 + 50_003
    assert tiny_run(tmp_path / "run", "seed=4294967295") == 0
    seeds = [e.meta["seed"] for e in RunDir(tmp_path / "run").dataset()]
    assert len(set(seeds)) == len(seeds) == 2 and all(0 <= s < 2**32 for s in seeds)


def _rc(capsys, *args: str) -> tuple[int, str]:
    """``main``'s exit code, also where argparse refused a value (SystemExit 2, before anything is loaded)."""
    try:
        return main_in_process(capsys, *args)
    except SystemExit as e:
        out = capsys.readouterr()
        return e.code, out.err + out.out


@pytest.mark.parametrize("args, needle", [
    (["dream", "{run}", "--fps", "0"], "argument --fps: expected a number from 0.1 to 1000, got '0'"),
    (["dream", "{run}", "--fps", "1e-9"], "argument --fps: expected a number from 0.1"),  # ffmpeg got "-r 0"
    (["dream", "{run}", "--fps", "nan"], "argument --fps: expected a number from 0.1"),
    (["dream", "{run}", "--fps", "-5"], "argument --fps: expected a number from 0.1"),
    (["dream", "{run}", "--horizon", "3", "--out", "{tmp}/dir.mp4"], "--out '{tmp}/dir.mp4' is a directory"),
    (["whatif", "{run}", "--random", "100000000"], "argument --random: expected a whole number from 0 to 10000"),
    (["whatif", "{run}", "--seed", "-5"], "argument --seed: expected a whole number from 0 to 4294967295, got '-5'"),
    (["drive", "{run}", "--max-steps", "-1"], "argument --max-steps: expected a whole number from 1 to 1000000"),
    (["drive", "{run}", "--actions", "{tmp}/binary.txt"], "--actions '{tmp}/binary.txt' is neither an .npy file nor text"),
    (["run", "run_dir={tmp}/ea", "eval_at=[-5]"], "eval_at.0: Input should be greater than or equal to 1 (got -5)"),
    (["run", "run_dir={tmp}/" + "b" * 300, "env_steps=400"], "is longer than the file system allows"),
    # a folder that is a link leading nowhere: "File exists: '.../a'" (probe 31)
    (["run", "run_dir={tmp}/ld/a/run", "env_steps=400"], "ld/a' is a symbolic link to 'b' that leads nowhere"),
    # a run that was never made was told to go on with --resume (probe 29)
    (["run", "run_dir=/sys/kernel/robot-wm-x", "env_steps=400"], "cannot write '/sys/kernel/robot-wm-x'"),
])
def test_hostile_flags_and_paths_are_refused_naming_them(run_copy, tmp_path, capsys, args, needle):
    """A hostile probe's ugly cases (2026-11-26): a traceback, a silent default, a bare library message or a
    useless hint before; each now a clear refusal naming the flag or the file, with nothing written."""
    (tmp_path / "dir.mp4").mkdir()
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)))
    (tmp_path / "ld").mkdir()
    (tmp_path / "ld" / "b").symlink_to("ld/a")  # relative to ld/: leads to ld/ld/a, which does not exist
    (tmp_path / "ld" / "a").symlink_to("b")
    args = [a.format(run=run_copy, tmp=tmp_path) for a in args]
    before = snapshot(run_copy)
    rc, out = _rc(capsys, *args)
    assert rc in (1, 2) and needle.format(tmp=tmp_path) in out and "Traceback" not in out, out
    assert "--resume" not in out  # resuming would fail the same way
    assert snapshot(run_copy) == before and not (tmp_path / "ea").exists()


def test_writing_through_a_symlink_out_of_the_run_is_refused(run_copy, tmp_path, capsys):
    """`collect` on a run whose episodes/ linked to another run's wrote into that run without its lock."""
    other = tmp_path / "other"
    shutil.copytree(run_copy, other)
    shutil.rmtree(run_copy / "episodes")
    (run_copy / "episodes").symlink_to(other / "episodes")
    before = snapshot(other)
    rc, out = _rc(capsys, "collect", str(run_copy), "--episodes", "1", "--no-progress")
    assert rc == 2 and "is a symbolic link to" in out and "outside the run directory" in out, out
    assert snapshot(other) == before


def test_an_invalid_mujoco_gl_is_a_message_not_a_traceback(run_copy):
    r = subprocess.run([sys.executable, "-m", "robot_wm.cli", "dream", str(run_copy), "--horizon", "3"],
                       capture_output=True, text=True, env={**os.environ, "MUJOCO_GL": "bogus"}, timeout=300, check=False)
    assert r.returncode == 2 and "MUJOCO_GL: bogus" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("what", ["latest.json FIFO", "checkpoint json FIFO", "weights -> /dev/zero"])
def test_checkpoint_files_that_are_fifos_or_devices_are_refused_not_read(run_copy, capsys, what):
    """A FIFO as latest.json or as a checkpoint's JSON hung eval/whatif forever; weights symlinked to
    /dev/zero were read until MemoryError (probe of 2026-11-26)."""
    from robot_wm.run_dir import RunDir

    ckpt = RunDir(run_copy).latest_checkpoint()
    target = {"latest.json FIFO": run_copy / "checkpoints" / "latest.json", "checkpoint json FIFO": ckpt,
              "weights -> /dev/zero": ckpt.with_suffix(".safetensors")}[what]
    target.unlink()
    if what.endswith("FIFO"):
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/zero")
    rc, out = main_in_process(capsys, "whatif", str(run_copy), "--horizon", "3")
    needle = "does not name a checkpoint file" if what.startswith("latest") else "not a regular file"
    assert rc == 2 and needle in out and str(target.name) in out, out


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_planner_file_that_is_a_fifo_or_a_device_is_refused_not_read(tmp_path, capsys, kind):
    path = tmp_path / "p.onnx"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    rc, out = main_in_process(capsys, "deploy", str(path), "--task", "cartpole-swingup", "--episodes", "1")
    assert rc == 2 and "planner file" in out and "not a regular file" in out, out


def test_an_emptied_config_toml_is_refused_not_replaced_by_the_defaults(run_copy, capsys):
    """An empty config.toml made eval run the built-in defaults (another episode length and planner), exit 0."""
    (run_copy / "config.toml").write_text("")
    before = snapshot(run_copy)
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--no-progress")
    assert rc == 2 and "names no env.task or seed" in out and snapshot(run_copy) == before, out


# --- the sixth hostile probe (2026-11-26, 305 cases) -----------------------------------------------------------

@pytest.mark.parametrize("args, needle", [
    # an output path of Rerun that is not a recording replaced the run's own files
    (["dream", "{run}", "--horizon", "3", "--rrd", "{run}/metrics.jsonl"], "--rrd '{run}/metrics.jsonl': expected a file name ending in .rrd"),
    (["dream", "{run}", "--horizon", "3", "--rrd", "{run}/checkpoints/latest.json"], "ending in .rrd"),
    (["drive", "{run}", "--max-steps", "2", "--rrd", "{run}/summary.json"], "ending in .rrd"),
    (["eval", "{run}", "--episodes", "1", "--rerun", "save", "rerun.path={run}/config.toml"], "rerun.path"),
    # sizes without a bound: 25e9 value updates (a hang), a 40 GB noise filter
    (["train", "{run}", "value.updates_per_step=1e9"], "value.updates_per_step: Input should be less than or equal to 100"),
    (["export", "{run}", "--out", "{tmp}/h.onnx", "planner.horizon=100000"], "planner.horizon: Input should be less than or equal to 1000"),
])
def test_probe6_outputs_and_sizes_are_refused_before_anything_is_written(run_copy, tmp_path, capsys, args, needle):
    args = [a.format(run=run_copy, tmp=tmp_path) for a in args]
    before = snapshot(run_copy)
    rc, out = _rc(capsys, *args)
    assert rc in (1, 2) and needle.format(run=run_copy) in out and "Traceback" not in out, out
    assert snapshot(run_copy) == before


def test_a_saved_config_never_keeps_a_recording_path(tmp_path):
    """A launch file's rerun.path was saved into RUN/config.toml, and every later eval/whatif/dream of the run
    (a run directory from someone else too) overwrote that file."""
    from robot_wm.config import RunConfig, apply_overrides
    from robot_wm.run_dir import RunDir

    with pytest.raises(ValueError, match=r"rerun.path.*expected a file name ending in \.rrd"):
        apply_overrides(RunConfig(), ["rerun.path=/tmp/victim.txt"])
    run = RunDir(tmp_path / "r")
    run.save_config(apply_overrides(RunConfig(), ["rerun.mode=save", f"rerun.path={tmp_path}/x.rrd"]))
    saved = run.load_config().rerun
    assert (saved.mode, saved.path) == ("off", None)  # nor its mode: --rerun is one command's (probe 31)


def test_diverged_training_saves_no_checkpoint(tmp_path):
    """model.lr=1e308 (now refused by the config: at most 10) trained to NaN weights, saved them and reported the
    run complete with return 0: a checkpoint with a non-finite weight is never written, the run stops."""
    import torch

    from robot_wm.config import ModelConfig
    from robot_wm.model.checkpoint import TrainingDivergedError, save_checkpoint
    from robot_wm.train import new_model

    model = new_model(5, 1, [-1.0], [1.0], ModelConfig(hidden=8, layers=1))
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match=r"training diverged: non-finite weights .*in .*model.lr"):
        save_checkpoint(model, tmp_path / "model_r0000", [0, 1])
    model = new_model(5, 1, [-1.0], [1.0], ModelConfig(hidden=8, layers=1))
    with torch.no_grad():  # finite, but what no training writes: load refuses it, so save does (probe 29)
        model.head.weight[0, 0, 0] = 3e7
    with pytest.raises(TrainingDivergedError, match=r"or beyond \+-1e\+06\) in \['head.weight'\]"):
        save_checkpoint(model, tmp_path / "model_r0000", [0, 1])
    assert not list(tmp_path.iterdir())  # neither the weights nor the JSON


def test_a_run_whose_model_diverged_to_finite_garbage_stops_without_a_round(tmp_path, capsys):
    """model.lr=10 (the documented maximum) trained to a validation error of 6e17 with finite weights: the round
    was written, the run reported complete with 'n/a' errors and return 0 (probe 13). It stops, names the error."""
    from conftest import tiny_run

    run = tmp_path / "run"
    assert tiny_run(run, "model.lr=10", "model.max_epochs=20") != 0
    err = capsys.readouterr().err
    assert "training diverged: validation error" in err and "model.lr=10" in err, err
    assert not list((run / "checkpoints").glob("model_r*.json"))
    assert json.loads((run / "manifest.json").read_text())["status"] != "complete"


def _edit_episode(path: Path, drop: tuple = (), **changes) -> None:
    z = dict(np.load(path))
    meta = json.loads(str(z["meta"]))
    meta.update(changes.pop("meta", {}))
    for key in drop:
        del meta[key]
    z["meta"] = np.array(json.dumps(meta))
    z.update(changes)
    np.savez(path, **z)


@pytest.mark.parametrize("edit, needle", [
    ({"meta": {"task": "cartpole-balance"}}, "is from task 'cartpole-balance', the run's config.toml says 'cartpole-swingup'"),
    ({"meta": {"action_repeat": 2}}, "was collected at action repeat 2, the run's config.toml says 8"),
    ({"scale": 1e6}, "is outside the action bounds [-1, 1]"),
    # probe 12: without the key the checks were skipped; the budget added up an unchecked env_steps
    ({"drop": ("task",)}, "is from task None, the run's config.toml says 'cartpole-swingup'"),
    ({"drop": ("action_repeat",)}, "was collected at action repeat None, the run's config.toml says 8"),
    ({"meta": {"env_steps": -100000}}, "says env_steps=-100000, but its 50 control steps are 400 environment steps"),
    ({"meta": {"env_steps": 10**9}}, "says env_steps=1000000000, but its 50 control steps"),
    ({"meta": {"env_steps": None}}, "says env_steps=None, but its 50 control steps"),
    ({"meta": {"env_steps": "abc"}}, "says env_steps='abc', but its 50 control steps"),
    # probe 12: trained on until the weights overflowed, and the message blamed the learning rate
    ({"reward": 3e38}, "reward[0] = 3e+38, but this suite task pays 0 to 1 per environment step"),
])
def test_train_refuses_an_episode_that_is_not_the_runs(run_copy, capsys, edit, needle):
    """Same sizes, so the dataset took them: another task's episode, one at another action repeat, and actions
    logged in other units were trained on."""
    path = run_copy / "episodes" / "episode_000001.npz"
    if "scale" in edit:
        _edit_episode(path, action=np.load(path)["action"] * edit["scale"])
    elif "reward" in edit:
        _edit_episode(path, reward=np.load(path)["reward"] * 0 + np.float32(edit["reward"]))
    else:
        _edit_episode(path, **edit)
    before = snapshot(run_copy)
    rc, out = _rc(capsys, "train", str(run_copy), "model.max_epochs=1", "--no-progress")
    assert rc in (1, 2) and needle in out and "episode_000001.npz" in out, out
    assert "np.float" not in out, out  # a value as numpy writes its repr: "np.float64(1000000.0)" (probe 41)
    assert snapshot(run_copy) == before


def test_finetune_refuses_recorded_actions_outside_the_bounds(run_copy, planner_file, tmp_path, capsys):
    rec = tmp_path / "rec"
    rc, out = _rc(capsys, "deploy", str(planner_file), "--episodes", "1", "--record", str(rec), "--threads", "1")
    assert rc == 0, out
    ep = next(rec.glob("episode_*.npz"))
    _edit_episode(ep, action=np.load(ep)["action"] * 1e6)
    rc, out = _rc(capsys, "finetune", str(run_copy), "--data", str(rec), "model.max_epochs=1", "--no-progress")
    assert rc in (1, 2) and "is outside the action bounds" in out and "np.float" not in out, out  # (probe 41)
    assert not (run_copy / "robot").exists() or not list((run_copy / "robot").glob("episode_*.npz"))


def test_deploy_records_the_task_the_simulated_robot_ran(run_copy, planner_file, tmp_path, capsys):
    """`deploy --sim task=cartpole-balance --record` ran balance and labelled the episodes with the planner's
    task (swingup): finetune took them as swingup data (tenth probe). And `--shift` with an override of the
    field it sets is refused, as `eval` refuses it."""
    rec = tmp_path / "rec"
    rc, out = _rc(capsys, "deploy", str(planner_file), "--episodes", "1", "--record", str(rec), "--threads", "1",
                  "--sim", "task=cartpole-balance", "max_env_steps=100")
    assert rc == 0 and "on cartpole-balance" in out, out
    assert json.loads(str(np.load(next(rec.glob("episode_*.npz")))["meta"]))["task"] == "cartpole-balance"
    rc, out = _rc(capsys, "finetune", str(run_copy), "--data", str(rec), "model.max_epochs=1", "--no-progress")
    assert rc == 2 and "cartpole-balance" in out, out
    rc, out = _rc(capsys, "deploy", str(planner_file), "--episodes", "1", "--record", str(tmp_path / "r2"),
                  "--shift", "friction-1.5", "--sim", "randomize.friction=[0.1,0.1]")
    assert rc == 2 and "--shift friction-1.5 sets env.randomize.friction" in out, out
    assert not (tmp_path / "r2").exists()
    # probe 14: `--sim seed=3` was "unknown field 'env.seed'", a name the user never typed
    rc, out = _rc(capsys, "deploy", str(planner_file), "--episodes", "1", "--sim", "seed=3")
    assert rc == 2 and "--sim seed=3: --sim takes the simulated robot's env fields only" in out, out
    assert "the episode seed is --seed" in out


@pytest.mark.parametrize("how, needle", [
    ("nul", "holds a NUL byte"),
    ("below_file", "which is a file, not a folder"),
    ("dangling", "that leads nowhere (broken, or a loop of links)"),
])
def test_run_dirs_that_cannot_be_made_are_named(tmp_path, capsys, how, needle):
    """The sixth probe's ugly run_dir cases: 'embedded null byte', 'Not a directory' with a --resume hint that
    failed the same way, and '[Errno 17] File exists' for a dangling link."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "dang").symlink_to(tmp_path / "nothere")
    run_dir = {"nul": f"{tmp_path}/a\x00b", "below_file": f"{tmp_path}/afile/sub", "dangling": f"{tmp_path}/dang"}[how]
    rc, out = _rc(capsys, "run", f"run_dir={run_dir}", *TINY, "--no-progress")
    assert rc == 2 and needle in out and "--resume" not in out and "Errno" not in out, out


def test_files_a_user_saved_elsewhere_are_read_or_named(tmp_path, base_run):
    """A launch file and a results.csv with a byte-order mark (a Windows editor, a spreadsheet), a results.csv
    with a repeated row or a 3 MB cell, a binary metrics.jsonl, an episode folder that is a file, a folder
    given as a checkpoint, an episode with a cut physics state."""
    from robot_wm.config import load
    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.io import read_jsonl
    from robot_wm.model.checkpoint import load_checkpoint
    from robot_wm.sweep import results

    (tmp_path / "bom.toml").write_bytes(b"\xef\xbb\xbfseed = 7\n")
    assert load(tmp_path / "bom.toml").seed == 7
    header = "name,task,seed,overrides,status,eval_return_mean\n"
    row = "cartpole-swingup-s1,cartpole-swingup,1,,complete,100\n"
    for name, text, needle in (("bom", "\ufeff" + header + row, None),
                               ("dup", header + row + row, "line 3: trial 'cartpole-swingup-s1' is also on line 2"),
                               ("big", header + "x" * 3_000_000 + row, "field larger than field limit")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.csv").write_text(text, encoding="utf-8")
        if needle is None:
            assert results.read(tmp_path / name)[0]["name"] == "cartpole-swingup-s1"
        else:
            with pytest.raises(ValueError, match=re.escape(needle)):
                results.read(tmp_path / name)
    (tmp_path / "m.jsonl").write_bytes(b'{"kind": "x"}\n\xc8\xff\n')
    with pytest.raises(ValueError, match="m.jsonl' is not text"):
        read_jsonl(tmp_path / "m.jsonl")
    with open(tmp_path / "big.jsonl", "wb") as f:  # probe 14: 480 MB of small records, 4.8 GB, MemoryError
        f.truncate((256 << 20) + 1)  # sparse: nothing is written
    with pytest.raises(ValueError, match=r"records .*big.jsonl' is 256.0 MiB; at most 256 MiB is read"):
        read_jsonl(tmp_path / "big.jsonl")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        EpisodeDataset(tmp_path / "bom.toml")
    with pytest.raises(ValueError, match="is not a checkpoint: expected a model_rNNNN.json"):
        load_checkpoint(base_run / "checkpoints")
    ds = tmp_path / "eps"
    shutil.copytree(base_run / "episodes", ds)
    z = dict(np.load(ds / "episode_000001.npz"))
    z["physics_state"] = z["physics_state"][:, :2]
    np.savez(ds / "episode_000001.npz", **z)
    with pytest.raises(ValueError, match="has a physics state of 2 numbers per step"):
        EpisodeDataset(ds)


def test_runtime_arguments_are_named(planner_file, capsys):
    """ControlLoop(rate_hz=True) ran at 1 Hz, deadline_s='0.01' raised a ufunc error, np.int64(3) fallbacks
    were refused by a false message; PlannerSession(threads=0) blamed the planner file, seed=-1 and
    provider=None raised numpy's and Python's own errors; deploy --safe-action '' ran without one."""
    from robot_wm.runtime.loop import ControlLoop
    from robot_wm.runtime.robot import SimRobot
    from robot_wm.runtime.session import PlannerSession
    from sim.registry import make_env
    from robot_wm.config import RunConfig

    for kwargs, needle in (({"threads": 0}, "threads=0: expected a whole number"), ({"seed": -1}, "seed=-1"),
                           ({"provider": None}, "provider=None")):
        with pytest.raises((ValueError, RuntimeError)) as e:
            PlannerSession(planner_file, **kwargs)
        assert needle in str(e.value) and "not a loadable" not in str(e.value)
    session = PlannerSession(planner_file, threads=1)
    robot = SimRobot(make_env(RunConfig().env))
    for kwargs, needle in (({"rate_hz": True}, "rate_hz=True"), ({"deadline_s": "0.01"}, "deadline_s='0.01'"),
                           ({"max_fallbacks": True}, "max_fallbacks=True")):
        with pytest.raises(ValueError, match=re.escape(needle)):
            ControlLoop(session, robot, **kwargs)
    assert ControlLoop(session, robot, max_fallbacks=np.int64(3)).max_fallbacks == 3
    rc, out = _rc(capsys, "deploy", str(planner_file), "--episodes", "1", "--safe-action", "")
    assert rc == 2 and "--safe-action is empty" in out, out


# --- the seventh hostile probe (2026-11-26, 91 cases) ----------------------------------------------------------

def test_probe7_objective_weights_and_run_dir_formats_are_bounded():
    """uncertainty_weight/explore_weight=1e308 made every planning step invalid with exit 0 (as reward_weight did);
    run_dir {seed:01000000000d} built a 1 GB name; value.lr=1e308 overflowed inside Adam."""
    from robot_wm.config import ConfigError, RunConfig, apply_overrides

    for override, needle in (("planner.uncertainty_weight=1e308", "planner.uncertainty_weight"),
                             ("planner.uncertainty_weight=-1e308", "planner.uncertainty_weight"),
                             ("planner.explore_weight=1e308", "planner.explore_weight"),
                             ("value.lr=1e308", "value.lr"),
                             ("run_dir=/tmp/x/{seed:01000000000d}", "width or precision over 999")):
        with pytest.raises(ConfigError, match=re.escape(needle)):
            apply_overrides(RunConfig(), [override])


def test_probe7_recordings_never_write_through_links_or_over_other_files(run_copy, tmp_path, capsys):
    """A link named x.rrd to RUN/config.toml, an existing non-recording file, a folder; RUN/dreams and RUN/rerun
    linked out of the run (whatif and dream wrote there without the run's lock)."""
    from robot_wm.config import check_rrd_path

    (tmp_path / "cfg.rrd").symlink_to(run_copy / "config.toml")
    (tmp_path / "notes.rrd").write_text("a user's notes")
    (tmp_path / "d.rrd").mkdir()
    for name, needle in (("cfg.rrd", "is a symbolic link"), ("notes.rrd", "is not a Rerun recording"),
                         ("d.rrd", "is not a file"), ("a\x00.rrd", "expected a file name ending in .rrd")):
        with pytest.raises(ValueError, match=needle):
            check_rrd_path(str(tmp_path / name), "--rrd")
    outside = tmp_path / "outside"
    outside.mkdir()
    (run_copy / "dreams").symlink_to(outside)
    before = snapshot(run_copy)
    rc, out = _rc(capsys, "dream", str(run_copy), "--horizon", "3")
    assert rc == 2 and "dreams' is a symbolic link" in out and not list(outside.iterdir()), out
    (run_copy / "rerun").symlink_to(outside)
    rc, out = _rc(capsys, "whatif", str(run_copy), "--step", "3", "--random", "4", "rerun.mode=save")
    # whatif records nothing in Rerun (ninth probe), and says so when asked to (tenth probe)
    assert rc == 2 and "whatif writes no Rerun recording" in out and not list(outside.iterdir()), out
    assert snapshot(run_copy) == before


def test_probe7_eval_without_the_value_plans_without_it(run_copy):
    """`eval RUN value.enabled=false` recorded a PETS evaluation but planned with the checkpoint's value."""
    from robot_wm.cli import _session

    with _session(str(run_copy), ["value.enabled=false"], False, lock=False) as s:
        s.latest_model()
        assert s.value is None
    with _session(str(run_copy), [], False, lock=False) as s:
        s.latest_model()
        assert s.value is not None


DELETE = object()
"""An edit that removes the meta key."""


@pytest.mark.parametrize("edit, needle", [
    ({"reward_known": False}, "has no known reward (the robot reported none"),
    # the eighth probe: only the JSON literal false was refused
    ({"reward_known": DELETE}, "has no known reward (its meta does not say reward_known=true"),
    ({"reward_known": None}, "has no known reward (meta reward_known=None, expected true"),
    ({"reward_known": 0}, "has no known reward (meta reward_known=0, expected true"),
    ({"reward_known": "false"}, "has no known reward (meta reward_known='false', expected true"),
    ({"action_repeat": DELETE}, "does not say its action repeat"),
    ({"action_repeat": "8"}, "does not say its action repeat (meta action_repeat='8')"),
])
def test_probe7_finetune_refuses_recordings_without_reward_or_repeat(run_copy, planner_file, tmp_path, capsys,
                                                                     edit, needle):
    rec = tmp_path / "rec"
    rc, out = _rc(capsys, "deploy", str(planner_file), "--episodes", "1", "--record", str(rec), "--threads", "1")
    assert rc == 0, out
    ep = next(rec.glob("episode_*.npz"))
    _edit_episode(ep, meta={k: v for k, v in edit.items() if v is not DELETE})
    if deleted := [k for k, v in edit.items() if v is DELETE]:
        z = dict(np.load(ep))
        meta = json.loads(str(z["meta"]))
        for k in deleted:
            del meta[k]
        z["meta"] = np.array(json.dumps(meta))
        np.savez(ep, **z)
    rc, out = _rc(capsys, "finetune", str(run_copy), "--data", str(rec), "model.max_epochs=1", "--no-progress")
    assert rc == 2 and needle in out, out
    assert not (run_copy / "robot").exists() or not list((run_copy / "robot").glob("episode_*.npz"))


@pytest.mark.parametrize("room", [0, 50])
def test_a_record_that_cannot_be_appended_names_its_file(tmp_path, room):
    """Under a file size limit, collect said "File too large: a file" (tenth probe): the append names the file, and
    the message says what the limit is. With room for part of the record, the part written goes again: a torn record
    was kept while the message said nothing half-written was (probe 25)."""
    import errno
    import resource

    from robot_wm.cli import describe_os_error

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"kind": "episode"}\n' * 200)
    before = path.read_bytes()
    code = (f"import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({path.stat().st_size + room}, {resource.RLIM_INFINITY})); "
            f"from robot_wm.io import append_jsonl; from pathlib import Path; "
            f"append_jsonl(Path({str(path)!r}), {{'kind': 'train', 'x': 'y' * 100}})")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode != 0 and f"File too large: '{path}'" in r.stderr, r.stderr
    assert path.read_bytes() == before, "the records file ends where it did"
    told = describe_os_error(OSError(errno.EFBIG, "File too large", str(path)))
    assert told.startswith(f"'{path}' would grow past the file size limit"), told


@pytest.mark.parametrize("round_", [10**20, 2**40])
def test_a_train_record_with_an_impossible_round_is_named(run_copy, capsys, round_):
    """An edited train record's round 10**20 was "Overflow when unpacking long long"; 2**40 wrote model_r1099511627777
    (probe 12)."""
    from robot_wm.run_dir import RunDir

    rec = dict(RunDir(run_copy).records("train")[-1], round=round_)
    with open(run_copy / "metrics.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")
    before = sorted(p.name for p in (run_copy / "checkpoints").iterdir())
    rc, out = _rc(capsys, "train", str(run_copy), "model.max_epochs=1", "--no-progress")
    assert rc == 2 and f"next training round at {round_ + 1}, past the 1000000" in out and "metrics.jsonl" in out, out
    assert sorted(p.name for p in (run_copy / "checkpoints").iterdir()) == before


def test_a_training_episode_edited_after_it_was_stored_is_refused(run_copy, capsys):
    """Probe 12 (D7): a run's own training episode with its observations x1000 (a valid file) trained the model on
    it, exit 0. Each episode's record holds the file's sha256; train refuses a file that no longer matches it."""
    import dataclasses

    from robot_wm.data.episode import Episode

    path = run_copy / "episodes" / "episode_000001.npz"
    record = next(r for r in (json.loads(line) for line in (run_copy / "metrics.jsonl").read_text().splitlines())
                  if r.get("kind") == "episode" and r.get("file") == path.name)
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    ep = Episode.load(path)
    dataclasses.replace(ep, obs=ep.obs * 1000).save(path)
    before = snapshot(run_copy)
    rc, out = main_in_process(capsys, "train", str(run_copy), "--no-progress")
    assert rc == 2 and f"episode file {str(path)!r} changed after it was stored" in out, out
    assert snapshot(run_copy) == before  # no round written


def test_the_last_training_episodes_removed_are_refused(run_copy, planner_file, tmp_path, capsys):
    """Probe 21 (SIM-RM1): removing the last training episode files (no gap left) went unnoticed: `train` and
    `finetune` trained a round on fewer episodes than metrics.jsonl records as collected, exit 0."""
    eps = sorted((run_copy / "episodes").glob("episode_*.npz"))
    assert len(eps) >= 2
    eps[-1].unlink()
    before = snapshot(run_copy)
    rc, out = main_in_process(capsys, "train", str(run_copy), "--no-progress")
    assert rc == 2 and f"1 training episode file(s) of {str(run_copy / 'episodes')!r} are missing ({eps[-1].name})" \
        in out, out
    rec = tmp_path / "rec"
    assert main_in_process(capsys, "deploy", str(planner_file), "--episodes", "1", "--record", str(rec))[0] == 0
    rc, out = main_in_process(capsys, "finetune", str(run_copy), "--data", str(rec), "--no-progress")
    assert rc == 2 and "are missing" in out, out
    assert snapshot(run_copy) == before  # no round written, nothing imported


def test_another_runs_manifest_copied_into_a_run_is_named_not_its_config(run_copy, capsys):
    """Probe 34: another run's manifest.json (seed 1) copied over a run's: "config.toml was edited by hand: seed=0
    (robot-wm wrote 1) ... put the values back", and doing so made the run the other one's. The manifest is named."""
    import uuid

    path = run_copy / "manifest.json"
    m = json.loads(path.read_text())
    path.write_text(json.dumps({**m, "run_id": uuid.uuid4().hex, "settings": {**m["settings"], "seed": 1}}))
    before = snapshot(run_copy)
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1")
    assert rc == 2 and "manifest.json' is another run's" in out and "put back this run's own manifest" in out, out
    assert "config.toml' was edited by hand" not in out and snapshot(run_copy) == before
    path.write_text(json.dumps({**m, "settings": {**m["settings"], "seed": 1}}))  # its own id: config.toml edited
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1")
    assert rc == 2 and "config.toml' was edited by hand: seed=0 (robot-wm wrote 1)" in out, out
    # probe 36: its run id alone edited: the run's own episode was "copied in; move it out"
    path.write_text(json.dumps({**m, "run_id": "30ee" + m["run_id"][4:]}))
    rc, out = main_in_process(capsys, "collect", str(run_copy), "--episodes", "1", "--no-progress")
    assert rc == 2 and "but the run's episodes and checkpoints were made by run" in out and "move it out" not in out, out


def test_a_folder_where_the_run_writes_a_file_is_refused_before_any_work(run_copy, capsys):
    """Probe 35: episodes.csv replaced by a folder: eval and collect stored and logged their episode, then failed on
    it ("is a directory ... refusing to replace it"), the kept episode unmentioned."""
    (run_copy / "episodes.csv").unlink()
    (run_copy / "episodes.csv").mkdir()
    before = snapshot(run_copy)
    for cmd in (["eval", str(run_copy), "--episodes", "1"], ["collect", str(run_copy), "--episodes", "1"]):
        rc, out = main_in_process(capsys, *cmd, "--no-progress")
        assert rc == 2 and "episodes.csv' is a directory, where the run writes its file" in out, out
        assert snapshot(run_copy) == before


def test_an_edited_summary_is_refused_before_collect_or_train_works(tiny_run_dir, tmp_path, capsys):
    """Probe 35: another run's summary.json in a complete run: `collect` stored and logged its episode, then exited 2
    naming the summary (nothing said the episode was kept), and `train` said the summary was the run's own."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    s = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**s, "eval_returns": [40.15], "eval_return_mean": 40.15}))
    before = snapshot(run)
    for cmd in (["collect", str(run), "--episodes", "1", "--policy", "random", "--no-progress"],
                ["train", str(run), "--no-progress"]):
        rc, out = main_in_process(capsys, *cmd)
        assert rc == 2 and "summary.json': eval_returns = [40.15]" in out, out
        assert snapshot(run) == before


def test_another_runs_checkpoint_copied_into_a_run_is_refused(tiny_run_dir, tmp_path, capsys):
    """Probe 28: another run's checkpoint put into a run under the run's own round name (hashes its own) was evaluated,
    exported and reported as the run's own. A checkpoint now names its run's id."""
    from conftest import tiny_run

    other = tmp_path / "other"
    assert tiny_run(other, "seed=3") == 0
    run_copy = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run_copy)
    latest = json.loads((run_copy / "checkpoints" / "latest.json").read_text())["checkpoint"]
    for suffix in (".json", ".safetensors"):
        shutil.copy(other / "checkpoints" / Path(latest).with_suffix(suffix), run_copy / "checkpoints")
    before = snapshot(run_copy)
    for args in (["eval", str(run_copy), "--episodes", "1", "--no-progress"], ["train", str(run_copy), "--no-progress"],
                 ["export", str(run_copy), "--out", str(tmp_path / "p.onnx")]):
        rc, out = main_in_process(capsys, *args)
        assert rc == 2 and "was trained by another run" in out and "Traceback" not in out, (args, out)
    assert snapshot(run_copy) == before and not (tmp_path / "p.onnx").exists()
    assert main_in_process(capsys, "eval", str(other), "--episodes", "1", "--no-progress")[0] == 0  # its own run


def test_a_removed_final_evaluation_episode_is_refused_not_renumbered(tiny_run_dir, tmp_path, capsys):
    """Probe 28: with the final evaluation's last episode file removed, `eval --planner random` stored its episode
    under that number, which manifest.json names as the run's own final evaluation; --resume then called the
    manifest edited."""
    run_copy = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run_copy)
    last = max((run_copy / "eval").glob("episode_*.npz"))
    last.unlink()
    before = snapshot(run_copy)
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--planner", "random", "--no-progress")
    assert rc == 2 and f"1 evaluation episode file(s) of {str(run_copy / 'eval')!r} are missing ({last.name})" in out, out
    assert snapshot(run_copy) == before


def test_finetune_says_the_summary_is_the_runs_own_final_evaluation(tiny_run_dir, planner_file, tmp_path, capsys):
    """Probe 21 (SUM-F1): after a fine-tuning, summary.json (the run's headline) still described the round before,
    and nothing said so, while export and deploy used the fine-tuned round."""
    run_copy = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run_copy)
    (run_copy / "config.toml").write_text((run_copy / "config.toml").read_text().replace(str(tiny_run_dir),
                                                                                        str(run_copy)))
    before = (run_copy / "summary.json").read_bytes()
    rec = tmp_path / "rec"
    assert main_in_process(capsys, "deploy", str(planner_file), "--episodes", "1", "--record", str(rec))[0] == 0
    rc, out = main_in_process(capsys, "finetune", str(run_copy), "--data", str(rec), "--no-progress")
    assert rc == 0 and "summary.json describes its own final evaluation (before this fine-tuning)" in out, out
    assert (run_copy / "summary.json").read_bytes() == before


def test_session_collect_refuses_an_unknown_phase_or_an_index_stored_already(run_copy):
    """Probe 21 (API-COL2): `s.collect(policy, 'banana', 1)` stored training data; `s.collect(policy, 'train', 0)` on
    a run holding episode 0 stored it again under the next name (the same seed, start and random actions)."""
    from policies.random import RandomPolicy
    from robot_wm.run_dir import RunDir
    from robot_wm.runner import Session

    run = RunDir(run_copy)
    n = len(run.dataset())
    with Session.open(run.load_config(), run, progress=False) as s:
        policy = RandomPolicy(s.env.action_spec, seed=0)
        for phase, index, needle in (("banana", n, "phase='banana'"), ("train", 0, "training episode 0 is stored"),
                                     ("eval", -5, "index=-5"), ("train", 1.5, "index=1.5")):
            with pytest.raises(ValueError, match=re.escape(needle)):
                s.collect(policy, phase, index)
        assert len(run.dataset()) == n
        s.collect(policy, "train", np.int64(n))  # numpy's integers too (the review: a TypeError after the file)
    assert len(run.dataset()) == n + 1 and run.records("episode")[-1]["index"] == n


def test_a_byte_copy_of_a_training_episode_under_the_next_name_is_refused(run_copy, capsys):
    """Probe 15: `cp episode_000000.npz episode_00000N.npz` (not a link, which probe 13 refused) was trained on
    twice, exit 0. A file without a record whose bytes match another episode's record is named as a copy."""
    import shutil

    eps = run_copy / "episodes"
    copy = eps / f"episode_{len(list(eps.glob('episode_*.npz'))):06d}.npz"
    shutil.copyfile(eps / "episode_000000.npz", copy)
    before = snapshot(run_copy)
    rc, out = main_in_process(capsys, "train", str(run_copy), "--no-progress")
    assert rc == 2 and f"episode file {str(copy)!r} is a copy of episode_000000.npz" in out, out
    assert snapshot(run_copy) == before


def test_an_episode_file_the_run_never_collected_is_refused(tiny_run_dir, tmp_path, capsys):
    """Probe 22: the run's own final-evaluation episode, or another run's, copied in as the next training episode was
    trained on without a word (no record in metrics.jsonl, and only recorded files were checked). A file stored but
    never logged (a kill between the two) is still taken: its meta says it is that training episode."""
    import json
    import shutil

    run_copy = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run_copy)
    (run_copy / "config.toml").write_text((run_copy / "config.toml").read_text().replace(str(tiny_run_dir),
                                                                                        str(run_copy)))
    eps = run_copy / "episodes"
    n = len(list(eps.glob("episode_*.npz")))
    nxt = eps / f"episode_{n:06d}.npz"
    shutil.copyfile(next((run_copy / "eval").glob("episode_*.npz")), nxt)
    before = snapshot(run_copy)
    rc, out = main_in_process(capsys, "train", str(run_copy), "--no-progress")
    assert rc == 2 and f"episode file {str(nxt)!r} has no record in metrics.jsonl and is not a training episode" \
        in out and "phase 'eval'" in out, out
    assert snapshot(run_copy) == before
    # probe 24: whatif read the file train refuses, without a word
    rc, out = main_in_process(capsys, "whatif", str(run_copy), "--episode", str(n), "--step", "1", "--random", "2")
    assert rc == 2 and "has no record in metrics.jsonl" in out, out
    # the run's own last episode whose record was never written: taken
    nxt.unlink()
    last = eps / f"episode_{n - 1:06d}.npz"
    lines = (run_copy / "metrics.jsonl").read_text().splitlines(keepends=True)
    keep = [ln for ln in lines if json.loads(ln).get("file") != last.name or json.loads(ln).get("phase") != "train"]
    assert len(keep) == len(lines) - 1
    (run_copy / "metrics.jsonl").write_text("".join(keep))
    rc, out = main_in_process(capsys, "train", str(run_copy), "--no-progress")
    assert rc == 0, out
    # the review: an episode of a one-off `collect RUN seed=7` killed before its record was written, taken too
    rc, out = main_in_process(capsys, "collect", str(run_copy), "--episodes", "1", "seed=7", "--no-progress")
    assert rc == 0, out
    lines = (run_copy / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run_copy / "metrics.jsonl").write_text("".join(lines[:-1]))
    assert json.loads(lines[-1]).get("file") == f"episode_{n:06d}.npz"
    rc, out = main_in_process(capsys, "train", str(run_copy), "--no-progress")
    assert rc == 0, out
    # the next writer logs it (probe 29: only the last may lack a record), as a collect after a resume does
    from robot_wm.run_dir import RunDir

    RunDir(run_copy).log_unlogged_last(RunDir(run_copy).dataset())
    assert RunDir(run_copy).records("episode")[-1]["file"] == f"episode_{n:06d}.npz"
    # session 21: another run's training episode of the same task, same settings (phase 'train', no source): its id
    from conftest import TINY_RUN_ARGS

    other = tmp_path / "other"
    rc, out = main_in_process(capsys, "collect", str(other), *TINY_RUN_ARGS, "--policy", "random", "--episodes", "1",
                              "--no-progress")
    assert rc == 0, out
    nxt = eps / f"episode_{len(list(eps.glob('episode_*.npz'))):06d}.npz"
    shutil.copyfile(other / "episodes" / "episode_000000.npz", nxt)
    before = snapshot(run_copy)
    rc, out = main_in_process(capsys, "train", str(run_copy), "--no-progress")
    ids = [json.loads((d / "manifest.json").read_text())["run_id"] for d in (other, run_copy)]
    assert rc == 2 and "was collected by another run" in out and f"(run id {ids[0][:12]}..., this run's " \
        f"{ids[1][:12]}...)" in out, out  # (probe 32: recorded or not)
    assert snapshot(run_copy) == before
    # probe 23: collect stored its episode after the file train refuses, and the run could never train again
    rc, out = main_in_process(capsys, "collect", str(run_copy), "--episodes", "1", "--policy", "random", "--no-progress")
    assert rc == 2 and f"(run id {ids[0][:12]}..." in out, out
    assert snapshot(run_copy) == before


def test_more_torch_threads_than_cpus_use_the_cpus(caplog):
    """Probe 14: `eval threads=1024` under a memory limit spent it on thread stacks, then MuJoCo's compile failed
    with "unknown exception". A config's threads above this machine's CPUs are its CPUs, said once."""
    import torch

    from robot_wm.seeding import seed_everything

    from robot_wm.cpus import available_cpus

    before = torch.get_num_threads()
    try:
        seed_everything(0, threads=1024)
        assert torch.get_num_threads() == available_cpus()
        assert f"threads=1024: this machine has {available_cpus()} CPUs" in caplog.text
    finally:
        torch.set_num_threads(before)


def test_sigterm_during_collect_leaves_the_manifest_counting_every_stored_episode(run_copy):
    """Probe 14: SIGTERM to `collect RUN --episodes 50` after 3 episodes: exit 143, but manifest.json kept its
    count from before beside the 3 new episodes, for good (train and eval never corrected it)."""
    start = len(list((run_copy / "episodes").glob("episode_*.npz")))
    proc = subprocess.Popen([sys.executable, "-m", "robot_wm.cli", "collect", str(run_copy), "--episodes", "1000000",
                             "--no-progress"],  # never done before the signal (50 random episodes could be, on CI) stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "MUJOCO_GL": "egl"})
    end = time.monotonic() + 120
    while len(list((run_copy / "episodes").glob("episode_*.npz"))) < start + 3 and time.monotonic() < end:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    stored = len(list((run_copy / "episodes").glob("episode_*.npz")))
    assert proc.returncode == 143 and stored >= start + 3, out
    assert json.loads((run_copy / "manifest.json").read_text())["episodes"] == stored


def test_records_too_big_to_read_refuse_the_command_before_any_work(run_copy, capsys):
    """Probe 14: a metrics.jsonl past the bound was found only when eval logged its first episode: the episode was
    stored, then the command failed. Now refused before anything is written."""
    with open(run_copy / "metrics.jsonl", "r+b") as f:
        f.truncate((256 << 20) + 1)
    before = snapshot(run_copy)
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--no-progress")
    assert rc == 2 and "at most 256 MiB is read" in out and snapshot(run_copy) == before, out


def test_a_closed_or_full_standard_output_does_not_stop_the_command(planner_file, run_copy, tmp_path):
    """Probe 15: `deploy ... --record D | head -1` stopped after the first episode ("Broken pipe: a file"); `run ... >
    /dev/full` finished, then exited 1 advising --resume on a complete run. Standard output is said lost once and
    the command goes on; a reader that left is its choice (exit 0), a full device fails the command at its end (its
    printout may be its result), without advice to resume."""
    cmd = [sys.executable, "-m", "robot_wm.cli"]
    env = {**os.environ, "MUJOCO_GL": "egl"}
    p = subprocess.Popen([*cmd, "deploy", str(planner_file), "--episodes", "2", "--record", str(tmp_path / "rec"),
                          "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    p.stdout.close()  # the reader went away before the first line
    err = p.stderr.read()
    assert p.wait(timeout=300) == 0, err
    assert "standard output failed (Broken pipe); going on without printing" in err and "Traceback" not in err
    assert len(list((tmp_path / "rec").glob("episode_*.npz"))) == 2
    episodes = len(list((run_copy / "episodes").glob("episode_*.npz")))
    with open("/dev/full", "w") as full:
        r = subprocess.run([*cmd, "collect", str(run_copy), "--episodes", "1", "--policy", "random", "--no-progress"],
                           stdout=full, stderr=subprocess.PIPE, text=True, env=env, timeout=300, check=False)
    assert r.returncode == 1 and "standard output failed (No space left on device)" in r.stderr, r.stderr
    assert "its standard output could not be written" in r.stderr and "--resume" not in r.stderr
    assert len(list((run_copy / "episodes").glob("episode_*.npz"))) == episodes + 1  # the work was done
    closed = subprocess.run([*cmd, "collect", str(run_copy), "--episodes", "1", "--policy", "random", "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, timeout=300,
                            check=False, preexec_fn=lambda: os.close(1))  # `>&-`: sys.stdout is None (probe 16)
    assert closed.returncode == 0 and "Traceback" not in closed.stderr, closed.stderr


@pytest.mark.parametrize("edit", [("hidden = 32", "hidden = 64", "model.hidden=64 (robot-wm wrote 32)"),
                                  ("elites = 2", "elites = 1", "model.elites=1 (robot-wm wrote 2)")])
def test_network_sizes_edited_into_config_toml_are_refused(run_copy, capsys, edit):
    """Probe 15: `sed -i s/hidden = 200/hidden = 64/ RUN/config.toml`; eval and train used the checkpoint's networks
    and said nothing (an edited elites count was applied by the next train)."""
    old, new, needle = edit
    text = (run_copy / "config.toml").read_text()
    assert f"\n{old}\n" in text, text
    (run_copy / "config.toml").write_text(text.replace(f"\n{old}\n", f"\n{new}\n", 1))
    before = snapshot(run_copy)
    for command in ("eval", "train"):
        rc, out = main_in_process(capsys, command, str(run_copy), "--no-progress")
        assert rc == 2 and needle in out and "was edited by hand" in out, out
    assert snapshot(run_copy) == before


def test_settings_edited_into_an_interrupted_runs_config_toml_are_refused(tiny_run_dir, tmp_path, capsys):
    """Probe 29: [env.randomize] mass and planner.samples edited into config.toml, then --resume: later episodes and
    the final evaluation ran on a heavier robot, exit 0, where the same change as an override is refused."""
    from conftest import TINY_RUN_ARGS

    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    (run / "summary.json").unlink()
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))  # as if stopped before the end
    text = (run / "config.toml").read_text()
    assert "\nsamples = 32\n" in text
    (run / "config.toml").write_text(text.replace("\nsamples = 32\n", "\nsamples = 48\n", 1))
    before = snapshot(run)
    for args in (["run", f"run_dir={run}", *TINY_RUN_ARGS, "--resume"], ["eval", str(run), "--episodes", "1"]):
        rc, out = main_in_process(capsys, *args, "--no-progress")
        assert rc == 2 and "was edited by hand: planner.samples=48 (robot-wm wrote 32)" in out, out
    assert snapshot(run) == before
    (run / "config.toml").write_text(text)  # put back: the run goes on
    assert main_in_process(capsys, "run", f"run_dir={run}", *TINY_RUN_ARGS, "--resume", "--no-progress")[0] == 0


def _retimed_checkpoint(run: Path, dst: Path, **changes) -> Path:
    """The run's latest checkpoint copied into ``dst`` with its JSON's fields changed (and sealed again)."""
    from robot_wm.model.checkpoint import sealed
    from robot_wm.run_dir import RunDir

    src = RunDir(run).latest_checkpoint().with_suffix(".json")
    meta = {k: v for k, v in json.loads(src.read_text()).items() if k != "config_sha256"}
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    if isinstance(changes.get("action_repeat"), int) and meta.get("value_spec"):  # as if trained at that repeat
        vs = meta["value_spec"]
        meta["value_spec"] = {**vs, "value_scale": changes["action_repeat"] / (1 - vs["discount"])}
    if dst != src.parent:
        dst.mkdir(parents=True)
        shutil.copy(src.with_suffix(".safetensors"), dst / src.with_suffix(".safetensors").name)
    (dst / src.name).write_text(json.dumps(sealed(meta)))
    return dst / src.name


def test_a_checkpoint_of_another_time_step_is_refused_and_a_loose_one_keeps_its_own(run_copy, tmp_path, capsys):
    """A checkpoint trained at action repeat 4 was exported and evaluated at the run's 8 (its sizes being the same),
    and a loose one was exported at the default 8 (probe 17 EX1/EX2). Checkpoints say their time step now."""
    import onnx

    from robot_wm.run_dir import RunDir

    written = RunDir(run_copy).latest_checkpoint().with_suffix(".json")
    assert json.loads(written.read_text())["action_repeat"] == 8  # written with every round
    _retimed_checkpoint(run_copy, run_copy / "checkpoints", action_repeat=4)
    for cmd in (["eval", str(run_copy), "--episodes", "1"], ["export", str(run_copy), "--out", str(tmp_path / "x.onnx")]):
        rc, out = main_in_process(capsys, *cmd)
        assert rc == 2 and "env.action_repeat=8 but the checkpoint was trained at 4" in out, (cmd, out)
    assert not (tmp_path / "x.onnx").exists()
    loose = _retimed_checkpoint(run_copy, tmp_path / "loose", action_repeat=4)
    rc, out = main_in_process(capsys, "export", str(loose), "--out", str(tmp_path / "loose.onnx"))
    assert rc == 0, out
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "loose.onnx")).metadata_props}
    assert props["action_repeat"] == "4" and float(props["control_period"]) == pytest.approx(0.04)
    _retimed_checkpoint(run_copy, run_copy / "checkpoints", action_repeat=8, task="cartpole-balance")  # probe 18
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1")
    assert rc == 2 and "is a model of task 'cartpole-balance', the run's is 'cartpole-swingup'" in out, out
    _retimed_checkpoint(run_copy, run_copy / "checkpoints", task=123)  # exported without a word (probe 19)
    rc, out = main_in_process(capsys, "export", str(run_copy), "--out", str(tmp_path / "t.onnx"))
    assert rc == 2 and "says task=123: expected a task name" in out, out
    _retimed_checkpoint(run_copy, run_copy / "checkpoints", task=None)  # its task removed, resealed (probe 20)
    rc, out = main_in_process(capsys, "export", str(run_copy), "--out", str(tmp_path / "t.onnx"))
    assert rc == 2 and "says its time step but not its task" in out, out
    old = _retimed_checkpoint(run_copy, tmp_path / "old", action_repeat=None, substeps=None)  # before 2026-11-27
    rc, out = main_in_process(capsys, "export", str(old), "--out", str(tmp_path / "old.onnx"))
    assert rc == 2 and "does not say its action repeat" in out, out


def test_the_recorder_refuses_before_the_robot_moves_and_takes_either_task_spelling(tmp_path):
    """Probe 17: a seed of -1 was refused only at end(), the driven episode lost (RA1); step() before begin() failed
    at end() (RA3); a folder of cartpole-swingup episodes refused cartpole_swingup (AL1); a name with Arabic-Indic
    digits counted as an episode (UN1)."""
    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.runtime.record import DeploymentRecorder
    from robot_wm.runtime.robot import SimRobot

    robot = SimRobot(_sim_env())
    robot.reset(0)
    rec = DeploymentRecorder(tmp_path / "r", task="cartpole-swingup", planner="x", action_repeat=8, planner_delay=0)
    with pytest.raises(ValueError, match="before begin"):
        rec.step(robot, np.zeros(1, np.float32), 0.001, None)
    for bad in (-1, "robot-7", 1.5, True):
        with pytest.raises(ValueError, match=r"DeploymentRecorder.begin: seed="):
            rec.begin(robot, bad)
    rec.begin(robot, 0)
    for _ in range(3):
        robot.send_action(np.zeros(1, np.float32))
        rec.step(robot, np.zeros(1, np.float32), 0.001, None)
    first = rec.end()
    alias = DeploymentRecorder(tmp_path / "r", task="cartpole_swingup", planner="x", action_repeat=8, planner_delay=0)
    alias.begin(robot, 1)  # the same task
    shutil.copy(first, tmp_path / "r" / "episode_\u0660\u0660\u0660\u0660\u0660\u0661.npz")
    data = EpisodeDataset(tmp_path / "r")
    assert len(data) == 1 and data.paths() == [first]


def test_deploy_sim_given_twice_adds_up_and_record_given_twice_is_refused(planner_file, tmp_path, capsys):
    """`--sim A --record R --sim B` deployed the nominal robot: the first --sim was dropped (probe 17 CLI1); a second
    --record replaced the first (CLI2)."""
    from robot_wm.data.dataset import EpisodeDataset

    rc, out = main_in_process(capsys, "deploy", str(planner_file), "--task", "cartpole-swingup", "--episodes", "1",
                              "--sim", "randomize.mass=[1.3,1.3]", "--record", str(tmp_path / "r"),
                              "--sim", "max_env_steps=80")
    assert rc == 0, out
    ep = EpisodeDataset(tmp_path / "r")[0]
    assert ep.meta["randomization"]["mass"] == 1.3 and len(ep) == 10, ep.meta
    with pytest.raises(SystemExit) as e:
        main_in_process(capsys, "deploy", str(planner_file), "--record", "a", "--record", "b")
    assert e.value.code == 2 and "argument --record: given twice" in capsys.readouterr().err


def test_numpy_numbers_and_misshapen_actions_from_python_callers(tmp_path):
    """Probe 17: a seed of np.int64(3) and a meta value np.float32(1.5) were json's TypeError at save (API1, RA2);
    a policy returning [[0.3]] drove a whole episode, then the episode was refused (API2); a recorder's action
    repeat np.int64(8) was "not a whole number" (RA4)."""
    from robot_wm.data.episode import Episode
    from robot_wm.runtime.record import DeploymentRecorder
    from sim.collect import run_episode

    class Policy:
        name = "p"

        def __init__(self, action):
            self.action = action

        def reset(self):
            pass

        def act(self, obs):
            return self.action

    env = _sim_env()
    ep = run_episode(env, Policy(np.array([0.1])), seed=np.int64(3), meta={"note": np.float32(1.5)})
    ep.save(tmp_path / "e.npz")
    back = Episode.load(tmp_path / "e.npz")
    assert back.meta["seed"] == 3 and back.meta["note"] == 1.5
    with pytest.raises(ValueError, match=r"the action of policy 'p' has shape \(1, 1\), expected \(1,\)"):
        run_episode(env, Policy(np.array([[0.3]])), seed=0)
    rec = DeploymentRecorder(tmp_path / "r", task="cartpole-swingup", planner="x", action_repeat=np.int64(8), planner_delay=0)
    assert type(rec.meta["action_repeat"]) is int and rec.meta["action_repeat"] == 8


def test_deploy_numbers_are_ascii_decimals_and_dream_names_a_physics_state_of_another_size(
        planner_file, run_copy, tmp_path, capsys):
    """Probe 17: `--safe-action=٠.٥` was read as 0.5 and `1_0` as 10 (SA1); `dream --data` on a recording whose physics
    state has another width was a MuJoCo TypeError (PS1)."""
    from robot_wm.data.dataset import EpisodeDataset
    from robot_wm.data.episode import Episode

    for text in ("\u0660.\u0665", "1_0"):
        rc, out = main_in_process(capsys, "deploy", str(planner_file), f"--safe-action={text}", "--episodes", "1")
        assert rc == 2 and "expected comma-separated numbers" in out, out
    rc, out = main_in_process(capsys, "deploy", str(planner_file), "--task", "cartpole-swingup", "--episodes", "1",
                              "--record", str(tmp_path / "r"), "--sim", "max_env_steps=80")
    assert rc == 0, out
    ep = EpisodeDataset(tmp_path / "r")[0]
    cut = EpisodeDataset(tmp_path / "cut", create=True)
    cut.append(Episode(ep.obs, ep.action, ep.reward, ep.physics_state[:, :2], ep.meta))
    rc, out = main_in_process(capsys, "dream", str(run_copy), "--data", str(tmp_path / "cut"), "--episode", "0",
                              "--horizon", "3")
    assert rc == 2 and "holds physics states of 2 numbers, the simulated robot's have" in out, out


def test_a_run_inside_a_run_folders_that_are_one_and_fifos_are_refused_before_any_work(run_copy, capsys):
    """Probe 17: `run run_dir=RUN/robot` made a run inside a run, whose finetune then wrote into it (NEST1); `eval`
    with `eval` a link to `episodes` stored its episode where training reads (SL3); with episodes.csv a FIFO it stored
    its episode, then failed (FF2)."""
    from robot_wm.data.dataset import EpisodeDataset

    rc, out = main_in_process(capsys, "run", f"run_dir={run_copy / 'robot'}", "env_steps=100", "--no-progress")
    assert rc == 2 and "lies inside the run directory" in out and not (run_copy / "robot").exists(), out
    episodes = len(EpisodeDataset(run_copy / "episodes"))
    shutil.rmtree(run_copy / "eval")
    (run_copy / "eval").symlink_to("episodes")
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--no-progress")
    assert rc == 2 and "is the run's 'episodes' folder under another name" in out, out
    (run_copy / "eval").unlink()
    (run_copy / "eval").mkdir()
    (run_copy / "episodes.csv").unlink()
    os.mkfifo(run_copy / "episodes.csv")
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--no-progress")
    assert rc == 2 and "episodes.csv' is not a regular file" in out, out
    assert len(EpisodeDataset(run_copy / "episodes")) == episodes and not list((run_copy / "eval").iterdir())


def test_compensating_a_delay_the_model_was_trained_with_is_warned(run_copy, tmp_path, capsys):
    """A run trained with env.randomize.action_delay=[1,1], exported with planner.delay=1: the delay counted twice,
    without a word (probe 17 DL2). A one-off delayed robot at evaluation is not the run's training."""
    cfg = run_copy / "config.toml"
    text = cfg.read_text()
    assert "action_delay = [\n    0,\n    0,\n]" in text
    cfg.write_text(text.replace("action_delay = [\n    0,\n    0,\n]", "action_delay = [1, 1]"))
    manifest = json.loads((run_copy / "manifest.json").read_text())  # as robot-wm wrote it (an edit is refused)
    settings = {**manifest["settings"], "env.randomize.action_delay": [1, 1]}
    (run_copy / "manifest.json").write_text(json.dumps({**manifest, "settings": settings}))
    rc, out = main_in_process(capsys, "export", str(run_copy), "--out", str(tmp_path / "p.onnx"), "planner.delay=1")
    assert rc == 0 and "the delay may be counted twice" in out, out
    cfg.write_text(text)
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--no-progress", "planner.delay=1",
                              "env.randomize.action_delay=[1,1]")
    assert rc == 0 and "counted twice" not in out, out


def test_compensating_a_delay_a_one_off_collect_trained_is_warned(run_copy, tmp_path, capsys):
    """Probe 20's leftover: the double-delay warning read the run's config only, so a run whose delayed episodes came
    from a one-off `collect ... env.randomize.action_delay=[1,1]` (its model learned the delay) was exported and
    evaluated with planner.delay=1 without a word."""
    rc, out = main_in_process(capsys, "export", str(run_copy), "--out", str(tmp_path / "p0.onnx"), "planner.delay=1")
    assert rc == 0 and "counted twice" not in out, out
    rc, out = main_in_process(capsys, "collect", str(run_copy), "--episodes", "1", "--policy", "random",
                              "--no-progress", "env.randomize.action_delay=[1,1]")
    assert rc == 0, out
    rc, out = main_in_process(capsys, "export", str(run_copy), "--out", str(tmp_path / "p.onnx"), "planner.delay=1")
    assert rc == 0 and "1 episode(s) driven with an action delay" in out and "counted twice" in out, out
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--no-progress", "planner.delay=1")
    assert rc == 0 and "1 episode(s) driven with an action delay" in out, out
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--no-progress")
    assert rc == 0 and "counted twice" not in out, out


def test_a_command_may_name_the_runs_task_in_its_other_spelling(run_copy, capsys):
    """`eval RUN env.task=cartpole_swingup` on a cartpole-swingup run: "cannot change env.task" (probe 17 AL2)."""
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--no-progress",
                              "env.task=cartpole_swingup")
    assert rc == 0 and "cannot change" not in out, out
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--no-progress",
                              "env.task=cartpole-balance")
    assert rc == 2 and "cannot change env.task" in out, out
    # a key given twice: the last is used, and said (probe 17 DUP1: without a word)
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--no-progress", "planner.samples=32",
                              "planner.samples=16")
    assert rc == 0 and "override planner.samples given 2 times; the last, 'planner.samples=16', is used" in out, out


def test_a_session_without_the_runs_lock_writes_nothing(run_copy):
    """A read-only session (lock=False) and a closed one collected into a run whose lock another process held
    (probe 17 SES1)."""
    from policies.random import RandomPolicy
    from robot_wm.run_dir import RunDir
    from robot_wm.runner import Session

    run = RunDir(run_copy)
    episodes = len(run.dataset())
    with Session.open(run.load_config(), run, progress=False, lock=False) as s, \
            pytest.raises(RuntimeError, match="does not hold the run's lock"):
        s.collect(RandomPolicy(s.env.action_spec, seed=0), "train", episodes)
    with Session.open(run.load_config(), run, progress=False, lock=False) as s, \
            pytest.raises(RuntimeError, match="does not hold the run's lock"):  # probe 18: it wrote a round
        from robot_wm.finetune import finetune

        finetune(s, run_copy / "nothing")
    s = Session.open(run.load_config(), run, progress=False)
    s.close()
    for write in (lambda: s.collect(RandomPolicy(s.env.action_spec, seed=0), "train", episodes), lambda: s.train(9)):
        with pytest.raises(RuntimeError, match="does not hold the run's lock"):
            write()
    assert len(RunDir(run_copy).dataset()) == episodes


def test_probe18_arguments_paths_and_recorder_calls_are_refused_first(run_copy, planner_file, tmp_path, capsys):
    """Probe 18: '٣' read as 3 by --step/--episode/--weight (CLI-N2/N3); a planner path that is no UTF-8 stored
    as an escape (U8-2); `export --out FILE/x.onnx` and `deploy --record FILE/sub` failed after the work with a bare
    "Not a directory" (OUT2); begin(np.int64(3)) was json's TypeError and begin() twice dropped the held steps
    (REC-S2, REC-B2); a loose checkpoint beside a config.toml that is no run's took that config's task (CK4b)."""
    from robot_wm.runtime.record import DeploymentRecorder
    from robot_wm.runtime.robot import SimRobot

    for cmd in (["whatif", str(run_copy), "--step", "\u0663"], ["finetune", str(run_copy), "--data", "x",
                                                                 "--weight", "\u0667"]):
        with pytest.raises(SystemExit) as e:
            main_in_process(capsys, *cmd)
        assert e.value.code == 2 and "expected a whole number, got" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main_in_process(capsys, "deploy", "p\udcfe.onnx")
    assert "is not a UTF-8 path" in capsys.readouterr().err
    rc, out = main_in_process(capsys, "export", str(run_copy), "--out", str(planner_file / "x.onnx"))
    assert rc == 2 and "--out" in out and "is a file, not a folder" in out, out
    rc, out = main_in_process(capsys, "deploy", str(planner_file), "--record", str(planner_file / "sub"))
    assert rc == 2 and "--record" in out and "is a file, not a folder" in out, out
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")  # a broken link where a folder belongs (session 27)
    for cmd in (["export", str(run_copy), "--out", str(tmp_path / "gone" / "sub" / "x.onnx")],
                ["deploy", str(planner_file), "--record", str(tmp_path / "gone" / "sub")]):
        rc, out = main_in_process(capsys, *cmd)
        assert rc == 2 and "'gone' is a symbolic link to" in out.replace(str(tmp_path) + "/", ""), out
    robot = SimRobot(_sim_env())
    robot.reset(0)
    rec = DeploymentRecorder(tmp_path / "r", task="cartpole-swingup", planner="x", action_repeat=8, planner_delay=0)
    rec.begin(robot, np.int64(3))
    robot.send_action(np.zeros(1, np.float32))
    rec.step(robot, np.zeros(1, np.float32), 0.001, None)
    with pytest.raises(ValueError, match="the previous episode holds steps: end"):
        rec.begin(robot, 4)
    assert rec.end().exists()
    proj = tmp_path / "proj"  # a folder with a config.toml of another task, not a run
    _retimed_checkpoint(run_copy, proj / "checkpoints")
    (proj / "config.toml").write_text('[env]\ntask = "cartpole-balance"\n')
    rc, out = main_in_process(capsys, "export", str(next((proj / "checkpoints").glob("*.json"))), "--out",
                              str(tmp_path / "loose.onnx"))
    assert rc == 0 and "cartpole-balance" not in out, out
    import onnx

    props = {p.key: p.value for p in onnx.load(str(tmp_path / "loose.onnx")).metadata_props}
    assert props["task"] == "cartpole-swingup"


def test_a_symbolic_link_loop_as_a_folder_is_named(run_copy, planner_file, tmp_path, capsys):
    """Probe 20 (SL1): `finetune --data LOOP` and `deploy --record LOOP` were a traceback ending 'RuntimeError:
    Symlink loop from ...' (Path.resolve()), before anything was driven or imported."""
    loop = tmp_path / "sloop"
    loop.symlink_to(loop)
    rc, out = _rc(capsys, "finetune", str(run_copy), "--data", str(loop))
    assert rc == 2 and f"{str(loop)!r} is a symbolic link loop" in out and "Traceback" not in out, out
    rc, out = _rc(capsys, "deploy", str(planner_file), "--episodes", "1", "--record", str(loop))
    assert rc == 2 and f"{str(loop)!r} is a symbolic link loop" in out and "Traceback" not in out, out


def test_an_episode_the_planner_never_controlled_fails_eval():
    """Probe 23: eval exited 3 only where most steps of all its episodes fell back, so one episode that never planned,
    beside two that did, averaged into a return that looked like the planner's (exit 0). Each episode counts alone."""
    from robot_wm.cli import uncontrolled_episodes

    good, lost = {"fallbacks": 0, "control_steps": 125}, {"fallbacks": 125, "control_steps": 125}
    assert uncontrolled_episodes([good, lost, good]) == [1]
    assert uncontrolled_episodes([good, {"fallbacks": 62, "control_steps": 125}]) == []  # under half: planned
    assert uncontrolled_episodes([good, {"return": 5.0}]) == []  # a planner that counts no fallbacks (random)


def _complete_copy(tiny_run_dir, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    return run


def _edit_manifest(run: Path, **fields) -> None:
    (run / "manifest.json").write_text(json.dumps({**json.loads((run / "manifest.json").read_text()), **fields}))


def test_a_rebuilt_summary_refuses_an_edited_list_of_the_final_evaluation(tiny_run_dir, tmp_path, capsys):
    """Probe 29: final_eval_episodes edited to one episode three times, or to other evaluation episodes, and
    summary.json removed: --resume rebuilt the headline from the edited list, exit 0."""
    from conftest import tiny_run

    run = _complete_copy(tiny_run_dir, tmp_path)
    assert main_in_process(capsys, "eval", str(run), "--episodes", "1", "--no-progress")[0] == 0  # eval episode 1
    (run / "summary.json").unlink()
    own = json.loads((run / "manifest.json").read_text())["final_eval_episodes"]
    assert own == [0]
    for edited, needle in (([0, 0, 0], "repeat an episode"),
                           ([1], "its final evaluation's record in metrics.jsonl names [0]")):
        _edit_manifest(run, final_eval_episodes=edited)
        before = snapshot(run)
        assert tiny_run(run, "--resume") == 2
        assert needle in capsys.readouterr().err
        assert snapshot(run) == before and not (run / "summary.json").exists()
    _edit_manifest(run, final_eval_episodes=own)
    assert tiny_run(run, "--resume") == 0


def test_a_rebuilt_summary_describes_the_data_its_model_had(tiny_run_dir, tmp_path, capsys):
    """Probe 31: `collect` on a complete run, summary.json removed, --resume: the rebuilt summary said 800 steps and
    4 episodes for a model trained on 400, its learning curve gained a point at 800, and a second final record was
    logged. The rebuilt summary is the one the run wrote, wall clock aside."""
    from conftest import tiny_run

    run = _complete_copy(tiny_run_dir, tmp_path)
    old = json.loads((run / "summary.json").read_text())
    finals = [ln for ln in (run / "metrics.jsonl").read_text().splitlines() if '"final": true' in ln]
    assert main_in_process(capsys, "collect", str(run), "--episodes", "1", "--no-progress")[0] == 0
    (run / "summary.json").unlink()
    assert tiny_run(run, "--resume") == 0
    new = json.loads((run / "summary.json").read_text())
    for key in ("env_steps", "episodes", "eval_returns", "learning_curve", "train_returns", "multistep_mse"):
        assert new[key] == old[key], key
    assert [ln for ln in (run / "metrics.jsonl").read_text().splitlines() if '"final": true' in ln] == finals


def test_an_unrecorded_episode_longer_than_any_robot_wm_collects_is_refused(tiny_run_dir, tmp_path, capsys):
    """Probe 31: an 860 KB file of 13,000,000 zero steps, its meta copied from the run's own episode, put in as the
    last episode (the one that may lack a record): train took 2.9 GB and hung. More steps than an episode can hold
    (env.max_env_steps is at most 100,000) is refused before training, and nothing is written."""
    from robot_wm.config import MAX_EPISODE_ENV_STEPS
    from robot_wm.data.episode import Episode

    run = _complete_copy(tiny_run_dir, tmp_path)
    files = sorted((run / "episodes").glob("episode_*.npz"))
    own = Episode.load(files[-1])
    t = MAX_EPISODE_ENV_STEPS + 1
    meta = {**own.meta, "control_steps": t, "env_steps": t * 8, "physics_steps": t * 8}
    Episode(np.zeros((t + 1, own.obs.shape[1])), np.zeros((t, own.action.shape[1])), np.zeros(t),
            np.zeros((t + 1, own.physics_state.shape[1])), meta).save(run / "episodes" / f"episode_{len(files):06d}.npz")
    before = snapshot(run)
    rc, out = main_in_process(capsys, "train", str(run), "--no-progress")
    assert rc == 2 and "holds 100,001 steps, more than robot-wm collects in an episode" in out, out
    assert snapshot(run) == before


def test_a_run_with_its_standard_error_closed_completes(tmp_path):
    """Probe 31: `robot-wm run ... 2>&-` (a cron line) with progress bars on ended with exit 1, no word anywhere,
    the run left running with no episode. The bars go nowhere; the run completes."""
    run = tmp_path / "run"
    cmd = [a for a in run_cmd(run) if a != "--no-progress"]
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=None, timeout=600, check=False,
                       env={**os.environ, "MUJOCO_GL": "egl"}, pass_fds=(), close_fds=True,
                       preexec_fn=lambda: os.close(2))
    assert r.returncode == 0
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"


def test_a_resume_with_fewer_evaluation_episodes_makes_the_headline_of_that_many(tiny_run_dir, tmp_path, caplog):
    """Probe 31: a final evaluation cut short after 3 episodes, then `--resume eval_episodes=1`: config.toml said 1 and
    the headline averaged 3. The first one makes the headline, and the log says so."""
    from conftest import tiny_run

    run = _complete_copy(tiny_run_dir, tmp_path)
    (run / "summary.json").unlink()
    _edit_manifest(run, status="running")
    assert tiny_run(run, "--resume", "eval_episodes=3") == 0  # two more episodes: the final evaluation holds 3
    assert json.loads((run / "manifest.json").read_text())["final_eval_episodes"] == [0, 1, 2]
    (run / "summary.json").unlink()
    _edit_manifest(run, status="running")
    lines = (run / "metrics.jsonl").read_text().splitlines()  # cut short: its final record not yet written
    (run / "metrics.jsonl").write_text("".join(ln + "\n" for ln in lines if '"final": true' not in ln or '[0]' in ln))
    assert tiny_run(run, "--resume", "eval_episodes=1") == 0
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["eval_returns"]) == 1 and "the first 1 make the headline" in caplog.text


def test_a_final_evaluation_episode_paying_more_than_the_suite_can_is_refused(tiny_run_dir, tmp_path, capsys):
    """Probe 31: the final evaluation's episode with its rewards x1000 and its record's sha256 rewritten to match:
    the rebuilt headline was 9776 on cartpole-swingup, which pays at most 1 per environment step. Its rewards are
    checked as a training episode's are."""
    from conftest import tiny_run

    from robot_wm.data.episode import Episode
    from robot_wm.io import file_sha256

    run = _complete_copy(tiny_run_dir, tmp_path)
    path = run / "eval" / "episode_000000.npz"
    ep, old = Episode.load(path), file_sha256(path)
    path.unlink()
    Episode(ep.obs, ep.action, ep.reward * 1000, ep.physics_state, ep.meta).save(path)
    metrics = run / "metrics.jsonl"
    metrics.write_text(metrics.read_text().replace(old, file_sha256(path)))
    (run / "summary.json").unlink()
    assert tiny_run(run, "--resume") == 2
    err = capsys.readouterr().err
    assert "episode_000000.npz" in err and ("evaluation episode file" in err and "this suite task pays 0 to 1" in err
                                            or "its rewards add up to" in err), err  # the second since probe 41
    assert not (run / "summary.json").exists()


def test_signals_during_a_save_wait_for_it(tmp_path):
    """Probe 31: a second Ctrl-C while deploy saved the episode the first one cut short raised inside the save, and
    the episode was lost. Real signals, sent during the block: the file is written whole, then the first arrives."""
    from robot_wm.data.episode import Episode
    from robot_wm.io import signals_deferred

    ep = Episode(np.zeros((11, 3)), np.zeros((10, 1)), np.zeros(10), np.zeros((11, 2)), {"task": "x"})
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    saved = []
    try:
        with pytest.raises(KeyboardInterrupt), signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handlers would run here
            ep.save(tmp_path / "ep.npz")
            saved.append(True)
        assert saved and len(Episode.load(tmp_path / "ep.npz")) == 10
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are back
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))
    finally:
        signal.signal(signal.SIGINT, before)


def test_another_runs_episode_with_its_record_is_refused(tiny_run_dir, tmp_path, capsys):
    """Probe 32: another run's training episode copied in with its own metrics.jsonl record (sha256 and all) was
    trained on, and another run's evaluation episode swapped in for the final evaluation (sha256 rewritten) made the
    rebuilt headline. Every episode naming another run is refused, and a rebuilt headline must give the returns of
    the final evaluation's record."""
    from conftest import tiny_run

    from robot_wm.data.episode import Episode
    from robot_wm.io import file_sha256

    other = tmp_path / "other"
    assert tiny_run(other, "seed=3") == 0
    capsys.readouterr()
    for folder in ("episodes", "eval"):
        run = tmp_path / f"run-{folder}"
        shutil.copytree(tiny_run_dir, run)
        mine = run / folder / "episode_000000.npz"
        old = file_sha256(mine)
        shutil.copy(other / folder / "episode_000000.npz", mine)
        metrics = run / "metrics.jsonl"
        metrics.write_text(metrics.read_text().replace(old, file_sha256(mine)))
        (run / "summary.json").unlink()
        before = snapshot(run)
        cmd = ["train", str(run)] if folder == "episodes" else ["run", f"run_dir={run}", "--resume"]
        rc, out = main_in_process(capsys, *cmd, "--no-progress")
        assert rc == 2 and "episode_000000.npz' was collected by another run" in out, out
        assert not (run / "summary.json").exists()
        assert folder == "eval" or snapshot(run) == before  # (a summary rebuilt marks the run running first)
    # the run's own episode, its meta's run id removed (as in a run made before ids): the returns still tell
    run = tmp_path / "run-eval"
    path = run / "eval" / "episode_000000.npz"
    theirs = Episode.load(path)
    old = file_sha256(path)
    path.unlink()
    Episode(theirs.obs, theirs.action, theirs.reward, theirs.physics_state,
            {k: v for k, v in theirs.meta.items() if k != "run"}).save(path)
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text().replace(old, file_sha256(path)))
    rc, out = main_in_process(capsys, "run", f"run_dir={run}", "--resume", "--no-progress")
    # refused by the rewards against the episode's record first since probe 41 (its sum is another run's return)
    assert rc == 2 and ("an episode was replaced after it was stored" in out or "its rewards add up to" in out), out
    assert not (run / "summary.json").exists()


def test_an_ad_hoc_eval_episode_added_to_the_final_list_is_refused(tiny_run_dir, tmp_path, capsys):
    """Probe 32: an ad-hoc `eval --shift mass-1.3` episode added to a complete run's final_eval_episodes ([0] ->
    [0, 1]) and the summary rebuilt: the headline averaged it in (the final record's [0] began the list). Refused on
    a complete run and on an interrupted one (the final evaluation's own episodes say so in their records)."""
    from conftest import tiny_run

    run = _complete_copy(tiny_run_dir, tmp_path)
    assert main_in_process(capsys, "eval", str(run), "--episodes", "1", "--shift", "mass-1.3", "--no-progress")[0] == 0
    (run / "summary.json").unlink()
    for status, needle in (("complete", "but the run's complete final evaluation's record in metrics.jsonl names [0]"),
                           ("running", "names evaluation episode(s) [1], which the run's final evaluation did not play")):
        _edit_manifest(run, final_eval_episodes=[0, 1], status=status)
        assert tiny_run(run, "--resume") == 2
        assert needle in capsys.readouterr().err
        assert not (run / "summary.json").exists()
    _edit_manifest(run, final_eval_episodes=[0], status="complete")
    assert tiny_run(run, "--resume") == 0


def test_a_resume_with_a_larger_budget_evaluates_again(tiny_run_dir, tmp_path, caplog):
    """Probe 31: a final evaluation cut short at 400 steps, then `--resume env_steps=800`: the run collected and
    trained to 800, and its headline was the round-1 episodes played at 400, exit 0. The final evaluation is made
    again, on the model trained on all the data, and the summary says so."""
    from conftest import tiny_run

    from robot_wm.data.dataset import EpisodeDataset

    run = _complete_copy(tiny_run_dir, tmp_path)
    (run / "summary.json").unlink()
    _edit_manifest(run, status="running")  # killed after its last evaluation episode, before the summary
    first = json.loads((run / "manifest.json").read_text())
    assert first["final_eval_episodes"] == [0]
    assert tiny_run(run, "--resume", "env_steps=800") == 0
    m, summary = json.loads((run / "manifest.json").read_text()), json.loads((run / "summary.json").read_text())
    assert m["final_eval_from"] == 1 and m["final_eval_episodes"] == [1], m
    assert m["final_eval_round"] > first["final_eval_round"]
    evals = EpisodeDataset(run / "eval")
    assert summary["eval_returns"] == pytest.approx([evals[1].total_return])
    assert summary["env_steps"] >= 800 and summary["env_steps"] == EpisodeDataset(run / "episodes").env_steps
    assert "done again on the model trained on all" in caplog.text


def test_a_rebuilt_summary_refuses_an_edited_final_evaluation_episode(tiny_run_dir, tmp_path, capsys):
    """Probe 29: the final evaluation's episode edited (rewards 1.0), summary.json removed: --resume made its 25.0
    the headline, exit 0, though its record holds the file's sha256."""
    from conftest import tiny_run

    from robot_wm.data.episode import Episode

    run = _complete_copy(tiny_run_dir, tmp_path)
    path = run / "eval" / "episode_000000.npz"
    ep = Episode.load(path)
    path.unlink()
    Episode(ep.obs, ep.action, np.ones_like(ep.reward), ep.physics_state, ep.meta).save(path)
    (run / "summary.json").unlink()
    assert tiny_run(run, "--resume") == 2
    assert "episode_000000.npz' changed after it was stored" in capsys.readouterr().err
    assert not (run / "summary.json").exists()


def test_an_emptied_log_is_named_and_refused_by_resume_of_a_complete_run(tiny_run_dir, tmp_path, capsys):
    """Probe 40: `: > metrics.jsonl` on a complete run: `train` said "1 training episode file(s) ... have no record
    ... though episodes after them have" (none had), and `run --resume` reprinted the summary, exit 0."""
    run = _complete_copy(tiny_run_dir, tmp_path)
    (run / "metrics.jsonl").write_text("")
    before = snapshot(run)
    for args in (["train", str(run)], ["run", f"run_dir={run}", "--resume"]):
        rc, out = main_in_process(capsys, *args, "--no-progress")
        assert rc == 2 and "metrics.jsonl' holds no record of the 2 training episodes of" in out, (args, out)
        assert "restore metrics.jsonl from a copy of the run" in out and snapshot(run) == before


@pytest.mark.parametrize("damage", ["removed", "line"])
def test_records_removed_or_damaged_do_not_switch_the_episode_checks_off(tiny_run_dir, tmp_path, capsys, caplog,
                                                                       damage):
    """Probe 29: with metrics.jsonl removed, or an episode's line in it overwritten, an edited training episode (and
    another run's) was trained on, exit 0, no word; a line that is not JSON was skipped without a warning."""
    from robot_wm.data.episode import Episode

    run = _complete_copy(tiny_run_dir, tmp_path)
    path = run / "episodes" / "episode_000000.npz"
    ep = Episode.load(path)
    path.unlink()
    Episode(ep.obs, ep.action, np.ones_like(ep.reward), ep.physics_state, ep.meta).save(path)
    metrics = run / "metrics.jsonl"
    if damage == "removed":
        metrics.unlink()
    else:
        lines = metrics.read_text().splitlines()
        at = next(i for i, ln in enumerate(lines) if '"episode_000000.npz"' in ln)
        metrics.write_text("\n".join([*lines[:at], "x", *lines[at + 1:]]) + "\n")
    before = snapshot(run)
    rc, out = main_in_process(capsys, "train", str(run), "--no-progress")
    # removed: said as such since probe 40 (it was "1 file(s) ... have no record ... though episodes after them have")
    said = ("metrics.jsonl' holds no record of the 2 training episodes of",) if damage == "removed" else (
        "1 training episode file(s) of", "have no record in")
    assert rc == 2 and all(w in out for w in said), out
    assert snapshot(run) == before
    if damage == "line":
        assert "skipped 1 record(s) that robot-wm did not write (edited or damaged): line(s) " in caplog.text


def _under_strace(inject: list[str], *argv: str) -> subprocess.CompletedProcess:
    """``robot-wm ARGV`` as a real process under ``strace`` injecting ``inject`` (an errno or a signal at a chosen
    system call): faults a timed kill does not reach."""
    return subprocess.run(["strace", "-f", "-o", "/dev/null", *inject, sys.executable, "-m", "robot_wm.cli", *argv],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "MUJOCO_GL": "egl"})


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to inject the fault")
def test_an_io_error_syncing_the_run_folder_is_not_passed_over(tmp_path):
    """Probe 35: EIO from the fsync of the run folder (after config.toml was renamed into it) was dropped with the
    refusals some file systems give, and the command exited 0."""
    r = _under_strace(["-e", "trace=fsync", "-e", "inject=fsync:error=EIO:when=4"], "run",
                      f"run_dir={tmp_path / 'run'}", *TINY, "--no-progress")
    assert r.returncode == 1 and "Input/output error" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to inject the fault")
def test_a_file_system_without_hard_links_is_named_not_called_read_only(tmp_path):
    """Probe 35: EPERM from link(), what a file system without hard links returns, was "cannot write ... (Operation
    not permitted): make it writable" of a writable folder."""
    r = _under_strace(["-e", "trace=link", "-e", "inject=link:error=EPERM:when=2"], "run",
                      f"run_dir={tmp_path / 'run'}", *TINY, "--no-progress")
    assert r.returncode == 1 and "this file system does not take hard links" in r.stderr, r.stderr
    assert "make it writable" not in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to inject the fault")
def test_a_stop_signal_while_mujoco_loads_is_a_stop_not_a_traceback(tmp_path):
    """Probe 35: SIGTERM arriving while mujoco's extension initialised was "ImportError: initialization failed", a
    traceback, exit 1."""
    import mujoco

    so = next(Path(mujoco.__file__).parent.glob("_structs*.so"))
    r = _under_strace(["-P", str(so), "-e", "trace=openat", "-e", "inject=openat:signal=SIGTERM:when=1"], "run",
                      f"run_dir={tmp_path / 'run'}", *TINY, "--no-progress")
    assert r.returncode == 143 and "terminated (SIGTERM)" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to inject the fault")
def test_a_file_system_without_locks_is_named(tmp_path):
    """Probe 36: ENOLCK from flock (an NFS or SMB mount without locks) was "No locks available: a file"."""
    r = _under_strace(["-e", "trace=flock", "-e", "inject=flock:error=ENOLCK:when=1"], "run",
                      f"run_dir={tmp_path / 'run'}", *TINY, "--no-progress")
    assert r.returncode == 1 and "does not take the lock robot-wm holds" in r.stderr, r.stderr
    assert f"'{tmp_path / 'run'}'" in r.stderr and "a file" not in r.stderr, r.stderr


def test_a_run_dir_that_goes_back_through_a_link_is_refused(tmp_path, capsys):
    """Probe 36: run_dir=lnk/../r with lnk a link to other/sub: the run was made in other/r (the kernel's reading),
    then "cannot make or open .../manifest.json ... a folder on its path is missing" (a plain reading), a folder and
    its .lock left behind."""
    (tmp_path / "other" / "sub").mkdir(parents=True)
    (tmp_path / "lnk").symlink_to(tmp_path / "other" / "sub")
    rc, out = main_in_process(capsys, "run", f"run_dir={tmp_path}/lnk/../r", *TINY, "--no-progress")
    assert rc == 2 and "goes back ('..') through a symbolic link" in out and "other/r'" in out, out
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["lnk", "other", "sub"]
    from conftest import tiny_run

    assert tiny_run(tmp_path / "lnk" / "fine") == 0  # a link without '..' after it is fine


def test_ctrl_c_in_the_first_moments_is_no_traceback(tmp_path):
    """Probe 36: Ctrl-C within 0.35 s of the start was a KeyboardInterrupt traceback from inside numpy's import. (As
    the `robot-wm` script starts it: `python -m` imports the package through runpy first, a window no program closes.)"""
    for delay in (0.2, 0.35, 0.6):
        proc = subprocess.Popen([sys.executable, "-c", "from robot_wm.cli import entry; entry()", "run",
                                 f"run_dir={tmp_path / 'run'}", *TINY, "--no-progress"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "MUJOCO_GL": "egl"})
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=120)[1]
        assert proc.returncode in (130, -signal.SIGINT) and "Traceback" not in err, (proc.returncode, err)


def test_an_unreadable_checkpoint_is_said_to_be_unreadable(run_copy):
    """Probe 40: a checkpoint's weights of mode 000, which `eval` only reads, were "cannot write ...: make it
    writable". Root reads it anyway: the command runs without root's override of file permissions."""
    import json as _json

    latest = run_copy / "checkpoints" / _json.loads((run_copy / "checkpoints" / "latest.json").read_text())["checkpoint"]
    weights = latest.with_suffix(".safetensors")
    weights.chmod(0)
    drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--inh-caps", "-all"]
    if os.geteuid() == 0 and (shutil.which("setpriv") is None or subprocess.run(
            [*drop, "true"], capture_output=True, check=False).returncode != 0):
        pytest.skip("root's override of file permissions cannot be dropped here (setpriv)")
    r = subprocess.run([*(drop if os.geteuid() == 0 else []), sys.executable, "-m", "robot_wm.cli", "eval",
                        str(run_copy), "--episodes", "1", "--no-progress"], capture_output=True, text=True,
                       timeout=300, check=False)
    weights.chmod(0o644)
    assert r.returncode == 1 and f"cannot read {str(weights)!r} (Permission denied): make it readable" in r.stderr, \
        r.stderr[-2000:]


def test_a_stop_signal_is_not_held_back_by_onnxruntime_building_a_graph(monkeypatch):
    """Probe 40: SIGTERM while onnxruntime built a forged graph of a million nodes waited 275 s for the build. The
    build runs in a thread of its own; the main thread runs the stop handler at once. Here a timer's handler, 0.2 s
    into the build of a graph of 90,000 nodes, which alone takes seconds (measured first, in this test)."""
    import threading

    import onnxruntime as ort
    from onnx import TensorProto, helper

    from robot_wm.runtime.session import build_session, session_options

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run on the main thread only")
    names = ["x", *[f"n{i}" for i in range(89_999)], "y"]
    graph = helper.make_graph([helper.make_node("Neg", [a], [b]) for a, b in itertools.pairwise(names)], "chain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    blob = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9).SerializeToString()
    t0 = time.monotonic()
    assert isinstance(build_session(blob, session_options(1), ["CPUExecutionProvider"]), ort.InferenceSession)
    build_s = time.monotonic() - t0

    class Stopped(Exception):
        pass

    def stop(signum, frame):
        raise Stopped

    before = signal.signal(signal.SIGALRM, stop)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        t0 = time.monotonic()
        with pytest.raises(Stopped):
            build_session(blob, session_options(1), ["CPUExecutionProvider"])
        stopped_s = time.monotonic() - t0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)
    assert build_s > 0.6 and stopped_s < build_s / 2, (stopped_s, build_s)
    from robot_wm.runtime.session import ABANDONED_RUNS

    assert ABANDONED_RUNS[-1].wait(120)  # it ends by itself (onnxruntime aborts a process that exits meanwhile)
    # probe 41: a build that lasts (work folded from constants as it loads) is ended past BUILD_LIMIT_S, on the CPU
    from robot_wm.runtime import session as session_mod

    monkeypatch.setattr(session_mod, "BUILD_LIMIT_S", 0.3)
    t0 = time.monotonic()
    with pytest.raises(session_mod.BuildTooLong, match="onnxruntime took more than 0.3 s to build the graph"):
        build_session(blob, session_options(1), ["CPUExecutionProvider"])
    assert time.monotonic() - t0 < build_s / 2 and ABANDONED_RUNS[-1].wait(120)
    with pytest.raises(Exception, match="Unsupported model IR version"):  # onnxruntime's error, in the caller's thread
        build_session(_one_neg(ir_version=99), session_options(1), ["CPUExecutionProvider"])


def _one_neg(ir_version: int = 9) -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Neg", ["x"], ["y"])], "one", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             ir_version=ir_version).SerializeToString()


@pytest.mark.parametrize("round_, fewer", [(200, False), ("next", True), ("next", False)])
def test_a_checkpoint_relabelled_as_a_round_the_run_never_trained_is_refused(run_copy, capsys, round_, fewer):
    """Probe 40: another run's round 1, relabelled round 200 with this run's id and resealed, was evaluated as this
    run's "model of round 200", though the run's records end at round 99. A round must be one the records name, or
    the next (a kill between a checkpoint and its record: that one is still taken) on no fewer transitions."""
    from robot_wm.io import read_jsonl
    from robot_wm.model.checkpoint import sealed

    ckpts = run_copy / "checkpoints"
    last = [r for r in read_jsonl(run_copy / "metrics.jsonl") if r.get("kind") == "train"][-1]
    source = ckpts / f"model_r{last['round']:04d}.json"
    meta = json.loads(source.read_text())
    n = 200 if round_ == 200 else last["round"] + 1
    stem, transitions = f"model_r{n:04d}", meta["transitions"] - 50 if fewer else meta["transitions"]
    shutil.copy(source.with_suffix(".safetensors"), ckpts / f"{stem}.safetensors")
    (ckpts / f"{stem}.json").write_text(json.dumps(sealed({**meta, "round": n, "weights": f"{stem}.safetensors",
                                                           "transitions": transitions})))
    (ckpts / "latest.json").write_text(json.dumps({"checkpoint": f"{stem}.json"}))
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--no-progress")
    if round_ == 200 or fewer:
        assert rc == 2 and f"is round {n} ({transitions} transitions), which metrics.jsonl has no training " \
            "record of" in out and "it was copied in or relabelled" in out, out
    else:
        assert rc == 0 and f"model of round {n}" in out, out


def halve_rewards_resealed(path: Path) -> None:
    """Halve a training episode's rewards and recompute its sha256 in the run's metrics.jsonl (a deliberate edit)."""
    from robot_wm.io import file_sha256

    _edit_episode(path, reward=np.load(path)["reward"] * 0.5)
    metrics = path.parent.parent / "metrics.jsonl"
    lines = [json.loads(x) for x in metrics.read_text().splitlines()]
    for r in lines:
        if r.get("file") == path.name and r.get("phase") == "train":
            r["sha256"] = file_sha256(path)
    metrics.write_text("".join(json.dumps(r) + "\n" for r in lines))


def test_an_episode_whose_rewards_no_longer_add_up_to_its_record_is_refused(run_copy, capsys):
    """Probe 41: a training episode's rewards halved and its sha256 in metrics.jsonl recomputed: `train` trained on it
    without a word, though its record's return (and its own meta, and episodes.csv) said otherwise."""
    halve_rewards_resealed(run_copy / "episodes" / "episode_000001.npz")
    before = snapshot(run_copy)
    rc, out = main_in_process(capsys, "train", str(run_copy), "model.max_epochs=1", "--no-progress")
    assert rc == 2 and "episode_000001.npz': its rewards add up to" in out and "gives the return" in out, out
    assert snapshot(run_copy) == before


def test_a_step_far_past_its_deadline_is_abandoned_and_the_loop_stops_safely(planner_file, tmp_path):
    """Probe 42: a forged graph's steps of 1 to 3 s (declared work raised to match) were each waited for, the last
    command kept on the robot 25 ticks, 69 s, before the safe stop; and `abandon()` from another thread did not end a
    step run off the main thread. A step past 10 deadlines (at least 1 s) is abandoned and the loop stops at once
    with the safe action; `abandon()` ends a step from any thread. Here one 5,000^2 product on one thread."""
    import threading

    from conftest import one_buffer_robot

    from robot_wm.runtime.loop import ControlLoop
    from robot_wm.runtime.session import ABANDONED_RUNS, PlannerSession, StepAbandoned

    long = one_long_product(planner_file, tmp_path / "long.onnx")
    session = PlannerSession(long, provider="cpu", threads=1)
    robot = one_buffer_robot()
    sent = []
    send = robot.send_action
    robot.send_action = lambda a: (sent.append(np.array(a)), send(a))[1]
    loop = ControlLoop(session, robot, realtime=False, safe_action=np.zeros(1, np.float32))
    assert session.step_limit_s == 1.0
    t0 = time.monotonic()
    stats = loop.run(5)
    took = time.monotonic() - t0
    running = not ABANDONED_RUNS[-1].is_set()
    assert stats.steps == 1 and "ran past 1 s and was abandoned" in (loop.stopped or ""), loop.stopped
    assert len(sent) == 1 and np.array_equal(sent[0], [0.0])  # the safe action, at once
    t1 = time.monotonic()
    assert ABANDONED_RUNS[-1].wait(120)
    assert running and took < 1.0 + (time.monotonic() - t1) + 0.5, (took, time.monotonic() - t1)

    # abandon() from another thread ends a step that a thread other than the main one waits for
    other = PlannerSession(long, provider="cpu", threads=1)
    caught: list = []

    def plan() -> None:
        try:
            other.step(np.zeros(other.meta.state_dim, np.float32), other.initial_plan())
        except StepAbandoned as e:
            caught.append((time.monotonic(), e))

    worker = threading.Thread(target=plan)
    worker.start()
    time.sleep(0.2)
    asked = time.monotonic()
    other.abandon()
    worker.join(60)
    assert caught and caught[0][0] - asked < 0.5, caught
    assert ABANDONED_RUNS[-1].wait(120)


def test_a_checkpoint_put_in_while_training_is_not_overwritten(run_copy):
    """Probe 42: a user copied a checkpoint in as round 40 while `run` trained round 2; at round 40 the writer replaced
    both files with its own, without a word. The writer refuses to write over a file it did not write."""
    from robot_wm import config as cfgmod
    from robot_wm.run_dir import RunDir
    from robot_wm.runner import Session

    run = RunDir(run_copy)
    nxt = run.next_round()
    with Session.open(cfgmod.load(run_copy / "config.toml"), run, progress=False, writes="train") as s:
        put = run.checkpoint_stem(nxt).with_suffix(".json")  # appears once the session is open (next_round skips it)
        put.write_text('{"mine": true}')
        with pytest.raises(FileExistsError, match=f"{put.name} appeared in .* while this command trained round {nxt}"):
            s.train(nxt)
    assert put.read_text() == '{"mine": true}' and not put.with_suffix(".safetensors").exists()


def test_the_weights_of_a_trained_round_whose_json_was_removed_are_kept(run_copy, capsys):
    """Probe 42: the latest round's JSON removed by hand, then `eval`: it deleted the round's trained weights as "an
    unfinished temp file", then failed on the missing JSON. Weights are removed only for a round the records never
    finished (a kill between the weights and the JSON); a trained round's are kept, and the refusal names the JSON."""
    from robot_wm.run_dir import RunDir

    js = RunDir(run_copy).latest_checkpoint()
    weights = js.with_suffix(".safetensors")
    js.unlink()
    before = weights.read_bytes()
    rc, out = main_in_process(capsys, "eval", str(run_copy), "--episodes", "1", "--no-progress")
    assert rc == 2 and js.name in out, out
    assert weights.read_bytes() == before and "removed" not in out, out


def test_a_stopped_collect_says_another_collect_adds_episodes():
    """Probe 42: a stopped `collect --episodes 50` said "Run `robot-wm collect RUN ...` again to go on", read as "the
    rest"; it collects 50 more."""
    from robot_wm.cli import build_parser, resume_hint

    said = resume_hint(build_parser().parse_args(["collect", "/r", "--episodes", "50"]))
    assert "stored; `robot-wm collect /r --episodes N` collects N more (it does not count those)" in said, said
    assert "again to go on" in resume_hint(build_parser().parse_args(["train", "/r"]))


def test_a_run_whose_output_pipe_closes_goes_on_to_finish(tmp_path):
    """Probe 42: `robot-wm run ... 2>&1 | head -n 1` stopped the run at its next write to standard error, exit 1, the
    manifest left at "running" and nothing said. Standard error that goes away is dropped, as standard output is."""
    from conftest import TINY_RUN_ARGS

    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "robot_wm.cli", "run", f"run_dir={tmp_path / 'run'}", *TINY_RUN_ARGS],
                            stdout=w, stderr=w, env={**os.environ, "MUJOCO_GL": "egl"})
    os.close(w)
    os.read(r, 1)  # the first byte (as `head -c 1` would), then the reader goes away
    os.close(r)
    assert proc.wait(timeout=300) == 0
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "complete"
