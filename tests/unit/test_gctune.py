"""The server processes' collector settings (launcher/gctune.py): start-up objects frozen, generation 0 larger,
the collector still on; ``PYWHISK_GC_TUNE=0`` keeps CPython's defaults. In a fresh interpreter each, as the
settings are process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

PROBE = """
import gc, json
from launcher.gctune import tune_after_start_up
default = gc.get_threshold()
tune_after_start_up()
class Node:
    pass
a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made after start-up
del a, b
print(json.dumps({"default": default, "threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                  "enabled": gc.isenabled(), "collected": gc.collect()}))
"""


def probe(**env: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_start_up_objects_are_frozen_and_cycles_made_later_are_still_collected() -> None:
    tuned = probe()
    assert tuned["threshold"] == [10_000, 10, 10]
    assert isinstance(tuned["frozen"], int) and tuned["frozen"] > 1_000
    assert tuned["enabled"] is True
    assert isinstance(tuned["collected"], int) and tuned["collected"] >= 2  # the two nodes of the cycle


def test_tuning_can_be_turned_off_to_compare() -> None:
    plain = probe(PYWHISK_GC_TUNE="0")
    assert plain["threshold"] == plain["default"] and plain["frozen"] == 0
