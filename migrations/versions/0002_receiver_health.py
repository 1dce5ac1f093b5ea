"""receiver health: a circuit per webhook, waiting deliveries, the global webhook's row

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GLOBAL_WEBHOOK_ID = "ffffffff-ffff-ffff-ffff-ffffffffffff"
OPERATIONS_WEBHOOK_ID = "ffffffff-ffff-ffff-ffff-fffffffffffe"


def upgrade() -> None:
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        # The global webhook has a row of its own (no wallet) so that it has a circuit too.
        batch_op.alter_column("wallet_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="active")
        )
        batch_op.add_column(sa.Column("status_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("next_probe_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("probe_interval", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("probe_delivery_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("hold_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("release_pace", sa.Integer(), nullable=False, server_default="0")
        )
    # Operational events (a webhook failing, recovered, disabled; a delivery failed) belong to
    # no wallet when they are about the global or the operations webhook.
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.alter_column("wallet_id", existing_type=sa.Uuid(), nullable=True)
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column("wallet_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.create_index(
            "ix_deliveries_webhook_id_status_created_at",
            ["webhook_id", "status", "created_at"],
            unique=False,
        )
    # Deliveries of the global webhook made before it had a row point at it now.
    webhooks = sa.table(
        "webhooks",
        sa.column("id", sa.Uuid()),
        sa.column("url", sa.Text()),
        sa.column("custom_headers", sa.JSON()),
        sa.column("secret", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    global_id = uuid.UUID(GLOBAL_WEBHOOK_ID)
    op.bulk_insert(
        webhooks,
        [
            {
                "id": uuid.UUID(row_id),
                "url": "",
                "custom_headers": {},
                "secret": "",
                "created_at": datetime.now(UTC),
            }
            for row_id in (GLOBAL_WEBHOOK_ID, OPERATIONS_WEBHOOK_ID)
        ],
    )
    deliveries = sa.table(
        "deliveries",
        sa.column("webhook_id", sa.Uuid()),
        sa.column("target", sa.String()),
    )
    op.execute(
        deliveries.update()
        .where(deliveries.c.target == "global", deliveries.c.webhook_id.is_(None))
        .values(webhook_id=global_id)
    )


def downgrade() -> None:
    op.execute(
        f"DELETE FROM webhooks WHERE id IN ('{GLOBAL_WEBHOOK_ID}', '{OPERATIONS_WEBHOOK_ID}')"
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_webhook_id_status_created_at")
        batch_op.alter_column("wallet_id", existing_type=sa.Uuid(), nullable=False)
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.alter_column("wallet_id", existing_type=sa.Uuid(), nullable=False)
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        for column in (
            "release_pace",
            "hold_until",
            "probe_delivery_id",
            "probe_interval",
            "next_probe_at",
            "last_failure_at",
            "last_success_at",
            "consecutive_failures",
            "status_since",
            "status",
        ):
            batch_op.drop_column(column)
        batch_op.alter_column("wallet_id", existing_type=sa.Uuid(), nullable=False)
