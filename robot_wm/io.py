"""Atomic file writes: a reader sees the old file or the complete new one, never a partial write."""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import signal
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class RunLockedError(RuntimeError):
    """Another process is writing this run directory (see ``robot_wm.run_dir.RunDir.lock``)."""


TEMP_SUFFIX = ".tmp"
"""``atomic_write`` writes into ``.NAME.XXXX.tmp`` beside the target until the rename."""


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``/proc/self/status``); else
    by setting and restoring it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb", *, exclusive: bool = False) -> None:
    """Write through ``write(fileobj)`` into a temp file beside ``path``, fsync, os.replace, fsync the folder.
    A new file gets the permissions any new file of the user gets (0666 less the umask), not mkstemp's 0600; a file
    replaced keeps its permission bits (a run's episodes.csv shared with the group became 0600 when a teammate with
    umask 077 rewrote it: probe 28).
    ``exclusive``: never replace an existing ``path`` (FileExistsError; published with a hard link, atomically)."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):  # a link is replaced, not followed
        # `export --out` onto a device node named x.onnx replaced the node with a file (ninth probe)
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a device, a FIFO or a socket"
        raise ValueError(f"{str(path)!r} is {kind}, not a file: refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # The name is cut to 200 bytes: a legal 250-byte name was refused as too long, its temp name being it + 14
        short = os.fsdecode(os.fsencode(path.name)[:200])  # (probe 15)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{short}.", suffix=TEMP_SUFFIX)
    except OSError as e:  # it named the hidden temp file: '/proc/self/.x.mp4.yxfclddp.tmp' (probe 12)
        raise OSError(e.errno, e.strerror, str(path)) from e
    try:
        os.fchmod(fd, stat.S_IMODE(st.st_mode) & 0o777 if st is not None and stat.S_ISREG(st.st_mode)
                  else 0o666 & ~current_umask())
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if exclusive:  # two writers picking one name: the second gets FileExistsError, not the first's file replaced
            try:
                os.link(tmp, path)
            except OSError as e:  # EPERM from a file system without hard links was "make it writable" (probe 35)
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS):
                    raise
                raise OSError(e.errno, f"{e.strerror}: this file system does not take hard links, with which robot-wm "
                              "stores each new file without replacing another's (use a local file system such as ext4 "
                              "or xfs)", str(path)) from None
            _drop_temp(tmp, stored=path)
        else:
            os.replace(tmp, path)
    except BaseException as e:
        _drop_temp(tmp)
        if isinstance(e, OSError) and e.filename is None:  # a failed write names no file: name the target
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    fsync_dir(path.parent)


def _drop_temp(tmp: str, stored: Path | None = None) -> None:
    """Delete ``atomic_write``'s temp file. One that cannot be deleted (its folder made append-only meanwhile) is
    said, naming it, and is no error: a file already ``stored`` was reported lost, and the write's own error was
    replaced by this one, naming the file it was for (probe 39)."""
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("could not delete the temp file %r (%s)%s; delete it by hand", tmp, e.strerror,
                    f"; {str(stored)!r} was stored whole" if stored is not None else "")


def fsync_dir(directory: Path) -> None:
    """fsync a directory so that a rename into it survives a power cut (POSIX; where a directory
    cannot be opened, e.g. on Windows, this is skipped)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:  # some file systems refuse fsync on directories (EINVAL, ENOTSUP): the data was synced.
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EROFS):  # an I/O error is no such refusal:
            raise OSError(e.errno, e.strerror, str(directory)) from None  # it passed, exit 0 (probe 35)
    finally:
        os.close(fd)


def leftover_temp_files(root: Path) -> list[Path]:
    """Temp files under ``root`` of ``atomic_write`` calls that never reached the rename (killed writers): named as
    ``mkstemp`` names them, ``.NAME.XXXXXXXX.tmp`` (a user's own ``.notes.tmp`` was deleted too: probe 29)."""
    made = re.compile(rf"\..+\.[a-z0-9_]{{8}}{re.escape(TEMP_SUFFIX)}")
    return [p for p in Path(root).rglob(f".*{TEMP_SUFFIX}") if made.fullmatch(p.name) and p.is_file()]


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def dangling_link(path: str | Path) -> str | None:
    """Where ``path`` is a symbolic link that leads nowhere, the words that say so ("'P' is a symbolic link to 'T'
    that leads nowhere ..."); None otherwise. One wording for every place that meets one (there were four)."""
    p = os.fspath(path)
    if not os.path.islink(p) or os.path.exists(p):
        return None
    try:
        target = os.readlink(p)
    except OSError:
        target = "?"
    return f"{p!r} is a symbolic link to {target!r} that leads nowhere (broken, or a loop of links)"


