"""The web console at /console in a real browser (Debian's chromium, driven by Playwright) against a real server.

One walk through what an operator does: sign in, create an action from a file, invoke it, find its activation
with the timing breakdown and its logs, watch the live chart draw, read the invokers' health. Each step leaves a
screenshot in test-artifacts/console/. A wrong key must show an error, never a blank page, and the key must never
leave the page except in the Authorization header of /api/v1 requests.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, expect, sync_playwright

from tests.conftest import REPO, WASM_DIR, Server, wasm_code
from tests.integration.helpers import annotations as annotations_of

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
# As the machine notes prescribe: the sandbox needs a non-root user, and the background services would
# try to reach Google through this machine's closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts" / "console"
TIMEOUT_MS = 30_000
# The latency chart's p50, p95 and p99 strokes (controller/console/static/live.js): with one activation in a
# bucket the three coincide and the last drawn covers the others.
LATENCY_COLORS = [(0x1F, 0x77, 0xB4), (0xD6, 0x27, 0x28), (0x2C, 0xA0, 0x2C)]


# Function scope on purpose: Playwright's sync API keeps an asyncio loop running in this thread while it is
# started, and pytest-asyncio cannot run another test's coroutine while one is (the tests of other modules run
# between this module's standalone and distributed halves, as the `platform` fixture orders them).
@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run deploy/local/install-browser.sh (Debian's chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


class Console:
    """A browser tab on the console, recording what a test checks afterwards: requests and page errors."""

    def __init__(self, page: Page, server: Server, artifacts: Path) -> None:
        self.page = page
        self.server = server
        self.artifacts = artifacts
        self.requests: list[Request] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request))
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("console", self._console)
        page.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)

    def _console(self, message: ConsoleMessage) -> None:
        # CSP violations are reported on the console ("Refused to ..."); so are uncaught script errors.
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def open(self) -> None:
        self.page.goto(f"{self.server.apihost}/console")
        expect(self.page.locator("#sign-in-form")).to_be_visible()

    def sign_in(self, key: str) -> None:
        self.page.fill("#key", key)
        self.page.click("#sign-in")

    def tab(self, view: str) -> None:
        self.page.click(f"#tabs button[data-view={view}]")
        expect(self.page.locator(f"#{view}-view")).to_be_visible()

    def screenshot(self, name: str) -> None:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(self.artifacts / f"{name}.png"), full_page=True)

    def until(self, condition: Callable[[], bool], what: str, action: Callable[[], None] | None = None) -> None:
        """Until ``condition`` holds, redoing ``action`` (e.g. a refresh) before each look; fails at the deadline."""
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while True:
            if action is not None:
                action()
            if condition():
                return
            if time.monotonic() >= deadline:
                self.screenshot(f"timeout-{what.replace(' ', '-')}")
                raise AssertionError(f"the console never showed {what}")
            self.page.wait_for_timeout(200)  # the browser's own clock: lets the page fetch and render

    def colored_pixels(self, chart: str, colors: list[tuple[int, int, int]]) -> int:
        """Pixels of the chart's canvas drawn in (nearly) one of ``colors``: lines and points, not axes or legend."""
        count: int = self.page.evaluate(
            """([selector, colors]) => {
                const canvas = document.querySelector(selector + " canvas");
                if (!canvas) return 0;
                const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
                let n = 0;
                for (let i = 0; i < pixels.length; i += 4) {
                    const near = ([r, g, b]) =>
                        Math.abs(pixels[i] - r) + Math.abs(pixels[i + 1] - g) + Math.abs(pixels[i + 2] - b) < 30;
                    if (pixels[i + 3] > 200 && colors.some(near)) n++;
                }
                return n;
            }""",
            [chart, [list(rgb) for rgb in colors]],
        )
        return count


@pytest.fixture
def console(browser: Browser, platform: Server, request: pytest.FixtureRequest) -> Iterator[Console]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    mode = request.node.callspec.params.get("platform", "standalone")
    name = request.node.originalname.removeprefix("test_")
    artifacts = ARTIFACTS / mode / name
    shutil.rmtree(artifacts, ignore_errors=True)  # only this run's screenshots
    tab = Console(context.new_page(), platform, artifacts)
    yield tab
    context.close()


