"""Who may see the console: single-use links the operator makes for one wallet, and the
sessions a console cookie points to.

Tokens are random and reach only the browser (a link's, once, through the operator); the
database keeps their SHA-256, so neither a dump nor a copy of it opens a console.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.orm import Session

from shared.errors import ServiceError
from shared.models import ApiKey, ConsoleAccess, ConsoleLink, ConsoleSession, Entity
from shared.services.tenancy import get_wallet

LINK_SECONDS = 600  # a link not opened within 10 minutes is refused
MAX_LINK_SECONDS = 3600
LINK_SESSION_SECONDS = 3600  # what a link opens lasts an hour at most
SIGNED_IN_SECONDS = 12 * 3600  # a sign-in with a key or the admin token: a working day
# Used and expired links stay this long, so that opening one says why it is refused.
KEEP_SPENT_LINKS = timedelta(days=1)


class LinkRefused(ServiceError):
    status = 410
    type = "Gone"
    title = "Gone"


@dataclass(frozen=True)
class NewLink:
    token: str  # goes into the link, shown once
    wallet_id: uuid.UUID
    expires_at: datetime


@dataclass(frozen=True)
class FoundSession:
    access: ConsoleAccess
    wallet_id: uuid.UUID | None  # LINK: its wallet; TENANT: its key's wallet now (None: removed)
    credential: str | None
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_link(session: Session, wallet_id: uuid.UUID, seconds: int, now: datetime) -> NewLink:
    """A single-use link to this wallet's console, valid for `seconds`."""
    get_wallet(session, wallet_id)  # NotFound when there is no such wallet
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=seconds)
    session.add(
        ConsoleLink(
            token_hash=token_hash(token), wallet_id=wallet_id, created_at=now, expires_at=expires_at
        )
    )
    return NewLink(token, wallet_id, expires_at)


def open_link(session: Session, token: str, now: datetime) -> str:
    """Use the link up and start its session; the session's token.

    The link is taken by one UPDATE that only an unused, unexpired link matches: of two opens
    at once, the second waits for the first's commit and then matches nothing.
    """
    hashed = token_hash(token)
    wallet_id = session.scalar(
        update(ConsoleLink)
        .where(
            ConsoleLink.token_hash == hashed,
            ConsoleLink.used_at.is_(None),
            ConsoleLink.expires_at > now,
        )
        .values(used_at=now)
        .returning(ConsoleLink.wallet_id)
    )
    if wallet_id is None:
        raise LinkRefused(_why_refused(session.get(ConsoleLink, hashed)))
    seconds = LINK_SESSION_SECONDS
    return start_session(session, ConsoleAccess.LINK, now, seconds, wallet_id=wallet_id)


def _why_refused(link: ConsoleLink | None) -> str:
    if link is None:
        return "This link is not valid. Ask for a new one."
    if link.used_at is not None:
        return "This link has already been used: each link opens the console once."
    return "This link has expired. Ask for a new one."


def start_session(
    session: Session,
    access: ConsoleAccess,
    now: datetime,
    seconds: int,
    wallet_id: uuid.UUID | None = None,
    credential: str | None = None,
) -> str:
    """A new session ending `seconds` from now, whatever happens meanwhile; its token."""
    token = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            token_hash=token_hash(token),
            access=access,
            wallet_id=wallet_id,
            credential=credential,
            created_at=now,
            expires_at=now + timedelta(seconds=seconds),
        )
    )
    return token


# A tenant's session finds its wallet again through its key on every request: a removed key
# (or entity) ends it at once. One statement with the session row.
_FIND = (
    select(
        ConsoleSession.access,
        func.coalesce(ConsoleSession.wallet_id, Entity.wallet_id).label("wallet_id"),
        ConsoleSession.credential,
        ConsoleSession.expires_at,
    )
    .outerjoin(
        ApiKey,
        and_(
            ConsoleSession.access == ConsoleAccess.TENANT,
            ApiKey.key_hash == ConsoleSession.credential,
        ),
    )
    .outerjoin(Entity, Entity.id == ApiKey.entity_id)
)


def find_session(session: Session, token: str) -> FoundSession | None:
    """The session of this token, expired or not; None when there is none (never was, signed
    out, or purged)."""
    row = session.execute(_FIND.where(ConsoleSession.token_hash == token_hash(token))).first()
    if row is None:
        return None
    return FoundSession(ConsoleAccess(row.access), row.wallet_id, row.credential, row.expires_at)


def end_session(session: Session, token: str) -> None:
    """Sign out: every copy of the cookie stops working."""
    session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_hash(token)))


def purge_expired(session: Session, now: datetime) -> int:
    """Sessions past their end, and links spent or expired a while ago."""
    ended = session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
    spent = session.execute(
        delete(ConsoleLink).where(ConsoleLink.expires_at <= now - KEEP_SPENT_LINKS)
    )
    return ended.rowcount + spent.rowcount
