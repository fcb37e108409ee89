"""The attack classes of ``loadgen isolation``: what one namespace does to try to hurt another (issue 12).

Each class is an async function of an :class:`Attacker` (the attacker's client, the knobs, a deadline, a
request budget): it creates its actions in the attacker's namespace and calls the API until the deadline or
the budget is spent, and every request's outcome is recorded. Each class also states which outcomes are the
*right* ones, after OpenWhisk: an attacker-caused fault ends in a record with ``action developer error`` (or
``application error``, or ``success`` where the code did nothing wrong), or an HTTP 4xx at the edge -- never
a ``whisk internal error``, a 5xx, a lost activation or a hung connection.

- ``noimage``: a blackbox action whose image does not exist, blocking invokes (Docker only). Right: developer
  error ([OW] ``Messages.imagePullError``, a ``BlackboxStartupError`` in ``DockerContainer.scala``).
- ``race``: invokes racing updates and deletes of the action. Right: success, application error ``Action could
  not be found or may have been deleted.`` ([OW] ``InvokerReactive.scala``, ``NoDocumentException``), 404.
- ``zipbomb``: zip code (deflate, bzip2; honest and lying headers) expanding to GBs. Right: 400 at create, or
  developer error.
- ``memory``: several memories, a huge table, ``memory.grow`` beyond ``limits.memory``. Right: developer error
  (a ``success`` means the guest escaped the bound).
- ``compile``: modules slow to compile, new bytes each invoke. Right: success, developer error (time limit).
- ``hostcall``: ``poll_oneoff`` with 10^6 subscriptions, ``fd_write`` with 4x10^6 iovecs. Right: developer
  error (time limit).
- ``flood``: many concurrent sleeps of one action with concurrency 1. Right: success, 429.
- ``nested``: parameters nested hundreds of levels. Right: 400, or success.
- ``cpu``: ``loop`` at the attacker's concurrency limit. Right: developer error (time limit), 429.
- ``records``: an action logging to its limit, then listing activations and actions. Right: success, 200.

Every payload a class sends is made by its ``prepare`` before the experiment starts (:func:`prepare_payloads`),
not while the victim is measured: the client shares the server's cores, so generating a bomb during the
attack would be the client's CPU counted as the attacker's harm (issue 12, bzip2 bombs cost ~0.6 s of CPU).

[OW] = apache/openwhisk: ``core/invoker/.../InvokerReactive.scala`` (``actionRemovedWhileInvoking`` is an
application error), ``common/scala/.../http/Messages.scala`` (the messages).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from loadgen import hostile
from loadgen.actions import action_source
from loadgen.client import Invocation, WhiskClient

SUCCESS = "success"
APPLICATION_ERROR = "application error"
DEVELOPER_ERROR = "action developer error"
WHISK_ERROR = "whisk internal error"
# Answers without a record that are the right refusal of a hostile request (OpenWhisk's edge errors).
REFUSALS = frozenset({400, 403, 404, 409, 413, 429})
# An image on a loopback "registry" that answers nothing: nothing is pulled from the network even by a
# platform that pulls missing images.
MISSING_IMAGE = "127.0.0.1:9/loadgen/no-such-image:missing"


@dataclass(frozen=True)
class Knobs:
    """How hard each class pushes, and its bounds (every class stops at its deadline or after
    ``max_requests`` requests)."""

    concurrency: int = 4
    max_requests: int = 400
    timeout_ms: int = 3000
    memory_mb: int = 128
    bomb_mib: int = 2048
    guest_mib: int = 1024
    compile_locals: int = 2000
    compile_statements: int = 40_000
    poll_subscriptions: int = 1_000_000
    fd_iovecs: int = 4_000_000
    flood_requests: int = 60
    flood_ms: int = 1000
    nested_depth: int = 500
    log_lines: int = 1_000_000
    big_records: int = 3
    # Distinct slow-to-compile modules made before the attack (each ~0.08 s of client CPU); a run that needs
    # more makes the rest during the attack, as before.
    compile_modules: int = 24
    cpu_concurrency: int | None = None  # None: the attacker's concurrentInvocations limit


Record = Callable[[str, Invocation, bool | None], None]
Payloads = dict[str, Any]


class Attacker:
    """One attack class's view of the attacker: its client and knobs, a deadline, a request budget, and
    :meth:`record`, which judges each outcome against the class's right outcomes and keeps it."""

    def __init__(
        self,
        attack: AttackClass,
        client: WhiskClient,
        knobs: Knobs,
        actions_dir: Path,
        deadline: float,
        record: Record,
        note: Callable[[str], None],
        limits: dict[str, Any],
        payloads: Payloads | None = None,
    ) -> None:
        self.attack, self.client, self.knobs, self.actions_dir = attack, client, knobs, actions_dir
        self.deadline, self._record, self.note, self.limits = deadline, record, note, limits
        # What the class's ``prepare`` made (prepare_payloads); made here if the caller did not.
        self.payloads = attack.prepare(knobs) if payloads is None else payloads
        self.requests = 0

    @property
    def left(self) -> bool:
        """Time and request budget remain."""
        return time.monotonic() < self.deadline and self.requests < self.knobs.max_requests

    def action(self, suffix: str) -> str:
        return f"lg-atk-{self.attack.name}-{suffix}"

    def record(self, operation: str, outcome: Invocation) -> Invocation:
        self.requests += 1
        self._record(operation, outcome, self.attack.allows(operation, outcome))
        return outcome

    async def put(self, name: str, exec_: dict[str, Any], **limits: int) -> bool:
        """Create or update an action (``overwrite=true``); whether the server took it."""
        body = {"exec": exec_, "limits": {"memory": self.knobs.memory_mb, "timeout": self.knobs.timeout_ms, **limits}}
        outcome = await self.client.request(
            "PUT", self._path(name), label=name, params={"overwrite": "true"}, json=body
        )
        return self.record("create", outcome).http_status == 200

    async def put_wasm(self, name: str, module: bytes, **limits: int) -> bool:
        return await self.put(name, {"kind": "wasm:wasi", "code": base64.b64encode(module).decode()}, **limits)

    async def delete(self, name: str) -> None:
        self.record("delete", await self.client.request("DELETE", self._path(name), label=name))

    async def invoke(self, name: str, params: dict[str, Any] | None = None, content: bytes | None = None) -> Invocation:
        return self.record("invoke", await self.client.invoke(name, params or {}, content=content))

    async def list(self, what: str) -> None:
        path = f"/namespaces/{self.client.namespace}/{what}"
        self.record("list", await self.client.request("GET", path, label=what, params={"limit": 200}))

    async def repeat(self, workers: int, step: Callable[[int], Awaitable[object]]) -> None:
        """``workers`` loops each running ``step(round)`` while :attr:`left`; in-flight steps finish."""

        async def loop() -> None:
            round_ = 0
            while self.left:
                await step(round_)
                round_ += 1

        await asyncio.gather(*(loop() for _ in range(max(1, workers))))

    async def cleanup(self, *names: str) -> None:
        """Delete the class's actions (not recorded: it is no longer the attack)."""
        for name in names:
            await self.client.request("DELETE", self._path(name), label=name)

    def _path(self, name: str) -> str:
        return f"/namespaces/{self.client.namespace}/actions/{quote(name, safe='')}"


