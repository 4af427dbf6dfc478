"""Keep freed memory in the process for the big CPU tensors of training and inference (glibc only).

With glibc's defaults every large activation is its own ``mmap``: freed at once and page-faulted
back on the next pass, hundreds of thousands of faults per B-scan, which made CPU inference
1.4-1.8x slower and its timing swing 30-50 % (docs/architecture.md, "Speed"). The same settings as the
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=... MALLOC_TOP_PAD_=...`` environment variables, applied
with ``mallopt`` at start-up so a plain ``oct-srgan enhance`` gets them too. Variables the user set
win; other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
SETTINGS = {
    "MALLOC_TRIM_THRESHOLD_": (_M_TRIM_THRESHOLD, 2**31 - 1),
    "MALLOC_TOP_PAD_": (_M_TOP_PAD, 1 << 30),
    "MALLOC_MMAP_MAX_": (_M_MMAP_MAX, 0),
}


def keep_freed_memory() -> bool:
    """Apply the settings through glibc's ``mallopt``; True when every one that is not set in the environment took."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # only glibc has both
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = True
    for env, (param, value) in SETTINGS.items():
        if env not in os.environ:
            ok = bool(mallopt(param, value)) and ok
    return ok


def trim_freed_memory() -> bool:
    """Give freed heap memory back to the system (glibc ``malloc_trim``), so a long-running server
    settles after a big job instead of keeping its peak; True when glibc did."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    return bool(trim(0))
