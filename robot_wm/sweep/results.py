"""The sweep's results: one row per trial, from its run directory, in one CSV (``results.csv``).

The CSV is plain (pandas, a spreadsheet or ``csv.DictReader`` read it without robot-wm) and written
atomically, so a reader never sees half a file, even while the sweep is running or after it was killed.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import math
import os
import statistics
import time
from pathlib import Path

from robot_wm.io import append_only, atomic_write_json, atomic_write_text, check_regular_file, loads_json
from robot_wm.sweep.spec import Trial
from robot_wm.text import first_names

log = logging.getLogger(__name__)

RESULTS_NAME = "results.csv"
BUDGET_PREFIX = "return_at_"
"""Per-budget columns: ``return_at_10000`` is the mean evaluation return when the collected environment
steps first reached 10,000 (the run's learning curve)."""
COLUMNS = ["name", "task", "seed", "overrides", "status", "error", "env_steps", "eval_return_mean",
           "eval_return_std", "wall_s", "plan_hz", "source", "run_dir"]
"""``source``: the trial's launch file (absolute path), empty for a task on the default config."""
STATUSES = ("complete", "stopped", "failed", "interrupted", "pending")
STOPPED = "stopped"
"""A run's manifest status when a sweep's early stopping ended it at a budget (``stopped_at``)."""
REQUIRED = ("name", "task", "seed", "overrides", "status", "eval_return_mean")
"""Columns ``robot-wm report`` reads; a results.csv without them is refused, naming them."""
MAX_RETURN = 1e12
"""The largest return a results.csv may hold (a 1,000-step episode of a task's rewards is far inside it)."""
MAX_RESULTS_BYTES = 64 << 20
MAX_ROWS = 10_000
"""A sweep makes at most this many trials (``spec.MAX_TRIALS``), so its results.csv has at most this many rows."""


PLOT_NAME = "learning_curves.png"
STOPS_NAME = "early_stops.json"
"""The sweep's own record of the trials early stopping ended: {trial name: budget}, written by the driver the
moment a trial is stopped. The stop goes into the trial's manifest once its worker lets go of the run's lock
(after the fit): a sweep killed in between left it "running", and the sweep started again ran it out."""
SWEEP_OWN = (RESULTS_NAME, "runs", "tune", PLOT_NAME, STOPS_NAME, ".lock")
"""What a sweep directory holds (``robot-wm report`` adds the plot): anything else is a user's."""


def check_sweep_dir(sweep_dir: Path) -> None:
    """Refuse a sweep directory the sweep must not write into: a file, or a folder that holds files of its own
    (a user's results.csv was replaced, and runs/ and tune/ added, before Ray even started). A new or empty
    folder, or one a sweep wrote, is fine."""
    sweep_dir = Path(sweep_dir)
    if sweep_dir.exists() and not sweep_dir.is_dir():  # "[Errno 17] File exists: '/etc/passwd'"
        raise ValueError(f"sweep directory {str(sweep_dir)!r} is a file, not a folder; choose a new or empty folder "
                         "(or one an earlier `robot-wm sweep` wrote)")
    for parent in sweep_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"sweep directory {str(sweep_dir)!r} lies below {str(parent)!r}, which is a file")
            break
    from robot_wm.run_dir import enclosing_run

    if (outer := enclosing_run(sweep_dir)) is not None:  # refused by every trial after Ray started (probe 32)
        raise ValueError(f"sweep directory {str(sweep_dir)!r} lies inside the run directory {str(outer)!r}; choose "
                         "a folder outside any run")
    if not sweep_dir.is_dir():
        return
    check_not_append_only(sweep_dir)
    theirs = sorted(p.name for p in sweep_dir.iterdir() if p.name not in SWEEP_OWN)
    results = sweep_dir / RESULTS_NAME
    header: list[str] = []
    if results.exists():
        try:
            check_regular_file(results, "sweep results", MAX_RESULTS_BYTES)
            with results.open(newline="", encoding="utf-8-sig") as f:
                header = next(csv.reader(f), [])
        except (OSError, ValueError, csv.Error):
            header = []
        if any(c not in header for c in REQUIRED):
            theirs.insert(0, f"{RESULTS_NAME} (not a sweep's: no {', '.join(c for c in REQUIRED if c not in header)} "
                             "column)")
    if theirs:
        raise ValueError(f"sweep directory {str(sweep_dir)!r} holds files that are not a sweep's ({first_names(theirs)}); "
                         "refusing to write into it: choose a new or empty folder (sweep_dir or --storage)")