def _no_payloads(_: Knobs) -> Payloads:
    return {}


@dataclass(frozen=True)
class AttackClass:
    """A named attack, its right record statuses, the function that runs it, and the one that makes its
    payloads beforehand."""

    name: str
    description: str
    statuses: frozenset[str]
    run: Callable[[Attacker], Awaitable[None]]
    prepare: Callable[[Knobs], Payloads] = _no_payloads

    def allows(self, operation: str, outcome: Invocation) -> bool:
        """Whether ``outcome`` is a right one for this class (see the module docstring)."""
        if outcome.record is not None:
            return outcome.status in self.statuses
        if outcome.http_status is None or outcome.http_status == 202:
            return False  # a hung or reset connection, or an accepted activation without a record
        if operation != "invoke" and 200 <= outcome.http_status < 300:
            return True
        return outcome.http_status in REFUSALS


def prepare_payloads(names: list[str] | tuple[str, ...], knobs: Knobs) -> dict[str, Payloads]:
    """Every named class's payloads, made now (before the victim is measured)."""
    return {name: ATTACKS[name].prepare(knobs) for name in names}


# the classes --------------------------------------------------------------------------------------------


async def noimage(a: Attacker) -> None:
    name = a.action("run")
    if not await a.put(name, {"kind": "blackbox", "image": MISSING_IMAGE}):
        return
    probe = await a.client.invoke(name, {})
    if "no executor" in (probe.message or "").lower():  # a server without Docker: nothing to attack
        a.note(f"noimage: skipped, the server runs no blackbox actions ({probe.message})")
        await a.cleanup(name)
        return
    a.record("invoke", probe)
    await a.repeat(a.knobs.concurrency, lambda _: a.invoke(name))
    await a.cleanup(name)


