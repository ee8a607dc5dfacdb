"""The run directory: resolved config, episodes, checkpoints, metrics and summary."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import logging
import math
import os
import re
import reprlib
import stat
import statistics
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import ClassVar

from robot_wm import config as config_mod
from robot_wm.config import RunConfig
from robot_wm.data.dataset import EpisodeDataset
from robot_wm.io import (
    RunLockedError,
    append_jsonl,
    append_only,
    atomic_write_json,
    atomic_write_text,
    check_regular_file,
    dangling_link,
    file_sha256,
    leftover_temp_files,
    loads_json,
    read_jsonl,
)
from robot_wm.text import first_names
from sim.env import STEP_UNIT

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
"""The run directory's lock file: ``fcntl.flock`` on it says who writes the run (see ``RunDir.lock``)."""


TIGHTENED = ("model.val_fraction", "planner.noise_beta", "planner.iterations", "env.max_env_steps")
"""Fields whose limits the fourteenth probe tightened: a run saved before may hold a value outside them."""


class NotARunError(ValueError):
    """A folder that holds files but is not a robot-wm run directory."""


class _Held:
    """One open, flock-ed lock file of this process, held by one ``RunLock`` (a second lock on the same folder in
    this process is refused); closed when that handle is released."""

    registry: ClassVar[dict[str, _Held]] = {}
    guard = threading.Lock()

    def __init__(self, key: str, fd: int, dir_fd: int):
        self.key, self.fd, self.dir_fd = key, fd, dir_fd


_SKIPS_WARNED: set[tuple[str, tuple[int, ...]]] = set()
"""(metrics.jsonl, skipped line numbers) already warned of in this process."""


class RunLock:
    """An exclusive lock on a run directory, released by ``release()`` (or when this object is garbage
    collected, or when the process dies: the kernel drops a dead process's flock)."""

    def __init__(self, held: _Held):
        self._held = held
        self._finalizer = weakref.finalize(self, _release, held)

    def release(self) -> None:
        self._finalizer()

    @property
    def active(self) -> bool:
        return self._finalizer.alive

    def in_place(self) -> bool:
        """Whether the folder at the locked path is still the one locked: a writer paused while the run was moved
        away and a copy put back at its path wrote into the copy, beside that copy's own writer (probe 33)."""
        folder = os.path.dirname(self._held.key)
        try:
            here, held = os.stat(folder), os.fstat(self._held.dir_fd)
        except OSError:
            return False
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _release(held: _Held) -> None:
    import fcntl

    with _Held.guard:
        _Held.registry.pop(held.key, None)
        try:
            os.ftruncate(held.fd, 0)  # the holder's line goes with the lock
            fcntl.flock(held.fd, fcntl.LOCK_UN)
            fcntl.flock(held.dir_fd, fcntl.LOCK_UN)
        except OSError:
            pass
        finally:
            os.close(held.fd)
            os.close(held.dir_fd)


_HOLDER: list[str] = []
"""What this process's locks name as their holder, where not its own command line (a sweep's trial in a Ray worker)."""


@contextlib.contextmanager
def holder_named(text: str | None):
    """Name the locks taken in the block ``text``: a sweep's trial, whose worker's command line is Ray's (560
    characters of `default_worker.py --node-ip-address=...`, naming neither the trial nor the sweep: probe 34)."""
    if text:
        _HOLDER.append(text)
    try:
        yield
    finally:
        if text:
            _HOLDER.pop()


def command_line() -> str:
    """What a lock names as its holder: this process's command line (as `robot-wm ...`), or ``holder_named``'s text."""
    if _HOLDER:
        return _HOLDER[-1][:500]
    argv = [os.path.basename(sys.argv[0]) if sys.argv else "python", *sys.argv[1:]]
    if argv[0] in ("cli.py", "__main__.py", "-m", "-c"):
        argv[0] = "robot-wm"
    return " ".join(argv)[:500]


