"""Entities and their API keys (operator only): how a tenant is onboarded."""

from flask import Response
from flask.views import MethodView

from app.auth import ADMIN, caller
from app.base import Blueprint, PageArgsSchema, ProblemSchema, page
from app.resources.iam.schemas import (
    ApiKeySchema,
    EntityCreateSchema,
    EntityNameSchema,
    EntityPageSchema,
    EntitySchema,
    EntityWalletSchema,
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
    @blp.alt_response(422, schema=ProblemSchema, description="An entity with this id exists")
    def post(self, body):
        """Create an entity in a wallet (the default wallet when none is named)"""
        with state().db.transaction() as session:
            return tenancy.create_entity(
                session, body["name"], body.get("walletId"), body.get("id")
            )

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


@blp.route("/entities/<uuid:entity_id>/name")
class EntityName(MethodView):
    @caller(blp, ADMIN)
    @blp.arguments(EntityNameSchema)
    @blp.response(200, EntitySchema)
    @blp.alt_response(404, schema=ProblemSchema)
    def put(self, body, entity_id):
        """Rename an entity"""
        with state().db.transaction() as session:
            return tenancy.rename_entity(session, entity_id, body["name"])


@blp.route("/entities/<uuid:entity_id>/walletId")
class EntityWallet(MethodView):
    @caller(blp, ADMIN)
    @blp.arguments(EntityWalletSchema)
    @blp.response(200, EntitySchema)
    @blp.alt_response(
        404, schema=ProblemSchema, description="The entity or the wallet does not exist"
    )
    def put(self, body, entity_id):
        """Move an entity, and what its API keys act on, to another wallet"""
        app_state = state()
        with app_state.db.transaction() as session:
            entity = tenancy.move_entity(session, entity_id, body["walletId"])
        # This process stops acting on the old wallet at once; others within the key cache's time.
        app_state.forget_api_keys()
        return entity


@blp.route("/apikey-authentication")
class ApiKeys(MethodView):
    @caller(blp, ADMIN)
    @blp.arguments(ApiKeySchema)
    @blp.response(201)
    @blp.alt_response(404, schema=ProblemSchema)
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
