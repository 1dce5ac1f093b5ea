"""receivers' security: authentication, mutual TLS, Ed25519 signatures, secrets sealed at rest

Revision ID: 0006
Revises: 0005

The secrets already stored in clear (custom header values, signing secrets) are sealed by the
release step right after the migrations (`shared.services.secrets_at_rest`), not here: that
step needs SECRET_ENCRYPTION_KEY, runs at every start, and also re-seals everything when a new
key is put first (key rotation).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        # Sealed values are longer than the 128 characters a whsec_ secret needed.
        batch.alter_column("secret", existing_type=sa.String(length=128), type_=sa.Text())
        batch.alter_column(
            "previous_secret",
            existing_type=sa.String(length=128),
            type_=sa.Text(),
            existing_nullable=True,
        )
        batch.add_column(sa.Column("public_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("auth", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("tls", sa.JSON(), nullable=True))


def downgrade() -> None:
    # The secret columns stay Text: sealed values do not fit 128 characters, and the older
    # version cannot open them anyway (downgrading past this needs the backup taken before).
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_column("tls")
        batch.drop_column("auth")
        batch.drop_column("public_key")
