"""A small typed client for the OpenWhisk REST API, covering what `wsk` uses (reference/openwhisk.md §1).

It is synchronous (one request at a time is all a CLI needs) and takes an optional httpx transport, so tests run it
against `httpx.MockTransport`. Every method returns parsed JSON as the server sent it (dicts keep the server's key
order). Failures surface as one of two exceptions: `ApiError` (the server answered with a non-2xx status) and
`ConnectionFailed` (no usable answer at all).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx


def _version() -> str:
    try:
        return metadata.version("pywhisk")
    except metadata.PackageNotFoundError:
        return "unknown"


USER_AGENT = f"pywsk/{_version()}"
# The controller waits up to 60 s for a blocking invoke (§1.4); leave it room to answer with its 202.
BLOCKING_TIMEOUT = 70.0
DEFAULT_TIMEOUT = 30.0
NETWORK_EXIT_CODE = 3  # wsk's EXIT_CODE_ERR_NETWORK
_VERBOSE_BODY_LIMIT = 1000


class ClientError(Exception):
    """Something the client could not do; `exit_code` is what `wsk` would exit with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ApiError(ClientError):
    """A non-2xx answer. `message` and `code` come from OpenWhisk's error body `{"error", "code"}` (§1.2)."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        # wsk exits with status - 256 for HTTP errors (404 -> 148, 409 -> 153), see [GOC] whisk/client.go.
        super().__init__(message, status - 256 if status >= 256 else 1)
        self.status = status
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message if self.code is None else f"{self.message} (code {self.code})"


class ConnectionFailed(ClientError):
    """The server could not be reached, or did not answer in time."""

    def __init__(self, message: str) -> None:
        super().__init__(message, NETWORK_EXIT_CODE)


@dataclass(frozen=True)
class Invocation:
    """The answer to an action invoke: 200/202 bodies, and error bodies that are activation results.

    A blocking invoke whose action failed is answered 502 (500 for a whisk internal error) with the activation
    record, or `{"error": ...}` when only the result was asked for. Those bodies carry no `code`, which is how
    they differ from API errors (§1.2, [GOC] `parseApplicationError`).
    """

    status: int
    body: Any
    activation_id: str | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class WhiskClient:
    """The OpenWhisk REST API at `{apihost}/api/{apiversion}`, authenticated with HTTP Basic `uuid:key`."""

    def __init__(
        self,
        apihost: str,
        auth: str,
        *,
        apiversion: str = "v1",
        insecure: bool = False,
        transport: httpx.BaseTransport | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.apihost = apihost
        self.api_url = f"{apihost}/api/{apiversion}"
        user, _, key = auth.partition(":")
        hooks: dict[str, list[Callable[..., Any]]] = {}
        if log is not None:
            hooks = {"request": [_log_request(log)], "response": [_log_response(log)]}
        options: dict[str, Any] = {"transport": transport} if transport is not None else {"verify": not insecure}
        self._http = httpx.Client(
            base_url=self.api_url,
            auth=httpx.BasicAuth(user, key),
            headers={"User-Agent": USER_AGENT},
            timeout=DEFAULT_TIMEOUT,
            event_hooks=hooks,
            **options,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WhiskClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- API info and namespaces ------------------------------------------------------------------------------

    def info(self) -> Any:
        """`GET /api/v1`: the API description, with `build` and `buildno`."""
        return self._call("GET", self.api_url)

    def list_namespaces(self) -> Any:
        """`GET /namespaces`: the caller's namespace names."""
        return self._call("GET", "/namespaces")

    # -- actions ----------------------------------------------------------------------------------------------

    def put_action(self, namespace: str, name: str, body: Mapping[str, Any], *, overwrite: bool) -> Any:
        """Create (or with `overwrite`, update) an action; `body` is a WhiskActionPut document (§1.3)."""
        path = _entity_path(namespace, "actions", name)
        return self._call("PUT", path, params={"overwrite": _flag(overwrite)}, json=body)

    def get_action(self, namespace: str, name: str, *, code: bool) -> Any:
        return self._call("GET", _entity_path(namespace, "actions", name), params={"code": _flag(code)})

    def delete_action(self, namespace: str, name: str) -> Any:
        return self._call("DELETE", _entity_path(namespace, "actions", name))

    def list_actions(self, namespace: str, package: str | None = None, *, limit: int, skip: int) -> Any:
        """The actions of a namespace, or of one package (the route then ends in a slash, §1.3)."""
        path = f"/namespaces/{_segment(namespace)}/actions"
        if package:
            path = f"{path}/{_segment(package)}/"
        return self._call("GET", path, params={"limit": limit, "skip": skip})

    def invoke_action(self, namespace: str, name: str, params: Any, *, blocking: bool, result: bool) -> Invocation:
        """`POST` an invoke. API errors raise `ApiError`; activation results come back as `Invocation`."""
        response = self._request(
            "POST",
            _entity_path(namespace, "actions", name),
            params={"blocking": _flag(blocking), "result": _flag(result)},
            json=params,
            timeout=BLOCKING_TIMEOUT if blocking else DEFAULT_TIMEOUT,
        )
        body = _json_or_none(response)
        if not response.is_success and not (isinstance(body, dict) and "code" not in body):
            raise _api_error(response, body)
        activation_id = response.headers.get("x-openwhisk-activation-id")
        if isinstance(body, dict) and isinstance(body.get("activationId"), str):
            activation_id = body["activationId"]
        return Invocation(response.status_code, body, activation_id)

    # -- packages ---------------------------------------------------------------------------------------------

    def put_package(self, namespace: str, name: str, body: Mapping[str, Any], *, overwrite: bool) -> Any:
        """Create (or with `overwrite`, update) a package or binding; `body` is a WhiskPackagePut (§1.6)."""
        path = _entity_path(namespace, "packages", name)
        return self._call("PUT", path, params={"overwrite": _flag(overwrite)}, json=body)

    def get_package(self, namespace: str, name: str) -> Any:
        """The package with its `actions` (name, version, annotations), as `GET .../packages/{name}` answers."""
        return self._call("GET", _entity_path(namespace, "packages", name))

    def delete_package(self, namespace: str, name: str) -> Any:
        return self._call("DELETE", _entity_path(namespace, "packages", name))

    def list_packages(self, namespace: str, *, limit: int, skip: int) -> Any:
        return self.list_collection(namespace, "packages", limit=limit, skip=skip)

    def list_collection(self, namespace: str, collection: str, *, limit: int, skip: int) -> Any:
        """`GET /namespaces/{ns}/{collection}`: summaries of actions, packages, triggers or rules."""
        path = f"/namespaces/{_segment(namespace)}/{collection}"
        return self._call("GET", path, params={"limit": limit, "skip": skip})

    # -- triggers and rules -----------------------------------------------------------------------------------

    def put_trigger(self, namespace: str, name: str, body: Mapping[str, Any], *, overwrite: bool) -> Any:
        """Create (or with `overwrite`, update) a trigger; `body` is a WhiskTriggerPut document (§1.6)."""
        path = _entity_path(namespace, "triggers", name)
        return self._call("PUT", path, params={"overwrite": _flag(overwrite)}, json=body)

    def get_trigger(self, namespace: str, name: str) -> Any:
        return self._call("GET", _entity_path(namespace, "triggers", name))

    def delete_trigger(self, namespace: str, name: str) -> Any:
        return self._call("DELETE", _entity_path(namespace, "triggers", name))

    def fire_trigger(self, namespace: str, name: str, params: Any) -> str | None:
        """`POST` a fire: the trigger activation's id, or None when OpenWhisk answers 204 (no active rule)."""
        response = self._request("POST", _entity_path(namespace, "triggers", name), json=params)
        body = _json_or_none(response)
        if not response.is_success:
            raise _api_error(response, body)
        if response.status_code == 204:
            return None
        activation_id = body.get("activationId") if isinstance(body, dict) else None
        return str(activation_id) if activation_id is not None else ""

    def put_rule(self, namespace: str, name: str, body: Mapping[str, Any], *, overwrite: bool) -> Any:
        """Create (or with `overwrite`, update) a rule; `body` names its trigger and action fully qualified."""
        path = _entity_path(namespace, "rules", name)
        return self._call("PUT", path, params={"overwrite": _flag(overwrite)}, json=body)

    def get_rule(self, namespace: str, name: str) -> Any:
        """The rule with its `status`, which OpenWhisk reads from the rule's trigger."""
        return self._call("GET", _entity_path(namespace, "rules", name))

    def delete_rule(self, namespace: str, name: str) -> Any:
        return self._call("DELETE", _entity_path(namespace, "rules", name))

    def set_rule_state(self, namespace: str, name: str, state: str) -> Any:
        """`POST {"status": "active"|"inactive"}`, the Go client's `Rules.SetState`."""
        return self._call("POST", _entity_path(namespace, "rules", name), json={"status": state})

    # -- activations ------------------------------------------------------------------------------------------

    def list_activations(
        self,
        namespace: str,
        *,
        name: str | None = None,
        limit: int,
        skip: int,
        since: int | None = None,
        upto: int | None = None,
        docs: bool = False,
    ) -> Any:
        """Activations, newest first; with `docs` full records instead of summaries (§1.5)."""
        params: dict[str, str | int] = {"limit": limit, "skip": skip}
        if name:
            params["name"] = name
        if since:
            params["since"] = since
        if upto:
            params["upto"] = upto
        if docs:
            params["docs"] = "true"
        return self._call("GET", f"/namespaces/{_segment(namespace)}/activations", params=params)

    def get_activation(self, namespace: str, activation_id: str) -> Any:
        return self._call("GET", _entity_path(namespace, "activations", activation_id))

    def get_activation_result(self, namespace: str, activation_id: str) -> Any:
        """The activation's `response`: `{"result", "success", "status"}`."""
        return self._call("GET", _entity_path(namespace, "activations", activation_id) + "/result")

    def get_activation_logs(self, namespace: str, activation_id: str) -> Any:
        """`{"logs": [...]}`, one string per log line."""
        return self._call("GET", _entity_path(namespace, "activations", activation_id) + "/logs")

    # -- plumbing ---------------------------------------------------------------------------------------------

    def _call(self, method: str, url: str, *, params: Mapping[str, str | int] | None = None, json: Any = None) -> Any:
        response = self._request(method, url, params=params, json=json)
        body = _json_or_none(response)
        if not response.is_success:
            raise _api_error(response, body)
        return body

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> httpx.Response:
        try:
            return self._http.request(method, url, params=params, json=json, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise ConnectionFailed(
                f"The request to {self.apihost} timed out after {timeout:g} s ({type(exc).__name__})."
            ) from exc
        except httpx.TransportError as exc:
            raise ConnectionFailed(_connect_message(self.apihost, exc)) from exc


def _entity_path(namespace: str, collection: str, name: str) -> str:
    entity = "/".join(_segment(part) for part in name.split("/"))
    return f"/namespaces/{_segment(namespace)}/{collection}/{entity}"


def _segment(text: str) -> str:
    # Entity names may hold spaces, '@', '&' and '.' (§1.1); only what would break the URL is escaped.
    return quote(text, safe="@&")


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _api_error(response: httpx.Response, body: Any) -> ApiError:
    if isinstance(body, dict) and "error" in body:
        code = body.get("code")
        return ApiError(response.status_code, str(body["error"]), None if code is None else str(code))
    return ApiError(
        response.status_code,
        f"The server answered HTTP {response.status_code} {response.reason_phrase} without an OpenWhisk error body.",
    )


def _connect_message(apihost: str, exc: httpx.TransportError) -> str:
    detail = str(exc)
    if "CERTIFICATE" in detail.upper():
        return f"Unable to connect to {apihost}: {detail}. Use -i/--insecure to skip certificate verification."
    if "SSL" in detail.upper():
        # An API host without a scheme means https (§1.1); pywhisk standalone speaks plain HTTP.
        return (
            f"Unable to connect to {apihost}: TLS failed ({detail}). "
            "If the server speaks plain HTTP, set the API host with an http:// prefix."
        )
    return f"Unable to connect to {apihost}: is the server running? Start it with `pywhisk standalone`"


def _log_request(log: Callable[[str], None]) -> Callable[[httpx.Request], None]:
    def hook(request: httpx.Request) -> None:
        log("REQUEST:")
        log(f"[{request.method}]\t{request.url}")
        log("Req Headers")
        for name, value in request.headers.items():
            log(f"    {name}: {'Basic ********' if name.lower() == 'authorization' else value}")
        if request.content:
            log("Req Body")
            log(_truncated(request.content))

    return hook


def _log_response(log: Callable[[str], None]) -> Callable[[httpx.Response], None]:
    def hook(response: httpx.Response) -> None:
        response.read()
        log("RESPONSE:")
        log(f"Got response with code {response.status_code}")
        log("Resp Headers")
        for name, value in response.headers.items():
            log(f"    {name}: {value}")
        log(f"Response body size is {len(response.content)} bytes")
        log("Response body received:")
        log(_truncated(response.content))

    return hook


def _truncated(content: bytes) -> str:
    text = content.decode("utf-8", errors="replace")
    return text if len(text) <= _VERBOSE_BODY_LIMIT else text[:_VERBOSE_BODY_LIMIT] + "..."
