"""Several processes serve one port: ``pywhisk standalone --workers N`` and ``pywhisk controller --workers N``.

One Python process spends ~1 ms of CPU per warm invoke, so one process cannot use a second core (issue 15,
docs/benchmarks.md). With ``--workers N`` the command becomes a small supervisor (``Supervisor``) that starts N
copies of itself, each given ``--worker-id K``, and each worker binds its own listening socket to the same port
with ``SO_REUSEPORT`` (``reuse_port_socket``).

Why a socket per worker rather than one listening socket made by the parent and inherited (uvicorn's own
``--workers``, gunicorn): with one shared accept queue, whichever worker happens to be in ``accept`` takes the
next connection, and on Linux a busy worker keeps winning, so a client with a few keep-alive connections (wrk,
a load balancer, the CLI's pool) can end up on one process. With ``SO_REUSEPORT`` the kernel hashes every new
connection onto one of the listening sockets, spreading them evenly; each worker's accept queue is its own. The
cost: connections still queued in a worker that crashes are reset (a shared queue would hand them to another
worker), and only processes of the same user can join the port. The parent keeps a bound, not listening,
``SO_REUSEPORT`` socket on the port for its whole life, so a start on a port something else holds fails at once,
and nothing that does not set the option can take the port while a worker restarts.

What a worker is (``standalone_worker`` / ``controller_worker``):

- **controller** (distributed): a full controller with its own id, ``--id C`` of a parent with N workers being
  controllers ``C*N .. C*N+N-1`` of a cluster of ``PYWHISK_CONTROLLERS * N`` (OpenWhisk's
  ``controller.clusterSize``), so each consumes its own ``completed{id}`` topic, gets its share of every invoker's
  memory and enforces its share of each namespace's throttles. The Kafka ``cacheInvalidation`` topic keeps their
  entity caches coherent, as between controller commands.
- **standalone**: a whole standalone server (controller, invoker ``K``, executors, in-memory dispatch) on the one
  SQLite store and the one bus journal, which keeps each worker's accepted activations apart
  (pywhisk/bus/sqlite.py); each owns 1/N of the pool's memory, of the journal's bound and of each namespace's
  throttles, and follows the others' entity changes through the store (controller/entity_cache.py).

The supervisor restarts a worker that exits (at once after a crash of a worker that ran a while; with a growing
pause after quick exits, and it gives up, stopping everything, after ``QUICK_EXITS_BEFORE_GIVING_UP`` quick exits
in a row), forwards SIGTERM/SIGINT to every worker and waits for them to drain, killing what has not stopped
after ``drain_timeout_s`` plus a margin. Each worker asks the kernel to SIGTERM it when the parent dies
(``PR_SET_PDEATHSIG``), so even a ``kill -9`` of the parent leaves no worker behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pywhisk.metrics import MULTIPROC_ENV
from pywhisk.settings import Settings

log = logging.getLogger("pywhisk.launcher.workers")

# A worker that exits within this long of its start exited "quickly" (it could not start, most likely).
QUICK_EXIT_S = 10.0
QUICK_EXITS_BEFORE_GIVING_UP = 5
# The pause before restarting a worker after its first quick exit, doubled after each further one.
FIRST_RESTART_PAUSE_S = 0.5
MAX_RESTART_PAUSE_S = 10.0
# Past the drain timeout, how long stopping workers get before they are killed.
STOP_MARGIN_S = 10.0

_SUPERVISED_SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
_PR_SET_PDEATHSIG = 1


def standalone_worker(settings: Settings, worker_id: int) -> Settings:
    """Settings of standalone worker ``worker_id`` of ``settings.workers``: invoker and controller ``worker_id``
    (its own Docker containers, its own instance name), and 1/N of every per-server budget."""
    n = settings.workers
    assert 0 <= worker_id < n, f"expected a worker index below {n}, got {worker_id}"
    return settings.model_copy(
        update={
            "worker_id": worker_id,
            "invoker_id": worker_id,
            "controller_id": worker_id,
            "user_memory_mb": max(settings.user_memory_mb // n, 128),
            "user_memory_reserve_mb": settings.user_memory_reserve_mb // n,
            "invoker_max_in_progress": max(settings.invoker_max_in_progress // n, 1),
            "bus_journal_max_bytes": max(settings.bus_journal_max_bytes // n, 1 << 20),
        }
    )


def controller_worker(settings: Settings, worker_id: int) -> Settings:
    """Settings of controller worker ``worker_id``: controller ``C*N + worker_id`` of ``controllers * N``."""
    n = settings.workers
    assert 0 <= worker_id < n, f"expected a worker index below {n}, got {worker_id}"
    return settings.model_copy(
        update={
            "worker_id": worker_id,
            "controller_id": settings.controller_id * n + worker_id,
            "controllers": settings.controllers * n,
            "workers": 1,  # folded into controllers: throttles and invoker shares divide by the cluster size
        }
    )


def reuse_port_socket(host: str, port: int, *, listen_backlog: int | None) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (listening if ``listen_backlog`` is given)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen_backlog is not None:
            sock.listen(listen_backlog)
            sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def run_api(app: Any, *, worker: bool, **options: Any) -> None:
    """``uvicorn.run(app, **options)``; a worker serves the same on its own ``SO_REUSEPORT`` socket."""
    import uvicorn

    from launcher.gctune import tune_after_start_up

    tune_after_start_up()  # the app is built: its modules, routes and models are frozen out of the collector's walks
    if not worker:
        uvicorn.run(app, **options)
        return
    sock = reuse_port_socket(options["host"], options["port"], listen_backlog=options.get("backlog", 2048))
    server = uvicorn.Server(uvicorn.Config(app, **options))
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(3)  # as uvicorn.run: the app's start-up failed


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_exits: int = 0
    restart_at: float | None = None


class Supervisor:
    """Runs ``command + ["--worker-id", K]`` for K in 0..workers-1 and keeps them running (module docstring).

    ``host``/``port`` are reserved for the supervisor's life (a bound ``SO_REUSEPORT`` socket, not listening).
    """

    def __init__(
        self, command: Sequence[str], workers: int, *, host: str, port: int, stop_timeout_s: float, name: str
    ) -> None:
        self.command = list(command)
        self.workers = [_Worker(k) for k in range(workers)]
        self.host = host
        self.port = port
        self.stop_timeout_s = stop_timeout_s
        self.name = name
        self._parent_pid = os.getpid()

    def run(self) -> int:
        """Until SIGTERM/SIGINT/SIGHUP (then stop every worker: 0) or a worker keeps failing to start (1)."""
        reservation = reuse_port_socket(self.host, self.port, listen_backlog=None)
        signal.pthread_sigmask(signal.SIG_BLOCK, _SUPERVISED_SIGNALS)
        try:
            for worker in self.workers:
                self._start(worker)
            log.warning("%s: %d workers on %s:%d", self.name, len(self.workers), self.host, self.port)
            while True:
                due = [w.restart_at for w in self.workers if w.restart_at is not None]
                wait_s = max(min(due) - time.monotonic(), 0.0) if due else 1.0
                info = signal.sigtimedwait(_SUPERVISED_SIGNALS, wait_s)
                if info is not None and info.si_signo != signal.SIGCHLD:
                    log.warning("%s: %s, stopping the workers", self.name, signal.Signals(info.si_signo).name)
                    return self._stop()
                if not self._reap():
                    self._stop()
                    return 1
                now = time.monotonic()
                for worker in self.workers:
                    if worker.restart_at is not None and worker.restart_at <= now:
                        self._start(worker)
        finally:
            self._kill_all()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SUPERVISED_SIGNALS)
            reservation.close()

    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers if w.process is not None]

    # helpers -------------------------------------------------------------------------------------

    def _start(self, worker: _Worker) -> None:
        worker.restart_at = None
        worker.started_at = time.monotonic()
        worker.process = subprocess.Popen(
            [*self.command, "--worker-id", str(worker.index)], preexec_fn=self._in_child, close_fds=True
        )
        log.info("%s: worker %d is pid %d", self.name, worker.index, worker.process.pid)

    def _in_child(self) -> None:
        # Runs between fork and exec: the worker must not inherit the blocked signals, and dies with its parent.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SUPERVISED_SIGNALS)
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != self._parent_pid:  # the parent died before the request was made
            os.kill(os.getpid(), signal.SIGTERM)

    def _reap(self) -> bool:
        """Collect exited workers and schedule their restarts; False when one keeps failing to start."""
        now = time.monotonic()
        for worker in self.workers:
            if worker.process is None or (code := worker.process.poll()) is None:
                continue
            ran_s = now - worker.started_at
            worker.process = None
            worker.quick_exits = worker.quick_exits + 1 if ran_s < QUICK_EXIT_S else 0
            if worker.quick_exits >= QUICK_EXITS_BEFORE_GIVING_UP:
                log.error(
                    "%s: worker %d exited %d times in a row at start; giving up",
                    self.name,
                    worker.index,
                    worker.quick_exits,
                )
                return False
            doubling = 2 ** (worker.quick_exits - 1)
            pause = 0.0 if worker.quick_exits == 0 else min(FIRST_RESTART_PAUSE_S * doubling, MAX_RESTART_PAUSE_S)
            log.warning(
                "%s: worker %d exited with %s after %.1f s; restarting it in %.1f s",
                self.name,
                worker.index,
                _describe(code),
                ran_s,
                pause,
            )
            worker.restart_at = now + pause
        return True

    def _stop(self) -> int:
        running = [w.process for w in self.workers if w.process is not None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        codes: list[int] = []
        for process in running:
            try:
                codes.append(process.wait(timeout=max(deadline - time.monotonic(), 0.0)))
            except subprocess.TimeoutExpired:
                log.error("%s: pid %d did not stop in %.0f s; killing it", self.name, process.pid, self.stop_timeout_s)
                process.kill()
                codes.append(process.wait())
        for worker in self.workers:
            worker.process = None
        return 0 if all(code == 0 for code in codes) else 1

    def _kill_all(self) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()


def supervise(settings: Settings, role: str) -> int:
    """Run this very command (``sys.argv``) as ``settings.workers`` supervised workers; the exit status."""
    command = [sys.executable, "-m", "pywhisk", *sys.argv[1:]]
    with _shared_metrics_dir():
        return _supervisor(command, settings, role).run()


@contextlib.contextmanager
def _shared_metrics_dir() -> Iterator[None]:
    """Counters and histograms of every worker in one place, so a scrape of any worker counts them all.

    prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, pywhisk/metrics.py) must be chosen
    before a worker imports it; an operator's own directory is kept, otherwise the supervisor makes an empty one
    for its life and removes it after the workers have stopped.
    """
    if os.environ.get(MULTIPROC_ENV):
        yield
        return
    directory = tempfile.mkdtemp(prefix="pywhisk-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


def _supervisor(command: list[str], settings: Settings, role: str) -> Supervisor:
    return Supervisor(
        command,
        settings.workers,
        host=settings.host,
        port=settings.port,
        stop_timeout_s=settings.drain_timeout_s + STOP_MARGIN_S,
        name=f"pywhisk {role}",
    )


def _describe(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"status {code}"