def check_not_append_only(folder: Path, what: str = "sweep directory") -> None:
    """A sweep folder marked append-only (chattr +a) kept a temp file of each write (results.csv, the report's plot),
    and a later sweep then refused the folder for it (probe 39)."""
    if append_only(folder):
        raise ValueError(f"{what} {str(folder)!r} is append-only (chattr +a): the sweep and its report replace "
                         "their files there; remove the attribute (chattr -a) or choose another folder")


def runs_dir(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / "runs"


def run_dir_of(sweep_dir: Path, trial: Trial) -> Path:
    return (runs_dir(sweep_dir) / trial.name).resolve()


def manifest(run_dir: Path) -> dict:
    """The trial's manifest; a damaged one reads as empty (the trial runs, and its run names the damage)."""
    from robot_wm.run_dir import RunDir

    try:
        return RunDir(run_dir).manifest()
    except (ValueError, OSError):
        return {}


def is_complete(run_dir: Path) -> bool:
    return manifest(run_dir).get("status") == "complete" and (Path(run_dir) / "summary.json").is_file()


def stopped_at(run_dir: Path) -> int | None:
    """The budget at which early stopping ended the trial's run; None if it did not."""
    m = manifest(run_dir)
    at = m.get("stopped_at")
    return at if m.get("status") == STOPPED and isinstance(at, int) and not isinstance(at, bool) else None


def is_finished(run_dir: Path) -> bool:
    """Nothing left for the sweep to run: complete, or stopped early."""
    return is_complete(run_dir) or stopped_at(run_dir) is not None


def is_started(run_dir: Path) -> bool:
    """Something of a run is there (so the trial continues it with ``--resume`` semantics)."""
    run_dir = Path(run_dir)
    return (run_dir / "manifest.json").exists() or any((run_dir / "episodes").glob("episode_*.npz"))


def return_at(curve: dict[int, list[float]], budget: int) -> float:
    """Mean evaluation return at the first evaluation at or past ``budget`` environment steps (NaN: none)."""
    hit = min((k for k in curve if k >= budget), default=None)
    return statistics.fmean(curve[hit]) if hit is not None and curve[hit] else math.nan


def run_figures(summary: dict, budgets) -> dict:
    """A complete run's figures in its row, from its checked ``summary.json``: the headline and the return at each
    of ``budgets`` (environment steps)."""
    curve = {int(k): v for k, v in summary.get("learning_curve", {}).items()}
    return {**{k: summary.get(k) for k in ("env_steps", "eval_return_mean", "eval_return_std", "wall_s", "plan_hz")},
            **{f"{BUDGET_PREFIX}{b}": return_at(curve, b) for b in budgets}}


def trial_row(trial: Trial, run_dir: Path, status: str | None = None, error: str = "",
              stopped: int | None = None) -> dict:
    """The trial's row: figures from the run directory's summary.json when the run is complete; for a run
    early stopping ended (its manifest says so, or ``stopped``: the budget, not recorded yet) the budget and
    the learning curve up to it."""
    row = {"name": trial.name, "task": trial.task, "seed": trial.seed, "overrides": " ".join(trial.grid),
           "source": trial.source if trial.is_launch else "", "run_dir": str(run_dir), "error": error}
    if status == "failed":  # a run someone else made in the trial's folder (its seed 77, the trial's 3) was refused by
        row["status"] = status  # the trial, and its figures were the trial's "complete" row (probe 41)
        return row
    if is_complete(run_dir):
        from robot_wm.run_dir import RunDir

        try:
            s = RunDir(run_dir).summary()
        except ValueError as e:  # this trial's row says so; the sweep and its other trials go on
            row.update(status="failed", error=str(e)[:500])
            return row
        row.update(status="complete", **run_figures(s, trial.budgets))
        return row
    if (at := stopped if stopped is not None else stopped_at(run_dir)) is not None and status is None:
        from robot_wm.run_dir import RunDir

        curve: dict[int, list[float]] = {}
        for r in RunDir(run_dir).records("eval"):
            if isinstance(r.get("milestone"), int) and isinstance(r.get("returns"), list):
                curve[r["milestone"]] = [x for x in r["returns"] if isinstance(x, int | float)]
        row.update(status=STOPPED, env_steps=at)
        row.update({f"{BUDGET_PREFIX}{b}": return_at(curve, b) for b in trial.budgets if b <= at})
        return row
    row["status"] = status or ("interrupted" if is_started(run_dir) else "pending")
    return row


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def to_csv(rows: list[dict]) -> str:
    budgets = sorted({int(k[len(BUDGET_PREFIX):]) for r in rows for k in r if k.startswith(BUDGET_PREFIX)})
    cols = COLUMNS[:9] + [f"{BUDGET_PREFIX}{b}" for b in budgets] + COLUMNS[9:]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: _cell(r.get(c)) for c in cols})
    return buf.getvalue()


