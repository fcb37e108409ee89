"""One pydantic-settings object for every role, read from ``PYWHISK_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of a pywhisk process (standalone, controller, invoker or executor).

    Every field can be set as ``PYWHISK_<FIELD>`` (e.g. ``PYWHISK_USER_MEMORY_MB=4096``). An executor's own
    knobs are its plugin's settings (e.g. ``executor_wasm/settings.py``: ``PYWHISK_WASM_*``), not fields here.
    """

    model_config = SettingsConfigDict(env_prefix="PYWHISK_", extra="ignore")

    # Where state lives: the SQLite store (standalone) and executors' caches (e.g. compiled WASM modules).
    data_dir: Path = Path.home() / ".pywhisk"
    host: str = "127.0.0.1"
    port: int = 3233
    # Create OpenWhisk's well-known guest (public key!) at start if it is missing; turn off where others can reach.
    seed_guest: bool = True
    # The listen backlog: connections waiting to be accepted (the kernel caps it at net.core.somaxconn).
    http_backlog: int = Field(default=4096, ge=1)

    controller_id: int = 0
    invoker_id: int = 0
    # ``--workers N`` (launcher/workers.py): N processes of one role serve one port (SO_REUSEPORT), supervised
    # by a parent. A standalone worker K of N owns 1/N of the pool's memory, of the bus journal and of every
    # namespace's throttles; in distributed mode the parent folds its workers into ``controllers`` and
    # ``controller_id`` instead (each worker is a controller of the cluster), so there ``workers`` stays 1.
    workers: int = Field(default=1, ge=1, le=64)
    worker_id: int = Field(default=0, ge=0)

    # Backends. The distributed roles default to Kafka + CouchDB on the local development services
    # (deploy/local/services up). Standalone always uses the SQLite store, and the SQLite bus (activations
    # journalled in the data directory before they are accepted) unless this says "memory" (not durable:
    # for benchmarks and tests only).
    bus: Literal["memory", "kafka", "sqlite"] = "kafka"
    store: Literal["sqlite", "couchdb"] = "couchdb"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic_prefix: str = ""
    # Kafka batching (pywhisk/bus/kafka.py KafkaBus): how long a producer waits to fill a batch, how big one may
    # get, how long a fetch waits at the broker for data. Measured in docs/benchmarks.md ("Several workers").
    kafka_linger_ms: int = Field(default=1, ge=0)
    kafka_max_batch_bytes: int = Field(default=16_384, ge=1024)
    kafka_fetch_max_wait_ms: int = Field(default=500, ge=0)
    couchdb_url: str = "http://127.0.0.1:5984"
    couchdb_username: str | None = None
    couchdb_password: str | None = None
    couchdb_db_prefix: str = "pywhisk_"
    # How long a distributed invoker's batch of activation records waits for more before its ``_bulk_docs``
    # request (pywhisk/backends.py create_store): a CouchDB request costs the server far more than a record in it
    # (docs/benchmarks.md, issue 15: 30 ms bought +9-12 % invokes/s and -25 % of pouchdb-server's CPU per invoke).
    # A blocking caller has its result ahead of the record; reading that record by id right after (``wsk
    # activation logs``) is served by the controller that answered until the record is stored
    # (controller/recent_results.py). Lists, and a GET reaching another controller, see it up to this much later.
    couchdb_record_linger_ms: float = Field(default=30, ge=0, le=1000)
    # Activation records older than this are deleted by the store (None keeps them forever).
    activation_retention_days: float | None = None
    # Largest stored activation record (its JSON): logs past it are cut with OpenWhisk's notice, so a
    # 10 MB log limit still fits CouchDB 3's default max_document_size of 8,000,000 bytes. At most that:
    # the WASM executor formats no log line past it (executor_wasm/stdio.py RECORD_BOUND_BYTES).
    activation_max_bytes: int = Field(default=7_000_000, ge=1_048_576 + 262_144, le=8_000_000)
    # An invoker without a ping for this long is offline ([OW] InvokerSupervision: 10 s).
    invoker_offline_after_s: float = Field(default=10.0, gt=0)
    # How many controllers share the invokers: each gets user_memory / controllers of every invoker.
    controllers: int = Field(default=1, ge=1)

    # Invoker pool (OpenWhisk's ContainerPool): total MB of live instances and idle eviction.
    user_memory_mb: int = Field(default=4096, ge=128)
    # Of it, kept for namespaces running nothing on the invoker, so their first activation never waits for
    # another namespace's (capped at a quarter of user_memory_mb; invoker/pool.py). 512: any action fits.
    user_memory_reserve_mb: int = Field(default=512, ge=0)
    idle_timeout_s: float = Field(default=600.0, gt=0)
    # An idle instance whose executor can pause (Docker) is paused after this ([OW] pause-grace: 10 s).
    pause_grace_s: float = Field(default=10.0, ge=0)

    # A blocking activation's record goes to its controller before it is stored, as OpenWhisk's ResultMessage
    # (the caller is answered without waiting for the store; the completion that frees the slot still follows
    # the store, and the bus message is still acknowledged only then). Off: the answer comes after the record is
    # stored, so a record listed right after a blocking answer is there. Unset: on for the Kafka bus (distributed,
    # where the CouchDB write was half a warm invoke's latency), off for standalone's local SQLite write
    # (``result_before_record``; docs/benchmarks.md, issue 15).
    invoker_result_before_record: bool | None = None
    # Activations one invoker holds in progress (running or queued in its pool) before reading more.
    invoker_max_in_progress: int = Field(default=10_000, ge=1)
    # MB of actions (their code, parameters, annotations) an invoker keeps read; one action takes at most half.
    invoker_action_cache_mb: int = Field(default=128, ge=1)
    # On shutdown, how long running activations may take to finish and be recorded.
    drain_timeout_s: float = 30.0

    # Blocking invokes wait at most this long before answering 202 (OpenWhisk: 60 s).
    max_blocking_wait_ms: int = 60_000
    # Sequences and conductors wait this long past a step's time limit before giving it up, and record a
    # composition lost with its controller this long after its deadline ([OW] the controller's timeout-addon).
    composition_timeout_addon_ms: int = Field(default=60_000, ge=0)
    # How often every controller looks for compositions whose controller died (controller/sequence_journal.py).
    sequence_journal_period_s: float = Field(default=5.0, gt=0)
    # Largest accepted request or invoke payload (OpenWhisk: 1 MB).
    max_payload_bytes: int = 1_048_576
    # Deepest nesting of arrays and objects in an accepted JSON body (invoke parameters, action documents):
    # deeper is a 400 at the controller, so no runtime meets JSON its parser cannot take (serde_json stops
    # at 128 levels, guests with small stacks sooner) and no recursive code of ours runs deep.
    max_json_depth: int = Field(default=64, ge=2, le=1000)
    # The HTTP edge (uvicorn, controller/server.py): an idle keep-alive connection is closed after
    # http_keep_alive_s; a request's head and body must arrive within http_request_read_s of the connection
    # being ready for it (slow clients, slowloris), else 408 and the connection is closed.
    # The keep-alive outlasts the idle expiry of common HTTP clients (httpx and Node's agent 5 s, aiohttp 15 s):
    # a server that closes an idle connection first races the client's next request on it, which then meets
    # a reset or an end of stream and is lost (uvicorn's 5 s against httpx's 5 s: 2 lost requests in 960 bursts
    # after ~5 s idle, the CI's ReadErrors). It stays below http_request_read_s, which also ends idle connections.
    http_keep_alive_s: float = Field(default=30.0, gt=0)
    http_request_read_s: float = Field(default=60.0, gt=0)

    # Namespace throttles for namespaces without limits of their own (OpenWhisk's defaults), enforced by
    # controller/throttles.py; the seeded guest has its own, higher ones (pywhisk/identity.py GUEST_LIMITS).
    invocations_per_minute: int = Field(default=60, ge=0)
    concurrent_invocations: int = Field(default=30, ge=0)
    fires_per_minute: int = Field(default=60, ge=0)
    # How long a controller trusts an identity and its namespace's limits before reading them again: the
    # delay before `pywhisk admin` changes (a deleted key, new limits) apply on a running server.
    identity_cache_ttl_s: float = Field(default=5.0, ge=0)
    # The controller's entity cache (controller/entity_cache.py): actions, packages, triggers and rules, kept at
    # most this long after they were read (the bound on another controller's change going unseen when its
    # invalidation message is lost; 0 turns the cache off), and at most entity_cache_mb of them.
    entity_cache_ttl_s: float = Field(default=5.0, ge=0)
    entity_cache_mb: int = Field(default=64, ge=0)
    # Standalone workers (no bus between them) poll the SQLite store's entity changes this often: the bound on
    # a change through one worker going unseen by another.
    entity_cache_poll_s: float = Field(default=0.1, gt=0)

    # The SQLite bus (standalone): bytes of accepted activations not yet recorded that its journal holds
    # before further invokes are refused (503), and whether each commit is fsynced (safe against power
    # loss, not only against a crash of the process).
    bus_journal_max_bytes: int = Field(default=1 << 30, ge=1 << 20)
    bus_journal_fsync: bool = False

    # Prometheus metrics (pywhisk/metrics.py, docs/deployment.md "Metrics"): distinct (namespace, initiator,
    # action) label triples kept per process before the rest count as "other"; a bearer token that
    # GET /metrics then requires (None: open, for operators who restrict it at the network edge); the port of
    # a distributed invoker's own /metrics (0: none).
    metrics_max_actions: int = Field(default=500, ge=0)
    metrics_token: str | None = None
    invoker_metrics_port: int = Field(default=0, ge=0, le=65535)

    log_level: str = "INFO"

    @property
    def result_before_record(self) -> bool:
        """``invoker_result_before_record``, or by default whether activations cross Kafka (distributed)."""
        if self.invoker_result_before_record is not None:
            return self.invoker_result_before_record
        return self.bus == "kafka"

    @property
    def store_path(self) -> Path:
        return self.data_dir / "pywhisk.sqlite3"

    @property
    def bus_journal_path(self) -> Path:
        return self.data_dir / "bus.sqlite3"
