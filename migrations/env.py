"""Alembic environment: the URL comes from DATABASE_URL (shared.settings), or from the
connection that `tools.migrate` hands over."""

from alembic import context

from shared.db import make_engine
from shared.models import Base
from shared.settings import settings_or_exit

config = context.config
target_metadata = Base.metadata


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = make_engine(settings_or_exit().database_url)
    with engine.connect() as conn:
        run(conn)
    engine.dispose()
