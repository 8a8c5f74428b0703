"""WebSocket close codes (RFC 6455 section 7.4) and the limits on what a close frame carries.

The names are the ones Panther uses, so :mod:`panther_ws.status` re-exports them unchanged.

Apps compare and send these instead of bare numbers; :func:`is_sendable_close_code` tells
whether an endpoint may put a code on the wire, since several codes are reserved for
reporting a state locally and must never be sent.
"""

from __future__ import annotations

WS_1000_NORMAL_CLOSURE = 1000
WS_1001_GOING_AWAY = 1001
WS_1002_PROTOCOL_ERROR = 1002
WS_1003_UNSUPPORTED_DATA = 1003
WS_1004_RESERVED = 1004
WS_1005_NO_STATUS_RCVD = 1005
WS_1006_ABNORMAL_CLOSURE = 1006
WS_1007_INVALID_FRAME_PAYLOAD_DATA = 1007
WS_1008_POLICY_VIOLATION = 1008
WS_1009_MESSAGE_TOO_BIG = 1009
WS_1010_MANDATORY_EXT = 1010
WS_1011_INTERNAL_ERROR = 1011
WS_1012_SERVICE_RESTART = 1012
WS_1013_TRY_AGAIN_LATER = 1013
WS_1014_BAD_GATEWAY = 1014
WS_1015_TLS_HANDSHAKE = 1015

# Codes that only describe a local condition; RFC 6455 forbids sending them in a close frame.
_NEVER_SENT = frozenset(
    {WS_1004_RESERVED, WS_1005_NO_STATUS_RCVD, WS_1006_ABNORMAL_CLOSURE, WS_1015_TLS_HANDSHAKE}
)


def is_sendable_close_code(code: int) -> bool:
    """Whether an endpoint may send ``code`` in a close frame.

    1000-1014 except the reserved 1004/1005/1006, plus 3000-4999 (registered and private
    codes). Everything else is either unassigned or reserved for local reporting.
    """
    if 1000 <= code <= 1014:
        return code not in _NEVER_SENT
    return 3000 <= code <= 4999
