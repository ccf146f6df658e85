"""Feed API keys and race-control tokens, checked in constant time.

Keys come from ``ZEGAMA_FEED_KEYS`` and tokens from ``ZEGAMA_CONTROL_TOKENS``, each
``name:secret,...``. A control token also works as a feed key, with access to the
alerts. Only names are ever logged or shown, never the secrets.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a key or token belongs to."""

    name: str
    control: bool  # a race-control token: alerts, control channel, commands


class Credentials:
    """The known keys and tokens."""

    def __init__(self, feed_keys: tuple[tuple[str, str], ...],
                 control_tokens: tuple[tuple[str, str], ...]) -> None:
        self._entries = [(secret.encode(), Caller(name, False)) for name, secret in feed_keys]
        self._entries += [(secret.encode(), Caller(name, True)) for name, secret in control_tokens]

    def feed_caller(self, key: str) -> Caller | None:
        """The owner of a feed key or control token, or None."""
        given = key.encode("utf-8", "surrogatepass")  # a header not in UTF-8 matches none
        found = None
        for secret, caller in self._entries:  # no early exit: the time does not tell which
            if hmac.compare_digest(secret, given):
                found = found or caller
        return found

    def control_name(self, token: str) -> str | None:
        """The name of a race-control token, or None."""
        caller = self.feed_caller(token) if isinstance(token, str) else None
        return caller.name if caller is not None and caller.control else None
