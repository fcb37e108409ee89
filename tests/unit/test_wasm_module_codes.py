"""The module cache's memory of ``exec.code`` strings (executor_wasm/cache.py ``known``/``remember_code``): a new
instance of a loaded action skips the decode and the digests, bounded by characters, and never outlives its module.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import wasmtime

from executor_wasm.cache import CODE_CHARS_EACH, ModuleCache, compile_artifact, create_engine

pytestmark = pytest.mark.unit


def loaded(cache: ModuleCache, name: str) -> tuple[str, str]:
    """A WASI command module, compiled and loaded into ``cache``: its exec.code (base64) and digest."""
    wasm = bytes(wasmtime.wat2wasm(f'(module (func (export "_start")) (func (export "{name}")))'))
    digest, _ = cache.lookup(wasm)
    compile_artifact(cache.engine, wasm, cache.artifact_path(digest))
    assert cache.adopt(digest).digest == digest
    return base64.b64encode(wasm).decode(), digest


def new_cache(tmp_path: Path, capacity: int = 8, code_chars: int = 1 << 20) -> ModuleCache:
    engine = create_engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    return ModuleCache(engine, linker, tmp_path, capacity=capacity, code_chars=code_chars)


def test_a_remembered_code_finds_its_module_by_content(tmp_path: Path) -> None:
    cache = new_cache(tmp_path)
    code, digest = loaded(cache, "a")
    assert cache.known(code) is None, "nothing is known before it is remembered"
    cache.remember_code(code, digest)
    hit = cache.known("".join([code[:10], code[10:]]))  # an equal string, not the same object
    assert hit is not None and hit.digest == digest


def test_codes_are_forgotten_oldest_first_past_their_character_budget(tmp_path: Path) -> None:
    probe = new_cache(tmp_path)
    first, first_digest = loaded(probe, "a")
    second, second_digest = loaded(probe, "b")
    cache = new_cache(tmp_path, code_chars=len(first) + len(second) - 1)  # their artifacts; room for one code
    for code, digest in ((first, first_digest), (second, second_digest)):
        assert cache.lookup(base64.b64decode(code))[1] is not None  # loaded from its artifact
        cache.remember_code(code, digest)
    assert cache.known(first) is None, "the oldest code left to fit the budget"
    assert cache.known(second) is not None


def test_a_code_whose_module_was_evicted_is_not_known(tmp_path: Path) -> None:
    cache = new_cache(tmp_path, capacity=1)
    code, digest = loaded(cache, "a")
    cache.remember_code(code, digest)
    loaded(cache, "b")  # capacity 1: evicts the first module
    assert cache.known(code) is None


def test_a_code_longer_than_the_limit_is_never_remembered(tmp_path: Path) -> None:
    cache = new_cache(tmp_path, code_chars=4 * CODE_CHARS_EACH)
    code, digest = loaded(cache, "a")
    long_code = code + " " * CODE_CHARS_EACH  # decodes to the same module (whitespace is dropped)
    cache.remember_code(long_code, digest)
    assert cache.known(long_code) is None
