"""Wallets (operator only)."""

from flask.views import MethodView

from app.auth import ADMIN, caller
from app.base import Blueprint, PageArgsSchema, ProblemSchema, page
from app.resources.wallets.schemas import WalletCreateSchema, WalletPageSchema, WalletSchema
from app.state import state
from shared.services import tenancy

blp = Blueprint("wallets", __name__, url_prefix="/wallets", description="Wallets (admin)")


@blp.route("")
class Wallets(MethodView):
    @caller(blp, ADMIN)
    @blp.arguments(WalletCreateSchema)
    @blp.response(201, WalletSchema)
    @blp.alt_response(
        422, schema=ProblemSchema, description="A wallet with this id, or this seed, exists"
    )
    def post(self, body):
        """Create a wallet"""
        with state().db.transaction() as session:
            return tenancy.create_wallet(session, body["name"], body.get("id"), body.get("seed"))

    @caller(blp, ADMIN)
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, WalletPageSchema)
    def get(self, args):
        """List wallets"""
        with state().db.session() as session:
            wallets, total = tenancy.list_wallets(session, args["offset"], args["limit"])
        return page("WalletPage", wallets, args["offset"], args["limit"], total)


@blp.route("/<uuid:wallet_id>")
class WalletById(MethodView):
    @caller(blp, ADMIN)
    @blp.response(200, WalletSchema)
    @blp.alt_response(404, schema=ProblemSchema)
    def get(self, wallet_id):
        """Show one wallet"""
        with state().db.session() as session:
            return tenancy.get_wallet(session, wallet_id)
