"""Settings: defaults of the contract, and one clear line for a bad value."""

import pytest

from shared.settings import SettingsError, load_settings


def test_defaults_are_the_contracts():
    settings = load_settings({})
    assert settings.port == 8080
    assert settings.api_prefix == "/cloud-agent"
    assert settings.database_url == "sqlite:///var/webhooks.db"
    assert settings.admin_token is None
    assert settings.api_key_enabled is True
    assert settings.default_wallet_enabled is True
    assert settings.webhook_retry_countdown == 5
    assert settings.webhook_max_retries == 2 and settings.max_attempts == 3
    assert settings.webhook_timeout == 5
    assert settings.max_webhooks_per_wallet == 10
    assert settings.webhook_block_private_networks is False


def test_paas_database_urls_get_a_driver():
    url = load_settings({"DATABASE_URL": "postgres://u:p@db:5432/x"}).database_url
    assert url == "postgresql+psycopg://u:p@db:5432/x"
    url = load_settings({"DATABASE_URL": "postgresql+psycopg2://u:p@db/x"}).database_url
    assert url == "postgresql+psycopg://u:p@db/x"  # the driver the service installs


@pytest.mark.parametrize(
    "name, value",
    [
        ("GLOBAL_WEBHOOK_URL", "ftp://example.com"),
        ("GLOBAL_WEBHOOK_URL", "not a url"),
        ("DEFAULT_WALLET_WEBHOOK_URL", "example.com/hook"),
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("API_KEY_ENABLED", "maybe"),
        ("WEBHOOK_MAX_RETRIES", "-1"),
        ("WEBHOOK_TIMEOUT", "0"),
        ("MAX_WEBHOOKS_PER_WALLET", "0"),
        ("WEBHOOK_ALLOWED_NETWORKS", "10.0.0.0/33"),
        ("DATABASE_URL", "mysql://x"),
        ("REDIS_URL", "http://x"),
        ("GLOBAL_WEBHOOK_SECRET", "plain"),
        ("GLOBAL_WEBHOOK_SECRET", "whsec_abc"),
        ("GLOBAL_WEBHOOK_SECRET", "whsec_" + "A" * 31),  # 23 bytes
        ("GLOBAL_WEBHOOK_SECRET", "whsec_not base64 at all, not at all!"),
        ("OPERATIONS_WEBHOOK_SECRET", "whsec_abc"),
        ("GLOBAL_WEBHOOK_API_KEY", "key\r\nX-Injected: 1"),
        ("GLOBAL_WEBHOOK_API_KEY", "key\nmore"),
        ("GLOBAL_WEBHOOK_API_KEY", "k€y"),
        ("DEFAULT_WALLET_WEBHOOK_API_KEY", "key\r\nX-Injected: 1"),
        ("DEFAULT_WALLET_WEBHOOK_API_KEY", "k\u0007y"),
    ],
)
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_a_bad_secret_or_key_is_one_line_that_does_not_show_it():
    for name, value in (
        ("GLOBAL_WEBHOOK_API_KEY", "s3cret-k€y"),
        ("GLOBAL_WEBHOOK_SECRET", "whsec_czNjcmV0"),
    ):
        with pytest.raises(SettingsError) as raised:
            load_settings({name: value})
        message = str(raised.value)
        assert "\n" not in message
        assert message.startswith(f"{name}: ")
        assert value not in message and value[len("whsec_") :] not in message


def test_secrets_of_24_bytes_and_visible_ascii_keys_are_accepted():
    settings = load_settings(
        {
            "GLOBAL_WEBHOOK_SECRET": "whsec_" + "A" * 32,
            "OPERATIONS_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "GLOBAL_WEBHOOK_API_KEY": "abc-DEF_123.~+/=",
            "DEFAULT_WALLET_WEBHOOK_API_KEY": "with inner spaces",
        }
    )
    assert settings.global_webhook_secret == "whsec_" + "A" * 32
    assert settings.global_webhook_api_key == "abc-DEF_123.~+/="
    assert settings.default_wallet_webhook_api_key == "with inner spaces"
