"""runtime.py: memory release between the cases of a batch."""
from __future__ import annotations

import platform
from pathlib import Path

import pytest

from WeakSegLib.runtime import release_memory


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc",
                    reason="malloc_trim is glibc's")
def test_release_memory_returns_freed_heap_to_the_os():
    # 2,000 chunks of 100 kB land on the heap (below glibc's mmap threshold); one chunk
    # allocated after them pins the top of the heap, so glibc's own trimming cannot return
    # the freed ones and only an explicit trim gives them back
    chunks = [bytearray(100_000) for _ in range(2000)]
    for chunk in chunks:
        chunk[::4096] = b"\x01" * len(chunk[::4096])       # touch every page
    pin = bytearray(100_000)
    del chunks
    before = _rss_mb()
    assert release_memory() is True
    after = _rss_mb()
    assert before - after > 100, (before, after)
    del pin
