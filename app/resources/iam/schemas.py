import marshmallow as ma

from app.base import Schema, Timestamp, page_schema


class EntityCreateSchema(Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=128))
    walletId = ma.fields.UUID(
        allow_none=True,
        metadata={"description": "The wallet of the entity; the default wallet when absent."},
    )
    id = ma.fields.UUID()


class EntityNameSchema(Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=128))


class EntityWalletSchema(Schema):
    walletId = ma.fields.UUID(required=True)


class EntitySchema(Schema):
    kind = ma.fields.Constant("Entity", required=True)
    self = ma.fields.Method("_self", required=True, data_key="self")
    id = ma.fields.UUID(required=True)
    name = ma.fields.String(required=True)
    walletId = ma.fields.UUID(attribute="wallet_id", required=True)
    createdAt = Timestamp(attribute="created_at", required=True)
    updatedAt = Timestamp(attribute="updated_at", required=True)

    def _self(self, entity) -> str:
        return f"/iam/entities/{entity.id}"


EntityPageSchema = page_schema("EntityPageSchema", EntitySchema)


class ApiKeySchema(Schema):
    entityId = ma.fields.UUID(required=True)
    apiKey = ma.fields.String(required=True, validate=ma.validate.Length(min=16, max=128))