def check_parent_folder(path: str | Path, what: str) -> None:
    """Refuse a file path whose folder cannot be made: a file (or a link that leads nowhere) where a folder of it
    belongs (``--out x.onnx/a.mp4`` was a raw "[Errno 17] File exists", after the work it was to save: probe 17)."""
    for parent in Path(path).absolute().parents:
        if link := dangling_link(parent):  # was a raw "[Errno 17] File exists" too (session 27)
            raise ValueError(f"{what} {str(path)!r}: {link}, not a folder")
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{what} {str(path)!r}: {str(parent)!r} is a file, not a folder")
            return


def check_replaceable(path: str | Path, flag: str, what: str, looks_like) -> None:
    """Refuse to replace an existing file that is not ``what`` the flag writes (``looks_like(first 16 bytes)``): a
    user's file given a planner's or a video's name was overwritten (probe 19). An empty file may be replaced."""
    if str(path).endswith(("/", os.sep)):  # a folder meant: pathlib drops the slash, and the file was replaced (probe 21)
        raise ValueError(f"{flag} {str(path)!r} ends in a slash (a folder): give a file path")
    p = Path(path)
    if p.is_file():
        with open(p, "rb") as f:
            head = f.read(16)
        if head and not looks_like(head):
            raise ValueError(f"{flag} {str(path)!r} exists and is not {what}: remove it, or choose another {flag}")
        if not os.access(p, os.W_OK):  # the rename replaced a chmod 444 file without a word, as cp would not (probe 29)
            raise ValueError(f"{flag} {str(path)!r} is write-protected: make it writable to replace it, or choose "
                             f"another {flag}")


def check_regular_file(path: Path, what: str, max_bytes: int) -> None:
    """Refuse, naming ``what`` and the path, anything but a regular file of at most ``max_bytes`` (after
    symlinks): a FIFO would block the reader forever, ``/dev/zero`` would never end."""
    st = os.stat(path)  # FileNotFoundError passes through: callers word it themselves
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, a device or a socket)"
        raise ValueError(f"{what} {str(path)!r} is {kind}")
    if st.st_size > max_bytes:
        raise ValueError(f"{what} {str(path)!r} is {_size(st.st_size)}; at most {_size(max_bytes, True)} is read")


def _size(n: int, limit: bool = False) -> str:
    """Bytes as a person reads them (a limit of 4096 was "at most 0 MiB": probe 29); a ``limit`` without ".0"."""
    v, unit = (n / 2**20, "MiB") if n >= 2**20 else (n / 2**10, "KiB") if n >= 2**10 else (n, "bytes")
    text = f"{v:.1f}" if unit != "bytes" else str(n)
    return f"{text.removesuffix('.0') if limit else text} {unit}"


def load_npy(path: Path, what: str, max_bytes: int) -> Any:
    """A numeric ``.npy`` array, read only after its header checks out: a regular file of at most
    ``max_bytes`` whose declared shape and dtype fit the bytes that follow (a 30-byte file may declare
    745 GiB, which ``np.load`` would try to allocate), no pickled objects. Errors name ``what`` and the path."""
    import numpy as np

    path = Path(path)
    check_regular_file(path, what, max_bytes)
    try:
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = header(f)
            left = os.fstat(f.fileno()).st_size - f.tell()
            if dtype.kind not in "iuf":  # bools were taken as actions 1.0 and 0.0 (eighth probe)
                raise ValueError(f"it holds {dtype} values, expected numbers")
            declared = math.prod(shape) * dtype.itemsize
            if declared != left:
                raise ValueError(f"its header declares shape {shape} of {dtype} ({declared:,} bytes) but {left:,} "
                                 "bytes follow")
            f.seek(0)  # read what was checked, from the same open file (not a second open of the path)
            return np.lib.format.read_array(f, allow_pickle=False)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise ValueError(f"{what} {str(path)!r} is not a readable .npy array: {e}") from None


