"""pywhisk's action proxy: the OpenWhisk runtime protocol on port 8080 (reference/openwhisk.md §4).

Over 400 lines because it is one self-contained program copied into the runtime images (standard library only).

Runs inside the runtime images as PID 1 with the image's own Python 3 and nothing but the standard library.

    POST /init  {"value": {"name", "main", "code", "binary", "env"}}   once per container
    POST /run   {"value": params, "namespace", "action_name", ...}    one at a time, or concurrently (below)

Two kinds of action:

* Python (the default): source text, or a base64 zip holding ``__main__.py`` (and optionally a
  ``virtualenv/``), is loaded as the module ``main__`` and ``main(args)`` (or ``value.main``) is called
  in this process, so module state survives between runs as it does in OpenWhisk's launcher.
* native (OpenWhisk's dockerskeleton): an executable, given as a script starting with ``#!``, an ELF
  binary, or a zip holding ``exec``. Each run starts it with the params JSON as argv[1] and on stdin; the
  last line of its stdout is the result, the lines before it are logs. Chosen by ``OW_ACTION_KIND=native``
  or, in the Python image, when the code is an executable or a zip with ``exec`` and no ``__main__.py``.

The answers and their texts are the actionloop proxy's, with the Python image's ``OW_LOG_INIT_ERROR``
behaviour: a failed init writes its error and the log sentinels, and answers 502. An exception in
``main`` is an application error (200 ``{"error": str(exc)}``), as in OpenWhisk's Python launcher.

Concurrent runs (OpenWhisk's intra-container concurrency, an action's ``limits.concurrency`` > 1): with
``__OW_ALLOW_CONCURRENT=true`` in the environment, as OpenWhisk's Node.js and Java runtimes read it, a ``/run``
is taken while others are in flight, each on its connection's thread (the images set it; the invoker only
sends overlapping runs to an action whose limit allows them). OpenWhisk's Python runtime (actionloop) cannot
do this at all: its Go proxy feeds one process through one pipe. Without the variable runs queue on a lock.
What concurrent runs share, as in OpenWhisk's Node.js runtime: the module's globals, and the ``__OW_*``
variables, which hold the latest run's values (``os.environ`` is one per process). Their logs cannot be told
apart either: a run's sentinels end the lines written so far by every run, so the invoker gives each
activation the lines written since the previous run ended (OpenWhisk collects no logs for such actions
unless a log driver does). Native runs write their output after the executable exits, so their lines and
sentinels go out under one lock and stay with their activation.

The port is argv[1], else ``__OW_PROXY_PORT``, else 8080; with ``__OW_PROXY_SOCKET`` set, a Unix socket at that
path. Nothing but the action's own output and the sentinels is written to stdout and stderr: the invoker reads
those as the activation's logs.

Start-up time is the cold-start floor, so the module imports only what serving needs (no http.server,
whose email/http.client imports cost ~20 ms); the rest is imported on first use.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import socketserver
import sys
import threading

# typing costs ~3 ms to import; annotations are only read by mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Answer = tuple[int, Any]

SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n"
REINIT = "Cannot initialize the action more than once."
NO_CODE = "Missing main/no code to execute."
INIT_FAILED = "The action failed to generate or locate a binary. See logs for details."
NOT_INITIALIZED = "no action defined yet"
NOT_A_DICTIONARY = "The action did not return a dictionary or array."
COMMAND_EXITED = "command exited"
# Longer arguments do not fit in one argv string (MAX_ARG_STRLEN, linux/binfmts.h): stdin only then.
MAX_ARG_STRLEN = 131071
# Concurrent runs write their sentinels (and a native run its output) under this lock, so that what one run
# writes in a block is never cut by another's.
OUTPUT_LOCK = threading.Lock()
REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class InitError(Exception):
    """The action could not be loaded; the message goes to stderr, the client gets INIT_FAILED."""


class Ran:
    """What a run answered, and the output the proxy writes before its sentinels (a native run's lines)."""

    __slots__ = ("err", "exited", "out", "result", "status")

    def __init__(self, status: int, result: Any, exited: bool = False, out: str = "", err: str = "") -> None:
        self.status, self.result, self.exited, self.out, self.err = status, result, exited, out, err


class PythonAction:
    """A ``main`` function loaded from source or from a zip's ``__main__.py``."""

    def __init__(self, workdir: str, payload: bytes, binary: bool, main: str) -> None:
        if binary:
            extract_zip(payload, workdir)
            path = os.path.join(workdir, "__main__.py")
            if not os.path.isfile(path):
                raise InitError("Zip file does not include __main__.py")
            activate_virtualenv(os.path.join(workdir, "virtualenv"))
        else:
            path = os.path.join(workdir, "__main__.py")
            with open(path, "wb") as f:
                f.write(payload)
        # Like OpenWhisk's launcher, the action runs from its own directory with its files importable.
        sys.path.insert(0, workdir)
        os.chdir(workdir)
        module = type(sys)("main__")
        module.__file__ = path
        sys.modules["main__"] = module
        try:
            with open(path, "rb") as f:
                code = compile(f.read(), path, "exec")
            exec(code, module.__dict__)
        except BaseException as exc:
            raise InitError(format_exception(exc)) from None
        function = getattr(module, main, None)
        if not callable(function):
            raise InitError(f"{path} has no function named {main!r}")
        self.main = function

    def run(self, params: Any) -> Ran:
        try:
            result = self.main(params)
        except SystemExit:
            # In OpenWhisk the launcher process is gone after this; the container is not usable any more.
            return Ran(400, {"error": COMMAND_EXITED}, exited=True)
        except Exception as exc:
            return Ran(200, {"error": str(exc)}, err=format_exception(exc))
        return Ran(200, result)


class NativeAction:
    """An executable run once per activation (OpenWhisk's dockerskeleton contract)."""

    def __init__(self, workdir: str, payload: bytes, binary: bool) -> None:
        self.workdir = workdir
        self.path = os.path.join(workdir, "exec")
        if binary and payload[:4] == b"PK\x03\x04":
            extract_zip(payload, workdir)
            if not os.path.isfile(self.path):
                raise InitError("Zip file does not include an executable named exec")
            with open(self.path, "rb") as f:
                head = f.read(4)
        else:
            with open(self.path, "wb") as f:
                f.write(payload)
            head = payload[:4]
        if not (head[:2] == b"#!" or head == b"\x7fELF"):
            raise InitError("exec is neither a script starting with #! nor an ELF executable")
        os.chmod(self.path, 0o755)

    def run(self, params: Any) -> Ran:
        import subprocess

        args = json.dumps(params, ensure_ascii=False)
        argv = [self.path, args] if len(args) <= MAX_ARG_STRLEN else [self.path]
        try:
            done = subprocess.run(argv, input=args.encode(), capture_output=True, cwd=self.workdir, check=False)
        except OSError as exc:
            return Ran(502, {"error": NOT_A_DICTIONARY}, err=f"cannot run {self.path}: {exc}\n")
        out = done.stdout.decode("utf-8", "replace")
        err = done.stderr.decode("utf-8", "replace")
        # The last line is the result, even if empty; everything before it is log output.
        logs, _, last = out.rstrip("\n").rpartition("\n")
        logs = logs + "\n" if logs else ""
        try:
            result = json.loads(last)
        except ValueError:
            result = None
        if not isinstance(result, (dict, list)):
            return Ran(502, {"error": NOT_A_DICTIONARY}, out=logs + last + "\n", err=err)
        return Ran(200, result, out=logs, err=err)


class Proxy:
    """The state of one runtime container: at most one action, initialized once, run one at a time unless
    ``concurrent`` (``__OW_ALLOW_CONCURRENT``)."""

    def __init__(self, kind: str, concurrent: bool = False) -> None:
        self.kind = kind
        self.concurrent = concurrent
        self.initialized = False
        self.action: PythonAction | NativeAction | None = None
        self.lock = threading.Lock()

    def init(self, body: Any) -> Answer:
        with self.lock:
            if self.initialized:
                return 403, {"error": REINIT}
            value = body.get("value") if isinstance(body, dict) else None
            value = value if isinstance(value, dict) else {}
            code = value.get("code")
            if not code or not isinstance(code, str):
                return 403, {"error": NO_CODE}
            binary = bool(value.get("binary"))
            if binary:
                import base64
                import binascii

                try:
                    payload = base64.b64decode(code, validate=True)
                except (binascii.Error, ValueError) as exc:
                    return 400, {"error": f"cannot decode the request: {exc}"}
            else:
                payload = code.encode()
            export_env(value.get("env"))
            try:
                self.action = self.load(payload, binary, value.get("main") or "main")
            except Exception as exc:
                message = str(exc) if isinstance(exc, InitError) else format_exception(exc)
                write_sentinels(err=message if message.endswith("\n") else message + "\n")
                return 502, {"error": INIT_FAILED}
            self.initialized = True
            return 200, {"ok": True}

    def run(self, body: Any) -> Answer:
        if self.concurrent:
            return self.run_one(body)
        with self.lock:
            return self.run_one(body)

    def run_one(self, body: Any) -> Answer:
        # Refusals that never reach the action write no sentinels, as in actionloop: there is no
        # activation to frame, and the invoker does not wait for logs after a developer error.
        action = self.action
        if action is None:
            return 500, {"error": NOT_INITIALIZED}
        if not isinstance(body, dict):
            return 400, {"error": "Error unmarshaling request: the body is not a JSON object"}
        for key, val in body.items():
            if key != "value":
                os.environ["__OW_" + key.upper()] = env_string(val)
        ran = Ran(502, {"error": NOT_A_DICTIONARY})
        try:
            ran = action.run(body.get("value", {}))
            return self.answer(ran)
        finally:
            # Before the answer goes out, so the invoker finds both once it has the result.
            write_sentinels(ran.out, ran.err)

    def answer(self, ran: Ran) -> Answer:
        if ran.exited:
            self.action = None
        if ran.status != 200:
            return ran.status, ran.result
        if not isinstance(ran.result, (dict, list)):
            return 502, {"error": NOT_A_DICTIONARY}
        try:
            return 200, json.dumps(ran.result, ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            ran.err += f"the result is not JSON: {exc}\n"
            return 502, {"error": NOT_A_DICTIONARY}

    def load(self, payload: bytes, binary: bool, main: str) -> PythonAction | NativeAction:
        workdir = os.path.join(os.environ.get("TMPDIR") or "/tmp", f"action-{os.getpid()}-{os.urandom(4).hex()}")
        os.mkdir(workdir, 0o700)
        if self.kind == "native" or (binary and looks_native(payload)):
            return NativeAction(workdir, payload, binary)
        return PythonAction(workdir, payload, binary, main)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The invoker may open many connections at once (prewarm, concurrent cold starts).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], proxy: Proxy) -> None:
        self.proxy = proxy
        super().__init__(address, Connection)


