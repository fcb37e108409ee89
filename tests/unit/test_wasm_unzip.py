"""The bounded unzip of action code (executor_wasm/unzip.py), the guest memory budget (limits.py) and the
Python-on-WASM source decoding: bombs of every compression method are refused at the budget, whatever
their headers claim, and well-formed archives still open."""

from __future__ import annotations

import base64
import io
import zipfile

import pytest

from executor_wasm.limits import MODULE, PYTHON_RUNNER, TABLE_ELEMENT_BYTES, GuestBudget
from executor_wasm.python.executor import MAX_SOURCE_BYTES, decode_source
from executor_wasm.unzip import MAX_MEMBERS, BadZip, ZipRefused, read_member
from tests import hostile

pytestmark = pytest.mark.unit

BUDGET = 1_048_576


def only(members: list[zipfile.ZipInfo]) -> zipfile.ZipInfo:
    assert len(members) == 1, members
    return members[0]


@pytest.mark.parametrize("method", sorted(hostile.METHODS))
def test_an_honest_member_within_the_budget_opens_with_every_method(method: str) -> None:
    data = hostile.zip_bomb(method, BUDGET, declared_size=None)

    assert read_member(data, only, BUDGET) == bytes(BUDGET)


@pytest.mark.parametrize("method", sorted(hostile.METHODS))
def test_a_bomb_with_honest_headers_is_refused_at_the_budget(method: str) -> None:
    data = hostile.zip_bomb(method, 8 * BUDGET, declared_size=None)

    with pytest.raises(ZipRefused, match=f"bomb.wasm is larger than {BUDGET} bytes"):
        read_member(data, only, BUDGET)


@pytest.mark.parametrize("method", sorted(hostile.METHODS))
def test_a_bomb_with_a_lying_header_is_refused_after_the_bytes_it_claimed(method: str) -> None:
    data = hostile.zip_bomb(method, 8 * BUDGET, declared_size=1_000)

    with pytest.raises(BadZip, match="larger than its header says"):
        read_member(data, only, BUDGET)


def test_a_member_shorter_than_its_header_or_corrupted_is_a_bad_zip() -> None:
    data = bytearray(hostile.zip_bomb("deflate", 10_000, declared_size=None))
    hostile.lie_about_size(data, 20_000)
    with pytest.raises(BadZip, match="shorter than its header says"):
        read_member(bytes(data), only, BUDGET)
    data = bytearray(hostile.zip_bomb("stored", 10_000, declared_size=None))
    data[100] ^= 0xFF  # a byte of the stored member
    with pytest.raises(BadZip, match="bad CRC-32"):
        read_member(bytes(data), only, BUDGET)


def test_an_archive_of_many_members_is_refused_before_zipfile_lists_it() -> None:
    with pytest.raises(ZipRefused, match=f"more than {MAX_MEMBERS} entries"):
        read_member(hostile.many_members(MAX_MEMBERS + 1), only, BUDGET)


def test_encrypted_and_unsupported_members_are_refused() -> None:
    data = bytearray(hostile.zip_bomb("stored", 100, declared_size=None))
    data[6] |= 0x1  # the local header's flag (zipfile reads the central one)
    central = bytes(data).rfind(b"PK\x01\x02")
    data[central + 8] |= 0x1
    with pytest.raises(ZipRefused, match="encrypted"):
        read_member(bytes(data), only, BUDGET)
    data = bytearray(hostile.zip_bomb("stored", 100, declared_size=None))
    central = bytes(data).rfind(b"PK\x01\x02")
    data[central + 10] = 9  # Deflate64
    with pytest.raises(ZipRefused, match=r"unsupported compression method \(9\)"):
        read_member(bytes(data), only, BUDGET)


def test_garbage_is_a_bad_zip() -> None:
    with pytest.raises(BadZip):
        read_member(b"PK\x03\x04 not really", only, BUDGET)


def test_python_source_in_a_zip_bomb_is_refused_with_the_init_message() -> None:
    bomb = hostile.zip_bomb("bzip2", MAX_SOURCE_BYTES + 1, name="__main__.py", declared_size=None)

    with pytest.raises(
        ValueError, match=f"Cannot initialize the action: __main__.py is larger than {MAX_SOURCE_BYTES}"
    ):
        decode_source(base64.b64encode(bomb).decode(), binary=True)


def test_python_source_in_a_small_zip_still_opens() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_LZMA) as archive:
        archive.writestr("__main__.py", "def main(args):\n    return args\n")

    assert decode_source(base64.b64encode(buffer.getvalue()).decode(), binary=True).startswith("def main")


@pytest.mark.parametrize("limit_mb", [1, 16, 128, 512])
def test_every_guest_memory_together_stays_under_the_limit(limit_mb: int) -> None:
    limit = limit_mb * 1_048_576
    for shape in (MODULE, PYTHON_RUNNER):
        budget = GuestBudget.of(limit, shape)
        linear = budget.memory_bytes * shape.memories
        tables = budget.table_elements * shape.tables * TABLE_ELEMENT_BYTES
        assert linear + tables <= limit
        assert linear >= limit * 15 // 16 - 65_536  # an ordinary module keeps almost all of its limit


def test_member_signatures_inside_a_members_data_are_not_counted_as_entries() -> None:
    # Only the central directory is counted: a module whose bytes happen to hold the central entry's
    # signature many times is one member, not thousands.
    module = b"\0asm\x01\0\0\0" + b"PK\x01\x02" * (2 * MAX_MEMBERS)
    for comment in (b"", b"a comment, so the end record is not last"):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("action.wasm", module)
            archive.comment = comment
        assert read_member(buffer.getvalue(), only, BUDGET) == module


def test_many_members_are_refused_with_a_comment_or_junk_after_the_archive() -> None:
    many = hostile.many_members(MAX_MEMBERS + 1)
    with_comment = bytearray(many)
    with_comment[-2:] = (5).to_bytes(2, "little")  # the end record's comment length
    for data in (bytes(with_comment) + b"hello", b"junk ahead" + many):
        with pytest.raises(ZipRefused, match=f"more than {MAX_MEMBERS} entries"):
            read_member(data, only, BUDGET)
    with pytest.raises(ZipRefused):  # an end record zipfile cannot use: counted over the whole archive
        read_member(many + b"PK\x05\x06", only, BUDGET)
