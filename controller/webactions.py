"""Web actions without HTTP: the request context an action receives and its result as a response
([OW] core/controller/.../controller/WebActions.scala, docs/webactions.md).

Everything here is a pure function of plain values, so the rules OpenWhisk's tests pin down
(``WebActionsApiTests.scala``) are unit-tested without a server; ``controller.routes.web`` does the I/O.

The request side: the last path segment names the action and its *extension* (``.http`` when none is known), the
rest of the path is ``__ow_path`` and, for ``.json``/``.html``/``.svg``/``.text``, the *projection* into the result.
A JSON object or form body and the query become the action's parameters (body over query); any other body is
``__ow_body`` (base64 when its media type is binary). ``raw-http`` actions get ``__ow_query`` and ``__ow_body``
instead. The response side: each extension's transcoder, with OpenWhisk's status codes and messages.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from pywhisk.entities import is_binary_code

# [OW] WebApiDirectives: the context properties; a request may not set any of them itself.
METHOD, HEADERS, PATH, USER, QUERY, BODY = ("__ow_method", "__ow_headers", "__ow_path", "__ow_user", "__ow_query",
                                            "__ow_body")  # fmt: skip
RESERVED_PROPERTIES = frozenset({METHOD, HEADERS, PATH, USER, QUERY, BODY})
STATUS_CODE = "statusCode"
ACTIVATION_ID_HEADER = "x-openwhisk-activation-id"
REQUIRE_WHISK_AUTH_HEADER = "x-require-whisk-auth"

# [OW] Messages (common/.../http/ErrorResponse.scala).
PROPERTY_NOT_FOUND = "Response does not include requested property."
RESPONSE_NOT_READY = "Response not yet ready."
HTTP_UNKNOWN_CONTENT_TYPE = "Response did not specify a known content-type."
HTTP_CONTENT_TYPE_ERROR = "Response type in header did not match generated content type."
ERROR_PROCESSING_REQUEST = "There was an error processing your request."
PARAMETERS_NOT_ALLOWED = "Request defines parameters that are not allowed (e.g., reserved properties)."
# akka-http's default messages, which OpenWhisk's ``terminate(status)`` renders when it gives none of its own.
UNAUTHORIZED = "Authentication is possible but has failed or not yet been provided."
INTERNAL_SERVER_ERROR = "There was an internal server error."


def invalid_media(media_type: str) -> str:
    return f"Response is not valid '{media_type}'."


# [OW] CorsSettings.WebActions: what a web action answers unless it handles OPTIONS itself (web-custom-options).
CORS_ALLOW_ORIGIN = ("Access-Control-Allow-Origin", "*")
CORS_ALLOW_METHODS = ("Access-Control-Allow-Methods", "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH")
CORS_ALLOW_HEADERS = "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent"


class WebError(Exception):
    """A web request answered with an error: OpenWhisk's ``terminate(status, message)``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Extension:
    """A content extension ([OW] ``MediaExtension``): its default projection and whether a path projects."""

    name: str
    default_projection: tuple[str, ...] | None
    projection_allowed: bool


EXTENSIONS = (
    Extension(".http", None, False),
    Extension(".json", None, True),
    Extension(".html", ("html",), True),
    Extension(".svg", ("svg",), True),
    Extension(".text", ("text",), True),
)
HTTP = EXTENSIONS[0]


