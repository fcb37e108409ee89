"""sleep: the ``python:3`` twin of ``actions/src/sleep.c``.

Sleeps ``ms`` milliseconds (default 5000; clamped to [0, 1e12], truncated toward 0).
Result ``{"slept": ms}``.
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
    ms = 5000
    d = number(args, "ms")
    if d is not None:
        ms = 0 if not d > 0 else 1_000_000_000_000 if d > 1e12 else math.trunc(d)
    print(f"sleep: sleeping {ms} ms", flush=True)
    time.sleep(ms / 1000)
    return {"slept": ms}
