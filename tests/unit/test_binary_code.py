"""``is_binary_code`` keeps CPython's strict base64 rules exactly, however it checks them (issue 12, zipbomb).

The check runs on the event loop for every action PUT, over up to 48 MB of code; it is not
``b64decode(validate=True)`` any more but must answer as that did, character for character. The reference
below is the rule as it was written before: the exhaustive and random comparisons fail on any difference.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import random

import pytest

from pywhisk.entities import is_binary_code

pytestmark = pytest.mark.unit


def _reference(code: str) -> bool:
    trimmed = code.strip()
    if not trimmed or len(trimmed) % 4:
        return False
    try:
        base64.b64decode(trimmed, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


@pytest.mark.parametrize(
    ("code", "binary"),
    [
        ("AAAA", True),
        ("AAA=", True),
        ("AA==", True),
        ("AB==", True),  # non-zero bits after the last byte: CPython accepts them
        ("A===", False),
        ("AAAA====", True),  # CPython: padding after whole quanta is accepted, any amount of it
        ("AAAAAAAA========", True),
        ("AAAAAA======", False),  # two data characters want exactly "==": excess data after padding
        ("AAAAAAA=====", False),  # three want exactly "="
        ("AAAAA===", False),  # one more than a multiple of 4 is never valid
        ("====", False),
        ("=AAA", False),  # leading padding
        ("AA=A", False),  # padding inside a quantum
        ("AA==AAAA", False),  # data after padding
        ("AAA=AAA=", False),
        ("AAAA\nAAAA", False),  # strict: no whitespace inside (9 characters anyway)
        ("AAAA\nAAA", False),  # 8 characters, one a newline
        ("AAAA AAA", False),
        ("\tAAAA\n", True),  # trimmed first
        ("\u3000AAAA\u3000", True),  # str.strip trims Unicode whitespace too
        ("\x1cAAAA\x1f", True),  # and the ASCII separators str.strip counts as whitespace
        ("AAA\u00e9", False),  # not ASCII: b64decode refuses a str with non-ASCII characters
        ("AAA\x00", False),
        ("AA-_", False),  # the URL-safe alphabet is not base64's
        ("AA+/", True),
        ("ab!d", False),
        ("", False),
    ],
)
def test_tricky_inputs_keep_their_answer(code: str, binary: bool) -> None:
    assert _reference(code) is binary  # the pin: what CPython's strict decoder said
    assert is_binary_code(code) is binary


def test_every_short_string_over_a_small_alphabet_agrees_with_the_strict_decoder() -> None:
    alphabet = "A/=\n-é"
    for length in range(8):
        for chars in itertools.product(alphabet, repeat=length):
            code = "".join(chars)
            assert is_binary_code(code) is _reference(code), repr(code)


def test_random_strings_agree_with_the_strict_decoder() -> None:
    rng = random.Random(12)
    pieces = ["A", "z", "0", "+", "/", "=", "==", "===", " ", "\n", "\r", "\t", "\x0b", "-", "_", "é", "\x00"]
    for _ in range(20_000):
        code = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 14)))
        assert is_binary_code(code) is _reference(code), repr(code)
    for _ in range(200):  # long valid code, sometimes damaged in one place
        data = base64.b64encode(rng.randbytes(rng.randrange(1, 3000))).decode()
        if rng.random() < 0.5:
            at = rng.randrange(len(data))
            data = data[:at] + rng.choice(pieces) + data[at + 1 :]
        assert is_binary_code(data) is _reference(data), data


def test_the_check_does_not_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    # Decoding is what made the check cost 1.6 ms per 1.4 MB on the event loop (docs/benchmarks.md, issue 12).
    def no_decoding(*_: object, **__: object) -> bytes:
        raise AssertionError("is_binary_code decoded the code")

    monkeypatch.setattr(binascii, "a2b_base64", no_decoding)
    code = base64.b64encode(bytes(range(256)) * 4096).decode()
    assert is_binary_code(code) is True
    assert is_binary_code(code[:-4] + "AA=A") is False
