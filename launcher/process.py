"""Process-level set-up shared by the server roles: the open-files limit and quiet signal exits."""

from __future__ import annotations

import resource
import signal
from pathlib import Path


def raise_open_files_limit() -> None:
    """Raise the open-files limit as far as allowed: thousands of simultaneous activations each hold a
    connection, and a WASM run holds ~4 descriptors (its stdio memfds) while it is in progress. A
    privileged process may go up to the kernel's ``fs.nr_open`` (capped at 2^20); others to their
    hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        ceiling = min(int(Path("/proc/sys/fs/nr_open").read_text()), 1 << 20)
    except (OSError, ValueError):
        ceiling = hard
    for target in (max(ceiling, hard), hard):
        if soft >= target:
            return
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(target, hard)))
            return
        except (ValueError, OSError):  # not privileged: stay within the hard limit
            continue


def exit_quietly_after_shutdown() -> None:
    """uvicorn re-raises SIGINT/SIGTERM once its graceful shutdown is done; by then everything is
    closed, so the re-raised signal should end the process with status 0, not kill it."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