@dataclass
class WebResponse:
    """What the route sends: status, headers (repeatable, in order), body and its Content-Type (None: no body)."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


def split_extension(segment: str) -> tuple[str, Extension]:
    """``hello.json`` → (``hello``, .json); a name without a known extension is served as ``.http``."""
    for extension in EXTENSIONS:
        if segment.endswith(extension.name):
            return segment[: -len(extension.name)], extension
    return segment, HTTP


def projection(extension: Extension, path: str) -> list[str]:
    """The result fields a request projects: the path's segments, else the extension's default
    ([OW] ``projectResultField``; ``.http`` never projects, and a path of only slashes projects nothing)."""
    if extension.projection_allowed and path:
        return [part for part in path.split("/") if part]
    return list(extension.default_projection or ())


def project(result: Any, fields: Sequence[str]) -> Any:
    """The value at ``fields`` in ``result``; 404 when a field is missing ([OW] ``getFieldPath``)."""
    value = result
    for name in fields:
        if not isinstance(value, dict) or name not in value:
            raise WebError(404, PROPERTY_NOT_FOUND)
        value = value[name]
    return value


def default_cors_headers(request_headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """[OW] ``defaultCorsResponse``: the allowed headers echo ``Access-Control-Request-Headers`` when sent."""
    allow_headers = request_headers.get("access-control-request-headers", CORS_ALLOW_HEADERS)
    return [CORS_ALLOW_ORIGIN, CORS_ALLOW_METHODS, ("Access-Control-Allow-Headers", allow_headers)]


def require_whisk_auth(annotation: Any, request_headers: Mapping[str, str], authenticated: bool) -> bool:
    """May the request proceed under the action's ``require-whisk-auth`` ([OW] ``confirmAuthenticated``)?
    Absent: yes. A string or number: the ``X-Require-Whisk-Auth`` header must equal it. ``true``: the request
    carries the owner's credentials (``authenticated``). Anything else (``false`` too): no."""
    if annotation is None:
        return True
    if annotation is True:
        return authenticated
    if isinstance(annotation, str) or (isinstance(annotation, int | float) and not isinstance(annotation, bool)):
        return request_headers.get(REQUIRE_WHISK_AUTH_HEADER) == _scala_string(annotation)
    return False


# -- the request --------------------------------------------------------------------------------------------------

_MEDIA_TYPE = re.compile(r"\A\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)/([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*(;.*)?\Z", re.DOTALL)
NO_BODY = object()


@dataclass(frozen=True)
class MediaType:
    main: str
    sub: str
    parameters: str = ""

    @property
    def value(self) -> str:
        return f"{self.main}/{self.sub}"

    @property
    def json_family(self) -> bool:
        """[OW] ``isJsonFamily``: application/json or any ``+json`` type."""
        return self.value == "application/json" or self.sub.endswith("+json")

    @property
    def binary(self) -> bool:
        """Whether akka-http treats the type as binary (so OpenWhisk base64-encodes or -decodes its bodies):
        text, JSON, XML, form, multipart and message types, and any type given a charset, are not; images,
        audio, video, fonts and the rest of ``application/*`` are."""
        if self.main in ("text", "multipart", "message") or "charset=" in self.parameters.lower():
            return False
        if self.json_family or (self.main == "application" and (self.sub == "xml" or self.sub.endswith("+xml"))):
            return False
        return self.value not in _TEXT_APPLICATION_TYPES


_TEXT_APPLICATION_TYPES = frozenset({"application/javascript", "application/x-www-form-urlencoded"})


def parse_media_type(value: str) -> MediaType | None:
    """``type/subtype[; params]``, lower-cased; None when it is not one ([OW] akka's ``MediaType.parse``)."""
    match = _MEDIA_TYPE.match(value)
    if match is None:
        return None
    return MediaType(match.group(1).lower(), match.group(2).lower(), (match.group(3) or "").lstrip(";").strip())


def request_body(content_type: str | None, body: bytes, raw: bool) -> Any:
    """The request entity as the action sees it, or ``NO_BODY`` for an empty one ([OW]
    ``extractEntityAndProcessRequest``): a JSON (or ``+json``) body parsed, a form decoded into an object, unless
    the action is ``raw-http``; otherwise a string: base64 for a binary media type (and, as OpenWhisk keeps for
    old actions, for application/json), the text itself for the others. 400 for malformed JSON."""
    if not body:
        return NO_BODY
    # akka-http's default for an entity sent without a Content-Type.
    media = parse_media_type(content_type or "") or MediaType("application", "octet-stream")
    if not raw and media.json_family:
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise WebError(400, f"The request content was malformed:\n{exc}") from exc
    if not raw and media.value == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if media.binary or media.value == "application/json":
        return base64.b64encode(body).decode("ascii")
    return body.decode("utf-8", "replace")


