"""The fault report's catalogue, continued (``fault_probes_3.py`` holds probes 16-19): one function per hostile
probe, each case a reproduction of what that probe found, checked as the report checks every case."""

from __future__ import annotations

from pathlib import Path

from fault_kit import cli, copy_run, record, tail


def probe20_leftovers(base: Path, planner: Path, work: Path) -> None:
    """What the twentieth hostile probe left (2026-11-27), fixed in session 19."""
    cat = "probe 2026-11-27 (20th): its leftovers"

    def symlink_loop():
        loop = work / "p20-loop"
        loop.symlink_to(loop)
        rc, out = cli("finetune", str(base), "--data", str(loop), "--no-progress")
        rc2, out2 = cli("deploy", str(planner), "--episodes", "1", "--record", str(loop))
        named = all(f"{str(loop)!r} is a symbolic link loop" in o for o in (out, out2))
        return rc == rc2 == 2 and named, tail(out2, 90)
    record(cat, "a symbolic link loop as finetune --data and deploy --record (a traceback)", symlink_loop)

    def double_delay_from_collect():
        r = copy_run(base, work / "p20-dd")
        rc, _ = cli("collect", str(r), "--episodes", "1", "--policy", "random", "env.randomize.action_delay=[1,1]",
                    "env.max_env_steps=80", "--no-progress")
        rc2, out2 = cli("export", str(r), "--out", str(work / "p20-dd.onnx"), "planner.delay=1")
        return rc == rc2 == 0 and "counted twice" in out2, tail(out2, 90)
    record(cat, "planner.delay on a run a delayed one-off collect trained (no double-delay warning)",
           double_delay_from_collect)
