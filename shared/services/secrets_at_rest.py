"""Keeping every stored secret sealed with the first SECRET_ENCRYPTION_KEY: run by the release
step after the migrations, and at every start of `web` (it does nothing when nothing needs it).

It seals the values stored in clear before sealing existed (custom header values and signing
secrets of older versions, or written by an older process during a rolling deploy), and
re-seals with the first key what an older key sealed: putting a new key first and restarting
is a key rotation; once this has run, the old key can be removed.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.models import Webhook
from shared.secret_box import SecretBox

BATCH = 500
# Where each webhook column keeps sealed values: the column itself, each value of a mapping,
# or one field of a mapping.
_SEALED_FIELDS = {"auth": ("password", "clientSecret"), "tls": ("clientKey",)}


def seal_stored_secrets(session: Session, box: SecretBox) -> int:
    """Seal with the first key what is not; the number of webhooks changed. The caller
    commits. Raises SecretBoxError when a value was sealed with a key no longer given."""
    changed = 0
    query = select(Webhook).order_by(Webhook.id).execution_options(yield_per=BATCH)
    for webhook in session.scalars(query):
        if _reseal(webhook, box):
            changed += 1
    session.flush()
    return changed


def _reseal(webhook: Webhook, box: SecretBox) -> bool:
    before = (webhook.secret, webhook.previous_secret, webhook.custom_headers)
    before += (webhook.auth, webhook.tls)
    if webhook.secret:  # the global and operations rows have none
        webhook.secret = box.reseal(webhook.secret)
    if webhook.previous_secret:
        webhook.previous_secret = box.reseal(webhook.previous_secret)
    if webhook.custom_headers and not all(map(box.is_current, webhook.custom_headers.values())):
        webhook.custom_headers = {
            name: box.reseal(value) for name, value in webhook.custom_headers.items()
        }
    for column, names in _SEALED_FIELDS.items():
        stored = getattr(webhook, column)
        if stored and not all(box.is_current(stored[name]) for name in names if name in stored):
            resealed = {name: box.reseal(stored[name]) for name in names if name in stored}
            setattr(webhook, column, {**stored, **resealed})  # a new dict: JSON is not tracked
    after = (webhook.secret, webhook.previous_secret, webhook.custom_headers)
    return before != after + (webhook.auth, webhook.tls)
