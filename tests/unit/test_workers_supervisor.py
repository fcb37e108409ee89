"""The ``--workers`` supervisor (launcher/workers.py) with stand-in workers: tiny Python processes.

The supervisor runs in a child process of its own (it blocks signals and waits for them, which must not happen
in the test runner); each stand-in worker notes its pid in a directory, and notes a SIGTERM before it exits.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from launcher.testing import free_port

pytestmark = pytest.mark.unit

DEADLINE_S = 20.0

WORKER = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    notes = Path(os.environ["NOTES"])
    index = sys.argv[sys.argv.index("--worker-id") + 1]
    if (notes / "fail").exists():
        sys.exit(3)
    (notes / f"worker{index}.{os.getpid()}").touch()
    def stop(*_):
        (notes / f"stopped.{os.getpid()}").touch()
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    while True:
        signal.pause()
    """
)

SUPERVISOR = textwrap.dedent(
    """
    import logging, sys
    from launcher import workers
    logging.basicConfig(level="INFO")
    workers.FIRST_RESTART_PAUSE_S = 0.01
    command = [sys.executable, "-c", sys.argv[1]]
    supervisor = workers.Supervisor(command, 2, host="127.0.0.1", port=int(sys.argv[2]), stop_timeout_s=10, name="t")
    sys.exit(supervisor.run())
    """
)


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def supervise(notes: Path) -> Iterator[Callable[[int], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(port: int) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", SUPERVISOR, WORKER, str(port)],
            env={**os.environ, "NOTES": str(notes)},
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def pids(notes: Path, index: int) -> list[int]:
    return [int(p.suffix[1:]) for p in notes.glob(f"worker{index}.*")]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"not {what}"
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_worker_is_restarted_and_sigterm_stops_every_worker(
    supervise: Callable[[int], subprocess.Popen[str]], notes: Path
) -> None:
    supervisor = supervise(free_port())
    wait_until(lambda: len(pids(notes, 0)) == 1 and len(pids(notes, 1)) == 1, "both workers started")
    (first_of_1,) = pids(notes, 1)
    os.kill(first_of_1, signal.SIGKILL)
    wait_until(lambda: len(pids(notes, 1)) == 2, "worker 1 restarted")
    assert len(pids(notes, 0)) == 1  # the other one was left alone

    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=DEADLINE_S) == 0
    live = [pid for index in (0, 1) for pid in pids(notes, index) if pid != first_of_1]
    assert sorted(int(p.suffix[1:]) for p in notes.glob("stopped.*")) == sorted(live)  # each got its SIGTERM
    assert not any(alive(pid) for pid in live)
    assert "worker 1 exited with signal SIGKILL" in (supervisor.stderr.read() if supervisor.stderr else "")


def test_workers_die_with_a_supervisor_killed_by_sigkill(
    supervise: Callable[[int], subprocess.Popen[str]], notes: Path
) -> None:
    supervisor = supervise(free_port())
    wait_until(lambda: len(pids(notes, 0)) == 1 and len(pids(notes, 1)) == 1, "both workers started")
    supervisor.kill()
    supervisor.wait()
    workers = pids(notes, 0) + pids(notes, 1)
    wait_until(lambda: not any(alive(pid) for pid in workers), "the workers gone (PR_SET_PDEATHSIG)")


def test_a_worker_that_keeps_failing_at_start_makes_the_supervisor_give_up(
    supervise: Callable[[int], subprocess.Popen[str]], notes: Path
) -> None:
    (notes / "fail").touch()
    supervisor = supervise(free_port())
    assert supervisor.wait(timeout=DEADLINE_S) == 1
    assert "times in a row at start; giving up" in (supervisor.stderr.read() if supervisor.stderr else "")


def test_a_port_held_by_another_program_fails_the_start_at_once(
    supervise: Callable[[int], subprocess.Popen[str]], notes: Path
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        supervisor = supervise(holder.getsockname()[1])
        assert supervisor.wait(timeout=DEADLINE_S) != 0
    assert "Address already in use" in (supervisor.stderr.read() if supervisor.stderr else "")
    assert pids(notes, 0) == pids(notes, 1) == []
