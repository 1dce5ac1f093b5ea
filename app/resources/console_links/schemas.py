import marshmallow as ma

from app.base import Schema, Timestamp
from shared.services.console_access import LINK_SECONDS, LINK_SESSION_SECONDS, MAX_LINK_SECONDS


class ConsoleLinkCreateSchema(Schema):
    walletId = ma.fields.UUID(required=True, metadata={"description": "The wallet it opens."})
    expiresIn = ma.fields.Integer(
        load_default=LINK_SECONDS,
        validate=ma.validate.Range(min=1, max=MAX_LINK_SECONDS),
        metadata={"description": "Seconds the link may wait to be opened (10 minutes by default)."},
    )


class ConsoleLinkSchema(Schema):
    url = ma.fields.String(
        required=True,
        metadata={
            "description": "Opens the wallet's console once, signed in for at most "
            f"{LINK_SESSION_SECONDS // 60} minutes. Shown only in this answer."
        },
    )
    walletId = ma.fields.UUID(required=True, attribute="wallet_id")
    expiresAt = Timestamp(required=True, attribute="expires_at")
