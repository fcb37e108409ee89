"""The system packages: the ``whisk.system`` namespace's published packages, shipped with pywhisk.

OpenWhisk installs its catalog (``/whisk.system/utils``, ``/whisk.system/alarms``, ...) under the ``whisk.system``
namespace; every subject may list, get, bind and invoke them because they are published
(controller/resolve.py). Here no subject owns ``whisk.system`` (unless an operator gives one its key with
``pywhisk admin user create``), so nobody writes it through the API: only ``seed_system_packages`` does, at
every standalone and controller start and with ``pywhisk admin system-packages``.

Seeding is idempotent and safe with several controllers starting at once: an entity is written only when it is
missing or differs from what this pywhisk ships (a newer release updates it), with the revision it read, and
a ``Conflict`` means another writer did the same write first.

- ``utils``: ``echo``, which returns its parameters (``echo.wasm``, built from ``actions/src/echo.c``).
- ``alarms``: the feed actions ``alarm`` (cron), ``interval`` and ``once``, annotated ``feed: true`` as
  openwhisk-package-alarms' installCatalog.sh marks them. Their kind, ``alarms:feed``, is built in: no runtime
  of the manifest has it (so no user can create one), and the controller runs them (``controller.alarms``).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable
from importlib import resources

from pywhisk.entities import Action, Exec, KeyValue, Package
from pywhisk.errors import Conflict
from pywhisk.store import EntityStore

log = logging.getLogger("pywhisk.system")

SYSTEM_NAMESPACE = "whisk.system"
WASM_KIND = "wasm:wasi"
ALARMS_FEED_KIND = "alarms:feed"
# [OW] openwhisk-package-alarms installCatalog.sh: each feed's description and parameters.
_ALARM_FEEDS = {
    "alarm": ("Fire trigger when alarm occurs", ["cron", "timezone", "trigger_payload", "startDate", "stopDate"]),
    "interval": ("Fire trigger at specified interval", ["minutes", "trigger_payload", "startDate", "stopDate"]),
    "once": ("Fire trigger once when alarm occurs", ["date", "trigger_payload", "deleteAfterFire"]),
}
_REQUIRED = {"cron", "minutes", "date"}


def echo_module() -> bytes:
    """The ``echo`` WebAssembly module shipped as package data."""
    return resources.files(__package__).joinpath("echo.wasm").read_bytes()


def system_packages() -> list[Package]:
    """The packages of ``whisk.system`` as this release ships them."""
    return [
        Package(
            namespace=SYSTEM_NAMESPACE,
            name="utils",
            publish=True,
            annotations=[KeyValue(key="description", value="Building blocks that format and assemble data")],
        ),
        Package(
            namespace=SYSTEM_NAMESPACE,
            name="alarms",
            publish=True,
            annotations=[KeyValue(key="description", value="Alarms and periodic utility")],
        ),
    ]


def system_actions() -> list[Action]:
    """The actions of the system packages as this release ships them."""
    return [
        Action(
            namespace=f"{SYSTEM_NAMESPACE}/utils",
            name="echo",
            exec=Exec(kind=WASM_KIND, code=base64.b64encode(echo_module()).decode(), binary=True),
            annotations=[
                KeyValue(key="description", value="Returns the input"),
                KeyValue(key="parameters", value=[{"name": "payload", "required": False}]),
                KeyValue(key="exec", value=WASM_KIND),
                KeyValue(key="provide-api-key", value=False),
            ],
        ),
        *(_alarm_feed(name, description, parameters) for name, (description, parameters) in _ALARM_FEEDS.items()),
    ]


def _alarm_feed(name: str, description: str, parameters: list[str]) -> Action:
    return Action(
        namespace=f"{SYSTEM_NAMESPACE}/alarms",
        name=name,
        exec=Exec(kind=ALARMS_FEED_KIND),
        annotations=[
            KeyValue(key="feed", value=True),
            KeyValue(key="description", value=description),
            KeyValue(key="parameters", value=[{"name": p, "required": p in _REQUIRED} for p in parameters]),
            KeyValue(key="exec", value=ALARMS_FEED_KIND),
        ],
    )


async def seed_system_packages(entities: EntityStore) -> list[str]:
    """Write every system package and action that is missing or differs from the shipped one; returns the
    fully qualified names written (none when the store is up to date)."""
    written: list[str] = []
    for package in system_packages():
        stored_package = await entities.get_package(package.namespace, package.name)
        if stored_package is None or _differs(stored_package, package):
            rev = stored_package.rev if stored_package else None
            if await _written(entities.put_package(package, expected_rev=rev)):
                written.append(f"/{package.path}")
    for action in system_actions():
        stored_action = await entities.get_action(action.namespace, action.name)
        if stored_action is None or _differs(stored_action, action):
            rev = stored_action.rev if stored_action else None
            if await _written(entities.put_action(action, expected_rev=rev)):
                written.append(action.fully_qualified_name)
    if written:
        log.info("system packages: wrote %s", ", ".join(written))
    return written


def _differs(stored: Action | Package, shipped: Action | Package) -> bool:
    # `updated` and `rev` change with every write; everything else is what the release ships.
    return stored.model_dump(exclude={"updated"}) != shipped.model_dump(exclude={"updated"})


async def _written(write: Awaitable[object]) -> bool:
    try:
        await write
    except Conflict:  # another controller (or admin) seeded it at the same moment: done
        return False
    return True