def lock_folder(root: Path, what: str, command: str | None = None, hint: str = "") -> RunLock:
    """An exclusive ``fcntl.flock`` on the folder ``root`` itself (it exists), or ``RunLockedError`` naming ``what``, the
    holder (PID, command line and start time, written into the lock file) and ``hint``. Exclusive within a process
    too (a second session of one process stored duplicate episodes: probe 25); the kernel drops a dead holder's lock.
    Run directories (``RunDir.lock``) and sweep directories hold one."""
    import fcntl

    key = os.path.join(os.path.realpath(root), LOCK_NAME)  # the lock file itself is never followed
    with _Held.guard:
        if key in _Held.registry:  # two sessions of one process stored duplicate episodes under wrong indices (probe 25)
            raise RunLockedError(_locked_message(root, what, _holder(key), hint, this_process=True))
        # The lock is the folder's own (flock on the directory): `rm RUN/.lock` beside a writer, a stale-lock habit,
        # let a second writer lock a new file while the first held the removed one (probe 22). The file names
        # the holder.
        dir_fd = os.open(os.path.realpath(root), os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(dir_fd)
            raise RunLockedError(_locked_message(root, what, _holder(key), hint)) from None
        except OSError as e:  # ENOLCK (an NFS or SMB mount without locks) was "No locks available: a file" (36)
            os.close(dir_fd)
            raise OSError(e.errno, f"{e.strerror}: the file system of this {what} does not take the lock robot-wm "
                          "holds on a folder it writes (flock); use a local file system", str(root)) from None
        except BaseException:
            os.close(dir_fd)
            raise
        try:
            held = _Held.registry[key] = _Held(key, _lock_file(root, key, what, command, hint), dir_fd)
        except BaseException:
            fcntl.flock(dir_fd, fcntl.LOCK_UN)
            os.close(dir_fd)
            raise
        return RunLock(held)


def _holder(key: str) -> str | None:
    """The holder's line in the lock file ``key``; None where the file is gone (removed beside its writer)."""
    try:
        fd = os.open(key, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return os.pread(fd, 4096, 0).decode(errors="replace").strip() if stat.S_ISREG(os.fstat(fd).st_mode) else None
    finally:
        os.close(fd)


def _lock_file(root: Path, key: str, what: str, command: str | None, hint: str) -> int:
    """Open (or create) the lock file ``key`` of a folder this process has just locked, flock it and write its holder's
    line (PID, command line, start time); returns its descriptor."""
    import fcntl

    try:  # a link there made the lock overwrite its target (a user's file outside the run)
        fd = os.open(key, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as e:
        if e.errno == errno.EISDIR:  # "Is a directory", and a hint to run again that failed the same way (probe 21)
            raise ValueError(f"{key!r} is a folder: the {what}'s lock file must be a plain file of its own "
                             "(remove the folder; nothing was written)") from None
        if e.errno != errno.ELOOP:
            raise
        raise ValueError(f"{key!r} is a symbolic link: the {what}'s lock file must be a plain file of "
                         "its own (remove the link; nothing was written through it)") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{key!r} is not a regular file: the {what}'s lock file must be a plain file "
                             "of its own (remove it)")
        if os.fstat(fd).st_nlink > 1:  # a hard link to a user's file: truncated and overwritten
            raise ValueError(f"{key!r} has {os.fstat(fd).st_nlink} hard links: the {what}'s lock file must "
                             "be its own file (remove it; nothing was written)")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # an older robot-wm, which locked the file alone
        holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        os.close(fd)
        raise RunLockedError(_locked_message(root, what, holder, hint)) from None
    except BaseException:
        os.close(fd)
        raise
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    info = {"pid": os.getpid(), "command": command or command_line(), "started": stamp}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    except OSError as e:  # a full disk: "no space left on the device writing a file" (probe 36)
        os.close(fd)
        raise OSError(e.errno, e.strerror, key) from None
    return fd


def _locked_message(root: Path, what: str, holder: str | None, hint: str, this_process: bool = False) -> str:
    try:
        from robot_wm.text import printable

        info = loads_json(holder or "")  # a file's text, shown as escapes: a forged line and a retitled terminal (probe 29)
        who = printable(f"PID {info['pid']} (`{info['command']}`, started {info['started']})")
    except (json.JSONDecodeError, KeyError, TypeError):
        who = ("another process (its .lock file, which names it, was removed)" if holder is None else
               "another process (it has not written its PID yet)")
    if this_process:
        return (f"{what} {str(root)!r} is already being written by this process, {who.removeprefix('another process ')}"
                f": one writer at a time, also within a process; close the other session (Session.close, or leave its "
                f"`with` block) first.{' ' + hint if hint else ''}")
    return (f"{what} {str(root)!r} is being written by {who}; wait for it to finish or stop it (a killed process "
            f"releases the lock by itself).{' ' + hint if hint else ''}")


EPISODE_COLUMNS = ("phase", "index", "policy", "seed", "return", "control_steps", "env_steps",
                   "total_env_steps", "physics_steps", "diverged", "plan_hz", "wall_s")


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_RECORD_FIELDS = {  # the fields robot-wm reads back from metrics.jsonl, and what each must be
    "kind": lambda v: isinstance(v, str), "env_steps": _is_int, "milestone": _is_int, "round": _is_int,
    "epochs": _is_int, "transitions": _is_int, "index": _is_int, "returns": lambda v: isinstance(v, list),
    "val_mse": lambda v: isinstance(v, list), "multistep_mse": lambda v: isinstance(v, dict),
    "train_s": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "value_train_s": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "file": lambda v: isinstance(v, str), "sha256": lambda v: isinstance(v, str),
}


def _well_formed(record) -> bool:
    return isinstance(record, dict) and all(f not in record or ok(record[f]) for f, ok in _RECORD_FIELDS.items())


MAX_MANIFEST_BYTES = 1 << 20
_MANIFEST_STATUS = ("created", "running", "complete", "stopped")
"""stopped: a sweep's early stopping ended the run at ``stopped_at`` environment steps (``--resume`` continues it)."""


def check_manifest(m, path: Path) -> None:
    """Refuse a manifest robot-wm did not write, naming the field: resume, eval and the sweep act on it."""
    def bad(field: str, expected: str) -> ValueError:
        return ValueError(f"{str(path)!r}: {field} = {json.dumps(m.get(field))[:80]} is not {expected}; the file is "
                          "damaged or was edited (robot-wm alone writes a run's manifest)")

    def count(v) -> bool:
        return _is_int(v) and 0 <= v < 2**31

    if not isinstance(m, dict):
        raise ValueError(f"{str(path)!r} holds a JSON {type(m).__name__}, expected an object: the file is damaged "
                         "or was edited")
    if "status" in m and m["status"] not in _MANIFEST_STATUS:
        raise bad("status", " or ".join(_MANIFEST_STATUS))
    for field in ("episodes", "final_eval_from", "final_eval_round", "final_eval_data", "stopped_at"):
        if m.get(field) is not None and not count(m[field]):
            raise bad(field, "a count (0 or more)")
    if m.get("wall_s") is not None and not (_is_number(m["wall_s"]) and 0 <= m["wall_s"] < 1e9):
        raise bad("wall_s", "a number of seconds (0 or more)")
    done = m.get("final_eval_episodes")
    if done is not None and not (isinstance(done, list) and len(done) <= 100_000 and all(map(count, done))):
        raise bad("final_eval_episodes", "a list of episode indices")
    if "task" in m and not isinstance(m["task"], str):
        raise bad("task", "a task name")
    if "run_id" in m and not (isinstance(m["run_id"], str) and re.fullmatch(r"[0-9a-f]{32}", m["run_id"])):
        raise bad("run_id", "32 hex digits")


MAX_ROUND = 10**6
"""The most training rounds a run holds (one per episode: a million episodes)."""


def _settings(cfg: RunConfig) -> dict:
    """The config's fields as robot-wm writes them into config.toml, as JSON values (run_dir and rerun.* left out: a
    moved run names its old place, and network settings are never read from a run)."""
    return json.loads(json.dumps({k: v for k, v in config_mod.flat(cfg).items()
                                  if k != "run_dir" and not k.startswith("rerun.")}))


def enclosing_run(path: str | Path) -> Path | None:
    """The run directory that ``path`` lies inside (after links), None where none does."""
    return next((parent for parent in Path(path).resolve().parents if RunDir(parent).is_run()), None)


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._datasets: dict[str, EpisodeDataset] = {}
        self._verified: set[tuple[str, str]] = set()
        self.overrides = []

    overrides: list[str]
    """Command-line overrides of the command working on this run (one-off: never saved into config.toml);
    every record ``log`` writes names them."""

    config_path = property(lambda self: self.root / "config.toml")
    lock_path = property(lambda self: self.root / LOCK_NAME)
    metrics_path = property(lambda self: self.root / "metrics.jsonl")
    checkpoints = property(lambda self: self.root / "checkpoints")
    summary_path = property(lambda self: self.root / "summary.json")

    # --- what the folder is ------------------------------------------------------------------------
    def is_run(self) -> bool:
        """A robot-wm run directory: a manifest.json of robot-wm's (its ``status``), or any manifest.json beside a
        config.toml (a damaged or edited one is then named by ``manifest``), or (written by robot-wm before the
        manifest came with every run) a config.toml beside an episodes/ folder. A web app's manifest.json made its
        folder a run, which `--resume` then wrote into, merging its fields into the user's file (probe 28)."""
        if self.config_path.is_file():
            return self.manifest_path.is_file() or (self.root / "episodes").is_dir()
        return self.manifest_path.is_file() and self._manifest_says_run()

    def _manifest_says_run(self) -> bool:
        try:
            doc = self._read_manifest()
        except (OSError, ValueError):  # unreadable or not JSON, with no config.toml beside it: not known as a run
            return False
        return isinstance(doc, dict) and doc.get("status") in _MANIFEST_STATUS

    def _read_manifest(self):
        """manifest.json's JSON, unchecked (a small regular file; FileNotFoundError where there is none)."""
        check_regular_file(self.manifest_path, "manifest", MAX_MANIFEST_BYTES)
        return loads_json(self.manifest_path.read_text())

    def has_work(self) -> str:
        """What the run already holds beyond a fresh start ('' for nothing): episodes, checkpoints or records. A
        run killed between its manifest and its config.toml holds none of them and may be created again."""
        for name, pattern in (("episodes", "episodes/episode_*.npz"), ("checkpoints", "checkpoints/model_r*.json"),
                              ("evaluation episodes", "eval/episode_*.npz")):
            if next(self.root.glob(pattern), None) is not None:
                return name
        if self.metrics_path.is_file() and self.metrics_path.stat().st_size > 0:
            return "records (metrics.jsonl)"
        return ""

    def check_usable(self) -> None:
        """Refuse a ``run_dir`` that a run must not be written into: a file, or a folder that holds files
        but is not a robot-wm run (a user's folder is never overwritten). A new or empty folder is fine."""
        if "\x00" in str(self.root):
            raise NotARunError(f"run_dir {str(self.root)!r} holds a NUL byte; expected a folder path")
        if link := dangling_link(self.root):  # makedirs said only "[Errno 17] File exists"
            raise NotARunError(f"run_dir {link}: remove it or create its target")
        if ".." in self.root.parts and (os.path.realpath(self.root) !=
                                        os.path.realpath(os.path.normpath(self.root))):  # 'lnk/../r': two places (36)
            raise NotARunError(f"run_dir {str(self.root)!r} goes back ('..') through a symbolic link: the system takes it "
                               f"to {os.path.realpath(self.root)!r}, a plain reading to "
                               f"{os.path.realpath(os.path.normpath(self.root))!r}; give the folder without '..'")
        for parent in self.root.parents:  # "Not a directory" with a useless --resume hint
            if parent.exists():
                if not parent.is_dir():
                    raise NotARunError(f"run_dir {str(self.root)!r} lies below {str(parent)!r}, which is a file, "
                                       "not a folder; choose another run_dir")
                break
        if (outer := enclosing_run(self.root)) is not None:  # finetune of the outer run then wrote into the inner one
            raise NotARunError(f"run_dir {str(self.root)!r} lies inside the run directory {str(outer)!r}; "  # (17)
                               "choose a folder outside any run")
        if not self.root.exists():
            return
        if not self.root.is_dir():
            raise NotARunError(f"run_dir {str(self.root)!r} is a file, not a folder; choose a new or empty "
                               "folder (or an existing run directory)")
        if self.is_run():
            self.records()  # too big, not text: refused before any work (it failed after an episode was stored)
            return
        held = sorted(p.name for p in self.root.iterdir() if p.name != LOCK_NAME)
        if held:
            raise NotARunError(f"run_dir {str(self.root)!r} already holds files ({first_names(held)}) but is not a robot-wm "
                               "run directory (no manifest.json of robot-wm's); refusing to write into it: choose a new or "
                               "empty folder")

    def check_is_run(self) -> None:
        """Refuse anything but an existing run directory (for commands that work on one)."""
        if self.root.exists() and not self.root.is_dir():  # "no such folder" for an existing file (tenth probe)
            hint = " (a planner file: `robot-wm deploy` runs it)" if self.root.suffix.lower() == ".onnx" else ""
            raise FileNotFoundError(f"{str(self.root)!r} is a file, not a run directory{hint}")
        # a loop was "no such folder" (probe 25), and so was a broken link in a folder above the run (its review)
        link = next((p for p in (self.root, *self.root.parents) if dangling_link(p)), None)
        if link is not None:
            raise FileNotFoundError(f"{dangling_link(link)}, not a run directory" if link == self.root else
                                    f"{str(self.root)!r} is not a run directory: its folder {dangling_link(link)}")
        if not self.root.is_dir():  # a path through a file ('afile/run') was "no such folder" too
            afile = next((p for p in self.root.parents if p.exists() and not p.is_dir()), None)
            raise FileNotFoundError(f"{str(self.root)!r} is not a run directory: " + (
                f"{str(afile)!r} is a file, not a folder" if afile is not None else "no such folder"))
        if not self.config_path.is_file():
            if os.path.lexists(self.config_path):  # a FIFO there was "no config.toml"
                check_regular_file(self.config_path, "run config", 1 << 20)
            raise FileNotFoundError(f"{str(self.root)!r} is not a run directory (no config.toml)")
        if not self.is_run():
            raise NotARunError(f"{str(self.root)!r} is not a run directory: it has a config.toml but no "
                               "manifest.json or episodes/ folder (a launch file's folder?)")

    # --- the writer's lock -------------------------------------------------------------------------
    def lock(self, command: str | None = None) -> RunLock:
        """Take the run's exclusive lock (``fcntl.flock`` on RUN/.lock) or raise ``RunLockedError`` naming
        the holder (its PID, command line and start time are written into the lock file). Every command
        that writes a run holds it; read-only ones (export, whatif, view) do not need it. A killed holder's
        lock is released by the kernel, so it is taken over safely. Within one process too, one writer at a
        time: a second writing session on a run this process already writes is refused."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.check_contained()
        return lock_folder(self.root, "run directory", command,
                           "Read-only commands (export, whatif, view) work meanwhile")

    WRITTEN = ("episodes", "eval", "checkpoints", "rerun", "dreams", "robot", "manifest.json", "config.toml",
               "metrics.jsonl", "summary.json", "episodes.csv")
    """What a writer writes inside the run: its lock covers these only while they are the run's own."""

    def own_folder(self, name: str) -> Path:
        """``RUN/name`` (one of ``WRITTEN``), refused where it is a symbolic link leading out of the run: the run's
        lock does not cover what lies there (``episodes`` linked to another run's: a collect wrote into that run
        without its lock). A link within the run is fine. Used by ``check_contained`` for every writer, and by the
        commands that add new files without the lock (``whatif``'s recording, ``dream``'s video)."""
        p = self.root / name
        if p.is_symlink() and not p.resolve().is_relative_to(self.root.resolve()):
            raise ValueError(f"{str(p)!r} is a symbolic link to {str(p.resolve())!r}, outside the run directory: "
                             "its lock does not cover that; refusing to write through it (remove the link or copy "
                             "it in, or use another run_dir or output path)")
        return p

    def check_contained(self) -> None:
        """Refuse to write through a symbolic link leading out of the run (``own_folder``) or into a file that
        has other hard links, and two of the run's folders that are one (``eval`` a link to ``episodes``: evaluation
        episodes were trained on, probe 17)."""
        seen: dict[Path, str] = {}
        for name in self.WRITTEN:
            p = self.own_folder(name)
            if p.is_dir() and "." in name:  # episodes.csv a folder: eval and collect stored and logged their episode,
                # then failed on it, the episode unmentioned (probe 35)
                raise ValueError(f"{str(p)!r} is a directory, where the run writes its file {name}: remove it (nothing "
                                 "was written)")
            if p.is_dir():
                if (other := seen.setdefault(p.resolve(), name)) != name:
                    raise ValueError(f"{str(p)!r} is the run's {other!r} folder under another name (a link): each holds "
                                     "its own files; remove the link")
            elif os.path.lexists(p) and not p.is_file():  # episodes.csv a FIFO: eval stored its episode, then failed
                raise ValueError(f"{str(p)!r} is not a regular file (a FIFO, a device or a broken link?): the run "
                                 "writes it; remove it")  # (probe 17)
            if p.is_file() and not p.is_symlink() and p.stat().st_nlink > 1:  # `cp -al`: appends reach the other copy
                raise ValueError(f"{str(p)!r} has {p.stat().st_nlink} hard links (a `cp -al` copy of a run?): writing "
                                 "it would change the other copies too; copy the run with `cp -r` instead")

    WRITES: ClassVar[dict[str, tuple[str, ...]]] = {
        "run": ("episodes", "eval", "checkpoints", "checkpoints/latest.json", "config.toml", "manifest.json",
                "summary.json", "episodes.csv"),
        "collect": ("episodes", "manifest.json", "summary.json", "episodes.csv"),
        "train": ("checkpoints", "checkpoints/latest.json"),
        "eval": ("eval",),
        "finetune": ("robot", "checkpoints", "checkpoints/latest.json", "manifest.json", "summary.json",
                     "episodes.csv")}
    """The folders and files each writing command stores into, besides the records (metrics.jsonl) every one appends
    to: a read-only config.toml refused `eval`, which never writes it, and an append-only latest.json was found after
    `train` had trained (probe 39)."""

    def check_writable(self, command: str) -> None:
        """Refuse, before any work, a run whose folder, records or what ``command`` writes (``WRITES``) cannot be
        written: a read-only ``checkpoints/`` was found when the first checkpoint was written, after training, and a
        read-only ``episodes/`` after collecting (probe 36); a chmod 444 ``metrics.jsonl`` after the episode it was to
        record (probe 37). ``os.access`` also says so for a read-only file system, even to root. A folder the command
        does not write may be read-only (a user's protected ``dreams/``: probe 37)."""
        for p in (self.root, self.metrics_path, *(self.root / n for n in self.WRITES.get(command, self.WRITTEN))):
            if not p.exists():
                continue
            if not os.access(p, os.W_OK | (os.X_OK if p.is_dir() else 0)):
                code = errno.EROFS if os.statvfs(p).f_flag & os.ST_RDONLY else errno.EACCES
                raise OSError(code, os.strerror(code), str(p))
            # replaced or holding temp files (metrics.jsonl is appended to): `chattr +a` was found after the work
            if p.name != "metrics.jsonl" and append_only(p):  # (probe 38)
                raise OSError(errno.EPERM, "Operation not permitted: it is append-only (chattr +a)", str(p))

    UNLOCKED = ("rerun", "dreams")
    """The run's folders that commands without its lock add files to (``whatif``'s recordings, ``dream``'s videos)."""

    def remove_temp_files(self) -> list[Path]:
        """Delete the temp files of writes that never finished (a killed writer leaves one behind), and a
        checkpoint's weights whose JSON was never written (killed between the two: nothing refers to them, and
        they stayed for good, probe 15). Only under the run's lock: every writer that takes it does so as it opens
        the run (a killed `train`'s stayed until `run --resume`, probe 39). Those in ``UNLOCKED`` folders are kept:
        a command without the lock may be writing them."""
        # only the names robot-wm writes: a "model_r0003 copy.safetensors" is the user's; and only a round the run's
        # records never finished: a round whose JSON a user deleted lost its trained weights to `eval` (probe 42)
        trained = {r.get("round") for r in self.records("train")}
        orphans = [] if self.checkpoints.is_symlink() else [
            p for r, p in self._round_files("safetensors")
            if p.is_file() and not p.is_symlink() and not p.with_suffix(".json").exists() and r not in trained]
        unlocked = [self.root / n for n in self.UNLOCKED]
        stale = [p for p in leftover_temp_files(self.root) if not any(p.is_relative_to(u) for u in unlocked)] + orphans
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def check_step_unit(self) -> None:
        """Refuse a run directory whose episodes count steps in another unit than ``STEP_UNIT``: robot-wm
        before 0.2 counted physics steps, so its budgets, milestones and learning curves would mix units."""
        for data in (self.dataset(), self.eval_dataset()):
            old = [p.name for p, ep in zip(data.paths(), data) if ep.meta.get("step_unit") != STEP_UNIT]
            if old:
                raise ValueError(
                    f"run directory {str(self.root)!r} was written by an older robot-wm that counted physics "
                    f"steps, not environment steps ({len(old)} episode(s) in {data.root.name}/ without "
                    f"step_unit={STEP_UNIT!r}, first {old[0]}); continuing it would mix the two units. Start a "
                    "new run; its checkpoints can still be exported and its episodes read with numpy")

    def dataset(self) -> EpisodeDataset:
        return self._dataset("episodes")

    def check_recorded_episodes(self, data: EpisodeDataset, phase: str = "train") -> None:
        """Each episode file of ``phase`` whose record (metrics.jsonl) holds its sha256 must still be that file: an
        episode edited after it was stored (probe 12: observations x1000) trained the model on it, silently, and an
        edited final-evaluation episode made a rebuilt summary's headline (probe 29). A training episode without a
        record must be the last (a kill between storing and logging it): with metrics.jsonl removed, or an episode's
        line damaged, every check was off (probe 29). Checked once per file and process; episodes stored before
        records held a digest are not checked."""
        of_phase = [r for r in self.records("episode") if r.get("phase") == phase]
        logged = [r for r in of_phase if isinstance(r.get("file"), str)]
        recorded = {r["file"]: r["sha256"] for r in logged if "sha256" in r}
        returns = {r["file"]: r.get("return") for r in logged if "sha256" in r}
        names = {sha: name for name, sha in recorded.items()}
        self.check_none_removed(data, phase)
        paths = data.paths()
        named = {r["file"] for r in logged}  # records named their file from 2026-11-27: older runs' are not checked
        if phase == "train" and not of_phase and len(paths) > 1:  # "1 file(s) ... though episodes after them have",
            # of an emptied log (probe 40)
            raise ValueError(f"{str(self.metrics_path)!r} holds no record of the {len(paths)} training episodes of "
                             f"{str(data.root)!r}: it was emptied, removed or replaced, and the episodes cannot be "
                             "checked; restore metrics.jsonl from a copy of the run")
        if phase == "train" and (logged or not of_phase) and \
                (unlogged := [p.name for p in paths[:-1] if p.name not in named]):
            raise ValueError(f"{len(unlogged)} training episode file(s) of {str(data.root)!r} have no record in "
                             f"{str(self.metrics_path)!r} ({', '.join(unlogged[:3])}{' ...' if len(unlogged) > 3 else ''}) "
                             "though episodes after them have: the run's records were removed or damaged, and its "
                             "episodes cannot be checked; restore metrics.jsonl from a copy of the run")
        ours = self.manifest().get("run_id")  # runs created before 2026-11-28 have none, nor do their episodes
        for i, path in enumerate(paths):
            key = (str(path.resolve()), recorded.get(path.name))
            if key in self._verified:
                continue
            if ours is not None and (by := data[i].meta.get("run")) is not None and by != ours:
                if self._checkpoints_run_id() == by:  # the run's own episodes and checkpoints agree: the manifest's id
                    # was edited, and the episodes were called "copied in; move it out" (probe 36)
                    raise ValueError(f"{str(self.manifest_path)!r} names run id {str(ours)[:12]}..., but the run's "
                                     f"episodes and checkpoints were made by run {str(by)[:12]}...: manifest.json was "
                                     "edited or replaced; put back the run's own (from a copy of the run)")
                # another run's episode copied in with its record (sha256 and all) was trained on, or made a rebuilt
                # headline (probe 32): only unrecorded episodes were checked
                raise ValueError(f"episode file {str(path)!r} was collected by another run (run id {str(by)[:12]}..., "
                                 f"this run's {ours[:12]}...): it was copied in; move it out (a robot's recording "
                                 "joins a run with `robot-wm finetune RUN --data DIR`)")
            if key[1] is None:  # stored but never logged (a kill between the two): not a copy of a logged one
                if phase == "train" and (other := names.get(file_sha256(path))) not in (None, path.name):
                    raise ValueError(f"episode file {str(path)!r} is a copy of {other} (the same bytes): each episode "
                                     "is stored once; remove the copy")  # trained twice
                if phase == "train" and recorded:  # nor a file put there: the run's own final evaluation, another
                    self._check_own_episode(path, data[i])  # run's, a robot's (probe 22)
                self._verified.add(key)
                continue
            if (now := file_sha256(path)) != key[1]:
                raise ValueError(f"episode file {str(path)!r} changed after it was stored (sha256 {now[:12]}..., its "
                                 f"record says {key[1][:12]}...): the file was edited or damaged; restore it, or "
                                 "start a new run from the episodes you trust")
            # its rewards add up to the return its record gives: halved, the record's sha256 recomputed, it was trained
            # on without a word (probe 41)
            said = returns.get(path.name)
            got = math.fsum(float(x) for x in data[i].reward)
            if isinstance(said, int | float) and math.isfinite(said) and \
                    not math.isclose(got, said, rel_tol=1e-4, abs_tol=1e-3):
                raise ValueError(f"episode file {str(path)!r}: its rewards add up to {got:.6g}, its record in "
                                 f"{str(self.metrics_path)!r} gives the return {said:.6g}: the file was edited (its "
                                 "sha256 in the record too); restore it, or start a new run from the episodes you trust")
            self._verified.add(key)

    def log_unlogged_last(self, data: EpisodeDataset) -> None:
        """Log the last training episode where it was stored but never logged (a kill between the two), before another
        is stored after it: only the last may lack a record (``check_recorded_episodes``), so a resumed run would
        otherwise be refused for good. Called by writers, after ``check_recorded_episodes`` took the file."""
        paths = data.paths()
        named = {r.get("file") for r in self.records("episode") if r.get("phase") == "train"}
        if not paths or paths[-1].name in named:
            return
        ep = data[len(paths) - 1]
        self.log({"kind": "episode", "phase": "train", "index": len(paths) - 1, "file": paths[-1].name,
                  "sha256": file_sha256(paths[-1]), "adopted": True,
                  **{k: ep.meta[k] for k in ("policy", "seed", "return", "control_steps", "env_steps", "physics_steps",
                                             "diverged", "plan_hz") if k in ep.meta}})

    def id_field(self) -> dict:
        """``{"run_id": ...}`` for a checkpoint this run writes ({} for a run made before runs had an id)."""
        return {"run_id": rid} if isinstance(rid := self.manifest().get("run_id"), str) else {}

    def check_own_checkpoint(self, meta: dict, path: Path) -> None:
        """A checkpoint that names another run's id was copied in: another run's round 30 put into a 600-step run (and
        latest.json pointed at it) was evaluated, and its return reported, as this run's own (probe 28). Checkpoints
        written before they carried the id are not checked."""
        mine, theirs = self.manifest().get("run_id"), meta.get("run_id")
        if isinstance(mine, str) and theirs is not None and theirs != mine:
            raise ValueError(f"checkpoint {str(path)!r} was trained by another run (run id {str(theirs)[:12]}..., this "
                             f"run's {mine[:12]}...): it was copied in. Use it from its own run directory, or put "
                             "back this run's own checkpoints")
        # Its round must be one the run's records name, or the one after the last (a kill between the checkpoint and
        # its record), trained on no fewer transitions than that last: another run's round 1, relabelled round 200 with
        # this run's id and resealed, was evaluated as this run's model (probe 40; the run's records end at round 99)
        rounds = {r["round"]: r for r in self.records("train") if type(r.get("round")) is int}
        rnd, last = meta.get("round"), rounds.get(max(rounds, default=-1), {})
        if rounds and type(rnd) is int and rnd not in rounds and (
                rnd != max(rounds) + 1 or not isinstance(meta.get("transitions"), int)
                or meta["transitions"] < last.get("transitions", 0)):
            raise ValueError(f"checkpoint {str(path)!r} is round {rnd} ({meta.get('transitions')!r} transitions), which "
                             f"metrics.jsonl has no training record of (the run's records name rounds {min(rounds)} to "
                             f"{max(rounds)}, the last on {last.get('transitions')!r} transitions): it was copied in or "
                             "relabelled; point checkpoints/latest.json at one of the run's own rounds, or retrain")

    def check_none_removed(self, data: EpisodeDataset, phase: str) -> None:
        """Every episode file of ``phase`` that metrics.jsonl records as stored is still in ``data``: the last ones
        removed leave no gap, so a round trained without them and said nothing (probe 21), and an evaluation took the
        number of the removed final evaluation, which the manifest names (probe 28)."""
        recorded = {r["file"] for r in self.records("episode") if r.get("phase") == phase and isinstance(r.get("file"), str)}
        if gone := sorted(recorded - {p.name for p in data.paths()}):
            what = "training" if phase == "train" else "evaluation"
            raise ValueError(f"{len(gone)} {what} episode file(s) of {str(data.root)!r} are missing ({', '.join(gone[:3])}"
                             f"{' ...' if len(gone) > 3 else ''}): metrics.jsonl records them as stored, so they were "
                             "removed since; put them back, or start a new run from the episodes you trust")

    def _check_own_episode(self, path: Path, ep) -> None:
        """An unlogged training episode file must be one this run could have collected (a kill between storing and
        logging it): its meta says phase 'train', no recording source and this run's id (its task is checked with every episode's
        when a session opens). Not its seed: a one-off `collect RUN seed=7`, or an episode that diverged at its first
        step, stores no seed of its index (review)."""
        from robot_wm.config import MAX_EPISODE_ENV_STEPS

        if len(ep) > MAX_EPISODE_ENV_STEPS:  # 13,000,000 zero steps in an 860 KB file took 2.9 GB and hung train
            raise ValueError(f"episode file {str(path)!r} has no record in metrics.jsonl and holds {len(ep):,} steps, "
                             f"more than robot-wm collects in an episode ({MAX_EPISODE_ENV_STEPS:,} environment steps):"
                             " it was put there by hand; move it out")  # (probe 31)
        phase, source, by = ep.meta.get("phase"), ep.meta.get("source"), ep.meta.get("run")
        ours = self.manifest().get("run_id")  # runs created before 2026-11-28 have none, nor do their episodes
        foreign = ours is not None and by != ours
        if phase != "train" or source is not None or foreign:
            said = f"phase {phase!r}" + (f", source {source!r}" if source is not None else "")
            said += f", collected by run {by!r}" if foreign else ""
            theirs = "phase 'train', no source" + (f" and run {ours!r}" if ours is not None else "")
            raise ValueError(f"episode file {str(path)!r} has no record in metrics.jsonl and is not a training episode "
                             f"of this run (its meta says {said}; the run's say {theirs}): it was put there by hand "
                             "(another run's episode?); move it out (a robot's recording joins a run with `robot-wm "
                             "finetune RUN --data DIR`)")

    def eval_dataset(self) -> EpisodeDataset:
        return self._dataset("eval")

    def _dataset(self, name: str) -> EpisodeDataset:
        """One dataset object per folder, refreshed on each call: only new episode files are read."""
        if name not in self._datasets:
            self._datasets[name] = EpisodeDataset(self.root / name, create=True)
        else:
            self._datasets[name].refresh()
        return self._datasets[name]

    def load_config(self) -> RunConfig:
        """The run's own config. Network settings are never read from a run's files: a serve/spawn mode
        or an address found in config.toml (written by hand, or by an older robot-wm) is dropped, and so is a
        recording mode (``--rerun`` is one command's)."""
        if not self.config_path.exists():
            raise FileNotFoundError(f"{str(self.root)!r} is not a run directory (no config.toml)")
        raw = config_mod.read_toml(self.config_path, what="the run's config")  # not "launch file" (probe 31)
        if not isinstance(raw.get("env"), dict) or "task" not in raw["env"] or "seed" not in raw:
            # robot-wm writes the whole config; one without them (an empty file) ran on the defaults unnoticed
            raise ValueError(f"{str(self.config_path)!r} names no env.task or seed: a run's config.toml is written "
                             "whole by robot-wm, so this one is damaged or was edited (empty?)")
        try:
            cfg = config_mod.saved_form(config_mod.from_dict(raw, str(self.config_path)))
        except config_mod.ConfigError as e:
            if tightened := [f for f in TIGHTENED if f in str(e)]:  # an older robot-wm accepted these values
                raise config_mod.ConfigError(
                    f"{e}\n  (robot-wm accepted other values of {', '.join(tightened)} before 2026-11-27; to go on with "
                    f"this run, set {'them' if len(tightened) > 1 else 'it'} within the limits in "
                    f"{str(self.config_path)!r})") from None
            raise
        self._check_not_edited(cfg)
        # The run is where it is: a copied or moved run names its old place in config.toml, and a resume of the
        # copy continued the original (braces escaped: run_dir is a template).
        here = str(self.root).replace("{", "{{").replace("}", "}}")
        return cfg if cfg.run_dir == here else cfg.model_copy(update={"run_dir": here})

    def save_config(self, cfg: RunConfig) -> None:
        """Written when the run is created (and by ``--resume`` for the fields a resume may change);
        Rerun's mode, address and path are never saved. The manifest keeps what was written (``settings``)."""
        cfg = config_mod.saved_form(cfg)
        config_mod.save(cfg, self.config_path)
        self.update_manifest(settings=_settings(cfg))

    def _check_not_edited(self, cfg: RunConfig) -> None:
        """Refuse a config.toml whose settings differ from what robot-wm wrote (the manifest's ``settings``): a mass
        range and planner.samples edited into an interrupted run were trained and evaluated on by `--resume`, exit 0,
        where the same change as an override is refused (probe 29). Network settings are dropped, not refused; the
        limits tightened since (``TIGHTENED``) may be set by hand, as their message says. Runs made before
        2026-11-29 hold no ``settings``."""
        wrote = self.manifest().get("settings")
        if not isinstance(wrote, dict):
            return
        now = _settings(cfg)
        edited = [k for k in sorted(set(wrote) & set(now)) if wrote[k] != now[k] and not k.startswith(TIGHTENED)]
        if edited:
            if (theirs := self._checkpoints_run_id()) not in (None, self.manifest().get("run_id")):
                # another run's manifest copied over this one's: config.toml was blamed, and "putting the values
                # back" made it the other run's (probe 34)
                raise ValueError(f"{str(self.manifest_path)!r} is another run's: it names run id "
                                 f"{str(self.manifest().get('run_id'))[:12]}..., the run's checkpoints were trained by "
                                 f"{theirs[:12]}... (and config.toml differs from its settings: "
                                 f"{', '.join(edited[:5])}); put back this run's own manifest.json (from a copy of the "
                                 "run)")
            said = ", ".join(f"{k}={json.dumps(now[k])} (robot-wm wrote {json.dumps(wrote[k])})" for k in edited[:5])
            raise ValueError(f"{str(self.config_path)!r} was edited by hand: {said}{' ...' if len(edited) > 5 else ''}. "
                             "A run's settings are written once (`--resume KEY=VALUE` changes the few a resume may, a "
                             "one-off override applies to one command): put the values back, or start a new run_dir")

    def _checkpoints_run_id(self) -> str | None:
        """The run id the latest checkpoint names (None: none, or unreadable: the checks that load it say why)."""
        try:
            path = self.latest_checkpoint()
            if path is None:
                return None
            check_regular_file(path, "checkpoint config", 1 << 24)
            rid = loads_json(path.read_text()).get("run_id")
        except (OSError, ValueError, AttributeError):
            return None
        return rid if isinstance(rid, str) else None

    def log(self, record: dict) -> None:
        if self.overrides and "overrides" not in record:
            record = {**record, "overrides": list(self.overrides)}
        append_jsonl(self.metrics_path, record)
        if record.get("kind") == "episode":
            self._write_episodes_csv()

    def records(self, kind: str | None = None) -> list[dict]:
        """The records of metrics.jsonl (of one ``kind``). Lines that are not robot-wm's records (edited
        or damaged: not a JSON object, or a field of the wrong type) are skipped with a warning."""
        records, skipped, damaged = [], [], []
        for i, r in enumerate(read_jsonl(self.metrics_path, damaged), 1):
            if not _well_formed(r):
                skipped.append(i)
            elif kind is None or r.get("kind") == kind:
                records.append(r)
        if (skipped or damaged) and (key := (str(self.metrics_path), tuple(skipped), tuple(damaged))) not in _SKIPS_WARNED:
            _SKIPS_WARNED.add(key)  # records() runs several times a command: the same lines were named 2-3 times
            where = [f"record(s) {', '.join(map(str, skipped[:10]))}"] if skipped else []
            where += [f"line(s) {', '.join(map(str, damaged[:10]))} (not JSON: dropped without a word before, probe 29)"
                      ] if damaged else []
            log.warning("%s: skipped %d record(s) that robot-wm did not write (edited or damaged): %s",
                        self.metrics_path, len(skipped) + len(damaged), "; ".join(where))
        return records

    def _write_episodes_csv(self) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=EPISODE_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in self.records("episode"):
            w.writerow(r)
        atomic_write_text(self.root / "episodes.csv", buf.getvalue())

    def checkpoint_stem(self, round_: int) -> Path:
        return self.checkpoints / f"model_r{round_:04d}"

    def _round_files(self, suffixes: str) -> list[tuple[int, Path]]:
        """(round, path) of every ``checkpoints/model_rNNNN.SUFFIX``, ``suffixes`` a regex alternation."""
        return [(int(m.group(1)), p) for p in (self.checkpoints.iterdir() if self.checkpoints.is_dir() else ())
                if (m := re.fullmatch(rf"model_r(\d+)\.(?:{suffixes})", p.name))]

    def next_round(self) -> int:
        """The next training round: past every checkpoint on disk and every train record. From the records
        alone, a deleted metrics.jsonl made train write round 0 over model_r0000 (eighth probe)."""
        on_disk = [r for r, _ in self._round_files("json|safetensors")]
        logged = [r["round"] for r in self.records("train") if isinstance(r.get("round"), int)]
        nxt = max([-1, *on_disk, *logged]) + 1
        if not 0 <= nxt <= MAX_ROUND:  # 10**20 from an edited record was "Overflow when unpacking long long" (probe 12)
            raise ValueError(f"{str(self.root)!r}: its train records or checkpoint names put the next training round "
                             f"at {nxt}, past the {MAX_ROUND} a run can hold: an edited metrics.jsonl or a file put in "
                             "checkpoints/; restore them from a copy of the run")
        return nxt

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint ``checkpoints/latest.json`` names; where that pointer is gone but checkpoints are not, the
        highest round, with a warning (every command said "no trained model: run train first": tenth probe)."""
        pointer = self.checkpoints / "latest.json"
        if not pointer.exists() and not pointer.is_symlink():
            rounds = sorted(self._round_files("json"))
            if rounds:
                log.warning("%s is missing: using %s, the highest round on disk", pointer, rounds[-1][1].name)
                return rounds[-1][1]
            return None
        try:
            check_regular_file(pointer, "checkpoint pointer", 4096)  # a FIFO there hung eval
            name = loads_json(pointer.read_text()).get("checkpoint")
        except (ValueError, AttributeError):  # not JSON, not UTF-8, not an object, not a small regular file
            name = None
        if not isinstance(name, str) or Path(name).name != name or not name.endswith(".json"):
            raise ValueError(f"{str(pointer)!r} does not name a checkpoint file of this run (expected "
                             '{"checkpoint": "model_rNNNN.json"}); it is damaged or was edited')
        return self.checkpoints / name

    def set_latest(self, cfg_json: Path) -> None:
        atomic_write_json(self.checkpoints / "latest.json", {"checkpoint": cfg_json.name})

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def manifest(self) -> dict:
        """What is complete: ``status`` (created/running/complete), ``episodes``, ``final_eval_from``,
        ``final_eval_episodes``, ``task``; checked field by field (``check_manifest``)."""
        path = self.manifest_path
        try:
            manifest = self._read_manifest()
        except FileNotFoundError:
            return {}
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{str(path)!r} is not valid JSON ({e}): the file is damaged or was edited") from None
        check_manifest(manifest, path)
        return manifest

    def update_manifest(self, **fields) -> None:
        atomic_write_json(self.manifest_path, {**self.manifest(), **fields})

    def summary(self) -> dict:
        """``summary.json``, checked: a hand-edited or damaged one was a KeyError traceback in a sweep started
        again, or JSON's "Expecting value" naming no file (eighth probe)."""
        path = self.summary_path
        try:
            check_regular_file(path, "run summary", MAX_MANIFEST_BYTES)
            doc = loads_json(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"{str(path)!r} does not exist: the run is not complete") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{str(path)!r} is not valid JSON ({e}): the file is damaged or was edited") from None
        if not isinstance(doc, dict):
            raise ValueError(f"{str(path)!r} holds a JSON {type(doc).__name__}, expected an object")
        number = lambda v: v is None or (isinstance(v, int | float) and not isinstance(v, bool))  # noqa: E731
        curve = doc.get("learning_curve", {})
        curve_ok = isinstance(curve, dict) and all(k.isascii() and k.isdigit() and isinstance(v, list)
                                                   for k, v in curve.items())
        bad = [k for k, ok in (("env_steps", type(doc.get("env_steps")) is int and doc["env_steps"] >= 0),
                               *((k, number(doc.get(k))) for k in ("eval_return_mean", "eval_return_std", "wall_s",
                                                                   "plan_hz")),
                               ("learning_curve", curve_ok)) if not ok]
        if bad:
            raise ValueError(f"{str(path)!r}: {', '.join(f'{k} = {json.dumps(doc.get(k))[:40]}' for k in bad)} is not "
                             "what robot-wm writes (env_steps a count, returns numbers): the file is damaged or was "
                             "edited")
        self._check_summary_headline(doc, path)
        return doc

    def _check_summary_headline(self, doc: dict, path: Path) -> None:
        """The headline is the run's last final evaluation's, as its record in metrics.jsonl holds it: a hand-edited
        ``eval_return_mean`` of 999 was a sweep's best trial in results.csv and its report (probe 33)."""
        finals = [r for r in self.records("eval") if r.get("final") is True and isinstance(r.get("returns"), list)]
        if not finals:  # a run made before final records were marked: nothing to check against
            return
        rec, returns = finals[-1], doc.get("eval_returns")
        said = [x for x in rec["returns"] if isinstance(x, int | float) and not isinstance(x, bool)]
        mean, std = (statistics.fmean(said), statistics.pstdev(said)) if said else (math.nan, math.nan)
        close = lambda a, b: a is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6) or (
            a is None and math.isnan(b))
        bad = [k for k, ok in (
            ("eval_returns", isinstance(returns, list) and len(returns) == len(said) and all(
                isinstance(x, int | float) and not isinstance(x, bool) and close(x, y) for x, y in zip(returns, said))),
            ("eval_return_mean", close(doc.get("eval_return_mean"), mean)),
            ("eval_return_std", close(doc.get("eval_return_std"), std)),
            ("env_steps", rec.get("env_steps") is None or doc.get("env_steps") == rec.get("env_steps")))
            if not ok]
        if bad:
            raise ValueError(f"{str(path)!r}: {', '.join(f'{k} = {reprlib.repr(doc.get(k))}' for k in bad)}, but the "
                             f"run's final evaluation in metrics.jsonl gives returns {reprlib.repr(said)} (mean "
                             f"{mean:.6g}) at {rec.get('env_steps')} environment steps: the file is damaged or was "
                             "edited (remove it, and `robot-wm run RUN --resume` rebuilds it from that evaluation)")

    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.summary_path, summary)
