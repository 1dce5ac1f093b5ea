"""The release step seals what older versions stored in clear, and re-seals everything with a
new first key (rotation), after which the old key can go; deliveries keep their headers."""

import uuid

from sqlalchemy import select, update

from shared.models import Webhook
from shared.secret_box import SecretBox, generate_key, key_id
from shared.settings import load_settings
from tests.helpers import TEST_ENCRYPTION_KEY
from tools.migrate import prepare_database


def test_clear_values_are_sealed_and_a_new_first_key_reseals_everything(
    client, tenant, database, base_env
):
    created = tenant.add_webhook(
        "http://localhost:9095", customHeaders={"X-Api-Key": "placeholder"}
    )
    webhook_id = uuid.UUID(created["id"])
    # As an older version left it: a custom header value and the signing secret in clear.
    with database.transaction() as session:
        session.execute(
            update(Webhook)
            .where(Webhook.id == webhook_id)
            .values(custom_headers={"X-Api-Key": "clear-value"}, secret=created["secret"])
        )
    prepare_database(load_settings(base_env))
    current = SecretBox((TEST_ENCRYPTION_KEY,))
    stored = _stored(database, webhook_id)
    assert current.is_current(stored.secret) and current.open(stored.secret) == created["secret"]
    assert current.open(stored.custom_headers["X-Api-Key"]) == "clear-value"

    new_key = generate_key()
    rotating = {**base_env, "SECRET_ENCRYPTION_KEY": f"{new_key},{TEST_ENCRYPTION_KEY}"}
    prepare_database(load_settings(rotating))
    rotated = _stored(database, webhook_id)
    assert rotated.secret.startswith(f"sealed:{key_id(new_key)}:")
    assert rotated.custom_headers["X-Api-Key"].startswith(f"sealed:{key_id(new_key)}:")
    # Once re-sealed, the new key alone opens everything.
    alone = SecretBox((new_key,))
    assert alone.open(rotated.secret) == created["secret"]
    assert alone.open(rotated.custom_headers["X-Api-Key"]) == "clear-value"


def test_a_start_without_the_key_that_sealed_the_secrets_stops_with_one_line(
    tenant, base_env, capsys
):
    tenant.add_webhook("http://localhost:9095", customHeaders={"X-Api-Key": "sealed-value"})
    try:
        prepare_database(load_settings({**base_env, "SECRET_ENCRYPTION_KEY": generate_key()}))
    except SystemExit as stopped:
        assert stopped.code == 2
    else:
        raise AssertionError("the start went on with a key that opens nothing")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert key_id(TEST_ENCRYPTION_KEY) in lines[0] and "SECRET_ENCRYPTION_KEY" in lines[0]


def _stored(database, webhook_id):
    with database.session() as session:
        return session.execute(
            select(Webhook.secret, Webhook.custom_headers).where(Webhook.id == webhook_id)
        ).one()
