"""The Python runner's pool size and the host's memory-mapping limit, without running wasm."""

from __future__ import annotations

import pytest

from executor_wasm.python.pooling import MIB, PoolPlan, is_pool_exhausted
from executor_wasm.settings import MAPPINGS_PER_RUN, MAPPINGS_RESERVED, WasmSettings, map_count_warning
from pywhisk.entities import MEMORY_MB

pytestmark = pytest.mark.unit


def test_the_pool_never_has_more_slots_than_the_memory_budget_can_run_at_once() -> None:
    # 1024 MB holds at most 8 Python runs of the smallest limits.memory (128 MB); 4 ready instances on top.
    plan = PoolPlan.from_settings(WasmSettings(user_memory_mb=1024, pooling_instances=64), ready=4)

    assert plan.instances == 1024 // MEMORY_MB.minimum + 4


def test_the_pool_size_setting_caps_a_large_budget() -> None:
    plan = PoolPlan.from_settings(WasmSettings(user_memory_mb=2_621_440, pooling_instances=16), ready=4)

    assert plan.instances == 16


def test_every_slot_holds_the_largest_action_memory_and_its_tables() -> None:
    plan = PoolPlan.from_settings(WasmSettings(pooling_keep_resident_mb=32, threads=8), ready=4)

    assert plan.memory_bytes == MEMORY_MB.maximum * MIB
    # limits.py gives tables 1/16 of the limit, over 8 tables of 16-byte elements.
    assert plan.table_elements == MEMORY_MB.maximum * MIB // 16 // (8 * 16)
    # What the idle pool keeps resident is bounded: the warm slots' reset memories.
    assert plan.warm_slots == 12
    assert plan.resident_bytes == 12 * 32 * MIB


def test_pooling_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYWHISK_WASM_POOLING", "0")
    monkeypatch.setenv("PYWHISK_WASM_POOLING_INSTANCES", "7")
    monkeypatch.setenv("PYWHISK_WASM_PYTHON_READY", "false")
    monkeypatch.setenv("PYWHISK_USER_MEMORY_MB", "2048")

    settings = WasmSettings()

    assert (settings.pooling, settings.pooling_instances, settings.python_ready) == (False, 7, False)
    assert settings.user_memory_mb == 2048


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_pool_without_instances_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PYWHISK_WASM_POOLING_INSTANCES", value)

    with pytest.raises(ValueError, match="pooling_instances"):
        WasmSettings()


def test_only_a_full_pool_counts_as_exhausted() -> None:
    assert is_pool_exhausted(Exception("maximum concurrent limit of 36 for component instances reached"))
    assert not is_pool_exhausted(Exception("resource limit exceeded: memory count too high"))
    assert not is_pool_exhausted(Exception("memory minimum size of 300 pages exceeds memory limits"))


def test_no_warning_while_the_runs_fit_in_the_map_count() -> None:
    assert map_count_warning(4096, max_map_count=65_530) is None  # the default settings on a default host


def test_the_warning_names_the_setting_and_the_fix_when_runs_do_not_fit() -> None:
    warning = map_count_warning(20_500, max_map_count=65_530)

    assert warning is not None
    assert "PYWHISK_WASM_MAX_RUNS=20500" in warning
    assert "vm.max_map_count is 65,530" in warning
    assert "deploy/local/host-tuning.sh 20500" in warning
    assert f"about {(65_530 - MAPPINGS_RESERVED) // MAPPINGS_PER_RUN:,} can sleep at once" in warning


def test_the_boundary_is_exact() -> None:
    needed = 7000 * MAPPINGS_PER_RUN + MAPPINGS_RESERVED

    assert map_count_warning(7000, max_map_count=needed) is None
    assert map_count_warning(7000, max_map_count=needed - 1) is not None
