"""Reading one member of an action's zip with a byte budget: a zip bomb is refused before it is paid for.

``zipfile`` trusts what an archive says about itself: ``file_size`` is the archive's claim, and
``ZipExtFile`` inflates bzip2 and LZMA members a whole compressed read at a time (4 KiB of bzip2 can
hold gigabytes of zeros: 100 MiB of zeros compress to 113 bytes). So the archive's central directory is
read by ``zipfile`` (its size is bounded by the upload), but the member's data is decompressed here,
from its raw bytes, by decompressors asked for at most ``CHUNK`` bytes at a time, counting what they
actually produce: the budget holds whatever the headers say and whatever the method (stored, deflate,
bzip2, LZMA), and the CRC is checked at the end. A member is refused as soon as it produces more than
its header claims, so what a bomb costs is the smaller of its claim and the budget. Nested archives are
never opened: a member is bytes.
"""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import Protocol

CHUNK = 64 * 1024
# What zipfile builds per central-directory entry is ~1 KB of Python objects, against ~50 bytes of
# archive: an archive of a million empty members would cost a gigabyte just to list, so count first.
MAX_MEMBERS = 1024
_CENTRAL_ENTRY = b"PK\x01\x02"
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, (version .. sizes), name length, extra length
_LOCAL_SIGNATURE = b"PK\x03\x04"
_END_RECORD = struct.Struct("<4s4H2LH")  # APPNOTE 4.3.16: signature .. central directory size, offset; comment length
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_MAX_COMMENT = 0xFFFF


class ZipRefused(Exception):
    """The archive is malformed, unsupported or larger than the budget; the message says why, in one line."""


class BadZip(ZipRefused):
    """The bytes are not a well-formed zip archive."""


def read_member(data: bytes, choose: Callable[[list[zipfile.ZipInfo]], zipfile.ZipInfo], max_bytes: int) -> bytes:
    """The bytes of the member ``choose`` picks from the archive's files, at most ``max_bytes`` of them.

    ``choose`` sees the file members (directories left out) and raises :class:`ZipRefused` to refuse
    the archive. Raises :class:`ZipRefused` for a bad archive, a member that decompresses to more than
    ``max_bytes`` (whatever its header says), an encrypted member or an unsupported method.
    """
    if data.count(_CENTRAL_ENTRY, *_central_directory(data)) > MAX_MEMBERS:
        raise ZipRefused(f"the zip holds more than {MAX_MEMBERS} entries")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            member = choose([info for info in archive.infolist() if not info.is_dir()])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, OSError) as error:
        raise BadZip(f"bad zip archive ({error})") from None
    if member.file_size > max_bytes:  # a claim can be believed when it refuses, never when it accepts
        raise ZipRefused(f"{member.filename} is larger than {max_bytes} bytes")
    if member.flag_bits & 0x1:
        raise ZipRefused(f"{member.filename} is encrypted")
    raw = _raw_data(data, member)
    inflate = _decompressor(member.compress_type, raw, member.filename, max_bytes)
    out = io.BytesIO()
    crc = 0
    try:
        while chunk := inflate.read(CHUNK):
            if out.tell() + len(chunk) > max_bytes:
                raise ZipRefused(f"{member.filename} is larger than {max_bytes} bytes")
            if out.tell() + len(chunk) > member.file_size:  # zipfile would call it corrupt too
                raise BadZip(f"bad zip archive ({member.filename} is larger than its header says)")
            crc = zlib.crc32(chunk, crc)
            out.write(chunk)
    except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError) as error:
        raise BadZip(f"bad zip archive ({member.filename}: {error})") from None
    # Also what catches a truncated stream: the decoder ran out of input early.
    if out.tell() != member.file_size:
        raise BadZip(f"bad zip archive ({member.filename} is shorter than its header says)")
    if crc != member.CRC:
        raise BadZip(f"bad zip archive (bad CRC-32 for {member.filename})")
    return out.getvalue()


def _central_directory(data: bytes) -> tuple[int, int]:
    """Where the bytes ``zipfile`` will parse as the central directory start and end (every entry it
    builds starts with its signature there), or the whole archive when that is not simple to tell
    (ZIP64, no end record).

    Found as ``zipfile._EndRecData`` finds it: the end record last, or the last one in the final 64 KiB
    (a comment). Counting entries only there saves a pass over the members' data (a 1 MB bomb: ~1 ms
    holding the GIL); counting over more than zipfile reads only refuses sooner.
    """
    at = len(data) - _END_RECORD.size
    if not (at >= 0 and data.startswith(_END_SIGNATURE, at) and data.endswith(b"\x00\x00")):
        at = data.rfind(_END_SIGNATURE, max(len(data) - _MAX_COMMENT - _END_RECORD.size, 0))
    if at < 0 or at + _END_RECORD.size > len(data) or data.startswith(_ZIP64_LOCATOR, max(at - 20, 0)):
        return 0, len(data)
    size = int(_END_RECORD.unpack_from(data, at)[5])
    if size > at:  # zipfile refuses it ("Bad offset for central directory")
        return 0, len(data)
    return at - size, at


