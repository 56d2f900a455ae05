"""The daemon's entry point tunes the garbage collector (tap.GC_YOUNG_THRESHOLD): a gateway keeps
hundreds of reads in progress, and Python's default young threshold (700) promotes them into full
collections over the whole fleet's state (docs/benchmarks.md, bench.gateway_read_cycle)."""

from __future__ import annotations

import gc

from amidcc.gateway.tap import GC_YOUNG_THRESHOLD, Options, makeService


def test_make_service_raises_the_young_threshold_and_keeps_the_others() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, before[1], before[2])
        options = Options()
        options.parseOptions([])
        service = makeService(options)
        assert service.name == "amidcc" and not service.running
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
        assert GC_YOUNG_THRESHOLD > 700
    finally:
        gc.set_threshold(*before)
