"""Who is calling: a tenant (the `apikey` header, mapped to its wallet) or the operator
(`x-admin-api-key` equal to ADMIN_TOKEN)."""

from __future__ import annotations

import functools
import hmac
import uuid

from flask import request

from app.base import Blueprint, ProblemSchema
from app.state import state
from shared.errors import Unauthorized
from shared.models import DEFAULT_WALLET_ID

ADMIN_HEADER = "x-admin-api-key"
TENANT_HEADER = "apikey"


SECURITY_SCHEMES = {
    "apiKeyAuth": {"type": "apiKey", "in": "header", "name": TENANT_HEADER},
    "adminApiKeyAuth": {"type": "apiKey", "in": "header", "name": ADMIN_HEADER},
}


def require_admin() -> None:
    token = state().settings.admin_token
    given = request.headers.get(ADMIN_HEADER)
    if not given:
        raise Unauthorized(f"Empty `{ADMIN_HEADER}` header provided")
    if token is None or not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized(f"Invalid Admin API key in header `{ADMIN_HEADER}`")


def tenant_wallet_id() -> uuid.UUID:
    app_state = state()
    if not app_state.settings.api_key_enabled:
        return DEFAULT_WALLET_ID
    api_key = request.headers.get(TENANT_HEADER)
    if api_key is None:
        raise Unauthorized("ApiKey key is not provided")
    if not api_key.strip():
        raise Unauthorized(f"Empty `{TENANT_HEADER}` header provided")
    wallet_id = app_state.wallet_for_api_key(api_key)
    if wallet_id is None:
        raise Unauthorized("Invalid API key")
    return wallet_id


def caller_wallet_id() -> uuid.UUID | None:
    """The tenant's wallet, or None for the operator (who sends the admin header)."""
    if ADMIN_HEADER in request.headers:
        require_admin()
        return None
    return tenant_wallet_id()


TENANT, ADMIN, TENANT_OR_ADMIN = "tenant", "admin", "tenant or admin"
_SECURITY = {
    TENANT: [{"apiKeyAuth": []}],
    ADMIN: [{"adminApiKeyAuth": []}],
    TENANT_OR_ADMIN: [{"apiKeyAuth": []}, {"adminApiKeyAuth": []}],
}


def _admin() -> dict:
    require_admin()
    return {}


_CHECKS = {
    TENANT: lambda: {"wallet_id": tenant_wallet_id()},
    ADMIN: _admin,
    TENANT_OR_ADMIN: lambda: {"wallet_id": caller_wallet_id()},
}


def caller(blp: Blueprint, who: str):
    """Say once who may call a view: documented (security and the 401) and checked first.

    Tenant views get `wallet_id`, the caller's wallet; for TENANT_OR_ADMIN it is None when the
    operator calls. Admin views get nothing more.
    """

    def decorate(view):
        @functools.wraps(view)
        def checked(*args, **kwargs):
            return view(*args, **kwargs, **_CHECKS[who]())

        checked = blp.alt_response(401, schema=ProblemSchema, description="Not authorized")(checked)
        return blp.doc(security=_SECURITY[who])(checked)

    return decorate
