"""All outbound HTTP: one connection pool per process, an explicit timeout, no redirects; the
OAuth 2 tokens (`shared.oauth2`) and TLS contexts (`shared.client_tls`) receivers need.

urllib3 is used directly (it is what requests is built on): its pool manager is thread-safe, so
every worker thread shares warm connections, and its connection classes are where the network
guard checks the address actually connected to.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util import parse_url

from shared import deadline
from shared.attempt_rules import ClientTLS, Request, TokenGrant
from shared.client_tls import TLSContexts
from shared.netguard import REFUSED, AddressPolicy, BlockedDestination, pool_classes
from shared.oauth2 import TokenCache, TokenUnavailable, fetch_token
from shared.settings import Settings

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 4096  # receivers' answers are not needed; read a little, then hang up


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    error: str | None
    duration_ms: float
    retry_after: float | None = None  # seconds a failed answer's Retry-After asked for

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Sender:
    def __init__(self, settings: Settings, maxsize: int = 64):
        self.timeout = settings.webhook_timeout
        self.https_only = settings.webhook_https_only
        self.pool = urllib3.PoolManager(num_pools=256, maxsize=maxsize, block=False)
        policy = None
        if settings.webhook_block_private_networks:
            policy = AddressPolicy(settings.webhook_allowed_networks)
        self.pool.pool_classes_by_scheme = pool_classes(policy)
        self.watchdog = deadline.Watchdog()
        self.tokens = TokenCache()
        self.tls_contexts = TLSContexts()

    def send(self, request: Request) -> SendResult:
        """One attempt of what the attempt's rules built: an OAuth 2 token first when the
        webhook has a grant, the request with the webhook's TLS material when it has some."""
        return self.post(request.url, request.body, request.headers, request.grant, request.tls)

    def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        grant: TokenGrant | None = None,
        tls: ClientTLS | None = None,
    ) -> SendResult:
        started = time.perf_counter()
        if self.https_only and urlsplit(url).scheme != "https":
            return SendResult(None, "refused: plain http is not allowed (WEBHOOK_HTTPS_ONLY)", 0.0)
        if self.https_only and grant is not None and urlsplit(grant.token_url).scheme != "https":
            error = "refused: plain http is not allowed for the token endpoint (WEBHOOK_HTTPS_ONLY)"
            return SendResult(None, error, 0.0)
        limit = deadline.Deadline(self.timeout)
        deadline.set_current(limit)
        self.watchdog.watch(limit)
        token = None
        try:
            # The token, like everything else of the attempt, is had within its deadline.
            if grant is not None:
                token = self.tokens.token(grant, self._fetch_token, limit)
                headers = {**headers, "Authorization": f"Bearer {token}"}
            response = self._open(url, body, headers, tls)
            try:
                response.read(MAX_RESPONSE_BYTES)
                more = response.read(1)
            finally:
                # Done with the socket: from here the watchdog leaves it alone, before it goes
                # back to the pool for another attempt (or is closed).
                limit.finish()
            if more:
                response.close()  # an unread body would poison the pooled connection
            response.release_conn()
            if limit.expired:
                raise deadline.DeadlineExceeded("deadline passed")
            if response.status == 401 and token is not None:
                self.tokens.drop(grant, token)  # refused: the next attempt gets a new one
            return SendResult(response.status, None, _elapsed_ms(started), _retry_after(response))
        except Exception as exc:  # every failure is a failed attempt, described without the URL
            if isinstance(exc, BlockedDestination):
                log.warning(
                    "network guard refused a delivery: %s resolves to %s",
                    exc.host,
                    ", ".join(exc.addresses),
                )
            error = self._describe(exc, limit, waiting_for_token=grant is not None and not token)
            return SendResult(None, error, _elapsed_ms(started))
        finally:
            limit.finish()
            deadline.set_current(None)

    def _fetch_token(self, grant: TokenGrant) -> tuple[str, float]:
        return fetch_token(self.pool, grant, self.timeout)

    def _open(self, url: str, body: bytes, headers: dict[str, str], tls: ClientTLS | None):
        options = {
            "body": body,
            "headers": headers,
            "timeout": urllib3.Timeout(total=self.timeout),
            "retries": False,
            "redirect": False,
            "preload_content": False,
            "assert_same_host": False,
        }
        if tls is None:
            return self.pool.urlopen("POST", url, **options)
        # A pool of its own per TLS context (the pool manager keys pools by it).
        context = self.tls_contexts.context_for(tls)
        pool = self.pool.connection_from_url(url, pool_kwargs={"ssl_context": context})
        return pool.urlopen("POST", parse_url(url).request_uri, **options)

    def _describe(self, exc: Exception, limit: deadline.Deadline, waiting_for_token: bool) -> str:
        timed_out = limit.expired or time.monotonic() >= limit.at
        if waiting_for_token:
            if timed_out:
                return f"timeout: no token from the token endpoint within {self.timeout:g}s"
            if isinstance(exc, TokenUnavailable):
                return str(exc)
            return f"oauth2: token endpoint: {describe_error(exc, self.timeout)}"
        if timed_out:
            return f"timeout: no complete response within {self.timeout:g}s"
        return describe_error(exc, self.timeout)


def _retry_after(response) -> float | None:
    """Retry-After of a failed answer, in seconds from now (delay-seconds or an HTTP date);
    the attempt's rules decide which answers it holds a webhook for."""
    if 200 <= response.status < 300:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def describe_error(exc: Exception, timeout: float) -> str:
    if isinstance(exc, BlockedDestination):
        return REFUSED
    # urllib3 derives NameResolutionError from NewConnectionError, and that from
    # ConnectTimeoutError: test the narrowest first.
    if isinstance(exc, NameResolutionError):
        return "DNS lookup failed"
    if isinstance(exc, NewConnectionError):
        reason = str(exc).rsplit("] ", 1)[-1] if "] " in str(exc) else "connection failed"
        return f"connection failed: {reason}"
    if isinstance(exc, ConnectTimeoutError):
        return f"timeout: could not connect within {timeout:g}s"
    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return f"timeout: no response within {timeout:g}s"
    if isinstance(exc, SSLError):
        # The TLS stack's reason (e.g. CERTIFICATE_VERIFY_FAILED) is what a person needs.
        reason = getattr(exc.__context__, "reason", None) or getattr(exc, "reason", None)
        return f"TLS error: {reason}" if isinstance(reason, str) else "TLS error"
    if isinstance(exc, ProtocolError):
        return "connection closed or reset before a response"
    if isinstance(exc, HTTPError):
        return f"HTTP error: {type(exc).__name__}"
    return f"error: {type(exc).__name__}"
