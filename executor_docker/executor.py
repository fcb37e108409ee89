"""``DockerExecutor``: actions in OpenWhisk action-proxy containers (``python:3.11``, ``nodejs:18``, ``blackbox``).

One container per instance, as OpenWhisk's DockerContainer: created and started on the default
bridge with OpenWhisk's run args (containers.py), attached before it starts so that its output streams
in (logs.py), then driven over HTTP with the action-proxy protocol (reference/openwhisk.md §4). The
docker SDK is synchronous, so its calls run on a dedicated thread pool; the proxies are reached with
one ``httpx.AsyncClient`` that keeps a connection to each container alive (a ``/run`` costs the proxy
0.3 ms on a kept-alive connection, 0.6 ms on a new one: reference/measurements.md "Docker here").
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import docker
import httpx
import orjson

from executor_docker.containers import (
    NODEJS_IMAGE,
    PROXY_PORT,
    PYTHON_IMAGE,
    SKELETON_IMAGE,
    DockerHost,
    StartedContainer,
    unknown_runtime_error,
)
from executor_docker.logs import AttachProtocol, LogCollector
from executor_docker.oci import ContainerHost, OciHost, OciStarted, OutputPipes, connect_output
from executor_docker.settings import DockerSettings
from pywhisk.errors import ExecutorError
from pywhisk.executor import ExecutorEnvironment, InitRequest, InstanceSpec, ProxyResult, RunRequest

PYTHON_KINDS = frozenset({"python:3.11", "python:3", "python:default"})
NODEJS_KINDS = frozenset({"nodejs:18", "nodejs:default"})
KINDS = PYTHON_KINDS | NODEJS_KINDS | {"blackbox"}
# dockerd serialises container starts (~5.5/s on 2 cores, measurements.md), so more threads do not
# start more containers; they keep pause/unpause/remove (~6-85 ms each) from queueing behind starts.
DOCKER_THREADS = 16
# A proxy listens ~32 ms after `docker start` returns (measurements.md): poll its port every 2 ms.
READY_POLL_S = 0.002
# How long create() waits for the proxy. A slower one (a blackbox image with a long set-up) is then
# waited for by init(), bounded by the action's timeout, as OpenWhisk's initialize retries the connection.
READY_WAIT_S = 10.0
# How long the connection opened for the first /init may take; past it, the /init opens its own.
CONNECT_TIMEOUT_S = 1.0
# After a good /run, both sentinels are waited for this long ([OW] DockerContainer: waitForLogs 2 s).
SENTINEL_WAIT_S = 2.0
# After a developer error OpenWhisk does not wait for sentinels; the attach stream trails the HTTP
# answer by a hop through dockerd, so take what comes within this grace (or until the stream ends).
ERROR_LOGS_GRACE_S = 0.05
# Only runtime images and the native skeleton frame their logs with sentinels ([OW] Exec.scala:
# BlackBoxExec sentinelledLogs = native); the logs of other blackbox images are taken after this.
UNFRAMED_LOGS_GRACE_S = 0.01
# After a dropped connection, how long to wait for the container's exit to show (see _failed).
EXIT_WAIT_S = 2.0
KEEPALIVE_S = 60.0
_JSON = {"Content-Type": "application/json"}

T = TypeVar("T")
logger = logging.getLogger(__name__)


class UnknownInstance(ExecutorError):
    """No container was created for this instance id (or it was destroyed)."""


class _ProxyGone(Exception):
    """The container's output ended before its proxy listened: it exited."""


@dataclass(slots=True)
class _Container:
    spec: InstanceSpec
    started: StartedContainer | OciStarted
    url: str
    logs: LogCollector
    attach: asyncio.BaseTransport | OutputPipes  # dockerd's attach stream, or crun-direct's output pipes
    ready: asyncio.Task[None]
    sentinelled: bool
    host: ContainerHost  # dockerd (DockerHost) or crun-direct (OciHost)
    http: httpx.AsyncClient | None = None  # this proxy's own client (crun-direct: over its Unix socket)
    paused: bool = False


