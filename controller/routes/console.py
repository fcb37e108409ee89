"""``/console``: the operator's web console, static files served by every controller (docs/console.md).

The console is plain JavaScript that talks to the public REST API with the key the user types, so serving it
adds no server-side capability: these routes only hand out files. What they add is the browser-side hardening
that a page holding a key needs: a strict Content-Security-Policy (scripts from this origin only, no inline
code, requests only back to this origin), no framing, no referrer, no content sniffing, and content types
fixed here rather than guessed from the host's ``/etc/mime.types`` (which differs between machines and, for
``.js``, decides whether a browser runs an ES module at all).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

CONSOLE_PATH = "/console"
STATIC_DIR = Path(__file__).resolve().parent.parent / "console" / "static"

# 'self' only: the console loads its own script, style and chart library, and fetches /api/v1, /invokers and
# /metrics on the same origin. uPlot sizes its canvas through element.style (CSSOM), which style-src allows.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    # The assets change with each release and are small: revalidate rather than run yesterday's script.
    "cache-control": "no-cache",
}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
}


def install_console(app: FastAPI) -> None:
    """Serve the console at ``/console/`` (and redirect ``/console`` there: the app does not add slashes)."""
    app.router.routes.append(Route(CONSOLE_PATH, _to_index, methods=["GET", "HEAD"], include_in_schema=False))
    app.router.routes.append(Mount(CONSOLE_PATH, app=ConsoleFiles(directory=STATIC_DIR, html=True), name="console"))


class ConsoleFiles(StaticFiles):
    """Starlette's static files with the console's security headers and fixed content types."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        headers = response.headers
        content_type = CONTENT_TYPES.get(Path(full_path).suffix.lower())
        if content_type is not None:
            headers["content-type"] = content_type
        for name, value in SECURITY_HEADERS.items():
            headers[name] = value
        return response


async def _to_index(request: Request) -> Response:
    # A path, not an absolute URL: the redirect never echoes the client's Host header back.
    return RedirectResponse(f"{CONSOLE_PATH}/", status_code=308, headers=SECURITY_HEADERS)
