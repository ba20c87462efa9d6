"""Memory available to a computation on a device, read before a large run starts."""
from __future__ import annotations

import torch


def available_bytes(device: torch.device) -> int:
    """Free memory on ``device``: CUDA's free global memory, else the system's ``MemAvailable``."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def format_bytes(n: float) -> str:
    """``n`` bytes as a short human-readable string."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


#: glibc ``mallopt`` parameters and the values :func:`keep_freed_memory` sets: blocks up to 32 MB (glibc's
#: largest mmap threshold on 64-bit) come from the heap, which is trimmed only when 64 MB lie free at its top.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 1024**2
_TRIM_THRESHOLD = 64 * 1024**2


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of returning it to the system after every large free.

    Dask's worker processes start with ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes glibc's mmap threshold
    at 128 KB: every tensor of a reconstruction is then mapped and unmapped by the kernel, page by page, on each
    evaluation. Measured here (48^3, one thread): 5.9 s in a plain process, 14.4-15.5 s with that variable or in a
    Dask worker. Called at the start of each ensemble and folder task on a Dask worker (never in the user's own
    process); returns False where there is no glibc (macOS, Windows, musl), which changes nothing."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
