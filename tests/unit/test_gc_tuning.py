import gc
from collections.abc import Iterator

import pytest

from bloop.platform.kit.gc_tuning import YOUNG_THRESHOLD, tune_for_serving


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
