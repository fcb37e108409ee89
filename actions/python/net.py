"""net: the I/O stand-in -- the ``python:3`` twin of ``actions/src/net.c``.

Blocks ``ms`` milliseconds (default 300; clamped to [0, 1e12], truncated toward 0) without
using the CPU, like waiting on a network call. Result ``{"blocked_ms": ms}``.
"""

import math
import time


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
    ms = 300
    d = number(args, "ms")
    if d is not None:
        ms = 0 if not d > 0 else 1_000_000_000_000 if d > 1e12 else math.trunc(d)
    print(f"net: blocking {ms} ms", flush=True)
    time.sleep(ms / 1000)
    return {"blocked_ms": ms}
