"""Every record the platform exchanges, typed and versioned, with one codec each.

The codecs are attached to the topics that carry them in ``zegama_live.topics``
(``Topic.codec``); producers and consumers use those, and the JSON Schemas in the docs
come from them (``zegama-live topics --schema``).

| module | records |
|---|---|
| ``inputs`` | ``pings.v1``, ``chip-reads.v1`` |
| ``control`` | race control's commands (``control.v1``) and their audit (``control-log.v1``) |
| ``outputs`` | ``standings.v1``, ``runner-updates.v1``, ``alerts.v1`` |
| ``internal`` | the processors' own topics |
"""

from zegama_live.records.codec import Codec, RecordError, to_builtins
from zegama_live.records.inputs import (
    PING_SOURCES,
    VERSION,
    ChipReadRecord,
    PingRecord,
    decode_chip_read,
    decode_ping,
    encode_chip_read,
    encode_ping,
)

__all__ = [
    "PING_SOURCES", "VERSION", "ChipReadRecord", "Codec", "PingRecord", "RecordError",
    "decode_chip_read", "decode_ping", "encode_chip_read", "encode_ping", "to_builtins",
]
