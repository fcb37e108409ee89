"""One log format for every pywhisk process, with the transaction id and activation id on every line.

OpenWhisk stamps each log line with its transaction id (``[#tid_...]``), so the path of one request can be
followed through controller and invoker with ``grep``. Here the ids travel in context variables instead of
being passed to every call: they are set where a request or an activation enters a process (the controller's
ASGI middleware, the load balancer when it publishes and when a completion comes back, the invoker when it
takes an activation off the bus) and are read by a ``logging.Filter`` on the handler, so a line gets them
whichever module logs it: controller, bus, store, invoker or executor.

Context variables follow asyncio tasks (each task starts with a copy of its creator's context) and
``asyncio.to_thread``; a raw ``loop.run_in_executor`` does not carry them, so the executors' thread pools
submit through ``contextvars.copy_context().run`` (executor_wasm/executor.py, executor_docker/executor.py).

Setting a variable costs a few tens of nanoseconds; nothing is read or formatted unless a line is emitted
(``logging`` drops a record below the level before any filter runs). Two formats, chosen with
``PYWHISK_LOG_FORMAT`` (or ``pywhisk --log-format``):

- ``text``, OpenWhisk's shape: ``[2026-12-06T17:53:46.123Z] [INFO] [#tid_<id>] [<activationId>] [invoker0]
  [pywhisk.invoker] message`` (the activation id only when there is one; ``#tid_sid_unknown`` without a tid,
  as OpenWhisk's ``TransactionId.unknown``);
- ``json``, one object per line: ``ts, level, logger, component, tid, activationId, msg``, the fields given
  with ``extra=``, and ``exc`` for a traceback.

``tid`` is the controller's transaction id as the API shows it (``X-Request-ID``, the ``code`` of an error) and
as the activation message carries it to the invoker (``transid[0]``), so one id matches across processes.
"""

from __future__ import annotations

import io
import logging
import logging.config
import time
from contextvars import ContextVar, Token
from typing import Any, Literal

import orjson
from pydantic_settings import BaseSettings, SettingsConfigDict

# The transaction id (without OpenWhisk's ``#tid_`` prefix, as X-Request-ID shows it).
tid: ContextVar[str | None] = ContextVar("pywhisk_tid", default=None)
# The activation the current work is about.
activation_id: ContextVar[str | None] = ContextVar("pywhisk_activation_id", default=None)
# Which part of the platform does the work (``controller0``, ``invoker1``); unset: the process's own component.
component: ContextVar[str | None] = ContextVar("pywhisk_component", default=None)

LogFormat = Literal["text", "json"]
UNKNOWN_TID = "sid_unknown"  # [OW] TransactionId.unknown: a line that belongs to no transaction

# Client libraries log every request or reconnect attempt at INFO (and much more at DEBUG); keep the log
# about pywhisk.
QUIET_LIBRARIES = ("httpx", "httpcore", "aiokafka", "kafka", "docker", "urllib3", "asyncio", "multipart")


class LogSettings(BaseSettings):
    """``PYWHISK_LOG_FORMAT``: ``text`` (default) or ``json``. The level is ``Settings.log_level``
    (``PYWHISK_LOG_LEVEL``), shared with the executors that configure their own servers."""

    model_config = SettingsConfigDict(env_prefix="PYWHISK_LOG_", extra="ignore")

    format: LogFormat = "text"


def bind(*, tid: str | None = None, activation_id: str | None = None, component: str | None = None) -> None:
    """Set the given ids for the rest of the current task (and the tasks and threads it starts)."""
    if tid is not None:
        _tid.set(tid)
    if activation_id is not None:
        _activation_id.set(activation_id)
    if component is not None:
        _component.set(component)


def begin(transaction: str) -> None:
    """A new transaction in the current task: this tid, and no activation yet (a server that runs requests
    one after another in one context must not lend a request the previous one's activation)."""
    _tid.set(transaction)
    _activation_id.set(None)


class bound:  # lower case: used as a statement, ``with logs.bound(...)``
    """The given ids for the lines of a ``with`` block only, restored after it: for a loop that handles
    one activation after another in the same task (the load balancer's completions)."""

    __slots__ = ("_tokens", "_values")

    def __init__(self, *, tid: str | None = None, activation_id: str | None = None, component: str | None = None):
        self._values = ((_tid, tid), (_activation_id, activation_id), (_component, component))
        self._tokens: list[tuple[ContextVar[str | None], Token[str | None]]] = []

    def __enter__(self) -> None:
        self._tokens = [(var, var.set(value)) for var, value in self._values if value is not None]

    def __exit__(self, *exc: object) -> None:
        for var, token in reversed(self._tokens):
            var.reset(token)
        self._tokens = []


