"""Prometheus metrics: one ``Metrics`` object per process, holding every instrument and its registry.

The names follow OpenWhisk where it has them: its user-events service ([OW] core/monitoring/user-events
``PrometheusRecorder.scala``) exports ``openwhisk_action_*`` per namespace, initiator and action, recorded
here where the activation record is produced (the invoker), so each activation counts once. The platform's
own series are ``pywhisk_*`` (the console and the Grafana dashboard read them by these names).

Construction is explicit: the composition root (``launcher/compose.py``) makes one ``Metrics`` and hands it
to the controller app, the invoker, the bus (``MeteredBus``) and the store's group-commit writer. Its
registry is its own, never prometheus_client's global ``REGISTRY``, so two apps built in one test process
do not share counts. Gauges that are cheaper to read than to keep up to date (pool instances, invoker
health, in-flight activations, queue depth) are ``watch``-ed collectors, read when scraped, on the event
loop that owns the state they read; the text is then made on a thread (``Metrics.scrape``).

Label cardinality is bounded: never an activation id, and at most ``max_actions`` distinct
(namespace, initiator, action) triples per process; every triple past the cap is counted under
``other``. The initiator is part of the key because a shared action (``/whisk.system/utils/echo``) is
invoked from every subject's namespace.

Several processes behind one port (``--workers N``): set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory shared by the workers (before they start: prometheus_client chooses its value store at import).
Counters and histograms are then kept in memory-mapped files there, and a scrape of any worker aggregates
every worker's through ``MultiProcessCollector``; the watched gauges report the answering worker's view.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from pywhisk.activation import Activation
from pywhisk.bus import Bus, Consumer
from pywhisk.settings import Settings

log = logging.getLogger("pywhisk.metrics")

OTHER = "other"
"""The label value of every (namespace, initiator, action) past the cap, and of unknown routes or topics."""
CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_MAX_ACTIONS = 500

# OpenWhisk's user-events histograms use the Java client's default buckets; these are the Python client's
# defaults below 1 s refined downwards, because a WASM activation's waitTime and initTime are ~1 ms.
TIME_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)
POOL_STATES = ("warm", "prewarmed", "paused", "busy")
HEALTH_STATES = ("up", "unhealthy", "offline")
START_KINDS = ("cold", "warm", "prewarmed")
# Bus topics by kind: ``invoker3`` and ``completed0`` are "invoker" and "completed" (bounded by the cluster size).
_TOPIC_KINDS = frozenset(("invoker", "completed", "health", "cacheInvalidation"))
_TRAILING_DIGITS = re.compile(r"\d+$")
# OpenWhisk's ``openwhisk_action_status`` label values ([OW] ActivationResponse.statusSuccess, ...).
STATUS_TEXT = {0: "success", 1: "application_error", 2: "developer_error", 3: "internal_error"}


class ActionLabels:
    """The bounded-label helper: the first ``max_actions`` distinct triples pass, the rest become ``other``."""

    def __init__(self, max_actions: int) -> None:
        if max_actions < 0:
            raise ValueError("max_actions must be at least 0")
        self.max_actions = max_actions
        self._admitted: set[tuple[str, str, str]] = set()

    def __call__(self, namespace: str, initiator: str, action: str) -> tuple[str, str, str]:
        key = (namespace, initiator, action)
        if key in self._admitted:
            return key
        if len(self._admitted) < self.max_actions:
            self._admitted.add(key)
            return key
        return (OTHER, OTHER, OTHER)


def topic_kind(topic: str) -> str:
    """``invoker0`` → ``invoker``: the bounded label of a bus topic."""
    kind = _TRAILING_DIGITS.sub("", topic)
    return kind if kind in _TOPIC_KINDS else OTHER


def multiprocess_dir() -> str | None:
    """The directory of prometheus_client's multiprocess mode, when this process runs in it."""
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


