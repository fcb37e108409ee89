"""Hostile payloads for the noisy-neighbour experiment, generated here (never checked-in binaries).

- Zip bombs: a zip whose one ``.wasm`` member is a stream of zeros that expands far beyond its size, with an
  honest header or one that *lies* about the member's size (a reader trusting the header sees a small file of
  zeros; one that inflates the stream sees gigabytes). ``deflate`` tops out near 1:1032 (1 MiB per GiB);
  ``bzip2`` turns ~45 MB of zeros into one ~40-byte block, so a few KB expand to gigabytes. Both are built
  from one compressed segment repeated, in milliseconds.
- WebAssembly modules (WASI preview-1 commands, text assembled by :func:`wasmtime.wat2wasm`): guest memory
  beyond ``limits.memory`` (several memories, a huge table, a ``memory.grow`` loop), a module that is slow to
  compile, and host-call abuse (``poll_oneoff`` with a huge subscription count, ``fd_write`` with a huge iovec
  count). A module that gets past a bound it should have met prints ``{"escaped": true}``: a ``success`` record
  is then the platform's failure, not the attacker's.
- Parameters nested a few hundred levels deep, as JSON text (``json.dumps`` itself stops near 1000 levels).
"""

from __future__ import annotations

import bz2
import functools
import random
import struct
import zlib
from dataclasses import dataclass
from typing import Literal

import wasmtime

ZipMethod = Literal["deflate", "bzip2"]
WASM_PAGE = 65_536
# One bzip2 block of zeros: 45 MB of zeros run-length encode (RLE1, runs of 255) to ~882,000 symbols, under
# the 899,981 a 900k block holds (bzlib.c: nblockMAX = 100000 * 9 - 19), so it compresses to exactly one block.
BZIP2_UNIT = 45_000_000
DEFLATE_UNIT = 1 << 20
_ZIP_METHOD = {"deflate": (8, 20), "bzip2": (12, 46)}  # (compression method, version needed) [APPNOTE 4.4.5]
_MAX_ZIP32 = 0xFFFF_FFFF


@dataclass(frozen=True)
class ZipBomb:
    """A zip archive holding one member of ``expanded`` zero bytes; its header claims ``declared`` bytes."""

    data: bytes
    member: str
    method: ZipMethod
    expanded: int
    declared: int

    @property
    def lies(self) -> bool:
        """The header states fewer bytes than the stream produces."""
        return self.declared < self.expanded


