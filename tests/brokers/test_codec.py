from __future__ import annotations

import pytest

from panther_ws.brokers._codec import decode_delivery, encode_delivery
from panther_ws.brokers.base import Delivery


@pytest.mark.parametrize(
    "data", ["text", b"\x00\xffbytes", {"json": [1, None, True]}, None, 3.5, ["a", "b"]]
)
def test_delivery_round_trips_with_its_type(data: object) -> None:
    delivery = Delivery("send", connection_id="c" * 32, data=data)
    decoded = decode_delivery(encode_delivery(delivery))
    assert decoded == delivery
    assert type(decoded.data) is type(data)


def test_close_and_group_fields_survive() -> None:
    delivery = Delivery("close", group="room", code=4001, reason="bye")
    assert decode_delivery(encode_delivery(delivery)) == delivery
