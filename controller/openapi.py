"""The OpenAPI document at ``/api/v1/openapi.json``, made to say what the API really answers.

The routes read their query strings and bodies themselves (OpenWhisk's messages, not FastAPI's 422s)
and return JSON built from the models, so FastAPI alone would document neither the query parameters,
nor the Basic authentication, nor any response body, nor the error answers. This module adds them
after FastAPI has generated the paths; tests/integration/test_api_fuzz.py holds the API to it with
schemathesis (no 5xx, every response as documented).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from controller.query import MAX_LIST_LIMIT

JSON = "application/json"


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document (built once, on first request) as ``app``'s OpenAPI."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def describe(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document of ``app`` with parameters, security, response bodies and errors added."""
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = document.setdefault("components", {})
    components.setdefault("schemas", {}).update(SCHEMAS)
    components["securitySchemes"] = {"basic": {"type": "http", "scheme": "basic"}}
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            _complete(path, method, operation)
    return document


# --- component schemas (reference/openwhisk.md §2-3) ------------------------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_INT = {"type": "integer"}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_PAIRS = {"type": "array", "items": _object(["key"], key=_STR, value={}, init=_BOOL)}
_ENTITY_REF = _object(["path", "name"], path=_STR, name=_STR)
_RULE_STATUS = {"type": "string", "enum": ["active", "inactive"]}
_LIMITS = _object(["timeout", "memory", "logs", "concurrency"], timeout=_INT, memory=_INT, logs=_INT, concurrency=_INT)

SCHEMAS: dict[str, Any] = {
    "ErrorBody": _object(["error", "code"], error=_STR, code=_STR),
    "Action": _object(
        ["namespace", "name", "version", "publish", "exec", "parameters", "annotations", "limits", "updated"],
        namespace=_STR,
        name=_STR,
        version=_STR,
        publish=_BOOL,
        exec=_object(["kind"], kind=_STR, code=_STR, image=_STR, main=_STR, binary=_BOOL),
        parameters=_PAIRS,
        annotations=_PAIRS,
        limits=_LIMITS,
        updated=_INT,
    ),
    "ActionSummary": _object(
        ["namespace", "name", "version", "publish", "annotations", "limits", "exec", "updated"],
        namespace=_STR,
        name=_STR,
        version=_STR,
        publish=_BOOL,
        annotations=_PAIRS,
        limits=_LIMITS,
        exec=_object(["binary"], binary=_BOOL),
        updated=_INT,
    ),
    "ActivationResponse": _object(["status", "success", "result"], status=_STR, success=_BOOL, result={}, size=_INT),
    "Activation": _object(
        [
            "activationId",
            "namespace",
            "name",
            "subject",
            "version",
            "publish",
            "start",
            "end",
            "duration",
            "response",
            "logs",
            "annotations",
        ],
        activationId=_STR,
        namespace=_STR,
        name=_STR,
        subject=_STR,
        version=_STR,
        publish=_BOOL,
        start=_INT,
        end=_INT,
        duration=_INT,
        cause=_STR,
        response=_ref("ActivationResponse"),
        logs={"type": "array", "items": _STR},
        annotations=_PAIRS,
    ),
    "Trigger": _object(
        ["namespace", "name", "version", "publish", "parameters", "annotations", "limits", "updated"],
        namespace=_STR,
        name=_STR,
        version=_STR,
        publish=_BOOL,
        parameters=_PAIRS,
        annotations=_PAIRS,
        limits={"type": "object"},
        rules={
            "type": "object",
            "additionalProperties": _object(["action", "status"], action=_ENTITY_REF, status=_RULE_STATUS),
        },
        updated=_INT,
    ),
    "TriggerSummary": _object(
        ["namespace", "name", "version", "publish", "annotations", "updated"],
        namespace=_STR,
        name=_STR,
        version=_STR,
        publish=_BOOL,
        annotations=_PAIRS,
        updated=_INT,
    ),
    "Rule": _object(
        ["namespace", "name", "status", "trigger", "action", "version", "publish", "annotations", "updated"],
        namespace=_STR,
        name=_STR,
        status=_RULE_STATUS,
        trigger=_ENTITY_REF,
        action=_ENTITY_REF,
        version=_STR,
        publish=_BOOL,
        annotations=_PAIRS,
        updated=_INT,
    ),
    "RuleDocument": _object(
        ["namespace", "name", "trigger", "action", "version", "publish", "annotations", "updated"],
        namespace=_STR,
        name=_STR,
        trigger=_ENTITY_REF,
        action=_ENTITY_REF,
        version=_STR,
        publish=_BOOL,
        annotations=_PAIRS,
        updated=_INT,
    ),
    "ActivationSummary": _object(
        ["namespace", "name", "version", "publish", "annotations", "activationId", "start"],
        namespace=_STR,
        name=_STR,
        version=_STR,
        publish=_BOOL,
        annotations=_PAIRS,
        activationId=_STR,
        start=_INT,
        end=_INT,
        duration=_INT,
        statusCode=_INT,
        cause=_STR,
    ),
}

