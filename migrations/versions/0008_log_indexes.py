"""the failed deliveries' log, the attempts of the last hour and the first webhooks, read
from indexes

`status=failed` (about one delivery in a hundred) newest first reads a partial index of the
failed rows instead of walking the whole log by time; the console's last hour reads the
attempts' start times from a BRIN index: attempts are written in time order, so a few block
ranges hold the last hour, and keeping it up costs next to nothing per attempt. The operator's
console lists the oldest webhooks of all wallets without sorting every webhook.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FAILED = sa.text("status = 'failed'")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Built without blocking the publishes and attempts that go on meanwhile.
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_deliveries_failed_created_at",
                "deliveries",
                ["created_at"],
                postgresql_where=FAILED,
                postgresql_concurrently=True,
                if_not_exists=True,
            )
            op.create_index(
                "ix_deliveries_failed_wallet_id_created_at",
                "deliveries",
                ["wallet_id", "created_at"],
                postgresql_where=FAILED,
                postgresql_concurrently=True,
                if_not_exists=True,
            )
            op.create_index(
                "ix_webhooks_created_at_id",
                "webhooks",
                ["created_at", "id"],
                postgresql_concurrently=True,
                if_not_exists=True,
            )
            op.create_index(
                "ix_attempts_started_at",
                "attempts",
                ["started_at"],
                postgresql_using="brin",
                postgresql_concurrently=True,
                if_not_exists=True,
            )
    else:
        op.create_index(
            "ix_deliveries_failed_created_at", "deliveries", ["created_at"], sqlite_where=FAILED
        )
        op.create_index(
            "ix_deliveries_failed_wallet_id_created_at",
            "deliveries",
            ["wallet_id", "created_at"],
            sqlite_where=FAILED,
        )
        op.create_index("ix_webhooks_created_at_id", "webhooks", ["created_at", "id"])
        op.create_index("ix_attempts_started_at", "attempts", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_attempts_started_at", table_name="attempts")
    op.drop_index("ix_webhooks_created_at_id", table_name="webhooks")
    op.drop_index("ix_deliveries_failed_wallet_id_created_at", table_name="deliveries")
    op.drop_index("ix_deliveries_failed_created_at", table_name="deliveries")
