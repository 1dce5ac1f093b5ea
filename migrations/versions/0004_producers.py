"""producers: idempotency keys, per-record ordering of a webhook's deliveries

Revision ID: 0004
Revises: 0003_wallet_seed
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003_wallet_seed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_idempotency_keys"),
    )
    op.create_index(
        "ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"], unique=False
    )
    with op.batch_alter_table("webhooks") as batch:
        batch.add_column(
            sa.Column("ordering", sa.String(length=16), nullable=False, server_default="none")
        )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("record_key", sa.Text(), nullable=True))
        batch.create_index(
            "ix_deliveries_webhook_id_record_key_created_at",
            ["webhook_id", "record_key", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_webhook_id_record_key_created_at")
        batch.drop_column("record_key")
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_column("ordering")
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
