"""The web console's files as the controller serves them: the CSP and the other security headers on every
response, content types fixed by the server, and pages that need nothing the CSP forbids (no inline script or
style, no HTML built from strings). The browser side is tests/e2e/test_console.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest

from controller.routes.console import CONTENT_SECURITY_POLICY, STATIC_DIR
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore
from tests.doubles import ScriptedExecutor
from tests.inprocess import in_process_whisk

pytestmark = pytest.mark.unit

HTML = "text/html; charset=utf-8"
JS = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"
# The console's own scripts: none may turn data into markup (the vendored uPlot is not ours to lint).
OWN_SCRIPTS = ("app.js", "api.js", "stats.js", "live.js")


@pytest.fixture(scope="module")
async def web(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    """The console over ASGI, with no credentials: the files are public, the API behind them is not."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("console"))
    async with in_process_whisk(settings, SqliteStore(settings.store_path), ScriptedExecutor()) as whisk:
        transport = httpx.ASGITransport(app=whisk.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://whisk.test") as client:
            yield client


class _Assets(HTMLParser):
    """The files index.html loads, and whatever in it a strict CSP would refuse."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script":
            if named.get("src"):
                self.scripts.append(str(named["src"]))
            else:
                self.inline.append("<script> without src")
        if tag == "link" and named.get("rel") == "stylesheet":
            self.styles.append(str(named["href"]))
        if tag == "style":
            self.inline.append("<style>")
        self.inline += [f"{tag} {name}=" for name, _ in attrs if name == "style" or name.startswith("on")]


def _assert_hardened(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_console_redirects_to_its_index_by_path_never_by_host(web: httpx.AsyncClient) -> None:
    response = await web.get("/console", headers={"Host": "evil.example"})

    assert response.status_code == 308
    assert response.headers["location"] == "/console/"
    _assert_hardened(response)


async def test_index_and_every_asset_it_loads_are_served_with_csp_and_their_content_type(
    web: httpx.AsyncClient,
) -> None:
    index = await web.get("/console/")
    assert index.status_code == 200
    assert index.headers["content-type"] == HTML
    _assert_hardened(index)

    assets = _Assets()
    assets.feed(index.text)
    assert assets.inline == [], "the CSP would block inline code or style"
    assert set(assets.scripts) == {"vendor/uPlot.iife.min.js", "app.js"}
    assert set(assets.styles) == {"vendor/uPlot.min.css", "style.css"}
    modules = {f"{name}" for name in OWN_SCRIPTS}
    for path, content_type in [
        *[(script, JS) for script in {*assets.scripts, *modules}],
        *[(style, CSS) for style in assets.styles],
    ]:
        response = await web.get(f"/console/{path}")
        assert response.status_code == 200, path
        assert response.headers["content-type"] == content_type, path
        _assert_hardened(response)


async def test_every_module_import_resolves_to_a_served_file(web: httpx.AsyncClient) -> None:
    for name in OWN_SCRIPTS:
        source = (STATIC_DIR / name).read_text()
        for target in re.findall(r'^import .* from "\./([^"]+)";$', source, flags=re.MULTILINE):
            assert (await web.get(f"/console/{target}")).status_code == 200, f"{name} imports {target}"


def test_the_consoles_scripts_never_build_html_from_strings() -> None:
    for name in OWN_SCRIPTS:
        source = (STATIC_DIR / name).read_text()
        for sink in (".innerHTML", ".outerHTML", ".insertAdjacentHTML", "document.write", "eval(", "new Function("):
            assert sink not in source, f"{name} uses {sink}: render data with textContent"


async def test_the_vendored_chart_library_ships_with_its_licence(web: httpx.AsyncClient) -> None:
    licence = await web.get("/console/vendor/uPlot.LICENSE.txt")

    assert licence.status_code == 200
    assert licence.headers["content-type"] == "text/plain; charset=utf-8"
    assert "The MIT License" in licence.text and "Leon Sorokin" in licence.text


async def test_missing_files_and_paths_outside_the_console_are_404s_in_openwhisks_shape(
    web: httpx.AsyncClient,
) -> None:
    missing = await web.get("/console/nope.js")
    escaping = await web.get("/console/%2e%2e/%2e%2e/pyproject.toml")

    for response in (missing, escaping):
        assert response.status_code == 404
        assert response.json()["error"] == "The requested resource does not exist."


async def test_the_files_are_public_but_the_api_they_call_still_needs_a_key(web: httpx.AsyncClient) -> None:
    assert (await web.get("/console/app.js")).status_code == 200
    assert (await web.get("/api/v1/namespaces")).status_code == 401
