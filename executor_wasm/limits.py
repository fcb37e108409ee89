"""All of a guest's memory under the action's ``limits.memory``: Wasmtime store limits, split by kind of memory.

``Store.set_limits(memory_size=...)`` bounds each linear memory on its own, so a module declaring
several memories (multi-memory is on in Wasmtime) or big tables could hold many times its limit. So
every store gets all of Wasmtime's static limits (``wasmtime_store_limiter``): a number of instances,
memories and tables that fits what runs in it, a size per linear memory, and elements per table, such
that the sum stays under the limit:

- linear memory: ``memories`` of at most ``limit - table budget`` bytes in all (one memory for a
  ``wasm:wasi`` module, which is what every toolchain emits);
- tables: ``TABLE_SHARE`` of the limit, split between ``tables`` tables at ``TABLE_ELEMENT_BYTES``
  an element (a funcref is a pointer in Wasmtime; 16 bytes leaves room for the lazy-init bits).

A module beyond these counts fails to instantiate ("resource limit exceeded: memory count too high"),
a declared minimum beyond the sizes likewise ("exceeds memory limits" / "exceeds table limits"), and a
``memory.grow``/``table.grow`` past them returns -1 to the guest: runner.py answers all of them as
OpenWhisk's "The action exhausted its memory and was aborted.".
"""

from __future__ import annotations

from dataclasses import dataclass

import wasmtime

TABLE_ELEMENT_BYTES = 16
TABLE_SHARE = 16  # tables get 1/16 of the limit, linear memory the other 15/16


@dataclass(frozen=True, slots=True)
class GuestShape:
    """How many instances, linear memories and tables one store may hold."""

    instances: int
    memories: int
    tables: int


# A wasm:wasi command: one core instance (WASI is host functions, not instances), one memory, and a few
# tables (toolchains emit one; reference types allow more).
MODULE = GuestShape(instances=1, memories=1, tables=4)
# The Python runner component (python/build.py): 14 core instances and 2 tables measured with
# componentize-py 0.25 (one memory); the counts leave room for a rebuild, the budget is the same.
PYTHON_RUNNER = GuestShape(instances=32, memories=1, tables=8)


@dataclass(frozen=True, slots=True)
class GuestBudget:
    """The store limits for one action's memory limit and guest shape."""

    memory_bytes: int  # per linear memory
    table_elements: int  # per table
    shape: GuestShape

    @classmethod
    def of(cls, limit_bytes: int, shape: GuestShape) -> GuestBudget:
        """Split ``limit_bytes`` between the linear memories and the tables of ``shape``."""
        tables_bytes = limit_bytes // TABLE_SHARE
        memory_bytes = (limit_bytes - tables_bytes) // shape.memories
        table_elements = tables_bytes // (shape.tables * TABLE_ELEMENT_BYTES)
        return cls(memory_bytes, table_elements, shape)

    def apply(self, store: wasmtime.Store) -> None:
        """Set the store's limits (before anything is instantiated in it)."""
        store.set_limits(
            memory_size=self.memory_bytes,
            table_elements=self.table_elements,
            instances=self.shape.instances,
            tables=self.shape.tables,
            memories=self.shape.memories,
        )


def is_limit_error(error: Exception) -> bool:
    """Is this instantiation error a store limit refusing the module (its memory, not its code)?"""
    message = str(error)
    return (
        "exceeds memory limits" in message or "exceeds table limits" in message or "resource limit exceeded" in message
    )
