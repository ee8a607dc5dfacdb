"""Read a robot-wm .rrd recording back and check it: what the tests (and anyone curious) use to
see that a recording holds what the viewer will show."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rerun.chunk import RrdReader

from robot_wm.viz import paths as P

# Entities every recording of a learned-planner run has.
REQUIRED = (P.ROBOT_BODIES, P.ROBOT_SKELETON, P.GHOSTS, P.GHOST_POSES, P.CHOSEN, P.MEMBERS, P.STATE_ACTUAL,
            P.STATE_PRED, P.STATE_UPPER, P.STATE_LOWER, P.ACTION, P.REWARD, P.RETURN_PRED, P.RETURN_REAL, P.PLAN_OBJECTIVE,
            P.SPREAD, P.SCORES, P.SCORE_HIST, P.LATENCY, P.TRAIN_NLL, P.TRAIN_VAL, P.MULTISTEP)


@dataclass
class RrdSummary:
    path: Path
    rows: Counter = field(default_factory=Counter)       # entity path -> temporal rows
    static: set[str] = field(default_factory=set)         # entity paths with static data
    timelines: set[str] = field(default_factory=set)
    blueprints: int = 0
    ghost_shapes: list[tuple[int, ...]] = field(default_factory=list)  # per logged plan: strip lengths
    body_counts: list[int] = field(default_factory=list)               # per control step: bodies drawn
    scalars: dict[str, dict[int, list[float]]] = field(default_factory=dict)  # ``read_rrd(scalars=...)``: step -> values

    @property
    def entities(self) -> set[str]:
        return set(self.rows) | self.static

    @property
    def plan_steps(self) -> int:
        return self.rows[P.GHOSTS]


def _column(batch, suffix: str):
    names = [n for n in batch.schema.names if n.endswith(suffix)]
    return batch.column(names[0]) if names else None


def read_rrd(path: str | Path, scalars: tuple[str, ...] = ()) -> RrdSummary:
    """What ``path`` holds, per entity; the values of the ``scalars`` entities by their ``step``."""
    path = Path(path)
    reader = RrdReader(path)
    out = RrdSummary(path, blueprints=len(reader.blueprints()))
    for chunk in reader.stream():
        entity = chunk.entity_path.lstrip("/")
        if chunk.is_static:
            out.static.add(entity)
            continue
        out.rows[entity] += chunk.num_rows
        out.timelines.update(chunk.timeline_names)
        if entity == P.GHOSTS:
            strips = _column(chunk.to_record_batch(), "LineStrips3D:strips")
            out.ghost_shapes += [tuple(len(s) for s in row) for row in strips.to_pylist()]
        elif entity == P.ROBOT_BODIES:
            pts = _column(chunk.to_record_batch(), "Points3D:positions")
            out.body_counts += [len(row) for row in pts.to_pylist()]
        elif entity in scalars:
            batch = chunk.to_record_batch()
            by_step = out.scalars.setdefault(entity, {})
            for step, values in zip(batch.column("step").to_pylist(), _column(batch, "Scalars:scalars").to_pylist()):
                by_step[step] = values
    return out


def rerun_cli() -> list[str]:
    exe = Path(sys.executable).with_name("rerun")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("rerun")
    return [found] if found else [sys.executable, "-m", "rerun"]


def verify(path: str | Path) -> None:
    """``rerun rrd verify FILE``; raises with its output when the file does not verify."""
    res = subprocess.run([*rerun_cli(), "rrd", "verify", str(path)], capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise AssertionError(f"`rerun rrd verify {path}` failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")


def check_rrd(path: str | Path, *, ghosts: int, horizon: int, plan_steps: int | None = None,
              entities: tuple[str, ...] = REQUIRED, run_verify: bool = True) -> RrdSummary:
    """Assert that ``path`` verifies, holds ``entities``, ``plan_steps`` logged planning steps (when
    given) and that every logged plan drew ``ghosts`` ghosts x bodies trajectories of ``horizon`` + 1
    points. Returns the summary."""
    if run_verify:
        verify(path)
    s = read_rrd(path)
    missing = sorted(set(entities) - s.entities)
    assert not missing, f"{path}: missing entity paths {missing}; found {sorted(s.entities)}"
    assert P.STEP in s.timelines, f"{path}: no {P.STEP!r} timeline (found {sorted(s.timelines)})"
    assert s.blueprints >= 1, f"{path}: no default blueprint"
    if plan_steps is not None:
        assert s.plan_steps == plan_steps, f"{path}: {s.plan_steps} planning steps logged, expected {plan_steps}"
    assert s.plan_steps > 0, f"{path}: no planning step logged"
    assert s.body_counts, f"{path}: no robot bodies logged"
    bodies = s.body_counts[0]
    assert all(b == bodies for b in s.body_counts), f"{path}: body count varies: {set(s.body_counts)}"
    for i, shape in enumerate(s.ghost_shapes):
        assert len(shape) == ghosts * bodies, (
            f"{path}: plan {i} drew {len(shape)} ghost trajectories, expected {ghosts} ghosts x {bodies} bodies")
        assert all(n == horizon + 1 for n in shape), (
            f"{path}: plan {i} ghost lengths {sorted(set(shape))}, expected horizon {horizon} + 1 points")
    return s
