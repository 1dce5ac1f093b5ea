"""Sealing secrets: what one key seals another opens only when it is given, and rotation."""

import pytest

from shared.secret_box import SecretBox, SecretBoxError, generate_key, key_id
from shared.settings import SettingsError, load_settings

OLD, NEW = generate_key(), generate_key()


def test_a_sealed_value_opens_with_its_key_and_shows_nothing_of_the_value():
    box = SecretBox((OLD,))
    sealed = box.seal("Bearer hunter2")
    assert sealed.startswith(f"sealed:{key_id(OLD)}:")
    assert "hunter2" not in sealed
    assert box.open(sealed) == "Bearer hunter2"
    assert box.seal("Bearer hunter2") != sealed  # a fresh IV each time


def test_rotation_opens_with_old_keys_and_reseals_with_the_first():
    sealed = SecretBox((OLD,)).seal("value")
    rotating = SecretBox((NEW, OLD))
    assert not rotating.is_current(sealed)
    resealed = rotating.reseal(sealed)
    assert rotating.is_current(resealed)
    assert SecretBox((NEW,)).open(resealed) == "value"
    with pytest.raises(SecretBoxError, match=key_id(OLD)) as refused:
        SecretBox((NEW,)).open(sealed)
    assert "value" not in str(refused.value)


def test_a_value_stored_before_sealing_opens_as_it_is_until_resealed():
    box = SecretBox((NEW,))
    assert box.open("whsec_legacy") == "whsec_legacy"
    assert not box.is_current("whsec_legacy")
    assert box.open(box.reseal("whsec_legacy")) == "whsec_legacy"


def test_a_bad_key_stops_start_up_without_showing_it():
    with pytest.raises(SettingsError) as refused:
        load_settings({"SECRET_ENCRYPTION_KEY": f"{NEW},not-a-key-at-all"})
    assert str(refused.value).startswith("SECRET_ENCRYPTION_KEY: ")
    assert "not-a-key-at-all" not in str(refused.value) and NEW not in str(refused.value)
    assert load_settings({"SECRET_ENCRYPTION_KEY": f" {NEW} , {OLD} "}).secret_encryption_keys == (
        NEW,
        OLD,
    )
