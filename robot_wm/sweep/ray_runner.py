"""Running a sweep's trials on Ray Tune: an embedded loopback-only Ray, or an existing cluster.

Ray Tune schedules the trials (one per CPU budget of ``cfg.threads``), retries a trial whose worker dies
(``FailureConfig``), and calls back on every start, result and end. What a trial *is* stays ours: one
ordinary ``robot_wm.runner.run`` into its own run directory, resumed from its last checkpoint when the
directory holds part of a run, skipped (Ray is not even started) when its manifest says complete. An
error inside a run is a result, not a crash: the trial reports it and the other trials go on.

Nothing here imports ray at module level: building the ``robot-wm`` parser stays light.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

from robot_wm.net import is_loopback
from robot_wm.sweep import results
from robot_wm.sweep.spec import Sweep, SweepError, Trial

LOOPBACK_ENV = {
    # On Linux, Ray resolves the node IP to the machine's outward address (a requested 127.0.0.1 is
    # replaced by it) and then binds gcs_server, raylet, every worker and the driver on all interfaces.
    # This switch (meant for single-machine Ray on macOS/Windows) makes the node IP 127.0.0.1, so every
    # gRPC server binds 127.0.0.1 and the runtime-env agent too (tested with `ss -ltnp`).
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # Token authentication on (Ray 2.60's default for a local instance; said explicitly so that it stays on):
    # Ray generates the token (~/.ray/auth_token) and every RPC of this instance must carry it.
    "RAY_AUTH_MODE": "token",
    # No usage statistics sent anywhere.
    "RAY_USAGE_STATS_ENABLED": "0",
}
STATUS_EVERY_S = 60.0
STOP_RECORD_TIMEOUT_S = 30.0
"""How long the driver tries to take a stopped trial's run lock to record the stop (its worker's thread
releases it as it unwinds)."""
LIVE_EVERY_S = 1.0


def _import_ray_for_embedded():
    """Set the loopback environment, then import ray (the switch is read once, when ray is imported)."""
    already = "ray" in sys.modules
    os.environ.update(LOOPBACK_ENV)  # inherited by every Ray process this command starts
    import ray
    from ray._private import ray_constants

    if ray_constants.ENABLE_RAY_CLUSTER:
        raise RuntimeError("ray was imported before robot-wm could keep its embedded instance on loopback "
                           f"(set {', '.join(f'{k}={v}' for k, v in LOOPBACK_ENV.items())} in the environment "
                           f"before ray is imported){' (ray was already imported)' if already else ''}")
    return ray


@contextlib.contextmanager
def ray_instance(cpus: int | None = None, address: str | None = None) -> Iterator:
    """Ray for the sweep: with no ``address`` an embedded instance on this machine (``cpus`` CPUs, every
    listener on 127.0.0.1, no dashboard, token authentication as Ray's default: on), stopped at the end;
    with ``address`` a connection to an existing cluster (``ray start --head``), which is left running."""
    sigterm = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    before = {c.pid for c in psutil.Process().children(recursive=True)}
    with _subreaper():
        yield from _started(sigterm, before, cpus, address)


def _started(sigterm, before: set[int], cpus: int | None, address: str | None) -> Iterator:
    """The body of `ray_instance` (its docstring), run while this process adopts the processes Ray orphans."""
    if address is None:
        ray = _import_ray_for_embedded()
        # address="local": always a new instance of our own, even when RAY_ADDRESS names a cluster.
        try:
            _init(ray, sigterm, before, address="local", num_cpus=cpus, include_dashboard=False,
                  _node_ip_address="127.0.0.1", logging_level=logging.WARNING, configure_logging=True)
        except Exception as e:  # noqa: BLE001 - Ray raised a traceback that named neither the cause nor the fix
            _shut_down(ray.shutdown, before)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            import resource  # a file size limit was blamed on memory (tenth probe): name the limit that is set

            limits = [f"`ulimit {flag}` is {lim}" for flag, res in (("-v", resource.RLIMIT_AS), ("-f", resource.RLIMIT_FSIZE))
                      if (lim := resource.getrlimit(res)[0]) != resource.RLIM_INFINITY]
            raise RayStartError(f"the embedded Ray instance did not start ({type(e).__name__}: {first}). Ray needs "
                               "several GB of address space, free shared memory (/dev/shm) and room to write its "
                               "session files (/tmp/ray): " + ("; ".join(limits) + ", " if limits else "check ")
                               + "`df -h /dev/shm /tmp`; no trial has run") from None
    else:
        host = _check_reachable(address)
        if host is not None and is_loopback(host):
            # A head started on loopback (the README's one-machine cluster): without the switch Ray rewrites
            # 127.0.0.1 to this machine's outward address, where nothing listens, and retries for minutes.
            ray = _import_ray_for_embedded()
        else:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            import ray

        try:
            _init(ray, sigterm, before, address=address, logging_level=logging.WARNING)
        except ConnectionError as e:  # an OSError: told as a file error, cut mid-sentence, with resume advice (probe 13)
            why = (str(e).splitlines() or [type(e).__name__])[0][:200]
            raise ValueError(f"--address {address}: no Ray cluster could be joined there ({why}); check the address, "
                             "or start a head there with `ray start --head`") from None
    try:
        yield ray
    finally:  # Ray's agents outlived a stopped sweep by a minute, their raylet gone (probe 38, a loaded machine)
        _shut_down(ray.shutdown, before)


def _init(ray, sigterm, before: set[int], **kwargs) -> None:
    """``ray.init(**kwargs)``, then the command's own SIGTERM handler (``sigterm``) set again: Ray's stopped the driver
    with a C stack dump (exit 134) once it ran. Ray sets a handler of its own (``sys.exit(15)``) as ``ray.init`` starts:
    a SIGTERM in the seconds Ray starts ended the sweep with exit 15 and no message, and twice Ray's agents outlived it
    (probe 36). Such a stop now shuts Ray down, ends each process it had started, and stops as ``sigterm`` does; so
    does any other stop (Ctrl-C, SIGHUP: the command's handler raises KeyboardInterrupt) meanwhile (probe 37).
    ``before``: the processes this one had started before Ray (not Ray's); ``sigterm`` is None off the main thread."""
    try:
        ray.init(**kwargs)
        if callable(sigterm):
            signal.signal(signal.SIGTERM, sigterm)  # the command's own handler stops it like Ctrl-C, Ray shut down
    except (SystemExit, KeyboardInterrupt) as e:  # KeyboardInterrupt: Ctrl-C, or a stop signal (SIGHUP ...) the
        # command's handler raised it for: Ray's agents outlived those too (probe 37)
        if isinstance(e, SystemExit) and e.code != signal.SIGTERM:
            raise
        _shut_down(ray.shutdown, before)
        if callable(sigterm):
            signal.signal(signal.SIGTERM, sigterm)
            if isinstance(e, SystemExit):
                sigterm(signal.SIGTERM, None)
        raise


_PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 36, 37


@contextlib.contextmanager
def _subreaper() -> Iterator[None]:
    """This process as the child subreaper (Linux ``prctl``) while Ray runs: a process whose Ray parent died is
    handed to this one, not to init, so `_shut_down` still finds it. A raylet stopped while it started its agents
    left them to init, out of reach (the CI of session 32: SIGHUP 1 s into ``ray.init``). Elsewhere, nothing."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        was = ctypes.c_int(0)
        if libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(was), 0, 0, 0) != 0 or libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            libc = None
    except (OSError, AttributeError):  # not Linux
        libc = None
    try:
        yield
    finally:
        if libc is not None and not was.value:
            libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _shut_down(shutdown: Callable[[], object], before: set[int]) -> None:
    """``shutdown()`` (Ray's), then every process started since ``before`` (this one's children then) ended: those seen
    before the shutdown and those handed to this process by it (`_subreaper`)."""
    def started() -> dict[int, psutil.Process]:
        return {c.pid: c for c in psutil.Process().children(recursive=True) if c.pid not in before}

    seen = started()
    with contextlib.suppress(Exception):
        shutdown()
    _end(list((seen | started()).values()))


def _end(processes: list[psutil.Process], wait_s: float = 3.0) -> None:
    """SIGTERM to each of ``processes`` still running, SIGKILL to those alive ``wait_s`` later (a raylet's agents are
    handed to init when it dies: no one else ends them)."""
    for p in processes:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(processes, timeout=wait_s)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()


def _check_same_settings(sweep: Sweep, run_dirs: dict[str, Path]) -> None:
    """A trial's run directory from an earlier sweep run must hold the same settings: a sweep file whose overrides
    changed skipped its complete trials and reported the old runs' returns as the new settings' (names carry only
    the task, seed and grid values)."""
    from robot_wm import config as cfgmod
    from robot_wm.run_dir import RunDir
    from robot_wm.runner import is_one_off

    for t in sweep.trials:
        run = RunDir(run_dirs[t.name])
        if not run.config_path.exists():
            continue
        saved, wanted = run.load_config(), t.config(run_dirs[t.name])
        changed = [k for k in cfgmod.changed_fields(saved, wanted) if not is_one_off(k)]
        if changed:
            old, new = cfgmod.flat(saved), cfgmod.flat(wanted)
            raise SweepError(f"trial {t.name}: its run {str(run.root)!r} was made with other settings "
                             f"({', '.join(f'{k}: {old[k]!r} there, {new[k]!r} now' for k in changed[:5])}); a sweep "
                             "continues its own runs only: use another --storage or sweep_dir")


CONNECT_TIMEOUT_S = 10.0


class RayStartError(RuntimeError):
    """The embedded Ray instance did not start: a message for the user, not a traceback."""


def _check_reachable(address: str) -> str | None:
    """The host of a ``HOST:PORT`` address once its port answers; a clear error at once where nothing does
    (Ray itself retries an unreachable GCS for minutes, printing warnings). Other forms (``auto``,
    ``ray://``) are left to Ray: returns None."""
    if address == "auto" or "://" in address:
        return None
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--address {address!r}: expected HOST:PORT of a Ray head (e.g. 127.0.0.1:6379), "
                         "`auto`, or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise ValueError(f"--address {address!r}: no Ray head answers there ({e.strerror or e}); start one with "
                         "`ray start --head --port PORT` (see the README) or check the address") from None
    return host


def run_trial(payload: dict, on_milestone=None) -> dict:
    """One trial in a worker: the ordinary run, resumed if its directory holds part of one. Returns
    ``{"status": "complete"|"failed", "error": message, "env_steps", "eval_return"}``; an error in the run
    never escapes. ``on_milestone`` (early stopping) hears each learning-curve evaluation."""
    from robot_wm.run_dir import holder_named
    from robot_wm.runner import run

    trial, run_dir = Trial.from_payload(payload), Path(payload["run_dir"])
    if (cwd := payload.get("cwd")) and Path(cwd).is_dir():
        # As `robot-wm run` there: Ray Tune starts a trial in its own working directory, so a launch file's relative
        # env.mjcf (and a reward module beside it) were not found once Ray had started (ninth probe).
        os.chdir(cwd)
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
    try:
        cfg = trial.config(run_dir)
        with holder_named(payload.get("holder")):
            summary = run(cfg, progress=False, resume=results.is_started(run_dir), on_milestone=on_milestone)
        return {"status": "complete", "error": "", "env_steps": summary["env_steps"],
                "eval_return": summary["eval_return_mean"]}
    except Exception as e:  # noqa: BLE001 - reported as the trial's result; the other trials go on
        msg = str(e).strip().splitlines()
        return {"status": "failed", "error": f"{type(e).__name__}: {msg[0] if msg else ''}"[:500],
                "env_steps": 0, "eval_return": float("nan")}


_watching_parent = False


def _exit_with_parent(poll_s: float = 0.2) -> None:
    """Exit this worker within ``poll_s`` of its raylet's death. Ray's own check took 3.7-4.7 s after a
    SIGKILL of the sweep (measured): a trial went on writing episodes all that while, and a sweep restarted
    at once found its run still locked. A worker is its raylet's child, so being re-parented means the node
    is gone. Exiting mid-run loses nothing: every file is written atomically and the kernel drops the
    run's flock with the process."""
    global _watching_parent
    if _watching_parent:  # Ray reuses a worker process for later trials
        return
    _watching_parent, parent = True, os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="robot-wm-exit-with-raylet", daemon=True).start()


def _trainable(config: dict) -> None:
    from ray import tune

    _exit_with_parent()

    rungs = dict(config.get("early_stop") or [])  # budget -> the scheduler's time of that budget's rung

    def on_milestone(run, budget: int, mean_return: float) -> None:
        """Tell the scheduler. Where it stops the trial, Tune ends this thread with SystemExit inside ``report``
        (the run's files are complete: each is written atomically) and the driver records the stop."""
        at = {RUNG: rungs[budget]} if budget in rungs else {}  # every budget has one (a budget is an eval_at)
        tune.report({"env_steps": budget, "eval_return": mean_return, **at})

    tune.report(run_trial(config["trial"], on_milestone if rungs else None))


def _record_stop(run_dir: Path, at: int, out: Callable[[str], None]) -> None:
    """Write into the stopped trial's manifest that early stopping ended it at ``at`` steps, under its lock
    (so a sweep started again skips it; ``robot-wm run --resume`` still continues it on purpose)."""
    from robot_wm.run_dir import RunDir, RunLockedError

    run, end = RunDir(run_dir), time.monotonic() + STOP_RECORD_TIMEOUT_S
    while True:
        try:
            with run.lock("robot-wm sweep (recording an early stop)"):
                run.update_manifest(status=results.STOPPED, stopped_at=at)
            return
        except RunLockedError:
            if time.monotonic() > end:
                out(f"sweep: could not record the early stop of {run_dir} (its run is still locked); a sweep "
                    "started again will resume it")
                return
            time.sleep(0.2)


class _Progress:
    """Plain lines for a terminal or a CI log: each trial started / finished / failed with the overall
    count, a line per running trial whenever it stores an episode, and the count every ``STATUS_EVERY_S``."""

    def __init__(self, total: int, skipped: int, on_change: Callable[[str, str | None, str], None],
                 out: Callable[[str], None], stops: dict[str, tuple[str, int]]):
        self.total, self.done, self.failed, self.stopped = total, skipped, 0, 0
        self.stops = stops
        """Trials the scheduler stopped, filled in here: name -> (run directory, the budget it stopped at)."""
        self.running: dict[str, tuple[float, str]] = {}
        self.outcome: dict[str, dict] = {}
        self.on_change, self.out = on_change, out
        self.last_status = self.last_live = self.t0 = time.monotonic()
        self.episodes: dict[str, int] = {}

    def count(self) -> str:
        pending = self.total - self.done - self.stopped - self.failed - len(self.running)
        stopped = f"stopped early {self.stopped}, " if self.stopped else ""
        return (f"[{self.done + self.stopped + self.failed}/{self.total}] finished {self.done}, {stopped}running "
                f"{len(self.running)}, failed {self.failed}, pending {pending} ({time.monotonic() - self.t0:.0f} s)")

    def start(self, name: str, run_dir: str) -> None:
        self.running[name] = (time.monotonic(), run_dir)
        self.out(f"sweep: started {name}  {self.count()}")

    def result(self, name: str, res: dict) -> None:
        self.outcome[name] = res

    def end(self, name: str, error: str | None = None) -> None:
        t0, run_dir = self.running.pop(name, (time.monotonic(), ""))
        res = self.outcome.get(name, {})
        err = error or (res.get("error") if res.get("status") == "failed" else None)
        if not err and "status" not in res and isinstance(res.get("env_steps"), int):
            # It ended on an evaluation's result, not its run's: the scheduler stopped it there. Its worker
            # may still be unwinding (it holds the run's lock), so run_sweep records the stop after the fit.
            self.stopped += 1
            self.stops[name] = (run_dir, res["env_steps"])
            self.on_change(name, None, "")
            self.out(f"sweep: stopped {name} at {res['env_steps']} env steps (early stopping: eval return "
                     f"{res.get('eval_return', float('nan')):.1f} behind the others)  {self.count()}")
            return
        if not err and not results.is_complete(Path(run_dir)):
            err = "the trial ended without completing its run (no result reported)"
        if err:
            self.failed += 1
            self.on_change(name, "failed", err)
            self.out(f"sweep: FAILED {name} after {time.monotonic() - t0:.0f} s: {err}  {self.count()}")
        else:
            self.done += 1
            self.on_change(name, None, "")
            row = results.trial_row(Trial(name=name, source="", is_launch=False, seed=0, grid=()), Path(run_dir))
            ret = row.get("eval_return_mean")
            self.out(f"sweep: finished {name} in {time.monotonic() - t0:.0f} s"
                     f"{f', eval return {ret:.1f}' if isinstance(ret, float) else ''}  {self.count()}")

    def tick(self) -> None:
        """A line whenever a running trial stores an episode (checked every ``LIVE_EVERY_S``), and the
        overall count every ``STATUS_EVERY_S``."""
        now = time.monotonic()
        if not self.running or now - self.last_live < LIVE_EVERY_S:
            return
        self.last_live = now
        for name, (t0, run_dir) in self.running.items():
            n = results.manifest(Path(run_dir)).get("episodes", 0)
            if n != self.episodes.get(name, 0):
                self.episodes[name] = n
                self.out(f"sweep:   {name}: {n} episodes stored ({now - t0:.0f} s)")
        if now - self.last_status >= STATUS_EVERY_S:
            self.last_status = now
            self.out(f"sweep: {self.count()}")


def _tune_callback(progress: _Progress, usr1=None):
    """Tune's callback reporting to ``progress``; ``usr1``: the SIGUSR1 handler to set again as the fit starts (Tune
    sets its own, which ended a sweep stopped by SIGUSR1 with "done ... pending 1" and `Tuner.restore` advice, where
    robot-wm's commands stop as on SIGTERM: probe 37)."""
    from ray import tune

    class Callback(tune.Callback):
        def setup(self, **info):
            if usr1 is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGUSR1, usr1)

        def on_trial_start(self, iteration, trials, trial, **info):
            progress.start(trial.config["trial"]["name"], trial.config["trial"]["run_dir"])

        def on_trial_result(self, iteration, trials, trial, result, **info):
            progress.result(trial.config["trial"]["name"], result)

        def on_trial_complete(self, iteration, trials, trial, **info):
            progress.end(trial.config["trial"]["name"])

        def on_trial_error(self, iteration, trials, trial, **info):
            err = trial.error_file and Path(trial.error_file).is_file() and Path(trial.error_file).read_text()
            last = (err or "the trial's worker failed").strip().splitlines()[-1]
            progress.end(trial.config["trial"]["name"], error=f"worker failed (retries spent): {last}"[:500])

        def on_step_end(self, iteration, trials, **info):
            progress.tick()

    return Callback()


def run_sweep(sweep: Sweep, sweep_dir: Path, *, cpus: int | None = None, address: str | None = None,
              max_failures: int = 2, out: Callable[[str], None] = print) -> list[dict]:
    """Run every trial of ``sweep`` not complete yet under ``sweep_dir`` and write ``results.csv`` (after
    each trial and at the end). Uses the Ray this process is already connected to, if any; otherwise starts
    the embedded one (``address`` None) or joins ``address``. Returns the rows. One sweep at a time per
    ``sweep_dir``: a second is refused naming the first (probe 14: two sweeps each failed the trial the other
    held, yet both exited 0)."""
    from robot_wm.run_dir import lock_folder

    results.check_sweep_dir(sweep_dir)
    if address is not None:  # a dead head was refused after the sweep folder, its lock and a header were made (probe 28)
        _check_reachable(address)
    sweep_dir = Path(sweep_dir).resolve()
    if not sweep_dir.exists():  # a refusal left the new folder, its lock and a results.csv of pending rows (probe 34)
        _check_cpus(sweep.trials, cpus, address)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with lock_folder(sweep_dir, "sweep directory", None, "Its trials' runs are written by that sweep"):
        return _run_sweep(sweep, sweep_dir, cpus, address, max_failures, out)


def _check_cpus(todo: list, cpus: int | None, address: str | None) -> None:
    """Refuse ``--cpus`` below the threads a trial to run needs (the embedded Ray only: a cluster says its own)."""
    if cpus is not None and address is None and (big := max(todo, key=lambda t: t.threads)).threads > cpus:
        raise SweepError(f"trial {big.name} needs threads={big.threads} CPUs but --cpus is {cpus}; expected "
                         f"--cpus of at least {big.threads} (or threads={cpus} in the sweep's overrides)")


def _run_sweep(sweep: Sweep, sweep_dir: Path, cpus: int | None, address: str | None, max_failures: int,
               out: Callable[[str], None]) -> list[dict]:
    run_dirs = {t.name: results.run_dir_of(sweep_dir, t) for t in sweep.trials}
    errors: dict[str, str] = {}

    stops: dict[str, tuple[str, int]] = {}

    def rows() -> list[dict]:
        return [results.trial_row(t, run_dirs[t.name], "failed" if t.name in errors else None,
                                  errors.get(t.name, ""), stopped=stops.get(t.name, (None, None))[1])
                for t in sweep.trials]

    pending = results.read_stops(sweep_dir) if sweep.spec.early_stop is not None else {}

    def on_change(name: str, status: str | None, error: str) -> None:
        if status == "failed":
            errors[name] = error
        else:  # finished or stopped since (a failed row now wins over a complete run folder: probe 41)
            errors.pop(name, None)
        if name in stops:  # at once: its manifest can take the stop only after the fit (the worker holds its lock)
            results.write_stops(sweep_dir, {**pending, **{n: at for n, (_, at) in stops.items()}})
        results.write(sweep_dir, rows())

    _check_same_settings(sweep, run_dirs)
    for name, at in pending.items():  # stops of a sweep killed before it could write them into the manifests
        if name in run_dirs and results.manifest(run_dirs[name]).get("status") == "running":
            _record_stop(run_dirs[name], at, out)
    # A stopped trial is finished for a sweep that stops early; one without [early_stop] runs it out.
    finished = results.is_finished if sweep.spec.early_stop is not None else results.is_complete
    todo = [t for t in sweep.trials if not finished(run_dirs[t.name])]
    for t in sweep.trials:
        if t not in todo:
            at = results.stopped_at(run_dirs[t.name])
            out(f"sweep: skipped {t.name} ({'complete' if at is None else f'stopped early at {at} env steps'} "
                f"in {run_dirs[t.name]})")
    first = rows()
    results.write(sweep_dir, first)
    if not todo:
        # a complete trial whose summary.json was edited is a failed row: "all 2 trials complete", exit 1 (probe 40)
        for r in (failed := [r for r in first if r["status"] == "failed"]):
            out(f"sweep: FAILED {r['name']}: {r['error']}")
        done = "complete" if all(results.is_complete(d) for d in run_dirs.values()) else "complete or stopped early"
        out(f"sweep: {f'{len(failed)} of the {len(sweep.trials)} trials FAILED' if failed else f'all {len(sweep.trials)} trials {done}'}; "
            f"results in {sweep_dir / results.RESULTS_NAME}")
        return first
    _check_cpus(todo, cpus, address)
    for t in todo:
        if results.is_started(run_dirs[t.name]):
            out(f"sweep: resuming {t.name} from its last checkpoint")
    connected = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    with contextlib.nullcontext(sys.modules.get("ray")) if connected else ray_instance(cpus, address) as ray:
        total = ray.cluster_resources().get("CPU", 0)
        if (big := max(todo, key=lambda t: t.threads)).threads > total:
            raise SweepError(f"trial {big.name} needs threads={big.threads} CPUs but the Ray cluster has {total:g}")
        progress = _Progress(len(sweep.trials), len(sweep.trials) - len(todo), on_change, out, stops)
        from robot_wm.run_dir import command_line

        line = command_line()  # a trial's lock names the sweep to stop, not Ray's worker
        payloads = [{**t.payload(run_dirs[t.name]), "cwd": os.getcwd(),
                     "holder": f"robot-wm sweep trial {t.name} (sweep PID {os.getpid()}: {line})"} for t in todo]
        _fit(ray, payloads, sweep_dir, progress, max_failures, _scheduler(sweep), _rungs(sweep))
    for run_dir, at in stops.values():
        _record_stop(Path(run_dir), at, out)
    final = rows()
    results.write(sweep_dir, final)
    out(f"sweep: done. {progress.count()}; results in {sweep_dir / results.RESULTS_NAME}")
    return final


RUNG = "rung_time"
"""The scheduler's clock: ``reduction_factor ** i`` at the i-th budget (see ``rung_times``)."""


def rung_times(budgets: tuple[int, ...], reduction_factor: float) -> list[tuple[int, float]]:
    """Each budget's time on ASHA's clock. ASHA compares trials only at ``grace * rf ** k``: on env steps,
    eval_at = [1000, 2000, 3000, 4000] with rf = 3 had rungs at 1000 and 3000 alone (a trial far behind at
    2000 went on). Reporting the i-th budget as ``rf ** i`` (grace 1) puts a rung at every budget."""
    return [(b, reduction_factor ** i) for i, b in enumerate(budgets)]


def _rungs(sweep: Sweep) -> list[tuple[int, float]] | None:
    es = sweep.spec.early_stop
    return None if es is None else rung_times(sweep.trials[0].budgets, es.reduction_factor)


def _scheduler(sweep: Sweep):
    """ASHA on the evaluations at the sweep's budgets (``[early_stop]``), or None (every trial runs out)."""
    if sweep.spec.early_stop is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    rf = sweep.spec.early_stop.reduction_factor
    last = _rungs(sweep)[-1][1]  # the same budgets for every trial (checked when the file was loaded)
    # max_t a hair above the last rung: ASHA counts its rungs as int(log(max_t) / log(rf) + 1), which rounding
    # could leave one short at exactly rf ** n
    return ASHAScheduler(time_attr=RUNG, metric="eval_return", mode="max", grace_period=1,
                         max_t=last * (1 + 1e-9), reduction_factor=rf)


def _fit(ray, payloads: list[dict], sweep_dir: Path, progress: _Progress, max_failures: int,
         scheduler=None, rungs: list[tuple[int, float]] | None = None) -> None:
    from ray import tune

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Ctrl-C: Tune's own handler advised `Tuner.restore(...)`, then the sweep printed "done" and exited 1.
    # Without it the KeyboardInterrupt ends the command like any other (exit 130, "run the sweep again").
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    # reuse_actors: a worker process runs one trial after another (same results: each run seeds everything
    # from its config), so the 5-10 s of starting a Python process and importing torch and MuJoCo are paid
    # once per worker, not once per trial.
    name = lambda t: t.config["trial"]["name"]
    usr1 = signal.getsignal(signal.SIGUSR1) if threading.current_thread() is threading.main_thread() else None
    tuner = tune.Tuner(
        tune.with_resources(_trainable, lambda config: tune.PlacementGroupFactory(
            [{"CPU": config["trial"]["threads"]}])),
        param_space={"trial": tune.grid_search(payloads), "early_stop": rungs},
        tune_config=tune.TuneConfig(trial_name_creator=name, trial_dirname_creator=name, reuse_actors=True,
                                    scheduler=scheduler),
        run_config=tune.RunConfig(name="tune", storage_path=str(sweep_dir), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=max_failures),
                                  callbacks=[_tune_callback(progress, usr1)]))
    try:
        tuner.fit()
    finally:
        if usr1 is not None:
            signal.signal(signal.SIGUSR1, usr1)
