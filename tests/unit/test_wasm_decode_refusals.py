"""``decode_module`` remembers what it refused (executor_wasm/executor.py): a tenant re-sending one zip bomb
in each new revision of an action pays the base64 decode and the archive's parse once, not per revision."""

from __future__ import annotations

import base64
import re

import pytest

import executor_wasm.executor as executor
from executor_wasm.cache import InvalidModule
from executor_wasm.executor import decode_module
from tests import hostile

pytestmark = pytest.mark.unit

BUDGET = 1_048_576


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the codes base64-decoded from here on, with a fresh memory of refusals."""
    seen: list[int] = []
    decode = base64.b64decode

    def counting(code: str, validate: bool) -> bytes:
        seen.append(len(code))
        return decode(code, validate=validate)

    monkeypatch.setattr(base64, "b64decode", counting)
    monkeypatch.setattr(executor, "_REFUSED", executor._Refusals(2))
    return seen


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_a_refused_code_is_refused_again_without_decoding_it(decodes: list[int]) -> None:
    bomb = b64(hostile.zip_bomb("deflate", 8 * BUDGET, declared_size=1_000))
    for _ in range(3):
        with pytest.raises(InvalidModule, match="larger than its header says"):
            decode_module(bomb, BUDGET)
    assert decodes == [len(bomb)]


def test_the_memory_is_per_budget_and_bounded_and_never_keeps_an_accepted_module(decodes: list[int]) -> None:
    module = b"\0asm\x01\0\0\0" + bytes(2 * BUDGET)
    code = b64(module)
    with pytest.raises(InvalidModule, match=f"larger than {BUDGET} bytes"):
        decode_module(code, BUDGET)
    assert decode_module(code, 4 * BUDGET) == module  # a larger budget decides afresh
    assert decode_module(code, 4 * BUDGET) == module
    for other in ("not base64!", "still not base64!"):  # two more refusals push the first one out
        with pytest.raises(InvalidModule, match="not valid base64"):
            decode_module(other, BUDGET)
    with pytest.raises(InvalidModule, match=re.escape(f"larger than {BUDGET} bytes")):
        decode_module(code, BUDGET)
    assert decodes == [len(code)] * 3 + [len("notbase64!"), len("stillnotbase64!"), len(code)]


@pytest.mark.parametrize("space", [" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\u00a0", "\u2028"])
def test_whitespace_in_the_base64_is_still_dropped(space: str, decodes: list[int]) -> None:
    module = b"\0asm\x01\0\0\0"
    encoded = b64(module)
    assert decode_module(encoded[:4] + space + encoded[4:] + space) == module
