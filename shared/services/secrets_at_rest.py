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
    """Whether anything of the webhook needed sealing with the first key (and now is)."""
    changed = False
    for column in ("secret", "previous_secret"):
        value = getattr(webhook, column)
        if value and not box.is_current(value):  # the global and operations rows have none
            setattr(webhook, column, box.reseal(value))
            changed = True
    headers = webhook.custom_headers or {}
    if not all(map(box.is_current, headers.values())):
        webhook.custom_headers = {name: box.reseal(value) for name, value in headers.items()}
        changed = True
    for column, names in _SEALED_FIELDS.items():
        stored = getattr(webhook, column) or {}
        sealed = {name: stored[name] for name in names if name in stored}
        if not all(map(box.is_current, sealed.values())):
            resealed = {name: box.reseal(value) for name, value in sealed.items()}
            setattr(webhook, column, {**stored, **resealed})  # a new dict: JSON is not tracked
            changed = True
    return changed
