"""Every error, for every route, as the contract's problem document.

{"status", "type", "title", "detail"?, "instance": "error:instance:<uuid>"}
"""

from __future__ import annotations

import logging
import uuid

from flask import Flask, Response, json, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from shared.errors import ServiceError

log = logging.getLogger(__name__)

_HTTP_TYPES = {
    400: ("BadRequest", "BadRequest"),
    401: ("error:AuthenticationError:InvalidCredentials", "Invalid Credentials"),
    404: ("NotFound", "NotFound"),
    405: ("MethodNotAllowed", "Method Not Allowed"),
    413: ("PayloadTooLarge", "Payload Too Large"),
    415: ("BadRequest", "BadRequest"),
    503: ("ServiceUnavailable", "Service Unavailable"),
}


def problem(status: int, type_: str, title: str, detail: str | None = None):
    body = {"status": status, "type": type_, "title": title}
    if detail:
        body["detail"] = detail
    body["instance"] = f"error:instance:{uuid.uuid4()}"
    return Response(json.dumps(body), status=status, mimetype="application/json")


def handle_service_error(exc: ServiceError):
    return problem(exc.status, exc.type, exc.title, exc.detail)


def handle_http_exception(exc: HTTPException):
    status = exc.code or 500
    if status == 404 and request.url_rule is None:
        return problem(
            404,
            "error:ResourcePathNotFound",
            "Resource Path Not Found",
            "The requested resource path doesn't exist.",
        )
    messages = (getattr(exc, "data", None) or {}).get("messages")
    if status == 400 and messages:
        return _request_problem(messages)
    type_, title = _HTTP_TYPES.get(status, (exc.name.replace(" ", ""), exc.name))
    detail = exc.description if status not in (404,) else None
    response = problem(status, type_, title, detail)
    if status == 405 and getattr(exc, "valid_methods", None):
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _request_problem(messages: dict):
    """webargs' validation messages, as one readable detail line."""
    if "json" in messages and messages["json"] == ["Invalid JSON body."]:
        return problem(
            400,
            "error:RequestBodyDecodingFailure",
            "Request Body Decoding Failure",
            f"An error occurred when decoding the request body: path=['{request.method} "
            f"{request.path}'], details=[Invalid JSON body]",
        )
    parts = []
    for location, fields in messages.items():
        for field, errors in fields.items() if isinstance(fields, dict) else [("", fields)]:
            parts.append(f"{field or location}: {_flatten(errors)}")
    return problem(400, "BadRequest", "BadRequest", "; ".join(parts))


def _flatten(errors) -> str:
    if isinstance(errors, dict):
        return ", ".join(f"{key}: {_flatten(value)}" for key, value in errors.items())
    if isinstance(errors, list):
        return " ".join(_flatten(e) for e in errors)
    return str(errors)


def handle_database_error(exc: DBAPIError):
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        log.warning("database unavailable: %s", type(exc.orig).__name__)
        return problem(
            503, "ServiceUnavailable", "Service Unavailable", "The database is unreachable."
        )
    return handle_unexpected(exc)


def handle_unexpected(exc: Exception):
    log.exception("unexpected error on %s %s", request.method, request.path)
    return problem(
        500,
        "error:InternalServerError",
        "Internal Server Error",
        f"An unexpected error occurred when processing the request: "
        f"path=['{request.method} {request.path}']",
    )


def init_app(app: Flask) -> None:
    app.register_error_handler(ServiceError, handle_service_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(Exception, handle_unexpected)
