"""Process-wide memory settings of a process that trains or drives trials: keep freed
CPU memory in the process (`retain_freed_memory`), and set the objects it starts with
aside from garbage collection (`freeze_startup_objects`).

glibc hands blocks above its mmap threshold straight back to the kernel when they are
freed, and trims the heap's free top likewise. A training step allocates and frees the
same few megabyte-sized tensors every batch, so each batch page-faults its memory in
again: without this, on a 2-core CPU, 1,900-4,400 faults and 4-11 ms of kernel CPU time
per augmented batch of 512 (against 31-39 ms of user time). Raising both thresholds
makes the heap behave like PyTorch's CUDA caching allocator: peak usage stays reserved.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 1024 * 1024 * 1024

_done = False
_frozen = False


def retain_freed_memory() -> bool:
    """Tune glibc's malloc once per process; True if it is (now) tuned. A no-op off Linux
    or without glibc (musl, macOS), where the allocators already keep freed memory."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on an unsupported value.
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not _done:
        log.debug("mallopt refused the thresholds; freed memory goes back to the OS")
    return _done


def freeze_startup_objects() -> bool:
    """Move every object alive now out of the garbage collector's sight, once per
    process; True if this call did. Python's full collections walk every tracked object,
    and a process holds hundreds of thousands from importing torch, Ray, MLflow and the
    project, none of them ever garbage: in a Ray worker (~565,000) a trivial trial's
    collections took 16-20 ms with them and 3.5-4 ms without; in a sweep's driver
    (~500,000 of 760,000) 5 ms a trial and 2.3 ms (300-trial sweeps, docs/benchmarks.md).
    What the process makes later is collected as before; garbage is collected first so
    that none is kept. Remembered in a flag: `gc.get_freeze_count()` walks the frozen
    objects (50 ms in a worker), too slow for a check at every trial."""
    global _frozen
    if _frozen:
        return False
    gc.collect()
    gc.freeze()
    _frozen = True
    return True


def set_aside_survivors(walk_all: bool = False) -> None:
    """Collect garbage, then move every object alive now out of the collector's sight, as
    `freeze_startup_objects` does once at the start. A sweep's driver holds what it
    learns of each finished trial (Tune's trial, its result) to the end, and Python's
    full collections walk all of it, more often as it grows: in a 2,000-trial sweep's
    driver, 21 of them took 3.4 s, mostly while it handed a worker its next trial. Set
    aside every few hundred trials, what they hold is walked about once.

    An object set aside that later dies in a reference cycle is not collected; with
    `walk_all`, everything set aside is collected first too (call it now and then, so
    that such garbage stays bounded however long the sweep)."""
    if walk_all:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
