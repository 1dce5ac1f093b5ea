"""Project base classes for resources: blueprint, schemas, fields and the Identus page object."""

from __future__ import annotations

import json

import marshmallow as ma
from flask import current_app, request
from flask_smorest import Blueprint as _Blueprint
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from shared.errors import InvalidInput
from shared.timeutil import isoformat
from shared.validation import MAX_JSON_DEPTH, check_json_value


class Parser(FlaskParser):
    # A body that does not fit its schema is a bad request (400), as in the Identus agent.
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req):
        """The JSON body, refused (400) when it is too deep or holds what cannot be stored."""
        if not is_json_request(req):
            return core.missing
        try:
            value = core.parse_json(req.get_data(cache=True))
        except RecursionError:
            raise InvalidInput(f"body: JSON nesting deeper than {MAX_JSON_DEPTH} levels") from None
        except json.JSONDecodeError:
            raise
        except ValueError as exc:  # e.g. an integer of more than 4,300 digits
            raise json.JSONDecodeError(str(exc), "?", 0) from None
        check_json_value(value)
        return value


class Blueprint(_Blueprint):
    ARGUMENTS_PARSER = Parser()


class Schema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # unknown request fields are ignored, as in the Identus agent


class Timestamp(ma.fields.DateTime):
    """UTC ISO-8601 with microseconds and a Z: 2023-09-12T08:39:03.871339Z."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else isoformat(value)


class ProblemSchema(Schema):
    status = ma.fields.Integer(required=True)
    type = ma.fields.String(required=True)
    title = ma.fields.String(required=True)
    detail = ma.fields.String()
    instance = ma.fields.String(required=True)


class PageArgsSchema(Schema):
    offset = ma.fields.Integer(load_default=0, validate=ma.validate.Range(min=0, max=2**31 - 1))
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(min=1, max=1000))


def page_schema(name: str, item_schema: type[ma.Schema]) -> type[ma.Schema]:
    return type(
        name,
        (Schema,),
        {
            "self": ma.fields.String(required=True, data_key="self"),
            "kind": ma.fields.String(required=True),
            "pageOf": ma.fields.String(required=True),
            "next": ma.fields.String(),
            "previous": ma.fields.String(),
            "contents": ma.fields.List(ma.fields.Nested(item_schema), required=True),
        },
    )


def relative_path() -> str:
    """The request path below API_PREFIX, as the Identus agent (behind its proxy) sees it."""
    prefix = current_app.config["API_PREFIX"]
    path = (
        request.path[len(prefix) :] if prefix and request.path.startswith(prefix) else request.path
    )
    return path or "/"


def page(kind: str, contents: list, offset: int = 0, limit: int | None = None, total: int = 0):
    path = relative_path()
    query = request.query_string.decode()
    result = {
        "self": f"{path}?{query}" if query else path,
        "kind": kind,
        "pageOf": path,
        "contents": contents,
    }
    if limit is not None:
        if offset + limit < total:
            result["next"] = f"{path}?offset={offset + limit}&limit={limit}"
        if offset > 0:
            result["previous"] = f"{path}?offset={max(offset - limit, 0)}&limit={limit}"
    return result
