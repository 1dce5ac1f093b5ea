"""Entities and their API keys (operator only): how a tenant is onboarded."""

from flask import Response
from flask.views import MethodView

from app.auth import ADMIN_SECURITY, require_admin
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
    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(EntityCreateSchema)
    @blp.response(201, EntitySchema)
    @blp.alt_response(401, schema=ProblemSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="The wallet does not exist")
    def post(self, body):
        """Create an entity in a wallet"""
        require_admin()
        with state().db.transaction() as session:
            return tenancy.create_entity(session, body["name"], body["walletId"], body.get("id"))

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, EntityPageSchema)
    @blp.alt_response(401, schema=ProblemSchema)
    def get(self, args):
        """List entities"""
        require_admin()
        with state().db.session() as session:
            entities, total = tenancy.list_entities(session, args["offset"], args["limit"])
        return page("EntityResponsePage", entities, args["offset"], args["limit"], total)


@blp.route("/entities/<uuid:entity_id>")
class EntityById(MethodView):
    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, EntitySchema)
    @blp.alt_response(401, schema=ProblemSchema)
    @blp.alt_response(404, schema=ProblemSchema)
    def get(self, entity_id):
        """Show one entity"""
        require_admin()
        with state().db.session() as session:
            return tenancy.get_entity(session, entity_id)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200)
    @blp.alt_response(401, schema=ProblemSchema)
    @blp.alt_response(404, schema=ProblemSchema)
    def delete(self, entity_id):
        """Delete an entity and its API keys"""
        require_admin()
        app_state = state()
        with app_state.db.transaction() as session:
            tenancy.delete_entity(session, entity_id)
        app_state.forget_api_keys()
        return Response(status=200)


@blp.route("/apikey-authentication")
class ApiKeys(MethodView):
    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(ApiKeySchema)
    @blp.response(201)
    @blp.alt_response(401, schema=ProblemSchema)
    @blp.alt_response(404, schema=ProblemSchema)
    @blp.alt_response(409, schema=ProblemSchema, description="Key registered to another entity")
    def post(self, body):
        """Register an API key for an entity"""
        require_admin()
        app_state = state()
        with app_state.db.transaction() as session:
            salt = app_state.salt(session)
            tenancy.register_api_key(session, salt, body["entityId"], body["apiKey"])
        return Response(status=201)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(ApiKeySchema)
    @blp.response(200)
    @blp.alt_response(401, schema=ProblemSchema)
    @blp.alt_response(404, schema=ProblemSchema)
    def delete(self, body):
        """Remove an API key"""
        require_admin()
        app_state = state()
        with app_state.db.transaction() as session:
            salt = app_state.salt(session)
            tenancy.unregister_api_key(session, salt, body["entityId"], body["apiKey"])
        app_state.forget_api_keys()
        return Response(status=200)
