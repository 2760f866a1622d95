"""``fairseq_seqvae.heap.trim`` gives freed heap memory back to the system."""

import ctypes

import pytest

from fairseq_seqvae import heap

pytestmark = pytest.mark.skipif(not heap.available(), reason="the C library is not glibc")

BLOCK = 64 * 1024  # below glibc's mmap threshold: served from the heap
BLOCKS = 400  # 25 MiB


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_trim_returns_freed_heap_pages():
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(BLOCK) for _ in range(BLOCKS)]
    for block in blocks:
        ctypes.memset(block, 1, BLOCK)  # resident now
    for block in blocks[:-1]:  # the last one keeps them off the top, which free() trims itself
        libc.free(block)
    before = resident_bytes()
    assert heap.trim()
    released = before - resident_bytes()
    libc.free(blocks[-1])
    assert released >= BLOCK * BLOCKS // 2, f"only {released} bytes given back"
