"""One codec per record type: encode, decode with a check of every field, JSON Schema.

Records are msgspec ``Struct``s. msgspec was chosen over hand-written checks, pydantic
and dataclasses+jsonschema because one declaration gives the typed value, a validating
JSON decoder (several times faster than ``orjson.loads`` plus field checks, and its
errors name the field's path), an encoder, and the JSON Schema the docs, the pages and
the OpenAPI document are made from.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")


class RecordError(ValueError):
    """A record that is not a valid record of its topic (wrong version, field or type)."""


class Codec(Generic[T]):
    """Encode and decode values of one record type ``kind`` (a Struct or a union of
    tagged Structs) as JSON."""

    def __init__(self, kind: Any, name: str) -> None:
        self.kind = kind
        self.name = name  # what the errors call a record of this codec
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(kind)
        self._encoder = msgspec.json.Encoder()

    def encode(self, value: T) -> bytes:
        return self._encoder.encode(value)

    def decode(self, data: bytes | str) -> T:
        """The record in ``data``.

        Raises:
            RecordError: not JSON, or a field missing or of the wrong type, named by
                its path (``$.alert.kind``).
        """
        try:
            return self._decoder.decode(data)
        except msgspec.ValidationError as e:
            raise RecordError(f"{self.name} record: {_plain(e)}") from None
        except msgspec.DecodeError as e:
            raise RecordError(f"{self.name} record is not JSON: {e}") from None

    def convert(self, obj: Any) -> T:
        """Check already-parsed JSON data (``orjson.loads``) as a record of this codec.

        Raises:
            RecordError: as ``decode``.
        """
        try:
            return msgspec.convert(obj, self.kind)
        except msgspec.ValidationError as e:
            raise RecordError(f"{self.name} record: {_plain(e)}") from None

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the record."""
        return msgspec.json.schema(self.kind)


def _plain(e: Exception) -> str:
    # msgspec marks names with backquotes (Markdown); people read plain quotes better.
    return str(e).replace("`", "'")


def to_builtins(value: Any) -> Any:
    """A record (or anything holding records) as plain JSON data."""
    return msgspec.to_builtins(value)
