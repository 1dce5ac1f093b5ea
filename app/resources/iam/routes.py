"""Entities and their API keys (operator only): how a tenant is onboarded."""

from flask import Response
from flask.views import MethodView

from app.auth import ADMIN, caller
from app.base import Blueprint, PageArgsSchema, ProblemSchema, page
from app.resources.iam.schemas import (
    ApiKeySchema,
    EntityCreateSchema,
    EntityPageSchema,
    EntitySchema,
)
from app.state import state
from shared.services import tenancy

blp = Blueprint("iam", __name__, url_prefix="/iam", description="Entities and API keys (admin)")


@blp.route("/entities")
class Entities(MethodView):
    @caller(blp, ADMIN)
    @blp.arguments(EntityCreateSchema)
    @blp.response(201, EntitySchema)
    @blp.alt_response(404, schema=ProblemSchema, description="The wallet does not exist")
    def post(self, body):
        """Create an entity in a wallet"""
        with state().db.transaction() as session:
            return tenancy.create_entity(session, body["name"], body["walletId"], body.get("id"))

    @caller(blp, ADMIN)
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, EntityPageSchema)
    def get(self, args):
        """List entities"""
        with state().db.session() as session:
            entities, total = tenancy.list_entities(session, args["offset"], args["limit"])
        return page("EntityResponsePage", entities, args["offset"], args["limit"], total)


@blp.route("/entities/<uuid:entity_id>")
class EntityById(MethodView):
    @caller(blp, ADMIN)
    @blp.response(200, EntitySchema)
    @blp.alt_response(404, schema=ProblemSchema)
    def get(self, entity_id):
        """Show one entity"""
        with state().db.session() as session:
            return tenancy.get_entity(session, entity_id)

    @caller(blp, ADMIN)
    @blp.response(200)
    @blp.alt_response(404, schema=ProblemSchema)
    def delete(self, entity_id):
        """Delete an entity and its API keys"""
        app_state = state()
        with app_state.db.transaction() as session:
            tenancy.delete_entity(session, entity_id)
        app_state.forget_api_keys()
        return Response(status=200)


@blp.route("/apikey-authentication")
class ApiKeys(MethodView):
    @caller(blp, ADMIN)
    @blp.arguments(ApiKeySchema)
    @blp.response(201)
    @blp.alt_response(404, schema=ProblemSchema)
    @blp.alt_response(409, schema=ProblemSchema, description="Key registered to another entity")
    def post(self, body):
        """Register an API key for an entity"""
        app_state = state()
        with app_state.db.transaction() as session:
            salt = app_state.salt(session)
            tenancy.register_api_key(session, salt, body["entityId"], body["apiKey"])
        return Response(status=201)

    @caller(blp, ADMIN)
    @blp.arguments(ApiKeySchema)
    @blp.response(200)
    @blp.alt_response(404, schema=ProblemSchema)
    def delete(self, body):
        """Remove an API key"""
        app_state = state()
        with app_state.db.transaction() as session:
            salt = app_state.salt(session)
            tenancy.unregister_api_key(session, salt, body["entityId"], body["apiKey"])
        app_state.forget_api_keys()
        return Response(status=200)
