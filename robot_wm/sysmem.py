"""The memory this process may still use (torch-free: the runtime on the robot reads it too)."""

from __future__ import annotations

import os
from pathlib import Path

MEMORY_SHARE = 0.8
"""The share of the memory available now that a planner, or a training, may need."""


def available_memory() -> int | None:
    """Bytes of memory available now (Linux MemAvailable; else the physical total), None if unknown; at most
    what the process's address-space limit (``ulimit -v``) leaves it."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    left = _address_space_left()
    return avail if left is None else min(avail, left)


def beyond_share(need: float) -> str | None:
    """Where ``need`` bytes are more than ``MEMORY_SHARE`` of the memory available now, the words that say so ("more
    than 80% of the 24.1 GB this computer has available"); None where they fit, or where it cannot be told."""
    available = available_memory()
    if available is None or need <= MEMORY_SHARE * available:
        return None
    return f"more than {MEMORY_SHARE:.0%} of the {available / 1e9:.1f} GB this computer has available"


def _address_space_left() -> int | None:
    """What ``ulimit -v`` leaves the process (its soft limit less its virtual size now), None without a limit."""
    if (soft := address_space_limit()) is None:
        return None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return max(0, soft - int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return None


ADDRESS_SPACE_FLOOR = {"deploy": 700 << 20, "report": 1 << 30}
"""The address space a command needs to start, where it is not ``DEFAULT_FLOOR``. Measured on a tiny run: the peaks
were 0.8 GiB (deploy, which ran under 700 MiB and not under 600), 1.2 (eval, whatif), 1.7 (export) and 1.9 GiB
(dream, which failed in OpenBLAS under 1.5 GiB)."""
DEFAULT_FLOOR = 2 << 30


def address_space_limit() -> int | None:
    """The soft ``ulimit -v`` in bytes, None without one."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY else soft


def address_space_refusal(command: str) -> str | None:
    """Why ``command`` cannot start under this process's ``ulimit -v`` (None if it can). Under 1 GiB, `dream` hung
    for hours in OpenBLAS's start-up (it retries a failed mmap forever, inside dm_control's import of scipy) and
    `deploy` blamed the planner file for onnxruntime's failed thread (probe 30)."""
    floor = ADDRESS_SPACE_FLOOR.get(command, DEFAULT_FLOOR)
    if (limit := address_space_limit()) is None or limit >= floor:
        return None
    return (f"the address-space limit (ulimit -v) is {limit >> 20} MiB, and `robot-wm {command}` needs at least "
            f"{floor >> 20} MiB to start (torch, MuJoCo, onnxruntime and their BLAS threads map it before any work): "
            f"raise it to at least {floor >> 10} KiB (ulimit -v {floor >> 10}) or lift it (ulimit -v unlimited)")


def memory_blamed(message: str) -> str | None:
    """A sentence for a library error that is a failed allocation under ``ulimit -v`` (None otherwise): onnxruntime
    said "PosixThread ... Resource temporarily unavailable" and was reported as a corrupted planner file."""
    if (limit := address_space_limit()) is None:
        return None
    text = message.lower()
    if not any(k in text for k in ("posixthread", "bad_alloc", "failed to allocate", "cannot allocate memory",
                                   "resource temporarily unavailable", "out of memory")):
        return None
    return (f"it ran out of address space under the limit set by ulimit -v ({limit >> 20} MiB): raise or lift the "
            "limit (ulimit -v unlimited)")
