"""Bring the database to the current schema and first-start state (the `release` step)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.db import Database
from shared.services.bootstrap import (
    api_key_salt,
    ensure_default_wallet,
    ensure_system_values,
    ensure_system_webhook_rows,
)
from shared.settings import Settings
from shared.store.dialect import migration_transaction

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def prepare_database(settings: Settings) -> None:
    """Run the migrations, then create the salt and the default wallet if they are missing.

    Idempotent and safe to run from several processes at once.
    """
    db = Database(settings.database_url, 1, 0, settings.database_prepared_statements)
    try:
        with db.engine.connect() as connection, migration_transaction(connection):
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        with db.transaction() as session:
            ensure_system_webhook_rows(session)
            ensure_system_values(session)
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
