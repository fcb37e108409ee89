"""The depth check of request bodies (controller/query.py): a body of few containers is walked without scanning
its bytes for brackets first (an action's 1.4 MB of code), and the quick walk agrees with the full one."""

from __future__ import annotations

import random
from typing import Any

import pytest

from controller.query import _nests_deeper_than_within, nests_deeper_than

pytestmark = pytest.mark.unit


def nested(depth: int, width: int = 1) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] * width if level % 2 else {str(i): value for i in range(width)}
    return value


def random_value(rng: random.Random, depth: int) -> Any:
    if depth == 0 or rng.random() < 0.3:
        return rng.choice([1, "s", None, 2.5, True])
    items = [random_value(rng, depth - 1) for _ in range(rng.randint(0, 4))]
    return items if rng.random() < 0.5 else {str(i): item for i, item in enumerate(items)}


def test_an_action_put_body_is_decided_by_the_quick_walk() -> None:
    body = {"exec": {"kind": "wasm:wasi", "code": "A" * 1_400_000, "binary": True}, "limits": {"memory": 128}}
    assert _nests_deeper_than_within(body, 64, 256) is False


@pytest.mark.parametrize(("depth", "deeper"), [(64, False), (65, True), (500, True)])
def test_a_deep_body_is_decided_by_the_quick_walk(depth: int, deeper: bool) -> None:
    assert _nests_deeper_than_within(nested(depth), 64, 256) is deeper


def test_a_wide_body_is_left_to_the_bracket_count() -> None:
    assert _nests_deeper_than_within(list(range(100_000)), 64, 256) is None
    assert _nests_deeper_than_within(nested(3, width=20), 64, 256) is None


def test_the_quick_walk_agrees_with_the_full_one_whenever_it_decides() -> None:
    rng = random.Random(12)
    decided = 0
    for _ in range(2_000):
        value = random_value(rng, rng.randint(0, 9))
        max_depth = rng.randint(1, 8)
        quick = _nests_deeper_than_within(value, max_depth, 16)
        if quick is not None:
            decided += 1
            assert quick == nests_deeper_than(value, max_depth)
    assert decided > 1_000
