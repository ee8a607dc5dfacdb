"""``robot-wm sweep --address``: joining an existing Ray cluster, a real one started with Ray's own ``ray start
--head`` on loopback (the README's commands, on one machine), and a clear error where no head answers.

Its own module: the cluster is started and killed here, after test_sweep.py's embedded Ray has stopped."""

from __future__ import annotations

import contextlib
import csv
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from test_sweep import write_sweep

from robot_wm.sweep.ray_runner import LOOPBACK_ENV

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]  # the test process of test_sweep.py, after it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """`ray start --head --block` on 127.0.0.1 with token authentication; every process it started is
    killed at the end (``ray stop`` would stop every Ray of this user on the machine)."""
    port = _free_port()
    exe = Path(sys.executable).with_name("ray")
    log = tmp_path_factory.mktemp("head") / "ray_start.log"
    with log.open("w") as out:
        head = subprocess.Popen([str(exe), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
                                 "--num-cpus=2", "--include-dashboard=false"], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **LOOPBACK_ENV}, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _answers(port):
            assert head.poll() is None, f"ray start exited {head.returncode}: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the Ray head did not answer within 120 s"
            time.sleep(0.5)
        yield port
    finally:
        family = [head, *psutil.Process(head.pid).children(recursive=True)] if head.poll() is None else [head]
        for p in family:
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                p.kill()
        head.wait(timeout=30)
        psutil.wait_procs([p for p in family if isinstance(p, psutil.Process)], timeout=30)


def _sweep(sweep_file: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robot_wm.cli", "sweep", str(sweep_file), *args], capture_output=True,
                          text=True, env={**os.environ, "MUJOCO_GL": "egl"}, timeout=600, check=False)


def test_sweep_joins_a_running_cluster_and_leaves_it_running(ray_head, tmp_path):
    sweep_file = write_sweep(tmp_path / "c.toml", """\
        tasks = ["cartpole-swingup"]
        seeds = [3]
        env_steps = 400
    """)
    out = tmp_path / "shared" / "sweep"
    r = _sweep(sweep_file, "--address", f"127.0.0.1:{ray_head}", "--storage", str(out))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    with (out / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(row["name"], row["status"]) for row in rows] == [("cartpole-swingup-s3", "complete")]
    assert _answers(ray_head)  # a cluster the sweep joined is left running


def test_address_where_no_head_answers_is_a_clear_error_at_once(tmp_path):
    """Ray alone retried an unreachable GCS for over five minutes, printing warnings (measured)."""
    sweep_file = write_sweep(tmp_path / "c.toml", """\
        tasks = ["cartpole-swingup"]
        seeds = [3]
        env_steps = 400
    """)
    port = _free_port()
    for address, needle in ((f"127.0.0.1:{port}", "no Ray head answers there"),
                            ("headnode", "expected HOST:PORT of a Ray head")):
        t0 = time.monotonic()
        r = _sweep(sweep_file, "--address", address, "--storage", str(tmp_path / "out"))
        assert r.returncode == 2 and f"--address {address!r}: {needle}" in r.stderr, r.stderr[-2000:]
        assert time.monotonic() - t0 < 60
        assert not (tmp_path / "out").exists()  # no sweep folder, lock and header left behind (probe 28)