class UnixServer(socketserver.ThreadingUnixStreamServer):
    """``__OW_PROXY_SOCKET``: the same protocol on a Unix socket, for a container without a network (the
    invoker's crun-direct engine bind-mounts the socket's directory, executor_docker/oci.py)."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, path: str, proxy: Proxy) -> None:
        self.proxy = proxy
        super().__init__(path, Connection)


class Connection(socketserver.StreamRequestHandler):
    """HTTP/1.1 with keep-alive, just enough for the invoker's JSON POSTs."""

    server: Server | UnixServer

    def setup(self) -> None:
        # Each answer leaves in one send with Nagle off: with delayed ACKs, a keep-alive answer split in
        # two writes waits ~40 ms (measured on http.server).
        if self.request.family != socket.AF_UNIX:  # __OW_PROXY_SOCKET: no Nagle to turn off
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def handle(self) -> None:
        try:
            while self.handle_one():
                pass
        except (ConnectionError, TimeoutError):
            pass

    def handle_one(self) -> bool:
        line = self.rfile.readline(65537)
        if not line:
            return False
        try:
            method, target, version = line.decode("latin-1").split()
        except ValueError:
            self.respond(400, {"error": "malformed request line"}, keep_alive=False)
            return False
        headers = {}
        while True:
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, val = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = val.strip()
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        if headers.get("expect", "").lower() == "100-continue":
            self.request.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            if "chunked" in headers.get("transfer-encoding", "").lower():
                raw = self.read_chunked()
            else:
                raw = self.rfile.read(int(headers.get("content-length") or 0))
        except ValueError:
            self.respond(400, {"error": "malformed request body framing"}, keep_alive=False)
            return False
        path = target.split("?", 1)[0]
        if path not in ("/init", "/run"):
            self.respond(404, {"error": "invalid request"}, keep_alive)
        elif method != "POST":
            self.respond(405, {"error": "only POST is supported"}, keep_alive)
        else:
            try:
                body = json.loads(raw) if raw.strip() else {}
            except ValueError as exc:
                self.respond(400, {"error": f"Error unmarshaling request: {exc}"}, keep_alive)
                return keep_alive
            handler = self.server.proxy.init if path == "/init" else self.server.proxy.run
            status, result = handler(body)
            self.respond(status, result, keep_alive)
        return keep_alive

    def read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline(65537).split(b";", 1)[0], 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline(65537)

    def respond(self, status: int, result: Any, keep_alive: bool) -> None:
        body = result if isinstance(result, bytes) else json.dumps(result, ensure_ascii=False).encode()
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        )
        self.request.sendall(head.encode("latin-1") + body)


