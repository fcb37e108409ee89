"""The exceptions that map to OpenWhisk's answers (reference/openwhisk.md §1.2).

Routes raise these; one handler in the controller renders ``{"error": message, "code": transid}``.
"""

from __future__ import annotations


class WhiskError(Exception):
    """Base class: an HTTP status and a message in OpenWhisk's words."""

    status_code = 500
    default_message = "An internal error occurred."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class BadRequest(WhiskError):
    status_code = 400
    default_message = "The request content was malformed."


class Unauthorized(WhiskError):
    status_code = 401
    default_message = "The supplied authentication is invalid."


class Forbidden(WhiskError):
    status_code = 403
    default_message = "The supplied authentication is not authorized to access this resource."


class NotFound(WhiskError):
    status_code = 404
    default_message = "The requested resource does not exist."


class MethodNotAllowed(WhiskError):
    status_code = 405
    default_message = "HTTP method not allowed, supported methods: GET, PUT, POST, DELETE."


class Conflict(WhiskError):
    status_code = 409
    default_message = "resource already exists"


class ConcurrentModification(Conflict):
    default_message = "Concurrent modification to resource detected."


class PayloadTooLarge(WhiskError):
    status_code = 413

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"Request larger than allowed: {size} > {limit} bytes.")


class TooManyRequests(WhiskError):
    status_code = 429
    default_message = "Too many requests."


class ServiceUnavailable(WhiskError):
    status_code = 503
    default_message = "No invokers available"


class StoreUnavailable(Exception):
    """The store could not be reached or failed on its side (e.g. CouchDB restarting): try again later.

    Not a ``WhiskError``: its message names the backend; the controller answers 503 in its own words.
    """


class ExecutorError(Exception):
    """An executor could not provision or drive an instance (a platform failure, not the action's)."""


class ActionStartupError(ExecutorError):
    """The action's own instance cannot start: e.g. its ``blackbox`` image does not exist on this host.

    A fault of the action, not of the platform ([OW] DockerContainer's ``BlackboxStartupError``, which
    ContainerProxy records as a developer error): its message is what the user reads in the record, and
    it does not count against the invoker's health.
    """
