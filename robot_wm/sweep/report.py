"""``robot-wm report SWEEP_DIR``: the results table, and learning curves per task (matplotlib PNG: the mean
over seeds with a min/max band, one curve per grid setting) with published returns marked at their budgets."""

from __future__ import annotations

import csv
import math
import statistics
import warnings
from collections import defaultdict
from pathlib import Path

from robot_wm.sweep import results

DEFAULT_ANCHORS = Path(__file__).resolve().parents[2] / "bench" / "anchors" / "dmc_returns.csv"
"""Published DMC returns (task, system, env_steps, mean_return), present in a checkout of robot-wm."""
ANCHOR_MAX_STEPS = 100_000
"""Anchors past this budget are left off the plot (our budgets are far below; the plot stays readable)."""
PLOT_NAME = results.PLOT_NAME


MAX_ANCHORS_BYTES = 4 << 20


def read_anchors(path: Path) -> dict[tuple[str, str, int], float]:
    """(task, system, env steps) -> published mean return, from a CSV with '#' comment lines (a regular file
    of at most 4 MiB; a bad row is an error naming the file and the row)."""
    from robot_wm.io import check_regular_file

    path = Path(path)
    try:
        check_regular_file(path, "--anchors", MAX_ANCHORS_BYTES)
    except FileNotFoundError:
        raise ValueError(f"--anchors {str(path)!r} does not exist") from None
    try:
        lines = [r for r in path.read_text().splitlines() if not r.startswith("#")]
    except UnicodeDecodeError as e:
        raise ValueError(f"--anchors {str(path)!r} is not a text file: {e}") from None
    out = {}
    for i, r in enumerate(csv.DictReader(lines), 2):
        try:
            steps, ret = int(r["env_steps"]), float(r["mean_return"])
            if not (steps >= 0 and math.isfinite(ret)):  # inf and -5 steps were drawn and compared (probe 23)
                raise ValueError(f"env_steps {steps} and mean_return {ret} are not a count (0 or more) and a finite return")
            out[(r["task"], r["system"], steps)] = ret
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"--anchors {str(path)!r}, data row {i - 1}: {e}; expected the columns task, system, "
                             "env_steps (an integer), mean_return (a number)") from None
    return out


def _float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _setting(row: dict, sources: dict[str, str]) -> str:
    """The grid setting of a row, less the task (the panel already names it), after the name of its launch file
    where the task's rows come from more than one source (``sources``: source -> short label)."""
    grid = " ".join(o for o in row["overrides"].split() if not o.startswith("env.task="))
    return " ".join(x for x in (sources.get(row.get("source") or "", ""), grid) if x) or "default"


def settings_of(rows: list[dict]) -> list[str]:
    """Each row's setting (``_setting``), its launch file named where the task's rows come from several sources
    (two launch files of one task were merged into one "default" setting): the file's stem, with its folder
    where two stems are the same, or "default config" for a task on the defaults."""
    by_task: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        by_task[r["task"]].add(r.get("source") or "")
    labels: dict[str, dict[str, str]] = {}
    for task, sources in by_task.items():
        stems = [Path(src).stem for src in sources if src]
        labels[task] = {} if len(sources) < 2 else {
            src: "default config" if not src else
            f"{Path(src).parent.name}/{Path(src).stem}" if stems.count(Path(src).stem) > 1 else Path(src).stem
            for src in sources}
    return [_setting(r, labels[r["task"]]) for r in rows]


def curves(rows: list[dict]) -> dict[str, dict[str, list[tuple[int, float, float, float, int]]]]:
    """task -> setting -> [(budget, mean, min, max, seeds)] over the seeds of the complete rows and of the rows
    early stopping ended (up to the budget each was stopped at: a setting ASHA stopped everywhere was dropped)."""
    budgets = results.budgets_of(rows)
    by: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r, setting in zip(rows, settings_of(rows), strict=True):
        if r["status"] in ("complete", results.STOPPED):
            by[(r["task"], setting)].append(r)
    out: dict[str, dict] = defaultdict(dict)
    for (task, setting), rs in sorted(by.items()):
        pts = []
        for b in budgets:
            vals = [v for r in rs if not math.isnan(v := _float(r.get(f"{results.BUDGET_PREFIX}{b}")))]
            if vals:
                pts.append((b, statistics.fmean(vals), min(vals), max(vals), len(vals)))
        out[task][setting] = pts
    return out


