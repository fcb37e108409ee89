"""The SQLite store writes an entity's document with orjson (pywhisk/store/sqlite.py ``entity_json``): the same
JSON as pydantic's ``model_dump_json`` (read back by ``model_validate_json``), and pydantic's where orjson
refuses a value."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic_core import PydanticSerializationError

from pywhisk.entities import Action, EntityRef, KeyValue, Package, ReducedRule, Rule, Trigger
from pywhisk.store.sqlite import SqliteStore, entity_json

pytestmark = pytest.mark.unit

ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -(2**63),
    2**64 - 1,
    1.5,
    1e300,
    -0.0,
    'ctrl \x00\x01\x1f " \\ / \u2028 \u00e9 \U0001f600',
    {"nested": [1, {"a": None}], "": ""},
]


def entities() -> list[Action | Package | Trigger | Rule]:
    params = [KeyValue(key=f"k{i}", value=value) for i, value in enumerate(ODD_VALUES)]
    code = base64.b64encode(bytes(range(256)) * 64).decode()
    return [
        Action.model_validate(
            {
                "namespace": "guest",
                "name": "a",
                "exec": {"kind": "wasm:wasi", "code": code, "binary": True},
                "parameters": [p.model_dump() for p in params],
                "annotations": [{"key": "web-export", "value": True}],
                "limits": {"timeout": 3000, "memory": 128},
            }
        ),
        Action.model_validate(
            {"namespace": "guest", "name": "b", "exec": {"kind": "python:3", "code": "def main(a):"}}
        ),
        Package(namespace="guest", name="p", parameters=params),
        Trigger(
            namespace="guest",
            name="t",
            parameters=params,
            rules={"guest/r": ReducedRule(action=EntityRef(path="guest", name="a"), status="active")},
        ),
        Rule(
            namespace="guest",
            name="r",
            trigger=EntityRef(path="guest", name="t"),
            action=EntityRef(path="guest", name="a"),
        ),
    ]


@pytest.mark.parametrize("entity", entities(), ids=lambda e: f"{type(e).__name__}-{e.name}")
def test_the_document_is_pydantics_json(entity: Action | Package | Trigger | Rule) -> None:
    made = entity_json(entity)

    assert orjson.loads(made) == orjson.loads(entity.model_dump_json())
    assert type(entity).model_validate_json(made) == entity


async def test_the_store_writes_an_action_with_orjson_not_with_pydantic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The point of it: pydantic's serializer costs 15-25x more for a big action, on the loop holding the GIL.
    action = entities()[0]
    assert isinstance(action, Action)
    store = SqliteStore(tmp_path / "store.sqlite3")
    await store.start()
    try:
        with monkeypatch.context() as patched:
            patched.setattr(Action, "model_dump_json", lambda *_a, **_k: pytest.fail("serialized by pydantic"))
            await store.put_action(action, None)
        stored = await store.get_action("guest", "a")
    finally:
        await store.close()
    assert stored is not None
    assert stored.exec.code == action.exec.code
    assert stored.parameters == action.parameters


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1])
def test_what_orjson_refuses_is_left_to_pydantic(value: Any) -> None:
    package = Package(namespace="guest", name="p", parameters=[KeyValue(key="v", value=value)])

    assert entity_json(package) == package.model_dump_json()


def test_a_lone_surrogate_is_refused_as_pydantic_refuses_it() -> None:
    package = Package(namespace="guest", name="p", parameters=[KeyValue(key="v", value="lone \ud800")])

    with pytest.raises(PydanticSerializationError, match="surrogates not allowed"):
        entity_json(package)