class DockerExecutor:
    """Runs actions in action-proxy containers on the local Docker daemon.

    The invoker's ``environment`` names its containers' owner and sizes their CPU shares; ``settings``
    (``PYWHISK_DOCKER_*`` by default) bound their disk and choose their OCI runtime; ``images`` overrides
    the runtime image of a kind (tests), ``container_runtimes`` the OCI runtime of a kind (runtimes.json's
    ``containerRuntime``, read by the plugin).
    """

    name = "docker"

    def __init__(
        self,
        environment: ExecutorEnvironment,
        client: docker.DockerClient,
        images: Mapping[str, str] | None = None,
        settings: DockerSettings | None = None,
        container_runtimes: Mapping[str, str] | None = None,
    ) -> None:
        self.environment = environment
        # Unique per invoker and deployment on this host: start() removes this owner's containers.
        data_dir = environment.data_dir.expanduser().resolve()
        self._data_dir = data_dir
        self.owner = self._owner_of(environment.invoker_id)
        self.host = DockerHost(client, self.owner, settings)
        self.images = (
            {kind: PYTHON_IMAGE for kind in PYTHON_KINDS}
            | {kind: NODEJS_IMAGE for kind in NODEJS_KINDS}
            | dict(images or {})
        )
        self.settings = self.host.settings
        # PYWHISK_DOCKER_ENGINE=crun-direct: actions annotated `network: false` skip dockerd (oci.py).
        self.oci = OciHost(client, self.owner, self.settings) if self.settings.engine == "crun-direct" else None
        self.container_runtimes = dict(container_runtimes or {})
        self._known_runtimes: set[str] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._http: httpx.AsyncClient | None = None
        self._tls: ssl.SSLContext | None = None  # shared by the per-container clients (_proxy_client)
        self._containers: dict[str, _Container] = {}

    async def start(self) -> None:
        """Start the thread pool and the HTTP client, and remove containers left by an earlier run."""
        if self._pool is not None:
            return  # started already: the owner's containers now are this run's own
        self._pool = ThreadPoolExecutor(max_workers=DOCKER_THREADS, thread_name_prefix="docker")
        if self._tls is None:
            # Off the loop, not at the first container in the middle of traffic (a 77 ms stall of every request,
            # measured during loadgen isolation).
            self._tls = await asyncio.to_thread(ssl.create_default_context)
        if self._http is None:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=KEEPALIVE_S)
            # trust_env=False: an HTTP_PROXY of the host must not route the bridge through a proxy.
            self._http = httpx.AsyncClient(limits=limits, trust_env=False, verify=self._shared_tls())
        self._known_runtimes = await self._docker(self.host.known_runtimes)
        for runtime in sorted({self.settings.runtime, *self.container_runtimes.values()} - self._known_runtimes):
            logger.warning(
                "containers of some kinds cannot start: %s", unknown_runtime_error(runtime, self._known_runtimes)
            )
        removed = await self._docker(self.host.remove_owned)
        if (first_gone := self.environment.adopts_invokers_from) is not None:
            removed += await self._docker(self.host.remove_owned_by_gone_invokers, first_gone, self._owner_of)
        if self.oci is not None:
            missing = self.oci.available()
            if missing is not None:
                logger.warning("PYWHISK_DOCKER_ENGINE=crun-direct, but %s: all containers go through dockerd", missing)
                self.oci = None
            else:
                removed += await self._docker(self.oci.remove_owned)
        if removed:
            logger.info("removed %d containers left by an earlier run of %s", removed, self.owner)

    def _owner_of(self, invoker_id: int) -> str:
        return f"invoker{invoker_id}@{socket.gethostname()}:{self._data_dir}"

    async def close(self) -> None:
        """Remove every container this executor created, then stop the HTTP client and the pool."""
        await asyncio.gather(*(self.destroy(i) for i in list(self._containers)), return_exceptions=True)
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    def kinds(self) -> set[str]:
        """``python:3.11`` (with ``python:3``, ``python:default``), ``nodejs:18`` (``nodejs:default``), ``blackbox``."""
        return set(KINDS)

    async def create(self, spec: InstanceSpec) -> None:
        """Create and start a container and wait (up to ``READY_WAIT_S``) for its proxy to listen.

        Without an action this is a prewarm (stem-cell) container: ``init`` works on it any time later.
        """
        if spec.kind not in KINDS:
            raise ExecutorError(f"the docker executor cannot run kind {spec.kind!r}")
        if spec.instance_id in self._containers:
            raise ExecutorError(f"instance {spec.instance_id} already exists")
        image = self._image(spec)
        users_image = spec.kind == "blackbox" and image != self.images.get("blackbox", SKELETON_IMAGE)
        runtime = await self._container_runtime(spec.kind)
        cpu_shares = max(1024 * spec.memory_mb // self.environment.user_memory_mb, 2)  # [OW] ContainerPoolConfig
        if self.oci is not None and not users_image and spec.annotations.get("network") is False:
            await self._create_direct(spec, self.oci, image, cpu_shares)
            return
        start = self.host.start_container
        job = self._submit(start, spec.instance_id, image, spec.memory_mb, cpu_shares, users_image, runtime)
        try:
            started = await asyncio.shield(job)
        except asyncio.CancelledError:
            job.add_done_callback(self._discard)  # the container starts all the same: remove it then
            raise
        logs = LogCollector()
        try:
            loop = asyncio.get_running_loop()
            attach, _ = await loop.create_connection(lambda: AttachProtocol(logs), sock=started.attach)
        except BaseException:
            started.attach.close()
            await self._docker(self.host.remove, started.container_id)
            raise
        url = f"http://{started.ip}:{PROXY_PORT}"
        sentinelled = not users_image
        http = self._proxy_client()
        # A user's image may answer an unknown path in its own way: only pywhisk's proxies get the connect.
        probe = _wait_listening(started.ip, logs, connect=http if sentinelled else None, url=url)
        ready = asyncio.create_task(probe, name=f"docker-ready-{spec.instance_id}")
        container = _Container(spec, started, url, logs, attach, ready, sentinelled, self.host, http)
        self._containers[spec.instance_id] = container
        await asyncio.wait({ready}, timeout=READY_WAIT_S)

    async def _create_direct(self, spec: InstanceSpec, oci: OciHost, image: str, cpu_shares: int) -> None:
        """``create`` through crun-direct: no network, the proxy on a Unix socket, output on pipes (oci.py)."""
        job = self._submit(oci.start_container, spec.instance_id, image, spec.memory_mb, cpu_shares)
        try:
            started = await asyncio.shield(job)
        except asyncio.CancelledError:
            job.add_done_callback(self._discard_direct)  # it starts all the same: remove it then
            raise
        logs = LogCollector()
        try:
            output = await connect_output(started, logs)
        except BaseException:
            started.close()
            await self._docker(oci.remove, started.container_id)
            raise
        uds = str(started.socket_path)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=KEEPALIVE_S)
        transport = httpx.AsyncHTTPTransport(uds=uds, limits=limits, verify=self._shared_tls())
        http = httpx.AsyncClient(transport=transport, trust_env=False)
        probe = _wait_listening("", logs, uds, connect=http, url="http://action")
        ready = asyncio.create_task(probe, name=f"crun-ready-{spec.instance_id}")
        container = _Container(spec, started, "http://action", logs, output, ready, True, oci, http)
        self._containers[spec.instance_id] = container
        await asyncio.wait({ready}, timeout=READY_WAIT_S)

    def _discard_direct(self, job: asyncio.Future[OciStarted]) -> None:
        if job.cancelled() or job.exception() is not None or self.oci is None:
            return
        started = job.result()
        started.close()
        with contextlib.suppress(RuntimeError):  # the pool is shut down: start() of the next run removes it
            self._submit(self.oci.remove, started.container_id).add_done_callback(_retrieve)

    async def init(self, instance_id: str, request: InitRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        """``POST /init``; a developer error (no answer, or not 200) comes with the logs written so far."""
        container = await self._active(instance_id, log_limit_bytes)
        # As [OW] WhiskAction.containerInitializer: `code` if present, `env` if not empty.
        value = request.model_dump(exclude_none=True, exclude=set() if request.env else {"env"})
        body = orjson.dumps({"value": value})
        started = time.perf_counter()
        timeout_s = timeout_ms / 1000
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(container.ready)  # as OpenWhisk, wait for the proxy within the timeout
                response = await self._post(container, "/init", body, timeout_s)
        except (TimeoutError, httpx.TimeoutException):
            return await self._failed(container, started, timed_out=True)
        except (_ProxyGone, httpx.HTTPError):
            return await self._failed(container, started)
        if response.status_code != 200:
            return await self._failed(container, started, response)
        # An init's output stays in the stream: OpenWhisk reads an activation's logs once, after /run.
        return ProxyResult(status=200, body=response.text, duration_ms=_since(started))

    async def run(self, instance_id: str, request: RunRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        """``POST /run``, killing the container when it overruns ``timeout_ms``; then its logs."""
        container = await self._active(instance_id, log_limit_bytes)
        body = orjson.dumps(request.model_dump(exclude_none=True))
        started = time.perf_counter()
        timeout_s = timeout_ms / 1000
        try:
            async with asyncio.timeout(timeout_s):
                response = await self._post(container, "/run", body, timeout_s)
        except (TimeoutError, httpx.TimeoutException):
            return await self._failed(container, started, timed_out=True)
        except httpx.HTTPError:
            return await self._failed(container, started)
        duration_ms = _since(started)
        logger.debug("/run of %s: %d in %.1f ms", instance_id, response.status_code, duration_ms)
        if response.status_code != 200 or response.content.lstrip()[:1] not in (b"{", b"["):
            return await self._failed(container, started, response)
        if container.sentinelled:
            complete = await container.logs.wait(SENTINEL_WAIT_S)
            logs = container.logs.take(complete)
        else:  # as OpenWhisk, take what is there, with a moment for output still passing through dockerd
            await container.logs.wait(UNFRAMED_LOGS_GRACE_S)
            logs = container.logs.take(complete=False, note=False)
        return ProxyResult(status=200, body=response.text, logs=logs, duration_ms=duration_ms)

    async def pause(self, instance_id: str) -> None:
        """``docker pause`` an idle container (~10 ms, measurements.md); ``init``/``run`` resume it."""
        container = self._container(instance_id)
        if not container.paused:
            await self._docker(container.host.pause, container.started.container_id)
            container.paused = True

    async def resume(self, instance_id: str) -> None:
        """``docker unpause`` (~10 ms, measurements.md)."""
        container = self._container(instance_id)
        if container.paused:
            await self._docker(container.host.unpause, container.started.container_id)
            container.paused = False

    async def destroy(self, instance_id: str) -> None:
        """Kill and remove the container; idempotent."""
        container = self._containers.pop(instance_id, None)
        if container is None:
            return
        container.ready.cancel()
        container.ready.add_done_callback(_retrieve)
        try:
            await self._docker(container.host.remove, container.started.container_id)
        finally:
            container.attach.close()
            if container.http is not None:
                await container.http.aclose()

    async def _active(self, instance_id: str, log_limit_bytes: int) -> _Container:
        container = self._container(instance_id)
        if container.paused:  # the pool resumes before use; a missed resume must not hang the call
            await self.resume(instance_id)
        container.logs.limit_bytes = log_limit_bytes
        return container

    async def _failed(
        self, container: _Container, started: float, response: httpx.Response | None = None, timed_out: bool = False
    ) -> ProxyResult:
        """A developer error: no answer (timeout, connection lost), a failing status or a non-JSON result."""
        duration_ms = _since(started)
        container_id = container.started.container_id
        memory_exhausted = exited = False
        try:
            if timed_out:  # the invoker destroys it; kill it now so that it stops using CPU and its stream ends
                await self._docker(container.host.kill, container_id)
            elif response is None:
                # The connection dropped: the proxy died, most likely. dockerd marks the container exited
                # (and OOMKilled) 80-240 ms after the drop, and its output ends just after (measured):
                # wait for that end before asking, or the answer would still be "running".
                await container.logs.wait_closed(EXIT_WAIT_S)
                found = await self._docker(container.host.post_mortem, container_id, container.started.oom_counter)
                memory_exhausted, exited = found.memory_exhausted, not found.running or container.logs.closed
            else:  # the proxy answered; a child of the action may have been OOM-killed all the same
                found = await self._docker(container.host.post_mortem, container_id, container.started.oom_counter)
                memory_exhausted = found.memory_exhausted
        except ExecutorError as error:
            logger.warning("examining container %s after a failure failed: %s", container_id[:12], error)
        await container.logs.wait(ERROR_LOGS_GRACE_S)
        return ProxyResult(
            status=None if response is None else response.status_code,
            body="" if response is None else response.text,
            logs=container.logs.take(complete=False),
            timed_out=timed_out,
            memory_exhausted=memory_exhausted,
            exited=exited,
            duration_ms=duration_ms,
        )

    def _proxy_client(self) -> httpx.AsyncClient:
        """A client (a connection pool) of one container's proxy. httpcore's pool looks at each of its
        connections, with a poll() of each idle socket, on every request and every release, so one pool for all
        containers costs O(all connections) per run: at limits.concurrency 50, ~1,000 connections took the event
        loop (30 s sleeps lasted up to 88 s, docs/benchmarks.md). Per container it is at most its concurrency."""
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=KEEPALIVE_S)
        return httpx.AsyncClient(limits=limits, trust_env=False, verify=self._shared_tls())

    def _shared_tls(self) -> ssl.SSLContext:
        """The TLS context every client and transport of this executor shares (plain HTTP never uses it): httpx
        would build one for each, loading the CA bundle, 30-240 ms on the loop. ``start`` builds it off the loop."""
        if self._tls is None:  # not started: a container driven directly
            self._tls = ssl.create_default_context()
        return self._tls

    async def _post(self, container: _Container, path: str, body: bytes, timeout_s: float) -> httpx.Response:
        if self._http is None:
            raise ExecutorError("the docker executor is not started")
        client = container.http or self._http
        return await client.post(container.url + path, content=body, headers=_JSON, timeout=timeout_s)

    async def _container_runtime(self, kind: str) -> str:
        """The kind's OCI runtime (runtimes.json), else the setting's; one dockerd knows, or an ExecutorError."""
        runtime = self.container_runtimes.get(kind, self.settings.runtime)
        if runtime not in self._known_runtimes:  # registered since start()? ask once more
            self._known_runtimes = await self._docker(self.host.known_runtimes)
            if runtime not in self._known_runtimes:
                raise ExecutorError(unknown_runtime_error(runtime, self._known_runtimes))
        return runtime

    def _image(self, spec: InstanceSpec) -> str:
        if spec.kind == "blackbox":
            if not spec.image or spec.image.partition(":")[0] == "openwhisk/dockerskeleton":
                return self.images.get("blackbox", SKELETON_IMAGE)  # `wsk action create --native`
            return spec.image
        return self.images[spec.kind]

    def _container(self, instance_id: str) -> _Container:
        try:
            return self._containers[instance_id]
        except KeyError:
            raise UnknownInstance(f"no docker container for instance {instance_id}") from None

    def _submit(self, fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
        if self._pool is None:
            raise ExecutorError("the docker executor is not started")
        # In the caller's context: lines from the pool carry its activation's ids (pywhisk/logs.py).
        return asyncio.get_running_loop().run_in_executor(self._pool, contextvars.copy_context().run, fn, *args)

    async def _docker(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on the pool; a failure of dockerd itself (e.g. it went away) is an ExecutorError."""
        try:
            return await self._submit(fn, *args)
        except ExecutorError:
            raise
        except Exception as error:
            logger.exception("docker call %s failed", getattr(fn, "__name__", fn))
            raise ExecutorError(f"the docker executor failed: {error!r}") from error

    def _discard(self, job: asyncio.Future[StartedContainer]) -> None:
        if job.cancelled() or job.exception() is not None:
            return
        started = job.result()
        started.attach.close()
        with contextlib.suppress(RuntimeError):  # the pool is shut down: start() of the next run removes it
            self._submit(self.host.remove, started.container_id).add_done_callback(_retrieve)


async def _wait_listening(
    ip: str, logs: LogCollector, uds: str | None = None, *, connect: httpx.AsyncClient | None = None, url: str = ""
) -> None:
    """Poll until the proxy accepts connections (TCP, or on ``uds``); ``_ProxyGone`` if the container ends.

    With ``connect``, then open that client's keep-alive connection to the proxy (``_open_connection``).
    """
    started = time.monotonic()
    while not logs.closed:
        try:
            if uds is not None:
                _, writer = await asyncio.open_unix_connection(uds)
            else:
                _, writer = await asyncio.open_connection(ip, PROXY_PORT)
        except OSError:
            # A slow image (a blackbox that sets up for seconds) is polled less eagerly.
            await asyncio.sleep(READY_POLL_S if time.monotonic() - started < 1.0 else 0.05)
            continue
        writer.close()
        if connect is not None:
            await _open_connection(connect, url)
        return
    raise _ProxyGone


async def _open_connection(http: httpx.AsyncClient, url: str) -> None:
    """Leave a kept-alive connection to a proxy that listens in ``http``'s pool, so that the first ``/init``
    does not connect on the activation's path: a stem cell's ``/init`` took 2 ms less (TCP connect, and the
    proxy's thread for the connection; docs/benchmarks.md, issue 17). A request on a path pywhisk's proxies
    refuse (404, or 500 from Node.js's) without a word to the logs is what httpx offers to open one."""
    with contextlib.suppress(httpx.HTTPError):  # the /init then connects itself, and finds what is wrong
        await http.get(url + "/", timeout=CONNECT_TIMEOUT_S)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a background future's outcome as seen (no "exception was never retrieved" at exit)."""
    if not future.cancelled():
        future.exception()


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
