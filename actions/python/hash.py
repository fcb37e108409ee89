"""hash: a chain of SHA-256 hashes -- the ``python:3`` twin of ``actions/src/hash.c``.

params ``{"input": str = "pywhisk", "iterations": int = 1000}`` -> ``{"hash": hex, "iterations": n}``::

    d_1     = SHA-256(UTF-8 bytes of input)
    d_(k+1) = SHA-256(d_k)      # the 32 raw digest bytes, not their hex
    hash    = hex of d_n,  n = iterations clamped to [1, 1e9] (truncated toward 0)

Parameter handling mirrors the C version: a non-string ``input`` means the default, and the
input ends at its first NUL; a number or numeric string is accepted for ``iterations``.
SHA-256 comes from ``hashlib`` (OpenSSL, i.e. C), so this column measures the runtime, not a
SHA-256 written in Python.
"""

import hashlib
import math


def number(args, key):
    """args[key] as a float if it is a JSON number or a numeric string (like minijson.h), else None."""
    v = args.get(key)
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and "_" not in v:  # float() would accept "1_000", strtod does not
        try:
            return float(v)
        except ValueError:
            return None
    return None


def main(args):
    text = args.get("input")
    if not isinstance(text, str):
        text = "pywhisk"
    # Like the C action: the text ends at a NUL, and a lone surrogate becomes U+FFFD.
    text = text.split("\0", 1)[0]
    data = "".join("\ufffd" if 0xD800 <= ord(c) < 0xE000 else c for c in text).encode("utf-8")

    n = 1000
    d = number(args, "iterations")
    if d is not None:
        n = 1 if not d >= 1 else 1_000_000_000 if d > 1e9 else math.trunc(d)

    print(f"hash: {n} x sha256 over {len(data)} input bytes")
    digest = hashlib.sha256(data).digest()
    for _ in range(n - 1):
        digest = hashlib.sha256(digest).digest()
    return {"hash": digest.hex(), "iterations": n}
