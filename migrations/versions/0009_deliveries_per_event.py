"""the planner counts deliveries per event as the service makes them

PostgreSQL estimates how many deliveries one event has from a sample of the table's blocks.
An event's deliveries are written together, so they share blocks, the sample sees the same
events again and again, and the estimate of distinct events falls far below the truth as the
table grows: on 10 million deliveries of 1 million events it counted 145,690 events, about 69
deliveries each. The purge then expected 138,000 deliveries behind a batch of 2,000 old events
(there were 20,000) and read the whole attempts table by hash join, 2.7 s a batch, instead of
looking up each delivery's attempts (0.2 s). An event goes to its wallet's webhooks and the
operator's global one: stating about 2 deliveries per event keeps the estimate near the truth
whatever the table's size, and makes it too high, never too low, where events fan out wider.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # n_distinct below zero is a share of the rows: distinct events = half the deliveries.
        op.execute("ALTER TABLE deliveries ALTER COLUMN event_id SET (n_distinct = -0.5)")
        # The statistics take it on their next ANALYZE: this one samples a bounded number of
        # rows, whatever the table's size.
        op.execute("ANALYZE deliveries (event_id)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries ALTER COLUMN event_id RESET (n_distinct)")