async def race(a: Attacker) -> None:
    name = a.action("run")
    hello = (a.actions_dir / "wasm" / "hello.wasm").read_bytes()
    echo = (a.actions_dir / "wasm" / "echo.wasm").read_bytes()
    await a.put_wasm(name, hello)

    async def mutate(round_: int) -> None:
        step = round_ % 3
        if step == 0:
            await a.put_wasm(name, echo)
        elif step == 1:
            await a.delete(name)
        else:
            await a.put_wasm(name, hello)

    await asyncio.gather(
        a.repeat(a.knobs.concurrency, lambda _: a.invoke(name)),
        a.repeat(1, mutate),
    )
    await a.cleanup(name)


def _zipbomb_payloads(knobs: Knobs) -> Payloads:
    size = knobs.bomb_mib << 20
    bombs = {
        "deflate": hostile.zip_bomb("deflate", min(size, 1 << 30)),
        "deflate-lying": hostile.zip_bomb("deflate", min(size, 1 << 30), declared=1024),
        "bzip2": hostile.zip_bomb("bzip2", size),
        "bzip2-lying": hostile.zip_bomb("bzip2", size, declared=1024),
    }
    return {"bombs": bombs, "code": {k: base64.b64encode(b.data).decode() for k, b in bombs.items()}}


async def zipbomb(a: Attacker) -> None:
    bombs: dict[str, hostile.ZipBomb] = a.payloads["bombs"]
    code: dict[str, str] = a.payloads["code"]
    a.note(
        "zipbomb: "
        + ", ".join(f"{k} {len(b.data) / 1024:.0f} KiB -> {b.expanded / 2**30:.2f} GiB" for k, b in bombs.items())
    )

    async def one(round_: int) -> None:
        variant = list(bombs)[round_ % len(bombs)]
        name = a.action(variant)
        # Each round a new revision (the PUT), so the code is decoded again, not served from a cache.
        if await a.put(name, {"kind": "wasm:wasi", "code": code[variant]}):
            await a.invoke(name)

    await a.repeat(1, one)
    await a.cleanup(*(a.action(v) for v in bombs))