def overrides_allowed(query: Iterable[str], body: Any, protected: Iterable[str]) -> bool:
    """True unless a query or body-object parameter names a reserved ``__ow_`` property or a protected one
    ([OW] ``Context.overrides``)."""
    keys = set(query) | (set(body) if isinstance(body, dict) else set())
    return not keys & (RESERVED_PROPERTIES | set(protected))


def action_arguments(
    *,
    method: str,
    headers: Mapping[str, str],
    path: str,
    query_string: str,
    query: Mapping[str, str],
    body: Any,
    raw: bool,
    user: str | None,
) -> dict[str, Any]:
    """The parameters a web action receives on top of its own ([OW] ``Context.toActionArgument``): the context,
    then the query, then the body (last wins). ``raw`` boxes the query and body into ``__ow_query``/``__ow_body``
    (both "" when absent); ``__ow_user`` is the namespace of an authenticated caller."""
    arguments: dict[str, Any] = {METHOD: method.lower(), HEADERS: dict(headers), PATH: path}
    if user is not None:
        arguments[USER] = user
    if raw:
        arguments[QUERY] = query_string
        arguments[BODY] = "" if body is NO_BODY else body
        return arguments
    arguments.update(query)
    if isinstance(body, dict):
        arguments.update(body)
    elif body is not NO_BODY:
        arguments[BODY] = body
    return arguments


def context_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``__ow_headers``: names lower-cased, the last of repeated headers. No Content-Length: akka-http models it
    as the entity's, not a header, so OpenWhisk's actions never see it."""
    return {name.lower(): value for name, value in headers if name.lower() != "content-length"}


# -- the response -------------------------------------------------------------------------------------------------


def result_response(extension: Extension, value: Any) -> WebResponse:
    """The (projected) result as the extension renders it, or ``WebError`` with OpenWhisk's answer."""
    if extension.name == ".http":
        return http_response(value)
    if extension.name == ".json":
        if not isinstance(value, dict | list):
            raise WebError(400, invalid_media("application/json"))
        return WebResponse(200, pretty_json(value).encode(), "application/json")
    if extension.name == ".text":
        text = pretty_json(value) if isinstance(value, dict | list) else _scala_string(value)
        return WebResponse(200, text.encode(), "text/plain; charset=UTF-8")
    media = "text/html" if extension.name == ".html" else "image/svg+xml"
    if not isinstance(value, str):
        raise WebError(400, invalid_media(media))
    return WebResponse(200, value.encode(), "text/html; charset=UTF-8" if media == "text/html" else media)


def http_response(result: Any) -> WebResponse:
    """The ``.http`` contract ([OW] ``resultAsHttp``): ``statusCode`` (a registered HTTP status, as a number or a
    numeric string), ``headers`` (string, number, boolean or array values) and ``body``: a string (base64 for a
    binary Content-Type), any other JSON value (for a JSON Content-Type), or none (204 unless a status is given).
    Anything else is 400 "Response is not valid 'message/http'."."""
    invalid = WebError(400, invalid_media("message/http"))
    if not isinstance(result, dict):
        raise invalid
    headers_field = result.get("headers", {})
    if not isinstance(headers_field, dict):
        raise invalid
    headers: list[tuple[str, str]] = []
    for name, value in headers_field.items():
        if not _HEADER_NAME.match(name):  # nothing an HTTP response could carry
            raise invalid
        headers.extend((name, v) for v in _header_values(value, invalid))
    status = _status_code(result[STATUS_CODE], invalid) if STATUS_CODE in result else None
    content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
    others = [(k, v) for k, v in headers if k.lower() != "content-type"]
    body = result.get("body")
    if body is None or body == "":
        # A declared Content-Type is dropped: there is no entity for it to describe.
        return WebResponse(status or 204, headers=others)
    if isinstance(body, str):
        return _string_body(status or 200, content_type, body, others)
    media = parse_media_type(content_type) if content_type is not None else MediaType("application", "json")
    if media is None or not media.json_family:
        raise WebError(400, HTTP_CONTENT_TYPE_ERROR)
    return WebResponse(status or 200, pretty_json(body).encode(), media.value, others)