def looks_native(payload: bytes) -> bool:
    """An ELF binary, a ``#!`` script, or a zip with ``exec`` but no ``__main__.py``."""
    if payload[:4] == b"\x7fELF" or payload[:2] == b"#!":
        return True
    if payload[:4] != b"PK\x03\x04":
        return False
    import io
    import zipfile

    try:
        names = set(zipfile.ZipFile(io.BytesIO(payload)).namelist())
    except zipfile.BadZipFile:
        return False
    return "exec" in names and "__main__.py" not in names


def extract_zip(payload: bytes, workdir: str) -> None:
    import io
    import zipfile

    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
    except zipfile.BadZipFile as exc:
        raise InitError(f"the code is not a valid zip file: {exc}") from None
    with archive:
        for info in archive.infolist():
            path = archive.extract(info, workdir)
            # zipfile drops permissions; executables in the zip (exec, helpers, venv scripts) need them.
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(path, mode)


def activate_virtualenv(venv: str) -> None:
    """Put a zipped ``virtualenv/``'s site-packages on sys.path, as OpenWhisk's launcher does."""
    if not os.path.isdir(venv):
        return
    activate_this = os.path.join(venv, "bin", "activate_this.py")
    if os.path.isfile(activate_this):
        with open(activate_this) as f:
            exec(compile(f.read(), activate_this, "exec"), {"__file__": activate_this})
        return
    import glob
    import site

    for site_packages in sorted(glob.glob(os.path.join(venv, "lib", "python3*", "site-packages"))):
        site.addsitedir(site_packages)


def export_env(env: Any) -> None:
    if not isinstance(env, dict):
        return
    for key, val in env.items():
        os.environ[str(key)] = env_string(val)


def env_string(val: Any) -> str:
    # The invoker sends strings; anything else is exported as its JSON text (as the Go proxy does).
    return val if isinstance(val, str) else json.dumps(val)


def format_exception(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(exc))


def write_sentinels(out: str = "", err: str = "") -> None:
    with OUTPUT_LOCK:
        sys.stdout.write(out + SENTINEL)
        sys.stdout.flush()
        sys.stderr.write(err + SENTINEL)
        sys.stderr.flush()


def main() -> None:
    # As PID 1 in a container, SIGTERM is ignored unless handled: `docker stop` would wait 10 s and kill.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("__OW_PROXY_PORT") or 8080)
    kind = os.environ.get("OW_ACTION_KIND", "python")
    concurrent = os.environ.get("__OW_ALLOW_CONCURRENT", "").lower() == "true"
    path = os.environ.get("__OW_PROXY_SOCKET")
    server = UnixServer(path, Proxy(kind, concurrent)) if path else Server(("0.0.0.0", port), Proxy(kind, concurrent))
    with server:
        server.serve_forever()


if __name__ == "__main__":
    main()