def print_table(rows: list[dict], sweep_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from robot_wm.report import shown as escape  # markup escaped, control characters shown (tenth probe)

    budgets = results.budgets_of(rows)
    t = Table(title=escape(f"robot-wm sweep: {sweep_dir} ({len(rows)} trials)"))
    for col in ("task", "seed", "setting", "status", *(f"@{b}" for b in budgets), "final ± std", "plan Hz",
                "wall s"):
        t.add_column(col, justify="left" if col in ("task", "setting", "status") else "right")
    fmt = lambda v, f=".1f": "" if math.isnan(x := _float(v)) else format(x, f)
    for r, setting in zip(rows, settings_of(rows), strict=True):  # cells are the file's text: escaped, not markup
        status = escape(r["status"] + (f": {r['error']}" if r.get("error") else ""))
        final = f"{fmt(r['eval_return_mean'])} ± {fmt(r.get('eval_return_std'))}" if r["eval_return_mean"] else ""
        t.add_row(escape(r["task"]), escape(r["seed"]), escape(setting), status,
                  *(fmt(r.get(f"{results.BUDGET_PREFIX}{b}")) for b in budgets), final, fmt(r.get("plan_hz"), ".0f"),
                  fmt(r.get("wall_s"), ".0f"))
    Console(width=200).print(t)


ANCHOR_COLUMNS = (("bro_utd10", 25_000, "BRO @25k"), ("bro_utd10", 50_000, "BRO @50k"), ("mrq", 50_000, "MR.Q @50k"),
                  ("tdmpc2", 100_000, "TD-MPC2 @100k"))
"""Published returns shown beside ours (BRO at utd 10 is issue 10's bar at 50k; TD-MPC2 the planner peer)."""


def best_published(anchors: dict, task: str, steps: int) -> tuple[str, float]:
    """The best published return on ``task`` at exactly ``steps`` (any system but random)."""
    cands = [(v, system) for (t, system, n), v in anchors.items() if t == task and n == steps and system != "random"]
    v, system = max(cands) if cands else (math.nan, "none")
    return system, v


def print_vs_published(rows: list[dict], anchors: dict) -> None:
    """Per task and setting: our mean [min, max] over seeds at each budget, beside the published returns and
    the gap from our largest budget to the best published at 100k (the project's goal at 20k)."""
    from rich.console import Console
    from rich.table import Table

    from robot_wm.report import shown as escape  # markup escaped, control characters shown (tenth probe)

    budgets = results.budgets_of(rows)
    t = Table(title=escape("robot-wm vs published returns (mean [min, max] over seeds)"))
    for col in ("task", "setting", *(f"ours @{b // 1000 if b % 1000 == 0 else b}{'k' if b % 1000 == 0 else ''}"
                                       for b in budgets), *(c[2] for c in ANCHOR_COLUMNS), "best @100k", "gap"):
        t.add_column(col, justify="left" if col in ("task", "setting", "best @100k") else "right")
    fmt = lambda v: "–" if math.isnan(v) else f"{v:.0f}"
    for task, settings in curves(rows).items():
        system, best = best_published(anchors, task, 100_000)
        for setting, pts in settings.items():
            at = {p[0]: p for p in pts}
            cells = [f"{fmt(at[b][1])} [{fmt(at[b][2])}, {fmt(at[b][3])}] n={at[b][4]}" if b in at else "–"
                     for b in budgets]
            gap = f"{pts[-1][1] - best:+.0f} @{pts[-1][0]}" if pts and not math.isnan(best) else "–"
            t.add_row(escape(task), escape(setting), *cells, *(fmt(anchors.get((task, a, n), math.nan)) for a, n, _ in ANCHOR_COLUMNS),
                      f"{fmt(best)} ({system})", gap)
    Console(width=220).print(t)


MAX_PANELS = 30
"""Tasks one learning-curve plot draws (a panel each)."""


def plot(rows: list[dict], out: Path, anchors: dict | None = None) -> Path:
    """One panel per task: the mean over seeds per setting, a min/max band, anchors as markers."""
    with warnings.catch_warnings():  # a task name in CJK: "Glyph ... missing from font(s)", with its source line
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")  # (probe 29)
        return _draw(rows, out, anchors)


def _draw(rows: list[dict], out: Path, anchors: dict | None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = curves(rows)
    tasks = sorted(data) or ["(no complete trial)"]
    if len(tasks) > MAX_PANELS:  # 10,000 task names drew for minutes at 12 GB (probe 29)
        raise ValueError(f"the results hold {len(tasks):,} tasks: the plot draws one panel per task, at most "
                         f"{MAX_PANELS}; the tables above are complete")
    cols = min(3, len(tasks))
    nrows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.8 * nrows), squeeze=False)
    markers = "osD^vP*Xh<>"
    for ax, task in zip(axes.flat, tasks, strict=False):
        for setting, pts in data.get(task, {}).items():
            if not pts:
                continue
            x = [p[0] for p in pts]
            line, = ax.plot(x, [p[1] for p in pts], marker="o", label=_plain(f"robot-wm {setting} (n={max(p[4] for p in pts)})"))
            ax.fill_between(x, [p[2] for p in pts], [p[3] for p in pts], color=line.get_color(), alpha=0.2)
        ref = {(s, n): v for (t, s, n), v in (anchors or {}).items() if t == task}
        systems = sorted({s for s, n in ref if s != "random" and n <= ANCHOR_MAX_STEPS})
        for i, system in enumerate(systems):
            pts = sorted((n, v) for (s, n), v in ref.items() if s == system and 0 < n <= ANCHOR_MAX_STEPS)
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=markers[i % len(markers)], s=28,
                       color="0.35", label=f"{system} (published)", zorder=3)
        if ("random", 0) in ref:
            ax.axhline(ref[("random", 0)], color="0.6", linestyle=":", label="random actions")
        ax.set_xscale("log")
        ax.set_title(_plain(task))
        ax.set_xlabel("environment steps")
        ax.set_ylabel("evaluation return")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a task with no measured point and no anchor: no empty legend
            ax.legend(fontsize=6, loc="best")
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    from robot_wm.io import atomic_write

    atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return out


