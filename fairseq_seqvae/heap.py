"""Giving a training process's free heap memory back to the system (glibc's ``malloc_trim``).

glibc serves allocations below its mmap threshold from the process heap, and raises that
threshold (up to 32 MiB) each time a larger block it had mmapped is freed. Batches of varying
length then leave the heap full of free blocks of the wrong sizes, which glibc keeps: a
Yahoo-size training's heap grew to 5.7 GiB, 5.1 GiB of it free (docs/PERFORMANCE.md#memory).
``malloc_trim(0)`` returns the free pages; the task calls it every ``--malloc-trim-seconds``.
"""

import ctypes
import ctypes.util
import functools
import platform


@functools.lru_cache(maxsize=None)
def _glibc():
    """The C library when it is glibc, else None (macOS, musl)."""
    if platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def available() -> bool:
    """Whether this process's C library is glibc, so that ``trim`` can do something."""
    return _glibc() is not None


def trim() -> bool:
    """Return the heap's free pages to the system; False where the C library is not glibc."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
