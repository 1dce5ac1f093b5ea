"""The event catalogue: every type a receiver may get, with the JSON Schema of its `data`."""

from flask.views import MethodView

from app.auth import TENANT_OR_ADMIN, caller
from app.base import Blueprint, page
from app.resources.event_types.catalogue import catalogue
from app.resources.event_types.schemas import EventTypePageSchema

blp = Blueprint(
    "event_types", __name__, url_prefix="/events/types", description="The event catalogue"
)


@blp.route("")
class EventTypes(MethodView):
    @caller(blp, TENANT_OR_ADMIN)
    @blp.response(200, EventTypePageSchema)
    def get(self, wallet_id):
        """List the event types, each with its data's JSON Schema, version and an example"""
        return page("EventTypePage", catalogue())
