"""Who may send: the race's ingest key, or a per-device token.

A per-device token is derived from the device id and the race's device secret
(HMAC-SHA256, first 24 hex characters), so ingest stores no token list: the organiser
prints the tokens once (``zegama-live ingest --print-device-tokens``) and loads each
into its tracker. A token is valid only for its own device; the ingest key is valid for
every device of the race (a gateway, the timing team, the simulator).

Credentials are read from, in order: ``Authorization: Bearer <key>``, HTTP Basic
(the password; the user name is ignored), the ``key`` query parameter (the one place a
Traccar Client can carry a secret: put it in the server URL), or ``X-Ingest-Key``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

TOKEN_HEX_CHARS = 24


def device_token(secret: str, device: str) -> str:
    """The token of ``device`` under the race's device secret."""
    digest = hmac.new(secret.encode(), device.encode(), hashlib.sha256).hexdigest()
    return digest[:TOKEN_HEX_CHARS]


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison; any text may be given (bytes, so non-ASCII is fine)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())


def credential(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key or token a request carries, or None when it carries none."""
    header = headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):  # ValueError: not ASCII (UnicodeDecodeError too)
            return None
        _, _, password = decoded.partition(":")
        return password or None
    if query.get("key"):
        return query["key"]
    return headers.get("X-Ingest-Key") or None


@dataclass(frozen=True)
class Authenticator:
    """Checks a request's credential against the race key and per-device tokens."""

    ingest_key: str = ""
    device_secret: str = ""
    disabled: bool = False

    def race_wide(self, given: str | None) -> bool:
        """True when ``given`` is the race's ingest key (or authentication is off)."""
        if self.disabled:
            return True
        return bool(given and self.ingest_key and same_secret(given, self.ingest_key))

    def allows(self, given: str | None, device: str) -> bool:
        """True when ``given`` may send fixes of ``device``."""
        if self.race_wide(given):
            return True
        if not (given and self.device_secret):
            return False
        return same_secret(given, device_token(self.device_secret, device))