# --- per operation ---------------------------------------------------------------------------------

_BOOLEAN_QUERY = {"type": "string", "enum": ["true", "false"]}
_LIMIT = {"type": "integer", "minimum": 0, "maximum": MAX_LIST_LIMIT}
_SKIP = {"type": "integer", "minimum": 0}

# Query parameters each operation reads (controller/query.py), keyed by (method, path suffix).
_QUERY: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("get", "/actions"): {"limit": _LIMIT, "skip": _SKIP, "count": _BOOLEAN_QUERY},
    ("put", "/actions/{name}"): {"overwrite": _BOOLEAN_QUERY},
    ("get", "/actions/{name}"): {"code": _BOOLEAN_QUERY},
    ("get", "/actions/{package}/"): {"limit": _LIMIT, "skip": _SKIP, "count": _BOOLEAN_QUERY},
    ("put", "/actions/{package}/{name}"): {"overwrite": _BOOLEAN_QUERY},
    ("get", "/actions/{package}/{name}"): {"code": _BOOLEAN_QUERY},
    ("get", "/packages"): {"limit": _LIMIT, "skip": _SKIP, "count": _BOOLEAN_QUERY, "public": _BOOLEAN_QUERY},
    ("put", "/packages/{name}"): {"overwrite": _BOOLEAN_QUERY},
    ("delete", "/packages/{name}"): {"force": _BOOLEAN_QUERY},
    ("get", "/triggers"): {"limit": _LIMIT, "skip": _SKIP, "count": _BOOLEAN_QUERY},
    ("put", "/triggers/{name}"): {"overwrite": _BOOLEAN_QUERY},
    ("get", "/rules"): {"limit": _LIMIT, "skip": _SKIP, "count": _BOOLEAN_QUERY},
    ("put", "/rules/{name}"): {"overwrite": _BOOLEAN_QUERY},
    ("post", "/actions/{name}"): {
        "blocking": _BOOLEAN_QUERY,
        "result": _BOOLEAN_QUERY,
        "timeout": {"type": "integer", "minimum": 1},
    },
    ("get", "/activations"): {
        "name": _STR,
        "since": _INT,
        "upto": _INT,
        "limit": _LIMIT,
        "skip": _SKIP,
        "docs": _BOOLEAN_QUERY,
        "count": _BOOLEAN_QUERY,
    },
}


def _list_or_count(item: str, collection: str) -> dict[str, Any]:
    count = _object([collection], **{collection: _INT})
    return {"anyOf": [{"type": "array", "items": _ref(item)}, count]}


