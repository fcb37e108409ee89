"""Wasmtime's pooling allocator for the Python runner: an Engine whose instances live in slots reserved once.

Why: a Python-on-WASM run instantiates the runner component afresh (nothing leaks between activations).
With the on-demand allocator every run maps the runner's ~13 MiB memory image copy-on-write and then
faults in the ~480 pages CPython touches (~1 ms of a ~2.2 ms hello, measured with ``perf``), and unmaps
them at the end. The pooling allocator keeps each slot's mapping, and with ``keep_resident`` covering
the image it resets a slot by copying the image back (~1 ms, but after the answer: runner.py closes
Stores off the activation's path), so the next run in that slot takes no page fault and the call itself
drops to ~0.6 ms (docs/benchmarks.md, "Python on WASM: pooling allocator").

wasmtime-py has no ``Config`` property for it, but binds the C API's ``wasmtime_pooling_allocation_*``
in ``wasmtime._ffi``: this module is the one place that reaches for them. The pool is sized from
settings and bounded by the invoker's memory budget; an Engine the host refuses (e.g. the address space
cannot be reserved) means no pool, logged once, and every run on the on-demand allocator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

from executor_wasm.cache import ENGINE_SETTINGS
from executor_wasm.limits import PYTHON_RUNNER, GuestBudget
from executor_wasm.settings import WasmSettings
from pywhisk.entities import MEMORY_MB

MIB = 1_048_576

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PoolPlan:
    """How big the pool is: every count Wasmtime reserves for, derived from settings."""

    instances: int  # runner instances alive at once (component instances)
    memory_bytes: int  # the largest linear memory: the action's limits.memory cap
    table_elements: int  # the most elements a table may hold under that cap (limits.py)
    keep_resident_bytes: int
    warm_slots: int  # idle slots that keep their resident memory

    @classmethod
    def from_settings(cls, settings: WasmSettings, ready: int = 0) -> PoolPlan:
        """The pool for ``settings``: at most one slot per 128 MB of the memory budget (plus ``ready`` spares).

        A Python run holds at least ``limits.memory``'s minimum of the invoker's budget while it runs, so
        more slots than that could never be used at once; the ready instances (runner.py) are extra.
        """
        budget_runs = max(1, settings.user_memory_mb // MEMORY_MB.minimum)
        instances = max(1, min(settings.pooling_instances, budget_runs + ready))
        largest = GuestBudget.of(MEMORY_MB.maximum * MIB, PYTHON_RUNNER)
        return cls(
            instances=instances,
            memory_bytes=MEMORY_MB.maximum * MIB,
            table_elements=largest.table_elements,
            keep_resident_bytes=settings.pooling_keep_resident_mb * MIB,
            warm_slots=min(instances, settings.threads + ready),
        )

    @property
    def resident_bytes(self) -> int:
        """The most the idle pool keeps resident: its warm slots' reset memories."""
        return self.warm_slots * self.keep_resident_bytes


def create_pooled_engine(plan: PoolPlan) -> wasmtime.Engine | None:
    """An Engine like cache.create_engine's, allocating from a pool of ``plan``'s size; None if refused.

    Its code is the same as the on-demand Engine's (the allocator is not part of the artifact), so the
    runner's cached artifact loads into both.
    """
    config = wasmtime.Config()
    config.epoch_interruption = bool(ENGINE_SETTINGS["epoch_interruption"])
    config.cranelift_opt_level = str(ENGINE_SETTINGS["cranelift_opt_level"])
    config.parallel_compilation = True
    try:
        _set_pooling(config, plan)
    except (AttributeError, TypeError) as error:  # wasmtime-py's private bindings moved
        logger.warning("the pooling allocator is not available (%s): Python on WASM instantiates on demand", error)
        return None
    engine = wasmtime.Engine(config)
    if not engine.ptr():
        # The C API answers NULL when Wasmtime refuses the pool, e.g. when its address space cannot be
        # reserved (RLIMIT_AS): let go of the pointer, or deleting the Engine would dereference it.
        engine._consume()
        logger.warning(
            "Wasmtime refused a pool of %d Python runner instances (a 4 GiB address-space reservation each;"
            " RLIMIT_AS?): Python on WASM instantiates on demand (PYWHISK_WASM_POOLING_INSTANCES)",
            plan.instances,
        )
        return None
    return engine


def is_pool_exhausted(error: BaseException) -> bool:
    """Did instantiation fail because every slot of the pool is taken ("maximum concurrent limit of N ...")?"""
    return "maximum concurrent limit" in str(error)


def _set_pooling(config: wasmtime.Config, plan: PoolPlan) -> None:
    pool = ffi.wasmtime_pooling_allocation_config_new()
    shape = PYTHON_RUNNER
    settings: list[tuple[Callable[[Any, Any], None], int]] = [
        (ffi.wasmtime_pooling_allocation_config_total_component_instances_set, plan.instances),
        (ffi.wasmtime_pooling_allocation_config_max_core_instances_per_component_set, shape.instances),
        (ffi.wasmtime_pooling_allocation_config_total_core_instances_set, plan.instances * shape.instances),
        (ffi.wasmtime_pooling_allocation_config_max_memories_per_component_set, shape.memories),
        (ffi.wasmtime_pooling_allocation_config_max_memories_per_module_set, shape.memories),
        (ffi.wasmtime_pooling_allocation_config_total_memories_set, plan.instances * shape.memories),
        (ffi.wasmtime_pooling_allocation_config_max_tables_per_component_set, shape.tables),
        (ffi.wasmtime_pooling_allocation_config_max_tables_per_module_set, shape.tables),
        (ffi.wasmtime_pooling_allocation_config_total_tables_set, plan.instances * shape.tables),
        (ffi.wasmtime_pooling_allocation_config_table_elements_set, plan.table_elements),
        (ffi.wasmtime_pooling_allocation_config_max_memory_size_set, plan.memory_bytes),
        (ffi.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set, plan.keep_resident_bytes),
        (ffi.wasmtime_pooling_allocation_config_max_unused_warm_slots_set, plan.warm_slots),
    ]
    try:
        for setter, value in settings:
            setter(pool, value)
        ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)  # copies the pool config
    finally:
        ffi.wasmtime_pooling_allocation_config_delete(pool)
