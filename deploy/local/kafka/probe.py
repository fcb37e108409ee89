"""Is a Kafka broker serving clients on HOST:PORT?  Used by deploy/local/kafka.sh, stdlib only.

An open port is not enough: a KRaft broker accepts connections before it has caught up with the
metadata log and been unfenced, and until then clients get "no brokers" or LEADER_NOT_AVAILABLE.
So ask for cluster metadata and succeed only when the broker lists a live broker (itself), which
happens once it is unfenced. Exit 0 and print the cluster id when ready, exit 1 with the reason
otherwise.
"""

from __future__ import annotations

import socket
import struct
import sys

API_VERSIONS, METADATA = 18, 3
CLIENT_ID = b"pywhisk-kafka-probe"


def main() -> int:
    host, port = sys.argv[1], int(sys.argv[2])
    try:
        with socket.create_connection((host, port), timeout=2.0) as sock:
            sock.settimeout(2.0)
            versions = api_versions(sock)
            low, high = versions.get(METADATA, (0, -1))
            # v4..v8 share the non-flexible encoding written below; Kafka 4.x serves v4..v13.
            version = min(high, 8)
            if version < max(low, 4):
                print(f"no Metadata version we speak (broker offers v{low}..v{high})")
                return 1
            brokers, cluster_id = metadata(sock, version)
    except (OSError, struct.error, ValueError) as err:
        print(f"{host}:{port}: {err or type(err).__name__}")
        return 1
    if not brokers:
        print(f"{host}:{port} answers but lists no live broker yet (still starting or fenced)")
        return 1
    print(f"cluster {cluster_id}, brokers {', '.join(brokers)}")
    return 0


def api_versions(sock: socket.socket) -> dict[int, tuple[int, int]]:
    # ApiVersions v0 is understood by every broker, before any version negotiation.
    reader = Reader(call(sock, API_VERSIONS, 0, 1, b""))
    error = reader.int16()
    if error:
        raise ValueError(f"ApiVersions error code {error}")
    return {reader.int16(): (reader.int16(), reader.int16()) for _ in range(reader.int32())}


def metadata(sock: socket.socket, version: int) -> tuple[list[str], str | None]:
    body = struct.pack(">ib", 0, 0)  # no topics, do not auto-create
    if version >= 8:
        body += struct.pack(">bb", 0, 0)  # no authorized-operations lists
    reader = Reader(call(sock, METADATA, version, 2, body))
    reader.int32()  # throttle_time_ms
    brokers = []
    for _ in range(reader.int32()):
        node_id, host, port = reader.int32(), reader.string(), reader.int32()
        reader.string()  # rack
        brokers.append(f"{node_id}@{host}:{port}")
    return brokers, reader.string()


def call(sock: socket.socket, api_key: int, version: int, correlation_id: int, body: bytes) -> bytes:
    header = struct.pack(">hhih", api_key, version, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    request = header + body
    sock.sendall(struct.pack(">i", len(request)) + request)
    (size,) = struct.unpack(">i", recv_exactly(sock, 4))
    response = recv_exactly(sock, size)
    (answered,) = struct.unpack(">i", response[:4])
    if answered != correlation_id:
        raise ValueError(f"correlation id {answered} != {correlation_id}")
    return response[4:]


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        data += chunk
    return data


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def int16(self) -> int:
        (value,) = struct.unpack_from(">h", self.data, self.pos)
        self.pos += 2
        return int(value)

    def int32(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return int(value)

    def string(self) -> str | None:
        size = self.int16()
        if size < 0:
            return None
        value = self.data[self.pos : self.pos + size].decode()
        self.pos += size
        return value


if __name__ == "__main__":
    sys.exit(main())
