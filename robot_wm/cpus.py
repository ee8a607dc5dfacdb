"""How many CPUs this process may use, and thread counts bounded by it (torch-free: the runtime uses it)."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: a container's cpuset, ``taskset``), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def at_most_cpus(threads: int, what: str) -> int:
    """``threads``, or the available CPUs where it asks for more, with a warning naming ``what`` (probe 14: 1024 torch
    threads, or 600 onnxruntime threads under a memory limit, spent the memory on thread stacks and hung)."""
    if threads > (have := available_cpus()):
        log.warning("%s=%d: this machine has %d CPUs for this process; using %d", what, threads, have, have)
        return have
    return threads