def _string_body(status: int, content_type: str | None, body: str, headers: list[tuple[str, str]]) -> WebResponse:
    media = parse_media_type(content_type) if content_type is not None else MediaType("text", "html")
    if media is None:
        raise WebError(400, HTTP_UNKNOWN_CONTENT_TYPE)
    # Binary types carry base64; so may JSON types, which OpenWhisk still decodes for actions written before.
    if media.binary or (media.json_family and is_binary_code(body)):
        try:
            data = base64.b64decode(body.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise WebError(400, HTTP_CONTENT_TYPE_ERROR) from exc
        rendered = media.value if not media.parameters or media.json_family else f"{media.value}; {media.parameters}"
        return WebResponse(status, data, rendered, headers)
    rendered = media.value if media.json_family else f"{media.value}; charset=UTF-8"
    return WebResponse(status, body.encode(), rendered, headers)


def _header_values(value: Any, invalid: WebError) -> list[str]:
    if isinstance(value, list):
        return [v for item in value for v in _header_values(item, invalid)]
    if isinstance(value, str | bool | int | float):
        text = _scala_string(value)
        if _HEADER_VALUE.match(text):
            return [text]
    raise invalid


_HEADER_NAME = re.compile(r"\A[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_HEADER_VALUE = re.compile(r"\A[\t\x20-\x7e\x80-\xff]*\Z")  # what latin-1 can carry, without CR, LF or NUL


def _status_code(value: Any, invalid: WebError) -> int:
    if isinstance(value, bool):
        raise invalid
    if isinstance(value, str):
        try:
            code = int(value.strip())  # Scala's String.toInt: an optionally signed decimal integer
        except ValueError:
            raise invalid from None
    elif isinstance(value, int):
        code = value
    elif isinstance(value, float) and value.is_integer():
        code = int(value)
    else:
        raise invalid
    if code not in REGISTERED_STATUS_CODES:
        raise invalid
    return code


# akka-http's ``StatusCodes`` registry: ``int2StatusCode`` refuses any other number.
REGISTERED_STATUS_CODES = frozenset(
    {
        *(100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226),
        *(300, 301, 302, 303, 304, 305, 307, 308),
        *range(400, 419), *(420, 421, 422, 423, 424, 425, 426, 428, 429, 431, 449, 450, 451),
        *range(500, 512), *(598, 599),
    }
)  # fmt: skip


def _scala_string(value: Any) -> str:
    """A JSON scalar as OpenWhisk (Scala) prints it: ``true``, ``null``, ``1``, ``1.5``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def pretty_json(value: Any, indent: int = 0) -> str:
    """spray-json's ``prettyPrint``, which OpenWhisk answers web requests with: objects one member per line
    indented by two, arrays on one line (``[1, 2]``), non-ASCII characters as they are."""
    if isinstance(value, dict):
        pad = " " * (indent + 2)
        members = ",\n".join(f"{pad}{_json_string(str(k))}: {pretty_json(v, indent + 2)}" for k, v in value.items())
        return "{\n" + members + "\n" + " " * indent + "}"
    if isinstance(value, list):
        return "[" + ", ".join(pretty_json(v, indent) for v in value) + "]"
    if isinstance(value, str):
        return _json_string(value)
    return _scala_string(value)


def _json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def error_body(message: str, transid: str) -> bytes:
    """``{"error", "code"}`` pretty-printed, as every web-action error is ([OW] ``terminate`` with
    ``jsonPrettyResponsePrinter``)."""
    return pretty_json({"error": message, "code": transid}).encode()