MAX_STOPS_BYTES = 16 << 20


def read_stops(sweep_dir: Path) -> dict[str, int]:
    """The stops recorded in ``SWEEP_DIR/early_stops.json`` (an unreadable or edited file: none)."""
    path = Path(sweep_dir) / STOPS_NAME
    try:
        check_regular_file(path, "early stops", MAX_STOPS_BYTES)
        doc = loads_json(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {k: v for k, v in doc.items() if type(v) is int and v > 0}


def write_stops(sweep_dir: Path, stops: dict[str, int]) -> None:
    atomic_write_json(Path(sweep_dir) / STOPS_NAME, dict(sorted(stops.items())))


def write(sweep_dir: Path, rows: list[dict]) -> Path:
    """``SWEEP_DIR/results.csv`` of ``rows``, keeping the rows of other trials it held: a second sweep file (or
    a narrower grid) on the same sweep_dir dropped the first one's rows, whose runs stay in runs/ (tenth probe)."""
    path = Path(sweep_dir) / RESULTS_NAME
    names = {r.get("name") for r in rows}
    try:
        kept = [r for r in read(sweep_dir) if r.get("name") not in names] if path.exists() else []
    except (OSError, ValueError) as e:  # an unreadable or edited file: set aside, never dropped (probe 11: one edited
        kept = []                       # row and the next sweep of another file wrote its own rows alone)
        if path.is_file() and not path.is_symlink():
            aside = path.with_name(f"results.unreadable-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.csv")
            os.replace(path, aside)
            log.warning("%s could not be read (%s); it was kept as %s, and %s now holds this sweep's rows only",
                        path, e, aside.name, path.name)
    atomic_write_text(path, to_csv(rows + kept))
    return path


def _sweep_file_hint(path: Path) -> str:
    """Where the sweep file ``path`` writes its results by default, when it reads as one (its TOML alone: loading the
    whole sweep builds every trial and may fail on a launch file, which is not what was asked)."""
    from robot_wm.config import ConfigError, read_toml
    from robot_wm.sweep.spec import default_dir

    try:
        data = read_toml(path, "sweep file")
    except ConfigError:
        return ""
    if not {"launch", "tasks"} & data.keys():
        return ""
    where = default_dir(path, data["sweep_dir"] if isinstance(data.get("sweep_dir"), str) else None)
    rel = "" if where.is_absolute() else ", relative to where `robot-wm sweep` ran"
    return f" (a sweep file: its results are by default in {str(where)!r}{rel})"


MAX_BUDGET = 10**9
"""The largest budget a ``return_at_N`` column may name (a run's env_steps at most)."""


def read(sweep_dir: Path) -> list[dict]:
    """The rows of ``SWEEP_DIR/results.csv`` (values as text, empty where not measured)."""
    path = Path(sweep_dir) / RESULTS_NAME
    if Path(sweep_dir).is_file():  # a sweep file: "'x.toml/results.csv' does not exist" (probe 24)
        raise FileNotFoundError(f"{str(sweep_dir)!r} is a file, not a sweep directory{_sweep_file_hint(sweep_dir)}")
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r} does not exist: expected a sweep directory written by "
                                "`robot-wm sweep` (it holds results.csv)")
    check_regular_file(path, "sweep results", MAX_RESULTS_BYTES)  # a link to /dev/zero "did not exist"
    with path.open(newline="", encoding="utf-8-sig") as f:  # saved from a spreadsheet: a byte-order mark
        reader = csv.DictReader(f)
        try:
            header = reader.fieldnames or []
            rows = []
            for r in itertools.islice(reader, MAX_ROWS + 1):
                if r.get(None):  # a longer row's extra cells were dropped: '1,000' read as 1.0 (probe 29)
                    raise ValueError(f"{str(path)!r} line {reader.line_num}: {len(r[None])} cell(s) more than the header "
                                     f"has columns ({r[None]!r:.60}); expected a results.csv written by `robot-wm "
                                     "sweep` (a number with a thousands separator?)")
                rows.append({k: v or "" for k, v in r.items() if k is not None})  # a short row's missing cells: ''

        except (csv.Error, UnicodeDecodeError) as e:  # a field over the csv module's limit, or bytes that are no
            # UTF-8 (a bare codec message naming no file: probe 20): a traceback before
            line = reader.line_num
            if isinstance(e, UnicodeDecodeError):  # the reader's line lags the decoder's 8 KB chunks (probe 21)
                raw = path.read_bytes()
                line = raw.count(b"\n", 0, _first_bad_byte(raw)) + 1
            raise ValueError(f"{str(path)!r} line {line}: {e}; expected a results.csv written by "
                             "`robot-wm sweep`") from None
        if missing := [c for c in REQUIRED if c not in header]:
            raise ValueError(f"{str(path)!r} lacks the columns {missing}: expected a results.csv written by `robot-wm sweep`")
        for c in header:
            digits = c[len(BUDGET_PREFIX):]
            if c.startswith(BUDGET_PREFIX) and not (digits.isascii() and digits.isdigit() and str(int(digits)) == digits
                                                    and int(digits) <= MAX_BUDGET):  # 10**23: a traceback (probe 29)
                # return_at_0200 was read as the budget 200 and its cells never found: every one showed "–"
                raise ValueError(f"{str(path)!r}: column {c!r}: expected {BUDGET_PREFIX}<environment steps>, at most "
                                 f"{MAX_BUDGET:,}, e.g. {BUDGET_PREFIX}10000")
    if not rows:  # the report printed an empty table and drew empty axes (a matplotlib warning)
        raise ValueError(f"{str(path)!r} holds no trials (a header only): expected a results.csv written by "
                         "`robot-wm sweep`, which writes a row for every trial")
    if len(rows) > MAX_ROWS:  # 200,000 hand-made rows kept the report busy for minutes
        raise ValueError(f"{str(path)!r} has more than {MAX_ROWS:,} rows; a sweep writes one per trial, at most "
                         f"{MAX_ROWS:,}")
    seen: dict[str, int] = {}
    for line, r in enumerate(rows, 2):
        # one trial counted twice as two seeds of a mean: by name, and by run directory ('a' and 'A', seeds 0
        # and -0 with one run_dir: the eighth probe)
        for key in (name := (r.get("name") or "").strip(), f"run_dir {run}" if (run := r.get("run_dir", "")) else ""):
            if key and key in seen:
                same = f" ({key})" if key != name else ""
                raise ValueError(f"{str(path)!r} line {line}: trial {name!r}{same} is also on line {seen[key]}; expected "
                                 "one row per trial")
            seen[key] = line
        if r.get("status") not in STATUSES:  # 'COMPLETE' or 'complete ' was left out of every mean without a word
            raise ValueError(f"{str(path)!r} line {line}: status={r.get('status')!r}: expected one of "
                             f"{', '.join(STATUSES)}")
    returns = [c for c in header if c.startswith(BUDGET_PREFIX)] + ["eval_return_mean"]
    for line, r in enumerate(rows, 2):
        for c in returns:
            text = r.get(c) or ""
            try:
                ok = not text or abs(float(text)) <= MAX_RETURN
            except ValueError:
                ok = False
            if not ok:  # inf was refused; 1e308 ended in matplotlib's "Singular matrix" naming nothing
                raise ValueError(f"{str(path)!r} line {line}: {c}={text!r}: expected a finite number within "
                                 f"+-{MAX_RETURN:g} (or empty: not measured)")
        _check_figures(r, f"{str(path)!r} line {line}")
    return rows