class Metrics:
    """Every instrument of one process, in ``registry`` (a new one unless given).

    ``max_actions`` caps the distinct (namespace, initiator, action) label triples (``ActionLabels``).
    """

    def __init__(self, *, max_actions: int = DEFAULT_MAX_ACTIONS, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.action_labels = ActionLabels(max_actions)
        self._watched: list[Collector] = []
        r = self.registry
        action = ("namespace", "initiator", "action")

        # [OW] user-events, names and labels as PrometheusRecorder's.
        self.activations = Counter(
            "openwhisk_action_activations", "Activation Count", [*action, "kind", "memory"], registry=r
        )
        self.cold_starts = Counter("openwhisk_action_coldStarts", "Cold start counts", action, registry=r)
        self.status = Counter(
            "openwhisk_action_status", "Activation failure status type", [*action, "status"], registry=r
        )
        self.wait_time = Histogram(
            "openwhisk_action_waitTime_seconds", "Internal system hold time", action, registry=r, buckets=TIME_BUCKETS
        )
        self.init_time = Histogram(
            "openwhisk_action_initTime_seconds",
            "Time it took to initialize an action, e.g. docker init",
            action,
            registry=r,
            buckets=TIME_BUCKETS,
        )
        self.duration = Histogram(
            "openwhisk_action_duration_seconds",
            "Actual time the action code was running",
            action,
            registry=r,
            buckets=TIME_BUCKETS,
        )
        self.memory = Gauge(
            "openwhisk_action_memory",
            "Memory consumption of the action containers",
            action,
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.limit_concurrent = Counter(
            "openwhisk_action_limit_concurrent",
            "a user has exceeded its limit for concurrent invocations",
            ["namespace"],
            registry=r,
        )
        self.limit_timed = Counter(
            "openwhisk_action_limit_timed",
            "the user has reached its per minute limit for the number of invocations",
            ["namespace"],
            registry=r,
        )

        # The platform's own.
        self.http_requests = Counter(
            "pywhisk_http_requests",
            "HTTP requests answered, by route template",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "pywhisk_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response",
            ["route", "method"],
            registry=r,
            buckets=TIME_BUCKETS,
        )
        self.throttled = Counter(
            "pywhisk_throttled_requests", "Requests refused by a namespace throttle (429)", ["reason"], registry=r
        )
        self.starts = Counter(
            "pywhisk_starts", "Instances handed to activations, by how they started", ["executor", "start"], registry=r
        )
        self.bus_publish = Histogram(
            "pywhisk_bus_publish_seconds",
            "Time until the bus holds a sent message",
            ["topic"],
            registry=r,
            buckets=TIME_BUCKETS,
        )
        self.store_write = Histogram(
            "pywhisk_store_write_seconds",
            "Time of one group commit of activation records",
            ["kind"],
            registry=r,
            buckets=TIME_BUCKETS,
        )
        self.store_batch = Histogram(
            "pywhisk_store_batch_size",
            "Activation records per group commit",
            ["kind"],
            registry=r,
            buckets=BATCH_BUCKETS,
        )
        # Children by label values: ``labels()`` takes a lock and validates on every call (~2 µs), the
        # per-request path takes a dict lookup.
        self._http: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        # Bounded like the labels: at most max_actions triples (and their few kinds and memories) plus "other".
        self._actions: dict[tuple[str, ...], _ActionChildren] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Metrics:
        """The metrics of a process configured by ``settings`` (``PYWHISK_METRICS_MAX_ACTIONS``)."""
        return cls(max_actions=settings.metrics_max_actions)

    # recording -------------------------------------------------------------------------------------

    def record_activation(self, record: Activation, initiator: str) -> None:
        """Count one activation record, as OpenWhisk's user events do."""
        path, _, action_name = _split_name(record.namespace, record.name)
        labels = self.action_labels(path, initiator, action_name)
        annotations = {pair.key: pair.value for pair in record.annotations}
        limits = annotations.get("limits")
        memory = limits.get("memory", 0) if isinstance(limits, dict) else 0
        kind = annotations.get("kind") or "unknown"
        key = (*labels, str(kind), str(memory))
        children = self._actions.get(key)
        if children is None:
            children = self._actions[key] = self._action_children(labels, str(kind), str(memory))
        children.activations.inc()
        init_ms = annotations.get("initTime")
        if isinstance(init_ms, int | float):
            children.cold_starts.inc()
            children.init_time.observe(init_ms / 1000)
        wait_ms = annotations.get("waitTime")
        children.wait_time.observe((wait_ms if isinstance(wait_ms, int | float) else 0) / 1000)
        children.duration.observe((record.duration or 0) / 1000)
        status = STATUS_TEXT.get(record.response.statusCode, str(record.response.statusCode))
        children.status(status).inc()
        children.memory.set(memory)

    def _action_children(self, labels: tuple[str, str, str], kind: str, memory: str) -> _ActionChildren:
        status = self.status
        return _ActionChildren(
            activations=self.activations.labels(*labels, kind, memory),
            cold_starts=self.cold_starts.labels(*labels),
            wait_time=self.wait_time.labels(*labels),
            init_time=self.init_time.labels(*labels),
            duration=self.duration.labels(*labels),
            memory=self.memory.labels(*labels),
            status=lambda text: status.labels(*labels, text),
        )

    def record_throttle(self, reason: str, namespace: str) -> None:
        """A request refused with 429; ``reason`` is the limit's OpenWhisk name (``invocationsPerMinute``...)."""
        self.throttled.labels(reason).inc()
        bounded, _, _ = self.action_labels(namespace, namespace, "")
        if reason == "concurrentInvocations":
            self.limit_concurrent.labels(bounded).inc()
        elif reason == "invocationsPerMinute":
            self.limit_timed.labels(bounded).inc()

    def record_start(self, executor: str, start: str) -> None:
        """An instance handed to an activation: ``cold`` (new), ``prewarmed`` (a stem cell) or ``warm``."""
        self.starts.labels(executor, start).inc()

    def record_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One HTTP request answered (``route`` is its template, never the raw path)."""
        key = (route, method, status)
        children = self._http.get(key)
        if children is None:
            children = (self.http_requests.labels(route, method, str(status)), self.http_duration.labels(route, method))
            self._http[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def record_store_flush(self, kind: str) -> Callable[[int, float], None]:
        """The ``on_flush`` hook of a store's group-commit writer (``pywhisk/store/writer.py``)."""
        write, batch = self.store_write.labels(kind), self.store_batch.labels(kind)

        def on_flush(size: int, seconds: float) -> None:
            write.observe(seconds)
            batch.observe(size)

        return on_flush

    # scrape-time gauges ----------------------------------------------------------------------------

    def watch(self, collector: Collector) -> None:
        """Read ``collector`` at every scrape, on the thread that scrapes (``scrape``: the event loop)."""
        self._watched.append(collector)

    def watch_invoker(
        self,
        invoker: str,
        executors: Iterable[str],
        in_flight: Callable[[], int],
        queued: Callable[[], int],
        instances: Callable[[], Iterable[tuple[str, str]]],
    ) -> None:
        """The gauges of one invoker, read at scrape time: activations in progress, activations waiting for
        the pool, and the pool's instances as (executor, state) pairs (``Pool.instance_states``)."""

        def pool() -> dict[Any, float]:
            counts: dict[Any, float] = {(invoker, e, state): 0 for e in executors for state in POOL_STATES}
            for executor, state in instances():
                counts[(invoker, executor, state)] = counts.get((invoker, executor, state), 0) + 1
            return counts

        self.watch(
            GaugeCollector(
                "pywhisk_invoker_inflight_activations",
                "Activations an invoker has taken and not yet recorded",
                ["invoker"],
                lambda: {(invoker,): in_flight()},
            )
        )
        self.watch(
            GaugeCollector(
                "pywhisk_queue_depth",
                "Activations waiting in an invoker's pool for memory",
                ["invoker"],
                lambda: {(invoker,): queued()},
            )
        )
        self.watch(
            GaugeCollector(
                "pywhisk_pool_instances",
                "Instances in an invoker's pool by executor and state",
                ["invoker", "executor", "state"],
                pool,
            )
        )

    def watch_invoker_health(self, statuses: Callable[[], dict[int, str]]) -> None:
        """``pywhisk_invoker_health{invoker,state}``: 1 for each invoker's state as this controller sees it."""

        def health() -> dict[Any, float]:
            return {
                (f"invoker{index}", state): 1.0 if state == status else 0.0
                for index, status in statuses().items()
                for state in HEALTH_STATES
            }

        self.watch(
            GaugeCollector(
                "pywhisk_invoker_health", "Invoker health as this controller sees it", ["invoker", "state"], health
            )
        )

    # exposition ------------------------------------------------------------------------------------

    async def scrape(self) -> bytes:
        """``render`` for a server: the watched gauges are read on the loop that owns what they read, and the
        text is made on a thread (~20 µs a line: a 500-action exposition would hold the loop for ~0.5 s)."""
        return await asyncio.to_thread(self._render, self._read_watched())

    def render(self) -> bytes:
        """The text exposition: this registry, or every worker's files, and this process's watched gauges."""
        return self._render(self._read_watched())

    def _read_watched(self) -> list[Metric]:
        return [family for collector in self._watched for family in collector.collect()]

    def _render(self, watched: list[Metric]) -> bytes:
        scrape = CollectorRegistry(auto_describe=False)
        if multiprocess_dir() is None:
            scrape.register(_Families(self.registry.collect))
        else:
            MultiProcessCollector(scrape)  # type: ignore[no-untyped-call]
        scrape.register(_Families(lambda: iter(watched)))
        return generate_latest(scrape)


class _Families:
    """A collector of families made elsewhere (a registry's, or gauges read on the loop)."""

    def __init__(self, families: Callable[[], Iterable[Metric]]) -> None:
        self.collect = families

    def describe(self) -> Iterable[Metric]:
        return []


@dataclass(frozen=True, slots=True)
class _ActionChildren:
    """The instruments of one action's label values (the status counter's by status, as few as there are)."""

    activations: Any
    cold_starts: Any
    wait_time: Any
    init_time: Any
    duration: Any
    memory: Any
    status: Callable[[str], Any]


def _split_name(namespace: str, name: str) -> tuple[str, str, str]:
    """OpenWhisk's ``getNamespaceAndActionName``: the root namespace, and the action with its package."""
    root, _, package = namespace.partition("/")
    return root, package, f"{package}/{name}" if package else name


class GaugeCollector:
    """A collector of gauges computed at scrape time by ``read`` → {(label values): value}."""

    def __init__(self, name: str, documentation: str, labels: Iterable[str], read: Callable[[], dict[Any, float]]):
        self.name = name
        self.documentation = documentation
        self.labels = list(labels)
        self.read = read

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(self.name, self.documentation, labels=self.labels)]

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, value in self.read().items():
            family.add_metric([str(v) for v in values], value)
        yield family


# the bus -----------------------------------------------------------------------------------------


class MeteredBus:
    """A ``Bus`` that times ``send`` into ``pywhisk_bus_publish_seconds{topic}``; everything else passes."""

    def __init__(self, bus: Bus, metrics: Metrics) -> None:
        self.bus = bus
        self._publish = {kind: metrics.bus_publish.labels(kind) for kind in (*_TOPIC_KINDS, OTHER)}

    async def start(self) -> None:
        await self.bus.start()

    async def close(self) -> None:
        await self.bus.close()

    async def send(self, topic: str, value: bytes) -> None:
        started = time.perf_counter()
        await self.bus.send(topic, value)
        self._publish[topic_kind(topic)].observe(time.perf_counter() - started)

    async def subscribe(self, topic: str, group: str) -> Consumer:
        return await self.bus.subscribe(topic, group)


# a metrics endpoint for processes without an HTTP server (the distributed invoker) --------------


async def serve_metrics(metrics: Metrics, host: str, port: int) -> asyncio.Server:
    """Answer ``GET /metrics`` on ``host:port`` (0: any free port) with ``metrics.scrape()``.

    On the event loop, not prometheus_client's ``start_http_server`` thread: the watched gauges read the
    pool, which only the loop may touch. HTTP/1.0, one request per connection: a scraper needs no more.
    """

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
            method, _, rest = head.partition(b" ")
            path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
            if method == b"GET" and path == b"/metrics":
                status, ctype, body = b"200 OK", CONTENT_TYPE.encode(), await metrics.scrape()
            else:
                status, ctype, body = b"404 Not Found", b"text/plain", b"not found: the metrics are at /metrics\n"
            writer.write(
                b"HTTP/1.0 "
                + status
                + b"\r\nContent-Type: "
                + ctype
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a scraper that went away, or not a scraper
        except Exception:
            log.exception("answering a metrics scrape failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    return await asyncio.start_server(answer, host, port)