class _Member(Protocol):
    def read(self, max_length: int) -> bytes:
        """At most ``max_length`` more bytes of the member; b"" at its end."""
        ...


def _raw_data(data: bytes, member: zipfile.ZipInfo) -> memoryview:
    """The member's compressed bytes, located through its local header (as zipfile does)."""
    at = member.header_offset
    if at < 0 or at + _LOCAL_HEADER.size > len(data):
        raise BadZip(f"bad zip archive ({member.filename}: local header out of range)")
    signature, name_length, extra_length = _LOCAL_HEADER.unpack_from(data, at)
    if signature != _LOCAL_SIGNATURE:
        raise BadZip(f"bad zip archive ({member.filename}: bad local header)")
    start = at + _LOCAL_HEADER.size + name_length + extra_length
    end = start + member.compress_size
    if end > len(data):
        raise BadZip(f"bad zip archive ({member.filename} is truncated)")
    return memoryview(data)[start:end]


def _decompressor(method: int, raw: memoryview, name: str, max_bytes: int) -> _Member:
    if method == zipfile.ZIP_STORED:
        return _Stored(raw)
    if method == zipfile.ZIP_DEFLATED:
        return _Inflate(raw)
    if method == zipfile.ZIP_BZIP2:
        return _Buffered(bz2.BZ2Decompressor(), raw)
    if method == zipfile.ZIP_LZMA:
        return _Buffered(_lzma_decompressor(raw, name, max_bytes), raw[4 + _lzma_props_size(raw, name) :])
    raise ZipRefused(f"{name} uses an unsupported compression method ({method})")


class _Stored:
    """A stored member: its bytes, a chunk at a time."""

    def __init__(self, raw: memoryview) -> None:
        self.raw, self.at = raw, 0

    def read(self, max_length: int) -> bytes:
        chunk = bytes(self.raw[self.at : self.at + max_length])
        self.at += len(chunk)
        return chunk


class _Inflate:
    """A deflated member: zlib keeps what it did not consume in ``unconsumed_tail``."""

    def __init__(self, raw: memoryview) -> None:
        self.engine = zlib.decompressobj(-zlib.MAX_WBITS)
        self.pending: bytes | memoryview = raw

    def read(self, max_length: int) -> bytes:
        if self.engine.eof:
            return b""
        chunk = self.engine.decompress(self.pending, max_length)
        self.pending = self.engine.unconsumed_tail
        return chunk


class _Buffered:
    """A bzip2 or LZMA member: those decompressors buffer their input, so feed it once, then drain."""

    def __init__(self, engine: bz2.BZ2Decompressor | lzma.LZMADecompressor, raw: memoryview) -> None:
        self.engine = engine
        self.pending: bytes | memoryview = raw

    def read(self, max_length: int) -> bytes:
        if self.engine.eof:
            return b""
        pending, self.pending = self.pending, b""
        # b"" when the input is used up, with or without an end marker (zip LZMA may have none).
        return self.engine.decompress(pending, max_length)


def _lzma_props_size(raw: memoryview, name: str) -> int:
    if len(raw) < 4:
        raise BadZip(f"bad zip archive ({name}: truncated LZMA header)")
    (size,) = struct.unpack_from("<H", raw, 2)
    return int(size)


def _lzma_decompressor(raw: memoryview, name: str, max_bytes: int) -> lzma.LZMADecompressor:
    """The raw LZMA1 decoder for a zip member (APPNOTE 5.8.8: version, props size, props).

    The properties name the dictionary size, which the decoder allocates: a hostile header asks for
    4 GiB. A dictionary never needs to be larger than the data, so it is capped at the budget.
    """
    size = _lzma_props_size(raw, name)
    if size != 5 or len(raw) < 9:
        raise BadZip(f"bad zip archive ({name}: bad LZMA properties)")
    props = raw[4]
    lc, rest = props % 9, props // 9
    lp, pb = rest % 5, rest // 5
    if pb > 4:
        raise BadZip(f"bad zip archive ({name}: bad LZMA properties)")
    (dict_size,) = struct.unpack_from("<I", raw, 5)
    dict_size = min(max(dict_size, 4096), max(max_bytes, 4096))
    filters = [{"id": lzma.FILTER_LZMA1, "lc": lc, "lp": lp, "pb": pb, "dict_size": dict_size}]
    try:
        return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters)
    except (lzma.LZMAError, ValueError) as error:
        raise BadZip(f"bad zip archive ({name}: {error})") from None
