"""Activation logs from a container's attach stream (reference/openwhisk.md §4.3).

The executor attaches to each container once, before starting it, and reads its stdout and stderr
on the event loop as they are written (``AttachProtocol``), so an activation's logs are usually all
there when its ``/run`` answers, without a Docker call per activation. Reading them back with
``container.logs(since=..., timestamps=True)`` instead cost a median 2.7 ms per activation here (twice
a warm ``/run``), because dockerd re-reads the container's json-file log on every call.

Without a TTY, Docker multiplexes both streams into frames: an 8-byte header (stream id, three zero
bytes, payload size as a big-endian uint32) then the payload. ``LogCollector`` cuts the payloads into
lines, stamps each with its arrival time, and ends an activation at the sentinel line that the proxy
writes to both streams after every activation (and after a failed init).
"""

from __future__ import annotations

import asyncio
import struct
from datetime import UTC, datetime
from typing import NamedTuple

from pywhisk.activation import Messages, format_log_line

SENTINEL = b"XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
STREAMS = {1: "stdout", 2: "stderr"}
# OpenWhisk's largest log limit (10 MB): the memory cap until an /init or /run sets the action's.
DEFAULT_LIMIT_BYTES = 10 * 1_048_576

_HEADER = struct.Struct(">BxxxL")
_LINE, _SENTINEL, _TRUNCATED = 0, 1, 2


class FrameDecoder:
    """Docker's multiplexed stream (``stdcopy``) to ``(stream id, payload)`` frames.

    A frame may arrive split over several reads; its bytes wait in a buffer until it is whole.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The frames completed by ``data``."""
        self._buffer += data
        frames: list[tuple[int, bytes]] = []
        offset, available = 0, len(self._buffer)
        while available - offset >= _HEADER.size:
            stream, size = _HEADER.unpack_from(self._buffer, offset)
            end = offset + _HEADER.size + size
            if end > available:
                break
            frames.append((stream, bytes(self._buffer[offset + _HEADER.size : end])))
            offset = end
        del self._buffer[:offset]
        return frames


class _Entry(NamedTuple):
    what: int  # _LINE, _SENTINEL or _TRUNCATED
    stream: int
    when: datetime
    text: bytes


