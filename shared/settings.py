"""Every setting of the service, read from the environment once, in this module.

A bad value raises `SettingsError` naming the variable; entry points turn it into one line on
stderr and a non-zero exit (`settings_or_exit`).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import NoReturn
from urllib.parse import urlsplit

from shared.secret_box import check_key

EMBEDDED_DATABASE_URL = "sqlite:///var/webhooks.db"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# A header value every HTTP stack sends unchanged: visible ASCII with inner spaces only.
HEADER_VALUE = re.compile(r"^(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?$")
MIN_SECRET_BYTES = 24
MIN_SECRET_KEY_LENGTH = 32
# An origin a browser puts in frame-ancestors: scheme, host (a leading *. allowed), port.
ORIGIN = re.compile(r"^https?://(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


class SettingsError(ValueError):
    """A variable has a value the service cannot run with."""


@dataclass(frozen=True)
class Settings:
    port: int = 8080
    api_prefix: str = "/cloud-agent"
    database_url: str = EMBEDDED_DATABASE_URL
    # PostgreSQL plans a statement once per connection and reuses the plan; off for a
    # transaction-pooling PgBouncer older than 1.21, which cannot keep them.
    database_prepared_statements: bool = True
    redis_url: str = DEFAULT_REDIS_URL
    admin_token: str | None = None
    api_key_enabled: bool = True
    api_key_salt: str | None = None
    default_wallet_enabled: bool = True
    default_wallet_auth_api_key: str | None = None
    default_wallet_webhook_url: str | None = None
    default_wallet_webhook_api_key: str | None = None
    global_webhook_url: str | None = None
    global_webhook_api_key: str | None = None
    global_webhook_secret: str | None = None
    operations_webhook_url: str | None = None
    operations_webhook_secret: str | None = None
    global_webhook_ordering: str = "none"
    webhook_retry_countdown: float = 5.0
    webhook_max_retries: int = 2
    webhook_timeout: float = 5.0
    max_webhooks_per_wallet: int = 10
    max_in_flight_per_webhook: int = 4  # slow or unproven, across every worker
    max_in_flight_fast: int = 32  # answering quickly, across every worker
    max_in_flight_per_host: int = 64  # per worker process
    max_in_flight_slow: int = 32  # per worker process, all slow webhooks together
    wallet_queue_share: int = 100
    publish_concurrency_per_tenant: int = 2  # per web process; 0: no limit
    database_pool_size: int = 4
    database_max_overflow: int = 2
    circuit_failures: int = 5
    probe_interval: float = 5.0
    probe_max_interval: float = 60.0
    retry_after_max: float = 300.0
    disable_after: float = 5 * 24 * 3600.0
    webhook_block_private_networks: bool = False
    webhook_allowed_networks: tuple = ()
    webhook_https_only: bool = False
    secret_rotation_grace: float = 24 * 3600.0
    sweep_interval: float = 5.0
    delivery_stuck_after: float = 15.0
    message_lost_after: float = 5.0
    retention_days: int = 30
    idempotency_ttl: float = 24 * 3600.0
    log_level: str = "INFO"
    # Fernet keys sealing webhook secrets at rest: the first seals, every one opens (rotation).
    secret_encryption_keys: tuple[str, ...] = ()
    # The console and tracing.
    secret_key: str | None = None  # signs console sessions; never stored in the database
    console_frame_ancestors: tuple = ()  # origins that may frame a linked console
    # The networks of the proxies whose X-Forwarded-Proto web trusts; None: any ("*").
    forwarded_allow_ips: tuple | None = (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )
    web_concurrency: int = 2  # web processes
    web_threads: int = 8  # threads running the app in each web process
    otel_exporter_otlp_endpoint: str | None = None  # spans are exported only when set
    otel_service_name: str = "cloud-agent-webhooks"

    @property
    def max_attempts(self) -> int:
        return self.webhook_max_retries + 1

    @property
    def lease_seconds(self) -> float:
        """How long an attempt may stay in flight before the sweep calls it lost."""
        return self.webhook_timeout + 30.0


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = _text(env, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}: expected true or false, got {value!r}")


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices`; the first when unset."""
    value = _text(env, name)
    if value is None:
        return choices[0]
    if value.lower() not in choices:
        raise SettingsError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value.lower()