def zip_bomb(
    method: ZipMethod, expanded_at_least: int, *, declared: int | None = None, member: str = "action.wasm"
) -> ZipBomb:
    """A zip with one member of zeros expanding to at least ``expanded_at_least`` bytes (whole units of 1 MiB
    for deflate, 45 MB for bzip2; below 4 GiB, so no ZIP64). ``declared`` makes the header lie: it states that
    size and the CRC of that many zeros, so a reader honouring the header sees a consistent small file."""
    unit = DEFLATE_UNIT if method == "deflate" else BZIP2_UNIT
    count = max(1, -(-expanded_at_least // unit))
    expanded = count * unit
    if expanded > _MAX_ZIP32:
        raise ValueError(f"{expanded} bytes need ZIP64; ask for less than 4 GiB")
    stream = _deflate_zeros(count) if method == "deflate" else _bzip2_zeros(count)
    size = expanded if declared is None else declared
    archive = _zip_one(member, method, stream, crc=_zeros_crc(size), size=size)
    return ZipBomb(archive, member, method, expanded, size)


def multi_memory_module(memories: int, mib_each: int) -> bytes:
    """``memories`` linear memories of ``mib_each`` MiB each (declared as their minimum), every page touched."""
    pages = max(1, mib_each * (1 << 20) // WASM_PAGE)
    declared = " ".join(f"(memory $m{i} {pages})" for i in range(1, memories))
    touches = "".join(f"(call $touch{i} (i32.const 0) (i32.const {pages * WASM_PAGE - 1}))" for i in range(1, memories))
    helpers = "".join(_touch_function(f"$touch{i}", f"$m{i}") for i in range(1, memories))
    return _command(f'(memory $m0 (export "memory") 1) {declared}', f"{touches} {_RESULT}", helpers)


def huge_table_module(elements: int, grow_by: int = 0, grow_times: int = 0) -> bytes:
    """A funcref table of ``elements`` entries (8 bytes each in Wasmtime), grown ``grow_times`` by ``grow_by``."""
    grow = "".join(
        f"(if (i32.eq (table.grow $t (ref.null func) (i32.const {grow_by})) (i32.const -1)) (then unreachable))"
        for _ in range(grow_times)
    )
    return _command(f'(memory (export "memory") 1) (table $t {elements} funcref)', f"{grow} {_RESULT}")


def memory_grow_module(target_mib: int, step_mib: int = 1) -> bytes:
    """``memory.grow`` by ``step_mib`` MiB, touching every new page, until ``target_mib`` MiB are held; a
    refused grow traps (``unreachable``), reaching the target prints the escape."""
    step = max(1, step_mib * (1 << 20) // WASM_PAGE)
    target = target_mib * (1 << 20) // WASM_PAGE
    body = f"""
      (local $old i32)
      (block $held
        (loop $grow
          (br_if $held (i32.ge_u (memory.size) (i32.const {target})))
          (local.set $old (memory.grow (i32.const {step})))
          (if (i32.eq (local.get $old) (i32.const -1)) (then unreachable))
          (call $touch (i32.mul (local.get $old) (i32.const {WASM_PAGE})) (i32.const {step * WASM_PAGE}))
          (br $grow)))
      {_RESULT}"""
    return _command('(memory $m0 (export "memory") 1)', body, _touch_function("$touch", "$m0"))


def slow_compile_module(locals_: int, statements: int, seed: int = 0) -> bytes:
    """One function with ``locals_`` i64 locals all live across a loop of ``statements`` random multiply-adds:
    register allocation in Cranelift grows faster than linearly (measured on this machine with Wasmtime 51:
    1,000 x 20,000 in 0.5 s, 5,000 x 100,000 (1 MB) in 20 s). ``seed`` changes the bytes, so no compiled-module
    cache can answer for it. It runs the loop twice and prints ``{"compiled": true}``: slow to compile is no
    violation in itself, so a ``success`` is a fine outcome."""
    chooser = random.Random(seed)
    pick = functools.partial(chooser.randrange, locals_)
    body = " ".join(
        f"(local.set {pick()} (i64.mul (local.get {pick()}) (local.get {pick()})))" for _ in range(statements)
    )
    tail = "".join(f"(local.set 0 (i64.add (local.get 0) (local.get {i})))" for i in range(1, locals_))
    code = (
        f"(local {' '.join(['i64'] * locals_)}) (local $round i32) (local.set 1 (i64.const {seed + 1}))"
        f"(loop $twice {body} (local.set $round (i32.add (local.get $round) (i32.const 1)))"
        f" (br_if $twice (i32.lt_u (local.get $round) (i32.const 2)))) {tail}"
        f"(i64.store (i32.const 0) (local.get 0)) {_RESULT}"
    )
    return _command('(memory (export "memory") 1)', code, line=b'{"compiled": true}\n')


def poll_oneoff_module(subscriptions: int) -> bytes:
    """Calls ``poll_oneoff`` with ``subscriptions`` zeroed subscriptions (relative realtime clocks of 0 ns: all
    due at once) in a loop until it is stopped; events overwrite the subscriptions (``out`` = ``in`` = 0)."""
    need = subscriptions * 48 + 16
    pages = -(-need // WASM_PAGE)
    body = f"""
      (loop $again
        (drop (call $poll_oneoff (i32.const 0) (i32.const 0) (i32.const {subscriptions}) (i32.const {need - 8})))
        (br $again))"""
    return _command(f'(memory (export "memory") {pages})', body, line=None)


def fd_write_module(iovecs: int, bytes_each: int = WASM_PAGE) -> bytes:
    """Calls ``fd_write`` on stdout with ``iovecs`` iovecs of ``bytes_each`` bytes each (all over the same zeros;
    4,000,000 x 64 KiB asks for 244 GiB in one call) in a loop until it is stopped."""
    table = iovecs * 8
    pages = -(-(table + bytes_each + 16) // WASM_PAGE)
    body = f"""
      (local $at i32)
      (block $filled
        (loop $fill
          (br_if $filled (i32.ge_u (local.get $at) (i32.const {table})))
          (i32.store (local.get $at) (i32.const {table + 16}))
          (i32.store offset=4 (local.get $at) (i32.const {bytes_each}))
          (local.set $at (i32.add (local.get $at) (i32.const 8)))
          (br $fill)))
      (loop $again
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const {iovecs}) (i32.const {table + 8})))
        (br $again))"""
    return _command(f'(memory (export "memory") {pages})', body, line=None)


def nested_parameters(depth: int, key: str = "n") -> bytes:
    """The JSON text of an object nested ``depth`` levels: ``{"n":{"n":...{"n":0}...}}``."""
    return (f'{{"{key}":' * depth + "0" + "}" * depth).encode()


# helpers ------------------------------------------------------------------------------------------------

_IMPORTS = """
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))"""
# The result line (``{"escaped": true}`` unless told otherwise) is a data segment near the end of memory 0's
# first page, its iovec just after it; _RESULT writes it to stdout.
ESCAPED = b'{"escaped": true}\n'
_LINE_AT = WASM_PAGE - 64
_IOVEC_AT = WASM_PAGE - 24
_RESULT = f"(drop (call $fd_write (i32.const 1) (i32.const {_IOVEC_AT}) (i32.const 1) (i32.const {_IOVEC_AT + 8})))"


def _command(memories: str, start_body: str, helpers: str = "", line: bytes | None = ESCAPED) -> bytes:
    data = ""
    if line is not None:  # (the host-call modules keep their memory all zeros)
        if len(line) > _IOVEC_AT - _LINE_AT:
            raise ValueError("the result line is too long")
        iovec = struct.pack("<II", _LINE_AT, len(line))
        data = (
            f' (data (memory 0) (i32.const {_LINE_AT}) "{_wat_bytes(line)}")'
            f' (data (memory 0) (i32.const {_IOVEC_AT}) "{_wat_bytes(iovec)}")'
        )
    text = f'(module {_IMPORTS} {memories}{data} (func (export "_start") {start_body}) {helpers})'
    return bytes(wasmtime.wat2wasm(text))


def _wat_bytes(data: bytes) -> str:
    return "".join(f"\\{byte:02x}" for byte in data)


def _touch_function(name: str, memory: str) -> str:
    # One store per 4 KiB page makes the host commit the memory (RSS), not just reserve it.
    return f"""
      (func {name} (param $at i32) (param $len i32) (local $end i32)
        (local.set $end (i32.add (local.get $at) (local.get $len)))
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $at) (local.get $end)))
            (i32.store8 {memory} (local.get $at) (i32.const 1))
            (local.set $at (i32.add (local.get $at) (i32.const 4096)))
            (br $next))))"""


def _deflate_zeros(units: int) -> bytes:
    # A full flush ends a segment on a byte boundary with an empty dictionary, so copies of one segment
    # concatenate into a valid raw deflate stream; a final empty block (03 00) ends it.
    return _deflate_segment() * units + b"\x03\x00"


@functools.cache
def _deflate_segment() -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(bytes(DEFLATE_UNIT)) + compressor.flush(zlib.Z_FULL_FLUSH)


def _bzip2_zeros(units: int) -> bytes:
    # Blocks are self-contained (RLE1 and the BWT restart per block) and bit-aligned: repeat one block's bits,
    # then the end-of-stream magic and the combined CRC (rotate left by one, xor the block's CRC, per block).
    header, block_bits, block_crc = _bzip2_block()
    combined = 0
    for _ in range(units):
        combined = (((combined << 1) | (combined >> 31)) & 0xFFFF_FFFF) ^ block_crc
    bits = block_bits * units + f"{0x177245385090:048b}" + f"{combined:032b}"
    bits += "0" * (-len(bits) % 8)
    return header + int(bits, 2).to_bytes(len(bits) // 8, "big")


@functools.cache
def _bzip2_block() -> tuple[bytes, str, int]:
    stream = bz2.compress(bytes(BZIP2_UNIT), 9)
    bits = f"{int.from_bytes(stream[4:], 'big'):0{(len(stream) - 4) * 8}b}"
    end = bits.rfind(f"{0x177245385090:048b}")
    if not bits.startswith(f"{0x314159265359:048b}") or end < 0 or bits.count(f"{0x314159265359:048b}") != 1:
        raise RuntimeError("unexpected bzip2 stream layout")
    return stream[:4], bits[:end], int(bits[48:80], 2)


def _zeros_crc(size: int) -> int:
    crc, chunk = 0, bytes(1 << 24)
    while size > 0:
        crc = zlib.crc32(chunk[: min(size, len(chunk))], crc)
        size -= len(chunk)
    return crc


def _zip_one(name: str, method: ZipMethod, stream: bytes, *, crc: int, size: int) -> bytes:
    code, version = _ZIP_METHOD[method]
    encoded = name.encode()
    common = struct.pack("<HHHHHIIIH", version, 0, code, 0, 0x21, crc, len(stream), size, len(encoded))
    local = struct.pack("<I", 0x04034B50) + common + struct.pack("<H", 0) + encoded
    central = struct.pack("<IH", 0x02014B50, version) + common + struct.pack("<HHHHII", 0, 0, 0, 0, 0, 0) + encoded
    offset = len(local) + len(stream)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), offset, 0)
    return local + stream + central + end
