"""The cyclic garbage collector of a long-running server process (standalone, controller, invoker).

CPython's default thresholds (700, 10, 10) run a generation-0 collection every 700 net container allocations;
a warm invoke allocates hundreds (coroutines, futures, pydantic models, dicts), so the collector runs every
request or two and, every tenth and hundredth time, walks the older generations: the whole heap of modules,
routes, models and caches the server built at start-up and never frees. So, as long-running servers do
(Instagram's Django, gunicorn's ``gc.freeze`` hook): after start-up, what is alive is moved to the permanent
generation (``gc.freeze``) that collections never walk, and generation 0 is collected every 10,000 allocations
instead of 700. Cycles are still collected (nothing disables the collector), only in larger batches; memory
allocated after start-up stays collectable, so a leak of cycles stays bounded by the same collector.
"""

from __future__ import annotations

import gc
import os

GEN0_THRESHOLD = 10_000


def tune_after_start_up() -> None:
    """Collect once, freeze what survived, and raise generation 0's threshold. ``PYWHISK_GC_TUNE=0`` keeps
    CPython's defaults (to compare)."""
    if os.environ.get("PYWHISK_GC_TUNE", "1") == "0":
        return
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