def _ok(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The 200 body of the operation at ``path`` (without the /api/v1 prefix)."""
    if path == "":
        return "API information", {"type": "object"}
    if path == "/namespaces":
        return "The namespaces of the subject", {"type": "array", "items": _STR}
    if path.endswith("/limits"):
        return "The namespace's limits", {"type": "object", "additionalProperties": _INT}
    if path.endswith("/triggers"):
        return "Triggers, newest first, or their count", _list_or_count("TriggerSummary", "triggers")
    if path.endswith("/triggers/{name}"):
        return None if method == "post" else ("The trigger (with its rules once one was linked)", _ref("Trigger"))
    if path.endswith("/rules"):
        return "Rules, newest first, or their count", _list_or_count("RuleDocument", "rules")
    if path.endswith("/rules/{name}"):
        return None if method == "post" else ("The rule with its status", _ref("Rule"))
    if path.endswith("/actions") or path.endswith("/actions/{package}/"):
        return "Actions, newest first, or their count", _list_or_count("ActionSummary", "actions")
    if path.endswith("/packages"):
        return "Packages and bindings, newest first, or their count", {"anyOf": [{"type": "array"}, {"type": "object"}]}
    if path.endswith("/packages/{name}"):
        return "The package (with its actions and feeds on GET)", {"type": "object"}
    if path.endswith("/actions/{name}") or path.endswith("/actions/{package}/{name}"):
        if method == "post":
            return "The activation record, or its result with result=true", {}
        return "The action", _ref("Action")
    if path.endswith("/activations"):
        activation = {"anyOf": [_ref("ActivationSummary"), _ref("Activation")]}
        count = _object(["activations"], activations=_INT)
        return "Activations, newest first (docs=true: whole records), or their count", {
            "anyOf": [{"type": "array", "items": activation}, count]
        }
    if path.endswith("/result"):
        return "The activation's response", _ref("ActivationResponse")
    if path.endswith("/logs"):
        return "The activation's log lines", _object(["logs"], logs={"type": "array", "items": _STR})
    if path.endswith("/{activation_id}"):
        return "The activation record", _ref("Activation")
    return None


def _errors(method: str, path: str) -> dict[str, str]:
    errors = {
        "400": "Bad request (an invalid parameter or body)",
        "401": "Missing or wrong credentials",
        "403": "Not entitled to this namespace",
        "404": "No such entity",
        "405": "Method not allowed",
        "503": "The store or the bus is unavailable",
    }
    if path == "":
        return {}
    if method == "put":
        errors["409"] = "The action exists (use overwrite=true) or was changed meanwhile"
    if method in ("get", "delete") and path.endswith("}"):
        # [OW] conformanceMessage (a name of another collection); a package holding actions (delete).
        errors["409"] = "The name is another collection's, or the package is not empty"
    if method in ("put", "post"):
        errors["413"] = "The request is larger than allowed"
    if method == "post":
        errors["429"] = "Too many requests (the namespace's throttles)"
    if method == "post" and (path.endswith("/triggers/{name}") or path.endswith("/rules/{name}")):
        errors["409"] = "The name is another collection's (or the trigger kept changing meanwhile)"
    if not path.startswith("/namespaces/{namespace}"):
        errors = {"401": errors["401"], "503": errors["503"]}
    return errors


def _complete(path: str, method: str, operation: dict[str, Any]) -> None:
    if not path.startswith("/api/v1"):  # /invokers: an operator's view, without authentication
        operation["responses"] = {
            "200": _json("Each invoker's health", {"type": "object", "additionalProperties": _STR})
        }
        return
    api_path = path.removeprefix("/api/v1")
    suffix = api_path.removeprefix("/namespaces/{namespace}") if api_path.startswith("/namespaces/{") else api_path
    for name, schema in _QUERY.get((method, suffix), {}).items():
        operation.setdefault("parameters", []).append(
            {"name": name, "in": "query", "required": False, "schema": schema}
        )
    if api_path != "":
        operation["security"] = [{"basic": []}]
    # The routes parse their own input, so FastAPI's 422 never happens: errors are ErrorBody answers.
    responses: dict[str, Any] = {}
    ok = _ok(method, api_path)
    if ok is not None:
        responses["200"] = _json(*ok)
    if method == "post" and suffix == "/actions/{name}":
        responses["202"] = _json("Accepted: the activation id", _object(["activationId"], activationId=_STR))
        # A blocking invoke answers the record (or result) of a failed activation with 502 or 500.
        responses["500"] = _json("The activation ended in a whisk internal error", {})
        responses["502"] = _json("The action failed (application or developer error)", {})
    if method == "post" and suffix == "/triggers/{name}":
        responses["202"] = _json("Fired: the trigger activation's id", _object(["activationId"], activationId=_STR))
        responses["204"] = {"description": "No rule of the trigger is active: nothing fired, nothing recorded"}
    if method == "post" and suffix == "/rules/{name}":
        # [OW] complete(OK): akka's default entity for the status, not JSON.
        responses["200"] = {
            "description": "The rule is (now) in the requested status",
            "content": {"text/plain": {"schema": {"type": "string", "enum": ["OK"]}}},
        }
    for status, description in _errors(method, api_path).items():
        responses.setdefault(status, _json(description, _ref("ErrorBody")))
    operation["responses"] = responses


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}