def test_wrong_key_shows_the_servers_401_not_a_blank_page(console: Console) -> None:
    console.open()
    console.sign_in("not-a-key")
    expect(console.page.locator("#sign-in-error")).to_have_text("A key has the form uuid:key.")

    uuid_, _ = console.server.auth.split(":")
    console.sign_in(f"{uuid_}:wrong")

    error = console.page.locator("#sign-in-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("The server refused this key (401)")
    expect(error).to_contain_text("The supplied authentication is invalid")
    expect(console.page.locator("#tabs")).to_be_hidden()
    console.screenshot("wrong-key")
    assert console.page.evaluate("sessionStorage.length") == 0, "a refused key must not be kept"
    # The browser logs the refused request itself; nothing else may have gone wrong (no CSP refusal, no error).
    assert console.errors == [
        "console: Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]


def test_sign_in_create_invoke_then_activation_timeline_logs_live_chart_and_invokers(
    console: Console, platform: Server, unique_name: str
) -> None:
    page = console.page
    console.open()
    console.sign_in(platform.auth)
    expect(page.locator("#tabs")).to_be_visible()
    expect(page.locator("#whoami")).to_have_text(f"signed in as {platform.auth.split(':')[0]}")
    console.screenshot("1-signed-in")

    # Create from a file: kind from the extension, as the CLI does; the module goes base64.
    page.set_input_files("#create-file", str(WASM_DIR / "hello.wasm"))
    page.fill("#create-name", unique_name)
    page.click("#create")
    expect(page.locator("#create-status")).to_contain_text(f"ok: {unique_name} (kind wasm:wasi")
    expect(page.locator("#actions-table tbody")).to_contain_text(unique_name)
    with platform.client() as api:
        action = api.get(f"/namespaces/_/actions/{unique_name}", params={"code": "true"}).json()
    assert action["exec"]["kind"] == "wasm:wasi" and action["exec"]["binary"] is True
    assert action["exec"]["code"] == wasm_code("hello"), "the module arrives as the CLI sends it: base64"

    # Invoke, blocking, with JSON parameters: a cold start, then a warm one.
    results = []
    # The second name is markup: the page must show it as text, never parse it.
    markup = "<img src=x onerror=window.injected=1>Grace"
    for who in ("Ada", markup):
        expect(page.locator("#invoke-name")).to_have_value(unique_name)
        page.fill("#invoke-params", json.dumps({"name": who}))
        page.click("#invoke")
        expect(page.locator("#invoke-result")).to_contain_text(f"Hello, {who}!")
        expect(page.locator("#invoke-status")).to_contain_text("ok: activation")
        results.append(json.loads(page.locator("#invoke-result").text_content() or "null"))
    assert results == [{"greeting": "Hello, Ada!"}, {"greeting": f"Hello, {markup}!"}]
    assert page.locator("img").count() == 0 and page.evaluate("window.injected") is None
    console.screenshot("2-invoked")

    with platform.client() as api:
        records = _records(api, unique_name, count=2)
    cold, warm = sorted(records, key=lambda record: record["start"])
    assert "initTime" in annotations_of(cold) and "initTime" not in annotations_of(warm)

    # The activation list, filtered by name, and the cold activation's timeline and logs.
    console.tab("activations")
    page.fill("#filter-name", unique_name)
    rows = page.locator("#activations-table tbody tr")
    console.until(lambda: rows.count() == 2, "both activations", action=lambda: page.click("#filter-apply"))
    page.select_option("#filter-status", "1")  # application errors: none of these
    page.click("#filter-apply")
    expect(rows).to_have_count(0)
    page.select_option("#filter-status", "0")
    page.click("#filter-apply")
    expect(rows).to_have_count(2)
    cold_row = f"#activations-table tr[data-activation-id='{cold['activationId']}']"
    page.click(cold_row)
    detail = page.locator("#activation-detail")
    expect(detail.locator("#detail-id")).to_have_text(cold["activationId"])
    timings = annotations_of(cold)
    expected = {
        "waitTime": timings["waitTime"],
        "initTime": timings["initTime"],
        "run": cold["duration"] - timings["initTime"],
        "duration": cold["duration"],
    }
    for name, ms in expected.items():
        expect(detail.locator(f"dd[data-timing={name}]")).to_have_text(f"{ms} ms")
    segments = detail.locator("#detail-timeline .segment")
    assert [segments.nth(i).get_attribute("data-ms") for i in range(3)] == [
        str(expected["waitTime"]),
        str(expected["initTime"]),
        str(expected["run"]),
    ]
    init_box = detail.locator("#detail-timeline .segment.init").bounding_box()
    assert init_box is not None and init_box["width"] > 0, "a cold start's initTime is drawn"
    expect(detail.locator("#detail-logs")).to_contain_text("hello: greeting Ada")
    expect(detail.locator("#detail-logs")).to_contain_text("stderr: hello: this line goes to stderr")
    expect(detail.locator("#detail-result")).to_contain_text('"greeting": "Hello, Ada!"')
    console.screenshot("3-activation")
    # A cold start of a module the executor already holds inits in under a millisecond and is recorded with
    # initTime 0 (OpenWhisk's ContainerProxy.scala writes initTime whenever there was an init, in whole ms):
    # the bar still shows the init. The page is served that record to make the case certain.
    instant = {
        **cold,
        "annotations": [
            {"key": "initTime", "value": 0} if pair["key"] == "initTime" else pair for pair in cold["annotations"]
        ],
    }
    served = f"**/activations/{cold['activationId']}"
    page.route(served, lambda route: route.fulfill(json=instant))
    page.click(cold_row)
    expect(detail.locator("dd[data-timing=initTime]")).to_have_text("0 ms")
    instant_box = detail.locator("#detail-timeline .segment.init").bounding_box()
    assert instant_box is not None and instant_box["width"] > 0, "a 0 ms cold start's init is drawn"
    page.unroute(served)

    # The live view: the latency chart draws its series from the activation list.
    console.tab("live")
    chart = page.locator("#chart-latency")
    console.until(lambda: int(chart.get_attribute("data-points") or 0) >= 1, "latency points")
    assert chart.get_attribute("data-series") == "3"
    console.until(lambda: console.colored_pixels("#chart-latency", LATENCY_COLORS) > 10, "the latency series drawn")
    expect(page.locator("#chart-cold .u-legend")).to_contain_text("wasm")
    expect(page.locator("#live-summary")).to_contain_text("activations; latency p50")
    console.screenshot("4-live")

    console.tab("invokers")
    expect(page.locator("#invokers-table tbody tr").first).to_contain_text("up")
    if "pywhisk_pool_instances{" in httpx.get(f"{platform.apihost}/metrics", timeout=10).text:
        # Standalone's /metrics has its invoker's pools (a deployment's invokers serve theirs on their own port).
        expect(page.locator("#pools-table tbody")).to_contain_text("wasm")
    console.screenshot("5-invokers")

    _assert_key_only_in_api_headers(console, platform.auth)
    assert console.errors == []


def test_without_metrics_the_live_view_still_draws_from_the_activation_list(
    console: Console, platform: Server, unique_name: str
) -> None:
    with platform.client() as api:
        created = api.put(
            f"/namespaces/_/actions/{unique_name}", json={"exec": {"kind": "wasm:default", "code": wasm_code("hello")}}
        )
        assert created.status_code == 200, created.text
        assert api.post(f"/namespaces/_/actions/{unique_name}", params={"blocking": "true"}, json={}).status_code == 200
    # As a build without the metrics endpoint (or a proxy that hides it) would answer.
    console.page.route("**/metrics", lambda route: route.fulfill(status=404, body="not here"))
    console.open()
    console.sign_in(platform.auth)

    console.tab("live")

    expect(console.page.locator("#starts-missing")).to_be_visible()
    console.until(lambda: console.colored_pixels("#chart-latency", LATENCY_COLORS) > 10, "the latency series drawn")
    console.tab("invokers")
    expect(console.page.locator("#pools-missing")).to_be_visible()
    expect(console.page.locator("#invokers-table tbody")).to_contain_text("up")
    console.screenshot("no-metrics")
    assert all("404" in error for error in console.errors), console.errors


def test_a_reload_signs_in_again_from_session_storage(console: Console, platform: Server) -> None:
    console.open()
    console.sign_in(platform.auth)
    expect(console.page.locator("#tabs")).to_be_visible()

    console.page.reload()

    expect(console.page.locator("#tabs")).to_be_visible()
    expect(console.page.locator("#sign-in-view")).to_be_hidden()
    console.page.click("#sign-out")
    expect(console.page.locator("#sign-in-form")).to_be_visible()
    assert console.page.evaluate("sessionStorage.length") == 0
    _assert_key_only_in_api_headers(console, platform.auth)


def _records(api: Any, name: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        records: list[dict[str, Any]] = api.get(
            "/namespaces/_/activations", params={"name": name, "docs": "true"}
        ).json()
        if len(records) >= count:
            return records
        assert time.monotonic() < deadline, f"{count} records of {name} never listed"
        time.sleep(0.1)


def _assert_key_only_in_api_headers(console: Console, auth: str) -> None:
    """The key never appears in a URL, and the Authorization header goes to /api/v1 only."""
    _, secret = auth.split(":")
    assert console.requests, "the page made no requests"
    for request in console.requests:
        assert secret not in request.url, request.url
        authorization = request.headers.get("authorization")
        if authorization is not None:
            assert "/api/v1/" in request.url, f"the key went to {request.url}"
