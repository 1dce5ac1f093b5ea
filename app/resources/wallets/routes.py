"""Wallets (operator only)."""

from flask.views import MethodView

from app.auth import ADMIN_SECURITY, require_admin
from app.base import Blueprint, PageArgsSchema, ProblemSchema, page
from app.resources.wallets.schemas import WalletCreateSchema, WalletPageSchema, WalletSchema
from app.state import state
from shared.services import tenancy

blp = Blueprint("wallets", __name__, url_prefix="/wallets", description="Wallets (admin)")


@blp.route("")
class Wallets(MethodView):
    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(WalletCreateSchema)
    @blp.response(201, WalletSchema)
    @blp.alt_response(401, schema=ProblemSchema)
    @blp.alt_response(409, schema=ProblemSchema, description="A wallet with this id exists")
    def post(self, body):
        """Create a wallet"""
        require_admin()
        with state().db.transaction() as session:
            return tenancy.create_wallet(session, body["name"], body.get("id"))

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, WalletPageSchema)
    @blp.alt_response(401, schema=ProblemSchema)
    def get(self, args):
        """List wallets"""
        require_admin()
        with state().db.session() as session:
            wallets, total = tenancy.list_wallets(session, args["offset"], args["limit"])
        return page("WalletPage", wallets, args["offset"], args["limit"], total)


@blp.route("/<uuid:wallet_id>")
class WalletById(MethodView):
    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, WalletSchema)
    @blp.alt_response(401, schema=ProblemSchema)
    @blp.alt_response(404, schema=ProblemSchema)
    def get(self, wallet_id):
        """Show one wallet"""
        require_admin()
        with state().db.session() as session:
            return tenancy.get_wallet(session, wallet_id)
