"""Deliveries as bytes for brokers that cross processes, with data types kept intact.

orjson for speed; bytes travel base64-encoded under their own tag, so a receiver gets back
``bytes`` for bytes, ``str`` for str, and the same JSON value for anything else.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from panther_ws.brokers.base import Delivery


def encode_delivery(delivery: Delivery) -> bytes:
    data: Any = delivery.data
    if isinstance(data, bytes | bytearray | memoryview):
        kind, data = "b", base64.b64encode(bytes(data)).decode("ascii")
    elif isinstance(data, str):
        kind = "t"
    else:
        kind = "j"
    return orjson.dumps(
        {
            "a": delivery.action,
            "c": delivery.connection_id,
            "g": delivery.group,
            "k": kind,
            "d": data,
            "code": delivery.code,
            "r": delivery.reason,
        }
    )


def decode_delivery(raw: bytes | str) -> Delivery:
    fields = orjson.loads(raw)
    data = fields["d"]
    if fields["k"] == "b":
        data = base64.b64decode(data)
    return Delivery(
        action=fields["a"],
        connection_id=fields["c"],
        group=fields["g"],
        data=data,
        code=fields["code"],
        reason=fields["r"],
    )
