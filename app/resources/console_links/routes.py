"""Links to one wallet's console, for an operator to hand to its tenant (operator only)."""

from flask import url_for
from flask.views import MethodView

from app.auth import ADMIN, caller
from app.base import Blueprint, ProblemSchema
from app.resources.console_links.schemas import ConsoleLinkCreateSchema, ConsoleLinkSchema
from app.state import state
from shared.services import console_access
from shared.timeutil import utcnow

blp = Blueprint(
    "console_links", __name__, url_prefix="/console/links", description="Console links (admin)"
)


@blp.route("")
class ConsoleLinks(MethodView):
    @caller(blp, ADMIN)
    @blp.arguments(ConsoleLinkCreateSchema)
    @blp.response(201, ConsoleLinkSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="No such wallet")
    def post(self, body):
        """Make a single-use link that opens one wallet's console, and only that wallet's"""
        with state().db.transaction() as session:
            link = console_access.create_link(
                session, body["walletId"], body["expiresIn"], utcnow()
            )
        # The host and scheme the caller used (behind a trusted proxy, the public ones).
        url = url_for("console.open_link", token=link.token, _external=True)
        answer = {"url": url, "wallet_id": link.wallet_id, "expires_at": link.expires_at}
        return answer, {"Cache-Control": "no-store"}
