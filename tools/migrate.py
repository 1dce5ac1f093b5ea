"""Bring the database to the current schema and first-start state (the `release` step)."""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.db import Database
from shared.secret_box import SecretBoxError, box_for
from shared.services.bootstrap import (
    api_key_salt,
    ensure_default_wallet,
    ensure_system_values,
    ensure_system_webhook_rows,
)
from shared.services.secrets_at_rest import seal_stored_secrets
from shared.settings import Settings
from shared.store.dialect import migration_lock

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _seal_secrets(db: Database, settings: Settings) -> None:
    """Every stored secret sealed with the first SECRET_ENCRYPTION_KEY; a key that cannot
    open them stops the start with one line."""
    try:
        with db.transaction() as session:
            seal_stored_secrets(session, box_for(settings))
    except SecretBoxError as exc:
        print(f"cloud-agent-webhooks: configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def prepare_database(settings: Settings) -> None:
    """Run the migrations and seal what is stored in clear (or under an older key), one
    process at a time; then create the salt and the default wallet if they are missing.

    Idempotent and safe to run from several processes at once.
    """
    db = Database(settings.database_url, 2, 1, settings.database_prepared_statements)
    try:
        with db.engine.connect() as lock, migration_lock(lock):
            with db.engine.connect() as connection:
                config = alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            _seal_secrets(db, settings)
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
