import gc
import os
import platform
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bloop.platform.kit.gc_tuning import MALLOC_ARENAS, YOUNG_THRESHOLD, tune_for_serving


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_tuning_freezes_what_lives_and_collects_the_young_less_often() -> None:
    older = gc.get_threshold()[1:]
    kept = [object() for _ in range(3)], {"a": [1]}
    tune_for_serving()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_THRESHOLD, *older)
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert not {id(o) for o in kept} & oldest  # frozen, not left in the oldest generation


ARENAS_USED = """
import ctypes, sys, threading
from bloop.platform.kit.gc_tuning import limit_malloc_arenas
if sys.argv[1] == "limited":
    assert limit_malloc_arenas()
barrier = threading.Barrier(6)
def allocate():
    barrier.wait()  # all at once, as a loaded server's threads
    kept = [bytearray(2048) for _ in range(20_000)]
    del kept
threads = [threading.Thread(target=allocate) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(None)
buf, size = ctypes.c_char_p(), ctypes.c_size_t()
libc.open_memstream.restype = ctypes.c_void_p
stream = libc.open_memstream(ctypes.byref(buf), ctypes.byref(size))
libc.malloc_info(0, ctypes.c_void_p(stream))
libc.fclose(ctypes.c_void_p(stream))
print(buf.value.decode().count("<heap nr="))
"""


def arenas_used(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run([sys.executable, "-c", ARENAS_USED, mode], capture_output=True,
                          text=True, check=True, timeout=60, env=env)
    return int(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_threads_allocating_at_once_share_two_malloc_arenas() -> None:
    """Each thread allocating at once had an arena of its own, kept after its memory was freed
    (a loaded server doubled its memory and kept it)."""
    assert arenas_used("limited") <= MALLOC_ARENAS < arenas_used("default")
