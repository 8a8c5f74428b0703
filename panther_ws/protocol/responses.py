"""Canned HTTP responses a server sends on its own behalf, before or instead of an app."""

from __future__ import annotations


def error_response(status_code: int, reason: bytes) -> bytes:
    """A complete plain-text response for the server's own errors (413, 500, 503)."""
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (status_code, reason, len(reason), reason)
    )