def _memory_payloads(knobs: Knobs) -> Payloads:
    guest = knobs.guest_mib
    return {
        "multi": hostile.multi_memory_module(4, max(1, guest // 3)),
        "table": hostile.huge_table_module(1 << 24, 1 << 22, max(1, guest // 32)),
        "grow": hostile.memory_grow_module(guest),
    }


async def memory(a: Attacker) -> None:
    modules: dict[str, bytes] = a.payloads
    created = [name for variant, module in modules.items() if await a.put_wasm(name := a.action(variant), module)]
    if created:
        # At most two at once: where the bound does not hold, each may hold guest_mib of host memory.
        await a.repeat(min(a.knobs.concurrency, 2), lambda i: a.invoke(created[i % len(created)]))
    await a.cleanup(*created)


def _compile_payloads(knobs: Knobs) -> Payloads:
    made = [
        hostile.slow_compile_module(knobs.compile_locals, knobs.compile_statements, seed)
        for seed in range(knobs.compile_modules)
    ]
    return {"modules": made}


async def compile_(a: Attacker) -> None:
    name = a.action("run")
    made: list[bytes] = a.payloads.get("modules", [])

    def module(round_: int) -> bytes:
        if round_ < len(made):
            return made[round_]
        return hostile.slow_compile_module(a.knobs.compile_locals, a.knobs.compile_statements, round_)

    async def one(round_: int) -> None:
        if await a.put_wasm(name, module(round_)):
            await a.invoke(name)

    await a.repeat(1, one)
    await a.cleanup(name)


def _hostcall_payloads(knobs: Knobs) -> Payloads:
    return {
        "poll": hostile.poll_oneoff_module(knobs.poll_subscriptions),
        "fdwrite": hostile.fd_write_module(knobs.fd_iovecs),
    }


async def hostcall(a: Attacker) -> None:
    modules: dict[str, bytes] = a.payloads
    memory_mb = max(a.knobs.memory_mb, 256)  # the tables need ~48 MB and ~32 MB of guest memory
    created = [n for v, m in modules.items() if await a.put_wasm(n := a.action(v), m, memory=memory_mb)]
    if created:
        await a.repeat(a.knobs.concurrency, lambda i: a.invoke(created[i % len(created)]))
    await a.cleanup(*created)


async def flood(a: Attacker) -> None:
    name = a.action("sleep")
    source = action_source("wasm", "sleep", a.actions_dir)
    if not await a.put(name, source.exec_body(), concurrency=1, timeout=max(a.knobs.timeout_ms, a.knobs.flood_ms * 3)):
        return

    async def burst(_: int) -> None:
        await asyncio.gather(*(a.invoke(name, {"ms": a.knobs.flood_ms}) for _ in range(a.knobs.flood_requests)))

    await a.repeat(1, burst)
    await a.cleanup(name)


def _nested_payloads(knobs: Knobs) -> Payloads:
    depths = [knobs.nested_depth // 2, knobs.nested_depth, knobs.nested_depth * 2]
    return {"bodies": [hostile.nested_parameters(depth) for depth in depths]}


async def nested(a: Attacker) -> None:
    name = a.action("hello")
    if not await a.put_wasm(name, (a.actions_dir / "wasm" / "hello.wasm").read_bytes()):
        return
    bodies: list[bytes] = a.payloads["bodies"]
    await a.repeat(a.knobs.concurrency, lambda i: a.invoke(name, content=bodies[i % len(bodies)]))
    await a.cleanup(name)


async def cpu(a: Attacker) -> None:
    name = a.action("loop")
    if not await a.put(name, action_source("wasm", "loop", a.actions_dir).exec_body()):
        return
    limit = a.limits.get("concurrentInvocations")
    workers = a.knobs.cpu_concurrency or (int(limit) if isinstance(limit, int) and limit > 0 else 30)
    await a.repeat(workers, lambda _: a.invoke(name))
    await a.cleanup(name)


async def records(a: Attacker) -> None:
    name = a.action("logs")
    if not await a.put(name, action_source("wasm", "logs", a.actions_dir).exec_body(), logs=10, timeout=60_000):
        return
    for _ in range(a.knobs.big_records):
        if a.left:
            await a.invoke(name, {"count": a.knobs.log_lines})
    await a.repeat(a.knobs.concurrency, lambda i: a.list("activations" if i % 2 == 0 else "actions"))
    await a.cleanup(name)


_RECORDED = frozenset({SUCCESS, APPLICATION_ERROR, DEVELOPER_ERROR})
ATTACKS: dict[str, AttackClass] = {
    c.name: c
    for c in (
        AttackClass("noimage", "blackbox action with a missing image", frozenset({DEVELOPER_ERROR}), noimage),
        AttackClass("race", "invokes racing updates and deletes", _RECORDED, race),
        AttackClass("zipbomb", "zip code expanding to GBs", frozenset({DEVELOPER_ERROR}), zipbomb, _zipbomb_payloads),
        AttackClass(
            "memory", "guest memory beyond limits.memory", frozenset({DEVELOPER_ERROR}), memory, _memory_payloads
        ),
        AttackClass(
            "compile", "modules slow to compile", frozenset({SUCCESS, DEVELOPER_ERROR}), compile_, _compile_payloads
        ),
        AttackClass(
            "hostcall",
            "huge poll_oneoff / fd_write requests",
            frozenset({DEVELOPER_ERROR}),
            hostcall,
            _hostcall_payloads,
        ),
        AttackClass("flood", "concurrent sleeps, action concurrency 1", frozenset({SUCCESS}), flood),
        AttackClass("nested", "parameters nested hundreds of levels", frozenset({SUCCESS}), nested, _nested_payloads),
        AttackClass("cpu", "loop at the concurrency limit", frozenset({DEVELOPER_ERROR}), cpu),
        AttackClass("records", "big records, then list calls", frozenset({SUCCESS}), records),
    )
}
