"""One episode on disk: a plain ``.npz`` any numpy user can open (``np.load(path)``), no pickles.

Arrays: ``obs`` (T+1, S), ``action`` (T, A), ``reward`` (T,), ``physics_state`` (T+1, P: MuJoCo full
physics state), and ``meta``: a JSON string (task, seed, policy, diverged, env steps, return).
"""

from __future__ import annotations

import io
import json
import math
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robot_wm.io import atomic_write_bytes, check_regular_file, dangling_link, loads_json

KEYS = ("obs", "action", "reward", "physics_state")


MAX_EPISODE_BYTES = 2**30
"""Largest episode file, uncompressed, that ``Episode.load`` reads (1 GiB: about 500,000 steps of a 100-dimensional
robot; an ordinary 1,000-step episode is well under 1 MiB)."""


def check_seed(meta: dict) -> None:
    """An episode's seed (drive, dream and whatif reset the simulator to it) is a seed, or null (a robot's)."""
    if (seed := meta.get("seed")) is not None and not (isinstance(seed, int) and not isinstance(seed, bool)
                                                       and 0 <= seed < 2**32):  # probe 14: 'abc', -5
        raise ValueError(f"its meta seed = {json.dumps(seed)[:40]} is not a whole number from 0 to 2**32 - 1 "
                         "(or null: a robot's episode)")


def _numpy_scalar(value):
    """A numpy number in an episode's meta as the Python number it holds (``np.int64(3)`` as a seed, ``np.float32``
    from a robot driver were json's TypeError: probe 17); anything else stays json's error."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


@dataclass
class Episode:
    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    physics_state: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for k in KEYS:  # complex arrays were cast with a ComplexWarning, their imaginary parts dropped (probe 12)
            if (dtype := np.asarray(getattr(self, k)).dtype).kind not in "fiub":
                raise ValueError(f"episode array {k!r} has dtype {dtype}: expected real numbers")
        self.obs = np.asarray(self.obs, dtype=np.float32)
        self.action = np.asarray(self.action, dtype=np.float32)
        self.reward = np.asarray(self.reward, dtype=np.float32)
        self.physics_state = np.asarray(self.physics_state, dtype=np.float64)
        t = len(self.action)
        if self.obs.ndim != 2 or self.action.ndim != 2 or self.reward.shape != (t,):
            raise ValueError(f"episode arrays have bad ranks: obs {self.obs.shape}, action {self.action.shape}, "
                             f"reward {self.reward.shape}")
        if len(self.obs) != t + 1 or len(self.physics_state) != t + 1:
            raise ValueError(f"episode with {t} actions needs {t + 1} observations and physics states, got "
                             f"{len(self.obs)} and {len(self.physics_state)}")
        for k in KEYS:
            if not np.all(np.isfinite(getattr(self, k))):
                raise ValueError(f"episode array {k!r} holds NaN/Inf")

    def __len__(self) -> int:
        return len(self.action)

    @property
    def total_return(self) -> float:
        return float(self.reward.sum(dtype=np.float64))

    def save(self, path: Path, *, exclusive: bool = False) -> None:
        """Write atomically; ``exclusive``: FileExistsError rather than replace an existing file."""
        try:  # an int of 10**5000 or an object was json's own error, naming neither file nor key (probe 16)
            meta = json.dumps(self.meta, sort_keys=True, default=_numpy_scalar)
        except (TypeError, ValueError) as e:
            raise ValueError(f"episode {str(path)!r} not written: its meta is not plain JSON ({e})") from None
        try:
            check_seed(json.loads(meta))  # what load refuses is never written (a recorder took any seed)
        except ValueError as e:
            raise ValueError(f"episode {str(path)!r} not written: {e}") from None
        arrays = {k: np.asarray(getattr(self, k)) for k in KEYS}
        size = sum(a.nbytes for a in arrays.values()) + 4 * len(meta) + 1024  # as load counts it: uncompressed
        if size > MAX_EPISODE_BYTES:  # a 1 GiB recording was written, then refused by every reader (probe 16)
            raise ValueError(f"episode {str(path)!r} not written: it holds {size / 2**20:,.0f} MiB uncompressed and an "
                             f"episode is read back only up to {MAX_EPISODE_BYTES / 2**20:.0f} MiB; record shorter "
                             "episodes")
        buf = io.BytesIO()
        np.savez_compressed(buf, meta=np.array(meta), **arrays)
        atomic_write_bytes(path, buf.getvalue(), exclusive=exclusive)

    @classmethod
    def load(cls, path: Path, max_bytes: int = MAX_EPISODE_BYTES) -> Episode:
        """Read and check an episode file; the sizes its zip directory declares are checked against
        ``max_bytes`` before anything is decompressed (zipfile never inflates past a declared size)."""
        try:
            check_regular_file(Path(path), "episode file", max_bytes)
            with zipfile.ZipFile(path) as zf:
                members = zf.infolist()
                declared = sum(i.file_size for i in members)
                if len(members) > 2 * len(KEYS) + 2 or declared > max_bytes:
                    raise ValueError(f"it declares {len(members)} arrays of {declared / 2**20:.1f} MiB in all; an "
                                     f"episode holds {len(KEYS) + 1} and at most {max_bytes / 2**20:.0f} MiB")
                for info in members:
                    _check_npy_header(zf, info)
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in (*KEYS, "meta") if k not in z.files]
                if missing:
                    raise ValueError(f"missing arrays {missing}")
                arrays = {k: z[k] for k in KEYS}
                meta = loads_json(str(z["meta"]))
            if not isinstance(meta, dict):
                raise ValueError(f"meta is a JSON {type(meta).__name__}, expected an object")
            check_seed(meta)
            return cls(**arrays, meta=meta)
        except (OSError, ValueError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, MemoryError,
                json.JSONDecodeError) as e:  # NotImplementedError: zipfile on a corrupted flag bit
            if link := dangling_link(path):  # "No such file" for a file `ls` shows (probe 32)
                raise ValueError(f"episode file {link}: remove it") from None
            raise ValueError(f"episode file {str(path)!r} is unreadable or not a robot-wm episode: {e}") from None


def _check_npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """An array's own header declares its shape: numpy allocates that much before reading, so a header of
    (10**10, 5) beside a 14 KB member asked for 186 GiB (probe 15). The bytes it declares must fit in the member."""
    fmt = np.lib.format
    with zf.open(info) as f:
        if f.read(len(fmt.MAGIC_PREFIX)) != fmt.MAGIC_PREFIX:
            return  # not an array: np.load gives its bytes (a member named 'obs' without .npy is read as one, probe 16)
        version = tuple(f.read(2))  # 3.0 is 2.0's layout with a UTF-8 header (non-ASCII field names)
        read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0,
                (3, 0): fmt.read_array_header_2_0}.get(version)
        if read is None:
            raise ValueError(f"array {info.filename.removesuffix('.npy')!r} is in .npy format {version}: expected "
                             "1.0 to 3.0")
        shape, _, dtype = read(f, max_header_size=10_000)
    if dtype.hasobject:
        return  # np.load refuses object arrays itself (allow_pickle=False)
    nbytes = dtype.itemsize * math.prod(shape)
    if nbytes > info.file_size:
        raise ValueError(f"array {info.filename.removesuffix('.npy')!r} declares shape {shape} "
                         f"({nbytes / 2**20:,.1f} MiB of {dtype}) in a member of {info.file_size:,} bytes")