class LogCollector:
    """One container's output, cut into activations at the sentinels.

    Memory stays bounded by the log limit: once the lines of the current activation pass
    ``limit_bytes`` (a line costs its bytes plus its newline, as in OpenWhisk), a truncation marker
    takes the place of the rest, and the streams are only scanned for their sentinels.
    """

    def __init__(self, limit_bytes: int = DEFAULT_LIMIT_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self.closed = False
        self._decoder = FrameDecoder()
        self._partial = dict.fromkeys(STREAMS, b"")
        self._entries: list[_Entry] = []
        self._sentinels = dict.fromkeys(STREAMS, 0)
        self._charged = 0  # bytes of lines of the current activation
        self._spilled = 0  # bytes of lines already belonging to the next one
        self._skipping = False
        self._done = asyncio.Event()
        self._ended = asyncio.Event()

    @property
    def complete(self) -> bool:
        """Both sentinels of the current activation have arrived."""
        return all(self._sentinels.values())

    def feed(self, data: bytes, when: datetime | None = None) -> None:
        """Take bytes of the attach stream, received at ``when`` (now by default)."""
        when = when or datetime.now(UTC)
        for stream, payload in self._decoder.feed(data):
            if stream in STREAMS:  # 0 (stdin) and 3 (dockerd's own errors) carry no action output
                self._feed_stream(stream, payload, when)
        if self.complete:
            self._done.set()

    def close(self) -> None:
        """The stream ended: the container stopped, or the executor let go of it."""
        self.closed = True
        self._done.set()
        self._ended.set()

    async def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for both sentinels; False if they did not come (or the stream ended)."""
        if not self._done.is_set():
            try:
                async with asyncio.timeout(timeout_s):
                    await self._done.wait()
            except TimeoutError:
                pass
        return self.complete

    async def wait_closed(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the stream to end (the container exited); whether it did."""
        if not self.closed:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._ended.wait()
            except TimeoutError:
                pass
        return self.closed

    def take(self, complete: bool = True, note: bool = True) -> list[str]:
        """The current activation's log lines, formatted with ``format_log_line``.

        ``complete=False`` (a developer error, sentinels that never came, or an image that writes
        none) takes everything received so far, unterminated lines included, and with ``note`` ends
        with OpenWhisk's notice that logs might be missing.
        """
        if not complete:
            for stream, rest in self._partial.items():
                if rest and not self._skipping:
                    self._add_line(stream, rest, datetime.now(UTC))
            self._partial = dict.fromkeys(STREAMS, b"")
        logs: list[str] = []
        leftover: list[_Entry] = []
        ended: set[int] = set()
        prefixes: dict[tuple[int, datetime], str] = {}
        truncated = False
        for entry in self._entries:
            if entry.stream in ended and complete:
                leftover.append(entry)  # written after this stream's sentinel: the next activation's
            elif entry.what == _SENTINEL:
                ended.add(entry.stream)
            elif truncated:
                continue
            elif entry.what == _TRUNCATED:
                logs.append(format_log_line("stderr", Messages.truncated_logs(self.limit_bytes), entry.when))
                truncated = True
            else:
                # One timestamp per read: format it once per read, not per line (a flood is ~10^5 lines).
                key = (entry.stream, entry.when)
                prefix = prefixes.get(key)
                if prefix is None:
                    prefix = prefixes[key] = format_log_line(STREAMS[entry.stream], "", entry.when)
                logs.append(prefix + entry.text.decode("utf-8", "replace"))
        if not complete and note:
            logs.append(format_log_line("stderr", Messages.logs_missing))
        self._reset(leftover)
        return logs

    def _reset(self, leftover: list[_Entry]) -> None:
        self._entries = []
        self._sentinels = dict.fromkeys(STREAMS, 0)
        self._charged = self._spilled = 0
        self._skipping = False
        if not self.closed:
            self._done.clear()
        for entry in leftover:
            self._add(entry.stream, entry.text, entry.when, sentinel=entry.what == _SENTINEL)
        if self.complete:
            self._done.set()

    def _feed_stream(self, stream: int, payload: bytes, when: datetime) -> None:
        data = self._partial[stream] + payload
        if self._skipping and not self._sentinels[stream]:
            # Past the limit, only this stream's sentinel matters: look for it, keeping enough of a
            # tail to find one that spans two frames, instead of splitting a flood into lines.
            found = data.find(SENTINEL)
            if found < 0:
                self._partial[stream] = data[-len(SENTINEL) :]
                return
            data = data[found:]
        lines = data.split(b"\n")
        rest = lines.pop()
        for line in lines:
            self._add_line(stream, line, when)
        if len(rest) > self.limit_bytes:  # a line without end that can never fit
            if not self._sentinels[stream]:
                self._truncate(stream, when)
            rest = rest[-len(SENTINEL) :]
        self._partial[stream] = rest

    def _add_line(self, stream: int, line: bytes, when: datetime) -> None:
        # A sentinel ends a line: an action's unterminated last line comes out glued before it.
        if line.endswith(SENTINEL):
            self._add(stream, line[: -len(SENTINEL)], when, sentinel=True)
        else:
            self._add(stream, line.removesuffix(b"\r"), when)

    def _add(self, stream: int, text: bytes, when: datetime, sentinel: bool = False) -> None:
        cost = len(text) + 1
        if sentinel and not text:
            pass  # the sentinel alone on its line, as proxies write it
        elif self._sentinels[stream]:
            if self._spilled + cost <= self.limit_bytes:
                self._entries.append(_Entry(_LINE, stream, when, text))
                self._spilled += cost
        elif self._skipping:
            pass
        elif self._charged + cost > self.limit_bytes:
            self._truncate(stream, when)
        else:
            self._entries.append(_Entry(_LINE, stream, when, text))
            self._charged += cost
        if sentinel:
            self._entries.append(_Entry(_SENTINEL, stream, when, b""))
            self._sentinels[stream] += 1

    def _truncate(self, stream: int, when: datetime) -> None:
        if not self._skipping:
            self._entries.append(_Entry(_TRUNCATED, stream, when, b""))
            self._skipping = True


class AttachProtocol(asyncio.Protocol):
    """Feeds a container's attach stream, read on the event loop, into its ``LogCollector``."""

    def __init__(self, collector: LogCollector) -> None:
        self.collector = collector

    def data_received(self, data: bytes) -> None:
        self.collector.feed(data)

    def eof_received(self) -> bool:
        self.collector.close()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.collector.close()
