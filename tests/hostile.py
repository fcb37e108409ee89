"""Hostile action code, generated (never checked in): zip bombs, and WAT modules that abuse limits or host calls.

Shared by the unit tests of the bounded unzip (tests/unit/test_wasm_unzip.py) and the integration tests
against real Wasmtime (tests/integration/test_wasm_hostile.py, test_wasm_fuzz.py).
"""

from __future__ import annotations

import functools
import io
import struct
import zipfile

METHODS = {
    "stored": zipfile.ZIP_STORED,
    "deflate": zipfile.ZIP_DEFLATED,
    "bzip2": zipfile.ZIP_BZIP2,
    "lzma": zipfile.ZIP_LZMA,
}
_EOCD = struct.Struct("<4s4H2LH")
_ZEROS = bytes(1_048_576)


@functools.cache
def zip_bomb(method: str, size: int, name: str = "bomb.wasm", declared_size: int | None = 1_000) -> bytes:
    """A zip whose one member ``name`` inflates to ``size`` zero bytes, its headers claiming ``declared_size``.

    Written a megabyte at a time, so building a gigabyte bomb never holds a gigabyte here.
    ``declared_size=None`` keeps the honest sizes.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", METHODS[method]) as archive, archive.open(name, "w") as member:
        left = size
        while left > 0:
            member.write(_ZEROS[: min(left, len(_ZEROS))])
            left -= len(_ZEROS)
    data = bytearray(buffer.getvalue())
    if declared_size is not None:
        lie_about_size(data, declared_size)
    return bytes(data)


def lie_about_size(data: bytearray, declared_size: int) -> None:
    """Make every header of a one-member zip (no comment, no zip64) claim ``declared_size`` bytes."""
    _, _, _, _, _, _, cd_offset, _ = _EOCD.unpack_from(data, len(data) - _EOCD.size)
    struct.pack_into("<L", data, cd_offset + 24, declared_size)  # central directory: uncompressed size
    (header_offset,) = struct.unpack_from("<L", data, cd_offset + 42)
    struct.pack_into("<L", data, header_offset + 22, declared_size)  # local header: uncompressed size


def many_members(count: int, name: str = "main.wasm") -> bytes:
    """A stored zip of ``count`` empty members plus one named ``name`` (also empty)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for index in range(count):
            archive.writestr(f"f{index}", b"")
        archive.writestr(name, b"")
    return buffer.getvalue()


def nested_zip(levels: int, payload: bytes, name: str = "bomb.wasm") -> bytes:
    """``payload`` zipped ``levels`` times, every level's member named ``name``."""
    data = payload
    for _ in range(levels):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(name, data)
        data = buffer.getvalue()
    return data


# --- WAT modules ---------------------------------------------------------------------------------

WASI = "wasi_snapshot_preview1"


def multi_memory(count: int, pages: int) -> str:
    """A command with ``count`` memories of ``pages`` pages each, every one of them touched."""
    memories = "".join(f"(memory $m{i} {pages})" for i in range(count))
    touches = "".join(f"(i32.store8 $m{i} (i32.const {pages * 65536 - 1}) (i32.const 1))" for i in range(count))
    return f'(module {memories} (func (export "_start") {touches}))'


def growing_memories(count: int) -> str:
    """``count`` memories, each grown page by page until refused, then a trap (an abort after a failed malloc)."""
    memories = '(memory $m0 (export "memory") 1)' + "".join(f"(memory $m{i} 1)" for i in range(1, count))
    grows = "".join(
        f"(block $done{i} (loop $grow{i} (br_if $done{i} (i32.eq (memory.grow $m{i} (i32.const 16)) (i32.const -1)))"
        f" (br $grow{i})))"
        for i in range(count)
    )
    return f'(module {memories} (func (export "_start") {grows} unreachable))'


def big_table(elements: int) -> str:
    """A command declaring a funcref table of ``elements`` elements."""
    return f'(module (table {elements} funcref) (func (export "_start")))'


def growing_table() -> str:
    """A table grown by a million elements at a time until refused, then a trap."""
    return (
        '(module (table 1 funcref) (func (export "_start")'
        " (block $done (loop $grow"
        " (br_if $done (i32.eq (table.grow 0 (ref.null func) (i32.const 1000000)) (i32.const -1)))"
        " (br $grow))) unreachable))"
    )


def many_tables(count: int) -> str:
    """A command with ``count`` small tables."""
    tables = "".join(f"(table {10} funcref)" for _ in range(count))
    return f'(module {tables} (func (export "_start")))'


def slow_to_compile(functions: int = 3000, ops: int = 200) -> str:
    """A valid command that Cranelift takes seconds to compile: many big functions with many locals."""
    body = "(local.get 0) " + "(i32.const 7) (i32.mul) (local.get 1) (i32.add) (local.tee 1) " * ops
    locals_ = "(local i32 i32 i32 i32 i32 i32 i32 i32)"
    funcs = "".join(f'(func (export "f{i}") (param i32) (result i32) {locals_} {body})' for i in range(functions))
    return f'(module {funcs} (func (export "_start")))'


def poll_oneoff(count: int, subscriptions_at: int = 0) -> str:
    """A command calling ``poll_oneoff`` with ``count`` subscriptions, then exiting with the errno it got."""
    return (
        f'(module (import "{WASI}" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))'
        f' (import "{WASI}" "proc_exit" (func $exit (param i32)))'
        ' (memory (export "memory") 1)'
        f' (func (export "_start") (call $exit (call $poll (i32.const {subscriptions_at}) (i32.const 0)'
        f" (i32.const {count}) (i32.const 1024)))))"
    )


def fd_write(iovecs: int, length: int) -> str:
    """A command writing ``iovecs`` iovecs of ``length`` bytes each (all the same buffer) to stdout, in a loop."""
    return (
        f'(module (import "{WASI}" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))'
        ' (memory (export "memory") 16)'
        ' (func (export "_start") (local $i i32)'
        f" (local.set $i (i32.const 0))"
        f" (block $done (loop $fill (br_if $done (i32.ge_u (local.get $i) (i32.const {min(iovecs, 4096)})))"
        "   (i32.store (i32.add (i32.const 4096) (i32.shl (local.get $i) (i32.const 3))) (i32.const 0))"
        f"   (i32.store (i32.add (i32.const 4100) (i32.shl (local.get $i) (i32.const 3))) (i32.const {length}))"
        "   (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $fill)))"
        f" (loop $again (drop (call $write (i32.const 1) (i32.const 4096) (i32.const {iovecs}) (i32.const 0)))"
        " (br $again))))"
    )


def random_get(length: int) -> str:
    """A command filling ``length`` bytes of its memory with random bytes, forever."""
    pages = max(1, -(-length // 65536))
    return (
        f'(module (import "{WASI}" "random_get" (func $random (param i32 i32) (result i32)))'
        f' (memory (export "memory") {pages})'
        f' (func (export "_start") (loop $again (drop (call $random (i32.const 0) (i32.const {length})))'
        " (br $again))))"
    )


def http_get_loop() -> str:
    """A command calling WoW's ``http.get`` (a 300 ms host block) forever."""
    return (
        '(module (import "http" "get" (func $get (result i32)))'
        ' (func (export "_start") (loop $again (drop (call $get)) (br $again))))'
    )
