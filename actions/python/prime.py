"""prime: the n-th prime -- the ``python:3`` twin of ``actions/src/prime.c``.

params ``{"n": int = 10000}`` -> ``{"prime": p, "n": n}``; n clamped to [1, 1e8] (truncated
toward 0), 1-indexed (n=1 -> 2). Same algorithm as the C version: 2 is the first prime, then
each odd candidate 3, 5, 7, ... is tested by trial division by 3, 5, ... while d*d <= c.
"""

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


def is_odd_prime(c):
    d = 3
    while d * d <= c:
        if c % d == 0:
            return False
        d += 2
    return True


def main(args):
    n = 10000
    d = number(args, "n")
    if d is not None:
        n = 1 if not d >= 1 else 100_000_000 if d > 1e8 else math.trunc(d)
    print(f"prime: searching for prime #{n}")

    p, count, c = 2, 1, 3
    while count < n:
        if is_odd_prime(c):
            count += 1
            p = c
        c += 2
    return {"prime": p, "n": n}
