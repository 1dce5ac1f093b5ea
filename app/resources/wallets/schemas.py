import marshmallow as ma

from app.base import Schema, Timestamp, page_schema


class WalletCreateSchema(Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=128))
    id = ma.fields.UUID()
    seed = ma.fields.String(
        load_only=True,
        allow_none=True,
        metadata={
            "description": "A BIP32 seed encoded in hexadecimal string (64 bytes, 128 hex "
            "characters). Only its digest is kept, so that no two wallets share a seed.",
            "pattern": "^[0-9a-fA-F]{128}$",
        },
    )


class WalletSchema(Schema):
    id = ma.fields.UUID(required=True)
    name = ma.fields.String(required=True)
    createdAt = Timestamp(attribute="created_at", required=True)
    updatedAt = Timestamp(attribute="updated_at", required=True)


WalletPageSchema = page_schema("WalletPageSchema", WalletSchema)