def stopped_seeds_note(rows: list[dict]) -> str:
    """A note where early stopping ended every trial of a seed (of a task) while other seeds went on: ASHA compares
    trials across seeds, so a seed that starts worse loses all its settings and the final comparison rests on the
    other seeds alone, which the table did not say (tenth probe). Empty where that did not happen."""
    by = {}
    for r in rows:
        by.setdefault(r["task"], {}).setdefault(r["seed"], []).append(r["status"])
    notes = []
    for task, seeds in by.items():
        gone = sorted(sd for sd, st in seeds.items() if all(x == "stopped" for x in st))
        left = sorted(sd for sd in seeds if sd not in gone)
        if gone and left:
            notes.append(f"{task}: every trial of seed {', '.join(gone)} was stopped early, so the settings are "
                         f"compared at the full budget on seed {', '.join(left)} alone")
    return "" if not notes else "note: " + "; ".join(notes) + " (early stopping compares trials across seeds)"


def _plain(text: str) -> str:
    """A label with control characters shown as escapes (a results.csv cell's ESC reached the plot)."""
    from robot_wm.text import printable

    return printable(text)


def report(sweep_dir: Path, out: str | Path | None = None, anchors: Path | None = None) -> Path:
    if out is not None:
        from robot_wm.io import check_parent_folder, check_replaceable

        if Path(out).is_dir():
            raise ValueError(f"--out {str(out)!r} is a directory: expected the path of the PNG to write")
        check_replaceable(out, "--out", "a PNG", lambda head: head.startswith(b"\x89PNG"))  # 'x.png/' wrote x.png
        if Path(out).suffix.lower() != ".png":  # x.pdf held PNG bytes
            raise ValueError(f"--out {str(out)!r}: expected a path ending in .png (the plot is a PNG)")
        check_parent_folder(out, "--out")
    path = anchors or (DEFAULT_ANCHORS if DEFAULT_ANCHORS.is_file() else None)
    ref = read_anchors(path) if path else {}  # a bad --anchors fails before anything is read or printed
    # before the table: a temp file of the plot was left there (probe 39)
    results.check_not_append_only(*((Path(out).absolute().parent, "--out's folder") if out else (Path(sweep_dir),)))
    rows = results.read(sweep_dir)
    results.check_against_runs(rows, sweep_dir)
    print_table(rows, sweep_dir)
    if note := stopped_seeds_note(rows):
        print(note)
    if ref:
        print_vs_published(rows, ref)
    png = plot(rows, Path(out) if out else Path(sweep_dir) / PLOT_NAME, ref)
    print(f"learning curves: {png}" + ("" if path else " (no anchors file found: published returns not marked)"))
    return png
