"""A request body as its Content-Encoding says (sans-I/O): identity, gzip or deflate.

The ingest servers decompress bodies here rather than in the HTTP server, so that a
body that is not what its header says gets a 400 that says so (the server's own
decoder raised past the handler, logged a traceback and dropped the connection), an
encoding we do not read gets a 415, and the size limit counts the decompressed bytes
while never inflating more than the limit (a 5 kB gzip bomb costs 5 kB).
"""

from __future__ import annotations

import zlib

PAYLOAD_TOO_LARGE = "payload_too_large"
BAD_CONTENT_ENCODING = "bad_content_encoding"
UNSUPPORTED_CONTENT_ENCODING = "unsupported_content_encoding"
# zlib's window bits: gzip's header and trailer, or zlib's (HTTP's "deflate"); some
# clients send raw deflate under that name, tried when the zlib header is not there.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS,
          "deflate": zlib.MAX_WBITS}
_RAW_DEFLATE = -zlib.MAX_WBITS


class BodyError(ValueError):
    """A body refused whole: ``status``, a stable ``reason`` and what to do."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def too_large(limit: int) -> BodyError:
    return BodyError(413, PAYLOAD_TOO_LARGE,
                     f"the body is larger than {limit} bytes: split it into smaller batches")


def decode_body(raw: bytes, encoding: str | None, limit: int) -> bytes:
    """``raw`` decoded as ``encoding`` (a Content-Encoding header, None for none), at
    most ``limit`` bytes; raises BodyError."""
    name = (encoding or "").strip().lower()
    if name in ("", "identity"):
        if len(raw) > limit:
            raise too_large(limit)
        return raw
    wbits = _WBITS.get(name)
    if wbits is None:
        raise BodyError(415, UNSUPPORTED_CONTENT_ENCODING,
                        f"Content-Encoding {name[:40]!r} is not read here: send the body "
                        "uncompressed, gzip or deflate")
    try:
        return _inflate(raw, wbits, limit)
    except zlib.error as exc:
        if name != "deflate":
            raise _not_what_it_says(name, str(exc)) from None
    try:
        return _inflate(raw, _RAW_DEFLATE, limit)
    except zlib.error as exc:
        raise _not_what_it_says(name, str(exc)) from None


def _inflate(raw: bytes, wbits: int, limit: int) -> bytes:
    d = zlib.decompressobj(wbits)
    out = d.decompress(raw, limit + 1)
    if len(out) > limit:
        raise too_large(limit)
    if not d.eof:
        raise zlib.error("the compressed stream ends early")
    if d.unused_data:
        raise zlib.error("bytes follow the end of the compressed stream")
    return out


def _not_what_it_says(name: str, detail: str) -> BodyError:
    return BodyError(400, BAD_CONTENT_ENCODING,
                     f"the body does not decode as its Content-Encoding ({name!r}) says "
                     f"({detail}): send it uncompressed, or {name} it whole")
