"""fairness and recovery: a global-webhook row per wallet, rate limits, the order of a record's
deliveries from a database sequence, and which worker holds an attempt

Revision ID: 0005
Revises: 0004
"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

GLOBAL_WEBHOOK_ID = uuid.UUID("ffffffff-ffff-ffff-ffff-ffffffffffff")
OPERATIONS_WEBHOOK_ID = uuid.UUID("ffffffff-ffff-ffff-ffff-fffffffffffe")

webhooks = sa.table(
    "webhooks",
    sa.column("id", sa.Uuid()),
    sa.column("wallet_id", sa.Uuid()),
    sa.column("url", sa.Text()),
    sa.column("custom_headers", sa.JSON()),
    sa.column("secret", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("target", sa.String()),
)
wallets = sa.table("wallets", sa.column("id", sa.Uuid()))
deliveries = sa.table(
    "deliveries",
    sa.column("id", sa.Uuid()),
    sa.column("wallet_id", sa.Uuid()),
    sa.column("webhook_id", sa.Uuid()),
    sa.column("record_key", sa.Text()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("seq", sa.BigInteger()),
)


def global_row_id(wallet_id: uuid.UUID) -> uuid.UUID:
    """The id of a wallet's global-webhook row (as shared.models.global_webhook_id)."""
    return uuid.uuid5(GLOBAL_WEBHOOK_ID, str(wallet_id))


def upgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        batch.add_column(
            sa.Column("target", sa.String(length=16), nullable=False, server_default="wallet")
        )
        batch.add_column(sa.Column("rate_limit", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("status_reason", sa.Text(), nullable=True))
        # Waiting deliveries now go as slots free (coordination.slots), not at a paced count.
        batch.drop_column("release_pace")
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch.drop_index("ix_deliveries_webhook_id_record_key_created_at")
        batch.create_index(
            "ix_deliveries_webhook_id_record_key_seq", ["webhook_id", "record_key", "seq"]
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE IF NOT EXISTS delivery_seq")

    bind = op.get_bind()
    op.execute(
        webhooks.update().where(webhooks.c.id == GLOBAL_WEBHOOK_ID).values(target="global")
    )
    op.execute(
        webhooks.update().where(webhooks.c.id == OPERATIONS_WEBHOOK_ID).values(target="operations")
    )
    # Each wallet's global deliveries get a row of their own, so that one wallet's failures at
    # the global receiver hold that wallet's deliveries only.
    now = datetime.now(UTC)
    for (wallet_id,) in bind.execute(sa.select(wallets.c.id)).all():
        row_id = global_row_id(wallet_id)
        bind.execute(
            webhooks.insert().values(
                id=row_id,
                wallet_id=wallet_id,
                url="",
                custom_headers={},
                secret="",
                created_at=now,
                target="global",
            )
        )
        bind.execute(
            deliveries.update()
            .where(
                deliveries.c.webhook_id == GLOBAL_WEBHOOK_ID,
                deliveries.c.wallet_id == wallet_id,
            )
            .values(webhook_id=row_id)
        )
    # A record's deliveries so far keep their publish order.
    ordered = bind.execute(
        sa.select(deliveries.c.id)
        .where(deliveries.c.record_key.is_not(None))
        .order_by(deliveries.c.created_at, deliveries.c.id)
    ).all()
    for number, (delivery_id,) in enumerate(ordered, start=1):
        bind.execute(
            deliveries.update().where(deliveries.c.id == delivery_id).values(seq=number)
        )
    if bind.dialect.name == "postgresql" and ordered:
        op.execute(f"SELECT setval('delivery_seq', {len(ordered)})")


def downgrade() -> None:
    bind = op.get_bind()
    op.execute(
        deliveries.update()
        .where(
            deliveries.c.webhook_id.in_(
                sa.select(webhooks.c.id).where(
                    webhooks.c.target == "global", webhooks.c.wallet_id.is_not(None)
                )
            )
        )
        .values(webhook_id=GLOBAL_WEBHOOK_ID)
    )
    op.execute(
        webhooks.delete().where(webhooks.c.target == "global", webhooks.c.wallet_id.is_not(None))
    )
    if bind.dialect.name == "postgresql":
        op.execute("DROP SEQUENCE IF EXISTS delivery_seq")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_webhook_id_record_key_seq")
        batch.create_index(
            "ix_deliveries_webhook_id_record_key_created_at",
            ["webhook_id", "record_key", "created_at"],
        )
        batch.drop_column("claimed_by")
        batch.drop_column("seq")
    with op.batch_alter_table("webhooks") as batch:
        batch.add_column(
            sa.Column("release_pace", sa.Integer(), nullable=False, server_default="0")
        )
        batch.drop_column("status_reason")
        batch.drop_column("rate_limit")
        batch.drop_column("target")
