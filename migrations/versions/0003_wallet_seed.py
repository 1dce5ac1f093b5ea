"""wallet seed digest: a wallet's seed is unique, as in the Identus agent

Revision ID: 0003_wallet_seed
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_wallet_seed"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("wallets") as batch:
        batch.add_column(sa.Column("seed_digest", sa.String(length=64), nullable=True))
    op.create_index("ix_wallets_seed_digest", "wallets", ["seed_digest"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_wallets_seed_digest", table_name="wallets")
    with op.batch_alter_table("wallets") as batch:
        batch.drop_column("seed_digest")