class ContextFilter(logging.Filter):
    """Stamps ``tid``, ``activationId`` and ``component`` on every record that reaches the handler, read from
    the context of the code that logged (a handler filter runs in the logging thread, before any queue).

    A call that names them itself (``extra={"activationId": ...}``: a loop over many activations, outside
    their contexts) is taken at its word."""

    def __init__(self, component: str = "") -> None:
        super().__init__()
        self.component = component  # the process's own, for lines outside any bound component

    def filter(self, record: logging.LogRecord) -> bool:
        given = record.__dict__
        if given.get("tid") is None:
            record.tid = _tid.get()
        if given.get("activationId") is None:
            record.activationId = _activation_id.get()
        if not given.get("component"):
            record.component = _component.get() or self.component
        return True


class TextFormatter(logging.Formatter):
    """OpenWhisk's line: ``[ts] [LEVEL] [#tid_...] [activationId] [component] [logger] message``."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        stamp = _timestamp(record.created)
        tid_ = getattr(record, "tid", None) or UNKNOWN_TID
        activation = getattr(record, "activationId", None)
        parts = [f"[{stamp}] [{record.levelname}] [#tid_{tid_}]"]
        if activation:
            parts.append(f"[{activation}]")
        where = getattr(record, "component", "")
        parts.append(f"[{where}] [{record.name}] {record.message}" if where else f"[{record.name}] {record.message}")
        line = " ".join(parts)
        trace = self._trace(record)
        return f"{line}\n{trace}" if trace else line

    def _trace(self, record: logging.LogRecord) -> str:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        return "\n".join(
            part for part in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)) if part
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per line (orjson): ``ts, level, logger, component, tid, activationId, msg``, the
    ``extra=`` fields of the call, and ``exc`` (the formatted traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "component": getattr(record, "component", None),
            "tid": getattr(record, "tid", None),
            "activationId": getattr(record, "activationId", None),
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # default=str: an extra field orjson cannot encode (a Path, an exception) is still one valid line.
        return orjson.dumps(line, default=str).decode()


def dict_config(level: str, log_format: LogFormat, component: str) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of a pywhisk process: one stderr handler with the context filter and
    the chosen formatter on the root logger, the noisy client libraries at WARNING or above.

    A dict rather than calls, so uvicorn can apply the same configuration (its ``log_config``) in every worker
    process it starts, and its own loggers write through this handler instead of their own format."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    quiet = logging.getLevelName(max(logging.WARNING, numeric))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter, "component": component}},
        "formatters": {"pywhisk": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "filters": ["context"],
                "formatter": "pywhisk",
            }
        },
        "root": {"level": logging.getLevelName(numeric), "handlers": ["stderr"]},
        "loggers": {
            **{name: {"level": quiet} for name in QUIET_LIBRARIES},
            # uvicorn's own loggers go through the root handler (uvicorn sets their levels from its log_level).
            **{name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
        },
    }


def configure(config: dict[str, Any]) -> None:
    """Configure this process's logging with ``config`` (``dict_config``); ``warnings`` go through it too."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)


class LineLogger(io.StringIO):
    """A text file that logs every line written to it (and keeps nothing): the launcher's console messages
    (rich's banners) become log records in the JSON format, so every line a process writes is one object."""

    def __init__(self, logger: logging.Logger, level: int = logging.INFO) -> None:
        super().__init__()
        self._logger = logger
        self._level = level
        self._pending = ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            if line.strip():
                self._logger.log(self._level, line.rstrip())
        return len(text)

    def flush(self) -> None:
        if self._pending.strip():
            self._logger.log(self._level, self._pending.rstrip())
        self._pending = ""


# helpers ---------------------------------------------------------------------------------------------

# The public names are the variables; the aliases let ``bind``/``bound`` take keywords of the same names.
_tid, _activation_id, _component = tid, activation_id, component

# What every LogRecord has: anything else on a record came from ``extra=`` (or our filter) and is a field.
_RECORD_ATTRIBUTES = frozenset(
    {*logging.LogRecord("", 0, "", 0, "", None, None).__dict__, "message", "asctime", "tid", "activationId"}
    | {"component", "taskName"}
)


def _timestamp(created: float) -> str:
    """ISO 8601 in UTC with milliseconds, as OpenWhisk's log lines (``2026-12-06T17:53:46.123Z``)."""
    seconds = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((created - seconds) * 1000):03d}Z"
