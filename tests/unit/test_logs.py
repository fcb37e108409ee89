"""One log format with the transaction and activation ids on every line (pywhisk/logs.py): the formats, the
context variables across tasks and threads, and one activation followed through an in-process platform."""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
import re
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from executor_docker.executor import DockerExecutor
from launcher.cli import app as cli_app
from pywhisk import logs
from pywhisk.executor import ExecutorEnvironment, InitRequest, ProxyResult, RunRequest
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore
from tests.doubles import ScriptedExecutor
from tests.inprocess import InProcessWhisk, in_process_whisk

pytestmark = pytest.mark.unit

OW_LINE = re.compile(r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] \[(\w+)\] \[#tid_([^\]]+)\] (.*)$")


class Lines:
    """The lines a handler configured as a pywhisk process's (ContextFilter + a formatter) wrote."""

    def __init__(self, formatter: logging.Formatter, component: str = "test0") -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.addFilter(logs.ContextFilter(component))
        self.handler.setFormatter(formatter)

    def text(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def json(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.text()]


@pytest.fixture
def captured() -> Iterator[Lines]:
    """Every record at DEBUG and above, as JSON lines; the root logger is restored afterwards."""
    lines = Lines(logs.JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(lines.handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(lines.handler)
        root.setLevel(level)


def _record(message: str = "hello %s", *args: object, **fields: Any) -> logging.LogRecord:
    record = logging.LogRecord("pywhisk.test", logging.INFO, __file__, 1, message, args or None, None)
    record.__dict__.update(fields)
    return record


# formats ----------------------------------------------------------------------------------------


def test_a_json_line_has_the_ids_the_message_and_the_extra_fields() -> None:
    lines = Lines(logs.JsonFormatter(), component="controller0")
    log = logging.getLogger("pywhisk.test.json")
    log.addHandler(lines.handler)
    log.propagate = False
    try:
        with logs.bound(tid="t1", activation_id="a1"):
            log.warning("posting %s", "x", extra={"topic": "invoker0", "path": Path("/tmp")})
        log.warning("outside")
    finally:
        log.removeHandler(lines.handler)
        log.propagate = True

    inside, outside = lines.json()
    assert inside["tid"] == "t1" and inside["activationId"] == "a1"
    assert inside["component"] == "controller0"
    assert inside["msg"] == "posting x" and inside["level"] == "WARNING" and inside["logger"] == "pywhisk.test.json"
    assert inside["topic"] == "invoker0"
    assert inside["path"] == "/tmp", "a field orjson cannot encode is written as its str, the line stays valid"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", inside["ts"])
    assert outside["tid"] is None and outside["activationId"] is None, "bound() restores the ids after the block"


def test_a_json_line_of_an_exception_holds_its_traceback_in_one_line() -> None:
    formatter = logs.JsonFormatter()
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = logging.LogRecord("pywhisk.test", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    logs.ContextFilter("invoker0").filter(record)

    line = formatter.format(record)

    assert "\n" not in line
    parsed = orjson.loads(line)
    assert parsed["msg"] == "failed"
    assert "ValueError: bad\nthing" in parsed["exc"]


def test_ids_given_with_extra_name_the_activation_of_a_line_outside_its_context() -> None:
    record = _record(activationId="lost-one", tid="its-tid")  # as extra={...} does, e.g. a lost activation's line
    with logs.bound(tid="loop", activation_id="other"):
        logs.ContextFilter("c").filter(record)

    line = orjson.loads(logs.JsonFormatter().format(record))
    assert (line["tid"], line["activationId"], line["component"]) == ("its-tid", "lost-one", "c")


def test_a_text_line_is_openwhisks_with_the_activation_id() -> None:
    formatter = logs.TextFormatter()
    record = _record("ran %s", "it")
    with logs.bound(tid="abc", activation_id="0123", component="invoker1"):
        logs.ContextFilter("controller0").filter(record)

    line = formatter.format(record)

    assert line.endswith("] [INFO] [#tid_abc] [0123] [invoker1] [pywhisk.test] ran it")
    assert OW_LINE.match(line)


def test_a_text_line_outside_a_transaction_says_sid_unknown_as_openwhisk() -> None:
    record = _record()
    contextvars.Context().run(logs.ContextFilter("controller0").filter, record)  # no ids set at all

    line = logs.TextFormatter().format(record)

    match = OW_LINE.match(line)
    assert match is not None, line
    assert match.group(2) == logs.UNKNOWN_TID
    assert match.group(3) == "[controller0] [pywhisk.test] hello %s"


def test_begin_starts_a_transaction_without_the_previous_requests_activation() -> None:
    def two_requests_in_one_context() -> tuple[str | None, str | None]:
        logs.bind(tid="first", activation_id="a-of-first")
        logs.begin("second")
        return logs.tid.get(), logs.activation_id.get()

    assert contextvars.Context().run(two_requests_in_one_context) == ("second", None)


def test_dict_config_sends_uvicorn_through_the_one_handler_and_quiets_client_libraries() -> None:
    config = logs.dict_config("debug", "json", "controller0")

    assert config["root"]["level"] == "DEBUG"
    assert config["loggers"]["aiokafka"]["level"] == "WARNING"
    assert config["loggers"]["uvicorn.error"] == {"handlers": [], "propagate": True}
    assert config["disable_existing_loggers"] is False, "loggers made at import time must keep logging"
    assert logs.dict_config("ERROR", "text", "x")["loggers"]["httpx"]["level"] == "ERROR"


def test_the_line_logger_turns_console_output_into_one_record_per_line(captured: Lines) -> None:
    writer = logs.LineLogger(logging.getLogger("pywhisk.launcher"))

    writer.write("ready at http://x\n  data dir: /d\n\n  partial")
    writer.write(" line\n")
    writer.write("unterminated")
    writer.flush()

    assert [line["msg"] for line in captured.json()] == [
        "ready at http://x",
        "  data dir: /d",
        "  partial line",
        "unterminated",
    ]


def test_the_cli_option_chooses_the_format_of_every_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYWHISK_LOG_FORMAT", "text")  # and restored after the test

    result = CliRunner().invoke(cli_app, ["--log-format", "json", "admin", "--help"])

    assert result.exit_code == 0, result.output
    assert logs.LogSettings().format == "json"


def test_an_unknown_log_format_is_refused_by_the_cli() -> None:
    result = CliRunner().invoke(cli_app, ["--log-format", "xml", "standalone"])

    assert result.exit_code == 2
    assert "xml" in result.output


def test_an_unknown_log_format_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYWHISK_LOG_FORMAT", "yaml")

    with pytest.raises(ValueError, match="format"):
        logs.LogSettings()


# across tasks and threads -----------------------------------------------------------------------


async def test_the_ids_follow_tasks_and_to_thread_but_stay_in_their_own_task() -> None:
    async def one(name: str) -> tuple[str | None, str | None]:
        logs.bind(tid=f"tid-{name}", activation_id=name)
        await asyncio.sleep(0)
        in_thread = await asyncio.to_thread(logs.activation_id.get)
        return logs.activation_id.get(), in_thread

    results = await asyncio.gather(one("a"), one("b"))

    assert results == [("a", "a"), ("b", "b")]
    assert logs.activation_id.get() is None, "a task's ids do not leak into the task that started it"


async def test_the_docker_executors_thread_pool_keeps_the_callers_ids(tmp_path: Path) -> None:
    environment = ExecutorEnvironment(data_dir=tmp_path)
    executor = DockerExecutor(environment, SimpleNamespace(api=None))  # type: ignore[arg-type]
    executor._pool = ThreadPoolExecutor(1)  # what start() makes, without asking dockerd anything
    try:
        logs.bind(tid="t-docker", activation_id="a-docker")

        seen = await executor._docker(lambda: (logs.tid.get(), logs.activation_id.get()))

        assert seen == ("t-docker", "a-docker")
    finally:
        executor._pool.shutdown()


# one activation through the platform ------------------------------------------------------------


class LoggingExecutor(ScriptedExecutor):
    """The ScriptedExecutor, logging each /init and /run as an executor does."""

    async def init(self, instance_id: str, request: InitRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        logging.getLogger("executor_test").debug("init of %s", instance_id)
        return await super().init(instance_id, request, timeout_ms, log_limit_bytes)

    async def run(self, instance_id: str, request: RunRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        logging.getLogger("executor_test").debug("run of %s", instance_id)
        return await super().run(instance_id, request, timeout_ms, log_limit_bytes)


@pytest.fixture
async def whisk(tmp_path: Path) -> AsyncIterator[InProcessWhisk[SqliteStore, LoggingExecutor]]:
    settings = Settings(data_dir=tmp_path)
    async with in_process_whisk(settings, SqliteStore(settings.store_path), LoggingExecutor()) as running:
        yield running


async def test_every_line_about_an_activation_carries_its_id_and_the_requests_tid(
    whisk: InProcessWhisk[SqliteStore, LoggingExecutor], captured: Lines
) -> None:
    await whisk.create("followed")

    first = await whisk.invoke("followed", {"n": 1})
    second = await whisk.invoke("followed", {"n": 2})

    lines = captured.json()
    for response in (first, second):
        assert response.status_code == 200, response.text
        activation_id = response.json()["activationId"]
        tid = response.headers["x-request-id"]
        about = [line for line in lines if line["activationId"] == activation_id]
        loggers = {line["logger"] for line in about}
        assert {"pywhisk.controller", "pywhisk.controller.loadbalancer", "pywhisk.invoker", "executor_test"} <= loggers
        assert {line["tid"] for line in about} == {tid}, "one transaction id from the API to the executor"
        components = {line["logger"]: line["component"] for line in about}
        assert components["pywhisk.invoker"] == components["executor_test"] == "invoker0"
        assert components["pywhisk.controller.loadbalancer"] == "test0"  # the process's own component
    put_line = next(line for line in lines if line["msg"].startswith("PUT "))
    assert re.fullmatch(r"[0-9a-f]{32}", put_line["tid"]), "every request has a tid, not only invokes"
    assert put_line["activationId"] is None, "a request that starts no activation has none"
    second_request = [line for line in lines if line["tid"] == second.headers["x-request-id"]]
    assert {line["activationId"] for line in second_request} == {second.json()["activationId"]}
