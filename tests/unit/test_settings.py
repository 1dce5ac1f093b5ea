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
    assert url == "postgresql+psycopg2://u:p@db:5432/x"


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
    ],
)
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})
