"""`collector`: applies run without automatic collections and end frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from kubelb.dataplane import collector


@pytest.fixture(autouse=True)
def restore_collector() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_no_automatic_collection_inside_and_everything_frozen_after() -> None:
    gc.enable()
    gc.unfreeze()
    with collector.applying():
        assert not gc.isenabled()
        built = [{"n": i} for i in range(100)]
    assert gc.isenabled()
    assert gc.get_freeze_count() > len(built)
    assert not any(o is built for o in gc.get_objects()), "the result was not frozen"


def test_nested_applies_restore_the_collector_once() -> None:
    gc.enable()
    with collector.applying():
        with collector.applying():
            pass
        assert not gc.isenabled(), "the inner apply turned collections back on too early"
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    with collector.applying():
        pass
    assert not gc.isenabled()


def test_an_exception_still_restores_the_collector() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), collector.applying():
        raise RuntimeError("bad config")
    assert gc.isenabled()


def test_reclaim_collects_cycles_that_were_frozen() -> None:
    class Node:
        pass

    with collector.applying():
        a, b = Node(), Node()
        a.peer, b.peer = b, a  # type: ignore[attr-defined]
    frozen = gc.get_freeze_count()
    del a, b
    assert gc.get_freeze_count() == frozen, "a frozen cycle was collected without a reclaim"
    assert collector.reclaim() >= 2
    assert gc.get_freeze_count() < frozen


@pytest.mark.parametrize(
    ("removed", "live", "due"),
    [
        (0, 0, False),
        (0, 10, False),
        (1, 0, True),
        (2, 10, False),
        (3, 10, True),
        (25, 100, False),
        (26, 100, True),
    ],
)
def test_reclaim_is_due_once_removals_reach_a_quarter_of_what_is_live(
    removed: int, live: int, due: bool
) -> None:
    assert collector.due(removed, live) is due
