"""httpcore asks which event loop runs on every HTTP request (the CouchDB store's and the executor service's
client): that must be an attribute lookup, not a failed import that searches ``sys.path`` each time (sniffio is
a dependency for this reason: pyproject.toml)."""

from __future__ import annotations

import asyncio
import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

import pytest
from httpcore._synchronization import current_async_library

pytestmark = pytest.mark.unit


class _Recorder(importlib.abc.MetaPathFinder):
    """Notes every module the import system searches for; finds nothing itself."""

    def __init__(self) -> None:
        self.searched: list[str] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        self.searched.append(fullname)
        return None


def test_asking_for_the_event_loop_searches_for_no_module() -> None:
    recorder = _Recorder()

    async def ask() -> str:
        current_async_library()  # the first call may import what it needs once
        sys.meta_path.insert(0, recorder)
        try:
            return current_async_library()
        finally:
            sys.meta_path.remove(recorder)

    assert asyncio.run(ask()) == "asyncio"
    assert recorder.searched == []