def check_against_runs(rows: list[dict], sweep_dir: Path) -> None:
    """Refuse a complete row whose returns are not its run's (``summary.json``, itself checked against the run's
    final evaluation): a row's 40.15 edited to 900 became the sweep's mean and plot (probe 40). A row whose run
    directory is not here (results.csv copied alone) is taken as written."""
    from robot_wm.run_dir import RunDir

    path = Path(sweep_dir) / RESULTS_NAME
    for line, r in enumerate(rows, 2):
        if r.get("status") != "complete" or not r.get("run_dir") or not is_complete(run := Path(r["run_dir"])):
            continue
        budgets = [c for c in r if c.startswith(BUDGET_PREFIX)]
        figures = run_figures(RunDir(run).summary(), [int(c[len(BUDGET_PREFIX):]) for c in budgets])
        for c in ("eval_return_mean", *budgets):
            text, want = (r.get(c) or "").strip(), figures[c]
            close = text and isinstance(want, int | float) and math.isfinite(want) and math.isclose(
                float(text), want, rel_tol=1e-5, abs_tol=1e-6)
            if text != _cell(want) and not close:
                raise ValueError(f"{str(path)!r} line {line}: {c}={text!r}, where its run {str(run)!r} gives "
                                 f"{_cell(want) or 'nothing'!r} (its summary.json): the file was edited; run the same "
                                 "`robot-wm sweep` again to rewrite it from the runs")


