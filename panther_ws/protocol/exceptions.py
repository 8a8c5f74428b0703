"""The one exception type the sans-IO core raises."""

from __future__ import annotations


class ProtocolError(Exception):
    """The peer broke RFC 6455, or the caller used the connection in the wrong state.

    Any input bytes can raise only this. When it comes from the peer's bytes, the core has
    already queued the right close frame (or HTTP error response) in ``data_to_send()``, so
    the caller should flush that and drop the connection.
    """
