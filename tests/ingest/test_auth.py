"""Keys and per-device tokens."""

from __future__ import annotations

from base64 import b64encode

from ingest.auth import Authenticator, credential, device_token


def test_device_token_is_stable_and_per_device() -> None:
    assert device_token("s", "ZGM-0001") == device_token("s", "ZGM-0001")
    assert device_token("s", "ZGM-0001") != device_token("s", "ZGM-0002")
    assert device_token("s", "ZGM-0001") != device_token("t", "ZGM-0001")
    assert len(device_token("s", "x")) == 24


def test_credential_sources_in_order() -> None:
    basic = "Basic " + b64encode(b"ZGM-0001:pw").decode()
    assert credential({"Authorization": "Bearer  abc "}, {"key": "q"}) == "abc"
    assert credential({"Authorization": basic}, {}) == "pw"
    assert credential({}, {"key": "q"}) == "q"
    assert credential({"X-Ingest-Key": "h"}, {}) == "h"
    assert credential({"Authorization": "Basic %%%"}, {}) is None
    assert credential({}, {}) is None


def test_race_key_allows_all_device_token_only_its_device() -> None:
    auth = Authenticator("race", "secret")
    token = device_token("secret", "D1")
    assert auth.allows("race", "anything")
    assert auth.allows(token, "D1") and not auth.allows(token, "D2")
    assert not auth.allows(None, "D1") and not auth.allows("é", "D1")
    assert not auth.race_wide(token)
    assert Authenticator(disabled=True).allows(None, "D1")
    assert not Authenticator("", "").allows("", "D1")
