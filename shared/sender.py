"""All outbound HTTP: one connection pool per process, an explicit timeout, no redirects.

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

from shared import deadline
from shared.netguard import REFUSED, AddressPolicy, BlockedDestination, pool_classes
from shared.settings import Settings

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 4096  # receivers' answers are not needed; read a little, then hang up


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    error: str | None
    duration_ms: float
    retry_after: float | None = None  # seconds a 429 or 503 asked for, if it said

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

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
        started = time.perf_counter()
        if self.https_only and urlsplit(url).scheme != "https":
            return SendResult(None, "refused: plain http is not allowed (WEBHOOK_HTTPS_ONLY)", 0.0)
        limit = deadline.Deadline(self.timeout)
        deadline.set_current(limit)
        self.watchdog.watch(limit)
        try:
            response = self.pool.urlopen(
                "POST",
                url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(total=self.timeout),
                retries=False,
                redirect=False,
                preload_content=False,
                assert_same_host=False,
            )
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
            return SendResult(response.status, None, _elapsed_ms(started), _retry_after(response))
        except Exception as exc:  # every failure is a failed attempt, described without the URL
            if isinstance(exc, BlockedDestination):
                log.warning(
                    "network guard refused a delivery: %s resolves to %s",
                    exc.host,
                    ", ".join(exc.addresses),
                )
            if limit.expired or time.monotonic() >= limit.at:
                error = f"timeout: no complete response within {self.timeout:g}s"
            else:
                error = describe_error(exc, self.timeout)
            return SendResult(None, error, _elapsed_ms(started))
        finally:
            limit.finish()
            deadline.set_current(None)


def _retry_after(response) -> float | None:
    """Retry-After of a 429 or 503, in seconds from now (delay-seconds or an HTTP date)."""
    if response.status not in (429, 503):
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
        return "TLS error"
    if isinstance(exc, ProtocolError):
        return "connection closed or reset before a response"
    if isinstance(exc, HTTPError):
        return f"HTTP error: {type(exc).__name__}"
    return f"error: {type(exc).__name__}"
