import pytest


@pytest.fixture(autouse=True)
def _empty_database_and_broker(clean_state):
    """Each operation's run starts from an empty database (plus the default wallet)."""
