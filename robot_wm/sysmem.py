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


def _address_space_left() -> int | None:
    """What ``ulimit -v`` leaves the process (its soft limit less its virtual size now), None without a limit."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft == resource.RLIM_INFINITY:
            return None
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return max(0, soft - int(line.split()[1]) * 1024)
    except (ImportError, OSError, ValueError, IndexError):
        pass
    return None
