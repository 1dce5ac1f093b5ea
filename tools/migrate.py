"""Bring the database to the current schema and first-start state (the `release` step)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from shared.db import Database
from shared.services.bootstrap import (
    api_key_salt,
    ensure_default_wallet,
    ensure_system_webhook_rows,
)
from shared.settings import Settings

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# Any constant: it serialises concurrent releases and web starts on PostgreSQL.
MIGRATION_LOCK_ID = 7_240_113


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def prepare_database(settings: Settings) -> None:
    """Run the migrations, then create the salt and the default wallet if they are missing.

    Idempotent and safe to run from several processes at once.
    """
    db = Database(
        settings.database_url,
        pool_size=1,
        prepared_statements=settings.database_prepared_statements,
    )
    try:
        with db.engine.connect() as connection:
            if not db.is_sqlite:
                connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
                connection.commit()
            try:
                config = alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            finally:
                if not db.is_sqlite:
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID}
                    )
                    connection.commit()
        with db.transaction() as session:
            ensure_system_webhook_rows(session)
            salt = api_key_salt(session, settings)
            generated_key = ensure_default_wallet(session, settings, salt)
    finally:
        db.dispose()
    if generated_key:
        # The one place a key is shown: the operator needs it once, and it is never logged again.
        print(
            "Default wallet created. Its API key (shown once, keep it): " + generated_key,
            flush=True,
        )
