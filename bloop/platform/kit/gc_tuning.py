"""The garbage collector's and the allocator's settings for a long-running Bloop process
(`bloop serve`, `bloop worker`) and for the benchmarks that stand for one."""

from __future__ import annotations

import ctypes
import gc
import os

YOUNG_THRESHOLD = 10_000  # net container allocations between young collections (CPython: 700)


def tune_for_serving() -> None:
    """Call once the process has imported what it keeps for its whole life.

    What is alive by then stays alive, so it is frozen out of the collector's sight: a full
    collection no longer walks the libraries' hundreds of thousands of objects. And the young
    generation is collected after 10,000 net allocations instead of 700: a consumer's batch of
    up to 2,000 records (or a relay's 500 events) would otherwise set off several collections
    that each walk the whole batch, about 5 µs of CPU an event on the event path."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])


M_ARENA_MAX = -8  # glibc's mallopt parameter
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Call before the process starts its threads. glibc gives threads that allocate at once
    arenas of their own (up to eight per core) and keeps what they held once it is freed: a
    server under load (SQLite's reader threads, password hashing, the thread pool) went from
    260 to 524 MiB and stayed there idle; with two arenas it stayed near 300 MiB. Leaves
    MALLOC_ARENA_MAX, when set, to decide; returns whether the limit was set (never off glibc)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except AttributeError:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))