def atomic_write_bytes(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    atomic_write(path, lambda f: f.write(data), exclusive=exclusive)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def finite_json(obj: Any) -> Any:
    """Replace NaN/Inf floats by None so every file we write is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    return obj


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(finite_json(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


MAX_JSONL_BYTES = 256 << 20
"""A run's metrics.jsonl holds 5-50 kB per episode and training round (a 10k-step run: 200 kB; 1M steps of 500-step
episodes: up to ~100 MB).
Records parse to ~10x their bytes in Python objects: a 480 MB file of small records (under the old 1 GiB bound)
took 4.8 GB and a MemoryError (probe 14)."""


def append_jsonl(path: Path, record: dict) -> None:
    """Append one JSON line and fsync (a torn last line is skipped by ``read_jsonl``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if Path(path).is_symlink() or (Path(path).exists() and Path(path).stat().st_nlink > 1):
        # metrics.jsonl linked to the run's manifest.json: the records were appended to the manifest (probe 11)
        what = f"to {os.readlink(path)!r}" if Path(path).is_symlink() else "a second name of another file"
        raise ValueError(f"records file {str(path)!r} is a link ({what}); robot-wm appends only to a file of its "
                         "own: replace the link with a copy of the file")
    if Path(path).exists():  # opening a FIFO for appending blocked until a reader came (eighth probe)
        check_regular_file(Path(path), "records", MAX_JSONL_BYTES)
    line = (json.dumps(finite_json(record), sort_keys=True, allow_nan=False) + "\n").encode()
    try:  # O_NOFOLLOW: a link put there after the check is not followed either
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as e:  # a failed open names no file ("File too large: a file": tenth probe)
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        if size > 0 and os.pread(fd, 1, size - 1) != b"\n":  # a torn last line (killed mid-write) must not
            line = b"\n" + line                                 # swallow this record too
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as e:  # a full disk or a file size limit: the part written goes, so the records file ends
            with contextlib.suppress(OSError):  # where it did (it kept a torn record: probe 25)
                os.ftruncate(fd, size)
            raise OSError(e.errno, e.strerror, str(path)) from None
    finally:
        os.close(fd)


def loads_json(text: str | bytes, *, unique_keys: bool = False) -> Any:
    """``json.loads`` for files robot-wm reads back: JSON nested deeper than Python's recursion limit (200,000
    brackets in an episode's meta) is a ``json.JSONDecodeError`` like any other bad JSON, not a RecursionError
    traceback (eighth probe). ``unique_keys``: a key given twice in one object is a ValueError naming it (a
    hand-written goal file with two "state" keys was driven to the last one without a word: probe 37)."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys if unique_keys else None)
    except RecursionError:
        raise json.JSONDecodeError("nested deeper than robot-wm reads", text if isinstance(text, str) else "",
                                   0) from None


_FS_IOC_GETFLAGS = 0x80086601  # Linux: a file's attributes (chattr), as lsattr reads them
_FS_APPEND_FL = 0x20


def append_only(path: str | Path) -> bool:
    """Whether ``path`` has the append-only attribute (``chattr +a``): ``os.access`` calls it writable, but a file so
    marked cannot be replaced, and a folder so marked keeps every temp file written in it (probe 38). False where the
    file system keeps no such attributes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        flags = array.array("l", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags)
        return bool(flags[0] & _FS_APPEND_FL)
    except OSError:
        return False
    finally:
        os.close(fd)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) < len(pairs):
        twice = next(k for i, (k, _) in enumerate(pairs) if any(k == k2 for k2, _ in pairs[:i]))
        raise ValueError(f"the key {twice[:80]!r} is given twice in one object (which one is meant?)")
    return out


def read_jsonl(path: Path, damaged: list[int] | None = None) -> list[Any]:
    """The JSON value of each line, in order; lines that are not JSON are dropped (a torn last line: a writer killed
    mid-append). ``damaged``: given a list, the numbers of such lines before the last are added to it, for the caller
    to name (they were dropped without a word: probe 29)."""
    if not Path(path).exists():
        return []
    check_regular_file(Path(path), "records", MAX_JSONL_BYTES)  # a FIFO hung train and finetune (eighth probe)
    out, bad = [], []
    with open(path, "rb") as f:  # a line at a time: the text and its records are never both held whole
        for n, line in enumerate(f, 1):
            if n == 1 and line.startswith(b"\xef\xbb\xbf"):  # a Windows editor's byte-order mark: the first record was
                line = line[3:]  # "not JSON", and the episode it records then "has no record" (probe 34)
            try:
                out.append(loads_json(line.decode()))
            except UnicodeDecodeError:  # binary: another program's file written over it
                raise ValueError(f"{str(path)!r} is not text (line {n} cannot be decoded as UTF-8): the file is "
                                 "damaged or was replaced") from None
            except json.JSONDecodeError:
                if line.strip():
                    bad.append(n)
    if damaged is not None:
        damaged.extend(b for b in bad if b != n)  # the last line torn: a killed writer's, not damage
    return out


# Signals whose default ends the program at once (no safe action, the episode being recorded lost): each, where
# left at its default, stops it like SIGTERM. Ctrl-\ (SIGQUIT) too (probe 34): a robot gets its safe action first.
STOP_SIGNALS = (signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGVTALRM,
                signal.SIGPROF, signal.SIGXCPU)


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGINT, SIGTERM and SIGHUP until the block ends, then deliver the first that came (to the handlers that
    were in force). A second Ctrl-C while deploy saved the episode the first one cut short raised inside the save,
    and the episode was lost under "every file written before is complete" (probe 31). Python runs signal handlers in
    the main thread only, so a thread mask would not do (onnxruntime's and OpenBLAS's threads take the signal);
    elsewhere than the main thread, nothing is changed."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    for s, handler in old.items():
        if handler not in (signal.SIG_IGN, None):  # None: set outside Python, left alone
            signal.signal(s, lambda n, _frame: got.append(n))
    try:
        yield
    finally:
        for s, handler in old.items():
            if handler not in (signal.SIG_IGN, None):
                signal.signal(s, handler)
        if got:
            signal.raise_signal(got[0])