WHOLE = {"seed": 2**32 - 1, "env_steps": MAX_BUDGET}
"""Columns that hold a whole number (at most this); the others in ``FIGURES`` hold a number >= 0."""
FIGURES = ("eval_return_std", "wall_s", "plan_hz")


def _check_figures(row: dict, where: str) -> None:
    """A row's counts and figures as a sweep writes them (or empty): `seed=abc` and `wall_s=inf` were shown as they
    stood in the report's table (probe 29)."""
    for c, most in WHOLE.items():
        text = (row.get(c) or "").strip()
        if text and not (text.isascii() and text.isdigit() and int(text) <= most):
            raise ValueError(f"{where}: {c}={text!r}: expected a whole number from 0 to {most:,} (or empty)")
    for c in FIGURES:
        text = (row.get(c) or "").strip()
        try:
            ok = not text or 0 <= float(text) <= MAX_RETURN
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{where}: {c}={text!r}: expected a finite number from 0 to {MAX_RETURN:g} (or empty)")


def budgets_of(rows: list[dict]) -> list[int]:
    return sorted({int(k[len(BUDGET_PREFIX):]) for r in rows[:1] for k in r if k.startswith(BUDGET_PREFIX)})


def _first_bad_byte(raw: bytes) -> int:
    """Where the first byte that is not UTF-8 lies in ``raw`` (its length where there is none)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start
    return len(raw)