def _number(env, name, default, kind=float, minimum=0.0, maximum=None):
    value = _text(env, name)
    if value is None:
        return default
    try:
        number = kind(value)
    except ValueError:
        raise SettingsError(f"{name}: expected a number, got {value!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        bounds = f"from {minimum}" + (f" to {maximum}" if maximum is not None else "")
        raise SettingsError(f"{name}: must be {bounds}, got {value!r}")
    return number


def _http_url(env: Mapping[str, str], name: str) -> str | None:
    value = _text(env, name)
    if value is not None and not is_http_url(value):
        raise SettingsError(f"{name}: must be an absolute http(s) URL, got {value!r}")
    return value


def _header_value(env: Mapping[str, str], name: str) -> str | None:
    value = _text(env, name)
    if value is not None and not HEADER_VALUE.match(value):
        # The value is a secret: the message describes it without showing it.
        raise SettingsError(f"{name}: must be visible ASCII without line breaks")
    return value


def _signing_secret(env: Mapping[str, str], name: str) -> str | None:
    """A Standard Webhooks secret: whsec_ and base64 of at least MIN_SECRET_BYTES bytes."""
    value = _text(env, name)
    if value is None:
        return None
    if not value.startswith("whsec_"):
        raise SettingsError(f"{name}: expected a whsec_… secret")
    try:
        key = base64.b64decode(value[len("whsec_") :], validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(f"{name}: the part after whsec_ is not base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise SettingsError(
            f"{name}: the key decodes to {len(key)} bytes, at least {MIN_SECRET_BYTES} needed"
        )
    return value


def is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _database_url(env: Mapping[str, str]) -> str:
    value = _text(env, "DATABASE_URL") or EMBEDDED_DATABASE_URL
    # PaaS add-ons hand out postgres:// URLs; SQLAlchemy wants an explicit driver, and the
    # service installs psycopg 3 (a URL naming psycopg2 gets it too).
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value[len(prefix) :]
    if not (value.startswith("postgresql+") or value.startswith("sqlite")):
        raise SettingsError(f"DATABASE_URL: expected postgresql://… or sqlite:///…, got {value!r}")
    return value


def _redis_url(env: Mapping[str, str]) -> str:
    value = _text(env, "REDIS_URL") or DEFAULT_REDIS_URL
    if not value.startswith(("redis://", "rediss://", "redis+socket://", "unix://")):
        raise SettingsError(f"REDIS_URL: expected redis://host:port/db, got {value!r}")
    return value


def _networks(env: Mapping[str, str], name: str) -> tuple:
    value = _text(env, name)
    if value is None:
        return ()
    try:
        return tuple(
            ipaddress.ip_network(part.strip()) for part in value.split(",") if part.strip()
        )
    except ValueError as exc:
        raise SettingsError(f"{name}: expected comma-separated CIDRs ({exc})") from None


def _encryption_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    value = _text(env, "SECRET_ENCRYPTION_KEY")
    if value is None:
        return ()
    keys = tuple(part.strip() for part in value.split(",") if part.strip())
    for key in keys:
        try:
            check_key(key)
        except ValueError as exc:
            # The value is a secret: the message describes it without showing it.
            raise SettingsError(
                f"SECRET_ENCRYPTION_KEY: expected comma-separated Fernet keys ({exc}); "
                "make one with `cloud-agent-webhooks generate-key`"
            ) from None
    return keys


def _secret_key(env: Mapping[str, str]) -> str | None:
    value = _text(env, "SECRET_KEY")
    if value is not None and len(value) < MIN_SECRET_KEY_LENGTH:
        # A secret: its length is said, never its value.
        raise SettingsError(
            f"SECRET_KEY: at least {MIN_SECRET_KEY_LENGTH} characters, got {len(value)}"
        )
    return value


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    value = _text(env, name)
    if value is None:
        return ()
    origins = tuple(part for part in re.split(r"[\s,]+", value) if part)
    for origin in origins:
        if not ORIGIN.match(origin):
            raise SettingsError(
                f"{name}: expected origins like https://app.example.com, got {origin!r}"
            )
    return origins


def _forwarded_allow_ips(env: Mapping[str, str]) -> tuple | None:
    """FORWARDED_ALLOW_IPS: addresses or CIDRs (the networks), or * for any (None)."""
    value = _text(env, "FORWARDED_ALLOW_IPS") or "127.0.0.1,::1"
    if value == "*":
        return None
    return _networks({"FORWARDED_ALLOW_IPS": value}, "FORWARDED_ALLOW_IPS")


def _prefix(env: Mapping[str, str]) -> str:
    value = env.get("API_PREFIX", "/cloud-agent").strip()
    if value in ("", "/"):
        return ""
    if not value.startswith("/") or value.endswith("/") or " " in value:
        raise SettingsError(f"API_PREFIX: expected a path like /cloud-agent, got {value!r}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from `env` (the process environment by default)."""
    env = os.environ if env is None else env
    # Checked here whichever field holds it, so a short key never reaches a signature.
    _signing_secret(env, "OPERATIONS_WEBHOOK_SECRET")
    return Settings(
        port=_number(env, "PORT", 8080, int, 1, 65535),
        api_prefix=_prefix(env),
        database_url=_database_url(env),
        database_prepared_statements=_bool(env, "DATABASE_PREPARED_STATEMENTS", True),
        redis_url=_redis_url(env),
        admin_token=_text(env, "ADMIN_TOKEN"),
        api_key_enabled=_bool(env, "API_KEY_ENABLED", True),
        api_key_salt=_text(env, "API_KEY_SALT"),
        default_wallet_enabled=_bool(env, "DEFAULT_WALLET_ENABLED", True),
        default_wallet_auth_api_key=_text(env, "DEFAULT_WALLET_AUTH_API_KEY"),
        default_wallet_webhook_url=_http_url(env, "DEFAULT_WALLET_WEBHOOK_URL"),
        default_wallet_webhook_api_key=_header_value(env, "DEFAULT_WALLET_WEBHOOK_API_KEY"),
        global_webhook_url=_http_url(env, "GLOBAL_WEBHOOK_URL"),
        global_webhook_api_key=_header_value(env, "GLOBAL_WEBHOOK_API_KEY"),
        global_webhook_secret=_signing_secret(env, "GLOBAL_WEBHOOK_SECRET"),
        operations_webhook_url=_http_url(env, "OPERATIONS_WEBHOOK_URL"),
        operations_webhook_secret=_signing_secret(env, "OPERATIONS_WEBHOOK_SECRET"),
        global_webhook_ordering=_choice(env, "GLOBAL_WEBHOOK_ORDERING", ("none", "record")),
        webhook_retry_countdown=_number(env, "WEBHOOK_RETRY_COUNTDOWN", 5.0, float, 0.0, 3600),
        webhook_max_retries=_number(env, "WEBHOOK_MAX_RETRIES", 2, int, 0, 100),
        webhook_timeout=_number(env, "WEBHOOK_TIMEOUT", 5.0, float, 0.1, 300),
        max_webhooks_per_wallet=_number(env, "MAX_WEBHOOKS_PER_WALLET", 10, int, 1, 10_000),
        max_in_flight_per_webhook=_number(env, "WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK", 4, int, 1),
        max_in_flight_fast=_number(env, "WEBHOOK_MAX_IN_FLIGHT_FAST", 32, int, 1),
        wallet_queue_share=_number(env, "WALLET_QUEUE_SHARE", 100, int, 1),
        publish_concurrency_per_tenant=_number(env, "PUBLISH_CONCURRENCY_PER_TENANT", 2, int, 0),
        web_concurrency=_number(env, "WEB_CONCURRENCY", 2, int, 1, 1000),
        web_threads=_number(env, "WEB_THREADS", 8, int, 1, 1000),
        database_pool_size=_number(env, "DATABASE_POOL_SIZE", 4, int, 1, 1000),
        database_max_overflow=_number(env, "DATABASE_MAX_OVERFLOW", 2, int, 0, 1000),
        max_in_flight_per_host=_number(env, "WEBHOOK_MAX_IN_FLIGHT_PER_HOST", 64, int, 1),
        max_in_flight_slow=_number(env, "WEBHOOK_MAX_IN_FLIGHT_SLOW", 32, int, 1),
        circuit_failures=_number(env, "WEBHOOK_CIRCUIT_FAILURES", 5, int, 1, 1000),
        probe_interval=_number(env, "WEBHOOK_PROBE_INTERVAL", 5.0, float, 0.1, 3600),
        probe_max_interval=_number(env, "WEBHOOK_PROBE_MAX_INTERVAL", 60.0, float, 0.1, 86400),
        retry_after_max=_number(env, "WEBHOOK_RETRY_AFTER_MAX", 300.0, float, 0, 86400),
        disable_after=_number(env, "WEBHOOK_DISABLE_AFTER", 432000.0, float, 1),
        webhook_block_private_networks=_bool(env, "WEBHOOK_BLOCK_PRIVATE_NETWORKS", False),
        webhook_allowed_networks=_networks(env, "WEBHOOK_ALLOWED_NETWORKS"),
        webhook_https_only=_bool(env, "WEBHOOK_HTTPS_ONLY", False),
        secret_rotation_grace=_number(env, "WEBHOOK_SECRET_ROTATION_GRACE", 86400.0, float, 0),
        sweep_interval=_number(env, "SWEEP_INTERVAL", 5.0, float, 0.1, 3600),
        delivery_stuck_after=_number(env, "DELIVERY_STUCK_AFTER", 15.0, float, 1.0),
        message_lost_after=_number(env, "MESSAGE_LOST_AFTER", 5.0, float, 0.5, 3600),
        retention_days=_number(env, "RETENTION_DAYS", 30, int, 0),
        idempotency_ttl=_number(env, "IDEMPOTENCY_TTL", 86400.0, float, 1, 30 * 86400),
        log_level=(_text(env, "LOG_LEVEL") or "INFO").upper(),
        secret_encryption_keys=_encryption_keys(env),
        secret_key=_secret_key(env),
        console_frame_ancestors=_origins(env, "CONSOLE_FRAME_ANCESTORS"),
        forwarded_allow_ips=_forwarded_allow_ips(env),
        otel_exporter_otlp_endpoint=_http_url(env, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        otel_service_name=_text(env, "OTEL_SERVICE_NAME") or "cloud-agent-webhooks",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return load_settings()


def require_running_settings(settings: Settings) -> Settings:
    """What a process of the service needs beyond valid values: the key that seals secrets."""
    if not settings.secret_encryption_keys:
        raise SettingsError(
            "SECRET_ENCRYPTION_KEY: required (it seals webhook secrets in the database); make "
            "one with `cloud-agent-webhooks generate-key`"
        )
    return settings


def settings_or_exit() -> Settings:
    """`get_settings()`, or one line on stderr naming the bad variable and exit status 2."""
    try:
        return require_running_settings(get_settings())
    except SettingsError as exc:
        _exit(exc)


def check_web(settings: Settings) -> Settings:
    """What `web` needs beyond the others: SECRET_KEY, which signs console sessions.

    `make run` generates one for the embedded default; anywhere else it must be set, and the
    same in every web process.
    """
    if settings.secret_key is None:
        where = "in production" if settings.database_url.startswith("postgresql") else "here"
        raise SettingsError(
            f"SECRET_KEY: required {where} to sign console sessions: set it to a random value "
            f"of at least {MIN_SECRET_KEY_LENGTH} characters, the same in every web process"
        )
    return settings


def web_settings_or_exit(settings: Settings | None = None) -> Settings:
    """`settings_or_exit()` (or `settings`) for the web process, which also needs SECRET_KEY."""
    settings = settings or settings_or_exit()
    try:
        return check_web(settings)
    except SettingsError as exc:
        _exit(exc)


def _exit(exc: SettingsError) -> NoReturn:
    print(f"cloud-agent-webhooks: configuration error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
